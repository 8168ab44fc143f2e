"""The keyring: versioned key-encryption keys (KEKs) and the receipt-signing keys.

``KekProvider`` is what the rest of the code needs from a KEK store; a KMS such as Vault
transit can implement it (wrap/unwrap with associated data, versioned keys, version deletion).
``FileKeyring`` is the embedded default: one JSON file, mode 0600.

File format (JSON, UTF-8)::

    {
      "format": "consent-replay-keyring", "format_version": 1,
      "kek": {
        "current": 2,
        "versions": [
          {"version": 1, "created_at": "2025-01-01T00:00:00Z", "destroyed_at": "..."},
          {"version": 2, "created_at": "...", "key": "<base64 of 32 bytes>"}
        ]
      },
      "signing": {
        "current": "<kid>",
        "keys": [{"kid": "<RFC 7638 thumbprint>", "created_at": "...",
                  "seed": "<base64 of the 32-byte Ed25519 seed>", "x": "<base64url public>"}]
      }
    }

A KEK version is *active* (the current one, used to wrap), *retired* (older, still unwraps
until destroyed) or *destroyed* (its key removed from the file; only the version number and
the dates remain).  Rotation: add_version(), rewrap every live data key, destroy the old
version.  Destroying removes the key from the live file only: copies of the keyring file in
backups still hold it, so back the keyring up separately from the database, or not at all.

Concurrency: every change takes an exclusive fcntl lock on ``<path>.lock``, re-reads the file,
and replaces it atomically (temporary file in the same directory, created 0600 with O_EXCL,
fsync, rename, fsync of the directory).  Other processes notice the new file on their next use
(its inode changes), so a rotation made by one process is seen by the others.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, cast

from . import _core
from ._core import DecryptionError, Ed25519Signer

__all__ = [
    "FileKeyring",
    "KekProvider",
    "KekVersionInfo",
    "KeyringError",
    "KeyringPermissionError",
    "SigningKey",
]

KekState = Literal["active", "retired", "destroyed"]

_FORMAT = "consent-replay-keyring"
_FORMAT_VERSION = 1


class KeyringError(Exception):
    """The keyring cannot be used as asked (corrupt file, unknown version, bad request)."""


class KeyringPermissionError(KeyringError, PermissionError):
    """The keyring file is accessible by group or others."""


@dataclass(frozen=True)
class KekVersionInfo:
    version: int
    created_at: datetime
    state: KekState
    destroyed_at: datetime | None = None


class KekProvider(Protocol):
    """A versioned key-encryption key.  Failures to unwrap raise crypto.DecryptionError."""

    def current_version(self) -> int:
        """The version wrap() uses now."""
        ...

    def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
        """Encrypt dek under the current version; returns (version used, blob)."""
        ...

    def unwrap(self, version: int, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob made by wrap(); DecryptionError if the version is destroyed or
        unknown, or the blob or aad do not match."""
        ...

    def add_version(self) -> int:
        """Create a new version and make it current; returns its number."""
        ...

    def destroy_version(self, version: int) -> None:
        """Irrevocably delete a non-current version's key material."""
        ...

    def versions(self) -> list[KekVersionInfo]: ...


class SigningKey(NamedTuple):
    kid: str
    signer: Ed25519Signer


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of an Ed25519 public JWK (members in lexicographic order)."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _new_kek_version(version: int) -> dict[str, Any]:
    return {
        "version": version,
        "created_at": _now(),
        "key": base64.b64encode(_core.new_kek()).decode("ascii"),
    }


def _new_signing_key() -> dict[str, Any]:
    signer = Ed25519Signer.generate()
    x = _b64url(signer.public_bytes())
    return {
        "kid": jwk_thumbprint(x),
        "created_at": _now(),
        "seed": base64.b64encode(signer.private_bytes()).decode("ascii"),
        "x": x,
    }


def _initial_state() -> dict[str, Any]:
    signing_key = _new_signing_key()
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "kek": {"current": 1, "versions": [_new_kek_version(1)]},
        "signing": {"current": signing_key["kid"], "keys": [signing_key]},
    }


