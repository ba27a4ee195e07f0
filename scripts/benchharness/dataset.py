"""The benchmark's data set, bulk-loaded with COPY straight into each subgraph's database.

Rows are what the services themselves would have written (ids, owners, organizations,
versions, extracted text, search vectors computed by content's own SQL expression), so
the stack serves them like any other data; only the path in is faster than the API.
Everyone signs in with one password, hashed once by identity's own hasher.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

PASSWORD = "bench passphrase for every seeded user 7"
MARKER = "bench_seed"  # a table in identity's database: which data set is loaded, and done

WORDS = """
contract invoice tender supplier budget review approval procurement order delivery
payment schedule quality audit compliance policy report analysis summary proposal
evaluation criteria deadline amendment clause warranty service maintenance project milestone
risk mitigation contractor subcontract purchase requisition catalogue price quotation bid
award notice agreement renewal termination penalty insurance liability patient clinic
referral prescription diagnosis treatment consent record laboratory result imaging discharge
appointment nurse doctor pharmacy allergy vaccine therapy network server storage
backup security incident response firewall license software hardware migration upgrade
capacity performance latency throughput benchmark database finance quarterly annual forecast
revenue expense margin asset depreciation tax ledger employee onboarding training
handbook benefit salary leave recruitment interview logistics warehouse inventory shipment
customs freight carrier route fleet fuel energy solar turbine grid
emission carbon sustainability recycling waste water
""".split()  # noqa: SIM905 (a vocabulary reads better as text)


@dataclass(frozen=True)
class Size:
    users: int
    organizations: int
    documents: int
    notifications: int
    workflows: int

    @property
    def label(self) -> str:
        return (
            f"{self.users} users, {self.organizations} organizations, {self.documents} documents,"
            f" {self.notifications} notifications, {self.workflows} workflow instances"
        )


FULL = Size(
    users=1000, organizations=20, documents=100_000, notifications=200_000, workflows=10_000
)
QUICK = Size(users=100, organizations=5, documents=10_000, notifications=20_000, workflows=1_000)


@dataclass
class Seeded:
    """What the measurements need to know about the data."""

    emails: list[str]  # emails[0] is a platform administrator
    user_ids: list[str]
    document_ids: list[str]  # a sample, newest first
    words: list[str]


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


async def _copy(dsn: str, table: str, rows: Sequence[tuple[Any, ...]], columns: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(table, records=rows, columns=columns)
    finally:
        await conn.close()


async def seeded(identity_dsn: str, size: Size) -> bool:
    """True when identity's database holds a finished seed of this size."""
    conn = await asyncpg.connect(identity_dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MARKER)
        if not exists:
            return False
        stored = await conn.fetchval(f"SELECT size FROM {MARKER}")
        return stored == json.dumps(asdict(size), sort_keys=True)
    finally:
        await conn.close()


