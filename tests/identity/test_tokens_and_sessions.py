"""Access tokens, signing keys and JWKS, refresh rotation, sessions and logout."""

from __future__ import annotations

import time

import jwt
from conftest import PASSWORD, graphql, sign_up

from subgraphs.common.settings import HubSettings


async def jwks(clients) -> dict:
    response = await clients["identity"].get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response.json()


async def test_access_token_is_a_short_lived_rs256_jwt_with_the_expected_claims(apps, clients):
    account = await sign_up(clients["identity"], roles=("admin",), apps=apps)
    header = jwt.get_unverified_header(account.access_token)
    assert header["alg"] == "RS256"
    keys = {key["kid"]: key for key in (await jwks(clients))["keys"]}
    assert header["kid"] in keys and "d" not in keys[header["kid"]]  # public part only

    hub = HubSettings()
    claims = jwt.decode(
        account.access_token,
        jwt.PyJWK(keys[header["kid"]]).key,
        algorithms=["RS256"],
        audience=hub.jwt_audience,
        issuer=hub.jwt_issuer,
    )
    assert claims["sub"] == account.id
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "sid", "scope", "roles", "orgs"} <= set(
        claims
    )
    assert 0 < claims["exp"] - time.time() <= 900
    assert "admin" in claims["roles"] and "users:read" in claims["scope"].split()


async def test_signing_keys_rotate_without_invalidating_live_tokens(apps, clients) -> None:
    identity = clients["identity"]
    admin = await sign_up(identity, roles=("admin",), apps=apps)
    old_kid = jwt.get_unverified_header(admin.access_token)["kid"]
    rotated = await graphql(identity, "mutation { rotateSigningKey }", headers=admin.headers)
    new_kid = rotated["data"]["rotateSigningKey"]
    assert new_kid != old_kid

    published = {key["kid"] for key in (await jwks(clients))["keys"]}
    assert {old_kid, new_kid} <= published
    fresh = await sign_up(identity)
    assert jwt.get_unverified_header(fresh.access_token)["kid"] == new_kid
    # A token of the retired key still works, here and in another subgraph.
    assert (await identity.get("/api/v1/users/me", headers=admin.headers)).status_code == 200
    other = await graphql(clients["content"], "{ __typename }", headers=admin.headers)
    assert "errors" not in other


async def test_keys_persist_across_restarts(apps, clients) -> None:
    from subgraphs.identity import SUBGRAPH

    account = await sign_up(clients["identity"])
    restarted = SUBGRAPH.app()
    try:
        from conftest import client_for

        async with client_for(restarted) as client:
            me = await client.get("/api/v1/users/me", headers=account.headers)
            assert me.status_code == 200
            again = await sign_up(client)
    finally:
        await restarted.state.redis.close()
        await restarted.state.engine.dispose()
    assert (
        jwt.get_unverified_header(again.access_token)["kid"]
        == jwt.get_unverified_header(account.access_token)["kid"]
    )


async def test_refresh_rotates_and_a_reused_token_revokes_only_its_session(clients) -> None:
    identity = clients["identity"]
    laptop = await sign_up(identity)
    phone = (
        await identity.post(
            "/api/v1/auth/login", json={"email": laptop.email, "password": PASSWORD}
        )
    ).json()

    first = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": laptop.refresh_token}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != laptop.refresh_token
    assert rotated["token_type"] == "bearer" and rotated["expires_in"] == 900

    reused = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": laptop.refresh_token}
    )
    assert reused.status_code == 401
    # The whole family is gone: even the token it was rotated into.
    successor = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert successor.status_code == 401
    # The user's other session is untouched.
    other = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert other.status_code == 200

    events = await identity.get(
        "/api/v1/auth/sessions", headers={"authorization": f"Bearer {other.json()['access_token']}"}
    )
    assert len(events.json()) == 1


async def test_logout_ends_the_session(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    out = await identity.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert out.status_code == 204
    refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refresh.status_code == 401

    other = await sign_up(identity)
    by_token = await graphql(identity, "mutation { logout }", headers=other.headers)
    assert by_token["data"]["logout"] is True
    refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": other.refresh_token}
    )
    assert refresh.status_code == 401


async def test_users_list_their_sessions_and_revoke_any(clients) -> None:
    identity = clients["identity"]
    laptop = await sign_up(identity, headers={"user-agent": "Laptop/1.0"})
    phone = await identity.post(
        "/api/v1/auth/login",
        json={"email": laptop.email, "password": PASSWORD},
        headers={"user-agent": "Phone/2.0"},
    )
    listed = await graphql(
        identity, "{ mySessions { id userAgent ip current lastUsedAt } }", headers=laptop.headers
    )
    sessions = {s["userAgent"]: s for s in listed["data"]["mySessions"]}
    assert set(sessions) == {"Laptop/1.0", "Phone/2.0"}
    assert sessions["Laptop/1.0"]["current"] and not sessions["Phone/2.0"]["current"]
    assert sessions["Phone/2.0"]["ip"]

    revoked = await identity.delete(
        f"/api/v1/auth/sessions/{sessions['Phone/2.0']['id']}", headers=laptop.headers
    )
    assert revoked.status_code == 204
    refresh = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone.json()["refresh_token"]}
    )
    assert refresh.status_code == 401

    stranger = await sign_up(identity)
    foreign = await identity.delete(
        f"/api/v1/auth/sessions/{sessions['Laptop/1.0']['id']}", headers=stranger.headers
    )
    assert foreign.status_code == 404


async def test_garbage_refresh_and_logout_tokens_are_unauthenticated(clients) -> None:
    identity = clients["identity"]
    refresh = await identity.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})
    assert refresh.status_code == 401
    assert refresh.json()["code"] == "UNAUTHENTICATED"
    logout = await identity.post("/api/v1/auth/logout", json={"refresh_token": "nope"})
    assert logout.status_code == 401
