"""Who may do what to a document, as SQL: the one place these rules live.

Every read path (get, lists, search, `_entities`, downloads, subscriptions) filters with
`permitted(principal, Permission.READ)`, so a list stays one query and a document the
caller may not read looks exactly like one that does not exist.

- anonymous callers: nothing;
- holders of the `admin` scope: everything;
- the owner: everything;
- members of the document's organization: read, when its visibility is `organization`;
- shares: to a user, or to a role held platform-wide or in the document's organization,
  with read < write < manage, until `expires_at`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal
from subgraphs.common.reads import fetch_rows
from subgraphs.content.models import Document, DocumentShare, Permission, Visibility
from subgraphs.content.service.sql import ids_parameters, matches_ids

ADMIN_SCOPE = "admin"


def is_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.has_scope(ADMIN_SCOPE)


@dataclass(frozen=True)
class Reader:
    """What the rules below read of a principal, and nothing else: hashable, so that a
    statement built for one caller can be kept and reused (building the predicate for a
    member of an organization costs ~0.5 ms; every admin shares one)."""

    user_id: uuid.UUID
    admin: bool = False
    roles: frozenset[str] = frozenset()
    organizations: frozenset[tuple[uuid.UUID, frozenset[str]]] = frozenset()

    @classmethod
    def of(cls, principal: Principal | None) -> Reader | None:
        if principal is None:
            return None
        if is_admin(principal):
            return ADMIN_READER
        return cls(
            principal.user_id,
            roles=principal.roles,
            organizations=frozenset(principal.organizations.items()),
        )

    def principal(self) -> Principal:
        """A principal the rules treat exactly as the one this was made of."""
        return Principal(
            user_id=self.user_id,
            scopes=frozenset({ADMIN_SCOPE}) if self.admin else frozenset(),
            roles=self.roles,
            organizations=dict(self.organizations),
        )


ADMIN_READER = Reader(user_id=uuid.UUID(int=0), admin=True)  # the rules read no admin's id
STATEMENTS_KEPT = 1024  # built statements kept per caller (see `Reader`)


def permitted(principal: Principal | None, permission: Permission) -> ColumnElement[bool]:
    """True for the documents on which the caller holds `permission` (or a stronger one)."""
    if principal is None:
        return false()
    if is_admin(principal):
        return true()
    grants: list[ColumnElement[bool]] = [Document.owner_id == principal.user_id]
    if permission is Permission.READ and principal.organizations:
        grants.append(
            and_(
                Document.visibility == Visibility.ORGANIZATION,
                Document.organization_id.in_(list(principal.organizations)),
            )
        )
    grants.append(
        exists().where(
            DocumentShare.document_id == Document.id,
            DocumentShare.permission.in_(permission.at_least()),
            or_(DocumentShare.expires_at.is_(None), DocumentShare.expires_at > func.now()),
            _share_reaches(principal),
        )
    )
    return or_(*grants)


def _share_reaches(principal: Principal) -> ColumnElement[bool]:
    """A share names the caller, or a role they hold platform-wide or in the document's org."""
    reaches: list[ColumnElement[bool]] = [DocumentShare.user_id == principal.user_id]
    if principal.roles:
        reaches.append(DocumentShare.role.in_(sorted(principal.roles)))
    for organization_id, roles in principal.organizations.items():
        if roles:
            reaches.append(
                and_(
                    Document.organization_id == organization_id,
                    DocumentShare.role.in_(sorted(roles)),
                )
            )
    return or_(*reaches)


def live() -> ColumnElement[bool]:
    """Not in the trash."""
    return Document.deleted_at.is_(None)


def readable(principal: Principal | None) -> ColumnElement[bool]:
    return and_(live(), permitted(principal, Permission.READ))


async def permissions_on(
    session: AsyncSession, principal: Principal | None, ids: Sequence[uuid.UUID]
) -> list[Permission | None]:
    """The strongest permission the caller holds on each document (None: not even read)."""
    single, parameters = ids_parameters(ids)
    rows = await fetch_rows(
        session, _permissions_statement(Reader.of(principal), single), parameters
    )
    strongest: dict[uuid.UUID, Permission | None] = {}
    for id, manage, write, read in rows:
        strongest[id] = (
            Permission.MANAGE
            if manage
            else Permission.WRITE
            if write
            else Permission.READ
            if read
            else None
        )
    return [strongest.get(id) for id in ids]


@functools.lru_cache(maxsize=STATEMENTS_KEPT)
def _permissions_statement(
    reader: Reader | None, single: bool
) -> Select[uuid.UUID, bool, bool, bool]:
    principal = reader.principal() if reader else None
    return select(
        Document.id,
        permitted(principal, Permission.MANAGE),
        permitted(principal, Permission.WRITE),
        permitted(principal, Permission.READ),
    ).where(matches_ids(Document.id, single=single))
