"""The database pool under bursts (subgraphs/common/database.py, `BurstPool`): connections a
burst opened stay open while bursts keep coming, and close once a whole period passes
without a moment that needed them, down to the pool's size.

SQLAlchemy's QueuePool with the same sizes closes every connection above its size as soon
as it comes back idle, and opens another at the next burst: the three bursts of five below
would have opened 2 + 3 * 3 = 11 connections instead of 5.

Reads on the driver (common/reads.py) keep the connections the pool lends them between
reads (`HeldForReads`), at most the pool's size of them, so sessions always find its
overflow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic import ValidationError
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from subgraphs.common.database import BurstPool, create_engine, shrink_idle_connections
from subgraphs.content import SUBGRAPH

KEEP, OVERFLOW = 2, 3


class PoolEvents:
    """How many times the engine's pool has fired an event so far: "connect" (a connection
    opened), "checkout" (one handed out)."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self.count = 0
        event.listen(engine.sync_engine, name, self.add)

    def add(self, *_: object) -> None:
        self.count += 1


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    settings = SUBGRAPH.settings().model_copy(
        update={"db_pool_size": KEEP, "db_pool_overflow": OVERFLOW}
    )
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def opened(engine: AsyncEngine) -> PoolEvents:
    return PoolEvents(engine, "connect")


async def burst(engine: AsyncEngine, size: int) -> None:
    """`size` requests using a connection at the same time."""

    async def use() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(use() for _ in range(size)))


async def shrink(engine: AsyncEngine) -> int:
    return await greenlet_spawn(engine.pool.shrink)  # type: ignore[attr-defined]


async def test_bursts_above_the_pool_size_open_their_connections_once(engine, opened) -> None:
    for _ in range(3):
        await burst(engine, KEEP + OVERFLOW)
    assert opened.count == KEEP + OVERFLOW
    assert engine.pool.checkedin() == KEEP + OVERFLOW


async def test_connections_no_moment_needed_close_down_to_the_pool_size(engine, opened) -> None:
    await burst(engine, KEEP + OVERFLOW)
    assert await shrink(engine) == 0  # the burst was in this period: all were needed
    assert await shrink(engine) == OVERFLOW  # a whole period without a request
    assert engine.pool.checkedin() == KEEP
    assert await shrink(engine) == 0  # the pool's size stays open
    await burst(engine, KEEP)
    assert opened.count == KEEP + OVERFLOW  # and serves the next requests


async def test_a_period_keeps_what_its_busiest_moment_needed(engine) -> None:
    await burst(engine, KEEP + OVERFLOW)
    await shrink(engine)
    await burst(engine, KEEP + 1)
    assert await shrink(engine) == OVERFLOW - 1
    assert engine.pool.checkedin() == KEEP + 1


async def test_requests_beyond_the_most_connections_wait_for_one(engine, opened) -> None:
    await burst(engine, 2 * (KEEP + OVERFLOW))
    assert opened.count == KEEP + OVERFLOW


async def test_a_connection_in_use_is_never_closed(engine) -> None:
    await burst(engine, KEEP + OVERFLOW)
    await shrink(engine)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        # One in use and four idle: three close, the one in use counting towards the two kept.
        assert await shrink(engine) == OVERFLOW
        assert (await connection.execute(text("SELECT 2"))).scalar() == 2
    assert engine.pool.checkedin() == KEEP


async def test_a_service_shrinks_its_pool_for_as_long_as_it_runs() -> None:
    settings = SUBGRAPH.settings().model_copy(
        update={"db_pool_size": KEEP, "db_pool_overflow": OVERFLOW, "db_pool_idle_seconds": 0.2}
    )
    app = SUBGRAPH.app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        await burst(engine, KEEP + OVERFLOW)
        assert engine.pool.checkedin() == KEEP + OVERFLOW
        # One period saw the burst, the next saw nothing.
        for _ in range(30):
            await asyncio.sleep(0.1)
            if engine.pool.checkedin() == KEEP:
                break
        assert engine.pool.checkedin() == KEEP


async def test_a_failed_period_does_not_end_the_shrinking(engine, caplog) -> None:
    periods: list[int] = []

    def fails_once() -> int:
        periods.append(1)
        if len(periods) == 1:
            raise RuntimeError("the driver failed to close a connection")
        return 0

    engine.pool.shrink = fails_once
    shrinking = asyncio.create_task(shrink_idle_connections(engine, 0.01))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if len(periods) >= 2:
            break
    shrinking.cancel()
    assert len(periods) >= 2
    assert "closing idle database connections failed" in caplog.text


# --- connections held for reads ---------------------------------------------------------

BACKEND = "SELECT pg_backend_pid() AS pid"


async def read_pid(engine: AsyncEngine, hold: float = 0) -> int:
    sql = BACKEND if not hold else f"SELECT pg_backend_pid() AS pid, pg_sleep({hold})"
    (record,) = await engine.pool.reads.fetch(sql, ())  # type: ignore[attr-defined]
    return int(record["pid"])


async def test_reads_keep_their_connection_instead_of_checking_one_out_each(engine) -> None:
    checkouts = PoolEvents(engine, "checkout")
    pids = {await read_pid(engine) for _ in range(20)}
    assert len(pids) == 1 and checkouts.count == 1
    assert (engine.pool.reads.held, engine.pool.reads.idle) == (1, 1)
    assert engine.pool.checkedout() == 1  # still the pool's: its sizes bound what is open


