"""Identity's REST routes for legacy clients: thin translations into service calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.auth import SessionRevocations, require_scope
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.redis import Namespace
from subgraphs.common.rest import Caller, Client, CursorPage, Session, SignedIn
from subgraphs.identity import keys
from subgraphs.identity.roles import AUDIT_READ, Role, roles_from
from subgraphs.identity.service import access, accounts, audit, mfa, sessions
from subgraphs.identity.settings import IdentitySettings

router = APIRouter()
well_known = APIRouter(tags=["keys"])


def _settings(request: Request) -> IdentitySettings:
    return request.app.state.settings


def _roles(request: Request) -> dict[str, Role]:
    return roles_from(request.app.state.settings.roles_file)


def _redis(request: Request) -> Namespace:
    return request.app.state.redis


Settings = Annotated[IdentitySettings, Depends(_settings)]
Roles = Annotated[dict[str, Role], Depends(_roles)]
Redis = Annotated[Namespace, Depends(_redis)]


def _revocations(request: Request) -> SessionRevocations:
    return request.app.state.revocations


Revocations = Annotated[SessionRevocations, Depends(_revocations)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    is_active: bool
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime


class RegisterIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    display_name: str = Field(max_length=200)


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int

    @classmethod
    def of(cls, pair: sessions.TokenPair) -> TokensOut:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
        )


class MfaRequiredOut(BaseModel):
    mfa_required: bool = True
    mfa_token: str
    expires_in: int


class MfaVerifyIn(BaseModel):
    mfa_token: str = Field(max_length=200)
    code: str = Field(max_length=32)


class RefreshIn(BaseModel):
    refresh_token: str = Field(max_length=200)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=200)


class CodeIn(BaseModel):
    code: str = Field(max_length=32)


class DisableMfaIn(BaseModel):
    code: str | None = Field(default=None, max_length=32)
    password: str | None = Field(default=None, max_length=1024)


class EnrollmentOut(BaseModel):
    secret: str
    otpauth_uri: str


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class TokenIn(BaseModel):
    token: str = Field(max_length=200)


class EmailIn(BaseModel):
    email: str = Field(max_length=320)


class ResetIn(BaseModel):
    token: str = Field(max_length=200)
    new_password: str = Field(max_length=1024)


class ChangePasswordIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class SessionOut(BaseModel):
    id: uuid.UUID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool


class SecurityEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    actor_id: uuid.UUID | None
    target_user_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, object]
    created_at: datetime


class OrganizationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


class OrganizationIn(BaseModel):
    slug: str = Field(max_length=63)
    name: str = Field(max_length=200)


class RoleGrantIn(BaseModel):
    role: str = Field(max_length=64)
    organization_id: uuid.UUID | None = None


# --- authentication -------------------------------------------------------------------

auth = APIRouter(prefix="/auth", tags=["auth"])


@auth.post("/register", status_code=201, response_model=UserOut)
async def register(
    body: RegisterIn, session: Session, settings: Settings, client: Client
) -> UserOut:
    user = await accounts.register(
        session,
        settings=settings,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        client=client,
    )
    return UserOut.model_validate(user)


@auth.post(
    "/login",
    response_model=TokensOut | MfaRequiredOut,
    responses={401: {"description": "Wrong email or password"}, 429: {"description": "Locked"}},
)
async def login(
    body: LoginIn, session: Session, redis: Redis, settings: Settings, roles: Roles, client: Client
) -> TokensOut | MfaRequiredOut:
    result = await sessions.login(
        session,
        redis=redis,
        settings=settings,
        roles=roles,
        email=body.email,
        password=body.password,
        client=client,
    )
    if isinstance(result, sessions.MfaChallenge):
        return MfaRequiredOut(mfa_token=result.mfa_token, expires_in=result.expires_in)
    return TokensOut.of(result)


@auth.post("/mfa/verify", response_model=TokensOut)
async def verify_mfa(
    body: MfaVerifyIn,
    session: Session,
    redis: Redis,
    settings: Settings,
    roles: Roles,
    client: Client,
) -> TokensOut:
    pair = await mfa.verify_login(
        session,
        redis=redis,
        settings=settings,
        roles=roles,
        mfa_token=body.mfa_token,
        code=body.code,
        client=client,
    )
    return TokensOut.of(pair)


@auth.post("/refresh", response_model=TokensOut)
async def refresh(
    body: RefreshIn,
    session: Session,
    settings: Settings,
    roles: Roles,
    client: Client,
    revocations: Revocations,
) -> TokensOut:
    pair = await sessions.refresh(
        session,
        settings=settings,
        roles=roles,
        refresh_token=body.refresh_token,
        client=client,
        revocations=revocations,
    )
    return TokensOut.of(pair)


@auth.post("/logout", status_code=204)
async def logout(
    session: Session,
    caller: Caller,
    client: Client,
    revocations: Revocations,
    body: LogoutIn | None = None,
) -> Response:
    await sessions.logout(
        session,
        principal=caller,
        refresh_token=body.refresh_token if body else None,
        client=client,
        revocations=revocations,
    )
    return Response(status_code=204)


@auth.get("/sessions", response_model=list[SessionOut])
async def list_sessions(session: Session, caller: SignedIn) -> list[SessionOut]:
    rows = await sessions.list_sessions(session, principal=caller)
    return [
        SessionOut(
            id=s.id,
            user_agent=s.user_agent,
            ip=s.ip,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            current=s.id == caller.session_id,
        )
        for s in rows
    ]


@auth.delete("/sessions/{session_id}", status_code=204)
async def revoke_session(
    session_id: uuid.UUID,
    session: Session,
    caller: SignedIn,
    client: Client,
    revocations: Revocations,
) -> Response:
    await sessions.revoke_session(
        session, principal=caller, session_id=session_id, client=client, revocations=revocations
    )
    return Response(status_code=204)


@auth.post("/mfa/setup", response_model=EnrollmentOut)
async def mfa_setup(session: Session, caller: SignedIn) -> EnrollmentOut:
    enrollment = await mfa.start_enrollment(session, principal=caller)
    return EnrollmentOut(secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri)


@auth.post("/mfa/confirm", response_model=RecoveryCodesOut)
async def mfa_confirm(
    body: CodeIn, session: Session, caller: SignedIn, client: Client
) -> RecoveryCodesOut:
    codes = await mfa.confirm_enrollment(session, principal=caller, code=body.code, client=client)
    return RecoveryCodesOut(recovery_codes=codes)


@auth.post("/mfa/recovery-codes", response_model=RecoveryCodesOut)
async def mfa_recovery_codes(
    body: CodeIn, session: Session, caller: SignedIn, client: Client
) -> RecoveryCodesOut:
    codes = await mfa.regenerate_recovery_codes(
        session, principal=caller, code=body.code, client=client
    )
    return RecoveryCodesOut(recovery_codes=codes)


@auth.post("/mfa/disable", status_code=204)
async def mfa_disable(
    body: DisableMfaIn, session: Session, caller: SignedIn, client: Client
) -> Response:
    await mfa.disable(
        session, principal=caller, code=body.code, password=body.password, client=client
    )
    return Response(status_code=204)


@auth.post("/email/verification", status_code=202)
async def request_email_verification(
    session: Session, settings: Settings, caller: SignedIn
) -> dict[str, str]:
    await accounts.request_email_verification(session, settings=settings, principal=caller)
    return {"status": "queued"}


@auth.post("/email/verify", response_model=UserOut)
async def verify_email(body: TokenIn, session: Session, client: Client) -> UserOut:
    return UserOut.model_validate(
        await accounts.verify_email(session, token=body.token, client=client)
    )


@auth.post("/password/reset-request", status_code=202)
async def request_password_reset(
    body: EmailIn, session: Session, settings: Settings
) -> dict[str, str]:
    await accounts.request_password_reset(session, settings=settings, email=body.email)
    return {"status": "queued if the account exists"}


@auth.post("/password/reset", status_code=204)
async def reset_password(
    body: ResetIn, session: Session, client: Client, revocations: Revocations
) -> Response:
    await accounts.reset_password(
        session,
        token=body.token,
        new_password=body.new_password,
        client=client,
        revocations=revocations,
    )
    return Response(status_code=204)


@auth.post("/password/change", status_code=204)
async def change_password(
    body: ChangePasswordIn,
    session: Session,
    caller: SignedIn,
    client: Client,
    revocations: Revocations,
) -> Response:
    await accounts.change_password(
        session,
        principal=caller,
        current_password=body.current_password,
        new_password=body.new_password,
        client=client,
        revocations=revocations,
    )
    return Response(status_code=204)


# --- users ----------------------------------------------------------------------------

users = APIRouter(prefix="/users", tags=["users"])


@users.get("/me", response_model=UserOut)
async def me(session: Session, caller: SignedIn) -> UserOut:
    return UserOut.model_validate(await accounts.get_user(session, caller.user_id))


@users.get("", response_model=CursorPage[UserOut])
async def list_users(
    session: Session,
    caller: Caller,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
    email_contains: str | None = Query(None, max_length=320),
    active: bool | None = None,
    organization_id: uuid.UUID | None = None,
    role: str | None = Query(None, max_length=64),
) -> CursorPage[UserOut]:
    page = await accounts.list_users(
        session,
        principal=caller,
        first=limit,
        after=cursor,
        email_contains=email_contains,
        active=active,
        organization_id=organization_id,
        role=role,
    )
    return CursorPage.of(page, UserOut)


@users.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: uuid.UUID, session: Session, caller: Caller) -> UserOut:
    return UserOut.model_validate(
        await accounts.read_user(session, principal=caller, user_id=user_id)
    )


@users.post("/{user_id}/deactivate", response_model=UserOut)
async def deactivate(
    user_id: uuid.UUID,
    session: Session,
    caller: Caller,
    client: Client,
    revocations: Revocations,
) -> UserOut:
    return UserOut.model_validate(
        await accounts.set_active(
            session,
            principal=caller,
            user_id=user_id,
            active=False,
            client=client,
            revocations=revocations,
        )
    )


@users.post("/{user_id}/reactivate", response_model=UserOut)
async def reactivate(
    user_id: uuid.UUID,
    session: Session,
    caller: Caller,
    client: Client,
    revocations: Revocations,
) -> UserOut:
    return UserOut.model_validate(
        await accounts.set_active(
            session,
            principal=caller,
            user_id=user_id,
            active=True,
            client=client,
            revocations=revocations,
        )
    )


@users.post("/{user_id}/roles", status_code=204)
async def grant_role(
    user_id: uuid.UUID,
    body: RoleGrantIn,
    session: Session,
    caller: Caller,
    roles: Roles,
    client: Client,
) -> Response:
    await access.grant_role(
        session,
        principal=caller,
        roles=roles,
        user_id=user_id,
        role=body.role,
        organization_id=body.organization_id,
        client=client,
    )
    return Response(status_code=204)


@users.delete("/{user_id}/roles/{role}", status_code=204)
async def revoke_role(
    user_id: uuid.UUID,
    role: str,
    session: Session,
    caller: Caller,
    client: Client,
    organization_id: uuid.UUID | None = None,
) -> Response:
    await access.revoke_role(
        session,
        principal=caller,
        user_id=user_id,
        role=role,
        organization_id=organization_id,
        client=client,
    )
    return Response(status_code=204)


# --- organizations and audit ----------------------------------------------------------

organizations = APIRouter(prefix="/organizations", tags=["organizations"])


@organizations.get("", response_model=CursorPage[OrganizationOut])
async def list_organizations(
    session: Session,
    caller: Caller,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
) -> CursorPage[OrganizationOut]:
    page = await access.list_organizations(session, principal=caller, first=limit, after=cursor)
    return CursorPage.of(page, OrganizationOut)


@organizations.post("", status_code=201, response_model=OrganizationOut)
async def create_organization(
    body: OrganizationIn, session: Session, caller: Caller, client: Client
) -> OrganizationOut:
    organization = await access.create_organization(
        session, principal=caller, slug=body.slug, name=body.name, client=client
    )
    return OrganizationOut.model_validate(organization)


@organizations.get("/{organization_id}", response_model=OrganizationOut)
async def get_organization(
    organization_id: uuid.UUID, session: Session, caller: Caller
) -> OrganizationOut:
    organization = await access.get_organization(
        session, principal=caller, organization_id=organization_id
    )
    return OrganizationOut.model_validate(organization)


audit_routes = APIRouter(prefix="/audit", tags=["audit"])


@audit_routes.get("/security-events", response_model=CursorPage[SecurityEventOut])
async def security_events(
    session: Session,
    caller: Caller,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
    user_id: uuid.UUID | None = None,
    type: str | None = Query(None, max_length=64),
) -> CursorPage[SecurityEventOut]:
    require_scope(caller, AUDIT_READ)
    page = await audit.list_events(session, first=limit, after=cursor, user_id=user_id, type=type)
    return CursorPage.of(page, SecurityEventOut)


@well_known.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(session: Session, settings: Settings, response: Response) -> dict[str, Any]:
    # Short cache: services refetch on an unknown kid anyway, so rotation is seen at once.
    response.headers["Cache-Control"] = "public, max-age=60"
    await keys.current_key(session, settings)  # a fresh deployment publishes a key at once
    return await keys.jwks(session, settings)


router.include_router(auth)
router.include_router(users)
router.include_router(organizations)
router.include_router(audit_routes)
