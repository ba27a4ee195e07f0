"""subgraphs.common.subscriptions.bounded_by_token, without a server: a stream ends with its
token (expiry, revocation), passes its source's results on in order, and always closes it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from subgraphs.common.auth import Principal, SessionRevocations
from subgraphs.common.observability import ACTIVE_SUBSCRIPTIONS
from subgraphs.common.subscriptions import bounded_by_token

SERVICE = "bounds-test"


class Revocations:
    """What bounded_by_token uses of SessionRevocations: `watch(session_id)`."""

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def watch(self, session_id: uuid.UUID | str) -> AsyncIterator[asyncio.Event]:
        event = self.events.setdefault(str(session_id), asyncio.Event())
        try:
            yield event
        finally:
            del self.events[str(session_id)]


class Source:
    """An async generator fed by hand, which records that it was closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False

    async def stream(self) -> AsyncGenerator[Any, None]:
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            self.closed = True


def principal(expires_in: float | None = 3600) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        expires_at=None if expires_in is None else time.time() + expires_in,
    )


def active() -> float:
    return ACTIVE_SUBSCRIPTIONS.labels(service=SERVICE)._value.get()


def bounded(source: Source, who: Principal | None, revocations: Revocations) -> Any:
    return bounded_by_token(
        source.stream(),
        service=SERVICE,
        principal=who,
        revocations=cast(SessionRevocations, revocations),
    )


async def test_results_pass_in_order_and_the_end_of_the_source_ends_the_stream() -> None:
    source, revocations, before = Source(), Revocations(), active()
    stream = bounded(source, principal(), revocations)
    for n in range(100):
        source.queue.put_nowait(n)
    source.queue.put_nowait(None)
    assert [item async for item in stream] == list(range(100))
    assert source.closed and active() == before and revocations.events == {}


async def test_a_quiet_stream_ends_when_its_token_expires() -> None:
    source, revocations, before = Source(), Revocations(), active()
    stream = bounded(source, principal(expires_in=0.2), revocations)
    source.queue.put_nowait("first")
    assert await anext(stream) == "first"
    started = time.monotonic()
    last = await asyncio.wait_for(anext(stream), 5)
    assert 0.1 < time.monotonic() - started < 2
    assert last.errors[0].extensions == {"code": "UNAUTHENTICATED", "reason": "expired"}
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert source.closed and active() == before


async def test_an_expired_token_ends_the_stream_at_once() -> None:
    source, revocations = Source(), Revocations()
    stream = bounded(source, principal(expires_in=-1), revocations)
    last = await asyncio.wait_for(anext(stream), 5)
    assert last.errors[0].extensions["reason"] == "expired"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert source.closed


async def test_a_revoked_session_ends_the_stream() -> None:
    source, revocations, before = Source(), Revocations(), active()
    who = principal()
    stream = bounded(source, who, revocations)
    source.queue.put_nowait(1)
    assert await anext(stream) == 1
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    revocations.events[str(who.session_id)].set()
    last = await asyncio.wait_for(waiting, 5)
    assert last.errors[0].extensions == {"code": "UNAUTHENTICATED", "reason": "revoked"}
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert source.closed and active() == before and revocations.events == {}


async def test_a_result_ready_with_the_revocation_is_delivered_first() -> None:
    source, revocations = Source(), Revocations()
    who = principal()
    stream = bounded(source, who, revocations)
    source.queue.put_nowait(1)
    assert await anext(stream) == 1
    source.queue.put_nowait(2)
    revocations.events[str(who.session_id)].set()
    rest = [item async for item in stream]
    assert rest[0] == 2 and rest[-1].errors[0].extensions["reason"] == "revoked"
    assert source.closed


async def test_a_client_that_leaves_closes_the_source() -> None:
    source, revocations, before = Source(), Revocations(), active()
    stream = bounded(source, principal(), revocations)

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    source.queue.put_nowait(1)
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await stream.aclose()
    assert source.closed and active() == before and revocations.events == {}


async def test_an_anonymous_stream_has_no_deadline() -> None:
    source, revocations = Source(), Revocations()
    stream = bounded(source, None, revocations)
    source.queue.put_nowait("a")
    assert await anext(stream) == "a"
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    source.queue.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await waiting
    assert source.closed


async def test_an_error_of_the_source_reaches_the_consumer() -> None:
    async def failing() -> AsyncGenerator[Any, None]:
        yield 1
        raise RuntimeError("boom")

    stream = bounded_by_token(failing(), service=SERVICE, principal=principal(), revocations=None)
    assert await anext(stream) == 1
    with pytest.raises(RuntimeError, match="boom"):
        await anext(stream)


async def test_each_result_is_handed_on_before_the_next_stream_makes_its_own() -> None:
    """One event for a user's several subscriptions: each stream's result is made in the
    task that asked for it, so the first frame can leave before the last is executed."""
    order: list[str] = []
    event = asyncio.Event()

    async def source(name: str) -> AsyncGenerator[str, None]:
        await event.wait()
        order.append(f"made {name}")
        yield name

    async def consume(name: str) -> None:
        stream = bounded_by_token(
            source(name), service=SERVICE, principal=principal(), revocations=None
        )
        async for item in stream:
            order.append(f"sent {item}")
            break
        await stream.aclose()

    consumers = [asyncio.create_task(consume(name)) for name in "abc"]
    await asyncio.sleep(0.01)
    event.set()
    await asyncio.gather(*consumers)
    assert order == ["made a", "sent a", "made b", "sent b", "made c", "sent c"]


async def test_a_stream_ended_by_its_token_closes_its_source_and_leaves_its_consumer_be() -> None:
    source, revocations = Source(), Revocations()
    stream = bounded(source, principal(expires_in=0.05), revocations)
    last = await asyncio.wait_for(anext(stream), 5)
    assert last.errors[0].extensions["reason"] == "expired"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # would raise if a cancellation were still pending
    assert source.closed
