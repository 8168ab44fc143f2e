"""Raw c2sp.org/chunked-encryption, without our object header.

Takes the c2sp ``context`` as bytes.  The application uses crypto.seal / crypto.unseal; this is
for the published test vectors and for anyone who needs the plain format.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ._core import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    CHUNK_CIPHERTEXT_SIZE,
    CHUNK_SIZE,
    COMMITMENT_SIZE,
    MAX_CHUNKS,
    PREAMBLE_SIZE,
    SALT_SIZE,
    ChunkedAead,
    DerivedKeys,
    RangeSource,
    ciphertext_size,
    derive_keys,
    message_size,
)
from ._core import ChunkedDecryptor as Decryptor
from ._core import ChunkedEncryptor as Encryptor
from ._core import ChunkedRandomAccess as RandomAccess
from ._io import FailClosed, read_blocks

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "CHUNK_CIPHERTEXT_SIZE",
    "CHUNK_SIZE",
    "COMMITMENT_SIZE",
    "MAX_CHUNKS",
    "PREAMBLE_SIZE",
    "SALT_SIZE",
    "ChunkedAead",
    "Decryptor",
    "DerivedKeys",
    "Encryptor",
    "RandomAccess",
    "RangeSource",
    "ciphertext_size",
    "decrypt",
    "derive_keys",
    "encrypt",
    "message_size",
]


def _blocks(data: BinaryIO | Iterable[bytes] | bytes, span: int) -> Iterable[bytes | memoryview]:
    if isinstance(data, bytes | bytearray | memoryview):
        return [data]
    if hasattr(data, "readinto") or hasattr(data, "read"):
        return read_blocks(data, span)  # type: ignore[arg-type]
    return data


def encrypt(
    key: bytes,
    plaintext: BinaryIO | Iterable[bytes] | bytes,
    *,
    context: bytes = b"",
    aead: ChunkedAead = AEAD_AES_256_GCM,
    salt: bytes | None = None,
) -> Iterator[bytes]:
    """Yield salt || commitment || chunks."""
    encryptor = Encryptor(key, context, aead=aead, salt=salt)
    return _encrypt(encryptor, plaintext)


def _encrypt(
    encryptor: Encryptor, plaintext: BinaryIO | Iterable[bytes] | bytes
) -> Iterator[bytes]:
    for block in _blocks(plaintext, CHUNK_SIZE):
        yield from encryptor.iter_update(block)
    yield encryptor.finalize()


def decrypt(
    key: bytes,
    ciphertext: BinaryIO | Iterable[bytes] | bytes,
    *,
    context: bytes = b"",
    aead: ChunkedAead = AEAD_AES_256_GCM,
) -> Iterator[bytes]:
    """Yield authenticated plaintext; after a DecryptionError, keeps raising it."""
    decryptor = Decryptor(key, context, aead=aead)
    return FailClosed(_decrypt(decryptor, ciphertext))


def _decrypt(
    decryptor: Decryptor, ciphertext: BinaryIO | Iterable[bytes] | bytes
) -> Iterator[bytes]:
    for block in _blocks(ciphertext, CHUNK_CIPHERTEXT_SIZE):
        for plaintext in decryptor.iter_update(block):
            if plaintext:
                yield plaintext
    final = decryptor.finalize()
    if final:
        yield final
