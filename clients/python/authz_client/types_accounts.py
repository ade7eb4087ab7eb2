"""Results of ServiceAccountsService: service accounts, their changes and the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ServiceAccount",
    "ServiceAccountChange",
    "ServiceAccountDeletion",
    "ServiceAccountFinding",
    "ServiceAccountReport",
]


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A non-human identity of a tenant; decisions name it `serviceaccount:<account_id>`."""

    account_id: str
    description: str
    subject: str
    create_time: datetime | None
    disable_time: datetime | None
    last_key_use_time: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disable_time is not None


@dataclass(frozen=True, slots=True)
class ServiceAccountChange:
    """A disable or enable: the account afterwards and the revision of the change."""

    account: ServiceAccount
    token: str


@dataclass(frozen=True, slots=True)
class ServiceAccountDeletion:
    """A deletion: what it removed and the keys it revoked."""

    token: str
    removed_relationship_count: int
    revoked_key_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceAccountFinding:
    """One account the report flags: unused, with unexercised or with broad grants."""

    account: ServiceAccount
    unused: bool
    last_decision_time: datetime | None
    unexercised_grants: tuple[str, ...]
    broad_grants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceAccountReport:
    """The tenant's flagged accounts over the window that started at `since_time`."""

    findings: tuple[ServiceAccountFinding, ...]
    since_time: datetime | None
    account_count: int
    decision_log_read: bool
