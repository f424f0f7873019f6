"""The authenticated caller and the roles the API knows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    TUTOR = "tutor"
    STUDENT = "student"
    PARENT = "parent"
    CLIENT = "client"


@dataclass(frozen=True)
class Principal:
    user_id: str
    tenant_id: str
    roles: frozenset[Role]
    email: str | None = None
    name: str | None = None

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def is_tenant_wide(self) -> bool:
        """Staff and admins act on every booking of their tenant."""
        return self.has(Role.ADMIN, Role.STAFF)
