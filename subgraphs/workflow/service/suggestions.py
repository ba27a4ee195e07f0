"""Suggestions: a person asks, the worker computes, a person decides.

Where a document's text comes from. When a person asks for suggestions about a document,
workflow reads it from content's REST API *with that person's token*, there and then, and
keeps the text on the suggestion (`input_text`). So content's access rules decide what may
be analysed (a document the caller may not read is "not found" here as well), the worker
never holds anyone's credentials (tokens expire long before a queue is guaranteed to be
empty), and what a suggestion was computed from stays on record next to what it said. The
domain-event stream was the other candidate; content's events carry ids and titles, not
text, and a consumer would need a credential of its own to read documents.

Classification learns per organization from labelled examples
(`ClassificationExample`): documents the organization already labelled (`learn_from_documents`,
read from content with the caller's token) and every decision on a classification
(accepted as suggested, or corrected). The newest trained model of the organization is
stored with its version; when the examples changed since, the next classification (or the
training job queued after a decision) trains version n+1.

Applying: accepting a classification sets the document's type and adds its tags through
content's API, again as the person who accepts (their WRITE permission); accepting a
routing suggestion assigns the task. Summaries and key fields are information: accepting
one records that it was right (the decision is kept), nothing is written elsewhere.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.database import utcnow
from subgraphs.common.dataloaders import grouped, ordered
from subgraphs.common.errors import BadInput, Conflict, Forbidden, NotFound
from subgraphs.workflow.intelligence.classifier import Example, NotEnoughExamples
from subgraphs.workflow.intelligence.providers import Provider
from subgraphs.workflow.models import (
    ClassificationExample,
    ClassifierModel,
    Suggestion,
    Task,
    WorkflowInstance,
)
from subgraphs.workflow.service.access import is_admin, roles_of
from subgraphs.workflow.service.content import ContentAPI

log = logging.getLogger(__name__)

CLASSIFICATION, SUMMARY, KEY_FIELDS, ROUTING = "classification", "summary", "key_fields", "routing"
DOCUMENT_KINDS = (CLASSIFICATION, SUMMARY, KEY_FIELDS)
# A type content gives documents nobody labelled: not a label to learn from.
UNLABELLED_TYPE = "general"
MAX_LEARN_DOCUMENTS = 100
ROUTING_HISTORY = 500  # completed tasks looked at, newest first
MAX_TAGS = 20


# --- who may see and decide ------------------------------------------------------------


def _may_see(principal: Principal | None, suggestion: Suggestion) -> bool:
    if principal is None:
        return False
    return (
        suggestion.requested_by == principal.user_id
        or (
            suggestion.organization_id is not None
            and suggestion.organization_id in principal.organizations
        )
        or is_admin(principal)
    )


async def get_suggestion(
    session: AsyncSession, principal: Principal | None, suggestion_id: uuid.UUID
) -> Suggestion:
    caller = require_user(principal)
    suggestion = await session.get(Suggestion, suggestion_id)
    if suggestion is None or not _may_see(caller, suggestion):
        raise NotFound("no such suggestion")
    return suggestion


async def suggestions_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, principal: Principal | None
) -> list[Suggestion | None]:
    rows = (await session.scalars(select(Suggestion).where(Suggestion.id.in_(set(ids))))).all()
    return ordered(ids, [r for r in rows if _may_see(principal, r)], key=lambda r: r.id)


async def suggestions_of_subjects(
    session: AsyncSession, subject_ids: Sequence[uuid.UUID], *, principal: Principal | None
) -> list[list[Suggestion]]:
    """`Document.suggestions`, `Task.suggestions`: one query for every subject, newest first."""
    if principal is None:
        return [[] for _ in subject_ids]
    stmt = select(Suggestion).where(Suggestion.subject_id.in_(set(subject_ids)))
    if not is_admin(principal):
        stmt = stmt.where(
            or_(
                Suggestion.requested_by == principal.user_id,
                Suggestion.organization_id.in_(list(principal.organizations)),
            )
        )
    rows = (
        await session.scalars(stmt.order_by(Suggestion.created_at.desc(), Suggestion.id.desc()))
    ).all()
    return grouped(subject_ids, rows, key=lambda r: r.subject_id)


# --- asking ----------------------------------------------------------------------------


def _kinds(kinds: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(kinds))
    unknown = [k for k in chosen if k not in DOCUMENT_KINDS]
    if not chosen or unknown:
        raise BadInput(
            f"kinds are one or more of {', '.join(DOCUMENT_KINDS)}", field="kinds", unknown=unknown
        )
    return chosen


async def request_for_document(
    session: AsyncSession,
    principal: Principal | None,
    content: ContentAPI,
    authorization: str | None,
    document_id: uuid.UUID,
    kinds: Sequence[str],
) -> list[Suggestion]:
    """Queue suggestions about a document the caller may read (its text read now, as them)."""
    caller = require_user(principal)
    chosen = _kinds(kinds)
    document = await content.document_text(document_id, authorization)
    if CLASSIFICATION in chosen and document.organization_id is None:
        raise BadInput(
            "classification learns from an organization's documents; this one has none",
            field="kinds",
        )
    rows = [
        Suggestion(
            id=uuid.uuid4(),
            kind=kind,
            subject_type="Document",
            subject_id=document_id,
            organization_id=document.organization_id,
            status="queued",
            requested_by=caller.user_id,
            input_text=document.text,
        )
        for kind in chosen
    ]
    session.add_all(rows)
    await session.commit()
    return rows


async def request_routing(
    session: AsyncSession, principal: Principal | None, task_id: uuid.UUID
) -> Suggestion:
    """Queue a suggestion of who should take an open task (one the caller may work on)."""
    caller = require_user(principal)
    task = await session.get(Task, task_id)
    if task is None or not _may_work_on(caller, task):
        raise NotFound("no such task, or not one of yours")
    if task.status != "open":
        raise Conflict(f"the task is {task.status}", task_status=task.status)
    suggestion = Suggestion(
        id=uuid.uuid4(),
        kind=ROUTING,
        subject_type="Task",
        subject_id=task.id,
        status="queued",
        requested_by=caller.user_id,
    )
    session.add(suggestion)
    await session.commit()
    return suggestion


def _may_work_on(principal: Principal, task: Task) -> bool:
    return (
        task.assignee_id == principal.user_id
        or (task.role is not None and task.role in roles_of(principal))
        or is_admin(principal)
    )


async def learn_from_documents(
    session: AsyncSession,
    principal: Principal | None,
    content: ContentAPI,
    authorization: str | None,
    document_ids: Sequence[uuid.UUID],
) -> list[ClassificationExample]:
    """Documents already labelled (a type other than `general`) become training examples of
    their organization; the organizations whose examples changed are worth retraining."""
    caller = require_user(principal)
    ids = list(dict.fromkeys(document_ids))
    if not ids or len(ids) > MAX_LEARN_DOCUMENTS:
        raise BadInput(f"give 1 to {MAX_LEARN_DOCUMENTS} documents", field="documentIds")
    learned = []
    for document_id in ids:
        document = await content.document_text(document_id, authorization)
        if document.organization_id is None or document.type == UNLABELLED_TYPE:
            continue
        learned.append(
            await _remember(
                session,
                organization_id=document.organization_id,
                document_id=document_id,
                text=document.text,
                type=document.type,
                tags=document.tags,
                source="labelled",
                created_by=caller.user_id,
            )
        )
    await session.commit()
    return learned


async def _remember(session: AsyncSession, **example: Any) -> ClassificationExample:
    """Store an example; a document's new label replaces its old one."""
    example["tags"] = list(example["tags"])[:MAX_TAGS]
    stmt = (
        insert(ClassificationExample)
        .values(id=uuid.uuid4(), **example)
        .on_conflict_do_update(
            index_elements=["organization_id", "document_id"],
            set_={
                "text": example["text"],
                "type": example["type"],
                "tags": example["tags"],
                "source": example["source"],
                "suggestion_id": example.get("suggestion_id"),
                "updated_at": utcnow(),
            },
        )
        .returning(ClassificationExample)
    )
    row = (await session.scalars(stmt, execution_options={"populate_existing": True})).one()
    return row


