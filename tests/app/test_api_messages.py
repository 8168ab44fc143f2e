"""API error messages are in the reader's language (SPEC §14): every refusal the code raises
carries a message marked for the catalog, so the web edge can answer it in Norwegian."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

from app.services.errors import _NOT_FOUND

ROOT = Path(__file__).resolve().parents[2]
NB = {"Accept-Language": "nb-NO,nb;q=0.9"}
# The refusals: DomainError and HttpError, and every class derived from them in app/; and the
# redaction validator's refusal, whose message the share API passes on as it is.
BASES = {"DomainError", "HttpError", "RedactionInvalid"}
MESSAGE_ARGUMENT = {"RedactionInvalid": 2}  # (index, field, problem); the others: (message, …)


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text()) for path in sorted((ROOT / "app").rglob("*.py"))}


def _refusal_classes(trees: dict[Path, ast.Module]) -> set[str]:
    names, grown = set(BASES), True
    while grown:
        grown = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    parents = {
                        getattr(base, "id", getattr(base, "attr", None)) for base in node.bases
                    }
                    if parents & names:
                        names.add(node.name)
                        grown = True
    return names


def _is_bare_text(node: ast.expr) -> bool:
    """A literal or f-string the catalog never sees (a ``_()`` call or a variable is fine)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_bare_text(node.left) or _is_bare_text(node.right)
    return False


def bare_refusal_messages(trees: dict[Path, ast.Module]) -> list[str]:
    refusals = _refusal_classes(trees)
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", None))
            if called not in refusals:
                continue
            if called == "NotFound":  # takes what is missing; the messages are in _NOT_FOUND
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: NotFound({ast.unparse(what)})"
                    for what in node.args
                    if _is_bare_text(what)
                    and not (isinstance(what, ast.Constant) and what.value in _NOT_FOUND)
                ]
                continue
            position = MESSAGE_ARGUMENT.get(called, 0)
            messages = node.args[position : position + 1]
            messages += [kw.value for kw in node.keywords if kw.arg in ("message", "problem")]
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {called}({ast.unparse(message)[:60]})"
                for message in messages
                if _is_bare_text(message)
            ]
    return found


def test_every_refusal_message_is_marked_for_the_catalog():
    assert bare_refusal_messages(_trees()) == [], "wrap the message in _() and translate it"


def test_the_check_finds_a_bare_message():
    tree = ast.parse(
        "class Oops(InvalidRequest): pass\n"
        "def f(n):\n"
        "    raise Oops(f'{n} is wrong')\n"
        "def g():\n"
        "    raise Conflict(_('Fine.'))\n"
        "    raise NotFound('recording')\n"
        "    raise NotFound('thing')\n"
        "    raise RedactionInvalid(1, 'box', 'is bare')\n"
        "    raise RedactionInvalid(1, 'box', _('is marked'))\n"
    )
    with_base = ast.parse(
        "class InvalidRequest(DomainError): pass\nclass Conflict(DomainError): pass\n"
        "class NotFound(DomainError): pass"
    )
    found = bare_refusal_messages({ROOT / "app" / "x.py": tree, ROOT / "app" / "y.py": with_base})
    assert found == [
        "app/x.py:3: Oops(f'{n} is wrong')",
        "app/x.py:7: NotFound('thing')",
        "app/x.py:8: RedactionInvalid('is bare')",
    ]


