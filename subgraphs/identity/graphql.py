"""Identity's part of the graph: the `User` entity it owns, its queries and mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from subgraphs.common.graphql import HubInfo, federated_schema, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection
from subgraphs.identity import models, service


@strawberry.federation.type(keys=["id"], description="A person who uses the application.")
class User:
    id: strawberry.ID
    email: str
    display_name: str
    created_at: datetime

    @classmethod
    def from_model(cls, user: models.User) -> User:
        return cls(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            display_name=user.display_name,
            created_at=user.created_at,
        )

    @classmethod
    async def resolve_reference(cls, info: HubInfo, id: strawberry.ID) -> User | None:
        user = await info.context.loader(service.users_by_ids).load(parse_id(id))
        return cls.from_model(user) if user else None


@strawberry.input
class CreateUserInput:
    email: str
    display_name: str


@strawberry.type
class Query:
    @strawberry.field(description="One user by id, or null when there is none.")
    async def user(self, info: HubInfo, id: strawberry.ID) -> User | None:
        user = await info.context.loader(service.users_by_ids).load(parse_id(id))
        return User.from_model(user) if user else None

    @strawberry.field(description="Users, newest first.")
    async def users(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        email_contains: str | None = None,
    ) -> Connection[User]:
        async with info.context.session() as session:
            page = await service.list_users(
                session, first=first, after=after, email_contains=email_contains
            )
        return Connection.of(page, User.from_model)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_user(self, info: HubInfo, input: CreateUserInput) -> User:
        async with info.context.session() as session:
            user = await service.create_user(
                session, email=input.email, display_name=input.display_name
            )
        return User.from_model(user)


schema = federated_schema(query=Query, mutation=Mutation, types=[User])
