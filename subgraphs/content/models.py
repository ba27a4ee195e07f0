"""Content's tables: documents, their file versions, shares, and the audit chain."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from subgraphs.common.database import (
    OutboxEventColumns,
    Timestamps,
    UUIDPrimaryKey,
    new_metadata,
    utcnow,
)


class Base(DeclarativeBase):
    metadata = new_metadata()


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class DocumentStatus(enum.StrEnum):
    DRAFT = "draft"
    FINAL = "final"
    ARCHIVED = "archived"


class Visibility(enum.StrEnum):
    PRIVATE = "private"  # the owner, shares and administrators
    ORGANIZATION = "organization"  # and every member of the document's organization


class Permission(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    MANAGE = "manage"  # share, delete, restore, purge

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self) -> list[Permission]:
        """This permission and every stronger one."""
        return [p for p in Permission if p.rank >= self.rank]


_RANKS = {Permission.READ: 1, Permission.WRITE: 2, Permission.MANAGE: 3}


class Document(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_created_at_id", "created_at", "id"),
        Index("ix_documents_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_documents_organization_id", "organization_id"),
        Index("ix_documents_tags", "tags", postgresql_using="gin"),
        Index("ix_documents_search_vector", "search_vector", postgresql_using="gin"),
        Index(
            "ix_documents_title_trgm",
            "title",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops"},
        ),
    )

    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A key of the deployment's document types (configuration, see document_types.py).
    type: Mapped[str] = mapped_column(String(64), default="general", server_default="general")
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), default=list, server_default=text("'{}'")
    )
    # Validated against the type's JSON Schema. `metadata` is taken by SQLAlchemy.
    attributes: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    status: Mapped[DocumentStatus] = mapped_column(
        _enum(DocumentStatus, "document_status"),
        default=DocumentStatus.DRAFT,
        server_default=DocumentStatus.DRAFT.value,
    )
    # A User and an Organization of the identity subgraph: ids, never joined (another database).
    owner_id: Mapped[uuid.UUID]
    organization_id: Mapped[uuid.UUID | None]
    visibility: Mapped[Visibility] = mapped_column(
        _enum(Visibility, "document_visibility"),
        default=Visibility.PRIVATE,
        server_default=Visibility.PRIVATE.value,
    )
    # Optimistic concurrency: every change increments it; an update names the one it read.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Text of the newest file version, as far as it could be extracted (for search). Can be
    # large, and only search needs it: deferred, so `select(Document)` does not load it (an
    # access would be a lazy load, which an AsyncSession refuses: name it in the query).
    body_text: Mapped[str] = mapped_column(Text, default="", server_default="", deferred=True)
    search_vector: Mapped[Any] = mapped_column(TSVECTOR, nullable=True, deferred=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[uuid.UUID | None]


class DocumentVersion(UUIDPrimaryKey, Base):
    """One uploaded file: immutable once stored."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), default=utcnow
    )


class DocumentShare(UUIDPrimaryKey, Base):
    """Access given to one user, or to everyone holding a role, until it expires."""

    __tablename__ = "document_shares"
    __table_args__ = (
        # One share per grantee: sharing again changes its permission or expiry.
        Index(
            "uq_document_shares_user",
            "document_id",
            "user_id",
            unique=True,
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "uq_document_shares_role",
            "document_id",
            "role",
            unique=True,
            postgresql_where=text("role IS NOT NULL"),
        ),
        Index("ix_document_shares_user_id", "user_id"),
    )

    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None]
    role: Mapped[str | None] = mapped_column(String(64))
    permission: Mapped[Permission] = mapped_column(_enum(Permission, "share_permission"))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), default=utcnow
    )


class AuditEntry(Base):
    """One link of the tamper-evident chain: its hash covers its content and the previous hash.

    Rows are never updated or deleted (a trigger refuses it); whoever bypasses the trigger
    still cannot rewrite a row without breaking every hash after it.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_document_id_seq", "document_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    # No foreign key: the trail outlives a purged document.
    document_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None]
    request_id: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # `json`, not `jsonb`: stored as written, so the hash can be recomputed byte for byte.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class OutboxEvent(UUIDPrimaryKey, OutboxEventColumns, Base):
    """A domain event for other services, stored in the transaction of the change it reports.

    The relay publishes it to the deployment's event stream (subgraphs/common/events.py);
    communication notifies people of it, workflow moves instances on it.
    """
