"""Compiled queries (subgraphs/common/compiled.py): for every request, the same HTTP answer
as Strawberry's own path, byte for byte; plain queries are answered by their plan, the rest
(and every error) by Strawberry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import strawberry
from common.test_execution import CONFIG, QUERIES, Colour, Query
from prometheus_client import REGISTRY
from starlette.requests import HTTPConnection
from strawberry import relay
from strawberry.permission import BasePermission

from subgraphs.common.app import HubGraphQL
from subgraphs.common.compiled import CompiledQueries
from subgraphs.common.errors import NotFound
from subgraphs.common.execution import HubExecutionContext, direct_resolver
from subgraphs.common.graphql import ErrorCodes, RejectBadTokens


class FakeContext:
    """What the views read of a context: the caller's token error, if any."""

    def __init__(self, auth_error: Exception | None = None) -> None:
        self.auth_error = auth_error
        self.resolved: list[str] = []


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Cat(Named):
    lives: int


@strawberry.type
class Dog(Named):
    good: bool


Pet = Annotated[Cat | Dog, strawberry.union("Pet")]
PETS: list[Any] = [Cat(name="Tom", lives=9), Dog(name="Rex", good=True), None]


@strawberry.federation.type(keys=["id"])
class Product:
    id: strawberry.ID
    name: str

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Product | None:
        if id == "broken":
            raise NotFound("no such product")
        return None if id == "gone" else Product(id=id, name=f"product {id}")


class Nobody(BasePermission):
    message = "nobody may read this"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Vault:
    # A field without a resolver but with a permission class is no attribute read.
    secret: str = strawberry.field(default="s3cret", permission_classes=[Nobody])
    label: str = "vault"


@strawberry.input
class Window:
    start: int = 0
    colours: list[Colour] | None = None


@strawberry.type
class Extra(Query):
    @strawberry.field
    def arranged(
        self,
        info: strawberry.Info,
        window: Window | None = None,
        colour: Colour = Colour.RED,
        note: strawberry.Maybe[str | None] = None,
        ids: list[strawberry.ID] | None = None,
        node: relay.GlobalID | None = None,
    ) -> str:
        """Arguments of every kind Strawberry converts, as the resolver receives them."""
        seen = (window, colour, note, ids, node and (node.type_name, node.node_id))
        return f"{seen!r} {info.field_name} {info.path.as_list()}"

    @strawberry.field(permission_classes=[Nobody])
    def guarded(self, word: str = "x") -> str:
        return word

    @strawberry.field
    def vault(self) -> Vault:
        return Vault()

    @strawberry.field
    def pets(self) -> list[Pet | None]:
        return PETS

    @strawberry.field
    def named(self) -> list[Named]:
        return [pet for pet in PETS if pet is not None]

    @strawberry.field
    def odd_pet(self) -> Pet | None:
        return Product(id=strawberry.ID("1"), name="not a pet")  # type: ignore[return-value]

    @strawberry.field
    async def slow_pets(self) -> list[Pet]:
        return [pet for pet in PETS if pet is not None]

    @strawberry.field
    def who(self, info: strawberry.Info) -> str:
        info.context.resolved.append("who")
        return "me"

    @strawberry.field
    def missing(self) -> str | None:
        raise NotFound("nothing here")

    @strawberry.field
    def typed(self, words: list[str], times: int = 2) -> list[str]:
        return [word * times for word in words]

    @strawberry.field
    def noted(self, info: strawberry.Info) -> str:
        info.context.response.headers["x-noted"] = "yes"
        return "noted"

    @strawberry.field
    def same(self, info: strawberry.Info) -> str:
        """What a resolver sees of its info is graphql-core's own."""
        return f"{info.path.as_list()} {sorted(info.variable_values)} {info.field_name}"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def poke(self) -> int:
        return 1


def _schema(**options: Any) -> strawberry.federation.Schema:
    return strawberry.federation.Schema(
        query=Extra,
        mutation=Mutation,
        types=[Product],
        config=CONFIG,
        extensions=[RejectBadTokens, ErrorCodes],
        **options,
    )


SCHEMA = _schema(execution_context_class=HubExecutionContext)  # as the subgraphs' own
REFERENCE = _schema()  # Strawberry and graphql-core as they come: what every answer must be

