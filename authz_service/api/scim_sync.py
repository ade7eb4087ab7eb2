"""SCIM reconciliation results as protos (TenancyService.GetScimSync, RepairScimDrift)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import tenancy_pb2
from authz_service.service.reconcile import Drift, SyncStatus

__all__ = ["drift_to_proto", "status_to_proto"]


def _time(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def status_to_proto(status: SyncStatus) -> tenancy_pb2.ScimSyncStatus:
    return tenancy_pb2.ScimSyncStatus(
        last_push=_time(status.last_push),
        last_change=_time(status.last_change),
        last_error_time=_time(status.last_error_time),
        last_error=status.last_error,
        users=status.users,
        active_users=status.active_users,
        groups=status.groups,
        memberships=status.memberships,
    )


def drift_to_proto(drift: Drift) -> tenancy_pb2.ScimDrift:
    return tenancy_pb2.ScimDrift(
        deactivated_upstream=[convert.object_to_proto(o) for o in drift.deactivated_upstream],
        inactive_here=[convert.object_to_proto(o) for o in drift.inactive_here],
        removed_upstream=[convert.relationship_to_proto(r) for r in drift.removed_upstream],
        written_outside=[convert.relationship_to_proto(r) for r in drift.written_outside],
        missing_here=[convert.relationship_to_proto(r) for r in drift.missing_here],
    )
