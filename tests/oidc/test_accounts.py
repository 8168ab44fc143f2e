"""The accounts the identity provider's claims make (services/oidc), on the real database."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import func, select

from app.models import Role, User
from app.services import oidc

ISSUER = "https://login.example.org/tenant/v2.0"


def test_two_first_sign_ins_at_once_make_one_account(rt):
    sub = f"race-{uuid.uuid4().hex[:8]}"
    claims = {"sub": sub, "name": "Racing Person", "preferred_username": sub}
    barrier = threading.Barrier(2)
    made: list[uuid.UUID] = []
    errors: list[BaseException] = []

    def first_sign_in() -> None:
        try:
            with rt.db.session() as db:
                barrier.wait(10)
                user = oidc.sign_in(db, issuer=ISSUER, claims=claims, role=Role.EMPLOYEE)
                db.commit()
                made.append(user.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_sign_in) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(made) == 2 and made[0] == made[1]
    with rt.db.session() as db:
        count = db.scalar(select(func.count()).where(User.oidc_subject == sub))
    assert count == 1


def test_claims_are_cleaned_before_they_are_kept(rt):
    sub = f"odd-{uuid.uuid4().hex[:8]}"
    claims = {
        "sub": sub,
        "name": "Kari\u202e Nordmann\x00",
        "email": "not an address",
        "preferred_username": "Kari Nordmann!!",
    }
    with rt.db.session() as db:
        user = oidc.sign_in(db, issuer=ISSUER, claims=claims, role=Role.COACH)
        db.commit()
        assert user.name == "Kari Nordmann"
        assert user.email is None
        assert user.login.startswith("kari-nordmann")
