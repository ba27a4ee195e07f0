"""Execution shortcuts (subgraphs/common/execution.py): whatever the query, the answer and
its errors are graphql-core's own, while plain fields skip graphql-core's per-field work."""

from __future__ import annotations

import asyncio
import copy
import enum
import gc
import uuid
import weakref
from collections.abc import AsyncGenerator, Iterator
from typing import Any, NewType

import pytest
import strawberry
from graphql import ExecutionResult, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult as StrawberryResult
from strawberry.types import Info

from subgraphs.common.auth import Principal
from subgraphs.common.execution import HubExecutionContext
from subgraphs.common.graphql import Context, federated_schema


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _serialize_picky(value: Any) -> str:
    if value == "bad":
        raise ValueError("picky refuses 'bad'")
    return str(value)


Picky = NewType("Picky", str)
CONFIG = StrawberryConfig(
    scalar_map={Picky: strawberry.scalar(name="Picky", serialize=_serialize_picky, parse_value=str)}
)


@strawberry.type
class Owner:
    id: strawberry.ID
    name: str | None


@strawberry.type
class Item:
    id: strawberry.ID
    title: str
    note: str | None
    colour: Colour
    picky: Picky | None
    owner: Owner
    maybe_owner: Owner | None
    tags: list[str]
    count: int

    @strawberry.field
    def shout(self) -> str:
        return self.title.upper()

    @strawberry.field
    async def later(self, plus: int = 1) -> int:
        return self.count + plus

    @strawberry.field
    def boom(self) -> str | None:
        raise ValueError("boom")


class Later:
    """An awaitable that may be awaited again (each schema under test awaits it)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return asyncio.sleep(0, self.value).__await__()


ID = strawberry.ID


def _item(n: int, **changes: Any) -> Item:
    values: dict[str, Any] = {
        "id": f"item-{n}",
        "title": f"Title {n}",
        "note": None if n % 2 else f"note {n}",
        "colour": Colour.RED if n % 3 else Colour.BLUE,
        "picky": f"p{n}",
        "owner": Owner(id=strawberry.ID(f"owner-{n % 4}"), name=None if n % 5 else "Ann"),
        "maybe_owner": None if n % 2 else Owner(id=strawberry.ID(f"m-{n}"), name="Bo"),
        "tags": [f"t{n}", "x"],
        "count": n,
    }
    values.update(changes)
    return Item(**values)


GOOD = [_item(n) for n in range(20)]
# Each breaks one rule that only graphql-core knows how to report.
BROKEN = [
    _item(100, title=None),  # null in a non-null leaf
    _item(101, picky="bad"),  # a scalar that refuses its value
    _item(102, owner=None),  # null in a non-null object
    _item(103, count="many"),  # an Int that is not one
    _item(104, colour="green"),  # not a member of the enum
    _item(105, tags=None),  # null in a non-null list
    _item(106, id=ValueError("an error as a value")),  # graphql-core reports it
    _item(109, count=2**31),  # an int outside Int's range
]
# Not broken: graphql-core's serializers convert them (String and ID from numbers and bools,
# Int from a bool).
CONVERTED = [_item(111, id=7, title=5, note=True, tags=[1, 2.5, False], count=True)]
# Not broken, though no plain value: graphql-core awaits an awaitable wherever it is.
AWAITED = [
    _item(107, title=Later("an awaited title"), owner=Later(Owner(id=ID("o"), name="Cy"))),
    _item(108, tags=[Later("an awaited tag")]),
]


@strawberry.type
class Query:
    @strawberry.field
    async def items(self, first: int = 20) -> list[Item]:
        return GOOD[:first]

    @strawberry.field
    def loose(self) -> list[Item | None]:
        return [GOOD[0], *BROKEN, GOOD[1]]

    @strawberry.field
    def awaited(self) -> list[Item]:
        return AWAITED

    @strawberry.field
    def converted(self) -> list[Item]:
        return CONVERTED

    @strawberry.field
    def strict(self) -> list[Item]:
        return [GOOD[0], BROKEN[0]]

    @strawberry.field
    def one(self, broken: int | None = None) -> Item | None:
        return GOOD[3] if broken is None else BROKEN[broken]


QUERIES = [
    "{ items { id title note colour picky count tags owner { id name } maybeOwner { id } } }",
    "{ items(first: 3) { __typename id shout later(plus: 2) boom owner { __typename id } } }",
    "{ items { a: id b: title id ...F owner { ...O } } } fragment F on Item { title colour }"
    " fragment O on Owner { id name }",
    "query($s: Boolean!) { items { id title @skip(if: $s) note @include(if: $s) } }",
    "{ loose { id title picky count colour tags owner { id } } }",
    "{ strict { id title } }",
    "{ loose { id } strict { id } items(first: 1) { id } }",
    *(
        f"{{ one(broken: {n}) {{ id title picky owner {{ id }} count colour tags }} }}"
        for n in range(len(BROKEN))
    ),
    "{ one { id title } loose { title } }",
    "{ awaited { id title tags owner { id name } } }",
    "{ converted { id title note tags count } }",
]


def _schemas(extensions: list[Any] | None = None) -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query, extensions=extensions or [], config=CONFIG)
    shortcut = strawberry.Schema(
        query=Query,
        extensions=extensions or [],
        config=CONFIG,
        execution_context_class=HubExecutionContext,
    )
    return plain, shortcut


def _outcome(result: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    errors = [
        (e.message, e.path, [(loc.line, loc.column) for loc in e.locations or []])
        for e in result.errors or []
    ]
    return result.data, errors


@pytest.mark.parametrize("query", QUERIES)
async def test_answers_and_errors_are_graphql_cores_own(query: str) -> None:
    plain, shortcut = _schemas()
    variables = {"s": True} if "$s" in query else None
    expected = await plain.execute(query, variable_values=variables)
    got = await shortcut.execute(query, variable_values=variables)
    assert _outcome(got) == _outcome(expected)
    if "loose { id title" in query or "broken" in query or "strict { id title" in query:
        assert expected.errors  # the broken rows are reported, not hidden


@pytest.fixture
def graphql_core_fields() -> Iterator[list[str]]:
    """The fields that went through graphql-core's per-field execution."""
    seen: list[str] = []
    original = HubExecutionContext.execute_field

    def counting(self: Any, parent_type: Any, source: Any, details: Any, *args: Any) -> Any:
        seen.append(f"{parent_type.name}.{details[0].node.name.value}")
        return original(self, parent_type, source, details, *args)

    HubExecutionContext.execute_field = counting  # type: ignore[method-assign, assignment]
    try:
        yield seen
    finally:
        HubExecutionContext.execute_field = original  # type: ignore[method-assign]


