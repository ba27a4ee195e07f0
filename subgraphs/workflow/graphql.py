"""Workflow's part of the graph: definitions, instances, tasks; `Document.workflows`,
`User.tasks`; subscriptions to an instance's updates and to the tasks assigned to me."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from subgraphs.common.errors import (
    BadInput,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    Unauthenticated,
)
from subgraphs.common.graphql import HubInfo, federated_schema, id_of, optional_id_of, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection, PageKey
from subgraphs.workflow import definitions as language
from subgraphs.workflow import models
from subgraphs.workflow import tasks as jobs
from subgraphs.workflow.service import definitions, instances, suggestions, tasks
from subgraphs.workflow.service.content import ContentAPI
from subgraphs.workflow.service.updates import ALL_INSTANCES, announce, channel_of

T = TypeVar("T")


@strawberry.federation.type(keys=["id"])
class Document:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Document:
        return cls(id=id)

    @strawberry.field(description="Workflow instances about this document, newest first.")
    async def workflows(self, info: HubInfo) -> list[WorkflowInstance]:
        rows = await info.context.loader(instances.instances_of_documents).load(parse_id(self.id))
        return [WorkflowInstance.from_model(row) for row in rows]

    @strawberry.field(
        description="Suggestions about this document the caller may see (theirs, or their "
        "organizations'), newest first."
    )
    async def suggestions(
        self, info: HubInfo, kind: SuggestionKind | None = None
    ) -> list[Suggestion]:
        return await _suggestions_of(info, parse_id(self.id), kind)


@strawberry.federation.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> User:
        return cls(id=id)

    @strawberry.field(
        description="Tasks assigned to this user, newest first (the user themself or an admin)."
    )
    async def tasks(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Task]:
        page = await info.context.loader(
            tasks.tasks_of_users, principal=info.context.principal
        ).load(PageKey(parse_id(self.id), first, after))
        return Connection.of(page, Task.from_model)


TaskSubject = Annotated[Document | User, strawberry.union("TaskSubject")]


@strawberry.type(description="One published version of a workflow definition.")
class WorkflowDefinition:
    id: strawberry.ID
    key: str
    version: int
    name: str
    subject_type: str
    initial_state: str
    states: list[str]
    source: str = strawberry.field(description="The definition as published (YAML or JSON).")
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.WorkflowDefinition) -> WorkflowDefinition:
        spec = row.spec
        return cls(
            id=id_of(row.id),
            key=row.key,
            version=row.version,
            name=row.name,
            subject_type=spec["subject"],
            initial_state=spec["initial"],
            states=list(spec["states"]),
            source=row.source,
            created_at=row.created_at,
        )


@strawberry.type(description="One step an instance took: who, when, why, what data changed.")
class WorkflowTransition:
    name: str
    trigger: str = strawberry.field(description="action, event, timer, start or cancel")
    from_state: str | None
    to_state: str
    actor_id: strawberry.ID | None
    comment: str | None
    changes: JSON = strawberry.field(description="{field: [before, after]}")
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.Transition) -> WorkflowTransition:
        return cls(
            name=row.name,
            trigger=row.trigger,
            from_state=row.from_state,
            to_state=row.to_state,
            actor_id=optional_id_of(row.actor_id),
            comment=row.comment,
            changes=row.changes,
            created_at=row.created_at,
        )


@strawberry.type(description="A request to another service's API that an action called for.")
class WorkflowActionRun:
    id: strawberry.ID
    service: str
    method: str
    path: str
    status: str = strawberry.field(description="pending, succeeded or failed")
    attempts: int
    error: str | None

    @classmethod
    def from_model(cls, row: models.ActionRun) -> WorkflowActionRun:
        return cls(
            id=id_of(row.id),
            service=row.spec["service"],
            method=row.spec["method"],
            path=row.spec["path"],
            status=row.status,
            attempts=row.attempts,
            error=row.error,
        )


@strawberry.federation.type(keys=["id"], description="One run of a workflow definition.")
class WorkflowInstance:
    id: strawberry.ID
    definition_key: str
    definition_version: int | None = strawberry.field(
        description="The version it started on and keeps; null for an ad-hoc instance."
    )
    state: str
    status: str = strawberry.field(description="running, completed or cancelled")
    version: int = strawberry.field(description="Changes with every transition.")
    data: JSON
    subject_type: str
    subject_id: strawberry.ID
    created_at: datetime
    updated_at: datetime
    definition_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_model(cls, instance: models.WorkflowInstance) -> WorkflowInstance:
        return cls(
            id=id_of(instance.id),
            definition_key=instance.definition_key,
            definition_version=instance.definition_version,
            state=instance.state,
            status=instance.status,
            version=instance.version,
            data=instance.data,
            subject_type=instance.subject_type,
            subject_id=id_of(instance.subject_id),
            created_at=instance.created_at,
            updated_at=instance.updated_at,
            definition_id=instance.definition_id,
        )

    @classmethod
    async def resolve_reference(cls, info: HubInfo, id: strawberry.ID) -> WorkflowInstance | None:
        instance = await info.context.loader(instances.instances_by_ids).load(parse_id(id))
        return cls.from_model(instance) if instance else None

    @strawberry.field(description="The document this workflow is about, if it is about one.")
    def document(self) -> Document | None:
        return Document(id=self.subject_id) if self.subject_type == "Document" else None

    @strawberry.field(description="The user this workflow is about, if it is about one.")
    def user(self) -> User | None:
        return User(id=self.subject_id) if self.subject_type == "User" else None

    @strawberry.field(description="The definition version this instance runs on.")
    async def definition(self, info: HubInfo) -> WorkflowDefinition | None:
        if self.definition_id is None:
            return None
        row = await info.context.loader(definitions.definitions_by_ids).load(self.definition_id)
        return WorkflowDefinition.from_model(row) if row else None

    @strawberry.field(description="Actions a person may take now (guards aside).")
    async def available_actions(self, info: HubInfo) -> list[str]:
        if self.definition_id is None or self.status != "running":
            return []
        row = await info.context.loader(definitions.definitions_by_ids).load(self.definition_id)
        spec = language.from_spec(row.spec) if row else None
        return [t.name for t in spec.transitions_from(self.state) if t.action] if spec else []

    @strawberry.field(description="Every step so far, oldest first.")
    async def transitions(self, info: HubInfo) -> list[WorkflowTransition]:
        rows = await info.context.loader(instances.transitions_of_instances).load(
            uuid.UUID(self.id)
        )
        return [WorkflowTransition.from_model(row) for row in rows]

    @strawberry.field(description="Its tasks, oldest first, whatever their status.")
    async def tasks(self, info: HubInfo) -> list[Task]:
        rows = await info.context.loader(instances.tasks_of_instances).load(uuid.UUID(self.id))
        return [Task.from_model(row) for row in rows]

    @strawberry.field(description="API requests its actions made, with their outcome.")
    async def action_runs(self, info: HubInfo) -> list[WorkflowActionRun]:
        rows = await info.context.loader(instances.action_runs_of_instances).load(
            uuid.UUID(self.id)
        )
        return [WorkflowActionRun.from_model(row) for row in rows]


@strawberry.type(description="Human work an instance waits for.")
class Task:
    id: strawberry.ID
    name: str
    title: str
    state: str
    status: str = strawberry.field(description="open, completed or cancelled")
    outcomes: list[str] = strawberry.field(description="What completing it may decide.")
    assignee_id: strawberry.ID | None
    role: str | None = strawberry.field(description="Claimable by holders of this role.")
    due_at: datetime | None
    escalated_at: datetime | None
    outcome: str | None
    comment: str | None
    completed_at: datetime | None
    created_at: datetime
    instance_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, row: models.Task) -> Task:
        return cls(
            id=id_of(row.id),
            name=row.name,
            title=row.title,
            state=row.state,
            status=row.status,
            outcomes=list(row.outcomes),
            assignee_id=optional_id_of(row.assignee_id),
            role=row.role,
            due_at=row.due_at,
            escalated_at=row.escalated_at,
            outcome=row.outcome,
            comment=row.comment,
            completed_at=row.completed_at,
            created_at=row.created_at,
            instance_id=row.instance_id,
        )

    @strawberry.field
    async def instance(self, info: HubInfo) -> WorkflowInstance:
        row = await info.context.loader(instances.instances_by_ids).load(self.instance_id)
        assert row is not None
        return WorkflowInstance.from_model(row)

    @strawberry.field(description="What the task is about, resolved through the graph.")
    async def subject(self, info: HubInfo) -> TaskSubject:
        row = await info.context.loader(instances.instances_by_ids).load(self.instance_id)
        assert row is not None
        subject_id = id_of(row.subject_id)
        return Document(id=subject_id) if row.subject_type == "Document" else User(id=subject_id)

    @strawberry.field(description="Routing suggestions for this task, newest first.")
    async def suggestions(self, info: HubInfo) -> list[Suggestion]:
        return await _suggestions_of(info, uuid.UUID(self.id), None)


@strawberry.enum(description="What a suggestion proposes.")
class SuggestionKind(enum.Enum):
    CLASSIFICATION = "classification"
    SUMMARY = "summary"
    KEY_FIELDS = "key_fields"
    ROUTING = "routing"


@strawberry.enum
class SuggestionStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@strawberry.type(
    description="What an intelligence job proposes about a document or a task; applied only "
    "when a person accepts it."
)
class Suggestion:
    id: strawberry.ID
    kind: SuggestionKind
    status: SuggestionStatus = strawberry.field(
        description="queued, running, then ready or failed; accepted or rejected once decided."
    )
    subject_type: str
    subject_id: strawberry.ID
    value: JSON | None = strawberry.field(
        description="classification: {type, tags, tagConfidences, alternatives}; summary: "
        "{sentences, text}; keyFields: {fields: [{kind, value, text, context, subtype}]}; "
        "routing: {userId, candidates, history}."
    )
    confidence: float | None = strawberry.field(description="0 to 1, where the model gives one.")
    model_version: str | None
    error: str | None = strawberry.field(description="Why it failed.")
    decision: JSON | None = strawberry.field(description="What the person decided.")
    decided_by: strawberry.ID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, row: models.Suggestion) -> Suggestion:
        return cls(
            id=id_of(row.id),
            kind=SuggestionKind(row.kind),
            status=SuggestionStatus(row.status),
            subject_type=row.subject_type,
            subject_id=id_of(row.subject_id),
            value=row.value,
            confidence=row.confidence,
            model_version=row.model_version,
            error=row.error,
            decision=row.decision,
            decided_by=optional_id_of(row.decided_by),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="The document it is about, if it is about one.")
    def document(self) -> Document | None:
        return Document(id=self.subject_id) if self.subject_type == "Document" else None

    @strawberry.field(description="The task it is about, if it is about one.")
    async def task(self, info: HubInfo) -> Task | None:
        if self.subject_type != "Task":
            return None
        row = await info.context.loader(tasks.tasks_by_ids).load(uuid.UUID(self.subject_id))
        return Task.from_model(row) if row else None


async def _suggestions_of(
    info: HubInfo, subject_id: uuid.UUID, kind: SuggestionKind | None
) -> list[Suggestion]:
    rows = await info.context.loader(
        suggestions.suggestions_of_subjects, principal=info.context.principal
    ).load(subject_id)
    return [Suggestion.from_model(r) for r in rows if kind is None or r.kind == kind.value]


# --- typed mutation errors --------------------------------------------------------------


@strawberry.interface(description="A workflow mutation refused for a reason the client can act on.")
class WorkflowError:
    message: str
    code: str


@strawberry.type
class WorkflowInputError(WorkflowError):
    field: str | None


@strawberry.type(description="A problem of a definition, at its line and key path.")
class DefinitionProblem:
    line: int | None
    path: str
    message: str


@strawberry.type(description="The definition was not published: every problem found.")
class DefinitionRejected(WorkflowError):
    problems: list[DefinitionProblem]


@strawberry.type(description="No such instance or task, or none the caller may see.")
class WorkflowNotFound(WorkflowError):
    pass


@strawberry.type
class WorkflowForbidden(WorkflowError):
    pass


@strawberry.type(
    description="The instance or task changed meanwhile (another transition won), or the "
    "step is not possible in its current state."
)
class WorkflowConflict(WorkflowError):
    current_version: int | None


def typed_error(error: HubError) -> Any:
    if isinstance(error, Unauthenticated):
        raise error
    if isinstance(error, language.DefinitionInvalid):
        return DefinitionRejected(
            message=error.message,
            code=error.code,
            problems=[DefinitionProblem(**p) for p in error.details.get("problems", [])],
        )
    if isinstance(error, BadInput):
        return WorkflowInputError(
            message=error.message, code=error.code, field=error.details.get("field")
        )
    if isinstance(error, NotFound):
        return WorkflowNotFound(message=error.message, code=error.code)
    if isinstance(error, Forbidden):
        return WorkflowForbidden(message=error.message, code=error.code)
    if isinstance(error, Conflict):
        return WorkflowConflict(
            message=error.message,
            code=error.code,
            current_version=error.details.get("current_version"),
        )
    raise error


async def attempt(work: Callable[[], Awaitable[T]]) -> T | Any:
    try:
        return await work()
    except HubError as error:
        return typed_error(error)


Errors = WorkflowInputError | WorkflowNotFound | WorkflowForbidden | WorkflowConflict
PublishDefinitionResult = Annotated[
    WorkflowDefinition | DefinitionRejected | WorkflowForbidden,
    strawberry.union("PublishDefinitionResult"),
]
InstanceResult = Annotated[WorkflowInstance | Errors, strawberry.union("WorkflowInstanceResult")]
TaskResult = Annotated[Task | Errors, strawberry.union("TaskResult")]
ActionRunResult = Annotated[WorkflowActionRun | Errors, strawberry.union("WorkflowActionRunResult")]
SuggestionResult = Annotated[Suggestion | Errors, strawberry.union("SuggestionResult")]


@strawberry.type(description="Suggestions queued; each becomes ready (or failed) on its own.")
class SuggestionsRequested:
    suggestions: list[Suggestion]


@strawberry.type(description="Labelled documents now among their organizations' examples.")
class ExamplesLearned:
    count: int = strawberry.field(description="Documents learned from (unlabelled ones skipped).")
    organization_ids: list[strawberry.ID]


RequestSuggestionsResult = Annotated[
    SuggestionsRequested | Errors, strawberry.union("RequestSuggestionsResult")
]
LearnResult = Annotated[ExamplesLearned | Errors, strawberry.union("LearnFromDocumentsResult")]


@strawberry.input
class RequestDocumentSuggestionsInput:
    document_id: strawberry.ID
    kinds: list[SuggestionKind] = strawberry.field(
        description="classification, summary and/or keyFields (routing is for tasks)."
    )


@strawberry.input
class AcceptSuggestionInput:
    id: strawberry.ID
    type: str | None = strawberry.field(
        default=None, description="Classification: the type to apply instead of the suggested."
    )
    tags: list[str] | None = strawberry.field(
        default=None, description="Classification: the tags to add instead of the suggested."
    )
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Routing: whom to assign instead of the suggested user."
    )


@strawberry.input
class RejectSuggestionInput:
    id: strawberry.ID
    reason: str | None = None
    type: str | None = strawberry.field(
        default=None, description="Classification: the right type, learned from (not applied)."
    )
    tags: list[str] | None = None


@strawberry.input
class StartWorkflowInput:
    definition_key: str
    document_id: strawberry.ID | None = strawberry.field(
        default=None, description="The document it is about (or userId)."
    )
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user it is about (or documentId)."
    )
    data: JSON | None = strawberry.field(default=None, description="The instance's first data.")


@strawberry.input
class WorkflowActionInput:
    instance_id: strawberry.ID
    action: str
    comment: str | None = None
    data: JSON | None = strawberry.field(
        default=None, description="Fields of the instance data the action accepts."
    )
    expected_version: int | None = strawberry.field(
        default=None, description="Refuse with a conflict unless the instance is at this version."
    )


@strawberry.input
class CompleteTaskInput:
    task_id: strawberry.ID
    outcome: str = strawberry.field(
        description="One of the task's outcomes (approve, reject, ...)."
    )
    comment: str | None = None
    data: JSON | None = None


@strawberry.type
class Query:
    @strawberry.field(description="One workflow instance by id, or null when there is none.")
    async def workflow_instance(self, info: HubInfo, id: strawberry.ID) -> WorkflowInstance | None:
        instance = await info.context.loader(instances.instances_by_ids).load(parse_id(id))
        return WorkflowInstance.from_model(instance) if instance else None

    @strawberry.field(description="Workflow instances, newest first.")
    async def workflow_instances(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        definition_key: str | None = None,
        status: str | None = None,
    ) -> Connection[WorkflowInstance]:
        async with info.context.reader() as session:
            page = await instances.list_instances(
                session, first=first, after=after, definition_key=definition_key, status=status
            )
        return Connection.of(page, WorkflowInstance.from_model)

    @strawberry.field(description="One suggestion, or null when there is none the caller may see.")
    async def suggestion(self, info: HubInfo, id: strawberry.ID) -> Suggestion | None:
        row = await info.context.loader(
            suggestions.suggestions_by_ids, principal=info.context.principal
        ).load(parse_id(id))
        return Suggestion.from_model(row) if row else None

    @strawberry.field(description="The newest version of every definition, built-ins included.")
    async def workflow_definitions(self, info: HubInfo) -> list[WorkflowDefinition]:
        async with info.context.reader() as session:
            rows = await definitions.list_latest(session)
        return [WorkflowDefinition.from_model(row) for row in rows]

    @strawberry.field(description="Every published version of a definition, newest first.")
    async def workflow_definition_versions(
        self, info: HubInfo, key: str
    ) -> list[WorkflowDefinition]:
        async with info.context.reader() as session:
            rows = await definitions.versions_of(session, key)
        return [WorkflowDefinition.from_model(row) for row in rows]

    @strawberry.field(
        description="My task inbox: assigned to me, or claimable through my roles; newest first."
    )
    async def my_tasks(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        status: str | None = "open",
    ) -> Connection[Task]:
        async with info.context.reader() as session:
            page = await tasks.inbox(
                session, info.context.principal, first=first, after=after, status=status
            )
        return Connection.of(page, Task.from_model)


def _data(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise BadInput("data must be an object", field="data")
    return value


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Start the newest version of a workflow about a document or a user."
    )
    async def start_workflow(self, info: HubInfo, input: StartWorkflowInput) -> WorkflowInstance:
        if (input.document_id is None) == (input.user_id is None):
            raise BadInput("give exactly one of documentId or userId", field="documentId")
        subject_type = "Document" if input.document_id is not None else "User"
        field = "documentId" if input.document_id is not None else "userId"
        subject_id = parse_id(input.document_id or input.user_id or "", field)
        async with info.context.session() as session:
            instance = await instances.start_workflow(
                session,
                definition_key=input.definition_key,
                subject_type=subject_type,
                subject_id=subject_id,
                principal=info.context.principal,
                data=_data(input.data),
            )
        await announce(info.context.redis, [instance.id])
        return WorkflowInstance.from_model(instance)

    @strawberry.mutation(
        description="Publish a definition (YAML or JSON) as the next version of its key."
    )
    async def publish_workflow_definition(
        self, info: HubInfo, source: str
    ) -> PublishDefinitionResult:
        async def work() -> WorkflowDefinition:
            async with info.context.session() as session:
                row = await definitions.publish(session, info.context.principal, source)
            return WorkflowDefinition.from_model(row)

        return await attempt(work)

    @strawberry.mutation(description="Take an action on an instance (a user-triggered transition).")
    async def perform_workflow_action(
        self, info: HubInfo, input: WorkflowActionInput
    ) -> InstanceResult:
        async def work() -> WorkflowInstance:
            async with info.context.session() as session:
                instance = await instances.act(
                    session,
                    info.context.principal,
                    parse_id(input.instance_id, "instanceId"),
                    input.action,
                    comment=input.comment,
                    data=_data(input.data),
                    expected_version=input.expected_version,
                )
            await announce(info.context.redis, [instance.id])
            return WorkflowInstance.from_model(instance)

        return await attempt(work)

    @strawberry.mutation(description="Cancel a running instance (who started it, or an admin).")
    async def cancel_workflow(
        self, info: HubInfo, id: strawberry.ID, comment: str | None = None
    ) -> InstanceResult:
        async def work() -> WorkflowInstance:
            async with info.context.session() as session:
                instance = await instances.cancel(
                    session, info.context.principal, parse_id(id), comment
                )
            await announce(info.context.redis, [instance.id])
            return WorkflowInstance.from_model(instance)

        return await attempt(work)

    @strawberry.mutation(description="Queue a failed API request of an action again (admin).")
    async def retry_workflow_action(self, info: HubInfo, id: strawberry.ID) -> ActionRunResult:
        async def work() -> WorkflowActionRun:
            async with info.context.session() as session:
                run = await instances.retry_action(session, info.context.principal, parse_id(id))
            return WorkflowActionRun.from_model(run)

        return await attempt(work)

    @strawberry.mutation(description="Take a task offered to one of my roles.")
    async def claim_task(self, info: HubInfo, id: strawberry.ID) -> TaskResult:
        return await _task_change(
            info, lambda s: tasks.claim(s, info.context.principal, parse_id(id))
        )

    @strawberry.mutation(description="Complete a task: the instance takes the chosen outcome.")
    async def complete_task(self, info: HubInfo, input: CompleteTaskInput) -> TaskResult:
        return await _task_change(
            info,
            lambda s: tasks.complete(
                s,
                info.context.principal,
                parse_id(input.task_id, "taskId"),
                input.outcome,
                comment=input.comment,
                data=_data(input.data),
            ),
        )

    @strawberry.mutation(description="Hand a task I hold to someone else.")
    async def delegate_task(
        self, info: HubInfo, id: strawberry.ID, user_id: strawberry.ID, comment: str | None = None
    ) -> TaskResult:
        return await _task_change(
            info,
            lambda s: tasks.delegate(
                s, info.context.principal, parse_id(id), parse_id(user_id, "userId"), comment
            ),
        )

    @strawberry.mutation(
        description="Ask for suggestions about a document the caller may read; its text is "
        "read from content now, as the caller, and the suggestions are computed by the worker."
    )
    async def request_document_suggestions(
        self, info: HubInfo, input: RequestDocumentSuggestionsInput
    ) -> RequestSuggestionsResult:
        async def work() -> SuggestionsRequested:
            async with info.context.session() as session:
                rows = await suggestions.request_for_document(
                    session,
                    info.context.principal,
                    _content(info),
                    _authorization(info),
                    parse_id(input.document_id, "documentId"),
                    [k.value for k in input.kinds],
                )
            await jobs.enqueue_suggestions(r.id for r in rows)
            return SuggestionsRequested(suggestions=[Suggestion.from_model(r) for r in rows])

        return await attempt(work)

    @strawberry.mutation(description="Ask who usually handles this kind of task.")
    async def request_task_routing(self, info: HubInfo, task_id: strawberry.ID) -> SuggestionResult:
        async def work() -> Suggestion:
            async with info.context.session() as session:
                row = await suggestions.request_routing(
                    session, info.context.principal, parse_id(task_id, "taskId")
                )
            await jobs.enqueue_suggestions([row.id])
            return Suggestion.from_model(row)

        return await attempt(work)

    @strawberry.mutation(
        description="Apply a ready suggestion (a classification to the document through "
        "content, as the caller; a routing to the task), corrected if given; it is learned from."
    )
    async def accept_suggestion(
        self, info: HubInfo, input: AcceptSuggestionInput
    ) -> SuggestionResult:
        async def work() -> Suggestion:
            async with info.context.session() as session:
                row = await suggestions.accept(
                    session,
                    info.context.principal,
                    _content(info),
                    _authorization(info),
                    parse_id(input.id),
                    type=input.type,
                    tags=input.tags,
                    user_id=parse_id(input.user_id, "userId") if input.user_id else None,
                )
            await _after_decision(info, row)
            return Suggestion.from_model(row)

        return await attempt(work)

    @strawberry.mutation(description="Turn a ready suggestion down; a correction is learned from.")
    async def reject_suggestion(
        self, info: HubInfo, input: RejectSuggestionInput
    ) -> SuggestionResult:
        async def work() -> Suggestion:
            async with info.context.session() as session:
                row = await suggestions.reject(
                    session,
                    info.context.principal,
                    parse_id(input.id),
                    reason=input.reason,
                    type=input.type,
                    tags=input.tags,
                )
            await _after_decision(info, row)
            return Suggestion.from_model(row)

        return await attempt(work)

    @strawberry.mutation(
        description="Teach classification from documents already labelled (read as the caller)."
    )
    async def learn_from_documents(
        self, info: HubInfo, document_ids: list[strawberry.ID]
    ) -> LearnResult:
        async def work() -> ExamplesLearned:
            async with info.context.session() as session:
                rows = await suggestions.learn_from_documents(
                    session,
                    info.context.principal,
                    _content(info),
                    _authorization(info),
                    [parse_id(d, "documentIds") for d in document_ids],
                )
            organizations = {r.organization_id for r in rows}
            await jobs.enqueue_training(organizations)
            return ExamplesLearned(
                count=len(rows),
                organization_ids=[id_of(o) for o in sorted(organizations, key=str)],
            )

        return await attempt(work)


def _content(info: HubInfo) -> ContentAPI:
    assert info.context.request is not None
    content: ContentAPI = info.context.request.app.state.content_api
    return content


def _authorization(info: HubInfo) -> str | None:
    """The caller's own token, forwarded to content: content decides what they may read."""
    assert info.context.request is not None
    return info.context.request.headers.get("authorization")