EXTRA_QUERIES = [
    "{ who }",
    "{ missing }",
    '{ typed(words: ["a", "b"]) }',
    "query($w: [String!]!, $t: Int) { typed(words: $w, times: $t) same }",
    "query Named { who } query Other { same }",
    "{ items(first: 2) { ... on Item { id } ...on Owner { id } } }",
    "{ __schema { queryType { name } } }",
    "{ __typename a: __typename items(first: 1) { __typename id } }",
    "mutation { poke }",
    "{ nope }",
    "{ items(first: 2) { id ",
    "query($n: Int!) { items(first: $n) { id } }",
    "{ items(first: 2) { id @include(if: false) title @skip(if: false) } }",
    "{ pets { __typename ... on Cat { name lives } ... on Dog { name good } } }",
    "{ named { __typename name ... on Dog { good } } slowPets { ... on Named { name } } }",
    "{ oddPet { ... on Cat { lives } } }",
    "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id name } } }",
    "{ _service { sdl } }",
    "{ vault { label secret } }",
    "{ vault { label } }",
]
VARIABLES: dict[str, Any] = {
    "query($w: [String!]!, $t: Int) { typed(words: $w, times: $t) same }": {
        "w": ["x"],
        "t": 3,
    },
    "query($n: Int!) { items(first: $n) { id } }": {"n": "three"},
}
ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id name } } }"
VARIABLES[ENTITIES] = {
    "r": [{"__typename": "Product", "id": "1"}, {"__typename": "Product", "id": "gone"}]
}


def _view(compiled: bool, auth_error: Exception | None = None) -> HubGraphQL:
    async def context(_: HTTPConnection) -> Any:
        return FakeContext(auth_error)

    schema = SCHEMA if compiled else REFERENCE
    return HubGraphQL(schema, context_getter=context, compiled_queries=compiled)


@pytest.fixture
def compiled_answers() -> Iterator[list[str]]:
    """The queries a plan answered (and did not hand back to Strawberry)."""
    answered: list[str] = []
    original = CompiledQueries.execute

    async def recording(self: CompiledQueries, plan: Any, context: Any, variables: Any) -> Any:
        data = await original(self, plan, context, variables)
        answered.append(plan.document.loc.source.body)
        return data

    CompiledQueries.execute = recording  # type: ignore[method-assign]
    try:
        yield answered
    finally:
        CompiledQueries.execute = original  # type: ignore[method-assign]


async def _post(
    view: HubGraphQL, body: Any, content_type: str = "application/json", accept: str = "*/*"
) -> Any:
    transport = httpx.ASGITransport(app=view)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": content_type, "accept": accept}
        response = await client.post("/graphql", content=content, headers=headers)
    return response.status_code, response.headers.get("content-type"), response.content


