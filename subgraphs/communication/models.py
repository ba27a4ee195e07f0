from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from subgraphs.common.database import Timestamps, UUIDPrimaryKey, new_metadata, utcnow


class Base(DeclarativeBase):
    metadata = new_metadata()


class DeliveryStatus(enum.StrEnum):
    """A notification's overall state: delivered once any channel delivered it."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


class Channel(enum.StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(enum.StrEnum):
    """One channel's delivery of a notification, through its attempts."""

    QUEUED = "queued"  # waiting for a worker (first attempt or a retry)
    SENDING = "sending"  # a worker holds it (claimed_at); a dead worker's claim expires
    SENT = "sent"
    DEAD = "dead"  # out of attempts, or refused for good: the dead-letter list
    SKIPPED = "skipped"  # nothing to send to (no address, no webhook)
    DIGESTED = "digested"  # batched: sent as part of the digest delivery `digest_id`
    DIGEST_PENDING = "digest_pending"  # waiting for its category's digest


class Notification(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_recipient_id_created_at_id", "recipient_id", "created_at", "id"),
        Index(
            "ix_notifications_unread",
            "recipient_id",
            postgresql_where=text("read_at IS NULL"),
        ),
    )

    # A User of the identity subgraph, by id.
    recipient_id: Mapped[uuid.UUID]
    category: Mapped[str] = mapped_column(String(64), default="general")
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
    # What it is about, in another subgraph: ("Document", its id).
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID | None]
    # The same key never makes a second notification (nor a second delivery).
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    sender_id: Mapped[uuid.UUID | None]


class Delivery(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_notification_id", "notification_id"),
        Index("ix_deliveries_status_updated_at", "status", "updated_at"),
        Index(
            "ix_deliveries_digest_pending",
            "recipient_id",
            "category",
            postgresql_where=text("status = 'digest_pending'"),
        ),
        Index("ix_deliveries_stranded", "created_at", postgresql_where=text("status = 'queued'")),
    )

    # `<notification id>:<channel>`, or `digest:<...>`: one delivery per key, ever.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE")
    )
    recipient_id: Mapped[uuid.UUID]
    category: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryState.QUEUED)
    destination: Mapped[str | None] = mapped_column(String(2000))
    # What is sent, rendered when the notification was made (templates checked then).
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a task for it was last handed to the broker; null while it never was (the broker
    # was unreachable): `service.delivery.sweep_stranded` queues those again.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The body without the template's secret variables (one-time links): it replaces `body`
    # once the delivery is sent or dead, so the database keeps no usable token.
    redacted_body: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dead_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    digest_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )


class DeliveryAttempt(UUIDPrimaryKey, Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery_id_number", "delivery_id", "number"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # sent | failed
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Preference(UUIDPrimaryKey, Timestamps, Base):
    """A user's choice for one category on one channel; absent means on, sent at once."""

    __tablename__ = "preferences"
    __table_args__ = (UniqueConstraint("user_id", "category", "channel"),)

    user_id: Mapped[uuid.UUID]
    category: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(default=True)
    # Email only: batch the category into one email per this many seconds.
    digest_seconds: Mapped[int | None]


class Contact(Timestamps, Base):
    """Where a user is reached: their address (learnt from identity's events), locale, webhook."""

    __tablename__ = "contacts"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(100))


class ConversationKind(enum.StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class Conversation(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "conversations"

    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[uuid.UUID]
    # Direct conversations: the two user ids, sorted; one conversation per pair.
    direct_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConversationMember(Base):
    __tablename__ = "conversation_members"
    __table_args__ = (Index("ix_conversation_members_user_id", "user_id"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # `admin` (adds and removes members; the creator, or the longest-standing member once
    # the last admin left) or `member`.
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    # Read receipts: every message up to this instant has been read by this member.
    last_read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MemberRole(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class Message(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_created_at_id", "conversation_id", "created_at", "id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    sender_id: Mapped[uuid.UUID]
    body: Mapped[str] = mapped_column(Text)
    # Documents of the content subgraph, by id: content checks access when they are read.
    attachment_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
