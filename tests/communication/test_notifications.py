"""Notifications as communication stores them (delivery by the worker: tests/integration)."""

from __future__ import annotations

import uuid

from conftest import graphql

SEND = "mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id status readAt } }"


async def test_a_sent_notification_is_queued_then_can_be_marked_read(clients) -> None:
    recipient = str(uuid.uuid4())
    sent = await graphql(
        clients["communication"], SEND, {"i": {"recipientId": recipient, "title": "Hi"}}
    )
    notification = sent["data"]["sendNotification"]
    assert notification["status"] == "QUEUED" and notification["readAt"] is None

    read = await clients["communication"].post(f"/api/v1/notifications/{notification['id']}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    listed = await clients["communication"].get(
        "/api/v1/notifications", params={"recipient_id": recipient}
    )
    assert [n["id"] for n in listed.json()["items"]] == [notification["id"]]


async def test_empty_title_is_refused(clients) -> None:
    bad = await graphql(
        clients["communication"], SEND, {"i": {"recipientId": str(uuid.uuid4()), "title": ""}}
    )
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "title"}
