"""The package's shape: one module touches hazmat, the public names exist, nothing leaks keys."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import crypto

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", ".git", "node_modules", "build", "dist", "__pycache__", ".hypothesis"}


def python_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.py"):
        if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
            files.append(path)
    return files


def imports_hazmat(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name.startswith("cryptography.hazmat") for name in names):
            return True
    return False


def test_only_core_imports_hazmat() -> None:
    files = python_files()
    assert ROOT / "crypto" / "_core.py" in files
    offenders = sorted(str(p.relative_to(ROOT)) for p in files if imports_hazmat(p))
    assert offenders == ["crypto/_core.py"]


def test_public_api() -> None:
    required = [
        "seal",
        "unseal",
        "open_range",
        "Sealer",
        "RandomAccessReader",
        "RangeSource",
        "FileRangeSource",
        "BytesRangeSource",
        "sealed_size",
        "plaintext_size",
        "new_data_key",
        "wrap",
        "unwrap",
        "rewrap",
        "WrappedKey",
        "shred",
        "WrappedKeyStore",
        "DataKeyCache",
        "default_cache",
        "KekProvider",
        "FileKeyring",
        "sign",
        "verify",
        "TokenError",
        "DecryptionError",
        "RECEIPT_TYP",
        "CERTIFICATE_TYP",
        "chunked",
    ]
    for name in required:
        assert name in crypto.__all__, name
        assert getattr(crypto, name) is not None
    assert set(crypto.__all__) <= set(dir(crypto))
    assert not hasattr(crypto, "open")  # no name shadows a builtin
    assert crypto.RECEIPT_TYP == "consent+jwt"
    assert crypto.CERTIFICATE_TYP == "deletion+jwt"
    assert list(inspect.signature(crypto.seal).parameters) == [
        "dek",
        "plaintext",
        "key_id",
        "object_id",
        "salt",
    ]
    assert list(inspect.signature(crypto.RandomAccessReader.iter_range).parameters) == [
        "self",
        "start",
        "stop",
        "batch_chunks",
    ]


def test_the_wire_format_is_documented_in_core() -> None:
    doc = crypto._core.__doc__ or ""
    for term in ("CRPL", "c2sp.org/chunked-encryption@v1+", "16400", "nonce", "u32 kek_version"):
        assert term in doc


def test_reprs_do_not_show_key_material(keyring: crypto.FileKeyring) -> None:
    dek = crypto.new_data_key()
    wrapped = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
    _, signer = keyring.signing_key()
    for thing in (
        wrapped,
        signer,
        keyring,
        crypto.DataKeyCache(),
        crypto.Sealer(dek, key_id="k", object_id="o"),
    ):
        text = repr(thing)
        assert dek.hex() not in text and wrapped.blob.hex() not in text
        assert signer.private_bytes().hex() not in text
    error = crypto.DecryptionError()
    assert str(error) == "ciphertext is invalid or the key is wrong"
