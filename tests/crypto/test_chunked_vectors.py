"""The 70 Wycheproof c2sp.org/chunked-encryption vectors, through every way in.

Semantics in tests/crypto/vectors/README.md: streaming decryption may release at most the
valid prefix (msgLength bytes) and must then keep failing; random access gives the same
verdicts for a whole-message read, and authenticating the length from the final chunk passes
for invalid vectors only when they are flagged ValidFinalChunk; encryption with the salt taken
from the ciphertext reproduces it exactly.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from crypto_testlib import ALL_VECTORS, RecordingSource, Vector, split

import crypto
from crypto import chunked

KEY_OK = [v for v in ALL_VECTORS if "InvalidKeySize" not in v.flags]
BAD_KEY_SIZE = [v for v in ALL_VECTORS if "InvalidKeySize" in v.flags]
VALID = [v for v in ALL_VECTORS if v.valid]
INVALID = [v for v in KEY_OK if not v.valid]
HEADER_FAILURES = [v for v in KEY_OK if "HeaderFailure" in v.flags]
DERIVED = [v for v in ALL_VECTORS if "aeadKey" in v.case]
# Streaming input split into whole chunks plus one byte, odd sizes, and everything at once.
SPLITS = [1_000_000_000, 16401, 7777, 1000]


def ids(vectors: list[Vector]) -> list[str]:
    return [v.name for v in vectors]


def test_the_vector_files_are_complete() -> None:
    assert len(ALL_VECTORS) == 70
    assert len(VALID) == 20
    assert len(BAD_KEY_SIZE) == 4


def stream_decrypt(vector: Vector, piece: int) -> tuple[bytes, Exception | None]:
    """Feed the ciphertext in pieces; return what was released and the error, if any."""
    decryptor = chunked.Decryptor(vector.key, vector.context, aead=vector.aead)
    released = bytearray()
    try:
        for block in split(vector.ciphertext, piece):
            for plaintext in decryptor.iter_update(block):
                released += plaintext
        released += decryptor.finalize()
    except crypto.DecryptionError as error:
        return bytes(released), error
    return bytes(released), None


@pytest.mark.parametrize("vector", DERIVED, ids=ids(DERIVED))
def test_key_derivation_matches(vector: Vector) -> None:
    salt = vector.ciphertext[:24]
    derived = chunked.derive_keys(vector.key, salt, vector.context, vector.aead)
    assert derived.aead_key.hex() == vector.case["aeadKey"]
    assert derived.base_nonce.hex() == vector.case["baseNonce"]
    if vector.valid:
        assert derived.commitment == vector.ciphertext[24:56]


@pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
def test_valid_vector_streams_and_reencrypts_exactly(vector: Vector) -> None:
    plaintext = b""
    for piece in SPLITS:
        released, error = stream_decrypt(vector, piece)
        assert error is None
        assert len(released) == vector.msg_length
        assert hashlib.sha512(released).hexdigest() == vector.case["msgSha512"]
        plaintext = released

    ciphertext = vector.ciphertext
    salt = ciphertext[:24]
    whole = b"".join(
        chunked.encrypt(vector.key, plaintext, context=vector.context, aead=vector.aead, salt=salt)
    )
    assert whole == ciphertext
    # The push-style encryptor, fed in awkward pieces, produces the same bytes.
    encryptor = chunked.Encryptor(vector.key, vector.context, aead=vector.aead, salt=salt)
    pieces = [encryptor.update(block) for block in split(plaintext, 5000)]
    assert b"".join(pieces) + encryptor.finalize() == ciphertext
    assert chunked.ciphertext_size(len(plaintext)) == len(ciphertext)
    assert chunked.message_size(len(ciphertext)) == len(plaintext)

    decrypted = b"".join(
        chunked.decrypt(
            vector.key, io.BytesIO(ciphertext), context=vector.context, aead=vector.aead
        )
    )
    assert decrypted == plaintext


@pytest.mark.parametrize("vector", INVALID, ids=ids(INVALID))
@pytest.mark.parametrize("piece", SPLITS)
def test_invalid_vector_streaming_releases_only_the_valid_prefix(
    vector: Vector, piece: int
) -> None:
    released, error = stream_decrypt(vector, piece)
    assert isinstance(error, crypto.DecryptionError)
    # This decryptor releases every authenticated chunk before failing: exactly the prefix.
    assert len(released) == vector.msg_length
    if released:
        assert hashlib.sha512(released).hexdigest() == vector.case["msgSha512"]


@pytest.mark.parametrize("vector", INVALID, ids=ids(INVALID))
def test_invalid_vector_keeps_failing(vector: Vector) -> None:
    stream = chunked.decrypt(
        vector.key, vector.ciphertext, context=vector.context, aead=vector.aead
    )
    released = bytearray()
    with pytest.raises(crypto.DecryptionError):
        for block in stream:
            released += block
    assert len(released) <= vector.msg_length
    for _ in range(3):
        with pytest.raises(crypto.DecryptionError):
            next(stream)

    decryptor = chunked.Decryptor(vector.key, vector.context, aead=vector.aead)
    with pytest.raises(crypto.DecryptionError):
        decryptor.update(vector.ciphertext)
        decryptor.finalize()
    with pytest.raises(crypto.DecryptionError):
        decryptor.update(b"")
    with pytest.raises(crypto.DecryptionError):
        decryptor.finalize()


@pytest.mark.parametrize("vector", HEADER_FAILURES, ids=ids(HEADER_FAILURES))
def test_header_failures_fail_before_any_chunk(vector: Vector) -> None:
    ciphertext = vector.ciphertext
    decryptor = chunked.Decryptor(vector.key, vector.context, aead=vector.aead)
    with pytest.raises(crypto.DecryptionError):
        if len(ciphertext) >= 56:
            # The salt and commitment alone are enough to refuse.
            decryptor.update(ciphertext[:56])
        else:
            decryptor.update(ciphertext)
            decryptor.finalize()

    source = RecordingSource(ciphertext)
    with pytest.raises(crypto.DecryptionError):
        chunked.RandomAccess(vector.key, source, context=vector.context, aead=vector.aead)
    assert all(offset + length <= 56 for offset, length in source.reads)


@pytest.mark.parametrize("vector", BAD_KEY_SIZE, ids=ids(BAD_KEY_SIZE))
def test_invalid_key_size_is_rejected_everywhere(vector: Vector) -> None:
    ciphertext = vector.ciphertext
    with pytest.raises(ValueError, match="key"):
        chunked.Encryptor(vector.key, vector.context, aead=vector.aead)
    with pytest.raises(ValueError, match="key"):
        chunked.Decryptor(vector.key, vector.context, aead=vector.aead)
    with pytest.raises(ValueError, match="key"):
        chunked.RandomAccess(
            vector.key,
            crypto.BytesRangeSource(ciphertext),
            context=vector.context,
            aead=vector.aead,
        )
    with pytest.raises(ValueError, match="key"):
        chunked.derive_keys(vector.key, ciphertext[:24], vector.context, vector.aead)


@pytest.mark.parametrize("vector", KEY_OK, ids=ids(KEY_OK))
def test_random_access_whole_read_and_length_check(vector: Vector) -> None:
    source = crypto.BytesRangeSource(vector.ciphertext)
    try:
        reader = chunked.RandomAccess(vector.key, source, context=vector.context, aead=vector.aead)
    except crypto.DecryptionError:
        assert not vector.valid
        return

    if vector.valid:
        whole = reader.read(0, reader.size)
        assert hashlib.sha512(whole).hexdigest() == vector.case["msgSha512"]
        assert reader.verify_length() == vector.msg_length
        for batch in (1, 3, 64):
            assert b"".join(reader.iter_range(0, reader.size, batch)) == whole
        return

    with pytest.raises(crypto.DecryptionError):
        reader.read(0, reader.size)
    fresh = chunked.RandomAccess(vector.key, source, context=vector.context, aead=vector.aead)
    if "ValidFinalChunk" in vector.flags:
        assert fresh.verify_length() == fresh.size
    else:
        with pytest.raises(crypto.DecryptionError):
            fresh.verify_length()
