from __future__ import annotations

import uuid

from sqlalchemy import Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from subgraphs.common.database import Timestamps, UUIDPrimaryKey, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class WorkflowInstance(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "workflow_instances"
    __table_args__ = (
        Index("ix_workflow_instances_created_at_id", "created_at", "id"),
        Index("ix_workflow_instances_subject_id_created_at_id", "subject_id", "created_at", "id"),
    )

    definition_key: Mapped[str] = mapped_column(String(100))
    # What the workflow is about: an entity of another subgraph (e.g. a content Document).
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[uuid.UUID]
    state: Mapped[str] = mapped_column(String(100))
