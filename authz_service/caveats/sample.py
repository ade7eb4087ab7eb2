"""Write-time type checks by evaluating each leaf once on sample values.

The CEL library has no type checker, so a caveat like `someparam` (an int) or
`count < 'x'` would otherwise be accepted and then fail on every check. Each leaf of the
logical tree (see `partial.py`) sits where a boolean is required, so each is evaluated
once with every parameter bound to a well-typed sample value (zero, empty string, empty
list...). A leaf that then yields a non-boolean, or hits "no such overload", fails for a
legitimate input, so the caveat is rejected.

The check is one-sided: what it rejects is wrong, but it misses whatever the samples do
not reach (a branch not taken, a comprehension over an empty list). It skips leaves that
use `any` parameters, whose values may be of any type, and `uint` ones, which travel as
CEL `int` (see `convert.py`) and so could fail here for a reason of ours, not the
author's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

# The extension module itself: xds-protos also ships a `cel/__init__.py` (CEL protos)
# that can replace this package's, and only the compiled module is always intact.
from cel import cel

from authz_service.caveats.messages import cel_type_name
from authz_service.caveats.partial import Activation, Node, iter_leaves
from authz_service.caveats.types import CaveatType
from authz_service.errors import CaveatError, echo

__all__ = ["check_with_sample_values", "sample_value"]

_SAMPLES: dict[str, object] = {
    "bool": False,
    "bytes": b"",
    "double": 0.0,
    "duration": timedelta(0),
    "int": 0,
    "ipaddress": bytes(4),
    "string": "",
    "timestamp": datetime(1970, 1, 1, tzinfo=UTC),
}
_UNCHECKED_TYPES = frozenset({"any", "uint"})


def sample_value(caveat_type: CaveatType) -> object:
    """A well-typed value of `caveat_type`; containers are empty, so `any` never appears."""
    if caveat_type.name == "list":
        return []
    if caveat_type.name == "map":
        return {}
    return _SAMPLES[caveat_type.name]


def check_with_sample_values(
    name: str,
    parameters: Sequence[tuple[str, CaveatType]],
    tree: Node,
    functions: dict[str, Callable[..., Any]] | None,
) -> None:
    unchecked = frozenset(p for p, kind in parameters if kind.name in _UNCHECKED_TYPES)
    bindings = {p: sample_value(kind) for p, kind in parameters if p not in unchecked}
    activation: Activation = bindings if functions is None else cel.Context(bindings, functions)
    for leaf in iter_leaves(tree):
        if leaf.parameters & unchecked:
            continue
        try:
            value = leaf.program.execute(activation)
        except Exception as error:
            if _is_type_error(error):
                raise CaveatError(
                    f"caveat `{echo(name)}` applies an operator or function to operands of the "
                    f"wrong type in `{echo(leaf.source)}`",
                    field="caveat",
                    value=name,
                ) from error
            continue  # data-dependent failures (missing key, bad format) are fine here
        if not isinstance(value, bool):
            raise CaveatError(
                f"caveat `{echo(name)}` must evaluate to a boolean, but `{echo(leaf.source)}` "
                f"is {cel_type_name(value)}",
                field="caveat",
                value=name,
            )


def _is_type_error(error: Exception) -> bool:
    # The library's own overload failures, or our functions' TypeError, which they raise
    # only for operands of the wrong type.
    text = str(error)
    return text.startswith("No such overload") or "Python function call failed: TypeError" in text
