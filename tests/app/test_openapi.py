"""``GET /api/openapi.json``: a valid OpenAPI 3 document of every endpoint of SPEC §5, with
request and response schemas and the one error shape."""

from __future__ import annotations

import re
import uuid

import pytest
from openapi_spec_validator import validate

from tests.conftest import create_person
from tests.media_helpers import assert_documented, documented_schema, error_code

# SPEC §5, as (method, path) with the paths written as the SPEC writes them.
SPEC_ENDPOINTS = [
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/recordings"),
    ("GET", "/api/v1/recordings"),
    ("GET", "/api/v1/recordings/{id}"),
    ("DELETE", "/api/v1/recordings/{id}"),
    ("POST", "/api/v1/recordings/{id}/shares"),
    ("GET", "/api/v1/shares"),
    ("GET", "/api/v1/shares/{id}"),
    ("POST", "/api/v1/shares/{id}/revoke"),
    ("GET", "/api/v1/shares/{id}/access-log"),
    ("GET", "/api/v1/shares/{id}/comments"),
    ("POST", "/api/v1/shares/{id}/comments"),
    ("GET", "/media/shares/{id}/video"),
    ("GET", "/media/shares/{id}/poster.jpg"),
    ("GET", "/media/shares/{id}/thumbnails.jpg"),
    ("GET", "/media/shares/{id}/waveform.json"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    # Not in the table but part of the same API (the player and the export).
    ("POST", "/api/v1/shares/{id}/views"),
    ("POST", "/api/v1/shares/{id}/views/{view_id}/heartbeat"),
    ("GET", "/api/v1/export"),
]
# Fields SPEC §5 fixes, by the schema that must carry them.
FIXED_FIELDS = {
    ("GET", "/api/v1/recordings/{id}", 200): {"id", "status", "title", "created_at", "expires_at"},
    ("POST", "/api/v1/recordings/{id}/shares", 202): {
        "id",
        "recording_id",
        "status",
        "progress",
        "error",
        "coach_ids",
        "purpose",
        "expires_at",
        "receipt",
    },
    ("GET", "/api/v1/shares/{id}", 200): {
        "id",
        "recording_id",
        "status",
        "progress",
        "error",
        "coach_ids",
        "purpose",
        "expires_at",
    },
    ("POST", "/api/v1/shares/{id}/revoke", 200): {
        "status",
        "revoked_at",
        "key_destroyed",
        "certificate",
    },
    ("GET", "/api/v1/shares/{id}/access-log", 200): {"events"},
    ("GET", "/api/v1/me", 200): {"id", "name", "role"},
}


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def find(spec: dict, method: str, spec_path: str) -> str | None:
    """The documented path that serves ``spec_path``: equal segments, or a parameter there
    (whose enum, when it has one, must allow the literal)."""
    wanted = spec_path.split("/")
    for path, item in spec["paths"].items():
        if method.lower() not in item:
            continue
        documented = path.split("/")
        if len(documented) != len(wanted):
            continue
        params = {
            p["name"]: p
            for p in [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
            if p.get("in") == "path"
        }
        ok = True
        for have, want in zip(documented, wanted, strict=True):
            name = have[1:-1] if re.fullmatch(r"\{[^}]+\}", have) else None
            if name is None:
                ok = ok and have == want
            elif not re.fullmatch(r"\{[^}]+\}", want):
                enum = params.get(name, {}).get("schema", {}).get("enum")
                ok = ok and (enum is None or want in enum)
        if ok:
            return path
    return None


def test_the_document_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)
    assert spec["info"]["title"] and spec["info"]["version"]


@pytest.mark.parametrize(("method", "path"), SPEC_ENDPOINTS)
def test_every_endpoint_of_the_spec_is_documented(spec, method, path):
    documented = find(spec, method, path)
    assert documented is not None, f"{method} {path} is not in the OpenAPI document"
    operation = spec["paths"][documented][method.lower()]
    assert operation.get("summary") or operation.get("description")
    responses = operation["responses"]
    assert any(code.startswith("2") for code in responses), responses
    # Every operation documents its errors in the one shape.
    assert "default" in responses
    error = documented_schema(spec, method, documented, "default")
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["required"]) == {"code", "message"}


