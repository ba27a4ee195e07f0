"""definitions tasks timers outbox suggestions

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index(
        "ix_outbox_events_published_at_created_at",
        "outbox_events",
        ["published_at", "created_at"],
        unique=False,
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "suggestions",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject_type", sa.String(length=50), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("input_text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestions")),
    )
    op.create_index(
        "ix_suggestions_created_at_id", "suggestions", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_suggestions_subject_id_created_at",
        "suggestions",
        ["subject_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "workflow_definitions",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("published_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_definitions")),
        sa.UniqueConstraint("key", "version", name=op.f("uq_workflow_definitions_key_version")),
    )
    op.create_table(
        "workflow_action_runs",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instances.id"],
            name=op.f("fk_workflow_action_runs_instance_id_workflow_instances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_action_runs")),
    )
    op.create_index(
        "ix_workflow_action_runs_status", "workflow_action_runs", ["status"], unique=False
    )
    op.create_table(
        "workflow_tasks",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=100), nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=100), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("completed_by", sa.Uuid(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instances.id"],
            name=op.f("fk_workflow_tasks_instance_id_workflow_instances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_tasks")),
    )
    op.create_index(
        "ix_workflow_tasks_assignee_id_status",
        "workflow_tasks",
        ["assignee_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_workflow_tasks_instance_id", "workflow_tasks", ["instance_id"], unique=False
    )
    op.create_index(
        "ix_workflow_tasks_role_status", "workflow_tasks", ["role", "status"], unique=False
    )
    op.create_table(
        "workflow_transitions",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("from_state", sa.String(length=100), nullable=True),
        sa.Column("to_state", sa.String(length=100), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instances.id"],
            name=op.f("fk_workflow_transitions_instance_id_workflow_instances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_transitions")),
    )
    op.create_index(
        "ix_workflow_transitions_instance_id_created_at",
        "workflow_transitions",
        ["instance_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "workflow_timers",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=100), nullable=False),
        sa.Column("transition", sa.String(length=100), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instances.id"],
            name=op.f("fk_workflow_timers_instance_id_workflow_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["workflow_tasks.id"],
            name=op.f("fk_workflow_timers_task_id_workflow_tasks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_timers")),
    )
    op.create_index(
        "ix_workflow_timers_due",
        "workflow_timers",
        ["fire_at"],
        unique=False,
        postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
    )
    op.create_index(
        "ix_workflow_timers_instance_id", "workflow_timers", ["instance_id"], unique=False
    )
    op.add_column("workflow_instances", sa.Column("definition_id", sa.Uuid(), nullable=True))
    op.add_column(
        "workflow_instances", sa.Column("definition_version", sa.Integer(), nullable=True)
    )
    op.add_column(
        "workflow_instances",
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
    )
    op.add_column(
        "workflow_instances",
        sa.Column("data", sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
    )
    op.add_column(
        "workflow_instances", sa.Column("version", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("workflow_instances", sa.Column("started_by", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_workflow_instances_definition_id_workflow_definitions"),
        "workflow_instances",
        "workflow_definitions",
        ["definition_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_workflow_instances_definition_id_workflow_definitions"),
        "workflow_instances",
        type_="foreignkey",
    )
    op.drop_column("workflow_instances", "started_by")
    op.drop_column("workflow_instances", "version")
    op.drop_column("workflow_instances", "data")
    op.drop_column("workflow_instances", "status")
    op.drop_column("workflow_instances", "definition_version")
    op.drop_column("workflow_instances", "definition_id")
    op.drop_index("ix_workflow_timers_instance_id", table_name="workflow_timers")
    op.drop_index(
        "ix_workflow_timers_due",
        table_name="workflow_timers",
        postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
    )
    op.drop_table("workflow_timers")
    op.drop_index(
        "ix_workflow_transitions_instance_id_created_at", table_name="workflow_transitions"
    )
    op.drop_table("workflow_transitions")
    op.drop_index("ix_workflow_tasks_role_status", table_name="workflow_tasks")
    op.drop_index("ix_workflow_tasks_instance_id", table_name="workflow_tasks")
    op.drop_index("ix_workflow_tasks_assignee_id_status", table_name="workflow_tasks")
    op.drop_table("workflow_tasks")
    op.drop_index("ix_workflow_action_runs_status", table_name="workflow_action_runs")
    op.drop_table("workflow_action_runs")
    op.drop_table("workflow_definitions")
    op.drop_index("ix_suggestions_subject_id_created_at", table_name="suggestions")
    op.drop_index("ix_suggestions_created_at_id", table_name="suggestions")
    op.drop_table("suggestions")
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_events_published_at_created_at", table_name="outbox_events")
    op.drop_table("outbox_events")
