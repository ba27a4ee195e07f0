"""Identity's REST API at the front door (:8000), as legacy clients use it."""

from __future__ import annotations

import uuid

from conftest import PASSWORD


async def test_register_login_refresh_and_me_through_the_router(router) -> None:
    email = f"legacy-{uuid.uuid4().hex[:8]}@example.com"
    registered = await router.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Legacy"},
    )
    assert registered.status_code == 201, registered.text
    login = await router.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0

    me = await router.get(
        "/api/v1/users/me", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["email"] == email
    refreshed = await router.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    anonymous = await router.get("/api/v1/users/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")


async def test_throttling_answers_429_with_retry_after_through_the_router(router) -> None:
    email = f"locked-{uuid.uuid4().hex[:8]}@example.com"
    statuses = []
    for _ in range(6):
        response = await router.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong password here"}
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
    assert int(response.headers["retry-after"]) > 0
