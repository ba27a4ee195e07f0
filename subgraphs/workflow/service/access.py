"""Who may do what to workflows: definitions' role guards, and the admin permission."""

from __future__ import annotations

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.errors import Forbidden

ADMIN = "admin"
WORKFLOWS_ADMIN = "workflows:admin"  # publish definitions, retry failed actions


def roles_of(principal: Principal) -> frozenset[str]:
    """Every role the caller holds, platform-wide or in any organization."""
    roles = set(principal.roles)
    for organization_roles in principal.organizations.values():
        roles |= organization_roles
    return frozenset(roles)


def is_admin(principal: Principal | None) -> bool:
    return principal is not None and (
        principal.has_scope(ADMIN) or principal.has_scope(WORKFLOWS_ADMIN)
    )


def require_admin(principal: Principal | None) -> Principal:
    principal = require_user(principal)
    if not is_admin(principal):
        raise Forbidden(
            f"this needs the scope {WORKFLOWS_ADMIN}", required_scopes=[WORKFLOWS_ADMIN]
        )
    return principal


def require_role(principal: Principal | None, roles: list[str], what: str) -> Principal:
    """The caller, who must hold one of `roles` (none listed: anyone signed in)."""
    principal = require_user(principal)
    if roles and not (roles_of(principal) & set(roles)) and not is_admin(principal):
        raise Forbidden(f"{what} needs one of the roles {', '.join(roles)}", roles=roles)
    return principal
