"""REST at the front door: /api/v1/* on the router reaches the owning subgraph."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

PROBLEM_JSON = "application/problem+json"


async def test_a_document_is_created_and_read_through_the_router(router, account) -> None:
    created = await router.post(
        "/api/v1/documents",
        json={"title": "Front door", "owner_id": account.id},
        headers=account.headers,
    )
    assert created.status_code == 201, created.text
    document = created.json()

    fetched = await router.get(f"/api/v1/documents/{document['id']}", headers=account.headers)
    assert fetched.status_code == 200
    assert fetched.json()["title"] == "Front door"
    listed = await router.get("/api/v1/documents", params={"limit": 100}, headers=account.headers)
    assert document["id"] in [item["id"] for item in listed.json()["items"]]


async def test_the_subgraph_authenticates_rest_requests_itself(router, account) -> None:
    """Sign-up and login went through the router (identity); the token passes unchanged."""
    me = await router.get("/api/v1/users/me", headers=account.headers)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == account.id
    anonymous = await router.get("/api/v1/users/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM_JSON
    forged = await router.get("/api/v1/users/me", headers={"authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401


@pytest.mark.parametrize(
    ("path", "subgraph"),
    [
        ("/api/v1/users", "identity"),
        ("/api/v1/documents", "content"),
        ("/api/v1/notifications", "communication"),
        ("/api/v1/workflows/instances", "workflow"),
    ],
)
async def test_each_resource_is_served_by_its_owner(stack, router, path, subgraph) -> None:
    """The router's answer is the owning subgraph's own answer, status and body alike."""
    via_router = await router.get(path)
    async with httpx.AsyncClient(base_url=stack.urls[subgraph]) as direct:
        straight = await direct.get(path)
    assert via_router.status_code == straight.status_code
    assert via_router.headers["content-type"] == straight.headers["content-type"]
    if straight.status_code == 200:
        assert via_router.json().keys() == straight.json().keys()


async def test_an_unknown_resource_is_a_problem_not_a_crash(router) -> None:
    response = await router.get("/api/v1/no-such-thing/1")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "NOT_FOUND"


async def test_subgraph_errors_pass_through_unchanged(router, account) -> None:
    response = await router.post("/api/v1/documents", json={"title": ""}, headers=account.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "BAD_USER_INPUT"


async def test_a_streamed_request_body_reaches_the_subgraph(router, account) -> None:
    """A chunked body (no Content-Length) is streamed on, not refused or lost."""
    body = f'{{"title": "Streamed", "owner_id": "{account.id}"}}'.encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    response = await router.post(
        "/api/v1/documents",
        content=chunks(),
        headers={"content-type": "application/json", **account.headers},
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Streamed"


async def test_the_client_address_is_forwarded(stack, router) -> None:
    response = await router.get("/api/v1/documents", headers={"x-request-id": "fwd-check-1"})
    assert response.status_code == 200
    log = (stack.log_dir / "content.log").read_text()
    line = next(line for line in log.splitlines() if "fwd-check-1" in line)
    assert "127.0.0.1" in line  # uvicorn logs the X-Forwarded-For address (proxy_headers)
