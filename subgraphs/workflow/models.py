from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
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


class WorkflowDefinition(UUIDPrimaryKey, Base):
    """One published version of a definition; never changed once stored."""

    __tablename__ = "workflow_definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    # The text as uploaded (YAML or JSON) and what it parsed to (definitions.Definition).
    source: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkflowInstance(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "workflow_instances"
    __table_args__ = (
        Index("ix_workflow_instances_created_at_id", "created_at", "id"),
        Index("ix_workflow_instances_subject_id_created_at_id", "subject_id", "created_at", "id"),
    )

    definition_key: Mapped[str] = mapped_column(String(100))
    # The version it started on, kept to the end. Null: an ad-hoc instance of a key that
    # names no definition (the first slice's behaviour), which has no transitions.
    definition_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_definitions.id"))
    definition_version: Mapped[int | None]
    # What the workflow is about: an entity of another subgraph (e.g. a content Document).
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[uuid.UUID]
    state: Mapped[str] = mapped_column(String(100))
    # running | completed | cancelled
    status: Mapped[str] = mapped_column(String(20), server_default="running", default="running")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, server_default=text("'{}'"), default=dict)
    # Incremented by every transition: two transitions racing on one version, one wins.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    started_by: Mapped[uuid.UUID | None]

    __mapper_args__ = {"version_id_col": version}


class Transition(UUIDPrimaryKey, Base):
    """One step of an instance, as it happened: who, when, why, what data it changed."""

    __tablename__ = "workflow_transitions"
    __table_args__ = (
        Index("ix_workflow_transitions_instance_id_created_at", "instance_id", "created_at"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_instances.id"))
    name: Mapped[str] = mapped_column(String(100))
    # action | event | timer | start | cancel
    trigger: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(100))
    to_state: Mapped[str] = mapped_column(String(100))
    actor_id: Mapped[uuid.UUID | None]
    comment: Mapped[str | None] = mapped_column(Text)
    # {field: [before, after]} for every field of the instance's data it changed.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(UUIDPrimaryKey, Timestamps, Base):
    """Human work an instance waits for, assigned to a user or claimable through a role."""

    __tablename__ = "workflow_tasks"
    __table_args__ = (
        Index("ix_workflow_tasks_assignee_id_status", "assignee_id", "status"),
        Index("ix_workflow_tasks_role_status", "role", "status"),
        Index("ix_workflow_tasks_instance_id", "instance_id"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_instances.id"))
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(100))  # the instance state it belongs to
    # The actions completing it may take (transitions of that state), e.g. approve, reject.
    outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)
    assignee_id: Mapped[uuid.UUID | None]
    role: Mapped[str | None] = mapped_column(String(64))
    # open | completed | cancelled
    status: Mapped[str] = mapped_column(String(20), default="open")
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    completed_by: Mapped[uuid.UUID | None]
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Timer(UUIDPrimaryKey, Base):
    """A durable timer: the scheduler fires it once, in the transaction that marks it fired."""

    __tablename__ = "workflow_timers"
    __table_args__ = (
        Index(
            "ix_workflow_timers_due",
            "fire_at",
            postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
        Index("ix_workflow_timers_instance_id", "instance_id"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_instances.id"))
    # transition (the definition's `after`/`at`) | escalation (an overdue task)
    kind: Mapped[str] = mapped_column(String(20))
    # The state it was set in: a timer only acts while its instance is still there.
    state: Mapped[str] = mapped_column(String(100))
    transition: Mapped[str | None] = mapped_column(String(100))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_tasks.id"))
    fire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why firing changed nothing (a guard refused, say); it still fired once.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ActionRun(UUIDPrimaryKey, Timestamps, Base):
    """A request to another service's API a transition called for, run after the commit."""

    __tablename__ = "workflow_action_runs"
    __table_args__ = (Index("ix_workflow_action_runs_status", "status"),)

    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_instances.id"))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # service, method, path, body
    # pending | succeeded | failed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class OutboxEvent(UUIDPrimaryKey, OutboxEventColumns, Base):
    """A domain event for other services, stored in the same transaction as its cause.

    Published to the deployment's event stream by the relay (subgraphs/common/events.py).
    """


class Suggestion(UUIDPrimaryKey, Timestamps, Base):
    """What an intelligence job proposes; applied only when a person accepts it."""

    __tablename__ = "suggestions"
    __table_args__ = (
        Index("ix_suggestions_subject_id_created_at", "subject_id", "created_at"),
        Index("ix_suggestions_created_at_id", "created_at", "id"),
    )

    # classification | summary | key_fields | routing
    kind: Mapped[str] = mapped_column(String(20))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[uuid.UUID]
    organization_id: Mapped[uuid.UUID | None]
    # queued | running | ready | failed | accepted | rejected
    status: Mapped[str] = mapped_column(String(20), default="queued")
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[uuid.UUID | None]
    decided_by: Mapped[uuid.UUID | None]
    # What the person chose in the end (their label), the next training's example.
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    input_text: Mapped[str | None] = mapped_column(Text)


class ClassificationExample(UUIDPrimaryKey, Timestamps, Base):
    """A labelled text an organization's classifier learns from.

    From a document the organization labelled (`labelled`, read from content with the
    caller's token), or from a person's decision on a classification suggestion
    (`accepted`, `corrected`). One per document: a new label replaces the old one.
    """

    __tablename__ = "classification_examples"
    __table_args__ = (
        UniqueConstraint("organization_id", "document_id"),
        Index(
            "ix_classification_examples_organization_id_updated_at", "organization_id", "updated_at"
        ),
    )

    organization_id: Mapped[uuid.UUID]
    document_id: Mapped[uuid.UUID | None]
    text: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # labelled | accepted | corrected
    source: Mapped[str] = mapped_column(String(20))
    suggestion_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("suggestions.id"))
    created_by: Mapped[uuid.UUID | None]


class ClassifierModel(UUIDPrimaryKey, Base):
    """One trained version of an organization's classifier (intelligence/classifier.py)."""

    __tablename__ = "classifier_models"
    __table_args__ = (UniqueConstraint("organization_id", "version"),)

    organization_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(50))
    # What it learned from: when the examples say otherwise, it is stale and retrained.
    example_count: Mapped[int] = mapped_column(Integer)
    examples_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    types: Mapped[list[str]] = mapped_column(JSON, default=list)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProcessedEvent(Base):
    """A domain event already handled: the stream delivers at least once, we act once."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