async def seed(
    dsns: dict[str, str], size: Size, *, search_vector_sql: str, log: Callable[[str], None]
) -> None:
    """Load the data set; `search_vector_sql` is content's UPDATE that computes the vectors."""
    rng = random.Random(9)
    now = datetime.now(UTC)
    started = time.monotonic()

    # --- identity: organizations, users (one hash for all), roles -----------------------
    from subgraphs.identity.security import hash_password

    password_hash = hash_password(PASSWORD)
    orgs = [uuid.uuid4() for _ in range(size.organizations)]
    users = [uuid.uuid4() for _ in range(size.users)]
    await _copy(
        dsns["identity"],
        "organizations",
        [(o, f"bench-org-{i}", f"Bench organization {i}", now, now) for i, o in enumerate(orgs)],
        ["id", "slug", "name", "created_at", "updated_at"],
    )
    await _copy(
        dsns["identity"],
        "users",
        [
            (u, f"bench{i}@example.com", f"Bench User {i}", password_hash, now, True, now, now, now)
            for i, u in enumerate(users)
        ],
        [
            "id",
            "email",
            "display_name",
            "password_hash",
            "password_changed_at",
            "is_active",
            "email_verified_at",
            "created_at",
            "updated_at",
        ],
    )
    roles: list[tuple[uuid.UUID, uuid.UUID, str, uuid.UUID | None, datetime]] = [
        (uuid.uuid4(), u, "member", orgs[i % len(orgs)], now) for i, u in enumerate(users)
    ]
    roles.append((uuid.uuid4(), users[0], "admin", None, now))
    await _copy(
        dsns["identity"],
        "role_assignments",
        roles,
        ["id", "user_id", "role", "organization_id", "created_at"],
    )
    log(f"seed: identity ({time.monotonic() - started:.1f}s)")

    # --- content: documents with two versions each and extracted text -------------------
    documents = [uuid.uuid4() for _ in range(size.documents)]
    doc_rows, version_rows = [], []
    for j, d in enumerate(documents):
        owner = j % size.users
        created = now - timedelta(seconds=size.documents - j)
        doc_rows.append(
            (
                d,
                _text(rng, 3, 7).capitalize(),
                _text(rng, 8, 16),
                "general",
                [rng.choice(WORDS), rng.choice(WORDS)],
                "{}",
                rng.choice(("draft", "final", "archived")),
                users[owner],
                orgs[owner % len(orgs)],
                "organization" if j % 2 else "private",
                2,
                _text(rng, 60, 140),  # the newest version's extracted text
                created,
                created,
            )
        )
        for number in (1, 2):
            digest = hashlib.sha256(f"{d}{number}".encode()).hexdigest()
            version_rows.append(
                (
                    uuid.uuid4(),
                    d,
                    number,
                    f"bench/{d}/{number}",
                    f"document-{j}-v{number}.txt",
                    "text/plain",
                    rng.randint(2_000, 200_000),
                    digest,
                    users[owner],
                    created,
                )
            )
    await _copy(
        dsns["content"],
        "documents",
        doc_rows,
        [
            "id",
            "title",
            "description",
            "type",
            "tags",
            "metadata",
            "status",
            "owner_id",
            "organization_id",
            "visibility",
            "version",
            "body_text",
            "created_at",
            "updated_at",
        ],
    )
    await _copy(
        dsns["content"],
        "document_versions",
        version_rows,
        [
            "id",
            "document_id",
            "number",
            "storage_key",
            "filename",
            "media_type",
            "size",
            "sha256",
            "created_by",
            "created_at",
        ],
    )
    log(f"seed: content rows ({time.monotonic() - started:.1f}s)")
    await _rebuild_search_vectors(dsns["content"], search_vector_sql)
    log(f"seed: content search vectors ({time.monotonic() - started:.1f}s)")

    # --- communication: notifications ---------------------------------------------------
    notifications = []
    for k in range(size.notifications):
        created = now - timedelta(seconds=size.notifications - k)
        notifications.append(
            (
                uuid.uuid4(),
                users[k % size.users],
                "general",
                _text(rng, 3, 6).capitalize(),
                _text(rng, 10, 30),
                "delivered",
                created,
                created if k % 3 else None,
                "Document",
                documents[rng.randrange(size.documents)],
                f"bench-{k}",
                created,
                created,
            )
        )
    await _copy(
        dsns["communication"],
        "notifications",
        notifications,
        [
            "id",
            "recipient_id",
            "category",
            "title",
            "body",
            "status",
            "delivered_at",
            "read_at",
            "subject_type",
            "subject_id",
            "idempotency_key",
            "created_at",
            "updated_at",
        ],
    )
    log(f"seed: communication ({time.monotonic() - started:.1f}s)")

    # --- workflow: ad-hoc instances on documents, one open task each ---------------------
    instances, tasks = [], []
    for m, j in enumerate(rng.sample(range(size.documents), size.workflows)):
        instance_owner = users[j % size.users]
        instance = uuid.uuid4()
        created = now - timedelta(seconds=size.workflows - m)
        instances.append(
            (
                instance,
                "review",
                "Document",
                documents[j],
                "review",
                "running",
                "{}",
                1,
                instance_owner,
                created,
                created,
            )
        )
        tasks.append(
            (
                uuid.uuid4(),
                instance,
                "review",
                f"Review {_text(rng, 2, 4)}",
                "review",
                json.dumps(["approve", "reject"]),
                instance_owner,
                "open",
                now + timedelta(days=3),
                created,
                created,
            )
        )
    await _copy(
        dsns["workflow"],
        "workflow_instances",
        instances,
        [
            "id",
            "definition_key",
            "subject_type",
            "subject_id",
            "state",
            "status",
            "data",
            "version",
            "started_by",
            "created_at",
            "updated_at",
        ],
    )
    await _copy(
        dsns["workflow"],
        "workflow_tasks",
        tasks,
        [
            "id",
            "instance_id",
            "name",
            "title",
            "state",
            "outcomes",
            "assignee_id",
            "status",
            "due_at",
            "created_at",
            "updated_at",
        ],
    )
    log(f"seed: workflow ({time.monotonic() - started:.1f}s)")

    for dsn in dsns.values():
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
    conn = await asyncpg.connect(dsns["identity"])
    try:
        await conn.execute(f"CREATE TABLE {MARKER} (size text NOT NULL)")
        await conn.execute(
            f"INSERT INTO {MARKER} VALUES ($1)", json.dumps(asdict(size), sort_keys=True)
        )
    finally:
        await conn.close()
    log(f"seed: {size.label} in {time.monotonic() - started:.1f}s")


async def _rebuild_search_vectors(dsn: str, update_sql: str) -> None:
    """One UPDATE with the GIN index dropped, then the index built again: far faster."""
    conn = await asyncpg.connect(dsn)
    try:
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_documents_search_vector'"
        )
        await conn.execute("DROP INDEX IF EXISTS ix_documents_search_vector")
        await conn.execute(update_sql)
        if definition:
            await conn.execute(definition)
    finally:
        await conn.close()


async def describe(dsns: dict[str, str], size: Size) -> Seeded:
    conn = await asyncpg.connect(dsns["identity"])
    try:
        rows = await conn.fetch(
            "SELECT id, email FROM users WHERE email LIKE 'bench%@example.com'"
            " ORDER BY length(email), email"
        )
    finally:
        await conn.close()
    conn = await asyncpg.connect(dsns["content"])
    try:
        docs = await conn.fetch(
            "SELECT id FROM documents ORDER BY created_at DESC, id DESC LIMIT 2000"
        )
    finally:
        await conn.close()
    return Seeded(
        emails=[r["email"] for r in rows],
        user_ids=[str(r["id"]) for r in rows],
        document_ids=[str(r["id"]) for r in docs],
        words=list(WORDS),
    )
