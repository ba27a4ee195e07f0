"""Strawberry plumbing shared by the subgraphs: schema factory, request context, error codes."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from typing import Any, Concatenate, Final, Generic, ParamSpec, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension, ValidationCache
from strawberry.fastapi import BaseContext
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types import Info
from strawberry.types.nodes import Selection

from subgraphs.common.auth import Principal, TokenVerifier, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.errors import BadInput, HubError
from subgraphs.common.execution import HubExecutionContext
from subgraphs.common.redis import Namespace
from subgraphs.common.settings import ServiceSettings
from subgraphs.common.subscriptions import Schema

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")
P = ParamSpec("P")

# Composition with @theguild/federation-composition accepts federation up to 2.9.
FEDERATION_VERSION: Final = "2.9"


class Context(BaseContext):
    """Per-request state: the caller, where to get a session, Redis, this request's loaders.

    Resolvers open a short session per use (`async with ctx.session() as s`) instead of
    sharing one: Strawberry runs sibling resolvers and DataLoader batches concurrently,
    and one AsyncSession must not be used by two coroutines at once.

    `ctx.reader()` is a session for reads only (DataLoader batches, lists, search): it
    runs in autocommit, so it sends no BEGIN and no ROLLBACK around its statements, two
    round trips fewer. Each statement still sees one consistent snapshot, as in the READ
    COMMITTED transactions of `ctx.session()`; anything that writes uses `ctx.session()`.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        session: async_sessionmaker[AsyncSession],
        redis: Namespace,
        principal: Principal | None = None,
        auth_error: HubError | None = None,
        *,
        reader: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.session = session
        self.reader = reader or session
        self.redis = redis
        self.principal = principal
        # A bad token refuses the whole operation (see `RejectBadTokens`), not only the
        # fields that look at the caller.
        self.auth_error = auth_error
        self.verifier: TokenVerifier | None = None
        self._loaders: dict[Any, DataLoader[Any, Any]] = {}

    @property
    def client(self) -> ClientInfo:
        return ClientInfo.of(self.request)

    @property
    def user(self) -> Principal:
        """The signed-in caller; UNAUTHENTICATED when there is none."""
        return require_user(self.principal)

    def loader(
        self,
        batch: Callable[Concatenate[AsyncSession, list[K], P], Awaitable[Sequence[V]]],
        *args: P.args,
        **bound: P.kwargs,
    ) -> DataLoader[K, V]:
        """The request's DataLoader for `batch(session, keys, **bound)`, made on first use.

        `bound` carries what the batch needs besides the keys, typically the caller
        (`principal=ctx.principal`) so that access rules apply inside the one query.
        """
        if args:
            raise TypeError("pass what a loader's batch needs besides the keys by name")
        cache_key = (batch, tuple((name, id(value)) for name, value in sorted(bound.items())))
        if cache_key not in self._loaders:
            # Not `self.reader`: a loader closing over the context that holds it would be a
            # reference cycle, keeping the request's objects until a garbage collection.
            reader = self.reader

            async def load(keys: list[K]) -> Sequence[V]:
                async with reader() as session:
                    return await batch(session, keys, *args, **bound)

            self._loaders[cache_key] = DataLoader(load_fn=load)
        return self._loaders[cache_key]

    def event_results_key(self) -> Hashable:
        """What a subscription's result of an event may depend on, of this connection:
        the caller and their rights — not the session or the token, which differ between a
        user's devices. Subscriptions of one operation, variables and key send one
        execution's result (subgraphs/common/execution.py, `_EventResults`): a resolver
        under a subscription must read nothing else of the connection (its address, its
        headers)."""
        caller = self.principal
        if caller is None:
            return ("anonymous",)
        return (
            caller.user_id,
            caller.scopes,
            caller.roles,
            frozenset(caller.organizations.items()),
        )

    def clear_loaders(self) -> None:
        """Forget what the loaders cached: a subscription's context outlives each event."""
        self._loaders.clear()


