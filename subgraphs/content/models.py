from __future__ import annotations

import uuid

from sqlalchemy import Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from subgraphs.common.database import Timestamps, UUIDPrimaryKey, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class Document(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_created_at_id", "created_at", "id"),
        Index("ix_documents_owner_id_created_at_id", "owner_id", "created_at", "id"),
    )

    title: Mapped[str] = mapped_column(String(500))
    # A User of the identity subgraph: referenced by id, never joined (another database).
    owner_id: Mapped[uuid.UUID]
