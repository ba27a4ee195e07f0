"""The router's limits: each refusal is a GraphQL error (or a problem on REST) with a code."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from conftest import sign_up
from router.conftest import PRODUCTION_RATE_LIMIT

MiB = 1024 * 1024


def code_of(response) -> str:
    body = response.json()
    if "errors" in body:
        return body["errors"][0]["extensions"]["code"]
    return body["code"]  # problem+json


async def post(router, query: str, **kwargs):
    return await router.post("/graphql", json={"query": query}, **kwargs)


# --- the shape of an operation -------------------------------------------------------


async def test_depth_over_the_limit_is_refused(router) -> None:
    nested = "owner { documents { nodes { " * 4 + "title" + " } } }" * 4
    response = await post(router, f"{{ documents {{ nodes {{ {nested} }} }} }}")
    assert response.status_code == 400
    assert code_of(response) == "MAX_DEPTH_EXCEEDED"


async def test_fragments_do_not_hide_depth(router) -> None:
    query = """
        query { documents { nodes { ...D } } }
        fragment D on Document { owner { documents { nodes { owner { documents { nodes {
            owner { documents { nodes { title } } } } } } } } } }
    """
    response = await post(router, query)
    assert code_of(response) == "MAX_DEPTH_EXCEEDED"


async def test_too_many_aliases_are_refused(router) -> None:
    aliases = " ".join(f"a{i}: documents(first: 1) {{ nodes {{ id }} }}" for i in range(31))
    response = await post(router, f"{{ {aliases} }}")
    assert code_of(response) == "MAX_ALIASES_EXCEEDED"


async def test_too_many_tokens_are_refused(router) -> None:
    response = await post(router, "{ " + "__typename " * 2100 + "}")
    assert code_of(response) == "MAX_TOKENS_EXCEEDED"


async def test_an_expensive_operation_is_refused_before_any_subgraph_runs(router) -> None:
    query = """query($n: Int!) { documents(first: $n) { nodes {
        owner { documents(first: $n) { nodes { title } } } } } }"""
    cheap = await router.post("/graphql", json={"query": query, "variables": {"n": 5}})
    assert cheap.status_code == 200 and "errors" not in cheap.json()
    dear = await router.post("/graphql", json={"query": query, "variables": {"n": 100}})
    assert dear.status_code == 400
    assert code_of(dear) == "COST_LIMIT_EXCEEDED"
    assert "exceeds the limit of 5000" in dear.json()["errors"][0]["message"]


# --- the request itself --------------------------------------------------------------


async def test_a_json_body_over_one_mebibyte_is_refused_with_413(router) -> None:
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * MiB}})
    response = await router.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert code_of(response) == "PAYLOAD_TOO_LARGE"


async def test_a_chunked_body_over_the_limit_is_refused_too(router) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    response = await router.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert code_of(response) == "PAYLOAD_TOO_LARGE"


async def test_a_body_under_the_limit_passes(router) -> None:
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * (MiB - 100)}})
    response = await router.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_multipart_upload_has_its_own_larger_limit(router) -> None:
    """Over 1 MiB is fine for multipart; the request then fails on its content, not its size."""
    operations = json.dumps({"query": "{ __typename }"})
    response = await router.post(
        "/graphql",
        files={"operations": (None, operations), "map": (None, "{}"), "0": ("f", b"x" * 2 * MiB)},
        headers={"graphql-preflight": "1"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


# --- browsers ------------------------------------------------------------------------


async def test_a_get_query_without_a_csrf_header_is_refused(router) -> None:
    response = await router.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 403
    assert code_of(response) == "CSRF_HEADER_REQUIRED"
    allowed = await router.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"graphql-preflight": "1"}
    )
    assert allowed.json() == {"data": {"__typename": "Query"}}


async def test_a_form_post_without_a_csrf_header_is_refused(router) -> None:
    response = await router.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }"}),
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 403
    assert code_of(response) == "CSRF_HEADER_REQUIRED"


async def test_an_origin_outside_the_allow_list_is_refused(router) -> None:
    for path in ("/graphql", "/api/v1/documents"):
        response = await router.post(
            path, json={"query": "{ __typename }"}, headers={"origin": "https://evil.example"}
        )
        assert response.status_code == 403
        assert code_of(response) == "ORIGIN_NOT_ALLOWED"
        assert "access-control-allow-origin" not in response.headers


async def test_a_local_origin_may_call_in_development(router) -> None:
    origin = "http://localhost:5173"
    preflight = await router.options(
        "/graphql",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    response = await post(router, "{ __typename }", headers={"origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "X-Request-Id" in response.headers["access-control-expose-headers"]


async def test_the_same_origin_is_always_allowed(router) -> None:
    origin = str(router.base_url).rstrip("/")
    response = await post(router, "{ __typename }", headers={"origin": origin})
    assert response.status_code == 200


# --- production: trusted documents, rate limit, timeouts -------------------------------


async def test_production_runs_persisted_documents_by_id(production) -> None:
    response = await production.post("/graphql", json={"documentId": "documents"})
    assert response.status_code == 200, response.text
    assert "nodes" in response.json()["data"]["documents"]
    apq = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "documents"}}}
    assert "errors" not in (await production.post("/graphql", json=apq)).json()


async def test_production_refuses_query_text_and_unknown_ids(production) -> None:
    text = await production.post("/graphql", json={"query": "{ __typename }"})
    assert text.status_code == 400
    assert code_of(text) == "PERSISTED_DOCUMENT_REQUIRED"
    unknown = await production.post("/graphql", json={"documentId": "nope"})
    assert unknown.status_code == 400
    assert code_of(unknown) == "PERSISTED_DOCUMENT_NOT_FOUND"


async def test_production_has_no_introspection_and_no_graphiql(production) -> None:
    response = await production.post("/graphql", json={"documentId": "introspection"})
    assert response.json().get("data") is None
    assert code_of(response) == "INTROSPECTION_DISABLED"
    page = await production.get("/graphql", headers={"accept": "text/html"})
    assert "<html" not in page.text.lower()


async def test_a_client_over_its_rate_limit_gets_429(production) -> None:
    statuses = [
        (await production.post("/graphql", json={"documentId": "documents"})).status_code
        for _ in range(PRODUCTION_RATE_LIMIT)
    ]
    assert statuses == [200] * PRODUCTION_RATE_LIMIT
    refused = await production.post("/graphql", json={"documentId": "documents"})
    assert refused.status_code == 429
    assert code_of(refused) == "TOO_MANY_REQUESTS"
    assert int(refused.headers["retry-after"]) >= 1
    rest = await production.get("/api/v1/documents")
    assert rest.status_code == 429
    assert rest.headers["content-type"] == "application/problem+json"
    assert code_of(rest) == "TOO_MANY_REQUESTS"
    # Probes are not client traffic.
    assert (await production.get("/healthcheck")).status_code == 200


async def test_signed_in_users_have_budgets_of_their_own(production, router) -> None:
    """Per user when signed in (the verified token's `sub`), per address otherwise."""
    ada, bob = await sign_up(router), await sign_up(router)

    async def documents(headers: dict[str, str] | None = None) -> int:
        response = await production.post(
            "/graphql", json={"documentId": "documents"}, headers=headers or {}
        )
        if response.status_code == 429:
            assert code_of(response) == "TOO_MANY_REQUESTS"
            assert int(response.headers["retry-after"]) >= 1
        return response.status_code

    statuses = [await documents(ada.headers) for _ in range(PRODUCTION_RATE_LIMIT + 1)]
    assert statuses == [200] * PRODUCTION_RATE_LIMIT + [429]
    # Bob, behind the same address, has a budget of his own ...
    assert await documents(bob.headers) == 200
    # ... and so has the address: Ada's requests were counted once, against Ada.
    assert await documents() == 200
    # Ada cannot escape with another login from another address: one budget per user.
    login = await router.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": ada.password}
    )
    other = {"authorization": f"Bearer {login.json()['access_token']}"}
    assert await documents({**other, "x-forwarded-for": "192.0.2.77"}) == 429