# --- computing (the worker) --------------------------------------------------------------


async def compute(session: AsyncSession, provider: Provider, suggestion_id: uuid.UUID) -> bool:
    """Compute a queued suggestion; False when there was nothing to do (already done).

    Safe to run twice (the queue delivers at least once): a finished suggestion is left
    alone, one left `running` by a worker that died is computed again.
    """
    claimed = await session.scalar(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, Suggestion.status.in_(["queued", "running"]))
        .values(status="running", updated_at=utcnow())
        .returning(Suggestion.id)
    )
    await session.commit()
    if claimed is None:
        return False
    suggestion = await session.get(Suggestion, suggestion_id, populate_existing=True)
    assert suggestion is not None
    try:
        if suggestion.kind == CLASSIFICATION:
            await _classify(session, provider, suggestion)
        elif suggestion.kind == SUMMARY:
            result = provider.summarize(suggestion.input_text or "")
            suggestion.value = {"sentences": result.sentences, "text": result.text}
            suggestion.model_version = "textrank/1"
        elif suggestion.kind == KEY_FIELDS:
            found = provider.extract_fields(suggestion.input_text or "")
            suggestion.value = {"fields": [f.as_dict() for f in found]}
            suggestion.model_version = "patterns/1"
        elif suggestion.kind == ROUTING:
            await _route(session, suggestion)
        else:
            raise ValueError(f"unknown kind {suggestion.kind!r}")
        suggestion.status, suggestion.error = "ready", None
    except NotEnoughExamples as error:
        suggestion.status, suggestion.error = "failed", str(error)
    except Exception as error:
        log.exception("suggestion %s failed", suggestion_id)
        await session.rollback()
        suggestion = await session.get(Suggestion, suggestion_id, populate_existing=True)
        assert suggestion is not None
        suggestion.status, suggestion.error = "failed", f"{type(error).__name__}: {error}"[:500]
    suggestion.updated_at = utcnow()
    await session.commit()
    return True


