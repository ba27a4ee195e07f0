"""Domain events: identity's outbox relayed to a Redis stream, read by communication's
consumer group into notifications — real PostgreSQL and Redis, consumers run in process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import sign_up
from sqlalchemy import select

from subgraphs.common import events
from subgraphs.communication.consumer import consume
from subgraphs.communication.models import Delivery, Notification
from subgraphs.communication.settings import CommunicationSettings
from subgraphs.identity.models import OutboxEvent


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> CommunicationSettings:
    """Communication's settings on a stream of this test's own."""
    monkeypatch.setenv("HUB_EVENTS_STREAM", f"hubtest:events:{uuid.uuid4().hex}")
    return CommunicationSettings()


class Consumer:
    """The consumer process's loop, run as a task: started, stopped, started again."""

    def __init__(self, settings: CommunicationSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(consume(self.settings, name="test", stop=self.stop))

    async def halt(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=10)


@pytest.fixture
async def consumer(settings: CommunicationSettings) -> AsyncIterator[Consumer]:
    running = Consumer(settings)
    yield running
    if running.task is not None and not running.task.done():
        await running.halt()
    client = events.connect(settings.hub)
    await client.delete(settings.hub.events_stream)
    await client.aclose()


async def notifications_of(apps, user_id: str) -> list[Notification]:
    async with apps["communication"].state.sessions() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.recipient_id == uuid.UUID(user_id))
        )
        return list(rows)


async def eventually_notified(apps, user_id: str, count: int = 1) -> list[Notification]:
    for _ in range(100):
        found = await notifications_of(apps, user_id)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{user_id} was not notified")


async def test_identitys_outbox_becomes_a_verification_email_to_send(
    apps, clients, settings, consumer
) -> None:
    account = await sign_up(clients["identity"])
    async with apps["identity"].state.sessions() as session:
        # This account's events, relayed here to this test's stream (published or not: a
        # running stack's identity relays the same table to the run's stream).
        rows = (await session.scalars(select(OutboxEvent))).all()
        mine = [r for r in rows if r.payload.get("user_id") == account.id]
        client = events.connect(settings.hub)
        for row in mine:
            await events.publish(
                client,
                settings.hub.events_stream,
                events.Event(
                    str(row.id), row.type, "identity", row.created_at.isoformat(), row.payload
                ),
            )
        await client.aclose()
    assert [r.type for r in mine] == ["identity.verify_email_requested"]

    consumer.start()
    (notification,) = await eventually_notified(apps, account.id)
    assert notification.title == "Confirm your email address" and notification.body == ""
    async with apps["communication"].state.sessions() as session:
        (email,) = (
            await session.scalars(
                select(Delivery).where(Delivery.notification_id == notification.id)
            )
        ).all()
    assert email.channel == "email" and email.destination == account.email
    assert "verify-email?token=" in email.body  # the token travels only in the email


async def test_the_relay_publishes_each_committed_outbox_row_once(apps, settings) -> None:
    async with apps["identity"].state.sessions() as session:
        session.add(OutboxEvent(type="identity.test_event", payload={"n": 1}))
        await session.commit()
    client = events.connect(settings.hub)

    async def relay_until_none_left() -> int:
        """Every pending row, earlier tests' too: a relay takes the oldest 100 at a time."""
        published = 0
        while True:
            async with apps["identity"].state.sessions() as session:
                relayed = await events.relay_outbox(
                    session, OutboxEvent, client, settings.hub.events_stream, source="identity"
                )
            if not relayed:
                return published
            published += relayed

    published = await relay_until_none_left()
    again = await relay_until_none_left()
    entries: Any = await client.xrange(settings.hub.events_stream)
    await client.delete(settings.hub.events_stream)
    await client.aclose()
    assert published >= 1 and again == 0
    types = [fields["type"] for _, fields in entries]
    assert types.count("identity.test_event") == 1
    assert len(entries) == published


async def test_an_event_published_while_the_consumer_is_stopped_is_notified_when_it_is_back(
    apps, clients, settings, consumer
) -> None:
    bob = await sign_up(clients["identity"])
    client = events.connect(settings.hub)

    def shared(title: str) -> events.Event:
        return events.Event(
            id=str(uuid.uuid4()),
            type="content.document_shared",
            source="content",
            occurred_at="2026-11-20T10:00:00+00:00",
            data={
                "document_id": str(uuid.uuid4()),
                "document_title": title,
                "grantee_id": bob.id,
                "permission": "read",
                "shared_by": str(uuid.uuid4()),
            },
        )

    consumer.start()
    first = shared("Before")
    await events.publish(client, settings.hub.events_stream, first)
    await eventually_notified(apps, bob.id, 1)
    await consumer.halt()

    # Stopped: two events, one of them delivered twice, and an entry that is no Hub event.
    while_down = shared("While down")
    await events.publish(client, settings.hub.events_stream, while_down)
    await events.publish(client, settings.hub.events_stream, while_down)
    await client.xadd(settings.hub.events_stream, {"junk": "1"})
    await asyncio.sleep(0.5)
    assert len(await notifications_of(apps, bob.id)) == 1

    consumer.start()
    notified = await eventually_notified(apps, bob.id, 2)
    await asyncio.sleep(0.5)
    notified = await notifications_of(apps, bob.id)
    assert sorted(n.title for n in notified) == [
        "“Before” was shared with you",
        "“While down” was shared with you",
    ]
    assert all(n.subject_type == "Document" for n in notified)
    # Everything read was acknowledged: nothing left pending for the group.
    pending = await client.xpending(settings.hub.events_stream, settings.consumer_group)
    assert pending["pending"] == 0
    await client.aclose()


async def test_two_replicas_share_the_stream_and_notify_each_event_once(
    apps, clients, settings
) -> None:
    bob = await sign_up(clients["identity"])
    client = events.connect(settings.hub)
    stop = asyncio.Event()
    replicas = [
        asyncio.create_task(consume(settings, name=name, stop=stop)) for name in ("one", "two")
    ]
    try:
        for index in range(12):
            await events.publish(
                client,
                settings.hub.events_stream,
                events.Event(
                    id=str(uuid.uuid4()),
                    type="content.document_shared",
                    source="content",
                    occurred_at="2026-11-20T10:00:00+00:00",
                    data={
                        "document_id": str(uuid.uuid4()),
                        "document_title": f"Lot {index}",
                        "grantee_id": bob.id,
                        "permission": "read",
                    },
                ),
            )

        async def lots() -> list[str]:  # (not identity's verification email, if a stack runs)
            return sorted(n.title for n in await notifications_of(apps, bob.id) if "Lot" in n.title)

        for _ in range(100):
            if len(await lots()) >= 12:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert await lots() == sorted(f"“Lot {i}” was shared with you" for i in range(12))
        group = await client.xinfo_consumers(settings.hub.events_stream, settings.consumer_group)
        assert sorted(c["name"] for c in group) == ["one", "two"]
        pending = await client.xpending(settings.hub.events_stream, settings.consumer_group)
        assert pending["pending"] == 0
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*replicas), timeout=10)
        await client.delete(settings.hub.events_stream)
        await client.aclose()
