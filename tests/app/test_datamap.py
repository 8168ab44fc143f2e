"""The data map stays true: every column, store prefix, object kind, e-mail and log value the
code has is described, nothing described is gone, and what it claims about protection holds."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from sqlalchemy import LargeBinary

from app.logs import configure_logging
from app.models import Base
from app.services import datamap, ingest, mail, playback
from tests.app.test_cli import run_cli
from tests.conftest import ROOT

SOURCES = [p for d in ("app", "worker") for p in (ROOT / d).rglob("*.py")]
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
SEALED = {datamap.SHARE_KEY, datamap.RECORDING_KEY, datamap.UPLOAD_KEY, datamap.FEEDBACK_KEY}


def _columns() -> set[str]:
    return {f"{t.name}.{c.name}" for t in Base.metadata.tables.values() for c in t.columns}


def test_every_column_is_described_and_nothing_described_is_gone():
    missing = sorted(_columns() - set(datamap.COLUMNS))
    stale = sorted(set(datamap.COLUMNS) - _columns())
    assert not missing, f"columns missing from app/services/datamap.py: {missing}"
    assert not stale, f"the data map describes columns that are gone: {stale}"
    assert set(datamap.TABLES) == set(Base.metadata.tables)


def test_what_is_called_sealed_is_a_sealed_binary_column():
    for name, entry in datamap.COLUMNS.items():
        table, column = name.split(".")
        col = Base.metadata.tables[table].columns[column]
        if entry.protection in SEALED:
            assert isinstance(col.type, LargeBinary), name
            assert column.endswith("_sealed"), name
        if column.endswith("_sealed"):
            assert entry.protection in SEALED, f"{name} is sealed but the map says otherwise"
            assert entry.personal, name


def test_every_object_kind_is_described():
    kinds = set(playback.SHARE_KINDS.values()) | set(ingest.FILE_FIELDS)
    assert kinds == set(datamap.OBJECT_KINDS)


def _literal_prefixes() -> set[str]:
    """Prefixes of object names in the code: f-strings that start 'word/', and constants
    named *PREFIX that hold one."""
    found = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr) and len(node.values) > 1:
                first = node.values[0]
                if isinstance(first, ast.Constant) and re.fullmatch(r"[a-z_]+/", str(first.value)):
                    found.add(first.value)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(n.endswith("PREFIX") for n in names) and re.fullmatch(
                    r"[a-z_]+/", str(node.value.value)
                ):
                    found.add(node.value.value)
    return found


def test_every_store_prefix_is_described():
    prefixes = _literal_prefixes()
    assert {"recordings/", "shares/", "uploads/"} <= prefixes  # the scan itself works
    assert prefixes <= set(datamap.STORE_PREFIXES), prefixes - set(datamap.STORE_PREFIXES)


def test_every_email_kind_is_described():
    assert set(mail.SUBJECTS) == set(datamap.EMAILS)


def _log_values() -> dict[str, str]:
    """Every value a logging call interpolates, as written, with where it is."""
    found: dict[str, str] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            if (
                node.func.attr in LOG_METHODS
                and isinstance(target, ast.Name)
                and (target.id in {"log", "logger", "logging"})
            ):
                for arg in node.args[1:]:
                    found.setdefault(ast.unparse(arg), f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_logged_value_is_described():
    values = _log_values()
    assert "share_id" in values  # the scan itself works
    missing = {v: where for v, where in values.items() if v not in datamap.LOG_VALUES}
    assert not missing, f"log values missing from app/services/datamap.LOG_VALUES: {missing}"
    stale = set(datamap.LOG_VALUES) - set(values)
    assert not stale, f"the data map describes log values no code logs: {stale}"


def test_every_field_of_a_log_line_is_described():
    import logging

    configure_logging("INFO")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_consent_replay", 0))
    fields = set(re.findall(r"%\((\w+)\)", handler.formatter._fmt))  # type: ignore[union-attr]
    assert fields and fields <= set(datamap.LOG_FIELDS)


def test_markdown_and_json_carry_every_item():
    text = datamap.markdown()
    data = datamap.as_json()
    for key, (_title, entries) in datamap.SECTIONS.items():
        assert set(data[key]) == set(entries)
        for name in entries:
            assert f"`{name}`" in text
    assert data["columns"]["shares.purpose_sealed"]["protection"] == datamap.SHARE_KEY


def test_the_cli_prints_the_map_in_markdown_and_json(tmp_path):
    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    markdown = run_cli(env, "data-map")
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout == datamap.markdown()
    as_json = run_cli(env, "data-map", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == datamap.as_json()


def test_the_privacy_documents_carry_the_generated_map():
    """docs/PRIVACY.md and docs/PERSONVERN.md include the map as generated (`make docs`)."""
    table = datamap.tables(3)
    for doc in ("PRIVACY.md", "PERSONVERN.md"):
        text = (ROOT / "docs" / doc).read_text()
        assert table in text, f"docs/{doc}: the data map is stale; run `make docs`"


def _test_names() -> set[str]:
    names = set()
    for path in Path(ROOT / "tests").rglob("test_*.py"):
        rel = path.relative_to(ROOT).as_posix()
        names.add(rel)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(f"{rel}::{node.name}")
    return names


def test_every_test_the_privacy_documents_name_exists():
    known = _test_names()
    for doc in ("PRIVACY.md", "PERSONVERN.md"):
        cited = set(
            re.findall(r"`(tests/[\w/]+\.py(?:::\w+)?)`", (ROOT / "docs" / doc).read_text())
        )
        assert cited, f"docs/{doc} names no test"
        assert cited <= known, f"docs/{doc} names tests that do not exist: {cited - known}"


def test_the_two_language_versions_agree():
    """Same sections, same tests cited, same [employer] items, the same generated map."""
    en, nb = ((ROOT / "docs" / d).read_text() for d in ("PRIVACY.md", "PERSONVERN.md"))
    sections = [re.findall(r"^## (\d+)\.", t, re.M) for t in (en, nb)]
    assert sections[0] == sections[1] and len(sections[0]) >= 12
    cited = [set(re.findall(r"`(tests/[\w/]+\.py(?:::\w+)?)`", t)) for t in (en, nb)]
    assert cited[0] == cited[1]
    assert en.count("**[employer]**") == nb.count("**[arbeidsgiver]**") > 0
    assert all(r"`CR_" in t for t in (en, nb))
