"""The decision engine: Check, CheckBulk, ListPermissions, LookupResources,
LookupSubjects and Explain, with SpiceDB (Zanzibar) semantics.

    Engine(reader, limits=..., dispatcher_wrapper=..., grant_sources=...)
      check / check_bulk / explain / list_permissions       -> CheckResult
      lookup_resources / lookup_subjects                    -> async iterators

Modules: `types` (public values), `tristate` (three-valued logic), `dispatch` (the
`Dispatcher` seam every subproblem crosses, and `GrantSource`: extra grant sources such
as role bindings), `request` (per-request memo, cycles as fixpoints, limits), `check` +
`accumulate` (the semantics of one node), `caveat_eval`, `reads`, `explain`, `reverse` +
`lookup_resources`, `lookup_subjects`, `inputs` (request validation), `engine` (the
operations).

The engine reads storage only through `RelationshipReader`, at the snapshot's revision.
"""

from __future__ import annotations

from authz_service.engine.check import LocalDispatcher
from authz_service.engine.dispatch import Dispatcher, GrantSource, Subproblem, SubResult
from authz_service.engine.engine import Engine
from authz_service.engine.lookup_resources import Candidates, WalkCache
from authz_service.engine.tristate import FALSE, TRUE, Tri
from authz_service.engine.types import (
    BindingRef,
    CheckItem,
    CheckResult,
    Decision,
    ExcludedSubject,
    ExplainNode,
    Limits,
    ResourceResult,
    Snapshot,
    SubjectResult,
)

__all__ = [
    "FALSE",
    "TRUE",
    "BindingRef",
    "Candidates",
    "CheckItem",
    "CheckResult",
    "Decision",
    "Dispatcher",
    "Engine",
    "ExcludedSubject",
    "ExplainNode",
    "GrantSource",
    "Limits",
    "LocalDispatcher",
    "ResourceResult",
    "Snapshot",
    "SubResult",
    "SubjectResult",
    "Subproblem",
    "Tri",
    "WalkCache",
]