async def test_plain_fields_of_a_page_skip_graphql_cores_field_execution(
    graphql_core_fields: list[str],
) -> None:
    _, shortcut = _schemas()
    result = await shortcut.execute(
        "{ items { id title note colour picky count tags owner { id name } later } }"
    )
    assert result.errors is None and result.data is not None
    assert len(result.data["items"]) == 20
    # The root and the resolver field go through graphql-core; of the plain fields, only
    # the nulls and the list do, since graphql-core decides what a null means there.
    assert graphql_core_fields.count("Query.items") == 1
    assert graphql_core_fields.count("Item.later") == 20
    assert graphql_core_fields.count("Item.tags") == 20
    assert graphql_core_fields.count("Item.note") == 10  # the 10 nulls
    assert graphql_core_fields.count("Owner.name") == 16  # the 16 nulls
    for plain_field in ("Item.id", "Item.title", "Item.colour", "Item.owner", "Owner.id"):
        assert plain_field not in graphql_core_fields


class CountResolves(SchemaExtension):
    calls = 0

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        CountResolves.calls += 1
        return _next(root, info, *args, **kwargs)


async def test_an_extension_that_wraps_resolvers_sees_every_field() -> None:
    plain, shortcut = _schemas(extensions=[CountResolves])
    query = "{ items(first: 5) { id title owner { id } } }"
    CountResolves.calls = 0
    expected = await plain.execute(query)
    calls_without = CountResolves.calls
    CountResolves.calls = 0
    got = await shortcut.execute(query)
    assert got.data == expected.data
    assert CountResolves.calls == calls_without == 1 + 5 * 4


def test_every_subgraph_schema_executes_with_the_shortcuts() -> None:
    @strawberry.type
    class Q:
        ping: str = "pong"

    assert federated_schema(query=Q).execution_context_class is HubExecutionContext