async def _after_decision(info: HubInfo, row: models.Suggestion) -> None:
    async with info.context.session() as session:
        await jobs.after_decision(session, info.context.redis, row)


async def _task_change(info: HubInfo, change: Callable[[Any], Awaitable[models.Task]]) -> Any:
    async def work() -> Task:
        async with info.context.session() as session:
            task = await change(session)
        await announce(info.context.redis, [task.instance_id])
        return Task.from_model(task)

    return await attempt(work)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The instance, each time it changes.")
    async def workflow_instance_updated(
        self, info: HubInfo, id: strawberry.ID
    ) -> AsyncGenerator[WorkflowInstance, None]:
        instance_id = parse_id(id)
        async for _ in info.context.redis.subscribe(channel_of(instance_id)):
            info.context.clear_loaders()
            row = await info.context.loader(instances.instances_by_ids).load(instance_id)
            if row is not None:
                yield WorkflowInstance.from_model(row)

    @strawberry.subscription(
        description="Open tasks newly assigned to me or offered to my roles, as they appear."
    )
    async def task_assigned(self, info: HubInfo) -> AsyncGenerator[Task, None]:
        principal = info.context.user
        seen: set[tuple[Any, ...]] = set()
        async for message in info.context.redis.subscribe(ALL_INSTANCES):
            async with info.context.session() as session:
                rows = await tasks.open_tasks_for(session, principal, uuid.UUID(message["id"]))
            for row in rows:
                key = (row.id, row.assignee_id, row.role)
                if key not in seen:
                    seen.add(key)
                    yield Task.from_model(row)


schema = federated_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[Document, User, WorkflowInstance],
)
