"""Compiled queries: the hot path of `POST /graphql`, past Strawberry's view and executor.

For a page of 20 documents, Strawberry's HTTP view, its extension runner and graphql-core's
executor spend about as much CPU as the resolver, its SQL and the JSON together (measured
in process: the bare-Strawberry floor of scripts/bench answers the same query at a third
of a raw ASGI app's rate). Most of that work is the same for every execution of one
document: collecting fields, finding their definitions, choosing how to complete each
type. `CompiledQueries` does it once per (document, operation name) and keeps the result as
a plan of plain steps; executing the plan calls the very same resolvers (through
Strawberry's own wrappers where a field extension or permission class applies, otherwise
with what those wrappers come to: the same `Info` and converted arguments; see
`direct_resolver`), completes values with the same scalar and enum serializers, gathers
awaitables per object and per list as graphql-core does (so DataLoaders batch the same),
and answers with the same JSON.

What is compiled: query operations whose fields are attribute reads or resolvers, of
scalar, enum or object types (objects without `is_type_of`), in lists and non-nulls, plus
`__typename`; fragments and @skip/@include with literal conditions.

Everything else takes the normal path, untouched: anything but a JSON POST of
query/variables/operationName; a document that does not parse or validate; mutations and
subscriptions; abstract types, introspection, @defer/@stream, @skip/@include on variables;
a bad token (`RejectBadTokens` answers it). And at run time, whenever graphql-core would
report an error (a resolver raises, a null in a non-null position, a value its scalar
refuses, bad variables), the compiled attempt is dropped and Strawberry executes the
operation from the start, reporting the error its own way. A query has no side effects:
running one again costs time, on the error path only.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import GeneratorType
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    default_type_resolver,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
    parse,
    specified_rules,
)
from graphql.execution import Executor
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import Path, Undefined, gather_with_cancel
from graphql.type.scalars import GRAPHQL_MAX_INT, GRAPHQL_MIN_INT
from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send
from strawberry.execution.is_awaitable import optimized_is_awaitable as is_awaitable
from strawberry.schema.schema import validate_document

from subgraphs.common.execution import (
    HubExecutionContext,
    attribute_of,
    direct_resolver,
    reader_of,
)

if TYPE_CHECKING:
    from subgraphs.common.app import HubGraphQL

PLANS_KEPT = 256  # compiled (or refused) documents per process, least recently used dropped
_REQUEST_KEYS = frozenset({"query", "variables", "operationName", "extensions"})


class Uncompilable(Exception):
    """The document uses something the plan does not do exactly as graphql-core."""


class Bail(Exception):
    """At run time: graphql-core would report an error here; Strawberry must answer."""


# complete(value, path, run, info): `info` is the field's, set where the completion asks
# for one (abstract types, `is_type_of`), as graphql-core hands each field's own around.
Complete = Callable[[Any, Path | None, "Execution", Any], Any]
# plain(value): the completed value, computed on the spot (see "completing plainly").
Plain = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Field:
    response_name: str
    definition: GraphQLField
    nodes: list[FieldNode]
    parent_type: GraphQLObjectType
    read: Callable[[Any], Any] | None  # an attribute read; None: call `resolve`
    attribute: str | None  # the attribute `read` reads, when it is one by name
    resolve: Callable[..., Any]
    arguments: dict[str, Any] | None  # constant arguments; None: they name variables
    complete: Complete
    # The value's subtree, when it is only attribute reads of concrete types: completed
    # without paths, infos or awaitables (see "completing plainly"); None otherwise.
    plain: PlainShape | None
    needs_path: bool  # False for an attribute read completed plainly: nothing asks for it
    needs_info: bool  # a resolver, or a completion that decides the type of the value


@dataclass(frozen=True, slots=True)
class _Object:
    type_name: str
    typename_fields: tuple[str, ...]  # response names of `__typename`
    fields: tuple[_Field, ...]
    order: tuple[str, ...]  # every response name, in the order of the selection


@dataclass(frozen=True, slots=True)
class Plan:
    document: DocumentNode
    operation_name: str | None
    root: _Object
    # graphql-core's executor for the operation, built once, copied for each request
    # (HubExecutionContext.for_request); empty until the first request whose variables
    # it accepted.
    executor: list[HubExecutionContext] = field(default_factory=list)


class Execution:
    """One run of a plan: graphql-core's executor for variables and resolve infos."""

    __slots__ = ("executor",)

    def __init__(self, executor: Executor) -> None:
        self.executor = executor


