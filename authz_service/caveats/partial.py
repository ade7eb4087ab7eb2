"""Three-valued evaluation of a caveat whose context lacks some parameters.

How the CEL library treats an absent variable: referencing it raises "undefined
variable", and its `&&`, `||` and `?:` absorb errors commutatively (`x || true` and
`false && x` are definite). It has no notion of an *unknown* value, though, so when the
result is an error it cannot say whether the error came from an absent parameter or
from a real fault, nor which absent parameters the answer depends on.

So the logical layer (`&&`, `||`, `!( )`, `? :`) is walked here, with the rules cel-go
uses for partial evaluation, which SpiceDB relies on:

- a leaf (any other sub-expression, evaluated by the library) whose evaluation stops at
  an absent parameter is *unknown*, needing the absent parameters it references;
- `&&` is false if any operand is false, else unknown if any is unknown, else the first
  error, else true; `||` is the mirror image (unknown beats error in both);
- `!` and the condition of `? :` pass unknown and errors through.

The walk only runs when a referenced parameter is absent; a complete context is
evaluated by the library in one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

# The extension module itself: xds-protos also ships a `cel/__init__.py` (CEL protos)
# that can replace this package's, and only the compiled module is always intact.
from cel import cel

from authz_service.caveats.messages import cel_type_name, describe_cel_error, undefined_name

__all__ = [
    "Activation",
    "AllOf",
    "AnyOf",
    "Choose",
    "Failure",
    "Leaf",
    "Node",
    "Not",
    "Unknown",
    "iter_leaves",
]


Activation = dict[str, Any] | cel.Context
"""Bound parameters, in a Context when the caveat calls registered functions."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """The outcome depends on these absent parameters."""

    names: frozenset[str]


@dataclass(frozen=True, slots=True)
class Failure:
    """Evaluation failed for a reason other than an absent parameter."""

    message: str


class Node(Protocol):
    def evaluate(self, activation: Activation, missing: frozenset[str]) -> object:
        """A bool, another CEL value, `Unknown` or `Failure`; never raises."""
        ...


def _not_boolean(value: object, operator: str) -> Failure:
    return Failure(f"operand of `{operator}` is {cel_type_name(value)}, not bool")


@dataclass(frozen=True, slots=True, eq=False)
class Leaf:
    source: str
    program: cel.Program
    parameters: frozenset[str]  # declared parameters the source references

    def evaluate(self, activation: Activation, missing: frozenset[str]) -> object:
        try:
            return self.program.execute(activation)
        # The library raises RuntimeError, TypeError, KeyError, ValueError, IndexError,
        # ZeroDivisionError...: any of them is this leaf's failure.
        except Exception as error:
            absent = self.parameters & missing
            if absent and undefined_name(error) in absent:
                return Unknown(absent)
            return Failure(describe_cel_error(error))


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node

    def evaluate(self, activation: Activation, missing: frozenset[str]) -> object:
        outcome = self.operand.evaluate(activation, missing)
        if isinstance(outcome, bool):
            return not outcome
        if isinstance(outcome, Unknown | Failure):
            return outcome
        return _not_boolean(outcome, "!")


@dataclass(frozen=True, slots=True)
class AllOf:
    """`a && b && ...`"""

    operands: tuple[Node, ...]

    def evaluate(self, activation: Activation, missing: frozenset[str]) -> object:
        return _combine(self.operands, activation, missing, absorbing=False, operator="&&")


@dataclass(frozen=True, slots=True)
class AnyOf:
    """`a || b || ...`"""

    operands: tuple[Node, ...]

    def evaluate(self, activation: Activation, missing: frozenset[str]) -> object:
        return _combine(self.operands, activation, missing, absorbing=True, operator="||")


def _combine(
    operands: tuple[Node, ...],
    activation: Activation,
    missing: frozenset[str],
    *,
    absorbing: bool,
    operator: str,
) -> object:
    unknown: set[str] = set()
    failure: Failure | None = None
    for operand in operands:
        outcome = operand.evaluate(activation, missing)
        if outcome is absorbing:
            return absorbing
        if isinstance(outcome, bool):
            continue
        if isinstance(outcome, Unknown):
            unknown |= outcome.names
        elif failure is None:
            failure = outcome if isinstance(outcome, Failure) else _not_boolean(outcome, operator)
    if unknown:
        return Unknown(frozenset(unknown))
    if failure is not None:
        return failure
    return not absorbing


@dataclass(frozen=True, slots=True)
class Choose:
    """`condition ? then : otherwise`"""

    condition: Node
    then: Node
    otherwise: Node

    def evaluate(self, activation: Activation, missing: frozenset[str]) -> object:
        outcome = self.condition.evaluate(activation, missing)
        if outcome is True:
            return self.then.evaluate(activation, missing)
        if outcome is False:
            return self.otherwise.evaluate(activation, missing)
        if isinstance(outcome, Unknown | Failure):
            return outcome
        return _not_boolean(outcome, "?:")


def iter_leaves(node: Node) -> Iterator[Leaf]:
    """Every leaf under `node`, left to right."""
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from iter_leaves(node.operand)
    elif isinstance(node, AllOf | AnyOf):
        for operand in node.operands:
            yield from iter_leaves(operand)
    elif isinstance(node, Choose):
        for part in (node.condition, node.then, node.otherwise):
            yield from iter_leaves(part)