def test_an_executor_copies_as_copy_copy_would() -> None:
    """graphql-core copies the executor for each event of a subscription."""
    _, shortcut = _schemas()
    executor = HubExecutionContext.build(
        shortcut._schema, parse("{ items { id } }"), None, {"a": "context"}, None, None
    )
    assert isinstance(executor, HubExecutionContext)
    copied = copy.copy(executor)
    assert type(copied) is HubExecutionContext and copied is not executor
    assert copied.__dict__ == executor.__dict__
    event = executor.build_per_event_executor({"payload": 1})
    assert event.root_value == {"payload": 1} and executor.root_value is None


# What an executor made for another request may share with the one it was copied from:
# the document's parts and options, never touched by an execution.
_SHARED_BETWEEN_REQUESTS = {"fragment_definitions", "fragments", "operation_extensions"}


def test_an_executor_for_another_request_shares_no_execution_state() -> None:
    """Compiled plans copy one executor per request (`for_request`) instead of building
    one: it must be what building one for that request gives, with nothing of the
    execution shared. A graphql-core release that adds execution state fails here."""
    _, shortcut = _schemas()
    document = parse("query($n: Int) { items(first: $n) { id } }")
    template = HubExecutionContext.build(shortcut._schema, document, None, None, {"n": 1}, None)
    built = HubExecutionContext.build(shortcut._schema, document, None, "ctx", {"n": 2}, None)
    assert isinstance(template, HubExecutionContext) and isinstance(built, HubExecutionContext)
    made = template.for_request("ctx", built.variable_values)

    assert made.__dict__.keys() == built.__dict__.keys()
    assert made.context_value == "ctx" and made.variable_values is built.variable_values
    assert made.async_helpers is not template.async_helpers
    for name, value in made.__dict__.items():
        if isinstance(value, (list, dict, set)) or type(value).__name__ in (
            "RefMap",
            "CollectedErrors",
        ):
            if name not in _SHARED_BETWEEN_REQUESTS:
                assert value is not template.__dict__[name], f"{name} is shared"
                assert type(value) is type(built.__dict__[name])
                if isinstance(value, (list, dict, set)):
                    assert value == built.__dict__[name], name  # as fresh as a built one's
        elif name not in ("context_value", "variable_values", "async_helpers"):
            assert value == built.__dict__[name], name


async def test_events_of_a_subscription_leave_nothing_behind() -> None:
    """Each event of a subscription executes with an executor of its own; what it memoizes
    must not outlive it (it did: a few dozen objects a frame, for as long as the stream)."""
    _, shortcut = _schemas()
    executor = HubExecutionContext.build(
        shortcut._schema, parse("{ items(first: 2) { id owner { id name } } }"), None, None
    )
    assert isinstance(executor, HubExecutionContext)
    sizes = []
    for event in range(30):
        executed = executor.build_per_event_executor(None).execute_operation()
        result = await executed if asyncio.iscoroutine(executed) else executed
        assert isinstance(result, ExecutionResult) and result.data is not None, event
        assert len(result.data["items"]) == 2
        sizes.append((len(executor._relevant_sub_fields), len(executor._steps)))
    assert sizes[-1] == sizes[0]


@strawberry.federation.type(keys=["id"])
class Part:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, info: Info, id: strawberry.ID) -> Part:
        return Part(id=id)


@strawberry.type
class PartsQuery:
    @strawberry.field
    async def parts(self, first: int = 3) -> list[Part]:
        return [Part(id=ID(f"p{n}")) for n in range(first)]


class _Caller:
    """A context the test can watch die."""

    auth_error = None


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($n: Int!) { parts(first: $n) { id } }", {"n": 2}),
        (
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Part { id } } }",
            {"r": [{"__typename": "Part", "id": "p1"}, {"__typename": "Part", "id": "p2"}]},
        ),
    ],
)
async def test_an_execution_is_freed_as_soon_as_it_ends(query: str, variables: Any) -> None:
    """No reference cycle keeps an execution's objects (its context, the request) alive
    until the garbage collector runs: graphql-core's resolver helpers and Strawberry's
    `_entities` (which wrote the info into the request's variables) each made one."""
    schema = federated_schema(query=PartsQuery, types=[Part])
    copy_of = copy.deepcopy(variables)
    await schema.execute(query, variable_values=copy_of, context_value=_Caller())  # caches
    gc.collect()
    gc.disable()
    try:
        caller = _Caller()
        alive = weakref.ref(caller)
        result = await schema.execute(query, variable_values=variables, context_value=caller)
        assert not result.errors and result.data
        del caller, result
        assert alive() is None
        assert gc.collect() == 0
    finally:
        gc.enable()
    if "r" in variables:
        assert variables["r"][0] == {"__typename": "Part", "id": "p1"}  # left as given


