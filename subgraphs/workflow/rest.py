"""Workflow's REST routes for legacy clients: thin translations into `service` calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.rest import Caller, CursorPage, Session, SignedIn
from subgraphs.workflow import tasks as jobs
from subgraphs.workflow.service import definitions, instances, suggestions, tasks
from subgraphs.workflow.service.content import ContentAPI
from subgraphs.workflow.service.updates import announce

router = APIRouter(tags=["workflows"])


class DefinitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    key: str
    version: int
    name: str
    source: str
    created_at: datetime


class DefinitionIn(BaseModel):
    source: str = Field(min_length=1, description="The definition, YAML or JSON text.")


class InstanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    definition_key: str
    definition_version: int | None
    state: str
    status: str
    version: int
    data: dict[str, Any]
    subject_type: str
    subject_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class InstanceIn(BaseModel):
    definition_key: str = Field(min_length=1, max_length=100)
    subject_type: Literal["Document", "User"] = "Document"
    subject_id: uuid.UUID
    data: dict[str, Any] | None = None


class ActionIn(BaseModel):
    action: str = Field(min_length=1, max_length=100)
    comment: str | None = Field(default=None, max_length=10_000)
    data: dict[str, Any] | None = None
    expected_version: int | None = None


class CancelIn(BaseModel):
    comment: str | None = Field(default=None, max_length=10_000)


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    trigger: str
    from_state: str | None
    to_state: str
    actor_id: uuid.UUID | None
    comment: str | None
    changes: dict[str, Any]
    created_at: datetime


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    instance_id: uuid.UUID
    name: str
    title: str
    state: str
    status: str
    outcomes: list[str]
    assignee_id: uuid.UUID | None
    role: str | None
    due_at: datetime | None
    escalated_at: datetime | None
    outcome: str | None
    comment: str | None
    completed_at: datetime | None
    created_at: datetime


class CompleteIn(BaseModel):
    outcome: str = Field(min_length=1, max_length=100)
    comment: str | None = Field(default=None, max_length=10_000)
    data: dict[str, Any] | None = None


class DelegateIn(BaseModel):
    user_id: uuid.UUID
    comment: str | None = Field(default=None, max_length=10_000)


class ActionRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    instance_id: uuid.UUID
    spec: dict[str, Any]
    status: str
    attempts: int
    error: str | None


Limit = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


# --- instances (declared before /workflows/{key}/... so that "instances" is no key) -----


@router.post("/workflows/instances", status_code=201, response_model=InstanceOut)
async def start_workflow(
    body: InstanceIn, session: Session, caller: Caller, request: Request
) -> InstanceOut:
    instance = await instances.start_workflow(
        session,
        definition_key=body.definition_key,
        subject_type=body.subject_type,
        subject_id=body.subject_id,
        principal=caller,
        data=body.data,
    )
    await announce(request.app.state.redis, [instance.id])
    return InstanceOut.model_validate(instance)


@router.get("/workflows/instances", response_model=CursorPage[InstanceOut])
async def list_instances(
    session: Session,
    limit: int = Limit,
    cursor: str | None = None,
    definition_key: str | None = None,
    status: Literal["running", "completed", "cancelled"] | None = None,
) -> CursorPage[InstanceOut]:
    page = await instances.list_instances(
        session, first=limit, after=cursor, definition_key=definition_key, status=status
    )
    return CursorPage.of(page, InstanceOut)


@router.get("/workflows/instances/{instance_id}", response_model=InstanceOut)
async def get_instance(instance_id: uuid.UUID, session: Session) -> InstanceOut:
    return InstanceOut.model_validate(await instances.get_instance(session, instance_id))


@router.get("/workflows/instances/{instance_id}/transitions", response_model=list[TransitionOut])
async def transitions(instance_id: uuid.UUID, session: Session) -> list[TransitionOut]:
    await instances.get_instance(session, instance_id)
    rows = (await instances.transitions_of_instances(session, [instance_id]))[0]
    return [TransitionOut.model_validate(row) for row in rows]


@router.post("/workflows/instances/{instance_id}/actions", response_model=InstanceOut)
async def perform_action(
    instance_id: uuid.UUID, body: ActionIn, session: Session, caller: SignedIn, request: Request
) -> InstanceOut:
    instance = await instances.act(
        session,
        caller,
        instance_id,
        body.action,
        comment=body.comment,
        data=body.data,
        expected_version=body.expected_version,
    )
    await announce(request.app.state.redis, [instance.id])
    return InstanceOut.model_validate(instance)


@router.post("/workflows/instances/{instance_id}/cancel", response_model=InstanceOut)
async def cancel(
    instance_id: uuid.UUID, body: CancelIn, session: Session, caller: SignedIn, request: Request
) -> InstanceOut:
    instance = await instances.cancel(session, caller, instance_id, body.comment)
    await announce(request.app.state.redis, [instance.id])
    return InstanceOut.model_validate(instance)


@router.post("/workflows/action-runs/{run_id}/retry", response_model=ActionRunOut)
async def retry_action(run_id: uuid.UUID, session: Session, caller: SignedIn) -> ActionRunOut:
    return ActionRunOut.model_validate(await instances.retry_action(session, caller, run_id))


# --- definitions --------------------------------------------------------------------------


@router.get("/workflows", response_model=list[DefinitionOut])
async def list_definitions(session: Session) -> list[DefinitionOut]:
    return [DefinitionOut.model_validate(row) for row in await definitions.list_latest(session)]


@router.post("/workflows", status_code=201, response_model=DefinitionOut)
async def publish_definition(
    body: DefinitionIn, session: Session, caller: SignedIn
) -> DefinitionOut:
    return DefinitionOut.model_validate(await definitions.publish(session, caller, body.source))


@router.get("/workflows/{key}/versions", response_model=list[DefinitionOut])
async def definition_versions(key: str, session: Session) -> list[DefinitionOut]:
    return [
        DefinitionOut.model_validate(row) for row in await definitions.versions_of(session, key)
    ]


# --- tasks ----------------------------------------------------------------------------------


@router.get("/tasks", response_model=CursorPage[TaskOut])
async def inbox(
    session: Session,
    caller: SignedIn,
    limit: int = Limit,
    cursor: str | None = None,
    status: Literal["open", "completed", "cancelled"] | None = "open",
) -> CursorPage[TaskOut]:
    page = await tasks.inbox(session, caller, first=limit, after=cursor, status=status)
    return CursorPage.of(page, TaskOut)


@router.post("/tasks/{task_id}/claim", response_model=TaskOut)
async def claim(
    task_id: uuid.UUID, session: Session, caller: SignedIn, request: Request
) -> TaskOut:
    task = await tasks.claim(session, caller, task_id)
    await announce(request.app.state.redis, [task.instance_id])
    return TaskOut.model_validate(task)


@router.post("/tasks/{task_id}/complete", response_model=TaskOut)
async def complete(
    task_id: uuid.UUID, body: CompleteIn, session: Session, caller: SignedIn, request: Request
) -> TaskOut:
    task = await tasks.complete(
        session, caller, task_id, body.outcome, comment=body.comment, data=body.data
    )
    await announce(request.app.state.redis, [task.instance_id])
    return TaskOut.model_validate(task)


@router.post("/tasks/{task_id}/delegate", response_model=TaskOut)
async def delegate(
    task_id: uuid.UUID, body: DelegateIn, session: Session, caller: SignedIn, request: Request
) -> TaskOut:
    task = await tasks.delegate(session, caller, task_id, body.user_id, body.comment)
    await announce(request.app.state.redis, [task.instance_id])
    return TaskOut.model_validate(task)


# --- suggestions (under /workflows: the router sends /api/v1/workflows/... here) -----------


class SuggestionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    status: str
    subject_type: str
    subject_id: uuid.UUID
    organization_id: uuid.UUID | None
    value: dict[str, Any] | None
    confidence: float | None
    model_version: str | None
    error: str | None
    decision: dict[str, Any] | None
    decided_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class SuggestionsIn(BaseModel):
    document_id: uuid.UUID
    kinds: list[Literal["classification", "summary", "key_fields"]] = Field(
        min_length=1, max_length=3
    )


class AcceptIn(BaseModel):
    type: str | None = Field(default=None, min_length=1, max_length=64)
    tags: list[str] | None = Field(default=None, max_length=suggestions.MAX_TAGS)
    user_id: uuid.UUID | None = None


class RejectIn(BaseModel):
    reason: str | None = Field(default=None, max_length=10_000)
    type: str | None = Field(default=None, min_length=1, max_length=64)
    tags: list[str] | None = Field(default=None, max_length=suggestions.MAX_TAGS)


class LearnIn(BaseModel):
    document_ids: list[uuid.UUID] = Field(min_length=1, max_length=suggestions.MAX_LEARN_DOCUMENTS)


class LearnedOut(BaseModel):
    count: int
    organization_ids: list[uuid.UUID]


def _content(request: Request) -> ContentAPI:
    content: ContentAPI = request.app.state.content_api
    return content


@router.post("/workflows/suggestions", status_code=202, response_model=list[SuggestionOut])
async def request_suggestions(
    body: SuggestionsIn, session: Session, caller: SignedIn, request: Request
) -> list[SuggestionOut]:
    rows = await suggestions.request_for_document(
        session,
        caller,
        _content(request),
        request.headers.get("authorization"),
        body.document_id,
        body.kinds,
    )
    await jobs.enqueue_suggestions(r.id for r in rows)
    return [SuggestionOut.model_validate(r) for r in rows]


@router.get("/workflows/suggestions", response_model=list[SuggestionOut])
async def suggestions_about(
    subject_id: uuid.UUID, session: Session, caller: SignedIn
) -> list[SuggestionOut]:
    rows = (await suggestions.suggestions_of_subjects(session, [subject_id], principal=caller))[0]
    return [SuggestionOut.model_validate(r) for r in rows]


@router.get("/workflows/suggestions/{suggestion_id}", response_model=SuggestionOut)
async def get_suggestion(
    suggestion_id: uuid.UUID, session: Session, caller: SignedIn
) -> SuggestionOut:
    return SuggestionOut.model_validate(
        await suggestions.get_suggestion(session, caller, suggestion_id)
    )


@router.post("/workflows/suggestions/{suggestion_id}/accept", response_model=SuggestionOut)
async def accept_suggestion(
    suggestion_id: uuid.UUID, body: AcceptIn, session: Session, caller: SignedIn, request: Request
) -> SuggestionOut:
    row = await suggestions.accept(
        session,
        caller,
        _content(request),
        request.headers.get("authorization"),
        suggestion_id,
        type=body.type,
        tags=body.tags,
        user_id=body.user_id,
    )
    await jobs.after_decision(session, request.app.state.redis, row)
    return SuggestionOut.model_validate(row)


@router.post("/workflows/suggestions/{suggestion_id}/reject", response_model=SuggestionOut)
async def reject_suggestion(
    suggestion_id: uuid.UUID, body: RejectIn, session: Session, caller: SignedIn, request: Request
) -> SuggestionOut:
    row = await suggestions.reject(
        session, caller, suggestion_id, reason=body.reason, type=body.type, tags=body.tags
    )
    await jobs.after_decision(session, request.app.state.redis, row)
    return SuggestionOut.model_validate(row)


@router.post("/workflows/classification/examples", response_model=LearnedOut)
async def learn_from_documents(
    body: LearnIn, session: Session, caller: SignedIn, request: Request
) -> LearnedOut:
    rows = await suggestions.learn_from_documents(
        session,
        caller,
        _content(request),
        request.headers.get("authorization"),
        body.document_ids,
    )
    organizations = sorted({r.organization_id for r in rows}, key=str)
    await jobs.enqueue_training(organizations)
    return LearnedOut(count=len(rows), organization_ids=organizations)


@router.post("/tasks/{task_id}/routing-suggestions", status_code=202, response_model=SuggestionOut)
async def request_routing(task_id: uuid.UUID, session: Session, caller: SignedIn) -> SuggestionOut:
    row = await suggestions.request_routing(session, caller, task_id)
    await jobs.enqueue_suggestions([row.id])
    return SuggestionOut.model_validate(row)
