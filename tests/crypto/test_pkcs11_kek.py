"""The PKCS#11 KEK provider against a real SoftHSM2 token: KEKs that never leave the HSM."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import pkcs11
import pytest

import crypto
from crypto.pkcs11_kek import LABEL_PREFIX, Pkcs11Kek


@pytest.fixture
def kek(hsm_token) -> Pkcs11Kek:
    return Pkcs11Kek(hsm_token.module, hsm_token.label, hsm_token.pin)


def test_wrap_unwrap_and_every_binding(kek: Pkcs11Kek) -> None:
    dek = crypto.new_data_key()
    wrapped = crypto.wrap(kek, dek, key_id="share-key-1", owner_id="employee-9")
    assert wrapped.kek_version == kek.current_version() == 1
    assert len(wrapped.blob) == 60 and dek not in wrapped.blob
    assert crypto.unwrap(kek, wrapped, key_id="share-key-1", owner_id="employee-9") == dek
    # The wrap is bound to the key id, the owner and the version; one flipped bit fails.
    for key_id, owner_id in (("share-key-2", "employee-9"), ("share-key-1", "employee-8")):
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(kek, wrapped, key_id=key_id, owner_id=owner_id)
    for position in (0, 20, 59):
        blob = bytearray(wrapped.blob)
        blob[position] ^= 1
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(
                kek, crypto.WrappedKey(1, bytes(blob)), key_id="share-key-1", owner_id="employee-9"
            )
    with pytest.raises(crypto.DecryptionError):
        kek.unwrap(1, b"short", b"")
    with pytest.raises(crypto.DecryptionError):
        kek.unwrap(9, wrapped.blob, b"")


def test_the_kek_cannot_leave_the_token(kek: Pkcs11Kek, hsm_token) -> None:
    lib = pkcs11.lib(str(hsm_token.module))
    # The provider has logged this process in; a session of the test's own shares that login.
    with lib.get_token(token_label=hsm_token.label).open() as session:
        key = session.get_key(pkcs11.ObjectClass.SECRET_KEY, label=f"{LABEL_PREFIX}1")
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.SENSITIVE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[pkcs11.Attribute.VALUE]
    # Another process without the PIN sees no KEK at all.
    probe = textwrap.dedent(
        f"""
        import pkcs11
        lib = pkcs11.lib({str(hsm_token.module)!r})
        with lib.get_token(token_label={hsm_token.label!r}).open() as session:
            found = session.get_objects({{pkcs11.Attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY}})
            print(len(list(found)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "0"


def test_rotate_rewrap_destroy_makes_an_old_dump_useless(kek: Pkcs11Kek, hsm_token) -> None:
    dek = crypto.new_data_key()
    live = crypto.wrap(kek, dek, key_id="k", owner_id="o")
    dump = crypto.WrappedKey(live.kek_version, bytes(live.blob))  # the copy in a backup
    assert kek.add_version() == 2
    assert [(v.version, v.state) for v in kek.versions()] == [(1, "retired"), (2, "active")]
    assert crypto.unwrap(kek, dump, key_id="k", owner_id="o") == dek  # retired still unwraps
    live = crypto.rewrap(kek, live, key_id="k", owner_id="o")
    assert live.kek_version == 2
    kek.destroy_version(1)
    infos = kek.versions()
    assert [(v.version, v.state) for v in infos] == [(1, "destroyed"), (2, "active")]
    assert infos[0].destroyed_at is not None and infos[0].created_at <= infos[0].destroyed_at
    # Neither this provider nor a new one (another process, after a restart) unwraps the dump.
    for reader in (kek, Pkcs11Kek(hsm_token.module, hsm_token.label, hsm_token.pin)):
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(reader, dump, key_id="k", owner_id="o")
        assert crypto.unwrap(reader, live, key_id="k", owner_id="o") == dek
    kek.destroy_version(1)  # idempotent
    with pytest.raises(crypto.KeyringError, match="active"):
        kek.destroy_version(2)
    with pytest.raises(crypto.KeyringError, match="no KEK version 7"):
        kek.destroy_version(7)


_PARENT_PROVIDER: Pkcs11Kek | None = None


def _unwrap_in_child(args) -> bytes:
    module, label, pin, version, blob = args
    return Pkcs11Kek(module, label, pin).unwrap(version, blob, b"aad")


def _unwrap_with_parents_provider(args) -> bytes:
    version, blob = args
    assert _PARENT_PROVIDER is not None
    return _PARENT_PROVIDER.unwrap(version, blob, b"aad")


def test_a_forked_worker_process_uses_the_token(kek: Pkcs11Kek, hsm_token) -> None:
    """gunicorn and Celery fork their workers: the library must be initialised again there."""
    global _PARENT_PROVIDER
    dek = crypto.new_data_key()
    version, blob = kek.wrap(dek, b"aad")
    _PARENT_PROVIDER = kek  # inherited by the forked child
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            args = (hsm_token.module, hsm_token.label, hsm_token.pin, version, blob)
            assert pool.map(_unwrap_in_child, [args]) == [dek]
            # The parent's provider, used before the fork, works in the child as well.
            assert pool.map(_unwrap_with_parents_provider, [(version, blob)]) == [dek]
    finally:
        _PARENT_PROVIDER = None
    assert kek.unwrap(version, blob, b"aad") == dek


def test_bad_token_or_pin_is_a_keyring_error_without_the_pin(hsm_token) -> None:
    with pytest.raises(crypto.KeyringError, match="not found"):
        Pkcs11Kek(hsm_token.module, "no-such-token", hsm_token.pin)
    with pytest.raises(crypto.KeyringError, match="wrong PIN") as caught:
        Pkcs11Kek(hsm_token.module, hsm_token.label, "wrong-pin-4242")
    assert "wrong-pin-4242" not in str(caught.value)
    provider = Pkcs11Kek(hsm_token.module, hsm_token.label, hsm_token.pin)
    assert hsm_token.pin not in repr(provider)
    assert os.path.basename(str(hsm_token.module)) in repr(provider)
