"""Identity's REST routes for legacy clients: thin translations into `service` calls."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.rest import CursorPage, Session
from subgraphs.identity import service

router = APIRouter(tags=["users"])


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    created_at: datetime


class UserIn(BaseModel):
    email: str = Field(max_length=320)
    display_name: str = Field(min_length=1, max_length=200)


@router.post("/users", status_code=201, response_model=UserOut)
async def create_user(body: UserIn, session: Session) -> UserOut:
    user = await service.create_user(session, email=body.email, display_name=body.display_name)
    return UserOut.model_validate(user)


@router.get("/users", response_model=CursorPage[UserOut])
async def list_users(
    session: Session,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
) -> CursorPage[UserOut]:
    page = await service.list_users(session, first=limit, after=cursor)
    return CursorPage.of(page, UserOut)


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: uuid.UUID, session: Session) -> UserOut:
    return UserOut.model_validate(await service.get_user(session, user_id))
