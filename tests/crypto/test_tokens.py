"""EdDSA receipts and certificates: a valid round trip, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

import crypto
from crypto.tokens import CERTIFICATE_CLAIMS, RECEIPT_CLAIMS


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def receipt_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "https://replay.example",
        "sub": "employee-9",
        "jti": "share-1",
        "iat": now,
        "exp": now + 7 * 86400,
        "recording": "recording-3",
        "grantees": ["coach-4"],
        "purpose": "coaching on call openings",
        "scope": ["view", "comment"],
        "channels": ["screen", "agent_audio"],
        "trim": {"start_s": 10, "end_s": 70},
        "media_sha256": "ab" * 32,
        "policy": "consent-text-v3",
        "revocation_url": "https://replay.example/api/v1/shares/share-1/revoke",
        "key_id": "key-1",
    }
    claims.update(overrides)
    return claims


def verify_receipt(token: str, jwks: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return crypto.verify(token, jwks, typ=crypto.RECEIPT_TYP, required=RECEIPT_CLAIMS, **kwargs)


def refusal(token: str, jwks: dict[str, Any], **kwargs: Any) -> crypto.TokenError:
    with pytest.raises(crypto.TokenError) as caught:
        verify_receipt(token, jwks, **kwargs)
    assert str(caught.value)
    return caught.value


def test_receipt_round_trip(keyring: crypto.FileKeyring) -> None:
    claims = receipt_claims()
    token = crypto.sign(keyring, claims, typ=crypto.RECEIPT_TYP)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "consent+jwt", "kid": keyring.signing_key().kid}
    jwks = json.loads(json.dumps(keyring.jwks()))  # as fetched from /.well-known/jwks.json
    assert verify_receipt(token, jwks) == claims


def test_certificate_round_trip(keyring: crypto.FileKeyring) -> None:
    now = int(time.time())
    claims = {
        "iss": "https://replay.example",
        "sub": "employee-9",
        "jti": "cert-1",
        "iat": now,
        "exp": now + 10 * 365 * 86400,
        "subject_type": "share",
        "subject_id": "share-1",
        "key_id": "key-1",
        "destroyed_at": "2025-01-01T00:00:00Z",
        "objects_deleted": ["shares/share-1/obj-1"],
        "absence_check": {"method": "stat", "all_absent": True},
    }
    assert set(claims) == set(CERTIFICATE_CLAIMS)
    token = crypto.sign(keyring, claims, typ=crypto.CERTIFICATE_TYP)
    assert (
        crypto.verify(
            token, keyring.jwks(), typ=crypto.CERTIFICATE_TYP, required=CERTIFICATE_CLAIMS
        )
        == claims
    )
    # A certificate is not a receipt, and the other way round.
    assert refusal(token, keyring.jwks()).reason == "wrong_type"


def test_tampered_payload(keyring: crypto.FileKeyring) -> None:
    token = crypto.sign(keyring, receipt_claims(), typ=crypto.RECEIPT_TYP)
    header, _, signature = token.split(".")
    forged = b64url_json(receipt_claims(grantees=["coach-4", "manager-1"]))
    assert refusal(f"{header}.{forged}.{signature}", keyring.jwks()).reason == "bad_signature"
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[0] ^= 1
    tampered_sig = f"{header}.{token.split('.')[1]}.{b64url(bytes(sig))}"
    assert refusal(tampered_sig, keyring.jwks()).reason == "bad_signature"


def test_alg_none(keyring: crypto.FileKeyring) -> None:
    kid = keyring.signing_key().kid
    for alg in ("none", "None", "NONE"):
        header = b64url_json({"alg": alg, "typ": crypto.RECEIPT_TYP, "kid": kid})
        token = f"{header}.{b64url_json(receipt_claims())}."
        error = refusal(token, keyring.jwks())
        assert error.reason == "algorithm_not_allowed"
        assert "EdDSA" in str(error)


def test_hs256_with_the_public_key_as_secret(keyring: crypto.FileKeyring) -> None:
    [jwk] = keyring.jwks()["keys"]
    public_raw = base64.urlsafe_b64decode(jwk["x"] + "==")
    for secret in (public_raw, jwk["x"].encode(), json.dumps(jwk).encode()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            header = b64url_json({"alg": alg, "typ": crypto.RECEIPT_TYP, "kid": jwk["kid"]})
            signing_input = f"{header}.{b64url_json(receipt_claims())}"
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            token = f"{signing_input}.{b64url(mac)}"
            assert refusal(token, keyring.jwks()).reason == "algorithm_not_allowed"


def test_other_algorithms_are_refused(keyring: crypto.FileKeyring) -> None:
    for alg in ("RS256", "ES256", "PS256", "Ed25519", ""):
        header = b64url_json({"alg": alg, "typ": crypto.RECEIPT_TYP, "kid": "x"})
        token = f"{header}.{b64url_json(receipt_claims())}.c2ln"
        assert refusal(token, keyring.jwks()).reason == "algorithm_not_allowed"


def test_unknown_or_wrong_kid(keyring: crypto.FileKeyring, tmp_path: Path) -> None:
    other = crypto.FileKeyring(tmp_path / "other" / "keyring.json")
    token = crypto.sign(other, receipt_claims(), typ=crypto.RECEIPT_TYP)
    error = refusal(token, keyring.jwks())
    assert error.reason == "unknown_kid"
    assert other.signing_key().kid in str(error)

    # Signed by another key but claiming our kid: the signature does not verify.
    _, signer = other.signing_key()
    forged = jwt.encode(
        receipt_claims(),
        signer.jwt_key,
        algorithm="EdDSA",
        headers={"typ": crypto.RECEIPT_TYP, "kid": keyring.signing_key().kid},
    )
    assert refusal(forged, keyring.jwks()).reason == "bad_signature"

    no_kid = jwt.encode(
        receipt_claims(), signer.jwt_key, algorithm="EdDSA", headers={"typ": crypto.RECEIPT_TYP}
    )
    assert refusal(no_kid, other.jwks()).reason == "unknown_kid"

    # A JWKS entry with the right kid but the wrong key type is not a match.
    own = crypto.sign(keyring, receipt_claims(), typ=crypto.RECEIPT_TYP)
    [jwk] = keyring.jwks()["keys"]
    wrong_type = {"keys": [{**jwk, "kty": "RSA"}]}
    assert refusal(own, wrong_type).reason == "unknown_kid"
    assert refusal(own, {"keys": []}).reason == "unknown_kid"


def test_expired(keyring: crypto.FileKeyring) -> None:
    now = int(time.time())
    token = crypto.sign(
        keyring, receipt_claims(iat=now - 100, exp=now - 10), typ=crypto.RECEIPT_TYP
    )
    assert refusal(token, keyring.jwks()).reason == "expired"
    assert verify_receipt(token, keyring.jwks(), leeway=60)["jti"] == "share-1"


def test_issued_in_the_future(keyring: crypto.FileKeyring) -> None:
    now = int(time.time())
    token = crypto.sign(keyring, receipt_claims(iat=now + 3600), typ=crypto.RECEIPT_TYP)
    assert refusal(token, keyring.jwks()).reason == "not_yet_valid"


@pytest.mark.parametrize("claim", RECEIPT_CLAIMS)
def test_each_missing_required_claim(keyring: crypto.FileKeyring, claim: str) -> None:
    claims = receipt_claims()
    del claims[claim]
    token = crypto.sign(keyring, claims, typ=crypto.RECEIPT_TYP)
    error = refusal(token, keyring.jwks())
    assert error.reason == "missing_claim"
    assert error.claim == claim
    assert repr(claim) in str(error)


def test_exp_and_iat_are_always_required(keyring: crypto.FileKeyring) -> None:
    for claim in ("exp", "iat"):
        claims = receipt_claims()
        del claims[claim]
        token = crypto.sign(keyring, claims, typ=crypto.RECEIPT_TYP)
        with pytest.raises(crypto.TokenError) as caught:
            crypto.verify(token, keyring.jwks(), typ=crypto.RECEIPT_TYP, required=["sub"])
        assert (caught.value.reason, caught.value.claim) == ("missing_claim", claim)


def test_wrong_type(keyring: crypto.FileKeyring) -> None:
    for typ in (crypto.CERTIFICATE_TYP, "JWT", "at+jwt"):
        token = crypto.sign(keyring, receipt_claims(), typ=typ)
        error = refusal(token, keyring.jwks())
        assert error.reason == "wrong_type"
        assert crypto.RECEIPT_TYP in str(error)
    _, signer = keyring.signing_key()
    untyped = jwt.encode(
        receipt_claims(),
        signer.jwt_key,
        algorithm="EdDSA",
        headers={"kid": keyring.signing_key().kid, "typ": None},
    )
    assert "typ" not in jwt.get_unverified_header(untyped)
    assert refusal(untyped, keyring.jwks()).reason == "wrong_type"


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "!!!.???.***", "eyJhbGciOiJFZERTQSJ9.!!!.abc", "a.b.c.d.e"],
)
def test_malformed(keyring: crypto.FileKeyring, token: str) -> None:
    assert refusal(token, keyring.jwks()).reason == "malformed"


def test_signed_payload_that_is_not_a_json_object(keyring: crypto.FileKeyring) -> None:
    kid, signer = keyring.signing_key()
    for payload in (b"[1,2]", b"not json", b'"a string"'):
        token = jwt.PyJWS().encode(
            payload,
            signer.jwt_key,
            algorithm="EdDSA",
            headers={"typ": crypto.RECEIPT_TYP, "kid": kid},
        )
        assert refusal(token, keyring.jwks()).reason == "malformed"


def test_audience(keyring: crypto.FileKeyring) -> None:
    token = crypto.sign(keyring, receipt_claims(aud="replay"), typ=crypto.RECEIPT_TYP)
    assert verify_receipt(token, keyring.jwks(), audience="replay")["aud"] == "replay"
    assert refusal(token, keyring.jwks(), audience="elsewhere").reason == "wrong_audience"


def test_old_signing_keys_still_verify(keyring: crypto.FileKeyring) -> None:
    old_token = crypto.sign(keyring, receipt_claims(), typ=crypto.RECEIPT_TYP)
    old_kid = keyring.signing_key().kid
    new_kid = keyring.add_signing_key()
    new_token = crypto.sign(keyring, receipt_claims(jti="share-2"), typ=crypto.RECEIPT_TYP)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid != old_kid
    jwks = keyring.jwks()
    assert verify_receipt(old_token, jwks)["jti"] == "share-1"
    assert verify_receipt(new_token, jwks)["jti"] == "share-2"


def test_a_null_claim_is_present(keyring: crypto.FileKeyring) -> None:
    """An untrimmed share's receipt carries "trim": null; null is a value, not a missing claim."""
    token = crypto.sign(keyring, receipt_claims(trim=None), typ=crypto.RECEIPT_TYP)
    assert verify_receipt(token, keyring.jwks())["trim"] is None
    claims = receipt_claims()
    del claims["trim"]
    token = crypto.sign(keyring, claims, typ=crypto.RECEIPT_TYP)
    error = refusal(token, keyring.jwks())
    assert error.reason == "missing_claim" and error.claim == "trim"


