"""Identity's domain rules. GraphQL resolvers and REST routes both call these."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.dataloaders import ordered
from subgraphs.common.errors import BadInput, Conflict, NotFound
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.identity.models import User

MAX_DISPLAY_NAME = 200


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise BadInput(f"email is not valid: {error}", field="email") from None


async def create_user(session: AsyncSession, *, email: str, display_name: str) -> User:
    email = normalize_email(email)
    display_name = display_name.strip()
    if not display_name or len(display_name) > MAX_DISPLAY_NAME:
        raise BadInput(
            f"displayName must be 1 to {MAX_DISPLAY_NAME} characters", field="displayName"
        )
    taken = await session.scalar(select(User.id).where(func.lower(User.email) == email))
    if taken:
        raise Conflict("a user with this email already exists", field="email")
    user = User(email=email, display_name=display_name)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent registration won the race for this email
        await session.rollback()
        raise Conflict("a user with this email already exists", field="email") from None
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def users_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[User | None]:
    rows = (await session.scalars(select(User).where(User.id.in_(set(ids))))).all()
    return ordered(ids, rows, key=lambda user: user.id)


async def list_users(
    session: AsyncSession, *, first: int, after: str | None, email_contains: str | None = None
) -> Page[User]:
    stmt = select(User)
    if email_contains:
        stmt = stmt.where(User.email.icontains(email_contains.strip().lower(), autoescape=True))
    return await keyset_page(session, stmt, User, first=first, after=after)
