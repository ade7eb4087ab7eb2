"""Storage: protocols plus the memory and PostgreSQL backends."""

from authz_service.store.memory import MemoryStore
from authz_service.store.protocol import (
    Change,
    Precondition,
    RelationshipReader,
    RelationshipWriter,
    RevisionSource,
    SchemaRecord,
    SchemaStore,
    Store,
    WholeResources,
)

__all__ = [
    "Change",
    "MemoryStore",
    "Precondition",
    "RelationshipReader",
    "RelationshipWriter",
    "RevisionSource",
    "SchemaRecord",
    "SchemaStore",
    "Store",
    "WholeResources",
]
