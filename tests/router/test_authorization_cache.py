"""The router remembers genericAuth's verdict per document and caller (anonymous, or the
token's scopes): plugins/authorization.ts. A verdict remembered for one caller must never
answer another: the same document text, allowed to a caller with the login or the scope,
is still refused — null field, UNAUTHORIZED_FIELD_OR_TYPE, HTTP 401 — to an anonymous or
under-scoped caller afterwards, and the other way round."""

from __future__ import annotations

import uuid

import pytest
from conftest import sign_up

# @authenticated (communication) and @requiresScopes(notifications:admin), each document
# text unique to this run so no other test has warmed the router's caches for it.
RUN = uuid.uuid4().hex[:8]
AUTHENTICATED = f"query Prefs_{RUN} {{ notificationPreferences {{ __typename }} }}"
SCOPED = f"query Dead_{RUN} {{ deadLetters(first: 1) {{ __typename }} }}"
MIXED = f"query Mixed_{RUN} {{ __typename deadLetters(first: 1) {{ __typename }} }}"


def refused(response, field: str) -> None:
    body = response.json()
    assert response.status_code == 401, response.text
    assert body["data"] == {**body["data"], field: None}, body
    codes = [(e["path"], e["extensions"]["code"]) for e in body["errors"]]
    assert codes == [([field], "UNAUTHORIZED_FIELD_OR_TYPE")], body


def allowed(response, field: str) -> None:
    body = response.json()
    assert response.status_code == 200, response.text
    assert "errors" not in body, body
    assert body["data"][field] is not None, body


@pytest.fixture
async def admin(router, apps):
    """A user holding the platform admin role, whose token carries notifications:admin."""
    return await sign_up(router, roles=("admin",), apps=apps)


async def test_a_document_allowed_to_a_signed_in_caller_is_still_refused_anonymously(
    router, account
) -> None:
    query = {"query": AUTHENTICATED}
    for _ in range(2):
        allowed(
            await router.post("/graphql", json=query, headers=account.headers),
            "notificationPreferences",
        )
    first = await router.post("/graphql", json=query)
    second = await router.post("/graphql", json=query)
    refused(first, "notificationPreferences")
    refused(second, "notificationPreferences")
    assert first.json() == second.json()
    allowed(
        await router.post("/graphql", json=query, headers=account.headers),
        "notificationPreferences",
    )


async def test_a_document_allowed_with_a_scope_is_still_refused_without_it(
    router, account, admin
) -> None:
    for query, field in ((SCOPED, "deadLetters"), (MIXED, "deadLetters")):
        body = {"query": query}
        for _ in range(2):
            allowed(await router.post("/graphql", json=body, headers=admin.headers), field)
        callers: list[dict[str, str]] = [account.headers, {}, account.headers, {}]
        for headers in callers:  # under-scoped, anonymous
            refused(await router.post("/graphql", json=body, headers=headers), field)
        allowed(await router.post("/graphql", json=body, headers=admin.headers), field)


async def test_a_refusal_remembered_first_does_not_refuse_the_caller_with_the_scope(
    router, account, admin
) -> None:
    query = {"query": f"query DeadFirst_{RUN} {{ deadLetters(first: 1) {{ __typename }} }}"}
    refused(await router.post("/graphql", json=query), "deadLetters")
    refused(await router.post("/graphql", json=query, headers=account.headers), "deadLetters")
    allowed(await router.post("/graphql", json=query, headers=admin.headers), "deadLetters")
    refused(await router.post("/graphql", json=query, headers=account.headers), "deadLetters")
