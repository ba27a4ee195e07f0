"""Hot reads on the driver (subgraphs/common/reads.py): the same rows as through the session,
in the session's transaction when it has one, and every statement seen by the engine's hooks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from conftest import count_statements
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from subgraphs.common.auth import Principal
from subgraphs.common.database import ReaderSession
from subgraphs.common.errors import BadInput
from subgraphs.common.reads import fetch_rows, is_reader
from subgraphs.content.models import Document, DocumentShare, Permission, Visibility
from subgraphs.content.service.documents import DOCUMENT_FIELDS, DocumentFilter
from subgraphs.content.service.sql import matches_ids

ORGANIZATION = uuid.uuid4()
OWNER = uuid.uuid4()
MEMBER = Principal(
    user_id=uuid.uuid4(),
    roles=frozenset({"buyer"}),
    organizations={ORGANIZATION: frozenset({"approver", "member"})},
)
ADMIN = Principal(user_id=uuid.uuid4(), scopes=frozenset({"admin"}))


@pytest.fixture
async def documents(apps) -> list[uuid.UUID]:
    """Documents of every kind the access rules tell apart, with odd values in each column."""
    start = datetime.now(UTC)
    made = [
        Document(title="private", owner_id=OWNER, tags=["a", "b"], attributes={"n": 1, "x": None}),
        Document(
            title="organization",
            owner_id=OWNER,
            organization_id=ORGANIZATION,
            visibility=Visibility.ORGANIZATION,
            description="ünïcode ✓",
        ),
        Document(title="shared by role", owner_id=OWNER, organization_id=ORGANIZATION),
        Document(title="shared to the member", owner_id=OWNER, tags=[]),
        Document(title="trashed", owner_id=OWNER, deleted_at=start, deleted_by=OWNER),
    ]
    async with apps["content"].state.sessions() as session:
        for i, document in enumerate(made):
            document.created_at = start + timedelta(microseconds=i)
            session.add(document)
        await session.flush()
        session.add_all(
            [
                DocumentShare(
                    document_id=made[2].id,
                    role="approver",
                    permission=Permission.READ,
                    created_by=OWNER,
                ),
                DocumentShare(
                    document_id=made[3].id,
                    user_id=MEMBER.user_id,
                    permission=Permission.WRITE,
                    created_by=OWNER,
                ),
            ]
        )
        await session.commit()
    return [document.id for document in made]


IDS = matches_ids(Document.id, single=False)  # given when run: {"ids": [...]}


def _statements(ids: list[uuid.UUID]):
    for principal in (ADMIN, MEMBER, Principal(user_id=OWNER), None):
        yield (
            DocumentFilter()
            .apply(select(*DOCUMENT_FIELDS), principal)
            .where(IDS)
            .order_by(Document.created_at)
        )
    yield select(*DOCUMENT_FIELDS).where(Document.id.in_(ids)).order_by(Document.title)
    yield (
        select(Document.status, func.count())
        .where(Document.id.in_(ids))
        .group_by(Document.status)
        .order_by(Document.status)
    )
    yield (
        DocumentFilter(tags=("a",), trashed=False).apply(select(*DOCUMENT_FIELDS), ADMIN).where(IDS)
    )


async def test_rows_are_the_sessions_own(apps, documents) -> None:
    app = apps["content"]
    params = {"ids": documents}
    for stmt in _statements(documents):
        async with app.state.sessions() as session:
            expected = [tuple(row) for row in (await session.execute(stmt, params)).all()]
            keys = list((await session.execute(stmt, params)).keys())
        async with app.state.readers() as reader:
            assert is_reader(reader)
            rows = await fetch_rows(reader, stmt, params)
        assert [tuple(row) for row in rows] == expected
        assert [list(row._fields) for row in rows] == [keys] * len(rows)
        values = [value for row in rows for value in row]
        assert [type(v) for v in values] == [type(v) for row in expected for v in row]


async def test_the_member_sees_what_the_access_rules_allow(apps, documents) -> None:
    stmt = DocumentFilter().apply(select(*DOCUMENT_FIELDS), MEMBER).where(IDS)
    async with apps["content"].state.readers() as reader:
        titles = {row.title for row in await fetch_rows(reader, stmt, {"ids": documents})}
    assert titles == {"organization", "shared by role", "shared to the member"}


async def test_a_session_with_a_transaction_reads_its_own_writes(apps, documents) -> None:
    async with apps["content"].state.sessions() as session:
        session.add(Document(title="not committed", owner_id=OWNER))
        await session.flush()
        assert not is_reader(session)
        rows = await fetch_rows(
            session, select(Document.title).where(Document.title == "not committed")
        )
        assert [row.title for row in rows] == ["not committed"]
        await session.rollback()


async def test_a_reader_makes_no_orm_session_until_one_is_asked_for(apps, documents) -> None:
    stmt = select(Document.title).where(IDS).order_by(Document.title)
    async with apps["content"].state.readers() as reader:
        assert isinstance(reader, ReaderSession) and reader.unmade_engine is not None
        rows = await fetch_rows(reader, stmt, {"ids": documents})
        assert reader.unmade_engine is not None  # the driver read them
        # The ORM session is made when asked for, and reads the same rows.
        orm_titles = (await reader.scalars(stmt, {"ids": documents})).all()
        assert reader.unmade_engine is None
        again = await fetch_rows(reader, stmt, {"ids": documents})
    assert [row.title for row in rows] == list(orm_titles) == [row.title for row in again]
    assert len(orm_titles) == 5


async def test_every_statement_reaches_the_engines_hooks(apps, documents) -> None:
    app = apps["content"]
    with count_statements(app.state.engine) as sql:
        async with app.state.readers() as reader:
            await fetch_rows(reader, select(Document.id).where(IDS), {"ids": documents})
    assert len(sql.statements) == 1 and "FROM documents" in sql.statements[0]
    async with app.state.readers() as reader:
        with pytest.raises(BadInput, match="NUL"):
            await fetch_rows(reader, select(Document.id).where(Document.title == "a\x00b"))


async def test_a_statement_kept_and_run_again_reads_the_rows_of_its_own_values(
    apps, documents
) -> None:
    """A kept statement's SQL and values are remembered: each statement keeps its own, and
    every run still reaches the hooks (the NUL refusal)."""
    private, organization, shared_by_role = documents[:3]
    by_id = {
        id: select(Document.id, Document.title).where(Document.id == id)
        for id in (private, organization)
    }
    refused = select(Document.id).where(Document.title == "a\x00b")
    for _ in range(2):
        async with apps["content"].state.readers() as reader:
            assert [row.title for row in await fetch_rows(reader, by_id[private])] == ["private"]
            assert [row.title for row in await fetch_rows(reader, by_id[organization])] == [
                "organization"
            ]
            with pytest.raises(BadInput, match="NUL"):
                await fetch_rows(reader, refused)
    again = select(Document.id, Document.title).where(Document.id == shared_by_role)
    async with apps["content"].state.readers() as reader:
        assert [row.title for row in await fetch_rows(reader, again)] == ["shared by role"]


async def test_a_connection_whose_server_went_away_is_not_handed_out_again(apps) -> None:
    """The request that meets it fails; the pool drops it, as SQLAlchemy's own path would."""
    app = apps["content"]
    backend = select(func.pg_backend_pid().label("pid"))

    async def read_pid() -> int:
        async with app.state.readers() as reader:
            return (await fetch_rows(reader, backend))[0].pid

    victim = await read_pid()
    server = make_url(app.state.settings.database_dsn).set(drivername="postgresql")
    killer = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", victim)
    finally:
        await killer.close()
    failures, pids = 0, []
    for _ in range(2 * (app.state.engine.sync_engine.pool.checkedin() + 2)):
        try:
            pids.append(await read_pid())
        except Exception:  # which error depends on when the server's goodbye was read
            failures += 1
    assert failures <= 1 and victim not in pids and pids


