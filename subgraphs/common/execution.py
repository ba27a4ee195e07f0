"""GraphQL execution with shortcuts for plain fields.

graphql-core completes every field the same way: a `Path`, a `ResolveInfo`, the
resolver, two awaitable checks, then `complete_value`'s dispatch on the type. For a page
of 20 documents that is ~80 rounds of it, and it is most of what a list query costs
(profiled: ~0.5 of ~0.7 ms on a bare Strawberry schema). Most of those fields are
Strawberry "basic" fields (an attribute read: no resolver, extension or permission), so
their whole completion is `coerce(getattr(...))` for a scalar or an enum, and the
sub-selection for an object.

`HubExecutionContext` takes these shortcuts only where they are exactly equivalent and
otherwise hands the field to graphql-core unchanged. A null, an awaitable, an exception
or a value the scalar refuses goes the usual way, so error messages, paths and null
propagation are graphql-core's own. Fields with resolvers or arguments, abstract types,
objects with `is_type_of`, and everything under middleware (a schema extension with a
`resolve` hook) are never shortcut.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from keyword import iskeyword
from operator import attrgetter
from typing import Any, NamedTuple

from graphql import (
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    Undefined,
    get_named_type,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import CollectedErrors
from graphql.execution.values import VariableValues
from graphql.pyutils import AwaitableOrValue, Path, RefMap, gather_with_cancel
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryMaybe, StrawberryOptional
from strawberry.types.enum import has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType


class _Leaf(NamedTuple):
    read: Callable[[Any], Any]
    coerce: Callable[[Any], Any]


class _Object(NamedTuple):
    read: Callable[[Any], Any]
    object_type: GraphQLObjectType
    return_type: GraphQLOutputType


_Shortcut = _Leaf | _Object | None


class _EventResults:
    """The results of the latest events, per subscription that executed one: a user's
    tabs and devices subscribe to the same operation, and the event they all receive is
    one shared object (`Namespace.shared`), so the first of them executes it and the
    others send its result.

    A result is shared only between subscriptions with the same operation (the same
    parsed document: the parser cache hands out one per query text), the same variables
    and the same caller (`Context.event_results_key`): everything a result is computed
    from, so sharing it is executing them at the same instant. Entries are kept for the
    last `size` events (each keeps its payload alive, so an id is never reused while its
    entry lives); a late subscription whose event has left executes it itself.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._by_event: OrderedDict[int, tuple[Any, dict[Hashable, tuple[Any, Any]]]] = (
            OrderedDict()
        )

    def get(self, payload: Any, key: Hashable, operation: Any) -> Any:
        entry = self._by_event.get(id(payload))
        if entry is None or entry[0] is not payload:
            return None
        found = entry[1].get(key)
        return found[1] if found is not None and found[0] is operation else None

    def put(self, payload: Any, key: Hashable, operation: Any, result: Any) -> None:
        entry = self._by_event.get(id(payload))
        if entry is None or entry[0] is not payload:
            entry = (payload, {})
            self._by_event[id(payload)] = entry
            while len(self._by_event) > self.size:
                self._by_event.popitem(last=False)
        entry[1][key] = (operation, result)


_event_results = _EventResults()
_UNKNOWN: Any = object()


def _frozen(value: Any) -> Hashable:
    """`value` (a variable's coerced value) as a hashable; TypeError if it has no such form."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    hash(value)
    return value


# Decided once per field definition and per output type. Keyed by id; the keyed object is
# kept in the entry, so that an id is never reused while its entry lives.
_field_shortcuts: dict[int, tuple[GraphQLField, _Shortcut]] = {}
_plain_objects: dict[int, tuple[GraphQLOutputType, GraphQLObjectType | None]] = {}


def _plain_object(output_type: GraphQLOutputType) -> GraphQLObjectType | None:
    """The object type that `output_type` (or its non-null form) is, if it has no
    `is_type_of` check: completing a value of it is executing its sub-selection."""
    entry = _plain_objects.get(id(output_type))
    if entry is not None and entry[0] is output_type:
        return entry[1]
    inner = output_type.of_type if isinstance(output_type, GraphQLNonNull) else output_type
    plain = inner if is_object_type(inner) and inner.is_type_of is None else None
    _plain_objects[id(output_type)] = (output_type, plain)
    return plain


def attribute_of(field: GraphQLField, default_resolver: Any) -> str | None:
    """The attribute a basic field reads from its source (see `reader_of`), by a name that
    can be written after a dot, when the default resolver reads attributes."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if default_resolver is getattr and isinstance(definition, StrawberryField):
        name = definition.python_name
        return name if name.isidentifier() and not iskeyword(name) else None
    return None


