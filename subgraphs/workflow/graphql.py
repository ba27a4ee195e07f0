"""Workflow's part of the graph: workflow instances and `Document.workflows`."""

from __future__ import annotations

from datetime import datetime

import strawberry

from subgraphs.common.graphql import HubInfo, federated_schema, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection
from subgraphs.workflow import models, service


@strawberry.federation.type(keys=["id"])
class Document:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Document:
        return cls(id=id)

    @strawberry.field(description="Workflow instances about this document, newest first.")
    async def workflows(self, info: HubInfo) -> list[WorkflowInstance]:
        instances = await info.context.loader(service.instances_of_documents).load(
            parse_id(self.id)
        )
        return [WorkflowInstance.from_model(instance) for instance in instances]


@strawberry.federation.type(keys=["id"], description="One run of a workflow definition.")
class WorkflowInstance:
    id: strawberry.ID
    definition_key: str
    state: str
    subject_type: str
    subject_id: strawberry.ID
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, instance: models.WorkflowInstance) -> WorkflowInstance:
        return cls(
            id=strawberry.ID(str(instance.id)),
            definition_key=instance.definition_key,
            state=instance.state,
            subject_type=instance.subject_type,
            subject_id=strawberry.ID(str(instance.subject_id)),
            created_at=instance.created_at,
            updated_at=instance.updated_at,
        )

    @classmethod
    async def resolve_reference(cls, info: HubInfo, id: strawberry.ID) -> WorkflowInstance | None:
        instance = await info.context.loader(service.instances_by_ids).load(parse_id(id))
        return cls.from_model(instance) if instance else None

    @strawberry.field(description="The document this workflow is about, if it is about one.")
    def document(self) -> Document | None:
        return Document(id=self.subject_id) if self.subject_type == "Document" else None


@strawberry.input
class StartWorkflowInput:
    definition_key: str
    document_id: strawberry.ID


@strawberry.type
class Query:
    @strawberry.field(description="One workflow instance by id, or null when there is none.")
    async def workflow_instance(self, info: HubInfo, id: strawberry.ID) -> WorkflowInstance | None:
        instance = await info.context.loader(service.instances_by_ids).load(parse_id(id))
        return WorkflowInstance.from_model(instance) if instance else None

    @strawberry.field(description="Workflow instances, newest first.")
    async def workflow_instances(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[WorkflowInstance]:
        async with info.context.session() as session:
            page = await service.list_instances(session, first=first, after=after)
        return Connection.of(page, WorkflowInstance.from_model)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start a workflow about a document.")
    async def start_workflow(self, info: HubInfo, input: StartWorkflowInput) -> WorkflowInstance:
        document_id = parse_id(input.document_id, "documentId")
        async with info.context.session() as session:
            instance = await service.start_workflow(
                session,
                definition_key=input.definition_key,
                subject_type="Document",
                subject_id=document_id,
            )
        return WorkflowInstance.from_model(instance)


schema = federated_schema(query=Query, mutation=Mutation, types=[Document, WorkflowInstance])
