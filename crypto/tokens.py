"""Signed consent receipts and deletion certificates: JWTs with Ed25519 (``alg: EdDSA``).

Both verify offline against the JWKS at ``/.well-known/jwks.json`` (``FileKeyring.jwks()``).
The header carries ``alg: EdDSA``, ``typ`` and the ``kid`` of the signing key.

Consent receipt, ``typ: consent+jwt`` (SPEC §6; names follow the Kantara Consent Receipt
vocabulary where it has one)::

    iss             the issuing deployment (base URL)
    sub             employee id
    jti             share id
    iat, exp        issue time; the share's end (only a backstop: the server checks its state)
    recording       recording id
    grantees        coach ids
    purpose         the purpose the employee gave
    scope           ["view", "comment"]
    channels        what is shared, e.g. {"screen": true, "agent_audio": true,
                    "customer_audio": false, "agent_channel": "left"}
    trim            {"start_s": ..., "end_s": ...} or null
    media_sha256    hex SHA-256 of the submitted raw media
    policy          id/version of the consent text shown
    revocation_url  where to revoke
    key_id          id of the share's data key

Deletion certificate, ``typ: deletion+jwt``::

    iss             the issuing deployment
    sub             employee id (whose data was deleted)
    jti             certificate id
    iat             issue time
    exp             verification horizon (issuers use iat + 10 years): certificates are
                    evidence, but every JWT here must carry exp
    subject_type    "share" or "recording"
    subject_id      the share or recording id
    key_id          id of the data key destroyed
    destroyed_at    when the wrapped key was deleted (RFC 3339)
    objects_deleted the storage names of the objects deleted
    absence_check   how their absence was confirmed, e.g.
                    {"method": "stat", "checked_at": "...", "all_absent": true}

verify() accepts only the canonical spelling of a token (unpadded base64url, no stray bits),
pins the algorithm to EdDSA, requires the header ``typ`` to match, finds the key by
``kid`` and requires ``exp``, ``iat`` and the listed claims.  Every refusal is a TokenError
whose ``reason`` says why (see TokenError).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import jwt

from .keyring import SigningKey

__all__ = [
    "CERTIFICATE_CLAIMS",
    "CERTIFICATE_TYP",
    "RECEIPT_CLAIMS",
    "RECEIPT_TYP",
    "TokenError",
    "sign",
    "verify",
]

RECEIPT_TYP = "consent+jwt"
CERTIFICATE_TYP = "deletion+jwt"
ALGORITHM = "EdDSA"

RECEIPT_CLAIMS: list[str] = [
    "iss",
    "sub",
    "jti",
    "iat",
    "exp",
    "recording",
    "grantees",
    "purpose",
    "scope",
    "channels",
    "trim",
    "media_sha256",
    "policy",
    "revocation_url",
    "key_id",
]
CERTIFICATE_CLAIMS: list[str] = [
    "iss",
    "sub",
    "jti",
    "iat",
    "exp",
    "subject_type",
    "subject_id",
    "key_id",
    "destroyed_at",
    "objects_deleted",
    "absence_check",
]
_ALWAYS_REQUIRED = ("exp", "iat")


class TokenError(Exception):
    """A token was refused.  ``reason`` is one of:

    - ``malformed``: not a well-formed JWS/JWT (bad base64, JSON, structure or claim type)
    - ``algorithm_not_allowed``: ``alg`` is anything but EdDSA (``none``, HS256, ...)
    - ``wrong_type``: the header ``typ`` is not the expected one
    - ``unknown_kid``: no Ed25519 key with the header's ``kid`` in the JWKS
    - ``bad_signature``: the signature does not verify (e.g. the payload was altered)
    - ``expired``: ``exp`` has passed
    - ``not_yet_valid``: ``iat`` (or ``nbf``) is in the future
    - ``missing_claim``: a required claim is absent; ``claim`` names it
    - ``wrong_audience``: ``aud`` does not match the expected audience
    """

    def __init__(self, reason: str, message: str, *, claim: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.claim = claim


class _HasSigningKey(Protocol):
    def signing_key(self) -> SigningKey: ...


def sign(keyring: _HasSigningKey, claims: Mapping[str, Any], *, typ: str) -> str:
    """Sign claims with the keyring's current Ed25519 key."""
    kid, signer = keyring.signing_key()
    return jwt.encode(
        dict(claims),
        signer.jwt_key,
        algorithm=ALGORITHM,
        headers={"typ": typ, "kid": kid},
    )


