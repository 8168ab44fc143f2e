"""The file keyring: permissions, rotation, destruction, concurrency, signing keys."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import crypto

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "keyring.json"
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        keyring = crypto.FileKeyring(path)
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.with_name("keyring.json.lock")) == 0o600
    assert keyring.current_version() == 1
    [info] = keyring.versions()
    assert (info.version, info.state, info.destroyed_at) == (1, "active", None)
    document = json.loads(path.read_text())
    assert document["format"] == "consent-replay-keyring"
    assert len(base64.b64decode(document["kek"]["versions"][0]["key"])) == 32


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_refuses_a_file_others_can_read(tmp_path: Path, bad_mode: int) -> None:
    path = tmp_path / "keyring.json"
    crypto.FileKeyring(path)
    path.chmod(bad_mode)
    with pytest.raises(crypto.KeyringPermissionError) as caught:
        crypto.FileKeyring(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{bad_mode:04o}" in message
    assert isinstance(caught.value, PermissionError)


def test_a_running_keyring_notices_a_widened_mode(keyring: crypto.FileKeyring) -> None:
    keyring.path.chmod(0o644)
    with pytest.raises(crypto.KeyringPermissionError):
        keyring.current_version()
    keyring.path.chmod(0o600)
    assert keyring.current_version() == 1


def test_rotate_rewrap_destroy(keyring: crypto.FileKeyring) -> None:
    dek = crypto.new_data_key()
    wrapped = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
    assert keyring.add_version() == 2
    assert [(v.version, v.state) for v in keyring.versions()] == [(1, "retired"), (2, "active")]
    # A retired version still unwraps until it is destroyed.
    assert crypto.unwrap(keyring, wrapped, key_id="k", owner_id="o") == dek
    rewrapped = crypto.rewrap(keyring, wrapped, key_id="k", owner_id="o")
    keyring.destroy_version(1)
    infos = keyring.versions()
    assert [(v.version, v.state) for v in infos] == [(1, "destroyed"), (2, "active")]
    assert infos[0].destroyed_at is not None
    assert crypto.unwrap(keyring, rewrapped, key_id="k", owner_id="o") == dek
    keyring.destroy_version(1)  # idempotent
    with pytest.raises(crypto.KeyringError, match="active"):
        keyring.destroy_version(2)
    with pytest.raises(crypto.KeyringError, match="no KEK version 7"):
        keyring.destroy_version(7)


def test_a_database_dump_is_useless_after_rotation_and_destruction(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    keyring = crypto.FileKeyring(path)
    dek = crypto.new_data_key()
    live = crypto.wrap(keyring, dek, key_id="share-key-1", owner_id="employee-9")
    dump = crypto.WrappedKey(live.kek_version, bytes(live.blob))  # the copy in a backup
    old_key = json.loads(path.read_text())["kek"]["versions"][0]["key"]

    keyring.add_version()
    live = crypto.rewrap(keyring, live, key_id="share-key-1", owner_id="employee-9")
    keyring.destroy_version(dump.kek_version)

    # Neither this process nor a fresh one reading the file can unwrap the dumped copy.
    for reader in (keyring, crypto.FileKeyring(path)):
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(reader, dump, key_id="share-key-1", owner_id="employee-9")
        assert crypto.unwrap(reader, live, key_id="share-key-1", owner_id="employee-9") == dek
    raw = path.read_text()
    assert old_key not in raw
    entry = json.loads(raw)["kek"]["versions"][0]
    assert set(entry) == {"version", "created_at", "destroyed_at"}


def test_another_instance_sees_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    web, worker = crypto.FileKeyring(path), crypto.FileKeyring(path)
    dek = crypto.new_data_key()
    assert worker.add_version() == 2
    wrapped = crypto.wrap(web, dek, key_id="k", owner_id="o")
    assert wrapped.kek_version == 2
    assert crypto.unwrap(worker, wrapped, key_id="k", owner_id="o") == dek
    # Changes made through both instances survive: each rewrite starts from the file.
    web.add_signing_key()
    worker.add_version()
    assert len(crypto.FileKeyring(path).jwks()["keys"]) == 2
    assert crypto.FileKeyring(path).current_version() == 3


_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    import crypto
    while not os.path.exists({go!r}):
        time.sleep(0.001)
    keyring = crypto.FileKeyring({path!r})
    dek = bytes([{n}] * 32)
    wrapped = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
    print(json.dumps({{"kid": keyring.signing_key().kid, "blob": wrapped.blob.hex()}}))
    """
)


def test_processes_starting_at_once_create_one_keyring(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "keyring.json"
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(root=str(ROOT), go=str(go), path=str(path), n=n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    time.sleep(0.3)  # let every child reach the starting line
    go.touch()
    results = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        results.append(json.loads(out))

    assert len({r["kid"] for r in results}) == 1
    keyring = crypto.FileKeyring(path)
    assert [v.version for v in keyring.versions()] == [1]
    assert len(keyring.jwks()["keys"]) == 1
    for n, result in enumerate(results):
        wrapped = crypto.WrappedKey(1, bytes.fromhex(result["blob"]))
        assert crypto.unwrap(keyring, wrapped, key_id="k", owner_id="o") == bytes([n] * 32)
    leftovers = sorted(p.name for p in path.parent.iterdir())
    assert leftovers == ["keyring.json", "keyring.json.lock"]
    assert mode(path) == 0o600


def test_corrupt_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    crypto.FileKeyring(path)
    document = json.loads(path.read_text())
    secret = document["kek"]["versions"][0]["key"]
    document["kek"]["current"] = 5
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(crypto.KeyringError, match="corrupt") as caught:
        crypto.FileKeyring(path)
    assert secret not in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(crypto.KeyringError, match="corrupt"):
        crypto.FileKeyring(path)


def test_signing_keys_and_jwks(keyring: crypto.FileKeyring) -> None:
    first = keyring.signing_key()
    kid, signer = first
    assert kid == first.kid
    assert repr(signer) == "<Ed25519Signer>"
    [jwk] = keyring.jwks()["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    assert len(base64.urlsafe_b64decode(jwk["x"] + "==")) == 32
    assert "d" not in jwk

    second = keyring.add_signing_key()
    assert second != kid
    assert keyring.signing_key().kid == second
    assert [k["kid"] for k in keyring.jwks()["keys"]] == [kid, second]


def test_no_temporary_files_are_left_behind(keyring: crypto.FileKeyring) -> None:
    keyring.add_version()
    keyring.destroy_version(1)
    keyring.add_signing_key()
    names = sorted(p.name for p in keyring.path.parent.iterdir())
    assert names == ["keyring.json", "keyring.json.lock"]
    assert mode(keyring.path) == 0o600
