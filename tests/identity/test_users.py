"""Users as identity owns them, through GraphQL and REST alike."""

from __future__ import annotations

import uuid

from conftest import graphql

CREATE = "mutation($i: CreateUserInput!) { createUser(input: $i) { id email displayName } }"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@Example.COM"


async def test_email_is_normalized_and_unique_regardless_of_case(clients) -> None:
    email = unique_email()
    created = await graphql(
        clients["identity"], CREATE, {"i": {"email": email, "displayName": "Ada"}}
    )
    assert created["data"]["createUser"]["email"] == email.lower()

    again = await graphql(
        clients["identity"], CREATE, {"i": {"email": email.upper(), "displayName": "Ada"}}
    )
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"

    rest = await clients["identity"].post(
        "/api/v1/users", json={"email": email.swapcase(), "display_name": "Ada"}
    )
    assert rest.status_code == 409
    assert rest.headers["content-type"] == "application/problem+json"


async def test_invalid_email_and_blank_name_are_refused(clients) -> None:
    bad = await graphql(clients["identity"], CREATE, {"i": {"email": "nope", "displayName": "A"}})
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "email"}
    blank = await graphql(
        clients["identity"], CREATE, {"i": {"email": unique_email(), "displayName": "   "}}
    )
    assert blank["errors"][0]["extensions"]["field"] == "displayName"


async def test_rest_and_graphql_return_the_same_user(clients) -> None:
    rest = await clients["identity"].post(
        "/api/v1/users", json={"email": unique_email(), "display_name": "Grace"}
    )
    assert rest.status_code == 201
    user = rest.json()
    result = await graphql(
        clients["identity"],
        "query($id: ID!) { user(id: $id) { id email displayName } }",
        {"id": user["id"]},
    )
    assert result["data"]["user"] == {
        "id": user["id"],
        "email": user["email"],
        "displayName": "Grace",
    }
    fetched = await clients["identity"].get(f"/api/v1/users/{user['id']}")
    assert fetched.json() == user


async def test_users_page_through_with_cursors_newest_first(clients) -> None:
    token = uuid.uuid4().hex[:10]
    for i in range(5):
        await graphql(
            clients["identity"],
            CREATE,
            {"i": {"email": f"p{i}-{token}@example.com", "displayName": "P"}},
        )
    query = """query($after: String, $token: String) {
        users(first: 2, after: $after, emailContains: $token) {
            nodes { email } pageInfo { hasNextPage endCursor } } }"""
    seen, after = [], None
    while True:
        page = (await graphql(clients["identity"], query, {"after": after, "token": token}))["data"]
        seen += [n["email"] for n in page["users"]["nodes"]]
        if not page["users"]["pageInfo"]["hasNextPage"]:
            break
        after = page["users"]["pageInfo"]["endCursor"]
    assert seen == [f"p{i}-{token}@example.com" for i in reversed(range(5))]


async def test_page_size_and_cursor_are_checked(clients) -> None:
    too_big = await graphql(clients["identity"], "{ users(first: 101) { nodes { id } } }")
    assert too_big["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    garbage = await graphql(clients["identity"], '{ users(after: "%%%") { nodes { id } } }')
    assert garbage["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    rest = await clients["identity"].get("/api/v1/users", params={"limit": 0})
    assert rest.status_code == 422
