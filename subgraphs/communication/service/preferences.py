"""Per-user preferences (category x channel, digest) and contacts (address, locale, webhook)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.errors import BadInput
from subgraphs.communication import destinations, webhooks
from subgraphs.communication.models import Channel, Contact, Preference
from subgraphs.communication.settings import CommunicationSettings

MIN_DIGEST_SECONDS = 60
MAX_DIGEST_SECONDS = 7 * 24 * 3600
CHANNELS = tuple(c.value for c in Channel)


async def list_preferences(session: AsyncSession, principal: Principal | None) -> list[Preference]:
    caller = require_user(principal)
    return list(
        await session.scalars(
            select(Preference)
            .where(Preference.user_id == caller.user_id)
            .order_by(Preference.category, Preference.channel)
        )
    )


async def set_preference(
    session: AsyncSession,
    principal: Principal | None,
    *,
    category: str,
    channel: str,
    enabled: bool,
    digest_seconds: int | None = None,
) -> Preference:
    caller = require_user(principal)
    category = category.strip()
    if not category or len(category) > 64:
        raise BadInput("category must be 1 to 64 characters", field="category")
    if channel not in CHANNELS:
        raise BadInput(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if digest_seconds is not None:
        if channel != Channel.EMAIL:
            raise BadInput("only email can be sent as a digest", field="digestSeconds")
        if not MIN_DIGEST_SECONDS <= digest_seconds <= MAX_DIGEST_SECONDS:
            raise BadInput(
                f"digestSeconds must be {MIN_DIGEST_SECONDS} to {MAX_DIGEST_SECONDS}",
                field="digestSeconds",
            )
    values = {"enabled": enabled, "digest_seconds": digest_seconds}
    stored = await session.scalar(
        insert(Preference)
        .values(
            id=uuid.uuid4(), user_id=caller.user_id, category=category, channel=channel, **values
        )
        .on_conflict_do_update(index_elements=["user_id", "category", "channel"], set_=values)
        .returning(Preference)
    )
    await session.commit()
    assert stored is not None
    return stored


async def remember_contact(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    email: str | None = None,
    display_name: str | None = None,
) -> None:
    """Keep what identity's events say about a user (their address, their name)."""
    values = {k: v for k, v in {"email": email, "display_name": display_name}.items() if v}
    if not values:
        return
    await session.execute(
        insert(Contact)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["user_id"], set_=values)
    )


async def get_contact(session: AsyncSession, principal: Principal | None) -> Contact:
    caller = require_user(principal)
    return await session.get(Contact, caller.user_id) or Contact(user_id=caller.user_id)


async def set_locale(session: AsyncSession, principal: Principal | None, locale: str) -> Contact:
    caller = require_user(principal)
    if not 2 <= len(locale) <= 16 or not locale.replace("-", "").isalnum():
        raise BadInput("locale must look like en or pt-BR", field="locale")
    await session.execute(
        insert(Contact)
        .values(user_id=caller.user_id, locale=locale)
        .on_conflict_do_update(index_elements=["user_id"], set_={"locale": locale})
    )
    await session.commit()
    return await get_contact(session, caller)


async def set_webhook(
    session: AsyncSession,
    settings: CommunicationSettings,
    principal: Principal | None,
    url: str | None,
) -> tuple[Contact, str | None]:
    """Set (or with None, remove) the caller's webhook; the new signing secret, shown once.

    The URL must reach a public address (destinations.py): it is checked again before
    every delivery."""
    caller = require_user(principal)
    secret = None
    if url is not None:
        if len(url) > 2000:
            raise BadInput("url must be at most 2000 characters", field="url")
        try:
            await destinations.resolve(url, settings)
        except (destinations.DestinationRefused, destinations.DestinationUnresolved) as error:
            raise BadInput(f"webhook url refused: {error}", field="url") from None
        secret = webhooks.new_secret()
    values = {"webhook_url": url, "webhook_secret": secret}
    await session.execute(
        insert(Contact)
        .values(user_id=caller.user_id, **values)
        .on_conflict_do_update(index_elements=["user_id"], set_=values)
    )
    await session.commit()
    contact = await session.get(Contact, caller.user_id, populate_existing=True)
    assert contact is not None
    return contact, secret