def test_upload_and_body_refusals_answer_in_norwegian(client, make_person):
    person = make_person("employee")
    headers = {**person.headers, **NB}
    not_json = client.post(
        "/api/v1/recordings", data="{", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.get_json()["error"]["message"].startswith("Send et JSON-objekt")
    created = client.post(
        "/api/v1/uploads", headers={**headers, "Tus-Resumable": "1.0.0", "Upload-Length": "100"}
    )
    assert created.status_code == 201
    url = created.headers["Location"]
    tus = {**headers, "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    wrong_offset = client.patch(url, data=b"x" * 10, headers={**tus, "Upload-Offset": "5"})
    assert wrong_offset.status_code == 409
    assert wrong_offset.get_json()["error"] == {
        "code": "offset_mismatch",
        "message": "Denne opplastingen er kommet til byte 0, ikke 5: spør etter posisjonen "
        "(HEAD) og fortsett derfra.",
    }
    english = client.patch(
        url,
        data=b"x" * 10,
        headers={
            **person.headers,
            **{k: v for k, v in tus.items() if k != "Accept-Language"},
            "Upload-Offset": "5",
        },
    )
    assert english.get_json()["error"]["message"].startswith("This upload is at byte 0, not 5")


def _validator_messages() -> list[str]:
    """What marshmallow itself says for the validators this API uses (so a new marshmallow
    that words a message differently fails here rather than answering in English)."""
    from marshmallow import Schema, ValidationError, fields, validate

    class Probe(Schema):
        needed = fields.String(required=True)
        number = fields.Integer()
        real = fields.Float()
        flag = fields.Boolean()
        ident = fields.UUID()
        names = fields.List(fields.String())
        text = fields.String()
        when = fields.DateTime()
        email = fields.Email()

    bad = {"number": "x", "real": "x", "flag": "x", "ident": "x", "names": 3, "text": 3}
    bad |= {"when": "x", "email": "x", "extra": 1}
    try:
        Probe().load(bad)
    except ValidationError as error:
        found = [m for ms in error.normalized_messages().values() for m in ms]
    checks = [
        (validate.Length(min=1, max=10), ""),
        (validate.Length(min=2), "a"),
        (validate.Length(max=2), "abc"),
        (validate.OneOf(["a", "b"]), "c"),
        (validate.Range(min=1, max=5), 9),
        (validate.Range(min=1), 0),
        (validate.Range(max=5), 9),
        (validate.Range(min=0, min_inclusive=False), 0),
    ]
    for validator, value in checks:
        try:
            validator(value)
        except ValidationError as error:
            found += error.messages
    return found


def test_the_validators_messages_are_translated():
    from app.services import i18n
    from app.validation_messages import translate_validation

    messages = _validator_messages()
    assert len(messages) >= 18
    with i18n.language("nb"):
        untranslated = [m for m in messages if translate_validation(m) == m]
        length = translate_validation("Length must be between 1 and 10.")
    assert untranslated == []
    assert length == "Lengden må være mellom 1 og 10."
    assert translate_validation("Something of our own.") == "Something of our own."


def test_field_refusals_answer_in_norwegian(client, make_person):
    person = make_person("employee")
    response = client.post(
        f"/api/v1/recordings/{uuid.uuid4()}/shares",
        json={"coach_ids": [], "expires_in_days": 2.5},
        headers={**person.headers, **NB},
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["details"]["fields"]["purpose"] == ["Dette feltet må fylles ut."]
    assert error["details"]["fields"]["coach_ids"] == ["Lengden må være mellom 1 og 10."]
    assert "Missing data" not in error["message"] and "Length must" not in error["message"]


# --- what the worker writes about a file or a share ----------------------------------------------

WORKER_CALLS = {"MediaRejected", "MediaTimeout", "fail_share", "record_suggestions"}


def _sample_values(template: str) -> dict[str, str]:
    from app.services.job_messages import PARTS

    names = re.findall(r"%\((\w+)\)s", template)
    return {name: "screen" if name == "part" else f"<{name}>" for name in names} | (
        {"part": next(iter(PARTS))} if "part" in names else {}
    )


def test_every_worker_message_comes_back_in_norwegian():
    from app.services import i18n, job_messages

    templates = job_messages._STORED.templates
    assert len(templates) >= 25
    stuck = []
    for template in templates:
        english = job_messages.say(template, **_sample_values(template))
        with i18n.language("nb"):
            norwegian = job_messages.in_reader_language(english)
        with i18n.language("en"):
            assert job_messages.in_reader_language(english) == english
        if norwegian == english or any(
            v in english and v not in norwegian
            for v in _sample_values(template).values()
            if v != "screen"
        ):
            stuck.append(english)
    assert stuck == []
    with i18n.language("nb"):
        damaged = job_messages.say(job_messages.DAMAGED, part="audio")
        assert job_messages.in_reader_language(damaged) == (
            "Det er en skade i lydfilen: den kan ikke leses helt til slutten."
        )
        assert job_messages.in_reader_language("Something else.") == "Something else."
        assert job_messages.in_reader_language(None) is None


def test_the_worker_writes_only_messages_the_catalog_knows():
    """A literal the worker hands a person (a rejected file, a failed share or suggestion job)
    must be one of job_messages' templates, or it would stay English for a Norwegian reader."""
    from app.services import i18n, job_messages

    unknown = []
    for path in sorted((ROOT / "worker").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            called = getattr(getattr(node, "func", None), "id", None) or getattr(
                getattr(node, "func", None), "attr", None
            )
            if not isinstance(node, ast.Call) or called not in WORKER_CALLS:
                continue
            for arg in list(node.args) + [kw.value for kw in node.keywords if kw.arg == "error"]:
                if isinstance(arg, ast.JoinedStr):
                    unknown.append(f"{path.name}:{node.lineno}: {ast.unparse(arg)[:60]}")
                elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if arg.value in ("failed", "ready"):  # record_suggestions' status
                        continue
                    with i18n.language("nb"):
                        if job_messages.in_reader_language(arg.value) == arg.value:
                            unknown.append(f"{path.name}:{node.lineno}: {arg.value[:60]}")
    assert unknown == []


def test_a_failed_share_is_explained_in_the_readers_language(
    rt, client, make_person, make_recording, make_share
):
    from app.models import Share
    from app.services import job_messages, lifecycle

    employee, coach = make_person("employee"), make_person("coach")
    share = make_share(employee, make_recording(employee), coach)
    english = job_messages.say(job_messages.DAMAGED, part="screen")
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share["id"]))
        if row.status.value == "processing":
            assert lifecycle.share_failed(session, row, english)
        else:  # the worker was quicker: set the same message on the row as it would
            row.error = english
    answers = {
        language: client.get(
            f"/api/v1/shares/{share['id']}",
            headers={**employee.headers, "Accept-Language": language},
        ).get_json()["error"]
        for language in ("en", "nb")
    }
    assert answers == {
        "en": english,
        "nb": "Det er en skade i skjermfilen: den kan ikke leses helt til slutten.",
    }
