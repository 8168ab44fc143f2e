"""KEKs kept in a hardware security module, through PKCS#11: the production KEK provider.

Each KEK version is an AES-256 secret key generated inside the token, never extractable and
sensitive, so its bytes never exist outside the HSM: wrap and unwrap are AES-GCM operations the
HSM performs.  Destroying a version destroys that key object in the HSM; from then on no one
(nor any old database dump) can unwrap what it wrapped.  It implements ``KekProvider``.

Objects in the token (all token objects, private: only a logged-in user sees them)::

    secret key  label "consent-replay-kek/v<N>"   AES-256, EXTRACTABLE=false, SENSITIVE=true
    data        label "consent-replay-kek/v<N>"   JSON {"created_at": ..., "destroyed_at": ...}

The data object keeps each version's dates, so the key status page still lists a destroyed
version.  The current version is the highest one whose key exists.

Blob layout (as the file keyring's, see crypto._core)::

    0   12  nonce, from the HSM's random generator
    12  32  AES-256-GCM ciphertext of the data key
    44  16  GCM tag

Sessions: one per process, opened on first use and re-opened after a fork (a PKCS#11 library
must be initialised again in a forked child), used under a lock.  KEK operations are few (a
data key is unwrapped once and then cached), so a single session is not a bottleneck.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from ._core import DecryptionError
from .keyring import KekVersionInfo, KeyringError

LABEL_PREFIX = "consent-replay-kek/v"
_LABEL = re.compile(r"^consent-replay-kek/v([1-9][0-9]{0,8})$")
_NONCE_SIZE = 12
_TAG_BITS = 128
# The process that last initialised each PKCS#11 library: a forked child inherits the
# library's memory but not a usable state, and must initialise it again.
_initialised_by: dict[str, int] = {}
_initialise_lock = threading.Lock()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | None) -> datetime | None:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if value else None


class Pkcs11Kek:
    """KEK versions as non-extractable AES keys in a PKCS#11 token (an HSM, or SoftHSM)."""

    def __init__(self, module: str | os.PathLike[str], token_label: str, pin: str) -> None:
        import pkcs11  # the optional dependency, needed only when this provider is chosen

        self._pkcs11 = pkcs11
        self._module = str(module)
        self._token_label = token_label
        self._pin = pin
        self._lock = threading.RLock()
        self._session: Any = None
        self._pid = -1
        with self._lock:
            self._open()  # fail at start-up, not on the first share

    def __repr__(self) -> str:  # never the PIN
        return f"Pkcs11Kek(module={self._module!r}, token={self._token_label!r})"

    # -- the session ----------------------------------------------------------------------------

    def _open(self) -> Any:
        if self._session is not None and self._pid == os.getpid():
            return self._session
        pkcs11 = self._pkcs11
        self._session = None
        try:
            with _initialise_lock:
                lib = pkcs11.lib(self._module)
                if _initialised_by.setdefault(self._module, os.getpid()) != os.getpid():
                    lib.reinitialize()
                    _initialised_by[self._module] = os.getpid()
            token = lib.get_token(token_label=self._token_label)
            try:
                session = token.open(user_pin=self._pin, rw=True)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # Login is per process: another provider here has logged in already.
                session = token.open(rw=True)
        except pkcs11.exceptions.NoSuchToken:
            raise KeyringError(f"PKCS#11 token {self._token_label!r} not found") from None
        except pkcs11.exceptions.PinIncorrect:
            raise KeyringError(f"PKCS#11 token {self._token_label!r}: wrong PIN") from None
        except (pkcs11.exceptions.PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyringError(f"PKCS#11 module {Path(self._module).name}: {exc!r}") from None
        self._session, self._pid = session, os.getpid()
        if not self._versions_present() and not self._live_keys():
            self._generate(1)
        return self._session

    def _find(self, object_class: Any, label: str) -> Any:
        attribute = self._pkcs11.Attribute
        found = list(
            self._session.get_objects(
                {attribute.CLASS: object_class, attribute.LABEL: label, attribute.TOKEN: True}
            )
        )
        return found[0] if found else None

    def _all(self, object_class: Any) -> dict[int, Any]:
        attribute = self._pkcs11.Attribute
        objects: dict[int, Any] = {}
        for obj in self._session.get_objects({attribute.CLASS: object_class}):
            match = _LABEL.match(obj[attribute.LABEL] or "")
            if match:
                objects[int(match.group(1))] = obj
        return objects

    def _versions_present(self) -> list[int]:
        return sorted(self._all(self._pkcs11.ObjectClass.DATA))

    def _live_keys(self) -> dict[int, Any]:
        return self._all(self._pkcs11.ObjectClass.SECRET_KEY)

    def _write_dates(self, version: int, dates: dict[str, str | None]) -> None:
        # Data objects are read-only once made: replace it.
        pkcs11 = self._pkcs11
        label = f"{LABEL_PREFIX}{version}"
        old = self._find(pkcs11.ObjectClass.DATA, label)
        self._session.create_object(
            {
                pkcs11.Attribute.CLASS: pkcs11.ObjectClass.DATA,
                pkcs11.Attribute.LABEL: label,
                pkcs11.Attribute.VALUE: json.dumps(dates).encode(),
                pkcs11.Attribute.TOKEN: True,
                pkcs11.Attribute.PRIVATE: True,
            }
        )
        if old is not None:
            old.destroy()

    def _generate(self, version: int) -> None:
        pkcs11 = self._pkcs11
        attribute = pkcs11.Attribute
        self._session.generate_key(
            pkcs11.KeyType.AES,
            256,
            label=f"{LABEL_PREFIX}{version}",
            store=True,
            template={
                attribute.EXTRACTABLE: False,
                attribute.SENSITIVE: True,
                attribute.PRIVATE: True,
                attribute.ENCRYPT: True,
                attribute.DECRYPT: True,
            },
        )
        self._write_dates(version, {"created_at": _now(), "destroyed_at": None})

    def _key(self, version: int) -> Any:
        return self._find(self._pkcs11.ObjectClass.SECRET_KEY, f"{LABEL_PREFIX}{version}")

    def _current(self, live: dict[int, Any]) -> int:
        if not live:
            raise KeyringError(f"PKCS#11 token {self._token_label!r} holds no KEK")
        return max(live)

    # -- KekProvider ----------------------------------------------------------------------------

    def current_version(self) -> int:
        with self._lock:
            self._open()
            return self._current(self._live_keys())

    def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
        from pkcs11.mechanisms import GCMParams

        with self._lock:
            self._open()
            live = self._live_keys()
            version = self._current(live)
            nonce = bytes(self._session.generate_random(_NONCE_SIZE * 8))
            sealed = live[version].encrypt(
                bytes(dek),
                mechanism=self._pkcs11.Mechanism.AES_GCM,
                mechanism_param=GCMParams(nonce, bytes(aad), _TAG_BITS),
            )
            return version, nonce + bytes(sealed)

    def unwrap(self, version: int, blob: bytes, aad: bytes) -> bytes:
        from pkcs11.mechanisms import GCMParams

        if len(blob) < _NONCE_SIZE + _TAG_BITS // 8:
            raise DecryptionError()
        with self._lock:
            self._open()
            key = self._key(version)
            if key is None:
                raise DecryptionError()
            try:
                return bytes(
                    key.decrypt(
                        bytes(blob[_NONCE_SIZE:]),
                        mechanism=self._pkcs11.Mechanism.AES_GCM,
                        mechanism_param=GCMParams(bytes(blob[:_NONCE_SIZE]), bytes(aad), _TAG_BITS),
                    )
                )
            except self._pkcs11.exceptions.PKCS11Error:
                raise DecryptionError() from None

    def add_version(self) -> int:
        with self._lock:
            self._open()
            version = max(self._versions_present() + list(self._live_keys())) + 1
            self._generate(version)
            return version

    def destroy_version(self, version: int) -> None:
        with self._lock:
            self._open()
            records = self._all(self._pkcs11.ObjectClass.DATA)
            if version not in records:
                raise KeyringError(f"there is no KEK version {version}")
            live = self._live_keys()
            if version == self._current(live):
                raise KeyringError(
                    f"KEK version {version} is the active one; add a version and rewrap first"
                )
            if version not in live:
                return
            live[version].destroy()
            dates = self._read_dates(records[version])
            self._write_dates(version, {**dates, "destroyed_at": _now()})

    def _read_dates(self, record: Any) -> dict[str, str | None]:
        if record is None:
            return {"created_at": None, "destroyed_at": None}
        return cast(dict[str, str | None], json.loads(bytes(record[self._pkcs11.Attribute.VALUE])))

    def versions(self) -> list[KekVersionInfo]:
        with self._lock:
            self._open()
            live = self._live_keys()
            records = self._all(self._pkcs11.ObjectClass.DATA)
            current = max(live) if live else None
            infos = []
            for version in sorted(set(records) | set(live)):
                dates = self._read_dates(records.get(version))
                created = _parse_time(dates.get("created_at")) or datetime.fromtimestamp(0, UTC)
                destroyed = _parse_time(dates.get("destroyed_at"))
                state: Literal["active", "retired", "destroyed"]
                if version not in live:
                    state = "destroyed"
                elif version == current:
                    state = "active"
                else:
                    state = "retired"
                infos.append(KekVersionInfo(version, created, state, destroyed))
            return infos
