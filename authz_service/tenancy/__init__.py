"""Tenant-scoped RBAC on the relationship engine: roles, bindings, subject lifecycle.

Roles, bindings and subject status are data: internal relationships in the tenant's
store (`encoding`), so they share revisions, tokens, atomic writes and replay with
everything else. `BindingGrants` plugs bindings into the engine as a grant source;
`SubjectStatuses` reads lifecycle status; `reach` measures what a grant opens.

Modules: `encoding` (the internal relationships), `index` (a tenant's roles and bindings
per revision, cached), `hierarchy` (the schema's `inherit` relations, walked up and
down), `grants` (the grant source), `lifecycle` (status), `reach` (blast radius).
"""

from __future__ import annotations

from authz_service.tenancy.encoding import (
    Binding,
    CustomRole,
    StatusRecord,
    SubjectStatus,
)
from authz_service.tenancy.grants import BindingGrants
from authz_service.tenancy.hierarchy import Hierarchy
from authz_service.tenancy.lifecycle import SubjectStatuses
from authz_service.tenancy.reach import Reach, ReachRules

__all__ = [
    "Binding",
    "BindingGrants",
    "CustomRole",
    "Hierarchy",
    "Reach",
    "ReachRules",
    "StatusRecord",
    "SubjectStatus",
    "SubjectStatuses",
]
