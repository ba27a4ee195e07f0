"""Organizations (tenants), memberships and roles — and the claims they put in tokens."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_scope, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.dataloaders import grouped, ordered
from subgraphs.common.errors import BadInput, Conflict, NotFound
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.identity.models import Organization, RoleAssignment, User
from subgraphs.identity.roles import (
    ORGANIZATIONS_WRITE,
    ROLES_GRANT,
    Role,
    permissions_of,
    role_named,
)
from subgraphs.identity.service import audit

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Claims:
    """What a user's roles grant, as written into their access token."""

    roles: list[str]  # platform-wide roles
    organizations: dict[str, list[str]]  # organization id -> roles there
    scope: str  # space-separated permissions of all of them


async def claims_for(session: AsyncSession, user_id: uuid.UUID, roles: dict[str, Role]) -> Claims:
    assignments = (
        await session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user_id))
    ).all()
    platform = sorted({a.role for a in assignments if a.organization_id is None})
    organizations: dict[str, list[str]] = {}
    for assignment in assignments:
        if assignment.organization_id is not None:
            organizations.setdefault(str(assignment.organization_id), []).append(assignment.role)
    permissions = permissions_of(roles, {a.role for a in assignments})
    return Claims(
        roles=platform,
        organizations={org: sorted(names) for org, names in organizations.items()},
        scope=" ".join(sorted(permissions)),
    )


async def create_organization(
    session: AsyncSession,
    *,
    principal: Principal | None,
    slug: str,
    name: str,
    client: ClientInfo,
) -> Organization:
    require_scope(principal, ORGANIZATIONS_WRITE)
    slug = slug.strip().lower()
    if not SLUG.match(slug):
        raise BadInput(
            "slug must be 1 to 63 lower-case letters, digits or '-', not starting or ending "
            "with '-'",
            field="slug",
        )
    name = name.strip()
    if not name or len(name) > 200:
        raise BadInput("name must be 1 to 200 characters", field="name")
    organization = Organization(slug=slug, name=name)
    session.add(organization)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"an organization with the slug {slug!r} exists", field="slug") from None
    return organization


async def get_organization(
    session: AsyncSession, *, principal: Principal | None, organization_id: uuid.UUID
) -> Organization:
    """An organization the caller belongs to (or any, for an administrator)."""
    caller = require_user(principal)
    organization = await session.get(Organization, organization_id)
    if organization is None or not (
        caller.has_scope(ORGANIZATIONS_WRITE) or organization_id in caller.organizations
    ):
        raise NotFound("organization not found")
    return organization


async def list_organizations(
    session: AsyncSession, *, principal: Principal | None, first: int, after: str | None
) -> Page[Organization]:
    """All organizations for an administrator; the caller's own for anyone else."""
    caller = require_user(principal)
    stmt = select(Organization)
    if not caller.has_scope(ORGANIZATIONS_WRITE):
        mine = select(RoleAssignment.organization_id).where(
            RoleAssignment.user_id == caller.user_id
        )
        stmt = stmt.where(Organization.id.in_(mine))
    return await keyset_page(session, stmt, Organization, first=first, after=after)


async def organizations_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[Organization | None]:
    rows = (await session.scalars(select(Organization).where(Organization.id.in_(set(ids))))).all()
    return ordered(ids, rows, key=lambda organization: organization.id)


async def assignments_of_users(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> list[list[RoleAssignment]]:
    rows = (
        await session.scalars(
            select(RoleAssignment)
            .where(RoleAssignment.user_id.in_(set(user_ids)))
            .order_by(RoleAssignment.organization_id.nulls_first(), RoleAssignment.role)
        )
    ).all()
    return grouped(user_ids, rows, key=lambda assignment: assignment.user_id)


async def members_of_organizations(
    session: AsyncSession, organization_ids: Sequence[uuid.UUID]
) -> list[list[RoleAssignment]]:
    rows = (
        await session.scalars(
            select(RoleAssignment)
            .where(RoleAssignment.organization_id.in_(set(organization_ids)))
            .order_by(RoleAssignment.user_id, RoleAssignment.role)
        )
    ).all()
    return grouped(organization_ids, rows, key=lambda assignment: assignment.organization_id)


async def grant_role(
    session: AsyncSession,
    *,
    principal: Principal | None,
    roles: dict[str, Role],
    user_id: uuid.UUID,
    role: str,
    organization_id: uuid.UUID | None,
    client: ClientInfo,
) -> None:
    """Give a user a role, platform-wide or in one organization (which makes them a member)."""
    admin = require_scope(principal, ROLES_GRANT)
    role_named(roles, role)
    if await session.get(User, user_id) is None:
        raise NotFound("user not found")
    if organization_id is not None and await session.get(Organization, organization_id) is None:
        raise NotFound("organization not found")
    session.add(
        RoleAssignment(
            user_id=user_id, role=role, organization_id=organization_id, granted_by=admin.user_id
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return  # already held: granting is idempotent
    audit.record(
        session,
        audit.ROLE_GRANTED,
        client=client,
        actor_id=admin.user_id,
        target_user_id=user_id,
        role=role,
        organization_id=organization_id,
    )
    await session.commit()


async def revoke_role(
    session: AsyncSession,
    *,
    principal: Principal | None,
    user_id: uuid.UUID,
    role: str,
    organization_id: uuid.UUID | None,
    client: ClientInfo,
) -> None:
    admin = require_scope(principal, ROLES_GRANT)
    if user_id == admin.user_id and role == "admin" and organization_id is None:
        raise BadInput("you cannot revoke your own admin role", field="role")
    scope = (
        RoleAssignment.organization_id.is_(None)
        if organization_id is None
        else RoleAssignment.organization_id == organization_id
    )
    removed = await session.execute(
        delete(RoleAssignment).where(
            RoleAssignment.user_id == user_id, RoleAssignment.role == role, scope
        )
    )
    if removed.rowcount:  # type: ignore[attr-defined]
        audit.record(
            session,
            audit.ROLE_REVOKED,
            client=client,
            actor_id=admin.user_id,
            target_user_id=user_id,
            role=role,
            organization_id=organization_id,
        )
    await session.commit()


async def bootstrap_admin(session: AsyncSession, *, email: str, client: ClientInfo) -> User:
    """Make an existing user a platform administrator, from the command line.

    The way a deployment gets its first administrator: nobody holds roles:grant yet.
    """
    user = await session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with the email {email!r}; register first")
    existing = await session.scalar(
        select(RoleAssignment.id).where(
            RoleAssignment.user_id == user.id,
            RoleAssignment.role == "admin",
            RoleAssignment.organization_id.is_(None),
        )
    )
    if existing is None:
        session.add(RoleAssignment(user_id=user.id, role="admin"))
        audit.record(
            session,
            audit.ROLE_GRANTED,
            client=client,
            target_user_id=user.id,
            role="admin",
            via="command line",
        )
        await session.commit()
    return user