class FileKeyring:
    """KEKs and signing keys in one JSON file (format in the module docstring).

    Created on first use.  Refuses a file that group or others can access.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.RLock()
        self._state: dict[str, Any] = {}
        self._signature: tuple[int, int, int, int] | None = None
        self._signers: dict[str, Ed25519Signer] = {}
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            with self._exclusive():
                if not self.path.exists():
                    self._write(_initial_state())
        self._current()

    # -- file handling -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._thread_lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _check_mode(self, st: os.stat_result) -> None:
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyringPermissionError(
                f"refusing to use keyring file {self.path}: its mode is {mode:04o}, which lets "
                f"group or others access it; it must be 0600 (chmod 600 {self.path})"
            )

    def _current(self) -> dict[str, Any]:
        """The keyring state, re-read if the file changed since it was last read."""
        with self._thread_lock:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise KeyringError(f"keyring file {self.path} is missing") from None
            try:
                st = os.fstat(fd)
                self._check_mode(st)
                signature = (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)
                if signature != self._signature:
                    with os.fdopen(os.dup(fd), "rb") as file:
                        raw = file.read()
                    self._state = self._parse(raw)
                    self._signature = signature
            finally:
                os.close(fd)
            return self._state

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            state = json.loads(raw)
            if state.get("format") != _FORMAT or state.get("format_version") != _FORMAT_VERSION:
                raise ValueError("not a consent-replay keyring of a known format")
            kek = state["kek"]
            versions = {v["version"] for v in kek["versions"]}
            if kek["current"] not in versions:
                raise ValueError("the current KEK version is missing")
            for entry in kek["versions"]:
                if "key" in entry and len(base64.b64decode(entry["key"])) != _core.KEK_SIZE:
                    raise ValueError(f"KEK version {entry['version']} is not 256 bits")
            kids = {k["kid"] for k in state["signing"]["keys"]}
            if state["signing"]["current"] not in kids:
                raise ValueError("the current signing key is missing")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # The message names what is wrong, never a value from the file.
            raise KeyringError(f"keyring file {self.path} is corrupt: {error}") from None
        return cast(dict[str, Any], state)

    def _write(self, state: dict[str, Any]) -> None:
        data = json.dumps(state, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        directory = self.path.parent
        tmp = directory / f".{self.path.name}.{os.getpid()}.{_b64url(_core.random_bytes(6))}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under the file lock, so concurrent processes don't lose changes."""
        with self._exclusive():
            self._signature = None  # force a fresh read under the lock
            state = json.loads(json.dumps(self._current()))
            yield state
            self._write(state)
            self._signature = None
            self._current()

    # -- KEKs (KekProvider) ------------------------------------------------------------------

    def current_version(self) -> int:
        return int(self._current()["kek"]["current"])

    def _kek(self, state: dict[str, Any], version: int) -> bytes | None:
        for entry in state["kek"]["versions"]:
            if entry["version"] == version:
                key = entry.get("key")
                return base64.b64decode(key) if key else None
        return None

    def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
        state = self._current()
        version = int(state["kek"]["current"])
        kek = self._kek(state, version)
        if kek is None:
            raise KeyringError(f"keyring file {self.path} has no key for its current version")
        return version, _core.aead_wrap(kek, dek, aad)

    def unwrap(self, version: int, blob: bytes, aad: bytes) -> bytes:
        kek = self._kek(self._current(), version)
        if kek is None:
            raise DecryptionError()
        return _core.aead_unwrap(kek, blob, aad)

    def add_version(self) -> int:
        with self._mutate() as state:
            kek = state["kek"]
            version = max(entry["version"] for entry in kek["versions"]) + 1
            kek["versions"].append(_new_kek_version(version))
            kek["current"] = version
        return int(version)

    def destroy_version(self, version: int) -> None:
        with self._mutate() as state:
            kek = state["kek"]
            if version == kek["current"]:
                raise KeyringError(
                    f"KEK version {version} is the active one; add a version and rewrap first"
                )
            for entry in kek["versions"]:
                if entry["version"] == version:
                    if "key" in entry:
                        del entry["key"]
                        entry["destroyed_at"] = _now()
                    break
            else:
                raise KeyringError(f"there is no KEK version {version}")

    def versions(self) -> list[KekVersionInfo]:
        kek = self._current()["kek"]
        infos = []
        for entry in sorted(kek["versions"], key=lambda e: e["version"]):
            destroyed_at = entry.get("destroyed_at")
            state: KekState
            if "key" not in entry:
                state = "destroyed"
            elif entry["version"] == kek["current"]:
                state = "active"
            else:
                state = "retired"
            infos.append(
                KekVersionInfo(
                    version=entry["version"],
                    created_at=_parse_time(entry["created_at"]),
                    state=state,
                    destroyed_at=_parse_time(destroyed_at) if destroyed_at else None,
                )
            )
        return infos

    # -- signing keys ------------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The current signing key: its kid and a signer."""
        signing = self._current()["signing"]
        kid = signing["current"]
        with self._thread_lock:
            signer = self._signers.get(kid)
            if signer is None:
                entry = next(k for k in signing["keys"] if k["kid"] == kid)
                signer = Ed25519Signer.from_private_bytes(base64.b64decode(entry["seed"]))
                self._signers[kid] = signer
        return SigningKey(kid, signer)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every signing key's public half, so receipts signed by older keys still verify."""
        keys = self._current()["signing"]["keys"]
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": entry["x"],
                    "kid": entry["kid"],
                    "alg": "EdDSA",
                    "use": "sig",
                }
                for entry in keys
            ]
        }

    def add_signing_key(self) -> str:
        """Create a signing key and make it current; older ones stay in the JWKS."""
        with self._mutate() as state:
            entry = _new_signing_key()
            state["signing"]["keys"].append(entry)
            state["signing"]["current"] = entry["kid"]
        return str(entry["kid"])

    def __repr__(self) -> str:
        return f"<FileKeyring {self.path}>"
