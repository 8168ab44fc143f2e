"""Encryption for consent-replay: media objects, data keys, the keyring, signed receipts.

Callers use this namespace only (``crypto.seal``, ``crypto.unseal``, ...); the primitives live in
crypto._core, the one module that touches ``cryptography.hazmat``.  The wire formats are
documented byte by byte in crypto._core's docstring.

- Objects: ``seal`` / ``Sealer`` encrypt (``Sealer.resume`` continues an object sealed in
  pieces, e.g. a resumable upload), ``unseal`` decrypts a stream, ``RandomAccessReader`` /
  ``open_range`` decrypt byte ranges.  Every object is c2sp.org/chunked-encryption
  (AES-256-GCM, 16 KiB chunks) behind a small header naming its key id and object id.
- Data keys: ``new_data_key``, ``wrap`` / ``unwrap`` / ``rewrap`` under a ``KekProvider``
  (``FileKeyring`` by default), ``DataKeyCache``, and ``shred`` to destroy one.
- Tokens: ``sign`` / ``verify`` EdDSA JWTs (consent receipts and deletion certificates).

Any failure to decrypt or unwrap raises the one opaque ``DecryptionError``.
"""

from . import chunked
from ._core import DecryptionError
from .cache import DataKeyCache, default_cache
from .keyring import (
    FileKeyring,
    KekProvider,
    KekVersionInfo,
    KeyringError,
    KeyringPermissionError,
    SigningKey,
)
from .keys import WrappedKey, WrappedKeyStore, rewrap, shred, unwrap, unwrap_cached, wrap
from .objects import (
    BytesRangeSource,
    FileRangeSource,
    ObjectHeader,
    RandomAccessReader,
    RangeSource,
    Sealer,
    encode_header,
    new_data_key,
    open_range,
    open_to,
    parse_header,
    plaintext_size,
    seal,
    seal_to,
    sealed_head_size,
    sealed_size,
    unseal,
)
from .tokens import (
    CERTIFICATE_CLAIMS,
    CERTIFICATE_TYP,
    RECEIPT_CLAIMS,
    RECEIPT_TYP,
    TokenError,
    sign,
    verify,
)

__all__ = [
    "CERTIFICATE_CLAIMS",
    "CERTIFICATE_TYP",
    "RECEIPT_CLAIMS",
    "RECEIPT_TYP",
    "BytesRangeSource",
    "DataKeyCache",
    "DecryptionError",
    "FileKeyring",
    "FileRangeSource",
    "KekProvider",
    "KekVersionInfo",
    "KeyringError",
    "KeyringPermissionError",
    "ObjectHeader",
    "RandomAccessReader",
    "RangeSource",
    "Sealer",
    "SigningKey",
    "TokenError",
    "WrappedKey",
    "WrappedKeyStore",
    "chunked",
    "default_cache",
    "encode_header",
    "new_data_key",
    "open_range",
    "open_to",
    "parse_header",
    "plaintext_size",
    "rewrap",
    "seal",
    "seal_to",
    "sealed_head_size",
    "sealed_size",
    "shred",
    "sign",
    "unseal",
    "unwrap",
    "unwrap_cached",
    "verify",
    "wrap",
]
