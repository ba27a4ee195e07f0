"""Documents in full: type, tags, metadata, status, sharing, versions, search, audit chain

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY = """
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    # Trusted since PostgreSQL 13: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE TYPE document_status AS ENUM ('draft', 'final', 'archived')")
    op.execute("CREATE TYPE document_visibility AS ENUM ('private', 'organization')")
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_entries_id")),
    )
    op.create_index(
        "ix_audit_entries_document_id_seq", "audit_entries", ["document_id", "seq"], unique=False
    )
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries"
        " FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
    )
    op.create_table(
        "document_shares",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column(
            "permission",
            sa.Enum("read", "write", "manage", name="share_permission"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_shares_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_shares")),
    )
    op.create_index("ix_document_shares_user_id", "document_shares", ["user_id"], unique=False)
    op.create_index(
        "uq_document_shares_role",
        "document_shares",
        ["document_id", "role"],
        unique=True,
        postgresql_where=sa.text("role IS NOT NULL"),
    )
    op.create_index(
        "uq_document_shares_user",
        "document_shares",
        ["document_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_table(
        "document_versions",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_versions_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_versions")),
        sa.UniqueConstraint(
            "document_id", "number", name=op.f("uq_document_versions_document_id_number")
        ),
    )
    op.add_column(
        "documents", sa.Column("description", sa.Text(), server_default="", nullable=False)
    )
    op.add_column(
        "documents",
        sa.Column("type", sa.String(length=64), server_default="general", nullable=False),
    )
    op.add_column(
        "documents",
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.String(length=64)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "documents",
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "documents",
        sa.Column(
            "status",
            postgresql.ENUM(name="document_status", create_type=False),
            server_default="draft",
            nullable=False,
        ),
    )
    op.add_column("documents", sa.Column("organization_id", sa.Uuid(), nullable=True))
    op.add_column(
        "documents",
        sa.Column(
            "visibility",
            postgresql.ENUM(name="document_visibility", create_type=False),
            server_default="private",
            nullable=False,
        ),
    )
    op.add_column(
        "documents", sa.Column("version", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("documents", sa.Column("body_text", sa.Text(), server_default="", nullable=False))
    op.add_column("documents", sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True))
    op.add_column("documents", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("documents", sa.Column("deleted_by", sa.Uuid(), nullable=True))
    op.create_index("ix_documents_organization_id", "documents", ["organization_id"], unique=False)
    op.create_index(
        "ix_documents_search_vector",
        "documents",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_documents_tags", "documents", ["tags"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        "ix_documents_title_trgm",
        "documents",
        ["title"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )
    # Documents from before this revision have only a title to search by.
    op.execute("UPDATE documents SET search_vector = setweight(to_tsvector('english', title), 'A')")


def downgrade() -> None:
    op.drop_index(
        "ix_documents_title_trgm",
        table_name="documents",
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )
    op.drop_index("ix_documents_tags", table_name="documents", postgresql_using="gin")
    op.drop_index("ix_documents_search_vector", table_name="documents", postgresql_using="gin")
    op.drop_index("ix_documents_organization_id", table_name="documents")
    op.drop_column("documents", "deleted_by")
    op.drop_column("documents", "deleted_at")
    op.drop_column("documents", "search_vector")
    op.drop_column("documents", "body_text")
    op.drop_column("documents", "version")
    op.drop_column("documents", "visibility")
    op.drop_column("documents", "organization_id")
    op.drop_column("documents", "status")
    op.drop_column("documents", "metadata")
    op.drop_column("documents", "tags")
    op.drop_column("documents", "type")
    op.drop_column("documents", "description")
    op.drop_table("document_versions")
    op.drop_index(
        "uq_document_shares_user",
        table_name="document_shares",
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_document_shares_role",
        table_name="document_shares",
        postgresql_where=sa.text("role IS NOT NULL"),
    )
    op.drop_index("ix_document_shares_user_id", table_name="document_shares")
    op.drop_table("document_shares")
    op.drop_index("ix_audit_entries_document_id_seq", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.execute("DROP FUNCTION audit_entries_append_only()")
    op.execute("DROP TYPE share_permission")
    op.execute("DROP TYPE document_status")
    op.execute("DROP TYPE document_visibility")