def test_the_error_shape_is_a_component(spec):
    schemas = spec["components"]["schemas"]
    error = schemas["Error"]
    assert error["required"] == ["error"]
    body = error["properties"]["error"]
    assert body == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message"}
    assert schemas["ErrorBody"]["properties"]["code"]["type"] == "string"
    assert schemas["ErrorBody"]["properties"]["message"]["type"] == "string"
    # Explicitly listed 4xx/5xx responses that describe a body use it.
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status[0] not in "45":
                    continue
                content = (response.get("content") or {}).get("application/json")
                if content is not None or "$ref" in response:
                    schema = documented_schema(spec, method, path, status)
                    assert schema["required"] == ["error"], (method, path, status)


def test_request_bodies_are_described(spec):
    share = spec["paths"][find(spec, "POST", "/api/v1/recordings/{id}/shares")]["post"]
    body = share["requestBody"]["content"]["application/json"]["schema"]
    resolved = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"coach_ids", "purpose", "expires_in_days"} <= set(resolved["required"])
    assert {"trim", "include_customer_audio", "note"} <= set(resolved["properties"])

    upload = spec["paths"][find(spec, "POST", "/api/v1/recordings")]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    fields = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]["properties"]
    assert fields["screen"]["format"] == "binary" and fields["audio"]["format"] == "binary"
    assert {"title", "agent_channel", "customer_informed"} <= set(fields)

    comment = spec["paths"][find(spec, "POST", "/api/v1/shares/{id}/comments")]["post"]
    schema = comment["requestBody"]["content"]["application/json"]["schema"]
    resolved = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert set(resolved["required"]) == {"at_s", "body"}


@pytest.mark.parametrize(("method", "path", "status"), sorted(FIXED_FIELDS))
def test_responses_carry_the_fields_the_spec_fixes(spec, method, path, status):
    documented = find(spec, method, path)
    schema = documented_schema(spec, method, documented, status)
    assert FIXED_FIELDS[(method, path, status)] <= set(schema["properties"]), schema
    if path.endswith("access-log"):
        event = schema["properties"]["events"]["items"]
        assert {"at", "actor_id", "action"} <= set(event["properties"])


def test_the_media_endpoint_is_described(spec):
    path = find(spec, "GET", "/media/shares/{id}/video")
    operation = spec["paths"][path]["get"]
    kinds = next(p for p in operation["parameters"] if p["in"] == "path" and p["name"] == "kind")
    assert set(kinds["schema"]["enum"]) == {
        "video",
        "poster.jpg",
        "thumbnails.jpg",
        "waveform.json",
    }
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "Range" in headers
    responses = operation["responses"]
    assert {"200", "206", "404", "410", "416"} <= set(responses)
    assert "video/mp4" in responses["206"]["content"]
    for status in ("404", "410", "416"):
        assert documented_schema(spec, "GET", path, status)["required"] == ["error"]


def test_security_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    for path in ("/healthz", "/.well-known/jwks.json"):
        assert spec["paths"][path]["get"].get("security") == [], path


def test_real_answers_match_the_document(client, rt, spec):
    """What the API answers validates against what the document says (errors included)."""
    person = create_person(rt, "employee")
    me = client.get("/api/v1/me", headers=person.headers)
    assert me.status_code == 200
    assert_documented(spec, "GET", "/api/v1/me", me)

    missing = client.get(f"/api/v1/shares/{uuid.uuid4()}", headers=person.headers)
    assert error_code(missing, 404) == "not_found"
    assert_documented(spec, "GET", "/api/v1/shares/{share_id}", missing)

    anonymous = client.get("/api/v1/shares")
    assert error_code(anonymous, 401) == "unauthenticated"
    assert_documented(spec, "GET", "/api/v1/shares", anonymous)

    media = client.get(f"/media/shares/{uuid.uuid4()}/video", headers=person.headers)
    assert error_code(media, 404) == "not_found"
    assert_documented(spec, "GET", "/media/shares/{share_id}/{kind}", media)

    listed = client.get("/api/v1/shares", headers=person.headers)
    assert listed.status_code == 200 and listed.get_json() == {"shares": []}
    assert_documented(spec, "GET", "/api/v1/shares", listed)

    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200 and jwks.get_json()["keys"]
