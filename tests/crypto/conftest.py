"""Fixtures for the crypto tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import crypto


@pytest.fixture
def keyring(tmp_path: Path) -> crypto.FileKeyring:
    return crypto.FileKeyring(tmp_path / "keys" / "keyring.json")