async def _classify(session: AsyncSession, provider: Provider, suggestion: Suggestion) -> None:
    assert suggestion.organization_id is not None
    model = await current_model(session, provider, suggestion.organization_id)
    result = provider.classify(model.model, suggestion.input_text or "")
    suggestion.value = {
        "type": result.type,
        "tags": [t.label for t in result.tags],
        "tagConfidences": {t.label: t.confidence for t in result.tags},
        "alternatives": [
            {"type": a.label, "confidence": a.confidence} for a in result.alternatives
        ],
    }
    suggestion.confidence = result.confidence
    suggestion.model_version = f"{model.algorithm}/v{model.version}"


async def current_model(
    session: AsyncSession, provider: Provider, organization_id: uuid.UUID
) -> ClassifierModel:
    """The organization's newest model, trained anew first when its examples changed."""
    count, newest = (
        await session.execute(
            select(func.count(), func.max(ClassificationExample.updated_at)).where(
                ClassificationExample.organization_id == organization_id
            )
        )
    ).one()
    latest = await _latest_model(session, organization_id)
    if latest is not None and (latest.example_count, latest.examples_updated_at) == (
        count,
        newest,
    ):
        return latest
    return await train(session, provider, organization_id, previous=latest)


async def _latest_model(
    session: AsyncSession, organization_id: uuid.UUID
) -> ClassifierModel | None:
    return await session.scalar(
        select(ClassifierModel)
        .where(ClassifierModel.organization_id == organization_id)
        .order_by(ClassifierModel.version.desc())
        .limit(1)
    )