class RejectBadTokens(SchemaExtension):
    """An invalid, expired or forged token fails the operation with UNAUTHENTICATED."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        error = getattr(context, "auth_error", None)
        if error is not None:
            raise error
        yield


HubInfo = Info[Context, None]


class BySelection(Generic[T]):
    """What a resolver works out from the names its field selects (fields and fragments, not
    argument values, which may name variables), kept per field of a parsed document.

    `info.selected_fields` converts the whole selection, arguments included, on each call:
    ~20 µs for a page of documents (~3 % of content's list), and once per entity in an
    `_entities` batch. The field nodes of a parsed document (kept by the parser cache and
    the compiled plans) always select the same names, fragments included: a document's
    nodes are its own. An entry holds the nodes it is keyed by, so that their ids are not
    reused while it lives; `@skip`/`@include` do not change what `selected_fields` lists.
    """

    def __init__(self, compute: Callable[[list[Selection]], T], kept: int = 256) -> None:
        self.compute = compute
        self.kept = kept
        self.entries: OrderedDict[tuple[int, ...], tuple[tuple[Any, ...], T]] = OrderedDict()

    def __call__(self, info: Info[Any, Any]) -> T:
        nodes = tuple(info._raw_info.field_nodes)
        key = tuple(map(id, nodes))
        entry = self.entries.get(key)
        if entry is not None and all(a is b for a, b in zip(entry[0], nodes, strict=True)):
            return entry[1]
        value = self.compute(info.selected_fields)
        self.entries[key] = (nodes, value)
        if len(self.entries) > self.kept:
            self.entries.popitem(last=False)
        return value


def id_of(value: object) -> strawberry.ID:
    """`value`'s text as an `ID`. `strawberry.ID` is a `NewType`: the identity at run time,
    but calling it is a Python call (~0.4 µs, more than a UUID's text costs), for every id a
    list answers."""
    return str(value)  # type: ignore[return-value]


def optional_id_of(value: object | None) -> strawberry.ID | None:
    return str(value) if value is not None else None  # type: ignore[return-value]


def parse_id(value: str | strawberry.ID, what: str = "id") -> uuid.UUID:
    """A UUID from a GraphQL `ID` argument; malformed input is the caller's error, not ours."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadInput(f"{what} is not a valid ID: {value!r}", field=what) from None


class ErrorCodes(MaskErrors):
    """Give every error an `extensions.code`; hide the text of unexpected exceptions."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._is_unexpected, error_message="Internal error")

    @staticmethod
    def _is_unexpected(error: GraphQLError) -> bool:
        original = error.original_error
        return original is not None and not isinstance(original, HubError | GraphQLError)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return assign_codes(super()._process_errors(errors))

    def _process_result(self, result: object) -> None:
        # As MaskErrors does, without its isinstance check against a runtime-checkable
        # Protocol: that check alone was ~7 % of communication's CPU per subscription frame.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


def assign_codes(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Give each error without one a code naming the phase that refused the request.

    Also called on the HTTP response: errors raised before execution (parse,
    validation) never reach the extension's `on_operation` hook.
    """
    for error in errors:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": _code_for(error)}
    return errors


def _code_for(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable "):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


class FederatedSchema(Schema):
    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Strawberry's, given copies of the representations: it writes into each (takes
        `__typename` out, puts `info` in), and they are the request's variables, which the
        info refers to. That made a reference cycle per `_entities` request, holding the
        request's objects until a garbage collection found them."""
        copies = [FederationAny(dict(r)) for r in representations]  # type: ignore[call-overload]
        return super().entities_resolver(info, copies)


class HubNameConverter(NameConverter):
    """Strawberry's naming, each Python name converted once: Strawberry converts the names
    of a resolver's arguments again on every call (~1 % of content's list request)."""

    def __init__(self) -> None:
        super().__init__(auto_camel_case=True)
        self._converted: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._converted.get(name)
        if converted is None:
            converted = self._converted[name] = super().apply_naming_config(name)
        return converted


def federated_schema(
    *,
    query: type,
    mutation: type | None = None,
    subscription: type | None = None,
    types: Sequence[type] = (),
) -> strawberry.federation.Schema:
    # Subscriptions end with the caller's token: subgraphs/common/subscriptions.py.
    return FederatedSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=types,
        federation_version=FEDERATION_VERSION,
        execution_context_class=HubExecutionContext,
        config=StrawberryConfig(name_converter=HubNameConverter()),
        extensions=[
            RejectBadTokens,
            ErrorCodes,
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )


def export_sdl(schema: strawberry.federation.Schema) -> str:
    """The subgraph SDL that composition needs (what `_service { sdl }` returns)."""
    return schema.as_str().rstrip() + "\n"
