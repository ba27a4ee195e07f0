"""Identity's part of the graph: users, sessions and tokens, MFA, organizations, roles, audit.

Protected fields carry `@authenticated` / `@requiresScopes` so the router refuses them
early; the service functions check again, so a subgraph reached directly is as strict.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from subgraphs.common.auth import SessionRevocations, require_scope
from subgraphs.common.errors import NotFound
from subgraphs.common.graphql import HubInfo, federated_schema, id_of, optional_id_of, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection
from subgraphs.identity import keys, models
from subgraphs.identity.roles import (
    AUDIT_READ,
    KEYS_ROTATE,
    ORGANIZATIONS_WRITE,
    ROLES_GRANT,
    USERS_READ,
    USERS_WRITE,
    roles_from,
)
from subgraphs.identity.roles import (
    Role as RoleDefinition,
)
from subgraphs.identity.service import access, accounts, audit, mfa, sessions
from subgraphs.identity.settings import IdentitySettings

federated = strawberry.federation


def settings_of(info: HubInfo) -> IdentitySettings:
    settings = info.context.settings
    assert isinstance(settings, IdentitySettings)
    return settings


def revocations_of(info: HubInfo) -> SessionRevocations:
    """Where identity announces the sessions it ends (subgraphs/common/auth.py)."""
    request = info.context.request
    assert request is not None, "resolvers run within a request or a WebSocket"
    return request.app.state.revocations


def roles_of(info: HubInfo) -> dict[str, RoleDefinition]:
    return roles_from(settings_of(info).roles_file)


@strawberry.type(description="A role held by a user, platform-wide or in one organization.")
class RoleGrant:
    role: str
    organization_id: strawberry.ID | None

    @strawberry.field
    async def organization(self, info: HubInfo) -> Organization | None:
        if self.organization_id is None:
            return None
        found = await info.context.loader(access.organizations_by_ids).load(
            uuid.UUID(self.organization_id)
        )
        return Organization.from_model(found) if found else None


@federated.type(keys=["id"], description="A person who uses the application.")
class User:
    id: strawberry.ID
    display_name: str
    is_active: bool
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime
    private_email: strawberry.Private[str]
    # The registrant sees their address in register's answer, before they have a token.
    reveal_email: strawberry.Private[bool] = False

    @classmethod
    def from_model(cls, user: models.User, *, reveal_email: bool = False) -> User:
        return cls(
            id=id_of(user.id),
            display_name=user.display_name,
            is_active=user.is_active,
            email_verified=user.email_verified_at is not None,
            mfa_enabled=user.mfa_enabled,
            created_at=user.created_at,
            private_email=user.email,
            reveal_email=reveal_email,
        )

    @classmethod
    async def resolve_reference(cls, info: HubInfo, id: strawberry.ID) -> User | None:
        user = await info.context.loader(accounts.users_by_ids).load(parse_id(id))
        return cls.from_model(user) if user else None

    @strawberry.field(description="Shown to the user themselves and to holders of users:read.")
    def email(self, info: HubInfo) -> str | None:
        caller = info.context.principal
        if self.reveal_email or (
            caller and (str(caller.user_id) == self.id or caller.has_scope(USERS_READ))
        ):
            return self.private_email
        return None

    @strawberry.field(description="Roles, platform-wide and per organization.")
    async def roles(self, info: HubInfo) -> list[RoleGrant]:
        assignments = await info.context.loader(access.assignments_of_users).load(
            uuid.UUID(self.id)
        )
        return [
            RoleGrant(
                role=a.role,
                organization_id=optional_id_of(a.organization_id),
            )
            for a in assignments
        ]

    @strawberry.field(description="Organizations the user belongs to (holds a role in).")
    async def organizations(self, info: HubInfo) -> list[Organization]:
        assignments = await info.context.loader(access.assignments_of_users).load(
            uuid.UUID(self.id)
        )
        ids = list(dict.fromkeys(a.organization_id for a in assignments if a.organization_id))
        found = await info.context.loader(access.organizations_by_ids).load_many(ids)
        return [Organization.from_model(o) for o in found if o is not None]


@strawberry.type(description="A tenant: users belong to organizations with roles in each.")
class Organization:
    id: strawberry.ID
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def from_model(cls, organization: models.Organization) -> Organization:
        return cls(
            id=id_of(organization.id),
            slug=organization.slug,
            name=organization.name,
            created_at=organization.created_at,
        )

    @strawberry.field
    async def members(self, info: HubInfo) -> list[Membership]:
        assignments = await info.context.loader(access.members_of_organizations).load(
            uuid.UUID(self.id)
        )
        by_user: dict[uuid.UUID, list[str]] = {}
        for assignment in assignments:
            by_user.setdefault(assignment.user_id, []).append(assignment.role)
        return [
            Membership(user_id=id_of(user_id), roles=roles) for user_id, roles in by_user.items()
        ]


@strawberry.type
class Membership:
    user_id: strawberry.ID
    roles: list[str]

    @strawberry.field
    async def user(self, info: HubInfo) -> User | None:
        user = await info.context.loader(accounts.users_by_ids).load(uuid.UUID(self.user_id))
        return User.from_model(user) if user else None


@strawberry.type(description="A role this deployment knows and the permissions it grants.")
class Role:
    name: str
    description: str
    permissions: list[str]
    built_in: bool


@strawberry.type(description="A signed-in device.")
class Session:
    id: strawberry.ID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool


@strawberry.type
class TokenPair:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int

    @classmethod
    def of(cls, pair: sessions.TokenPair) -> TokenPair:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
        )


@strawberry.type(description="The password was right; now a TOTP or recovery code (verifyMfa).")
class MfaChallenge:
    mfa_token: str
    expires_in: int


LoginResult = Annotated[TokenPair | MfaChallenge, strawberry.union("LoginResult")]


@strawberry.type
class TotpEnrollment:
    secret: str
    otpauth_uri: str


@strawberry.type(description="Single-use recovery codes; shown only once.")
class RecoveryCodes:
    codes: list[str]


@strawberry.type
class SecurityEvent:
    id: strawberry.ID
    type: str
    actor_id: strawberry.ID | None
    target_user_id: strawberry.ID | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: JSON
    created_at: datetime

    @classmethod
    def from_model(cls, event: models.SecurityEvent) -> SecurityEvent:
        return cls(
            id=id_of(event.id),
            type=event.type,
            actor_id=optional_id_of(event.actor_id),
            target_user_id=optional_id_of(event.target_user_id),
            ip=event.ip,
            user_agent=event.user_agent,
            request_id=event.request_id,
            details=cast(JSON, event.details),
            created_at=event.created_at,
        )


@strawberry.input
class RegisterInput:
    email: str
    password: str
    display_name: str


@strawberry.input
class CreateOrganizationInput:
    slug: str
    name: str


@strawberry.input
class RoleGrantInput:
    user_id: strawberry.ID
    role: str
    organization_id: strawberry.ID | None = None

    def parsed(self) -> tuple[uuid.UUID, uuid.UUID | None]:
        org = parse_id(self.organization_id, "organizationId") if self.organization_id else None
        return parse_id(self.user_id, "userId"), org


@strawberry.type
class Query:
    @federated.field(authenticated=True, description="The signed-in user.")
    async def me(self, info: HubInfo) -> User:
        async with info.context.reader() as session:
            user = await accounts.get_user(session, info.context.user.user_id)
        return User.from_model(user)

    @federated.field(authenticated=True, description="One user by id, or null.")
    async def user(self, info: HubInfo, id: strawberry.ID) -> User | None:
        info.context.user  # noqa: B018 — signed-in users only
        user = await info.context.loader(accounts.users_by_ids).load(parse_id(id))
        return User.from_model(user) if user else None

    @federated.field(requires_scopes=[[USERS_READ]], description="Users, newest first.")
    async def users(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        email_contains: str | None = None,
        active: bool | None = None,
        organization_id: strawberry.ID | None = None,
        role: str | None = None,
    ) -> Connection[User]:
        async with info.context.reader() as session:
            page = await accounts.list_users(
                session,
                principal=info.context.principal,
                first=first,
                after=after,
                email_contains=email_contains,
                active=active,
                organization_id=parse_id(organization_id, "organizationId")
                if organization_id
                else None,
                role=role,
            )
        return Connection.of(page, User.from_model)

    @federated.field(authenticated=True, description="The caller's signed-in devices.")
    async def my_sessions(self, info: HubInfo) -> list[Session]:
        async with info.context.reader() as session:
            rows = await sessions.list_sessions(session, principal=info.context.principal)
        current = info.context.user.session_id
        return [
            Session(
                id=id_of(s.id),
                user_agent=s.user_agent,
                ip=s.ip,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                current=s.id == current,
            )
            for s in rows
        ]

    @federated.field(authenticated=True, description="Organizations the caller can see.")
    async def organizations(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Organization]:
        async with info.context.reader() as session:
            page = await access.list_organizations(
                session, principal=info.context.principal, first=first, after=after
            )
        return Connection.of(page, Organization.from_model)

    @federated.field(authenticated=True)
    async def organization(self, info: HubInfo, id: strawberry.ID) -> Organization | None:
        async with info.context.reader() as session:
            try:
                found = await access.get_organization(
                    session, principal=info.context.principal, organization_id=parse_id(id)
                )
            except NotFound:
                return None
        return Organization.from_model(found)

    @strawberry.field(description="The roles this deployment defines.")
    def roles(self, info: HubInfo) -> list[Role]:
        return [
            Role(
                name=r.name,
                description=r.description,
                permissions=sorted(r.permissions),
                built_in=r.built_in,
            )
            for r in roles_of(info).values()
        ]

    @federated.field(requires_scopes=[[AUDIT_READ]], description="Security events, newest first.")
    async def security_events(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        user_id: strawberry.ID | None = None,
        type: str | None = None,
    ) -> Connection[SecurityEvent]:
        require_scope(info.context.principal, AUDIT_READ)
        async with info.context.reader() as session:
            page = await audit.list_events(
                session,
                first=first,
                after=after,
                user_id=parse_id(user_id, "userId") if user_id else None,
                type=type,
            )
        return Connection.of(page, SecurityEvent.from_model)


@strawberry.type
class Mutation:
    @federated.mutation(description="Create an account; a verification email is queued.")
    async def register(self, info: HubInfo, input: RegisterInput) -> User:
        async with info.context.session() as session:
            user = await accounts.register(
                session,
                settings=settings_of(info),
                email=input.email,
                password=input.password,
                display_name=input.display_name,
                client=info.context.client,
            )
        return User.from_model(user, reveal_email=True)

    @federated.mutation(description="Tokens, or an MFA challenge when the user has MFA on.")
    async def login(self, info: HubInfo, email: str, password: str) -> LoginResult:
        async with info.context.session() as session:
            result = await sessions.login(
                session,
                redis=info.context.redis,
                settings=settings_of(info),
                roles=roles_of(info),
                email=email,
                password=password,
                client=info.context.client,
            )
        if isinstance(result, sessions.MfaChallenge):
            return MfaChallenge(mfa_token=result.mfa_token, expires_in=result.expires_in)
        return TokenPair.of(result)

    @federated.mutation(description="Exchange an MFA challenge and a TOTP or recovery code.")
    async def verify_mfa(self, info: HubInfo, mfa_token: str, code: str) -> TokenPair:
        async with info.context.session() as session:
            pair = await mfa.verify_login(
                session,
                redis=info.context.redis,
                settings=settings_of(info),
                roles=roles_of(info),
                mfa_token=mfa_token,
                code=code,
                client=info.context.client,
            )
        return TokenPair.of(pair)

    @federated.mutation(description="New tokens for a refresh token, which is used up.")
    async def refresh_tokens(self, info: HubInfo, refresh_token: str) -> TokenPair:
        async with info.context.session() as session:
            pair = await sessions.refresh(
                session,
                settings=settings_of(info),
                roles=roles_of(info),
                refresh_token=refresh_token,
                client=info.context.client,
                revocations=revocations_of(info),
            )
        return TokenPair.of(pair)

    @federated.mutation(description="End the session of the refresh token, or the current one.")
    async def logout(self, info: HubInfo, refresh_token: str | None = None) -> bool:
        async with info.context.session() as session:
            await sessions.logout(
                session,
                principal=info.context.principal,
                refresh_token=refresh_token,
                client=info.context.client,
                revocations=revocations_of(info),
            )
        return True

    @federated.mutation(authenticated=True)
    async def revoke_session(self, info: HubInfo, id: strawberry.ID) -> bool:
        async with info.context.session() as session:
            await sessions.revoke_session(
                session,
                principal=info.context.principal,
                session_id=parse_id(id),
                client=info.context.client,
                revocations=revocations_of(info),
            )
        return True

    @federated.mutation(authenticated=True)
    async def request_email_verification(self, info: HubInfo) -> bool:
        async with info.context.session() as session:
            await accounts.request_email_verification(
                session, settings=settings_of(info), principal=info.context.principal
            )
        return True

    @federated.mutation()
    async def verify_email(self, info: HubInfo, token: str) -> User:
        async with info.context.session() as session:
            user = await accounts.verify_email(session, token=token, client=info.context.client)
        return User.from_model(user)

    @federated.mutation(description="Always true: whether the email exists is not revealed.")
    async def request_password_reset(self, info: HubInfo, email: str) -> bool:
        async with info.context.session() as session:
            await accounts.request_password_reset(session, settings=settings_of(info), email=email)
        return True

    @federated.mutation(description="Set a new password with a reset token; signs out everywhere.")
    async def reset_password(self, info: HubInfo, token: str, new_password: str) -> bool:
        async with info.context.session() as session:
            await accounts.reset_password(
                session,
                token=token,
                new_password=new_password,
                client=info.context.client,
                revocations=revocations_of(info),
            )
        return True

    @federated.mutation(authenticated=True, description="Signs out the user's other sessions.")
    async def change_password(
        self, info: HubInfo, current_password: str, new_password: str
    ) -> bool:
        async with info.context.session() as session:
            await accounts.change_password(
                session,
                principal=info.context.principal,
                current_password=current_password,
                new_password=new_password,
                client=info.context.client,
                revocations=revocations_of(info),
            )
        return True

    @federated.mutation(authenticated=True)
    async def start_totp_enrollment(self, info: HubInfo) -> TotpEnrollment:
        async with info.context.session() as session:
            enrollment = await mfa.start_enrollment(session, principal=info.context.principal)
        return TotpEnrollment(secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri)

    @federated.mutation(authenticated=True, description="Turns MFA on; returns recovery codes.")
    async def confirm_totp_enrollment(self, info: HubInfo, code: str) -> RecoveryCodes:
        async with info.context.session() as session:
            codes = await mfa.confirm_enrollment(
                session, principal=info.context.principal, code=code, client=info.context.client
            )
        return RecoveryCodes(codes=codes)

    @federated.mutation(authenticated=True)
    async def regenerate_recovery_codes(self, info: HubInfo, code: str) -> RecoveryCodes:
        async with info.context.session() as session:
            codes = await mfa.regenerate_recovery_codes(
                session, principal=info.context.principal, code=code, client=info.context.client
            )
        return RecoveryCodes(codes=codes)

    @federated.mutation(authenticated=True, description="Needs a current code or the password.")
    async def disable_mfa(
        self, info: HubInfo, code: str | None = None, password: str | None = None
    ) -> bool:
        async with info.context.session() as session:
            await mfa.disable(
                session,
                principal=info.context.principal,
                code=code,
                password=password,
                client=info.context.client,
            )
        return True

    @federated.mutation(requires_scopes=[[USERS_WRITE]])
    async def deactivate_user(self, info: HubInfo, id: strawberry.ID) -> User:
        return await _set_active(info, id, active=False)

    @federated.mutation(requires_scopes=[[USERS_WRITE]])
    async def reactivate_user(self, info: HubInfo, id: strawberry.ID) -> User:
        return await _set_active(info, id, active=True)

    @federated.mutation(requires_scopes=[[ORGANIZATIONS_WRITE]])
    async def create_organization(
        self, info: HubInfo, input: CreateOrganizationInput
    ) -> Organization:
        async with info.context.session() as session:
            organization = await access.create_organization(
                session,
                principal=info.context.principal,
                slug=input.slug,
                name=input.name,
                client=info.context.client,
            )
        return Organization.from_model(organization)

    @federated.mutation(
        requires_scopes=[[ROLES_GRANT]],
        description="Give a role; with an organization, this makes the user a member of it.",
    )
    async def grant_role(self, info: HubInfo, input: RoleGrantInput) -> User:
        user_id, organization_id = input.parsed()
        async with info.context.session() as session:
            await access.grant_role(
                session,
                principal=info.context.principal,
                roles=roles_of(info),
                user_id=user_id,
                role=input.role,
                organization_id=organization_id,
                client=info.context.client,
            )
            user = await accounts.get_user(session, user_id)
        return User.from_model(user)

    @federated.mutation(requires_scopes=[[ROLES_GRANT]])
    async def revoke_role(self, info: HubInfo, input: RoleGrantInput) -> User:
        user_id, organization_id = input.parsed()
        async with info.context.session() as session:
            await access.revoke_role(
                session,
                principal=info.context.principal,
                user_id=user_id,
                role=input.role,
                organization_id=organization_id,
                client=info.context.client,
            )
            user = await accounts.get_user(session, user_id)
        return User.from_model(user)

    @federated.mutation(
        requires_scopes=[[KEYS_ROTATE]],
        description="Sign with a new key from now on; tokens of the old one stay valid.",
    )
    async def rotate_signing_key(self, info: HubInfo) -> str:
        admin = require_scope(info.context.principal, KEYS_ROTATE)
        async with info.context.session() as session:
            key = await keys.rotate(session)
            audit.record(
                session,
                audit.SIGNING_KEY_ROTATED,
                client=info.context.client,
                actor_id=admin.user_id,
                kid=key.kid,
            )
            await session.commit()
        return key.kid


async def _set_active(info: HubInfo, id: strawberry.ID, *, active: bool) -> User:
    async with info.context.session() as session:
        user = await accounts.set_active(
            session,
            principal=info.context.principal,
            user_id=parse_id(id),
            active=active,
            client=info.context.client,
            revocations=revocations_of(info),
        )
    return User.from_model(user)


schema = federated_schema(query=Query, mutation=Mutation, types=[User])