async def train(
    session: AsyncSession,
    provider: Provider,
    organization_id: uuid.UUID,
    *,
    previous: ClassifierModel | None = None,
) -> ClassifierModel:
    """Train the next version from every example of the organization and store it."""
    rows = (
        await session.scalars(
            select(ClassificationExample).where(
                ClassificationExample.organization_id == organization_id
            )
        )
    ).all()
    examples = [Example(r.text, r.type, tuple(r.tags)) for r in rows]
    newest: datetime = max((r.updated_at for r in rows), default=utcnow())
    data = provider.train(examples)  # NotEnoughExamples when there is too little
    model = ClassifierModel(
        organization_id=organization_id,
        version=(previous.version if previous else 0) + 1,
        algorithm=provider.name,
        example_count=len(rows),
        examples_updated_at=newest,
        types=sorted({e.type for e in examples}),
        model=data,
    )
    try:
        # A savepoint: rolling back the whole session would expire the caller's objects
        # (the suggestion being computed), whose next read would then need IO.
        async with session.begin_nested():
            session.add(model)
    except IntegrityError:
        # Another worker stored this version meanwhile: theirs learned from the same rows.
        stored = await _latest_model(session, organization_id)
        assert stored is not None
        return stored
    await session.commit()
    log.info(
        "trained classifier v%d of %s on %d examples", model.version, organization_id, len(rows)
    )
    return model


async def _route(session: AsyncSession, suggestion: Suggestion) -> None:
    """Who completed tasks of this kind (same definition, same task) most often lately."""
    task = await session.get(Task, suggestion.subject_id)
    assert task is not None
    instance = await session.get(WorkflowInstance, task.instance_id)
    assert instance is not None
    recent = (
        select(Task.completed_by)
        .join(WorkflowInstance, WorkflowInstance.id == Task.instance_id)
        .where(
            WorkflowInstance.definition_key == instance.definition_key,
            Task.name == task.name,
            Task.status == "completed",
            Task.completed_by.is_not(None),
        )
        .order_by(Task.completed_at.desc())
        .limit(ROUTING_HISTORY)
        .subquery()
    )
    counts = (
        await session.execute(
            select(recent.c.completed_by, func.count())
            .group_by(recent.c.completed_by)
            .order_by(func.count().desc(), recent.c.completed_by)
        )
    ).all()
    total = sum(n for _, n in counts)
    if not total:
        raise NotEnoughExamples(
            f"no completed {task.name!r} task of {instance.definition_key!r} to learn from"
        )
    candidates = [
        {"userId": str(user), "completed": n, "share": round(n / total, 4)}
        for user, n in counts[:5]
    ]
    suggestion.value = {
        "userId": candidates[0]["userId"],
        "candidates": candidates,
        "history": total,
    }
    suggestion.confidence = candidates[0]["share"]
    suggestion.model_version = "history/1"


# --- deciding ----------------------------------------------------------------------------


async def _decidable(
    session: AsyncSession, principal: Principal | None, suggestion_id: uuid.UUID
) -> tuple[Principal, Suggestion]:
    caller = require_user(principal)
    suggestion = await session.scalar(
        select(Suggestion).where(Suggestion.id == suggestion_id).with_for_update()
    )
    if suggestion is None or not _may_see(caller, suggestion):
        raise NotFound("no such suggestion")
    if suggestion.status != "ready":
        raise Conflict(
            f"only a ready suggestion is decided; this one is {suggestion.status}",
            suggestion_status=suggestion.status,
        )
    return caller, suggestion


def _labels(
    type: str | None, tags: Sequence[str] | None, value: dict[str, Any]
) -> tuple[str, list[str]]:
    chosen_type = (type or value["type"]).strip()
    if not chosen_type:
        raise BadInput("type must not be empty", field="type")
    chosen_tags = list(
        dict.fromkeys(t.strip() for t in (tags if tags is not None else value["tags"]) if t.strip())
    )
    return chosen_type, chosen_tags[:MAX_TAGS]


