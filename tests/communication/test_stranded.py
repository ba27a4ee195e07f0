"""Deliveries whose task never reached the broker are swept back into the queue, once each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from communication.broker import broker_unreachable
from conftest import graphql, sign_up
from sqlalchemy import select, update

from subgraphs.communication import tasks
from subgraphs.communication.models import Delivery
from subgraphs.communication.service import delivery, preferences

SEND = """mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id status } }"""


async def in_app_of(apps, notification_id: str) -> Delivery:
    async with apps["communication"].state.sessions() as session:
        return await session.scalar(
            select(Delivery).where(
                Delivery.notification_id == uuid.UUID(notification_id),
                Delivery.channel == "in_app",
            )
        )


async def test_a_send_with_the_broker_down_is_stored_then_swept_once(apps, clients) -> None:
    state = apps["communication"].state
    # Sooner than the run's setting, so that this test's sweeps come before any other's.
    settings = state.settings.model_copy(update={"stranded_after_seconds": 0.5})
    ada = await sign_up(clients["identity"])
    with broker_unreachable():
        sent = await graphql(
            clients["communication"],
            SEND,
            {"i": {"recipientId": ada.id, "title": "Hi"}},
            ada.headers,
        )
        # Stored and answered: the delivery is there, never handed to the broker.
        assert sent["data"]["sendNotification"]["status"] == "QUEUED", sent
        notification = sent["data"]["sendNotification"]["id"]
        stranded = await in_app_of(apps, notification)
        assert stranded.status == "queued" and stranded.enqueued_at is None

        await asyncio.sleep(0.6)
        async with state.sessions() as session:
            taken = await delivery.sweep_stranded(session, settings)
            assert stranded.id in taken
            await tasks.enqueue_deliveries(session, taken)  # the broker is still away
        assert (await in_app_of(apps, notification)).enqueued_at is None  # for the next sweep

    # Two sweeps at once (two consumer replicas): each stranded delivery is taken by one.
    async def sweep() -> list[uuid.UUID]:
        async with state.sessions() as session:
            return await delivery.sweep_stranded(session, settings)

    first, second = await asyncio.gather(sweep(), sweep())
    assert (first + second).count(stranded.id) == 1
    assert stranded.id not in await sweep()
    async with state.sessions() as session:
        await tasks.enqueue_deliveries(session, [stranded.id])
    handed = await in_app_of(apps, notification)
    assert handed.enqueued_at is not None and handed.status == "queued"
    assert stranded.id not in await sweep()  # handed over: never swept again

    async with state.sessions() as session:
        outcome = await delivery.deliver(session, state.redis, state.settings, stranded.id)
    assert outcome == delivery.Outcome()
    assert (await in_app_of(apps, notification)).status == "sent"


async def test_a_digest_never_scheduled_is_found_overdue_once_its_window_passed(
    apps, clients
) -> None:
    state = apps["communication"].state
    settings = state.settings.model_copy(update={"stranded_after_seconds": 0.5})
    ada = await sign_up(clients["identity"])
    category = f"tenders-{uuid.uuid4().hex[:6]}"
    async with state.sessions() as session:
        await preferences.remember_contact(session, uuid.UUID(ada.id), email=ada.email)
        await session.commit()
    await clients["communication"].put(
        "/api/v1/notifications/preferences",
        json={"category": category, "channel": "email", "digest_seconds": 60},
        headers=ada.headers,
    )
    with broker_unreachable():
        for title in ("Lot 1", "Lot 2"):
            sent = await graphql(
                clients["communication"],
                SEND,
                {"i": {"recipientId": ada.id, "title": title, "category": category}},
                ada.headers,
            )
            assert sent["data"]["sendNotification"]["status"] == "QUEUED", sent
    # Not scheduled, and not marked as scheduled: the window's next notification tries again.
    assert not await state.redis.client.exists(state.redis.key("digest", ada.id, category))

    async def overdue() -> list[tuple[uuid.UUID, str]]:
        async with state.sessions() as session:
            return await delivery.overdue_digests(session, settings)

    assert (uuid.UUID(ada.id), category) not in await overdue()  # within its minute
    async with state.sessions() as session:  # a minute later
        await session.execute(
            update(Delivery)
            .where(Delivery.recipient_id == uuid.UUID(ada.id), Delivery.category == category)
            # (past this test's 60 + 0.5 s, short of the run's 60 + 3 s: a running stack's
            # sweep leaves them to this test)
            .values(created_at=Delivery.created_at - timedelta(seconds=60.8))
        )
        await session.commit()
    assert (uuid.UUID(ada.id), category) in await overdue()
    async with state.sessions() as session:
        digest = await delivery.make_digest(session, settings, uuid.UUID(ada.id), category)
        assert digest is not None
        assert await delivery.make_digest(session, settings, uuid.UUID(ada.id), category) is None
    assert (uuid.UUID(ada.id), category) not in await overdue()