def unsigned_token(header: dict) -> str:
    """A well-formed RS256 token with good claims and a signature nobody made."""
    claims = {"iss": "hub-identity", "aud": "hub", "sub": "someone", "exp": 4102444800}

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{'A' * 342}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "typ": "JWT", "kid": "a-key-identity-never-published"},
        {"alg": "RS256", "typ": "JWT"},  # no kid: refused whether the JWKS holds one key or more
    ],
    ids=["unknown-kid", "no-kid"],
)
async def test_a_token_naming_no_known_key_is_unauthenticated_not_a_server_error(
    router, header
) -> None:
    for _ in range(3):  # past the JWKS refetch the first unknown key triggers
        response = await router.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"authorization": f"Bearer {unsigned_token(header)}"},
        )
        assert response.status_code == 401, response.text
        assert code_of(response) == "UNAUTHENTICATED"


async def test_tokens_that_do_not_verify_count_against_the_address(production) -> None:
    for n in range(PRODUCTION_RATE_LIMIT):
        forged = {"authorization": f"Bearer eyJhbGciOiJSUzI1NiJ9.e30.forged{n}"}
        response = await production.post(
            "/graphql", json={"documentId": "documents"}, headers=forged
        )
        assert response.status_code in (400, 401)
        assert code_of(response) == "UNAUTHENTICATED"
    refused = await production.post("/graphql", json={"documentId": "documents"})
    assert refused.status_code == 429
    assert code_of(refused) == "TOO_MANY_REQUESTS"


@pytest.mark.parametrize("transport", ["graphql", "rest"])
async def test_a_subgraph_that_does_not_answer_times_out(production, transport) -> None:
    if transport == "graphql":
        response = await production.post("/graphql", json={"documentId": "workflows"})
        assert response.json().get("data") is None
        error = response.json()["errors"][0]
        assert error["extensions"] == {"code": "SUBGRAPH_TIMEOUT", "serviceName": "workflow"}
    else:
        response = await production.get("/api/v1/workflows/instances")
        assert response.status_code == 504
        assert code_of(response) == "SUBGRAPH_TIMEOUT"
