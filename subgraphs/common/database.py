"""The async engine and sessions, plus creating a service's database when it is missing."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from prometheus_client import Counter
from sqlalchemy import JSON, DateTime, Index, MetaData, String, event, func
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util import queue as pool_queue

from subgraphs.common.errors import BadInput
from subgraphs.common.observability import request_id
from subgraphs.common.settings import ServiceSettings

# Stable constraint names keep Alembic autogenerate diffs readable and migrations portable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Each subgraph's declarative base gets its own metadata: its tables are its own."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class OutboxEventColumns:
    """The outbox table every event-publishing subgraph keeps (see common/events.py).

    A domain event is stored in the transaction of the change it reports; the relay
    publishes it to the deployment's event stream and stamps `published_at`.
    """

    __tablename__ = "outbox_events"

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index]:
        return (Index("ix_outbox_events_published_at_created_at", "published_at", "created_at"),)

    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Statements per request is how N+1 queries show (scripts/bench reads it from /metrics);
# `origin` tells those sent while answering an HTTP request from background loops' (relays).
SQL_STATEMENTS = Counter(
    "hub_db_statements_total",
    "SQL statements sent to the database, by origin (request or background).",
    ["service", "origin"],
)


logger = logging.getLogger(__name__)


# SQLSTATE classes of a connection that is ending: connection exceptions (08) and operator
# intervention (57: the backend terminated, the server shutting down). They come from
# PostgreSQL like a refused statement does, but the connection does not survive them.
_CONNECTION_ENDING = ("08", "57")


def statement_refused(error: BaseException, driver: Any) -> bool:
    """PostgreSQL refused the statement and the connection can run the next one."""
    return (
        isinstance(error, asyncpg.PostgresError)
        and str(error.sqlstate or "")[:2] not in _CONNECTION_ENDING
        and not driver.is_closed()
    )


class HeldForReads:
    """Connections a `BurstPool` lends to reads on the driver (common/reads.py) and that
    stay lent between reads: a read takes an idle one from a deque and puts it back.

    Checking a connection out of SQLAlchemy's pool and in again for every read cost ~90 µs
    of CPU (the pool's asyncio queue through a greenlet, the connection's proxy, its events
    and its reset): a fifth of content's list of 20 documents, measured side by side
    (README, Performance). asyncpg's own pool was no answer: its release runs in a shielded
    task and bought a quarter of what this does.

    The connections stay checked out of the pool, so its sizes still bound what the service
    opens, and they were opened by it, so they are set up as every other one (the dialect's
    JSON codecs, the application name). At most `most` are held (the pool's `keep`): the
    overflow is always there for sessions. A read that finds none idle and the most held
    waits for one, first come first served. A connection whose statement failed other than
    by PostgreSQL's refusal (the server gone, the read cancelled mid-protocol) is
    invalidated, never handed out again, and so is an idle one the server closed meanwhile
    (a restart: the driver has read the server's goodbye), before any read uses it.
    `shrink()` gives back to the pool the idle ones that the busiest moment since its
    previous call did not need.
    """

    def __init__(self, pool: AsyncAdaptedQueuePool, most: int) -> None:
        self._pool = pool
        self.most = most
        self.held = 0  # lent by the pool: idle, in use or being opened
        self.in_use = 0
        self._busiest = 0
        self._idle: deque[PoolProxiedConnection] = deque()
        # A waiter is handed an idle connection, or None: a free place to open one in.
        self._waiting: deque[asyncio.Future[PoolProxiedConnection | None]] = deque()
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        while True:
            connection = self._idle.popleft() if self._idle else await self._connection()
            driver = connection.driver_connection
            assert driver is not None, "a failed connection is dropped, never held"
            if not driver.is_closed():
                break
            # The server ended it while it was idle (a restart, a terminated backend): the
            # driver has read the goodbye, so no read needs to fail to find out.
            self._free_place()
            await greenlet_spawn(connection.invalidate)
        self.in_use += 1
        if self.in_use > self._busiest:
            self._busiest = self.in_use
        try:
            records: list[Any] = await driver.fetch(sql, *arguments)
        except BaseException as error:
            self.in_use -= 1
            if statement_refused(error, driver):
                self._put(connection)
            else:
                self._free_place()
                await greenlet_spawn(connection.invalidate, error)
            raise
        self.in_use -= 1
        self._put(connection)
        return records

    async def _connection(self) -> PoolProxiedConnection:
        if self.held < self.most:
            self.held += 1  # a place of its own, to open a connection in
        else:
            waiter: asyncio.Future[PoolProxiedConnection | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over as it was cancelled
                    given = waiter.result()
                    if given is None:
                        self._free_place()
                    else:
                        self._put(given)
                raise
            if handed is not None:
                return handed
            # None: the place of a dropped connection, still counted in `held`
        try:
            return await greenlet_spawn(self._pool.connect)
        except BaseException:
            self._free_place()
            raise

    def _put(self, connection: PoolProxiedConnection) -> None:
        if self._closed:  # its pool was disposed of: closed, not checked in
            self.held -= 1
            closing = asyncio.get_running_loop().create_task(greenlet_spawn(connection.invalidate))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _free_place(self) -> None:
        """One connection fewer held: its place goes to the first waiter, if any."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.held -= 1

    def shrink(self) -> int:
        """Give back the idle connections the busiest moment since the previous call did not
        need; how many. In a greenlet (checking in may reset the connection)."""
        spare = min(len(self._idle), self.held - self._busiest)
        self._busiest = self.in_use
        given = 0
        while given < spare and self._idle:  # a read may take one while another goes back
            self._give_back(self._idle.pop())
            given += 1
        return given

    def close(self) -> None:
        """Give every idle connection back; those in use go back when their read ends. In a
        greenlet."""
        self._closed = True
        while self._idle:
            self._give_back(self._idle.pop())

    def _give_back(self, connection: PoolProxiedConnection) -> None:
        self.held -= 1
        connection.close()  # checked in


class BurstPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, keeping the connections a burst opened until no
    moment needs them any more.

    QueuePool closes a connection above `pool_size` the moment it comes back while
    `pool_size` others are idle, and opens another at the next request that finds none
    idle. A load whose concurrency swings across `pool_size` then opens and closes
    connections all the time, and each new one costs a PostgreSQL backend, the driver's
    type introspection and every statement prepared again: content answered 2,300
    `document(id)` a second at 10 concurrent requests and 800 to 960 at 20 (the bench's
    stack). Here every connection goes back to the pool, up to `keep + overflow` in all,
    and `shrink()`, called every so often, closes the idle ones above `keep` that no
    moment since its previous call needed. Idle connections are handed out in turn
    (first in, first out, SQLAlchemy's default), not the latest first: each stays in use,
    so one the server dropped is found by ordinary traffic rather than by the next burst.

    Made by `burst_pool(keep)`: SQLAlchemy builds the pool (again, when the engine is
    disposed) from its own arguments only, `pool_size` being the most it opens.
    """

    keep = 0

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._busiest = 0
        self.reads = HeldForReads(self, most=max(self.keep, 1))

    def _do_get(self) -> Any:
        record = super()._do_get()
        self._busiest = max(self._busiest, self.checkedout())
        return record

    def shrink(self) -> int:
        """Close the idle connections above `keep` that the busiest moment since the last
        call left unused; how many it closed. Runs in a greenlet (the driver's close is
        async): `await greenlet_spawn(pool.shrink)`."""
        self.reads.shrink()
        opened = self.checkedin() + self.checkedout()
        spare = min(opened - self._busiest, opened - self.keep, self.checkedin())
        self._busiest = self.checkedout()
        closed = 0
        while closed < spare:
            try:
                record = self._pool.get(False)
            except pool_queue.Empty:
                break
            try:
                record.close()
            finally:
                self._dec_overflow()
            closed += 1
        return closed

    def dispose(self) -> None:
        self.reads.close()
        super().dispose()


def burst_pool(keep: int) -> type[BurstPool]:
    return type("BurstPool", (BurstPool,), {"keep": keep})


async def shrink_idle_connections(engine: AsyncEngine, every: float) -> None:
    """For the life of a service: every `every` seconds, close the connections a burst
    opened that went unused since (`BurstPool.shrink`)."""
    while True:
        await asyncio.sleep(every)
        pool = engine.pool  # a new one after engine.dispose()
        if not isinstance(pool, BurstPool):
            continue
        try:
            await greenlet_spawn(pool.shrink)
        except Exception:  # the next period tries again; the pool itself is unharmed
            logger.exception("closing idle database connections failed")


def create_engine(settings: ServiceSettings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_dsn,
        poolclass=burst_pool(settings.db_pool_size),
        pool_size=settings.db_pool_size + settings.db_pool_overflow,
        max_overflow=0,
        # No ping before each checkout: it cost a round trip per session (every resolver
        # and DataLoader batch opens one). A connection that died (PostgreSQL restarted)
        # fails its one request; SQLAlchemy then invalidates the whole pool.
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": f"hub-{settings.name}"}},
        json_deserializer=load_json,
    )
    event.listen(engine.sync_engine, "before_cursor_execute", refuse_nul_characters)
    in_requests = SQL_STATEMENTS.labels(service=settings.name, origin="request")
    in_background = SQL_STATEMENTS.labels(service=settings.name, origin="background")

    def count(*_: Any) -> None:
        (in_requests if request_id.get() else in_background).inc()

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return engine


# An integer of 19 digits or more may not fit in 64 bits.
_LONG_DIGITS = re.compile(r"\d{19}")


def load_json(text: str) -> Any:
    """A jsonb value as Python: with orjson (json.loads took ~4 % of a list of 20 documents,
    each with its `metadata`), except where orjson would read it differently: integers
    past 64 bits (orjson makes them floats, losing digits; json.loads keeps them exact)
    and numbers past a double (orjson refuses them)."""
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def refuse_nul_characters(
    conn: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    """Refuse text holding NUL (U+0000) as the caller's mistake, before PostgreSQL fails on it.

    JSON and GraphQL strings may carry NUL; PostgreSQL text cannot, and the driver's error
    would reach the client as a 500. Checked here, every text a service stores or looks up
    is covered, whichever transport it came from.
    """
    if _holds_nul(parameters):
        raise BadInput("text must not contain NUL characters (U+0000)")


def _holds_nul(value: Any) -> bool:
    # Parameters come as a row, a list of rows (executemany) or a mapping; values may be arrays.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class ReaderSession(AsyncSession):
    """A session for reads in autocommit (`Context.reader()`) that makes its ORM session
    when something first asks for it.

    Most reads never do: `fetch_rows` hands their statement to the driver (common/reads.py).
    Making the ORM session and closing it (in a task of its own, then a greenlet hop) cost
    ~30 µs a request, ~6 % of content's list of 20 documents, for a session nothing used.
    """

    # What AsyncSession.__init__ sets: asking for any of them makes the session.
    _MADE_BY_INIT = frozenset({"_async_bind", "_async_binds", "sync_session", "_proxied"})

    def __init__(self, bind: AsyncEngine, **options: Any) -> None:
        self.__dict__["_deferred"] = (bind, options)

    @property
    def unmade_engine(self) -> AsyncEngine | None:
        """The engine, while the ORM session is not made yet; None once it is."""
        deferred = self.__dict__.get("_deferred")
        return deferred[0] if deferred is not None else None

    if not TYPE_CHECKING:  # to mypy, a ReaderSession has AsyncSession's attributes

        def __getattr__(self, name: str) -> Any:
            deferred = self.__dict__.get("_deferred")
            if deferred is None or name not in self._MADE_BY_INIT:
                raise AttributeError(f"'ReaderSession' object has no attribute {name!r}")
            del self.__dict__["_deferred"]
            bind, options = deferred
            AsyncSession.__init__(self, bind, **options)
            return getattr(self, name)

    async def close(self) -> None:
        if "_deferred" not in self.__dict__:
            await super().close()

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        # AsyncSession closes in a task of its own, shielded from cancellation: for nothing
        # when there is nothing to close.
        if "_deferred" not in self.__dict__:
            await super().__aexit__(type_, value, traceback)


def create_reader_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[ReaderSession]:
    """Sessions for reads only, in autocommit: no BEGIN/ROLLBACK round trips (`Context.reader`)."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        class_=ReaderSession,
        expire_on_commit=False,
    )


async def ensure_database(dsn: str) -> bool:
    """Create the database named in `dsn` unless it exists; True when it was created."""
    url = make_url(dsn)
    name = url.database
    assert name, "the database URL names no database"
    server = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = await asyncpg.connect(server)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        # Identifiers cannot be bound as parameters; quote it the way PostgreSQL does.
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False  # created concurrently by another process
        return True
    finally:
        await conn.close()


async def drop_database(dsn: str) -> None:
    url = make_url(dsn)
    server = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    quoted = '"' + (url.database or "").replace('"', '""') + '"'
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()
