"""Schemathesis against every subgraph's GraphQL endpoint and REST API (OpenAPI), in process.

Each test below is one operation of one subgraph (`test_content_rest[GET /api/v1/documents]`)
tried with a bounded number of generated requests: HUB_FUZZ_EXAMPLES (default 25), raise it
for a deeper local run; the same requests every run unless HUB_FUZZ_RANDOM=1. A response
must not be a server error and must conform to the schema.

The apps are built for fuzzing alone: schemathesis drives ASGI apps on an event loop of its
own (in a thread), while the suite's `apps` fixture holds connections bound to the session
loop. They run over the same throwaway databases.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from conftest import BY_NAME, PASSWORD, SERVICES
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.graphql import nodes
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from subgraphs.common.auth import TokenVerifier
from subgraphs.workflow.service.content import ContentAPI

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "25"))
# The same requests on every run, so that CI's verdict is the code's and not the draw's
# (schemathesis's negative cases can also come out valid once written into a query string:
# a list of strings mutated into `true` is sent as the string "true"). HUB_FUZZ_RANDOM=1
# draws new ones.
DERANDOMIZE = os.environ.get("HUB_FUZZ_RANDOM") != "1"

# A file arrives as a part of a multipart request, never inline: an inline value is refused.
schemathesis.graphql.scalar("Upload", st.just(nodes.String("not a file")))

FUZZ_APPS = {name: BY_NAME[name].app() for name in SERVICES}
# Workflow reads documents from content's API (suggestions): the content app fuzzed here.
FUZZ_APPS["workflow"].state.content_api = ContentAPI(
    "http://content", transport=httpx.ASGITransport(app=FUZZ_APPS["content"])
)
GRAPHQL = {name: schemathesis.graphql.from_asgi("/graphql", app) for name, app in FUZZ_APPS.items()}
REST = {
    name: schemathesis.openapi.from_asgi("/openapi.json", app) for name, app in FUZZ_APPS.items()
}

# The errors a subgraph reports as the caller's (errors.HubError subclasses and the phases
# before execution); INTERNAL_SERVER_ERROR is the only code that says the service failed.
CALLER_ERROR_CODES = {
    "BAD_USER_INPUT",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "NOT_FOUND",
    "CONFLICT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "TOO_MANY_REQUESTS",
}
# Generated queries are valid against the schema, so refusing one before execution is a defect.
REFUSED_UNEXECUTED = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"}

# Not run: `positive_data_acceptance` expects every schema-valid request to succeed, but the
# services validate more than a schema can say (an `ID` or a cursor must decode, an owner must
# exist) and answer BAD_USER_INPUT / 422 / 404, as they should.
EXCLUDED: list[schemathesis.CheckFunction] = [positive_data_acceptance]


# The subgraphs whose fuzzers run as a signed-in user: all of them, so the paths behind
# authentication are fuzzed too, not only their refusals.
SIGNED_IN = {"identity", "content", "communication", "workflow"}
SUBGRAPH_OF = {id(schema): name for schemas in (GRAPHQL, REST) for name, schema in schemas.items()}


def headers_for(case: schemathesis.Case, caller: dict[str, str]) -> dict[str, str]:
    return caller if SUBGRAPH_OF.get(id(case.operation.schema)) in SIGNED_IN else {}


@pytest.fixture(scope="session")
def caller() -> dict[str, str]:
    """Headers that make a fuzzed request come from a real, signed-in user.

    The user registers and logs in through an identity app of its own, on an event loop of
    its own; the fuzzed apps verify the token against the keys `FUZZ_APPS["identity"]`
    publishes from the same database.
    """
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"

    async def sign_up() -> str:
        app = BY_NAME["identity"].app()
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
                registered = await client.post(
                    "/api/v1/auth/register",
                    json={"email": email, "password": PASSWORD, "display_name": "Fuzz"},
                )
                assert registered.status_code == 201, registered.text
                login = await client.post(
                    "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                assert login.status_code == 200, login.text
                return str(login.json()["access_token"])
        finally:
            await app.state.redis.close()
            await app.state.engine.dispose()

    token = asyncio.run(sign_up())  # on a loop of its own, closed after

    async def identity_jwks() -> dict[str, object]:
        transport = httpx.ASGITransport(app=FUZZ_APPS["identity"])
        async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
            return (await client.get("/.well-known/jwks.json")).json()

    hub = BY_NAME["identity"].settings().hub
    for name, app in FUZZ_APPS.items():
        if name != "identity":
            app.state.verifier = TokenVerifier(
                identity_jwks, issuer=hub.jwt_issuer, audience=hub.jwt_audience
            )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session", autouse=True)
def stop_fuzz_apps() -> Iterator[None]:
    """Run the apps' lifespan shutdown (closing their pools) before the databases are dropped."""
    yield
    asgi.shutdown_lifespans()


def no_internal_graphql_errors(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every GraphQL error carries a code, and none says the service failed.

    Replaces `not_a_server_error` for GraphQL, which counts any error code it does not know
    (NOT_FOUND, CONFLICT...) as the server's fault.
    """
    assert response.status_code < 500, f"HTTP {response.status_code}"
    errors = response.json().get("errors") or []
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    unexpected = [code for code in codes if code not in CALLER_ERROR_CODES]
    assert not unexpected, f"errors with codes {unexpected}: {errors}"
    positive = case.meta is None or case.meta.generation.mode.is_positive
    refused = [code for code in codes if code in REFUSED_UNEXECUTED]
    assert not (positive and refused), f"a schema-valid query was refused: {errors}"
    return None


@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def fuzz_graphql(case: schemathesis.Case, caller: dict[str, str]) -> None:
    case.call_and_validate(
        headers=headers_for(case, caller),
        excluded_checks=[not_a_server_error, *EXCLUDED],
        additional_checks=[no_internal_graphql_errors],
    )


@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def fuzz_rest(case: schemathesis.Case, caller: dict[str, str]) -> None:
    case.call_and_validate(headers=headers_for(case, caller), excluded_checks=EXCLUDED)


test_identity_graphql = GRAPHQL["identity"].parametrize()(fuzz_graphql)
test_content_graphql = GRAPHQL["content"].parametrize()(fuzz_graphql)
test_communication_graphql = GRAPHQL["communication"].parametrize()(fuzz_graphql)
test_workflow_graphql = GRAPHQL["workflow"].parametrize()(fuzz_graphql)

test_identity_rest = REST["identity"].parametrize()(fuzz_rest)
test_content_rest = REST["content"].parametrize()(fuzz_rest)
test_communication_rest = REST["communication"].parametrize()(fuzz_rest)
test_workflow_rest = REST["workflow"].parametrize()(fuzz_rest)
