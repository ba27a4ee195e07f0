"""Sending one delivery over its channel: SMTP email, signed webhook. In-app delivery is
an announcement on Redis (service/delivery.py)."""

from __future__ import annotations

import asyncio
import json
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

from subgraphs.communication import destinations, webhooks
from subgraphs.communication.models import Delivery
from subgraphs.communication.settings import CommunicationSettings


class SendFailed(Exception):
    """The channel refused or failed; `permanent` ones are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def email_message(settings: CommunicationSettings, delivery: Delivery) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = delivery.destination or ""
    message["Subject"] = delivery.subject or ""
    message["Date"] = formatdate(localtime=False)
    # The same id on every attempt: a resent email is recognisably the same one.
    message["Message-ID"] = make_msgid(idstring=str(delivery.id), domain="hub.localhost")
    message["X-Hub-Delivery"] = str(delivery.id)
    message.set_content(delivery.body)
    return message


def _send_smtp(settings: CommunicationSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.send_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)


async def send_email(settings: CommunicationSettings, delivery: Delivery) -> None:
    message = email_message(settings, delivery)
    try:
        await asyncio.to_thread(_send_smtp, settings, message)
    except smtplib.SMTPRecipientsRefused as error:
        raise SendFailed(f"recipient refused: {error.recipients}", permanent=True) from None
    except (smtplib.SMTPException, OSError) as error:
        raise SendFailed(f"SMTP: {type(error).__name__}: {error}") from None


def webhook_body(delivery: Delivery, notification_category: str) -> bytes:
    return json.dumps(
        {
            "type": "notification.created",
            "delivery_id": str(delivery.id),
            "notification_id": str(delivery.notification_id),
            "recipient_id": str(delivery.recipient_id),
            "category": notification_category,
            "title": delivery.subject,
            "body": delivery.body,
        },
        separators=(",", ":"),
    ).encode()


async def send_webhook(settings: CommunicationSettings, delivery: Delivery, secret: str) -> None:
    try:
        # Checked again now: the host may resolve elsewhere than when the webhook was set.
        target = await destinations.resolve(delivery.destination or "", settings)
    except destinations.DestinationRefused as refused:
        raise SendFailed(f"webhook refused: {refused}", permanent=True) from None
    except destinations.DestinationUnresolved as error:
        raise SendFailed(f"webhook: {error}") from None
    body = webhook_body(delivery, delivery.category)
    signed = webhooks.headers(secret, str(delivery.id), body)
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
    try:
        async with httpx.AsyncClient(
            timeout=settings.send_timeout_seconds, follow_redirects=False, trust_env=False
        ) as client:
            response = await client.post(
                target.url,
                content=body,
                headers={**signed, "host": target.host_header},
                extensions=extensions,
            )
    except httpx.HTTPError as error:
        raise SendFailed(f"webhook: {type(error).__name__}: {error}") from None
    if response.is_success:
        return
    # A receiver's 4xx (other than timeouts and throttling) will not change on retry.
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    raise SendFailed(f"webhook answered HTTP {response.status_code}", permanent=permanent)