def reader_of(field: GraphQLField, default_resolver: Any) -> Callable[[Any], Any] | None:
    """How to read a basic field from its source, or None if it is not one: no resolver,
    no arguments, no extension or permission class (Strawberry also marks the resolver of
    a field with permission classes but no resolver `_is_default`: reading the attribute
    would skip its checks)."""
    resolve = field.resolve
    if resolve is None or not getattr(resolve, "_is_default", False) or field.args:
        return None
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
        return None
    if default_resolver is getattr:
        return attrgetter(definition.python_name)
    return lambda source: resolve(source, None)


def direct_resolver(field: GraphQLField, schema: Any) -> Callable[..., Any] | None:
    """What Strawberry's resolver of `field` comes to when no field extension or exception
    handler applies, without its generic chain; None for any other field.

    Strawberry wraps every resolver in a chain of calls (its `Info`, each argument
    converted, field extensions applied, exception handlers matched, the result awaited in
    a coroutine of its own): ~6 % of content's list request, for a field with three
    arguments. This is the same `Info`, each argument converted by Strawberry's own
    `convert_argument` except a leaf's (a scalar's or an enum's, which it returns as it
    is), `self`, root, parent and info passed as the resolver asks, and the resolver's own
    result (its coroutine is awaited by whoever would have awaited the chain's).
    `schema`: the Strawberry schema `field` belongs to."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(definition, StrawberryField)
        or definition.base_resolver is None
        or definition.extensions  # permission classes are one
        or schema is None
        or getattr(schema.schema_converter, "exception_handlers", True)
    ):
        return None
    resolver = definition.base_resolver
    function = resolver.wrapped_func
    if not callable(function):
        return None  # Strawberry's chain raises its own error
    config = schema.config
    registry = schema.schema_converter.scalar_registry
    arguments = [
        (
            config.name_converter.from_argument(argument),
            argument.python_name,
            None if _is_leaf_argument(argument.type, registry) else argument.type,
        )
        for argument in definition.arguments
    ]
    wants_self = resolver.self_parameter is not None
    source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p]
    info_name = resolver.info_parameter.name if resolver.info_parameter else None
    info_class = config.info_class

    def resolve(source: Any, info: Any, **values: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=definition)
        kwargs: dict[str, Any] = {}
        for name, python_name, converted_as in arguments:
            if name in values:
                value = values[name]
                if converted_as is not None:
                    value = convert_argument(
                        value, converted_as, registry, config, strawberry_info, path=(name,)
                    )
                kwargs[python_name] = value
        for name in source_names:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = strawberry_info
        return function(source, **kwargs) if wants_self else function(**kwargs)

    return resolve


def _is_leaf_argument(type_: Any, registry: Any) -> bool:
    """An argument whose value Strawberry's `convert_argument` returns unchanged: a scalar
    or an enum (not a GlobalID, which it decodes), or an optional one (not `Maybe`, which
    it wraps in `Some`)."""
    if isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
        type_ = type_.of_type
    if type_ is GlobalID or isinstance(type_, (StrawberryMaybe, LazyType)):
        return False
    return is_scalar(type_, registry) or has_enum_definition(type_)


def _shortcut_of(field: GraphQLField, default_resolver: Any) -> _Shortcut:
    entry = _field_shortcuts.get(id(field))
    if entry is not None and entry[0] is field:
        return entry[1]
    shortcut: _Shortcut = None
    if (read := reader_of(field, default_resolver)) is not None:
        named = get_named_type(field.type)
        if is_leaf_type(named):
            shortcut = _Leaf(read, named.coerce_output_value)
        elif (object_type := _plain_object(field.type)) is not None:
            shortcut = _Object(read, object_type, field.type)
    _field_shortcuts[id(field)] = (field, shortcut)
    return shortcut


def _helpers_of(executor: HubExecutionContext) -> GraphQLResolveInfoHelpers:
    """graphql-core's helpers for resolvers (`info.async_helpers`), holding the executor
    weakly.

    graphql-core's own hold its bound methods, and the executor holds them: a reference
    cycle per execution. Everything the executor reaches (the context, the request, the
    response) then lived until a garbage collection found it: ~50 objects a request, and in
    content each young collection took 25-250 ms (a fifth of them over 100 ms), every ~800
    requests. Without the cycle all of it is freed when the request ends.
    """
    alive = weakref.ref(executor)

    def running() -> HubExecutionContext:
        found = alive()
        if found is None:
            raise RuntimeError("the execution these helpers belong to has ended")
        return found

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return running().gather_async_work(values)

    def track(values: Sequence[Any]) -> None:
        running().track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _helpers_of(self)
        # Per selection set of this operation: graphql-core memoizes grouped field sets
        # per execution, so the 20 documents of a page share one list of steps.
        self._steps: dict[int, tuple[GroupedFieldSet, list[tuple[str, Any, _Shortcut]]]] = {}
        middleware = self.middleware_manager
        self._shortcuts_allowed = middleware is None or not middleware.middlewares
        strawberry_schema = getattr(self.schema, "_strawberry_schema", None)
        self._default_resolver = (
            strawberry_schema.config.default_resolver if strawberry_schema else None
        )
        # A subscription's executor: the key its events' results are shared under (see
        # `_EventResults`), decided at its first event. An event's executor: that key.
        self._results_key: Hashable = _UNKNOWN
        self._event_key: Hashable = None

    def __copy__(self) -> HubExecutionContext:
        """The shallow copy `copy.copy` makes, without its generic reduce protocol:
        graphql-core copies the executor for every event of every subscription (~5 % of
        a frame's CPU)."""
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        return clone

    def for_request(
        self, context_value: Any, variable_values: VariableValues
    ) -> HubExecutionContext:
        """An executor of this one's operation for another request (compiled plans): a copy
        whose execution state is made anew, the rest (schema, document, operation,
        fragments, resolvers, options) shared.

        Building one per request took ~14 µs in isolation (~35 µs within a request: ~6 %
        of content's list), most of it the same each time: finding the operation and its
        fragments, five `__init__`s down the class chain. What an execution changes or
        keeps is listed here; `test_execution.py` checks the list against a freshly built
        executor, so a graphql-core release that adds state fails a test instead of
        sharing it between requests."""
        clone = self.__copy__()
        clone.context_value = context_value
        clone.variable_values = variable_values
        clone.async_helpers = _helpers_of(clone)
        clone.collected_errors = CollectedErrors()
        clone.pending_incremental_futures = set()
        clone.background_futures = set()
        clone.async_work_finished_hook_task = None
        clone._relevant_sub_fields = {}
        clone._stream_usages = RefMap()
        clone.defer_usage_set = None
        clone.groups = []
        clone.tasks = []
        clone.streams = []
        clone._initial_execution_plans = RefMap()
        clone._deferred_execution_plans = RefMap()
        clone._steps = {}
        clone._results_key = _UNKNOWN
        clone._event_key = None
        return clone

    def build_per_event_executor(self, payload: Any) -> HubExecutionContext:
        """The executor of one event of a subscription, with memos of its own.

        graphql-core's copy shares the subfield memo (and its stream usages) with the
        subscription's executor, as it does with the sub-executors of one execution; but
        each event collects its fields anew, so every event added entries that lived as
        long as the subscription (~30 objects a frame, kept and walked by every collection:
        the young generation of communication grew by 45,000 objects in 2,000 frames)."""
        if self._results_key is _UNKNOWN:
            self._results_key = self._key_of_results()
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, HubExecutionContext)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        executor._steps = {}
        executor._event_key = self._results_key
        return executor

    def _key_of_results(self) -> Hashable:
        """What this subscription's result of an event is computed from, besides the
        event and the operation; None if it cannot be told (no caller key, or variables
        without a hashable form), and its events are then executed for it alone."""
        key_of = getattr(self.context_value, "event_results_key", None)
        caller = key_of() if key_of is not None else None
        if caller is None:
            return None
        try:
            variables = _frozen(self.variable_values.coerced)
        except TypeError:
            return None
        return (id(self.operation), variables, caller)

    def execute_operation(self, serially: bool | None = None) -> Any:
        key = self._event_key
        if key is None:
            return super().execute_operation(serially)
        event, operation = self.root_value, self.operation
        shared = _event_results.get(event, key, operation)
        if shared is not None:
            return shared
        result = super().execute_operation(serially)
        if not self.is_awaitable(result):
            _event_results.put(event, key, operation, result)
            return result

        async def kept() -> Any:
            done = await result
            _event_results.put(event, key, operation, done)
            return done

        return kept()

    def _steps_of(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> list[tuple[str, FieldDetailsList, _Shortcut]]:
        entry = self._steps.get(id(grouped_field_set))
        if entry is not None and entry[0] is grouped_field_set:
            return entry[1]
        steps: list[tuple[str, FieldDetailsList, _Shortcut]] = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            field = self.schema.get_field(parent_type, node.name.value)
            shortcut = (
                _shortcut_of(field, self._default_resolver)
                if field is not None and not node.arguments and not node.directives
                else None
            )
            steps.append((response_name, field_details_list, shortcut))
        self._steps[id(grouped_field_set)] = (grouped_field_set, steps)
        return steps

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if not self._shortcuts_allowed:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, shortcut in self._steps_of(
                parent_type, grouped_field_set
            ):
                result: Any = Undefined
                if type(shortcut) is _Leaf:  # inline: the most frequent by far
                    try:
                        value = shortcut.read(source_value)
                        if not (
                            value is None or is_awaitable(value) or isinstance(value, Exception)
                        ):
                            result = shortcut.coerce(value)
                            if result is None:
                                result = Undefined
                    except Exception:
                        result = Undefined  # graphql-core reads it again, and reports it
                elif isinstance(shortcut, _Object):
                    result = self._shortcut(
                        shortcut,
                        source_value,
                        field_details_list,
                        path,
                        response_name,
                        parent_type,
                        position_context,
                    )
                if result is Undefined:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        field_details_list,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is Undefined:
                        continue
                results[response_name] = result
                if is_awaitable(result):
                    awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:  # settle what other fields started: they may fail too
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _shortcut(
        self,
        shortcut: _Object,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path | None,
        response_name: str,
        parent_type: GraphQLObjectType,
        position_context: Any,
    ) -> Any:
        """The object field's completed value, or Undefined when graphql-core must do it
        (a basic field is an attribute read: reading it again there is harmless)."""
        try:
            value = shortcut.read(source)
        except Exception:
            return Undefined
        if value is None or isinstance(value, Exception) or self.is_awaitable(value):
            return Undefined
        field_path = Path(path, response_name, parent_type.name)
        try:
            completed = self.collect_and_execute_subfields(
                shortcut.object_type, field_details_list, field_path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, shortcut.return_type, field_details_list, field_path)
            return None
        if self.is_awaitable(completed):
            return self._guarded(completed, shortcut.return_type, field_details_list, field_path)
        return completed

    async def _guarded(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        # A resolved object (a list item, a resolver's result): straight to its fields.
        if (
            self._shortcuts_allowed
            and result is not None
            and result is not Undefined
            and not isinstance(result, Exception)
            and (object_type := _plain_object(return_type)) is not None
        ):
            return self.collect_and_execute_subfields(
                object_type, field_details_list, path, result, position_context
            )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )
