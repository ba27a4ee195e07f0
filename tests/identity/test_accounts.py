"""Accounts: registration, password rules and hashing, email verification, password
reset and change, deactivation — through REST and GraphQL alike."""

from __future__ import annotations

import logging
import uuid

from argon2 import PasswordHasher
from conftest import PASSWORD, graphql, sign_up, unique_email
from sqlalchemy import select

from subgraphs.identity.models import OutboxEvent, User

REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { id email displayName } }"""


async def outbox_token(apps, user_id: str, kind: str) -> str:
    """The one-time token of the newest email of `kind` queued for the user."""
    async with apps["identity"].state.sessions() as session:
        events = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.type == f"identity.{kind}_requested")
                .order_by(OutboxEvent.created_at.desc())
            )
        ).all()
    return next(e.payload["token"] for e in events if e.payload["user_id"] == user_id)


async def stored_user(apps, user_id: str) -> User:
    async with apps["identity"].state.sessions() as session:
        user = await session.get(User, uuid.UUID(user_id))
        assert user is not None
        return user


async def test_email_is_normalized_and_unique_regardless_of_case(clients) -> None:
    email = unique_email().replace("@example.com", "@Example.COM")
    fields = {"email": email, "password": PASSWORD, "displayName": "Ada"}
    created = await graphql(clients["identity"], REGISTER, {"i": fields})
    assert created["data"]["register"]["email"] == email.lower()

    again = await graphql(clients["identity"], REGISTER, {"i": {**fields, "email": email.upper()}})
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"
    rest = await clients["identity"].post(
        "/api/v1/auth/register",
        json={"email": email.swapcase(), "password": PASSWORD, "display_name": "Ada"},
    )
    assert rest.status_code == 409
    assert rest.headers["content-type"] == "application/problem+json"


async def test_password_policy_names_the_rule_broken(clients) -> None:
    cases = {
        "short pass": "min_length",
        "Password2024!!": "common",
        "qwertyuiop1234": "common",
    }
    for password, rule in cases.items():
        response = await clients["identity"].post(
            "/api/v1/auth/register",
            json={"email": unique_email(), "password": password, "display_name": "A"},
        )
        assert response.status_code == 422, password
        assert response.json()["rule"] == rule
        assert "password" in response.json()["detail"]
    result = await graphql(
        clients["identity"],
        REGISTER,
        {"i": {"email": unique_email(), "password": "tiny", "displayName": "A"}},
    )
    error = result["errors"][0]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "field": "password",
        "rule": "min_length",
    }
    assert "at least 12 characters" in error["message"]


async def test_passwords_are_stored_as_argon2id_and_rehashed_when_parameters_change(
    apps, clients
) -> None:
    account = await sign_up(clients["identity"])
    user = await stored_user(apps, account.id)
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash

    weaker = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    async with apps["identity"].state.sessions() as session:
        (await session.get(User, user.id)).password_hash = weaker
        await session.commit()
    login = await clients["identity"].post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert login.status_code == 200
    rehashed = (await stored_user(apps, account.id)).password_hash
    assert rehashed is not None
    assert rehashed != weaker and not PasswordHasher().check_needs_rehash(rehashed)


async def test_email_verification_token_is_single_use_and_never_logged(
    apps, clients, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await sign_up(clients["identity"])
    token = await outbox_token(apps, account.id, "verify_email")
    assert token not in caplog.text

    me = await clients["identity"].get("/api/v1/users/me", headers=account.headers)
    assert me.json()["email_verified"] is False
    verified = await clients["identity"].post("/api/v1/auth/email/verify", json={"token": token})
    assert verified.status_code == 200 and verified.json()["email_verified"] is True

    again = await clients["identity"].post("/api/v1/auth/email/verify", json={"token": token})
    assert again.status_code == 422
    assert "already used" in again.json()["detail"]
    assert token not in caplog.text


async def test_expired_verification_token_is_refused(apps, clients) -> None:
    from sqlalchemy import update

    from subgraphs.identity.models import EmailToken

    account = await sign_up(clients["identity"])
    token = await outbox_token(apps, account.id, "verify_email")
    async with apps["identity"].state.sessions() as session:
        await session.execute(
            update(EmailToken)
            .where(EmailToken.user_id == uuid.UUID(account.id))
            .values(expires_at=EmailToken.created_at)
        )
        await session.commit()
    response = await clients["identity"].post("/api/v1/auth/email/verify", json={"token": token})
    assert response.status_code == 422


async def test_password_reset_reveals_nothing_and_signs_out_everywhere(apps, clients) -> None:
    identity = clients["identity"]
    unknown = await identity.post(
        "/api/v1/auth/password/reset-request", json={"email": unique_email()}
    )
    account = await sign_up(identity)
    known = await identity.post(
        "/api/v1/auth/password/reset-request", json={"email": account.email}
    )
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()

    token = await outbox_token(apps, account.id, "reset_password")
    weak = await identity.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "password1234"}
    )
    assert weak.status_code == 422  # the token is not spent by a refused password
    new_password = "another sturdy passphrase 7"
    reset = await identity.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204
    refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refresh.status_code == 401
    old = await identity.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert old.status_code == 401
    new = await identity.post(
        "/api/v1/auth/login", json={"email": account.email, "password": new_password}
    )
    assert new.status_code == 200
    replay = await identity.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": new_password}
    )
    assert replay.status_code == 422


async def test_changing_the_password_keeps_this_session_and_ends_the_others(clients) -> None:
    identity = clients["identity"]
    laptop = await sign_up(identity)
    phone = await identity.post(
        "/api/v1/auth/login", json={"email": laptop.email, "password": PASSWORD}
    )
    wrong = await identity.post(
        "/api/v1/auth/password/change",
        json={"current_password": "not it at all", "new_password": "a new sturdy phrase 9"},
        headers=laptop.headers,
    )
    assert wrong.status_code == 422
    changed = await identity.post(
        "/api/v1/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "a new sturdy phrase 9"},
        headers=laptop.headers,
    )
    assert changed.status_code == 204
    phone_refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone.json()["refresh_token"]}
    )
    assert phone_refresh.status_code == 401
    laptop_refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": laptop.refresh_token}
    )
    assert laptop_refresh.status_code == 200


async def test_a_deactivated_user_can_neither_log_in_nor_refresh(apps, clients) -> None:
    identity = clients["identity"]
    admin = await sign_up(identity, roles=("admin",), apps=apps)
    user = await sign_up(identity)
    deactivated = await graphql(
        identity,
        "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
        {"id": user.id},
        admin.headers,
    )
    assert deactivated["data"]["deactivateUser"]["isActive"] is False
    login = await identity.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert login.status_code == 403
    refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert refresh.status_code == 401

    reactivated = await identity.post(f"/api/v1/users/{user.id}/reactivate", headers=admin.headers)
    assert reactivated.status_code == 200 and reactivated.json()["is_active"] is True
    login = await identity.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert login.status_code == 200


async def test_only_administrators_deactivate_users(clients) -> None:
    identity = clients["identity"]
    member, target = await sign_up(identity), await sign_up(identity)
    response = await identity.post(f"/api/v1/users/{target.id}/deactivate", headers=member.headers)
    assert response.status_code == 403
    anonymous = await identity.post(f"/api/v1/users/{target.id}/deactivate")
    assert anonymous.status_code == 401