def _body(query: str, operation_name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if query in VARIABLES:
        body["variables"] = VARIABLES[query]
    if operation_name:
        body["operationName"] = operation_name
    return body


@pytest.mark.parametrize("query", [*QUERIES, *EXTRA_QUERIES])
async def test_the_answer_is_strawberrys_own(query: str, compiled_answers: list[str]) -> None:
    body = _body(query, "Other" if "query Other" in query else None)
    if "$s" in query:
        body["variables"] = {"s": True}
    expected = await _post(_view(compiled=False), body)
    assert compiled_answers == []
    got = await _post(_view(compiled=True), body)
    assert got == expected
    payload = json.loads(got[2])
    if compiled_answers:  # answered by its plan: only ever a clean answer
        assert "errors" not in payload


async def test_what_the_router_asks_is_answered_by_a_plan_as_by_strawberry(
    compiled_answers: list[str],
) -> None:
    """Hive Gateway's subgraph requests accept multipart/mixed too (for subscriptions)."""
    accept = "application/graphql-response+json, application/json, multipart/mixed"
    body = _body(ENTITIES)
    expected = await _post(_view(compiled=False), body, accept=accept)
    assert await _post(_view(compiled=True), body, accept=accept) == expected
    assert len(compiled_answers) == 1


async def test_plain_queries_are_answered_by_their_plan(compiled_answers: list[str]) -> None:
    for query in (
        "{ items { id title note colour picky count tags owner { id name } maybeOwner { id } } }",
        "{ __typename a: __typename items(first: 1) { __typename id } }",
        '{ typed(words: ["a", "b"]) }',
        "query($w: [String!]!, $t: Int) { typed(words: $w, times: $t) same }",
        "{ items(first: 2) { ... on Item { id } ...F } } fragment F on Item { title }",
        "{ pets { __typename ... on Cat { name lives } ... on Dog { name good } } }",
        "{ named { __typename name ... on Dog { good } } slowPets { ... on Named { name } } }",
        ENTITIES,
        "{ _service { sdl } }",
        "{ converted { id title note tags count } }",  # numbers and bools in String and ID
    ):
        await _post(_view(compiled=True), _body(query))
    assert len(compiled_answers) == 10


async def _exchange(view: HubGraphQL, body: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    transport = httpx.ASGITransport(app=view)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/graphql", json=body)
    return response.status_code, response.headers.multi_items(), response.content


@pytest.mark.parametrize("query", ["{ items(first: 2) { id title } }", "{ noted who }"])
async def test_a_plans_response_is_strawberrys_to_the_header(
    query: str, compiled_answers: list[str]
) -> None:
    """Headers included, and those a resolver set on the response (`noted`)."""
    expected = await _exchange(_view(compiled=False), {"query": query})
    assert await _exchange(_view(compiled=True), {"query": query}) == expected
    assert compiled_answers == [query]
    if "noted" in query:
        assert ("x-noted", "yes") in expected[1]


@pytest.mark.parametrize(
    "times",
    [1, 3, 2.0, 2.5, 12345678901234567890123, 2**31, -(2**63) - 1, "x", None],
)
async def test_one_plan_answers_each_request_with_its_own_variables(times: Any) -> None:
    """The plan's executor is copied for each request: its variables are coerced anew,
    numbers past 64 bits included, as Strawberry coerces them."""
    query = "query($w: [String!]!, $t: Int) { typed(words: $w, times: $t) same }"
    body = {"query": query, "variables": {"w": ["ab"], "t": times}}
    view = _view(compiled=True)
    await _post(view, {"query": query, "variables": {"w": ["z"], "t": 1}})  # plan made
    assert await _post(view, body) == await _post(_view(compiled=False), body)


async def test_concurrent_requests_of_one_plan_keep_to_their_own_variables() -> None:
    view = _view(compiled=True)
    query = "query($w: [String!]!, $t: Int) { typed(words: $w, times: $t) }"
    asked = [(str(n), n % 3 + 1) for n in range(30)]
    answers = await asyncio.gather(
        *(_post(view, {"query": query, "variables": {"w": [w], "t": t}}) for w, t in asked)
    )
    for (word, times), (status, _, content) in zip(asked, answers, strict=True):
        assert status == 200 and json.loads(content) == {"data": {"typed": [word * times]}}


ARRANGED = (
    "query($w: Window, $c: Colour, $n: String, $i: [ID!], $g: ID)"
    " { arranged(window: $w, colour: $c, note: $n, ids: $i, node: $g) a: arranged }"
)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ arranged }", None),
        (
            "{ arranged(window: {start: 2, colours: [BLUE]}, colour: BLUE, note: null"
            ' ids: ["a"]) }',
            None,
        ),
        (ARRANGED, {}),
        (ARRANGED, {"w": {"colours": ["RED", "BLUE"]}, "c": "BLUE", "n": "hi", "i": ["1", "2"]}),
        (ARRANGED, {"w": None, "n": None, "i": [], "g": "SXRlbTox"}),  # GlobalID of Item:1
    ],
)
async def test_a_resolvers_arguments_are_converted_as_strawberry_converts_them(
    query: str, variables: Any, compiled_answers: list[str]
) -> None:
    """Plans call a resolver without Strawberry's chain (`direct_resolver`) where no field
    extension applies: input objects, enums, `Maybe`, lists and GlobalIDs still arrive as
    Strawberry's chain hands them over."""
    body = {"query": query, "variables": variables}
    expected = await _post(_view(compiled=False), body)
    assert await _post(_view(compiled=True), body) == expected
    assert compiled_answers == [query] and b"errors" not in expected[2]


def test_a_resolver_with_an_extension_keeps_strawberrys_chain() -> None:
    query_type = SCHEMA._schema.query_type
    assert query_type is not None
    fields = query_type.fields
    assert direct_resolver(fields["guarded"], SCHEMA) is None  # a permission class
    assert direct_resolver(fields["arranged"], SCHEMA) is not None
    assert direct_resolver(fields["vault"], REFERENCE) is not None


async def test_the_rest_is_left_to_strawberry(compiled_answers: list[str]) -> None:
    for query in (
        "{ missing }",  # a resolver's error
        "{ loose { id title picky } }",  # values graphql-core refuses
        "mutation { poke }",
        "{ __schema { queryType { name } } }",
        "query($s: Boolean!) { items { id title @skip(if: $s) } }",
        "query($n: Int!) { items(first: $n) { id } }",  # refused variables
        "{ oddPet { ... on Cat { lives } } }",  # a value of no possible type
        "{ vault { secret } }",  # a permission class refuses it
        '{ guarded(word: "y") }',  # ... a resolver's own
    ):
        await _post(_view(compiled=True), {"query": query, "variables": {"s": True, "n": "x"}})
    broken = {"r": [{"__typename": "Product", "id": "broken"}]}
    await _post(_view(compiled=True), {"query": ENTITIES, "variables": broken})
    assert compiled_answers == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'["a list"]', "application/json"),
        (json.dumps({"query": "{ who }", "extensions": {"x": 1}}).encode(), "application/json"),
        (json.dumps({"query": "{ who }", "variables": [1]}).encode(), "application/json"),
        (json.dumps({"query": 7}).encode(), "application/json"),
        (json.dumps({"query": "{ who }"}).encode(), "text/plain"),
        (json.dumps({"query": "{ who }", "surprise": 1}).encode(), "application/json"),
    ],
)
async def test_odd_requests_reach_strawberry_unread(
    body: bytes, content_type: str, compiled_answers: list[str]
) -> None:
    expected = await _post(_view(compiled=False), body, content_type)
    assert await _post(_view(compiled=True), body, content_type) == expected
    assert compiled_answers == []


async def test_a_bad_token_is_refused_as_before(compiled_answers: list[str]) -> None:
    error = NotFound("stand-in for a bad token's error")
    expected = await _post(_view(compiled=False, auth_error=error), {"query": "{ who }"})
    assert await _post(_view(compiled=True, auth_error=error), {"query": "{ who }"}) == expected
    assert b"errors" in expected[2] and compiled_answers == []


async def test_metrics_count_who_answered() -> None:
    def count(outcome: str) -> float:
        labels = {"service": "unknown", "outcome": outcome}
        return REGISTRY.get_sample_value("hub_graphql_compiled_total", labels) or 0.0

    before = {outcome: count(outcome) for outcome in ("answered", "not_compiled", "bailed")}
    view = _view(compiled=True)
    await _post(view, {"query": "{ who }"})
    await _post(view, {"query": "mutation { poke }"})
    await _post(view, {"query": "{ missing }"})
    assert {outcome: count(outcome) - n for outcome, n in before.items()} == {
        "answered": 1,
        "not_compiled": 1,
        "bailed": 1,
    }


def test_answers_are_encoded_whatever_they_hold() -> None:
    """orjson for speed; what it refuses (integers past 64 bits in a JSON scalar) still
    encodes; text, since WebSocket frames must be text."""
    view = _view(compiled=True)
    for data in ({"n": 2**70, "s": "ünï ✓"}, {"data": {"n": 1.5, "l": [None, True]}}):
        encoded = view.encode_json(data)
        assert isinstance(encoded, str) and json.loads(encoded) == data


async def test_a_permission_class_is_never_skipped() -> None:
    status, _, body = await _post(_view(compiled=True), {"query": "{ vault { label secret } }"})
    answer = json.loads(body)
    assert status == 200 and b"s3cret" not in body
    assert answer["errors"][0]["message"] == "nobody may read this"


def test_a_page_of_attribute_reads_is_completed_in_one_plain_pass() -> None:
    queries = CompiledQueries(_view(compiled=True), "test")
    page = queries.plan("{ items { id title colour tags owner { id name } } }", None)
    assert page is not None and page.root.fields[0].plain is not None
    # A resolver below (shout) needs graphql-core's way: a path, an info, awaitables.
    with_resolver = queries.plan("{ items { id shout } }", None)
    assert with_resolver is not None and with_resolver.root.fields[0].plain is None
