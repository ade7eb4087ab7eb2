"""SpiceDB-style caveats: `caveat name(p1 type, ...) { <CEL expression> }`.

`compile_caveat` validates a caveat once, when a schema is written; the resulting
`CompiledCaveat.evaluate` runs on the check path against the merged context and answers
true, false, or "undecided: these parameters are missing" (`CaveatResult.value is None`).
Every failure is a `CaveatError`; none of them ever reads as allowed.

Modules: `types` (parameter types), `convert` (JSON context to CEL values), `ipaddr`
(the `ipaddress` type and `in_cidr`), `functions` (what a caveat may call), `split` and
`partial` (three-valued evaluation when parameters are absent), `sample` (write-time type
checks), `compile` (the API).
"""

from __future__ import annotations

from authz_service.caveats.compile import CaveatResult, CompiledCaveat, compile_caveat
from authz_service.caveats.types import (
    CaveatType,
    canonical_caveat_type_text,
    parse_caveat_type,
)

__all__ = [
    "CaveatResult",
    "CaveatType",
    "CompiledCaveat",
    "canonical_caveat_type_text",
    "compile_caveat",
    "parse_caveat_type",
]