async def accept(
    session: AsyncSession,
    principal: Principal | None,
    content: ContentAPI,
    authorization: str | None,
    suggestion_id: uuid.UUID,
    *,
    type: str | None = None,
    tags: Sequence[str] | None = None,
    user_id: uuid.UUID | None = None,
) -> Suggestion:
    """Apply the suggestion (as corrected, if `type`/`tags`/`user_id` are given) and record
    the decision; a classification's labels become a training example."""
    caller, suggestion = await _decidable(session, principal, suggestion_id)
    value = suggestion.value or {}
    decision: dict[str, Any] = {"accepted": True}
    if suggestion.kind == CLASSIFICATION:
        chosen_type, chosen_tags = _labels(type, tags, value)
        corrected = chosen_type != value["type"] or chosen_tags != value["tags"]
        # Applied first: when content refuses (no such type, no WRITE permission), the
        # suggestion stays ready and nothing is learned from it.
        await content.label(
            suggestion.subject_id, authorization, type=chosen_type, tags=chosen_tags
        )
        decision |= {"type": chosen_type, "tags": chosen_tags, "corrected": corrected}
        source = "corrected" if corrected else "accepted"
        await _learn(session, caller, suggestion, chosen_type, chosen_tags, source)
    elif suggestion.kind == ROUTING:
        assignee = user_id or uuid.UUID(value["userId"])
        task = await session.scalar(
            select(Task).where(Task.id == suggestion.subject_id).with_for_update()
        )
        if task is None or not _may_work_on(caller, task):
            raise Forbidden("only who may work on the task assigns it")
        if task.status != "open":
            raise Conflict(f"the task is {task.status}", task_status=task.status)
        task.assignee_id = assignee
        decision |= {"userId": str(assignee), "corrected": assignee != uuid.UUID(value["userId"])}
    return await _decide(session, caller, suggestion, "accepted", decision)


async def reject(
    session: AsyncSession,
    principal: Principal | None,
    suggestion_id: uuid.UUID,
    *,
    reason: str | None = None,
    type: str | None = None,
    tags: Sequence[str] | None = None,
) -> Suggestion:
    """Record that the suggestion was wrong. For a classification, the right `type` (and
    tags), when given, become the document's training example; nothing is applied."""
    caller, suggestion = await _decidable(session, principal, suggestion_id)
    decision: dict[str, Any] = {"accepted": False, "reason": reason}
    if suggestion.kind == CLASSIFICATION and type is not None:
        chosen_type, chosen_tags = _labels(
            type, tags if tags is not None else [], suggestion.value or {}
        )
        await _learn(session, caller, suggestion, chosen_type, chosen_tags, "corrected")
        decision |= {"type": chosen_type, "tags": chosen_tags}
    return await _decide(session, caller, suggestion, "rejected", decision)


async def _learn(
    session: AsyncSession,
    caller: Principal,
    suggestion: Suggestion,
    type: str,
    tags: list[str],
    source: str,
) -> None:
    """A person's label for the suggestion's document: the next training's example."""
    assert suggestion.organization_id is not None
    await _remember(
        session,
        organization_id=suggestion.organization_id,
        document_id=suggestion.subject_id,
        text=suggestion.input_text or "",
        type=type,
        tags=tags,
        source=source,
        suggestion_id=suggestion.id,
        created_by=caller.user_id,
    )


async def _decide(
    session: AsyncSession,
    caller: Principal,
    suggestion: Suggestion,
    status: str,
    decision: dict[str, Any],
) -> Suggestion:
    suggestion.status = status
    suggestion.decided_by = caller.user_id
    suggestion.decision = decision
    suggestion.updated_at = utcnow()
    await session.commit()
    return suggestion
