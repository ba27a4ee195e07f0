"""Hot reads on the driver: a SELECT written with SQLAlchemy, executed by asyncpg itself.

A list page costs asyncpg ~0.1 ms; through an ORM session the same statement costs ~0.9 ms
and through a Core connection ~0.6 ms (measured in process on content's `documents(first:
20)`): cache-key generation, the compiled-cache lookup, the execution context, the
greenlet bridge and the result machinery, for every statement. `fetch_rows` keeps what
makes SQLAlchemy worth having — the statement is still built with the same expressions,
compiled by SQLAlchemy (once per statement shape) with its bind and result processors —
and hands the compiled SQL to the driver connection directly.

Only reads in autocommit take this path (`Context.reader()` sessions): a session with a
transaction of its own must see its own writes, so there the statement goes through the
session as before. The engine's `before_cursor_execute` hooks still see every statement
(the NUL refusal, `hub_db_statements_total`, the tests' statement counts). The connection
is one the engine's pool keeps lent for reads (`HeldForReads`, common/database.py), not one
checked out and in again for each.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, Select
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from subgraphs.common.database import BurstPool, ReaderSession

COMPILED_SHAPES = 512  # statement shapes kept compiled per process (LRU)

_dialect = PGDialect_asyncpg()


class _Prepared(NamedTuple):
    compiled: SQLCompiler
    make_row: Callable[..., Any]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, processor)


_prepared: OrderedDict[Any, _Prepared] = OrderedDict()


def _prepare(stmt: Select[*tuple[Any, ...]], cache_key: Any) -> _Prepared:
    prepared = _prepared.get(cache_key.key)
    if prepared is not None:
        _prepared.move_to_end(cache_key.key)
        return prepared
    compiled = stmt.compile(dialect=_dialect, cache_key=cache_key)
    # Named as SQLAlchemy names them in its rows (an ORM attribute's name, not its column's).
    names = [str(described["name"]) for described in stmt.column_descriptions]
    row_type = namedtuple("Row", names, rename=True)  # type: ignore[misc]
    processors = tuple(
        (index, process)
        for index, column in enumerate(stmt.selected_columns)
        if (process := _result_processor(column.type)) is not None
    )
    prepared = _Prepared(compiled, row_type, processors)
    _prepared[cache_key.key] = prepared
    if len(_prepared) > COMPILED_SHAPES:
        _prepared.popitem(last=False)
    return prepared


def _result_processor(type_: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    if (
        isinstance(type_, ARRAY)
        and not type_.as_tuple
        and type_.item_type._cached_result_processor(_dialect, None) is None
    ):
        return None  # asyncpg's list is already what SQLAlchemy would copy it into
    return type_._cached_result_processor(_dialect, None)


# The SQL and arguments of statements run without `params`, per statement object: a
# statement built once and kept (a service's lru_cache of pages per caller) carries its
# values, so running it again needs neither a cache key nor parameter processing (~15 µs).
# Keyed by id; the statement is kept in the entry, so that an id is never reused while its
# entry lives.
_bound: OrderedDict[int, tuple[Select[*tuple[Any, ...]], str, tuple[Any, ...], _Prepared]] = (
    OrderedDict()
)


def _sql_and_arguments(
    stmt: Select[*tuple[Any, ...]], params: dict[str, Any] | None
) -> tuple[str, Sequence[Any], _Prepared]:
    if params is not None:
        return _built(stmt, params)
    entry = _bound.get(id(stmt))
    if entry is not None and entry[0] is stmt:
        _bound.move_to_end(id(stmt))
        return entry[1], entry[2], entry[3]
    sql, arguments, prepared = _built(stmt, None)
    _bound[id(stmt)] = (stmt, sql, tuple(arguments), prepared)
    if len(_bound) > COMPILED_SHAPES:
        _bound.popitem(last=False)
    return sql, arguments, prepared


def _built(
    stmt: Select[*tuple[Any, ...]], params: dict[str, Any] | None
) -> tuple[str, list[Any], _Prepared]:
    cache_key = stmt._generate_cache_key()
    if cache_key is None:  # a construct SQLAlchemy cannot cache: the session runs it
        raise _NotCacheable
    prepared = _prepare(stmt, cache_key)
    compiled = prepared.compiled
    parameters = compiled.construct_params(
        params, extracted_parameters=cache_key.bindparams, escape_names=False
    )
    # The public way to get the final SQL and positional values, IN lists expanded.
    expanded = compiled.construct_expanded_state(parameters, escape_names=False)
    processors = expanded.processors
    arguments = [
        processors[name](expanded.parameters[name])
        if name in processors
        else expanded.parameters[name]
        for name in expanded.positiontup or ()
    ]
    return expanded.statement, arguments, prepared


class _NotCacheable(Exception):
    pass


def is_reader(session: AsyncSession) -> bool:
    """A `Context.reader()` session: autocommit, no transaction of its own to see."""
    if isinstance(session, ReaderSession) and session.unmade_engine is not None:
        return True
    bind = session.bind
    return (
        isinstance(bind, AsyncEngine)
        and bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        and not session.in_transaction()
    )


async def fetch_rows(
    session: AsyncSession, stmt: Select[*tuple[Any, ...]], params: dict[str, Any] | None = None
) -> Sequence[Any]:
    """The rows of a SELECT of columns (not ORM entities), with attribute access;
    `params`: values for the statement's named bind parameters.

    On a reader session the driver runs the statement; on any other, the session does.
    """
    if not is_reader(session):
        return (await session.execute(stmt, params)).all()
    unmade = session.unmade_engine if isinstance(session, ReaderSession) else None
    bind = unmade if unmade is not None else session.bind
    assert isinstance(bind, AsyncEngine)
    engine = bind.sync_engine
    pool = engine.pool
    if not isinstance(pool, BurstPool):  # not made by create_engine: no connections held
        return (await session.execute(stmt, params)).all()
    try:
        sql, arguments, prepared = _sql_and_arguments(stmt, params)
    except _NotCacheable:
        return (await session.execute(stmt, params)).all()
    for hook in engine.dispatch.before_cursor_execute:  # no connection, cursor or context
        hook(None, None, sql, arguments, None, False)
    records = await pool.reads.fetch(sql, arguments)
    make_row, processors = prepared.make_row, prepared.processors
    if not processors:
        return [make_row(*values) for values in records]
    rows = []
    for record in records:
        values = list(record)
        for index, process in processors:
            if values[index] is not None:
                values[index] = process(values[index])
        rows.append(make_row(*values))
    return rows