def test_a_loader_does_not_keep_its_context_alive() -> None:
    async def batch(session: Any, keys: list[int]) -> list[int]:
        return keys

    gc.collect()
    gc.disable()
    try:
        context = Context(settings=None, session=None, redis=None)  # type: ignore[arg-type]
        alive = weakref.ref(context)
        context.loader(batch)
        del context
        assert alive() is None
    finally:
        gc.enable()


@strawberry.type
class Event:
    id: strawberry.ID
    calls: strawberry.Private[list[str]]

    @strawberry.field
    def seen_by(self, info: Info) -> str:
        self.calls.append(str(info.context.principal.user_id))
        return str(info.context.principal.user_id)


def _event_schema(events: asyncio.Queue[Event | None]) -> strawberry.Schema:
    """Every subscription receives the same event objects, as a shared Redis channel
    hands them out (`Namespace.shared`)."""
    listeners: list[asyncio.Queue[Event | None]] = []

    async def fan_out() -> None:
        while (event := await events.get()) is not None:
            for listener in listeners:
                listener.put_nowait(event)
        for listener in listeners:
            listener.put_nowait(None)

    @strawberry.type
    class Query:
        ping: str = "pong"

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def happened(self, kind: str = "any") -> AsyncGenerator[Event, None]:
            mine: asyncio.Queue[Event | None] = asyncio.Queue()
            listeners.append(mine)
            if len(listeners) == 1:
                asyncio.get_running_loop().create_task(fan_out())
            while (event := await mine.get()) is not None:
                yield event

    return federated_schema(query=Query, subscription=Subscription)


def _caller(user: uuid.UUID, *, session: uuid.UUID | None = None, roles: Any = ()) -> Context:
    principal = Principal(user_id=user, roles=frozenset(roles), session_id=session or uuid.uuid4())
    return Context(settings=None, session=None, redis=None, principal=principal)  # type: ignore[arg-type]


async def test_a_users_identical_subscriptions_share_each_events_execution() -> None:
    """A user's tabs and devices (other sessions, one caller) subscribing to the same
    operation with the same variables get one execution's result per event; another
    caller, other rights or other variables get executions of their own."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    query = "subscription($kind: String!) { happened(kind: $kind) { id seenBy } }"
    subscribers = [
        (_caller(alice), {"kind": "any"}),
        (_caller(alice), {"kind": "any"}),  # another device of hers
        (_caller(alice), {"kind": "any"}),
        (_caller(alice, roles=["admin"]), {"kind": "any"}),  # other rights
        (_caller(alice), {"kind": "other"}),  # other variables
        (_caller(bob), {"kind": "any"}),
    ]
    events: asyncio.Queue[Event | None] = asyncio.Queue()
    schema = _event_schema(events)
    streams = []
    for context, variables in subscribers:
        stream = await schema.subscribe(query, variable_values=variables, context_value=context)
        assert not isinstance(stream, ExecutionResult | StrawberryResult), stream
        streams.append(stream)
    firsts = [asyncio.ensure_future(anext(stream)) for stream in streams]
    await asyncio.sleep(0.01)  # every subscription listening
    calls: list[str] = []
    events.put_nowait(Event(id=strawberry.ID("e1"), calls=calls))
    results = await asyncio.gather(*firsts)
    assert [r.data for r in results] == [
        {"happened": {"id": "e1", "seenBy": str(user)}}
        for user in (alice, alice, alice, alice, alice, bob)
    ]
    assert not any(r.errors for r in results)
    assert sorted(calls) == sorted([str(alice)] * 3 + [str(bob)])

    calls.clear()  # the next event: executed anew, shared again
    seconds = [asyncio.ensure_future(anext(stream)) for stream in streams]
    events.put_nowait(Event(id=strawberry.ID("e2"), calls=calls))
    results = await asyncio.gather(*seconds)
    assert [(r.data or {})["happened"]["id"] for r in results] == ["e2"] * 6
    assert len(calls) == 4
    events.put_nowait(None)
    for stream in streams:
        await stream.aclose()
