"""Delivery over real SMTP (aiosmtpd) and a real webhook receiver, run in process: the same
service code a worker runs (through Celery: tests/integration/test_communication.py)."""

from __future__ import annotations

import uuid

from conftest import graphql, sign_up
from sqlalchemy import select

from subgraphs.communication import webhooks
from subgraphs.communication.models import Delivery, DeliveryAttempt
from subgraphs.communication.service import delivery, preferences

SEND = """mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id } }"""


async def deliveries_of(apps, notification_id: str) -> dict[str, Delivery]:
    async with apps["communication"].state.sessions() as session:
        rows = await session.scalars(
            select(Delivery).where(Delivery.notification_id == uuid.UUID(notification_id))
        )
        return {row.channel: row for row in rows}


async def run(apps, delivery_id: uuid.UUID) -> delivery.Outcome:
    state = apps["communication"].state
    async with state.sessions() as session:
        return await delivery.deliver(session, state.redis, state.settings, delivery_id)


async def with_address_and_webhook(apps, clients, receiver, hook: str):
    ada = await sign_up(clients["identity"])
    async with apps["communication"].state.sessions() as session:
        await preferences.remember_contact(
            session, uuid.UUID(ada.id), email=ada.email, display_name="Ada"
        )
        await session.commit()
    webhook = await graphql(
        clients["communication"],
        "mutation($u: String) { setWebhook(url: $u) { url secret } }",
        {"u": receiver.endpoint(hook)},
        ada.headers,
    )
    return ada, webhook["data"]["setWebhook"]["secret"]


async def test_email_and_webhook_arrive_rendered_and_signed(
    apps, clients, mailbox, receiver
) -> None:
    hook = f"ok-{uuid.uuid4().hex[:6]}"
    ada, secret = await with_address_and_webhook(apps, clients, receiver, hook)
    sent = await graphql(
        clients["communication"],
        SEND,
        {
            "i": {
                "recipientId": ada.id,
                "template": "document.version_added",
                "variables": {"document_title": "Tender RC", "version": 3},
                "category": "documents",
            }
        },
        ada.headers,
    )
    by_channel = await deliveries_of(apps, sent["data"]["sendNotification"]["id"])
    assert set(by_channel) == {"in_app", "email", "webhook"}
    for row in by_channel.values():
        assert await run(apps, row.id) == delivery.Outcome()
        assert await run(apps, row.id) == delivery.Outcome()  # a duplicate task: nothing more

    (email,) = mailbox.to(ada.email)
    assert email["Subject"] == "New version of “Tender RC”"
    assert "Version 3 is available" in email.get_payload(decode=True).decode()

    (call,) = receiver.received[hook]
    webhooks.verify(secret, call.headers, call.body)  # raises unless signed with the secret
    assert call.json["title"] == "New version of “Tender RC”"
    assert call.headers["webhook-id"] == str(by_channel["webhook"].id)
    tampered = call.body.replace(b"Tender", b"Tinder")
    try:
        webhooks.verify(secret, call.headers, tampered)
    except webhooks.InvalidSignature:
        pass
    else:
        raise AssertionError("a tampered body verified")

    after = await deliveries_of(apps, sent["data"]["sendNotification"]["id"])
    assert {c: d.status for c, d in after.items()} == {c: "sent" for c in after}
    assert all(d.attempts == 1 for d in after.values())


async def test_a_failing_receiver_is_retried_then_dead_lettered_and_replayed(
    apps, clients, receiver
) -> None:
    hook = f"down-{uuid.uuid4().hex[:6]}"
    receiver.status[hook] = 503
    ada, _ = await with_address_and_webhook(apps, clients, receiver, hook)
    admin = await sign_up(clients["identity"], roles=("admin",), apps=apps)
    sent = await graphql(
        clients["communication"], SEND, {"i": {"recipientId": ada.id, "title": "Ping"}}, ada.headers
    )
    webhook = (await deliveries_of(apps, sent["data"]["sendNotification"]["id"]))["webhook"]
    settings = apps["communication"].state.settings
    retries = [await run(apps, webhook.id) for _ in range(settings.max_attempts)]
    assert all(r.retry_in is not None for r in retries[:-1]) and retries[-1].retry_in is None
    # Exponential backoff with jitter: attempt n waits between half and all of base * 2^(n-1).
    for attempt, outcome in enumerate(retries[:-1], start=1):
        ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
        assert ceiling / 2 <= outcome.retry_in <= ceiling
    assert len(receiver.received[hook]) == settings.max_attempts

    dead = await graphql(
        clients["communication"],
        """{ deadLetters(first: 50) { nodes { id status attempts lastError
            attemptHistory { number status reason } } } }""",
        {},
        admin.headers,
    )
    (letter,) = [d for d in dead["data"]["deadLetters"]["nodes"] if d["id"] == str(webhook.id)]
    assert letter["status"] == "DEAD" and letter["lastError"] == "webhook answered HTTP 503"
    assert [a["status"] for a in letter["attemptHistory"]] == ["failed"] * settings.max_attempts

    denied = await graphql(
        clients["communication"], "{ deadLetters { nodes { id } } }", {}, ada.headers
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    receiver.status[hook] = 200
    replayed = await graphql(
        clients["communication"],
        "mutation($id: ID!) { replayDelivery(id: $id) { status attempts } }",
        {"id": str(webhook.id)},
        admin.headers,
    )
    assert replayed["data"]["replayDelivery"] == {"status": "QUEUED", "attempts": 0}
    assert await run(apps, webhook.id) == delivery.Outcome()
    again = await graphql(
        clients["communication"],
        "mutation($id: ID!) { replayDelivery(id: $id) { status } }",
        {"id": str(webhook.id)},
        admin.headers,
    )
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_email_of_a_digest_category_is_batched_into_one_email(apps, clients, mailbox) -> None:
    ada = await sign_up(clients["identity"])
    async with apps["communication"].state.sessions() as session:
        await preferences.remember_contact(session, uuid.UUID(ada.id), email=ada.email)
        await session.commit()
    digest = await clients["communication"].put(
        "/api/v1/notifications/preferences",
        json={"category": "bids", "channel": "email", "digest_seconds": 3600},
        headers=ada.headers,
    )
    assert digest.status_code == 200, digest.text
    for title in ("Bid from ACME", "Bid from Globex"):
        await graphql(
            clients["communication"],
            SEND,
            {"i": {"recipientId": ada.id, "title": title, "category": "bids"}},
            ada.headers,
        )
    state = apps["communication"].state
    async with state.sessions() as session:
        digest_id = await delivery.make_digest(session, state.settings, uuid.UUID(ada.id), "bids")
        assert (
            await delivery.make_digest(session, state.settings, uuid.UUID(ada.id), "bids") is None
        )
    assert digest_id is not None
    await run(apps, digest_id)
    (email,) = mailbox.to(ada.email)
    assert email["Subject"] == "2 new bids notifications"
    text = email.get_payload(decode=True).decode()
    assert "Bid from ACME" in text and "Bid from Globex" in text
    async with state.sessions() as session:
        attempts = (
            await session.scalars(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == digest_id)
            )
        ).all()
    assert [a.status for a in attempts] == ["sent"]
