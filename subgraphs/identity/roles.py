"""Roles and the permissions (token scopes) they grant.

Two roles are built in: `admin` (everything) and `member` (what every signed-in user of
an organization may do). A deployment adds its own in a YAML file named by
HUB_IDENTITY_ROLES_FILE — see roles/procurement.yaml and roles/clinic.yaml:

    roles:
      buyer:
        description: Publishes consultations and evaluates bids
        permissions: [documents:read, documents:write, workflows:start]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from subgraphs.common.errors import BadInput

# Identity's own permissions; other services name theirs in the roles file.
USERS_READ = "users:read"
USERS_WRITE = "users:write"
ROLES_GRANT = "roles:grant"
ORGANIZATIONS_WRITE = "organizations:write"
AUDIT_READ = "audit:read"
KEYS_ROTATE = "keys:rotate"
ADMIN = "admin"
# Communication's: notify any user; read anyone's notifications and the dead letters.
NOTIFICATIONS_SEND = "notifications:send"
NOTIFICATIONS_ADMIN = "notifications:admin"

ADMIN_PERMISSIONS = frozenset(
    {
        ADMIN,
        USERS_READ,
        USERS_WRITE,
        ROLES_GRANT,
        ORGANIZATIONS_WRITE,
        AUDIT_READ,
        KEYS_ROTATE,
        NOTIFICATIONS_SEND,
        NOTIFICATIONS_ADMIN,
    }
)
MEMBER_PERMISSIONS = frozenset({"documents:read", "documents:write", "notifications:read"})

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
PERMISSION = re.compile(r"^[a-z][a-z0-9_.-]*(:[a-z0-9_.*-]+)?$")


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    permissions: frozenset[str]
    built_in: bool = False


BUILT_IN = {
    "admin": Role("admin", "Administers the whole deployment", ADMIN_PERMISSIONS, True),
    "member": Role("member", "Works within their organizations", MEMBER_PERMISSIONS, True),
}


class RolesFileError(ValueError):
    pass


def load_roles(path: Path | None) -> dict[str, Role]:
    roles = dict(BUILT_IN)
    if path is None:
        return roles
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise RolesFileError(f"{path}: {error}") from None
    entries = data.get("roles", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise RolesFileError(f"{path}: expected a mapping under 'roles'")
    for name, entry in entries.items():
        where = f"{path}: roles.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise RolesFileError(f"{where}: a role name is lower-case letters, digits, - or _")
        if name in BUILT_IN:
            raise RolesFileError(f"{where}: '{name}' is built in and cannot be redefined")
        entry = entry or {}
        permissions = entry.get("permissions", [])
        if not isinstance(permissions, list) or not all(
            isinstance(p, str) and PERMISSION.match(p) for p in permissions
        ):
            raise RolesFileError(f"{where}.permissions: a list like [documents:read]")
        roles[name] = Role(name, str(entry.get("description", "")), frozenset(permissions))
    return roles


@cache
def roles_from(path: Path | None) -> dict[str, Role]:
    return load_roles(path)


def role_named(roles: dict[str, Role], name: str) -> Role:
    try:
        return roles[name]
    except KeyError:
        known = ", ".join(sorted(roles))
        raise BadInput(f"no role named {name!r}; known roles: {known}", field="role") from None


def permissions_of(roles: dict[str, Role], names: set[str]) -> frozenset[str]:
    return frozenset(p for name in names if name in roles for p in roles[name].permissions)
