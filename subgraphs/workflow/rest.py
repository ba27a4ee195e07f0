"""Workflow's REST routes for legacy clients: thin translations into `service` calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.rest import CursorPage, Session
from subgraphs.workflow import service

router = APIRouter(tags=["workflows"])


class InstanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    definition_key: str
    state: str
    subject_type: str
    subject_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class InstanceIn(BaseModel):
    definition_key: str = Field(min_length=1, max_length=100)
    subject_type: Literal["Document", "User"] = "Document"
    subject_id: uuid.UUID


@router.post("/workflows/instances", status_code=201, response_model=InstanceOut)
async def start_workflow(body: InstanceIn, session: Session) -> InstanceOut:
    instance = await service.start_workflow(
        session,
        definition_key=body.definition_key,
        subject_type=body.subject_type,
        subject_id=body.subject_id,
    )
    return InstanceOut.model_validate(instance)


@router.get("/workflows/instances", response_model=CursorPage[InstanceOut])
async def list_instances(
    session: Session,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
) -> CursorPage[InstanceOut]:
    page = await service.list_instances(session, first=limit, after=cursor)
    return CursorPage.of(page, InstanceOut)


@router.get("/workflows/instances/{instance_id}", response_model=InstanceOut)
async def get_instance(instance_id: uuid.UUID, session: Session) -> InstanceOut:
    return InstanceOut.model_validate(await service.get_instance(session, instance_id))
