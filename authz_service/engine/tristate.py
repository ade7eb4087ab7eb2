"""Three-valued results: true, false, or unknown because caveat parameters are missing.

Caveats are evaluated as soon as they are met, because the request context is known, so
a subproblem's answer is never a symbolic expression, only one of these three values.
Union is Kleene OR, intersection Kleene AND, exclusion `a AND NOT b`. An unknown value
carries the names of the missing parameters; combining unknowns unites them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authz_service.engine.types import Decision

__all__ = ["FALSE", "TRUE", "Tri"]


@dataclass(frozen=True, slots=True)
class Tri:
    value: bool | None
    missing: frozenset[str] = frozenset()

    @staticmethod
    def unknown(missing: Iterable[str]) -> Tri:
        return Tri(None, frozenset(missing))

    @property
    def is_true(self) -> bool:
        return self.value is True

    @property
    def is_false(self) -> bool:
        return self.value is False

    def __or__(self, other: Tri) -> Tri:
        if self.value is True or other.value is True:
            return TRUE
        if self.value is None:
            return self if other.value is False else Tri(None, self.missing | other.missing)
        return other

    def __and__(self, other: Tri) -> Tri:
        if self.value is False or other.value is False:
            return FALSE
        if self.value is None:
            return self if other.value is True else Tri(None, self.missing | other.missing)
        return other

    def __invert__(self) -> Tri:
        if self.value is None:
            return self
        return FALSE if self.value else TRUE

    @property
    def decision(self) -> Decision:
        if self.value is True:
            return Decision.ALLOWED
        if self.value is False:
            return Decision.DENIED
        return Decision.CONDITIONAL

    @property
    def missing_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.missing)) if self.value is None else ()


TRUE = Tri(True)
FALSE = Tri(False)
