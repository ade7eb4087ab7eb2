"""The engine's public surface is pinned: the gRPC layer and the cache code against it."""

from __future__ import annotations

from authz_service import engine

EXPECTED = [
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


def test_public_names_are_pinned() -> None:
    assert sorted(engine.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert getattr(engine, name) is not None


def test_engine_methods() -> None:
    for name in (
        "check",
        "check_bulk",
        "explain",
        "list_permissions",
        "lookup_resources",
        "lookup_subjects",
    ):
        assert callable(getattr(engine.Engine, name))


def test_limits_defaults() -> None:
    limits = engine.Limits()
    assert (limits.max_depth, limits.max_fanout, limits.deadline) == (50, 10_000, None)