async def test_a_connection_terminated_mid_statement_is_not_handed_out_again(apps) -> None:
    """A backend terminated while it runs the statement fails it with a PostgresError
    (SQLSTATE 57P01 or 08003), as a refusal would; unlike a refusal, the connection does
    not survive it (before the two were told apart, a later read got "connection is closed")."""
    app = apps["content"]
    sleeping = select(func.pg_backend_pid().label("pid"), func.pg_sleep(30).label("slept"))
    backend = select(func.pg_backend_pid().label("pid"))
    server = make_url(app.state.settings.database_dsn).set(drivername="postgresql")

    async def sleep_on_a_connection() -> None:
        async with app.state.readers() as reader:
            await fetch_rows(reader, sleeping)

    statement = asyncio.create_task(sleep_on_a_connection())
    killer = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        for _ in range(100):
            victim = await killer.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> $1",
                await killer.fetchval("SELECT pg_backend_pid()"),
            )
            if victim:
                break
            await asyncio.sleep(0.05)
        assert victim and await killer.fetchval("SELECT pg_terminate_backend($1)", victim)
    finally:
        await killer.close()
    with pytest.raises(asyncpg.PostgresError) as refused:
        await statement
    assert refused.value.sqlstate[:2] in ("08", "57")  # which depends on the timing
    pids = []
    for _ in range(2 * (app.state.engine.sync_engine.pool.checkedin() + 2)):
        async with app.state.readers() as reader:
            pids.append((await fetch_rows(reader, backend))[0].pid)
    assert victim not in pids


async def test_a_read_cancelled_mid_statement_gives_its_connection_back_dropped(apps) -> None:
    """A request that ends while its statement runs (the client left, a timeout) leaves the
    connection mid-protocol: it is dropped, not held for the next read, and the pool gets
    its place back."""
    app = apps["content"]
    pool = app.state.engine.sync_engine.pool
    sleeping = select(func.pg_backend_pid().label("pid"), func.pg_sleep(30).label("slept"))
    backend = select(func.pg_backend_pid().label("pid"))

    async def sleep_on_a_connection() -> None:
        async with app.state.readers() as reader:
            await fetch_rows(reader, sleeping)

    statement = asyncio.create_task(sleep_on_a_connection())
    await asyncio.sleep(0.3)
    assert pool.reads.in_use == 1
    held = pool.reads.held
    statement.cancel()
    with pytest.raises(asyncio.CancelledError):
        await statement
    assert (pool.reads.in_use, pool.reads.held) == (0, held - 1)
    assert pool.checkedout() == pool.reads.held  # nothing else is left checked out
    async with app.state.readers() as reader:  # the next read gets a sound connection
        assert (await fetch_rows(reader, backend))[0].pid
