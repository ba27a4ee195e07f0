"""Communication's REST routes for legacy clients: thin translations into `service` calls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.rest import CursorPage, Session
from subgraphs.communication import service, tasks
from subgraphs.communication.models import DeliveryStatus

router = APIRouter(tags=["notifications"])


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    recipient_id: uuid.UUID
    title: str
    body: str
    status: DeliveryStatus
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime


class NotificationIn(BaseModel):
    recipient_id: uuid.UUID
    title: str = Field(min_length=1, max_length=service.MAX_TITLE)
    body: str = Field(default="", max_length=service.MAX_BODY)


@router.post("/notifications", status_code=201, response_model=NotificationOut)
async def send_notification(body: NotificationIn, session: Session) -> NotificationOut:
    notification = await service.create_notification(
        session, recipient_id=body.recipient_id, title=body.title, body=body.body
    )
    await asyncio.to_thread(tasks.deliver_in_app.delay, str(notification.id))
    return NotificationOut.model_validate(notification)


@router.get("/notifications", response_model=CursorPage[NotificationOut])
async def list_notifications(
    session: Session,
    recipient_id: uuid.UUID,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
) -> CursorPage[NotificationOut]:
    page = await service.list_notifications(
        session, recipient_id=recipient_id, first=limit, after=cursor
    )
    return CursorPage.of(page, NotificationOut)


@router.get("/notifications/{notification_id}", response_model=NotificationOut)
async def get_notification(notification_id: uuid.UUID, session: Session) -> NotificationOut:
    return NotificationOut.model_validate(await service.get_notification(session, notification_id))


@router.post("/notifications/{notification_id}/read", response_model=NotificationOut)
async def mark_read(notification_id: uuid.UUID, session: Session) -> NotificationOut:
    return NotificationOut.model_validate(await service.mark_read(session, notification_id))
