from __future__ import annotations

from sqlalchemy import Index, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from subgraphs.common.database import Timestamps, UUIDPrimaryKey, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Case-insensitive uniqueness without citext (not in every PostgreSQL build).
        Index("uq_users_email_lower", text("lower(email)"), unique=True),
        Index("ix_users_created_at_id", "created_at", "id"),
    )

    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200))
