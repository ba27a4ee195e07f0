"""deliveries: enqueued_at (the sweep of stranded deliveries), redacted_body (no secrets kept
after sending); conversation_members: role

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("enqueued_at", sa.DateTime(timezone=True)))
    op.add_column("deliveries", sa.Column("redacted_body", sa.Text()))
    # Rows made before this revision were handed to the broker when they were made.
    op.execute("UPDATE deliveries SET enqueued_at = created_at WHERE status = 'queued'")
    op.create_index(
        "ix_deliveries_stranded",
        "deliveries",
        ["created_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.add_column(
        "conversation_members",
        sa.Column("role", sa.String(length=16), nullable=False, server_default="member"),
    )
    op.execute(
        "UPDATE conversation_members m SET role = 'admin' FROM conversations c"
        " WHERE c.id = m.conversation_id AND c.created_by = m.user_id"
    )


def downgrade() -> None:
    op.drop_column("conversation_members", "role")
    op.drop_index("ix_deliveries_stranded", table_name="deliveries")
    op.drop_column("deliveries", "redacted_body")
    op.drop_column("deliveries", "enqueued_at")
