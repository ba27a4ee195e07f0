from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, Enum, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from subgraphs.common.database import Timestamps, UUIDPrimaryKey, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


class Notification(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_recipient_id_created_at_id", "recipient_id", "created_at", "id"),
    )

    # A User of the identity subgraph, by id.
    recipient_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(
            DeliveryStatus, name="delivery_status", values_callable=lambda e: [m.value for m in e]
        ),
        default=DeliveryStatus.QUEUED,
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