def _find_key(jwks: Mapping[str, Any], kid: Any) -> jwt.PyJWK:
    if not isinstance(kid, str) or not kid:
        raise TokenError("unknown_kid", "the token header has no key id (kid)")
    for entry in jwks.get("keys", []):
        if not isinstance(entry, Mapping) or entry.get("kid") != kid:
            continue
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        if entry.get("alg", ALGORITHM) != ALGORITHM or entry.get("use", "sig") != "sig":
            continue
        try:
            return jwt.PyJWK(dict(entry), algorithm=ALGORITHM)
        except jwt.PyJWKError:
            continue
    raise TokenError("unknown_kid", f"no Ed25519 signing key with kid {kid!r} in the JWKS")


def verify(
    token: str,
    jwks: Mapping[str, Any],
    *,
    typ: str,
    required: Sequence[str],
    audience: str | Sequence[str] | None = None,
    leeway: float = 0,
    check_expiry: bool = True,
) -> dict[str, Any]:
    """The claims of a valid token; TokenError (with a reason) otherwise.

    ``check_expiry=False`` still requires ``exp`` but accepts a past one: for asking the
    issuer about a receipt whose share has ended (its signature is checked all the same)."""
    _check_canonical(token)
    header = _checked_header(token, typ)
    key = _find_key(jwks, header.get("kid"))
    claims = _decode(token, key, audience=audience, leeway=leeway, check_expiry=check_expiry)
    for claim in required:
        if claim not in claims:
            raise TokenError(
                "missing_claim", f"the token lacks the required claim {claim!r}", claim=claim
            )
    return claims


_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def _check_canonical(token: str) -> None:
    """Three segments of unpadded base64url, each the one encoding of its bytes: no ``=``
    padding, no other alphabet, no set bits after the last byte (PyJWT's decoder would
    accept all three, so one signed token would have many spellings)."""
    if not isinstance(token, str):
        raise TokenError("malformed", "the token is not text")
    segments = token.split(".")
    if len(segments) != 3:
        raise TokenError("malformed", "a JWT has three parts separated by dots")
    for name, segment in zip(("header", "payload", "signature"), segments, strict=True):
        if not _BASE64URL.match(segment) or len(segment) % 4 == 1:
            raise TokenError("malformed", f"the {name} is not unpadded base64url")
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() != segment:
            raise TokenError("malformed", f"the {name} is not canonical base64url")


def _checked_header(token: str, typ: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.DecodeError, jwt.InvalidTokenError, TypeError, ValueError) as error:
        raise TokenError("malformed", f"the token is not a well-formed JWT: {error}") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise TokenError(
            "algorithm_not_allowed",
            f"the token uses algorithm {alg!r}; only {ALGORITHM} is accepted",
        )
    token_typ = header.get("typ")
    if not isinstance(token_typ, str) or token_typ.lower() != typ.lower():
        raise TokenError("wrong_type", f"the token's type is {token_typ!r}, expected {typ!r}")
    return header


def _decode(
    token: str,
    key: Any,
    *,
    audience: str | Sequence[str] | None,
    leeway: float,
    check_expiry: bool = True,
) -> dict[str, Any]:
    """Signature and times checked by PyJWT, each failure named."""
    # PyJWT's "require" treats a claim that is present but null as missing; a receipt's
    # "trim" is null when nothing was trimmed. Presence is checked by the caller instead.
    require = list(_ALWAYS_REQUIRED)
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=audience,
            leeway=leeway,
            options={
                "require": require,
                "verify_signature": True,
                "verify_exp": check_expiry,
                "verify_iat": True,
                "verify_nbf": True,
                "verify_aud": audience is not None,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature", "the token's signature does not verify") from None
    except jwt.ExpiredSignatureError:
        raise TokenError("expired", "the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("not_yet_valid", "the token is not valid yet") from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenError(
            "missing_claim",
            f"the token lacks the required claim {error.claim!r}",
            claim=error.claim,
        ) from None
    except jwt.InvalidAudienceError:
        raise TokenError("wrong_audience", "the token is meant for another audience") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("algorithm_not_allowed", f"only {ALGORITHM} is accepted") from None
    except (jwt.InvalidTokenError, json.JSONDecodeError) as error:
        raise TokenError("malformed", f"the token is not a valid JWT: {error}") from None
