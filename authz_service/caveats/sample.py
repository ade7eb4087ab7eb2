"""Write-time type checks by evaluating each leaf on sample values.

The CEL library has no type checker, so a caveat like `someparam` (an int) or
`count < 'x'` would otherwise be accepted and then fail on every check. Each leaf of the
logical tree (see `partial.py`) sits where a boolean is required, so each is evaluated
with every parameter bound to a well-typed sample value (zero, empty string, empty
list...). A leaf that then yields a non-boolean, or hits "no such overload", fails for a
legitimate input, so the caveat is rejected.

One such failure is not the types' fault: zeros make `used / quota` 0.0 / 0.0, a NaN,
and the library reports ordering a NaN as "no such overload", as it does operands of the
wrong type. So a leaf that fails that way on zeros is evaluated once more with every
number non-zero and different (1, 2, ... and 1.5, 2.5, ...), and is refused only if it
fails that way there too.

The check is one-sided: what it rejects is wrong, but it misses whatever the samples do
not reach: a branch not taken, a comprehension over an empty list, and so a conditional
on a number whose branches differ in type (`(n > 0 ? 1 : 'x') < 2`, which SpiceDB
refuses) when the second samples take the good branch. It skips leaves that use `any`
parameters, whose values may be of any type, and `uint` ones, which travel as CEL `int`
(see `convert.py`) and so could fail here for a reason of ours, not the author's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

# The extension module itself: xds-protos also ships a `cel/__init__.py` (CEL protos)
# that can replace this package's, and only the compiled module is always intact.
from cel import cel

from authz_service.caveats.messages import cel_type_name
from authz_service.caveats.partial import Activation, Leaf, Node, iter_leaves
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

_TYPE_ERROR = object()
_DATA_ERROR = object()  # data-dependent failures (missing key, bad format) are fine here


def sample_value(caveat_type: CaveatType) -> object:
    """A well-typed value of `caveat_type`; containers are empty, so `any` never appears."""
    if caveat_type.name == "list":
        return []
    if caveat_type.name == "map":
        return {}
    return _SAMPLES[caveat_type.name]


def _non_zero_sample(caveat_type: CaveatType, index: int) -> object:
    """The sample for the parameter at `index`, with numbers non-zero and different per
    parameter, so that no division of samples is 0.0 / 0.0."""
    if caveat_type.name == "int":
        return index + 1
    if caveat_type.name == "double":
        return index + 1.5
    return sample_value(caveat_type)


def check_with_sample_values(
    name: str,
    parameters: Sequence[tuple[str, CaveatType]],
    tree: Node,
    functions: dict[str, Callable[..., Any]] | None,
) -> None:
    unchecked = frozenset(p for p, kind in parameters if kind.name in _UNCHECKED_TYPES)
    checked = [(p, kind) for p, kind in parameters if p not in unchecked]
    zeros = _activation({p: sample_value(kind) for p, kind in checked}, functions)
    non_zero = _activation(
        {p: _non_zero_sample(kind, i) for i, (p, kind) in enumerate(checked)}, functions
    )
    for leaf in iter_leaves(tree):
        if leaf.parameters & unchecked:
            continue
        value = _evaluate(leaf, zeros)
        if value is _TYPE_ERROR:  # perhaps only a NaN from 0.0 / 0.0: see the module doc
            value = _evaluate(leaf, non_zero)
        if value is _TYPE_ERROR:
            raise CaveatError(
                f"caveat `{echo(name)}` applies an operator or function to operands of the "
                f"wrong type in `{echo(leaf.source)}`",
                field="caveat",
                value=name,
            )
        if value is not _DATA_ERROR and not isinstance(value, bool):
            raise CaveatError(
                f"caveat `{echo(name)}` must evaluate to a boolean, but `{echo(leaf.source)}` "
                f"is {cel_type_name(value)}",
                field="caveat",
                value=name,
            )


def _activation(
    bindings: dict[str, object], functions: dict[str, Callable[..., Any]] | None
) -> Activation:
    return bindings if functions is None else cel.Context(bindings, functions)


def _evaluate(leaf: Leaf, activation: Activation) -> object:
    """The leaf's value, or _TYPE_ERROR or _DATA_ERROR when it fails."""
    try:
        return leaf.program.execute(activation)
    except Exception as error:
        return _TYPE_ERROR if _is_type_error(error) else _DATA_ERROR


def _is_type_error(error: Exception) -> bool:
    # The library's own overload failures, or our functions' TypeError, which they raise
    # only for operands of the wrong type.
    text = str(error)
    return text.startswith("No such overload") or "Python function call failed: TypeError" in text
