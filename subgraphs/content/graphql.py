"""Content's part of the graph: the `Document` entity it owns and `User.documents`."""

from __future__ import annotations

from datetime import datetime

import strawberry

from subgraphs.common.graphql import HubInfo, federated_schema, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection, PageKey
from subgraphs.content import models, service


@strawberry.federation.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> User:
        return cls(id=id)

    @strawberry.field(description="Documents this user owns, newest first.")
    async def documents(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Document]:
        key = PageKey(parent_id=parse_id(self.id), first=first, after=after)
        page = await info.context.loader(service.documents_of_owners).load(key)
        return Connection.of(page, Document.from_model)


@strawberry.federation.type(keys=["id"], description="A document and its metadata.")
class Document:
    id: strawberry.ID
    title: str
    owner: User
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, document: models.Document) -> Document:
        return cls(
            id=strawberry.ID(str(document.id)),
            title=document.title,
            owner=User(id=strawberry.ID(str(document.owner_id))),
            created_at=document.created_at,
            updated_at=document.updated_at,
        )

    @classmethod
    async def resolve_reference(cls, info: HubInfo, id: strawberry.ID) -> Document | None:
        document = await info.context.loader(service.documents_by_ids).load(parse_id(id))
        return cls.from_model(document) if document else None


@strawberry.input
class CreateDocumentInput:
    title: str
    owner_id: strawberry.ID


@strawberry.type
class Query:
    @strawberry.field(description="One document by id, or null when there is none.")
    async def document(self, info: HubInfo, id: strawberry.ID) -> Document | None:
        document = await info.context.loader(service.documents_by_ids).load(parse_id(id))
        return Document.from_model(document) if document else None

    @strawberry.field(description="Documents, newest first.")
    async def documents(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Document]:
        async with info.context.session() as session:
            page = await service.list_documents(session, first=first, after=after)
        return Connection.of(page, Document.from_model)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_document(self, info: HubInfo, input: CreateDocumentInput) -> Document:
        owner_id = parse_id(input.owner_id, "ownerId")
        async with info.context.session() as session:
            document = await service.create_document(session, title=input.title, owner_id=owner_id)
        return Document.from_model(document)


schema = federated_schema(query=Query, mutation=Mutation, types=[Document, User])
