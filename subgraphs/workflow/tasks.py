"""Workflow's background work, run by its Celery worker (suggestions are computed here):

celery -A subgraphs.workflow.tasks worker

Tasks are acknowledged late (subgraphs/common/tasks.py): a worker that dies mid-task leaves
the message to be delivered again, and `suggestions.compute` makes the second run harmless.
Training runs here too, never in the API process: it takes seconds of CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from subgraphs.common.redis import Namespace
from subgraphs.common.tasks import AsyncResources, create_celery
from subgraphs.workflow.intelligence.classifier import NotEnoughExamples
from subgraphs.workflow.intelligence.providers import provider_named
from subgraphs.workflow.models import Suggestion, Task
from subgraphs.workflow.service import suggestions
from subgraphs.workflow.service.updates import announce
from subgraphs.workflow.settings import WorkflowSettings

settings = WorkflowSettings()
app = create_celery(settings, include=[__name__])
resources = AsyncResources(settings)
provider = provider_named(settings.intelligence_provider)


@app.task(name="workflow.compute_suggestion")
def compute_suggestion(suggestion_id: str) -> None:
    async def work(sessions: async_sessionmaker[AsyncSession], redis: Namespace) -> None:
        async with sessions() as session:
            await suggestions.compute(session, provider, uuid.UUID(suggestion_id))

    resources.run(work)


@app.task(name="workflow.train_classifier")
def train_classifier(organization_id: str) -> None:
    """Retrain after new labels arrived, so the next suggestion need not wait for it."""

    async def work(sessions: async_sessionmaker[AsyncSession], redis: Namespace) -> None:
        async with sessions() as session:
            # Too few examples: nothing to learn yet; the next labels queue this again.
            with contextlib.suppress(NotEnoughExamples):
                await suggestions.current_model(session, provider, uuid.UUID(organization_id))

    resources.run(work)


async def enqueue_suggestions(ids: Iterable[uuid.UUID]) -> None:
    # Celery's client is synchronous: keep it off the event loop.
    for suggestion_id in ids:
        await asyncio.to_thread(compute_suggestion.delay, str(suggestion_id))


async def enqueue_training(organization_ids: Iterable[uuid.UUID | None]) -> None:
    for organization_id in {o for o in organization_ids if o is not None}:
        await asyncio.to_thread(train_classifier.delay, str(organization_id))


async def after_decision(session: AsyncSession, redis: Namespace, row: Suggestion) -> None:
    """A classification decision is a new label: retrain. An accepted routing moved a task:
    tell the subscribers (taskAssigned)."""
    if row.kind == suggestions.CLASSIFICATION:
        await enqueue_training([row.organization_id])
    elif row.kind == suggestions.ROUTING and row.status == "accepted":
        task = await session.get(Task, row.subject_id)
        if task is not None:
            await announce(redis, [task.instance_id])
