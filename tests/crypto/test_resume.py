"""Sealing in resumed pieces (crypto.Sealer.resume, chunked.Encryptor.resume).

A resumable upload seals each request's whole chunks and stops; a later request, maybe in
another process, rebuilds the sealer from the stored head and the data key. The pieces must
concatenate to exactly the object a one-shot seal with the same salt makes: checked here
against the published c2sp vectors and against crypto.seal for many ways of cutting.
"""

from __future__ import annotations

import os

import pytest
from crypto_testlib import ALL_VECTORS, Vector

import crypto
from crypto import chunked

CHUNK = chunked.CHUNK_SIZE
VALID = [v for v in ALL_VECTORS if v.valid]


def _pieces_chunked(vector: Vector, plaintext: bytes, cut_every: int, feed: int) -> bytes:
    """Encrypt plaintext in pieces of about cut_every bytes, each piece a fresh encryptor
    resumed from the stored preamble, feeding each piece in blocks of `feed` bytes."""
    salt = vector.ciphertext[:24]
    out = bytearray()
    encryptor = chunked.Encryptor(vector.key, vector.context, aead=vector.aead, salt=salt)
    position = 0
    while True:
        stop = min(position + cut_every, len(plaintext))
        piece = plaintext[position:stop]
        for start in range(0, len(piece), feed):
            out += encryptor.update(piece[start : start + feed])
        if stop == len(plaintext):
            out += encryptor.finalize()
            return bytes(out)
        dropped = encryptor.discard_pending()
        position = stop - dropped
        assert position % CHUNK == 0
        encryptor = chunked.Encryptor.resume(
            vector.key,
            vector.context,
            bytes(out[: chunked.PREAMBLE_SIZE]),
            position // CHUNK,
            aead=vector.aead,
        )


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
@pytest.mark.parametrize(("cut_every", "feed"), [(CHUNK, 1000), (CHUNK + 1, 7777), (40000, 40000)])
def test_vectors_sealed_in_resumed_pieces_are_exact(vector: Vector, cut_every: int, feed: int):
    plaintext = b"".join(chunked.decrypt(vector.key, vector.ciphertext, context=vector.context,
                                         aead=vector.aead))  # fmt: skip
    assert _pieces_chunked(vector, plaintext, cut_every, feed) == vector.ciphertext


def test_resume_refuses_a_preamble_of_another_key_or_context():
    key, other = os.urandom(32), os.urandom(32)
    preamble = chunked.Encryptor(key, b"ctx").update(b"")
    assert len(preamble) == chunked.PREAMBLE_SIZE
    chunked.Encryptor.resume(key, b"ctx", preamble, 3)
    with pytest.raises(crypto.DecryptionError):
        chunked.Encryptor.resume(other, b"ctx", preamble, 3)
    with pytest.raises(crypto.DecryptionError):
        chunked.Encryptor.resume(key, b"other", preamble, 3)
    tampered = bytearray(preamble)
    tampered[30] ^= 1
    with pytest.raises(crypto.DecryptionError):
        chunked.Encryptor.resume(key, b"ctx", bytes(tampered), 3)


def _seal_in_pieces(dek: bytes, plaintext: bytes, cuts: list[int], salt: bytes) -> list[bytes]:
    """What a resumable upload stores: one stored piece per request, each request ending at
    the cut, keeping only whole chunks unless it is the last."""
    ids = {"key_id": "key-1", "object_id": "obj-1"}
    head_size = crypto.sealed_head_size(**ids)
    pieces: list[bytes] = []
    offset = 0
    for index, cut in enumerate([*cuts, len(plaintext)]):
        if offset == 0:
            sealer = crypto.Sealer(dek, salt=salt, **ids)
        else:
            head = b"".join(pieces)[:head_size]
            sealer = crypto.Sealer.resume(dek, head, offset=offset, **ids)
        assert sealer.offset == offset
        out = sealer.update(plaintext[offset:cut])
        if index == len(cuts):
            out += sealer.finalize()
            pieces.append(out)
            break
        dropped = sealer.discard_pending()
        assert sealer.pending == 0
        assert sealer.offset == cut - dropped
        offset = sealer.offset
        if offset:  # a piece without a whole chunk stores nothing: the next starts afresh
            pieces.append(out)
    return pieces


@pytest.mark.parametrize(
    ("size", "cuts"),
    [
        (0, []),
        (5, [3]),
        (CHUNK, [CHUNK - 1]),
        (CHUNK, [CHUNK]),
        (3 * CHUNK + 17, [1, CHUNK + 5, 2 * CHUNK, 3 * CHUNK + 16]),
        (20 * CHUNK, [CHUNK * 7 + 3, CHUNK * 7 + 4, CHUNK * 19]),
        (1_000_003, [100_000, 250_001, 250_002, 999_999]),
    ],
)
def test_objects_sealed_in_resumed_pieces_equal_the_one_shot_seal(size: int, cuts: list[int]):
    dek, salt = crypto.new_data_key(), os.urandom(24)
    plaintext = os.urandom(size)
    pieces = _seal_in_pieces(dek, plaintext, cuts, salt)
    whole = b"".join(crypto.seal(dek, plaintext, key_id="key-1", object_id="obj-1", salt=salt))
    assert b"".join(pieces) == whole
    opened = b"".join(crypto.unseal(dek, iter(pieces), key_id="key-1", object_id="obj-1"))
    assert opened == plaintext


def test_a_resumed_sealer_refuses_the_head_of_another_object_or_key():
    dek = crypto.new_data_key()
    ids = {"key_id": "key-1", "object_id": "obj-1"}
    head = crypto.Sealer(dek, **ids).update(b"")
    crypto.Sealer.resume(dek, head, offset=CHUNK, **ids)
    with pytest.raises(crypto.DecryptionError):
        crypto.Sealer.resume(crypto.new_data_key(), head, offset=CHUNK, **ids)
    with pytest.raises(crypto.DecryptionError):
        crypto.Sealer.resume(dek, head, offset=CHUNK, key_id="key-1", object_id="obj-2")
    with pytest.raises(ValueError, match="whole number of chunks"):
        crypto.Sealer.resume(dek, head, offset=CHUNK + 1, **ids)
    with pytest.raises(ValueError, match="head"):
        crypto.Sealer.resume(dek, head[:-1], offset=CHUNK, **ids)