async def test_reads_hold_at_most_the_pool_size_and_leave_the_overflow_to_sessions(
    engine, opened
) -> None:
    reads = asyncio.gather(*(read_pid(engine, hold=0.2) for _ in range(3 * KEEP)))
    await asyncio.sleep(0.1)
    assert engine.pool.reads.held == KEEP  # the others wait for one of those
    await burst(engine, OVERFLOW)  # sessions meanwhile find the overflow, without waiting
    assert len(set(await reads)) == KEEP
    assert opened.count == KEEP + OVERFLOW
    assert engine.pool.reads.in_use == 0


def all_accounted_for(engine: AsyncEngine) -> bool:
    """Every connection held for reads is idle or in use, and checked out of the pool."""
    pool = engine.pool
    assert isinstance(pool, BurstPool)
    return pool.reads.held == pool.reads.idle + pool.reads.in_use == pool.checkedout()


async def test_a_read_that_stops_waiting_loses_no_connection(engine) -> None:
    holding = [asyncio.create_task(read_pid(engine, hold=0.2)) for _ in range(KEEP)]
    await asyncio.sleep(0.05)
    waiters = [asyncio.create_task(read_pid(engine)) for _ in range(3)]
    await asyncio.sleep(0.05)
    waiters[0].cancel()  # stops waiting before a connection is handed to it
    await asyncio.gather(*holding)
    # Handed one as it is cancelled, or cancelled while its statement runs (then dropped).
    waiters[1].cancel()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError) and isinstance(results[2], int)
    assert all_accounted_for(engine) and engine.pool.reads.in_use == 0
    await asyncio.gather(*(read_pid(engine, hold=0.05) for _ in range(2 * KEEP)))
    assert engine.pool.reads.held == KEEP and all_accounted_for(engine)


async def test_a_refused_statement_keeps_its_connection(engine) -> None:
    pid = await read_pid(engine)
    with pytest.raises(asyncpg.PostgresError):
        await engine.pool.reads.fetch("SELECT 1 / 0", ())
    assert await read_pid(engine) == pid and engine.pool.reads.held == 1


async def test_a_held_connection_the_server_closed_while_idle_fails_no_read(engine) -> None:
    """A restart or a terminated backend: the driver reads the server's goodbye at once,
    and the next read takes another connection instead of failing on that one."""
    victim = await read_pid(engine)
    killer = await asyncpg.connect(
        engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", victim)
    finally:
        await killer.close()
    await asyncio.sleep(0.2)  # the goodbye reaches the idle connection
    assert await read_pid(engine) != victim
    assert engine.pool.reads.held == 1 and all_accounted_for(engine)


async def test_a_failed_connection_gives_its_place_to_a_waiting_read(engine) -> None:
    """A held connection that fails is invalidated; the read waiting for one opens another
    in its place rather than waiting forever."""
    killer = await asyncpg.connect(
        engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        holding = [asyncio.create_task(read_pid(engine, hold=0.3)) for _ in range(KEEP)]
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(read_pid(engine))
        victims = await killer.fetch(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.3)%' AND pid <> $1",
            await killer.fetchval("SELECT pg_backend_pid()"),
        )
        await killer.fetchval("SELECT pg_terminate_backend($1)", victims[0]["pid"])
        results = await asyncio.gather(*holding, return_exceptions=True)
        assert sum(isinstance(result, Exception) for result in results) == 1
        assert await asyncio.wait_for(waiting, 5) != victims[0]["pid"]
    finally:
        await killer.close()
    assert all_accounted_for(engine) and engine.pool.reads.in_use == 0


async def test_held_connections_a_period_did_not_need_go_back_to_the_pool(engine) -> None:
    await asyncio.gather(*(read_pid(engine, hold=0.05) for _ in range(KEEP)))
    await shrink(engine)  # the period that needed both
    assert engine.pool.reads.held == KEEP
    await read_pid(engine)
    await shrink(engine)  # one was enough
    assert engine.pool.reads.held == 1 and engine.pool.checkedout() == 1
    await shrink(engine)  # nothing read
    assert engine.pool.reads.held == 0 and engine.pool.checkedout() == 0
    assert await read_pid(engine)  # the next read borrows again


async def test_disposing_of_the_engine_gives_held_connections_back(engine) -> None:
    """Idle ones at once; one in use when its read ends, closed (its pool is gone)."""
    await asyncio.gather(*(read_pid(engine, hold=0.05) for _ in range(KEEP)))
    pool = engine.pool
    in_flight = asyncio.create_task(read_pid(engine, hold=0.3))
    await asyncio.sleep(0.1)
    await engine.dispose()
    assert (pool.reads.held, pool.checkedin()) == (1, 0)  # the read keeps its own to the end
    pid = await in_flight
    assert pool.reads.held == 0
    server = await asyncpg.connect(
        engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        for _ in range(50):
            if not await server.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                break
            await asyncio.sleep(0.02)
        assert not await server.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await server.close()
    assert await read_pid(engine)  # the engine's new pool lends its own


@pytest.mark.parametrize("sizes", [{"db_pool_size": 0}, {"db_pool_overflow": -1}])
def test_pool_sizes_that_cannot_serve_are_refused_at_startup(sizes: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        SUBGRAPH.settings_class.model_validate(sizes)