# --- compiling ---------------------------------------------------------------------------


class _Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, default_resolver: Any):
        self.schema = schema
        self.strawberry_schema = getattr(schema, "_strawberry_schema", None)
        self.default_resolver = default_resolver
        self.fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def object_plan(
        self, object_type: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> _Object:
        grouped: OrderedDict[str, list[FieldNode]] = OrderedDict()
        for selection_set in selection_sets:
            self._collect(object_type, selection_set, grouped, set())
        typenames: list[str] = []
        fields: list[_Field] = []
        for response_name, nodes in grouped.items():
            name = nodes[0].name.value
            if name == "__typename":
                typenames.append(response_name)
                continue
            if name.startswith("__"):
                raise Uncompilable(f"meta field {name}")
            definition = object_type.fields.get(name)
            if definition is None:
                raise Uncompilable(f"unknown field {name}")
            fields.append(self._field(object_type, response_name, definition, nodes))
        return _Object(object_type.name, tuple(typenames), tuple(fields), tuple(grouped))

    def _field(
        self,
        parent_type: GraphQLObjectType,
        response_name: str,
        definition: GraphQLField,
        nodes: list[FieldNode],
    ) -> _Field:
        uses_variables = any(
            _names_variables(argument.value) for argument in nodes[0].arguments or ()
        )
        try:
            arguments = None if uses_variables else get_argument_values(definition, nodes[0])
        except GraphQLError as error:
            raise Uncompilable("arguments") from error
        read = reader_of(definition, self.default_resolver) if not nodes[0].arguments else None
        attribute = attribute_of(definition, self.default_resolver) if read is not None else None
        if definition.resolve is None:  # Strawberry gives every field one
            raise Uncompilable("a field without a resolver")
        decides_type: list[bool] = []
        complete, plain = self._completer(definition.type, nodes, decides_type)
        return _Field(
            response_name,
            definition,
            nodes,
            parent_type,
            read,
            attribute,
            direct_resolver(definition, self.strawberry_schema) or definition.resolve,
            arguments,
            _plainly(plain) if plain is not None else complete,
            plain,
            needs_path=read is None or plain is None,
            needs_info=read is None or bool(decides_type),
        )

    def _completer(
        self, type_: GraphQLOutputType, nodes: list[FieldNode], decides_type: list[bool]
    ) -> tuple[Complete, PlainShape | None]:
        """How to complete a value of `type_`, and its shape if it can be completed plainly
        (see "completing plainly"); appends to `decides_type` when completing needs the
        field's info (an abstract type's `resolve_type`, an object's `is_type_of`)."""
        if isinstance(type_, GraphQLNonNull):
            inner, plain = self._completer(type_.of_type, nodes, decides_type)
            return _non_null(inner), _PlainNonNull(plain) if plain else None
        if isinstance(type_, GraphQLList):
            item, plain = self._completer(type_.of_type, nodes, decides_type)
            return _list(item), _PlainList(plain) if plain else None
        if is_leaf_type(type_):
            return _leaf(type_.coerce_output_value), _PlainLeaf(type_.coerce_output_value)
        selection_sets = [node.selection_set for node in nodes if node.selection_set]
        if isinstance(type_, GraphQLObjectType):
            plan = self.object_plan(type_, selection_sets)
            if type_.is_type_of is not None:
                decides_type.append(True)
                return _object(plan, type_.is_type_of), None
            return _object(plan, None), _plain_object(plan)
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            decides_type.append(True)
            return _abstract(
                type_,
                {
                    possible.name: _object(
                        self.object_plan(possible, selection_sets), possible.is_type_of
                    )
                    for possible in self.schema.get_possible_types(type_)
                },
            ), None
        raise Uncompilable(f"type {type_}")

    def _collect(
        self,
        object_type: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: OrderedDict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                name = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(name, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, object_type):
                    self._collect(object_type, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments.get(name)
                if fragment is None:
                    raise Uncompilable(f"unknown fragment {name}")
                if self._applies(fragment.type_condition.name.value, object_type):
                    self._collect(object_type, fragment.selection_set, grouped, visited)
            else:
                raise Uncompilable(f"selection {selection.kind}")

    def _applies(self, type_name: str, object_type: GraphQLObjectType) -> bool:
        condition = self.schema.get_type(type_name)
        if condition is object_type:
            return True
        if condition is not None and is_abstract_type(condition):
            return self.schema.is_sub_type(condition, object_type)
        return False

    @staticmethod
    def _included(selection: Any) -> bool:
        included = True
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                raise Uncompilable(f"directive @{name}")
            (argument,) = directive.arguments
            if not isinstance(argument.value, BooleanValueNode):
                raise Uncompilable(f"@{name} on a variable")
            if argument.value.value == (name == "skip"):
                included = False
        return included


def _names_variables(value: Any) -> bool:
    kind = getattr(value, "kind", None)
    if kind == "variable":
        return True
    if kind == "list":
        return any(_names_variables(item) for item in value.values)
    if kind == "object":
        return any(_names_variables(field.value) for field in value.fields)
    return False


# --- completing values, as graphql-core's complete_value would without errors ------------


def _non_null(inner: Complete) -> Complete:
    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        completed = inner(value, path, run, info)
        if is_awaitable(completed):
            return _not_null_once_awaited(completed)
        if completed is None:
            raise Bail
        return completed

    return complete


async def _not_null_once_awaited(completed: Awaitable[Any]) -> Any:
    value = await completed
    if value is None:
        raise Bail
    return value


def _present(complete_value: Complete) -> Complete:
    """`complete_value` applied to values that are there: a null stays null, an awaitable
    is completed once it resolves, and an exception (graphql-core reports it) bails."""

    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        if value is None:
            return None
        if is_awaitable(value):
            return _complete_awaited(value, complete, path, run, info)
        if isinstance(value, Exception):
            raise Bail
        return complete_value(value, path, run, info)

    return complete


def _leaf(serialize: Callable[[Any], Any]) -> Complete:
    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        try:
            serialized = serialize(value)
        except Exception as refused:
            raise Bail from refused
        if serialized is None or serialized is Undefined:
            raise Bail
        return serialized

    return _present(complete)


def _list(item: Complete) -> Complete:
    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise Bail
        completed: list[Any] = []
        try:
            for index, each in enumerate(value):
                completed.append(item(each, Path(path, index, None), run, info))
        except BaseException:
            _settle(completed)
            raise
        pending = [index for index, each in enumerate(completed) if is_awaitable(each)]
        return _gathered_list(completed, pending) if pending else completed

    return _present(complete)


async def _gathered_list(completed: list[Any], pending: list[int]) -> list[Any]:
    values = await _gathered([completed[index] for index in pending])
    for index, value in zip(pending, values, strict=True):
        completed[index] = value
    return completed


def _object(plan: _Object, is_type_of: Callable[..., Any] | None) -> Complete:
    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        if is_type_of is not None:
            belongs = is_type_of(value, info)
            if is_awaitable(belongs):
                return _checked_then_executed(belongs, plan, value, path, run)
            if not belongs:
                raise Bail
        return _execute_object(plan, value, path, run)

    return _present(complete)


async def _checked_then_executed(
    belongs: Awaitable[Any], plan: _Object, value: Any, path: Path | None, run: Execution
) -> Any:
    if not await belongs:
        raise Bail
    completed = _execute_object(plan, value, path, run)
    return await completed if is_awaitable(completed) else completed


def _abstract(abstract_type: GraphQLAbstractType, by_type: dict[str, Complete]) -> Complete:
    """The value's own type, as `resolve_type` names it, then that type's plan."""
    resolve_type = abstract_type.resolve_type or default_type_resolver

    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        type_name = resolve_type(value, info, abstract_type)
        if is_awaitable(type_name):
            return _typed_once_awaited(type_name, by_type, value, path, run, info)
        concrete = by_type.get(type_name) if isinstance(type_name, str) else None
        if concrete is None:  # no type, or one graphql-core would refuse
            raise Bail
        return concrete(value, path, run, info)

    return _present(complete)


async def _typed_once_awaited(
    type_name: Any,  # an awaitable
    by_type: dict[str, Complete],
    value: Any,
    path: Path | None,
    run: Execution,
    info: Any,
) -> Any:
    name = await type_name
    concrete = by_type.get(name) if isinstance(name, str) else None
    if concrete is None:
        raise Bail
    completed = concrete(value, path, run, info)
    return await completed if is_awaitable(completed) else completed


async def _complete_awaited(
    awaitable: Awaitable[Any], complete: Complete, path: Path | None, run: Execution, info: Any
) -> Any:
    try:
        value = await awaitable
    except Exception as error:
        raise Bail from error
    completed = complete(value, path, run, info)
    return await completed if is_awaitable(completed) else completed


# --- completing plainly -------------------------------------------------------------------
#
# Most of a page is attribute reads of objects already in hand: 20 documents' ids, titles and
# owners. For such a subtree (every field below a basic field read as an attribute, every
# object type concrete and without `is_type_of`, every leaf a scalar or enum), graphql-core's
# machinery (a path and a result dict per object, an awaitable check per value, a closure
# per wrapper) is all overhead: no resolver runs, nothing can be pending. Such a subtree is
# described by its shape (`PlainShape`), and completed by one Python function written for
# that shape when it is first needed (`_PlainWriter`): it reads each attribute, checks each
# null and serializes each leaf inline, and takes a leaf that graphql-core's serializer
# would return unchanged (a str for String and ID, a bool, an int in Int's range) as it is.
# A value graphql-core would not complete as a plain value (an awaitable, an exception, a
# null in a non-null, a value its serializer refuses) bails, as everywhere in a plan:
# Strawberry then answers.


@dataclass(frozen=True, slots=True)
class _PlainLeaf:
    serialize: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _PlainNonNull:
    inner: PlainShape


@dataclass(frozen=True, slots=True)
class _PlainList:
    item: PlainShape


@dataclass(frozen=True, slots=True)
class _PlainObject:
    type_name: str
    # In the selection's order: (response name, how to read it, its shape); `read` is an
    # attribute's name or a function of the source, both None for `__typename`.
    entries: tuple[tuple[str, str | Callable[[Any], Any] | None, PlainShape | None], ...]


PlainShape = _PlainLeaf | _PlainNonNull | _PlainList | _PlainObject

# What a scalar's serializer may be handed without first asking whether it is an awaitable
# or an exception (neither is one of these).
_PLAIN_VALUES = frozenset({str, int, float, bool})

# graphql-core's serializers, and when each returns its value unchanged (`{v}`: the value).
_AS_IS: dict[Callable[[Any], Any], str] = {
    GraphQLString.coerce_output_value: "{v}.__class__ is str",
    GraphQLID.coerce_output_value: "{v}.__class__ is str",
    GraphQLBoolean.coerce_output_value: "{v}.__class__ is bool",
    GraphQLInt.coerce_output_value: (
        f"{{v}}.__class__ is int and {GRAPHQL_MIN_INT} <= {{v}} <= {GRAPHQL_MAX_INT}"
    ),
}

# Classes whose instances are neither exceptions nor awaitables: both are properties of a
# class, except for generators (a generator-based coroutine is awaitable by a flag of its
# code), which are never added.
_ORDINARY_CLASSES: set[type] = set()


def _ordinary(value: Any) -> None:
    """Bail for a value graphql-core would not complete as an object (an exception, an
    awaitable); remember the class of one it would."""
    if isinstance(value, Exception) or is_awaitable(value):
        raise Bail
    if not isinstance(value, GeneratorType):
        _ORDINARY_CLASSES.add(value.__class__)


def _not_a_list(value: Any) -> bool:
    return isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable)


class _PlainWriter:
    """Writes the Python source of a plain completion: a function per shape, lists' items in
    a function of their own, objects and leaves inline."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.namespace: dict[str, Any] = {
            "Bail": Bail,
            "_ordinary": _ordinary,
            "_ordinary_classes": _ORDINARY_CLASSES,
            "_not_a_list": _not_a_list,
        }
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, value: Any, prefix: str) -> str:
        name = self.fresh(prefix)
        self.namespace[name] = value
        return name

    def function(self, shape: PlainShape) -> str:
        name = self.fresh("complete_")
        body: list[str] = []
        result = self.value(shape, "value", body, 1, present=False)
        self.functions.append("\n".join([f"def {name}(value):", *body, f"    return {result}"]))
        return name

    def value(
        self, shape: PlainShape, source: str, out: list[str], depth: int, present: bool
    ) -> str:
        """Append the statements completing `source` to `out`; return the name (or literal)
        of the completed value. `present`: `source` is known not to be null."""
        pad = "    " * depth
        if isinstance(shape, _PlainNonNull):
            out.append(f"{pad}if {source} is None: raise Bail")
            return self.value(shape.inner, source, out, depth, present=True)
        if isinstance(shape, _PlainLeaf):
            result = self.fresh("leaf")
            general = self.constant(_plain_leaf(shape.serialize), "serialize")
            as_is = _AS_IS.get(shape.serialize)
            if as_is is None:
                out.append(f"{pad}{result} = {general}({source})")
            else:
                condition = as_is.format(v=source)
                out.append(f"{pad}{result} = {source} if {condition} else {general}({source})")
            return result
        result = self.fresh("list" if isinstance(shape, _PlainList) else "object")
        if not present:
            out.append(f"{pad}{result} = None")
            out.append(f"{pad}if {source} is not None:")
            depth += 1
            pad += "    "
        if isinstance(shape, _PlainList):
            item = self.function(shape.item)
            out.append(f"{pad}if {source}.__class__ is not list and _not_a_list({source}):")
            out.append(f"{pad}    raise Bail")
            out.append(f"{pad}{result} = [{item}(each) for each in {source}]")
            return result
        out.append(f"{pad}if {source}.__class__ not in _ordinary_classes: _ordinary({source})")
        items: list[str] = []
        for response_name, read, field_shape in shape.entries:
            if read is None or field_shape is None:
                items.append(f"{response_name!r}: {shape.type_name!r}")
                continue
            field_value = self.fresh("field")
            if isinstance(read, str):
                out.append(f"{pad}{field_value} = {source}.{read}")
            else:
                out.append(f"{pad}{field_value} = {self.constant(read, 'read')}({source})")
            completed = self.value(field_shape, field_value, out, depth, present=False)
            items.append(f"{response_name!r}: {completed}")
        out.append(f"{pad}{result} = {{{', '.join(items)}}}")
        return result


def _written(shape: PlainShape) -> Plain:
    writer = _PlainWriter()
    name = writer.function(shape)
    source = "\n\n".join(writer.functions)
    exec(compile(source, f"<plain completion {name}>", "exec"), writer.namespace)
    function: Plain = writer.namespace[name]
    return function


def _plainly(shape: PlainShape) -> Complete:
    """A plan's completion for a value of `shape`: the value of a resolver (an awaitable
    once resolved) or of an attribute read. Its function is written on first use: a field
    inside a plain subtree is completed by its parent's function and never needs its own."""
    plain: Plain | None = None

    def complete(value: Any, path: Path | None, run: Execution, info: Any) -> Any:
        nonlocal plain
        if is_awaitable(value):
            return _complete_awaited(value, complete, path, run, info)
        if plain is None:
            plain = _written(shape)
        try:
            return plain(value)
        except Bail:
            raise
        except Exception as error:  # an attribute missing, a serializer refusing
            raise Bail from error

    return complete


def _plain_leaf(serialize: Callable[[Any], Any]) -> Plain:
    def plain(value: Any) -> Any:
        if value is None:
            return None
        if value.__class__ not in _PLAIN_VALUES and (
            isinstance(value, Exception) or is_awaitable(value)
        ):
            raise Bail
        serialized = serialize(value)
        if serialized is None or serialized is Undefined:
            raise Bail
        return serialized

    return plain


def _plain_object(plan: _Object) -> _PlainObject | None:
    """The object's shape, if each of its fields is a plain attribute read completed
    plainly."""
    by_name = {field.response_name: field for field in plan.fields}
    entries: list[tuple[str, str | Callable[[Any], Any] | None, PlainShape | None]] = []
    for name in plan.order:
        field = by_name.get(name)
        if field is None:  # __typename
            entries.append((name, None, None))
        elif field.read is None or field.plain is None:
            return None
        else:
            entries.append((name, field.attribute or field.read, field.plain))
    return _PlainObject(plan.type_name, tuple(entries))


def _execute_object(plan: _Object, source: Any, path: Path | None, run: Execution) -> Any:
    results: dict[str, Any] = dict.fromkeys(plan.order)
    for name in plan.typename_fields:
        results[name] = plan.type_name
    pending: list[str] = []
    try:
        for field in plan.fields:
            if _execute_field(field, source, path, run, plan.type_name, results):
                pending.append(field.response_name)
    except BaseException:
        _settle([results[name] for name in pending])
        raise
    return _gathered_object(results, pending) if pending else results


def _execute_field(
    field: _Field,
    source: Any,
    path: Path | None,
    run: Execution,
    type_name: str,
    results: dict[str, Any],
) -> bool:
    """Put `field`'s completed value (or an awaitable of it) into `results`; True when it
    is an awaitable."""
    field_path = Path(path, field.response_name, type_name) if field.needs_path else None
    info = None
    try:
        if field.needs_info:
            info = run.executor.build_resolve_info(
                field.definition,
                field.nodes,
                field.parent_type,
                field_path,  # type: ignore[arg-type]  # set wherever an info is
            )
        if field.read is not None:
            value = field.read(source)
        else:
            arguments = field.arguments
            if arguments is None:
                arguments = get_argument_values(
                    field.definition, field.nodes[0], run.executor.variable_values
                )
            value = field.resolve(source, info, **arguments)
        completed = field.complete(value, field_path, run, info)
    except Bail:
        raise
    except Exception as error:
        raise Bail from error
    results[field.response_name] = completed
    return is_awaitable(completed)


_settling: set[asyncio.Future[Any]] = set()


def _settle(values: list[Any]) -> None:
    """Let the awaitables an abandoned attempt started run out in the background, as
    graphql-core settles its own: a resolver's coroutine is not dropped half-begun."""
    for value in values:
        if is_awaitable(value):
            future = asyncio.ensure_future(value)
            _settling.add(future)
            future.add_done_callback(_settled)


def _settled(future: asyncio.Future[Any]) -> None:
    _settling.discard(future)
    if not future.cancelled():
        future.exception()  # retrieved: the attempt was abandoned, Strawberry reports it


async def _gathered_object(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
    values = await _gathered([results[name] for name in pending])
    results.update(zip(pending, values, strict=True))
    return results


async def _gathered(awaitables: list[Awaitable[Any]]) -> list[Any]:
    """graphql-core's `gather_with_cancel`, except that a lone awaitable is awaited in place:
    a task of its own (as gathering makes) costs ~10 µs and cancels nothing more. A query's
    root field is often the only pending value."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    return await gather_with_cancel(*awaitables)


# --- the HTTP side -----------------------------------------------------------------------


# How often a plan answered, and why Strawberry answered instead: a deployment whose traffic
# is mostly "not_compiled" or "bailed" gains nothing here, and /metrics shows it.
OUTCOMES = Counter(
    "hub_graphql_compiled_total",
    "POST /graphql requests by who answered: a compiled plan, or Strawberry and why.",
    ["service", "outcome"],
)


class CompiledQueries:
    """Plans per (query, operation name), and serving a request with one when it can."""

    def __init__(self, view: HubGraphQL, service: str) -> None:
        self.view = view
        self.outcomes = {
            outcome: OUTCOMES.labels(service=service, outcome=outcome)
            for outcome in ("answered", "not_json", "not_compiled", "bad_token", "bailed")
        }
        strawberry_schema = view.schema
        self.schema: GraphQLSchema = strawberry_schema._schema  # type: ignore[attr-defined]
        self.default_resolver = strawberry_schema.config.default_resolver
        self.plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()

    def plan(self, query: str, operation_name: str | None) -> Plan | None:
        key = (query, operation_name)
        if key in self.plans:
            self.plans.move_to_end(key)
            return self.plans[key]
        plan = self._compile(query, operation_name)
        self.plans[key] = plan
        if len(self.plans) > PLANS_KEPT:
            self.plans.popitem(last=False)
        return plan

    def _compile(self, query: str, operation_name: str | None) -> Plan | None:
        try:
            document = parse(query)
        except GraphQLError:
            return None
        if validate_document(self.schema, document, tuple(specified_rules)):
            return None
        operation = get_operation_ast(document, operation_name)
        if not isinstance(operation, OperationDefinitionNode):
            return None
        if operation.operation is not OperationType.QUERY or self.schema.query_type is None:
            return None
        try:
            root = _Compiler(self.schema, document, self.default_resolver).object_plan(
                self.schema.query_type, [operation.selection_set]
            )
        except Uncompilable:
            return None
        return Plan(document, operation_name, root)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request with a plan, or return how to read it again (untouched) for
        the normal path."""
        if scope["method"] != "POST":
            return receive
        if not _json_request(scope):
            self.outcomes["not_json"].inc()
            return receive
        body, receive = await _buffered(receive)
        request = _graphql_request(body)
        if request is None:
            self.outcomes["not_json"].inc()
            return receive
        query, variables, operation_name = request
        plan = self.plan(query, operation_name)
        if plan is None:
            self.outcomes["not_compiled"].inc()
            return receive
        http_request = Request(scope, receive=receive)
        sub_response = await self.view.get_sub_response(http_request)
        context = await self.view.get_context(http_request, sub_response)
        if getattr(context, "auth_error", None) is not None:
            self.outcomes["bad_token"].inc()
            return receive
        try:
            data = await self.execute(plan, context, variables)
        except Bail:
            self.outcomes["bailed"].inc()
            return receive
        if sub_response.raw_headers or sub_response.status_code or sub_response.background:
            # A resolver set a header, a status or a background task: Strawberry's response.
            response = self.view.create_response({"data": data}, sub_response)
            await response(scope, receive, send)
        else:
            await _answer(send, self.view, data)
        self.outcomes["answered"].inc()
        return None

    async def execute(self, plan: Plan, context: Any, variables: dict[str, Any] | None) -> Any:
        executor = self.executor(plan, context, variables)
        data = _execute_object(plan.root, None, None, Execution(executor))
        return await data if is_awaitable(data) else data

    def executor(
        self, plan: Plan, context: Any, variables: dict[str, Any] | None
    ) -> HubExecutionContext:
        """graphql-core's executor of the plan's operation for this request, with its
        variables coerced as `Executor.build` coerces them (refused: `Bail`)."""
        if not plan.executor:
            built = HubExecutionContext.build(
                self.schema,
                plan.document,
                None,
                None,
                variables,
                plan.operation_name,
                is_awaitable=is_awaitable,  # type: ignore[arg-type]  # a TypeGuard in effect
            )
            if isinstance(built, list):  # the variables were refused
                raise Bail
            assert isinstance(built, HubExecutionContext)
            plan.executor.append(built)
        template = plan.executor[0]
        coerced = get_variable_values(
            self.schema, template.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):  # the variables were refused
            raise Bail
        return template.for_request(context, coerced)


async def _answer(send: Send, view: HubGraphQL, data: Any) -> None:
    """The response Strawberry's `create_response` would send for `{"data": data}` (same
    status, headers and body), sent as two ASGI messages without making a Response."""
    try:
        body = orjson.dumps({"data": data})
    except TypeError:  # what orjson refuses: the view's own encoder
        body = view.encode_json({"data": data}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _json_request(scope: Scope) -> bool:
    """A JSON body. (The Accept header does not matter: Strawberry answers a query with JSON
    whatever it says; multipart/mixed, which the router accepts too, is for subscriptions.)"""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == b"application/json")
    return False


def _graphql_request(body: bytes) -> tuple[str, dict[str, Any] | None, str | None] | None:
    try:
        # orjson, a few times faster than json.loads. What it refuses and json.loads takes
        # (NaN, lone surrogates) goes the normal path; it reads an integer past 64 bits as
        # a float, so variables with a float in them are read again by json.loads.
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and _has_float(data.get("variables")):
        data = json.loads(body)
    if not isinstance(data, dict) or not data.keys() <= _REQUEST_KEYS:
        return None
    query, variables, operation_name = (
        data.get("query"),
        data.get("variables"),
        data.get("operationName"),
    )
    if (
        not isinstance(query, str)
        or not (variables is None or isinstance(variables, dict))
        or not (operation_name is None or isinstance(operation_name, str))
        or data.get("extensions") is not None
    ):
        return None
    return query, variables, operation_name


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it out again first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: let the view see it
            return b"", _replay([message], receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _replay([{"type": "http.request", "body": body, "more_body": False}], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    queued = list(messages)

    async def replayed() -> Message:
        if queued:
            return queued.pop(0)
        return await receive()

    return replayed
