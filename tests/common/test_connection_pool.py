"""The database pool under bursts (subgraphs/common/database.py, `BurstPool`): connections a
burst opened stay open while bursts keep coming, and close once a whole period passes
without a moment that needed them, down to the pool's size.

SQLAlchemy's QueuePool with the same sizes closes every connection above its size as soon
as it comes back idle, and opens another at the next burst: the three bursts of five below
would have opened 2 + 3 * 3 = 11 connections instead of 5."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from subgraphs.common.database import create_engine, shrink_idle_connections
from subgraphs.content import SUBGRAPH

KEEP, OVERFLOW = 2, 3


class Opened:
    """Connections the engine has opened so far."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "connect", self.add)

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
def opened(engine: AsyncEngine) -> Opened:
    return Opened(engine)


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


@pytest.mark.parametrize("sizes", [{"db_pool_size": 0}, {"db_pool_overflow": -1}])
def test_pool_sizes_that_cannot_serve_are_refused_at_startup(sizes: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        SUBGRAPH.settings_class.model_validate(sizes)