def _respell_last_char(segment: str) -> str:
    """The same bytes with different unused trailing bits (a non-canonical spelling)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 4, 3: 2}[len(segment) % 4]  # unused low bits of the last character
    last = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[last ^ 1] if spare else segment


@pytest.mark.parametrize("part", [0, 1, 2])
def test_padding_and_non_canonical_base64url_are_refused(
    keyring: crypto.FileKeyring, part: int
) -> None:
    """Issue 12 finding 9: a signature with '=' padding verified. Every part of a token must be
    spelled the one canonical way."""
    token = crypto.sign(keyring, receipt_claims(), typ=crypto.RECEIPT_TYP)
    jwks = keyring.jwks()
    assert verify_receipt(token, jwks)
    segments = token.split(".")
    variants = []
    padded = list(segments)
    padded[part] += "=" * (-len(padded[part]) % 4 or 4)
    variants.append(padded)
    if len(segments[part]) % 4:
        respelled = list(segments)
        respelled[part] = _respell_last_char(segments[part])
        assert b64url_decode(respelled[part]) == b64url_decode(segments[part])
        variants.append(respelled)
    spaced = list(segments)
    spaced[part] = segments[part][:4] + "\n" + segments[part][4:]
    variants.append(spaced)
    std_alphabet = list(segments)
    std_alphabet[part] = segments[part].replace("-", "+").replace("_", "/")
    if std_alphabet[part] != segments[part]:
        variants.append(std_alphabet)
    for variant in variants:
        error = refusal(".".join(variant), jwks)
        assert error.reason == "malformed", variant


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_a_past_receipt_verifies_for_the_status_question_only(keyring) -> None:
    now = int(time.time())
    token = crypto.sign(
        keyring, receipt_claims(iat=now - 100, exp=now - 10), typ=crypto.RECEIPT_TYP
    )
    assert refusal(token, keyring.jwks()).reason == "expired"
    claims = crypto.verify(
        token,
        keyring.jwks(),
        typ=crypto.RECEIPT_TYP,
        required=RECEIPT_CLAIMS,
        check_expiry=False,
    )
    assert claims["exp"] == now - 10
