"""Compiling a caveat once at schema-write time, and evaluating it per check.

All validation happens in `compile_caveat`, never per request: parameter names and types,
CEL syntax, identifiers that are not parameters, calls to functions CEL does not define
(see `functions.py`), and operands that are not boolean or do not fit their operator, as
far as one evaluation on sample values can show (see `sample.py`). `CompiledCaveat.evaluate` only converts context values and runs the
programs compiled here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The extension module itself: xds-protos also ships a `cel/__init__.py` (CEL protos)
# that can replace this package's, and only the compiled module is always intact.
from cel import cel

from authz_service.caveats.convert import Converter, converter_for
from authz_service.caveats.cost import CostModel, cost_model
from authz_service.caveats.functions import refuse_undefined_functions
from authz_service.caveats.ipaddr import IP_FUNCTIONS, SAMPLE_IP_FUNCTIONS
from authz_service.caveats.messages import (
    cel_type_name,
    describe_cel_error,
    describe_syntax_error,
)
from authz_service.caveats.partial import (
    Activation,
    AllOf,
    AnyOf,
    Choose,
    Failure,
    Leaf,
    Node,
    Not,
    Unknown,
)
from authz_service.caveats.sample import check_with_sample_values
from authz_service.caveats.split import (
    SplitError,
    comprehension_variables,
    split_logical,
    tokenize,
)
from authz_service.caveats.types import CEL_TYPE_IDENTIFIERS, CaveatType, parse_parameters
from authz_service.caveats.uint_literals import refuse_uint_literals
from authz_service.errors import CaveatError, LimitExceeded, echo

__all__ = ["CaveatResult", "CompiledCaveat", "compile_caveat"]

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class CaveatResult:
    """`value` is None when the answer needs the absent parameters named in `missing`."""

    value: bool | None
    missing: tuple[str, ...] = ()


_TRUE = CaveatResult(True)
_FALSE = CaveatResult(False)


@dataclass(frozen=True, slots=True)
class CompiledCaveat:
    """A validated caveat, built by `compile_caveat`. Equality is by definition."""

    name: str
    parameters: tuple[tuple[str, CaveatType], ...]
    expression: str
    _program: cel.Program = field(repr=False, compare=False)
    _tree: Node = field(repr=False, compare=False)
    _converters: tuple[tuple[str, Converter], ...] = field(repr=False, compare=False)
    _referenced: frozenset[str] = field(repr=False, compare=False)
    _functions: dict[str, Callable[..., Any]] | None = field(repr=False, compare=False)
    _cost: CostModel = field(repr=False, compare=False)

    def evaluate(self, context: Mapping[str, Any], *, max_cost: int | None = None) -> CaveatResult:
        """Evaluate against the merged context; raises CaveatError, never allows on error.

        Context keys that are not parameters are ignored. Parameters absent from the
        context are evaluated as unknown (see `partial.py`). An evaluation whose cost
        bound (see `cost.py`) exceeds `max_cost` is refused with LimitExceeded.
        """
        bindings = self._bind(context, None)
        if max_cost is not None:
            cost = self._cost.estimate(context.get(name) for name in bindings)
            if cost > max_cost:
                raise LimitExceeded(
                    f"caveat `{self.name}` could take up to {cost} steps over this context, "
                    f"over the limit AUTHZ_MAX_CAVEAT_COST = {max_cost}"
                )
        activation: Activation = bindings
        if self._functions is not None:
            activation = cel.Context(bindings, self._functions)
        missing = self._referenced.difference(bindings)
        if missing:
            return self._evaluate_partially(activation, missing)
        try:
            value = self._program.execute(activation)
        except Exception as error:  # the library raises many builtin types; all are failures
            raise self._failed(describe_cel_error(error)) from error
        if value is True:
            return _TRUE
        if value is False:
            return _FALSE
        raise self._not_boolean(value)

    def check_context(self, context: Mapping[str, Any], field: str) -> None:
        """Raise CaveatError naming `<field>.<parameter>` for a value of `context` that its
        parameter's type does not admit: the conversion `evaluate` makes, done where the
        context is written instead of at every check. Other names are not looked at."""
        self._bind(context, field)

    def _bind(self, context: Mapping[str, Any], field: str | None) -> dict[str, Any]:
        """The parameters present in `context`, converted. A value that does not convert
        is blamed on `<field>.<parameter>`, or on the request's `context` (None)."""
        bindings: dict[str, Any] = {}
        for name, convert in self._converters:
            raw = context.get(name, _ABSENT)
            if raw is _ABSENT:
                continue
            try:
                bindings[name] = convert(raw)
            except (ValueError, TypeError, OverflowError):
                where = "context" if field is None else f"{field}.{name}"
                raise self._mismatch(name, raw, where) from None
        return bindings

    def _evaluate_partially(self, activation: Activation, missing: frozenset[str]) -> CaveatResult:
        outcome = self._tree.evaluate(activation, missing)
        if outcome is True:
            return _TRUE
        if outcome is False:
            return _FALSE
        if isinstance(outcome, Unknown):
            return CaveatResult(None, tuple(sorted(outcome.names)))
        if isinstance(outcome, Failure):
            raise self._failed(outcome.message)
        raise self._not_boolean(outcome)

    def _failed(self, reason: str) -> CaveatError:
        # The reason can quote any value the expression touched (a map key that is
        # missing, for one); which ones, only the expression knows.
        return CaveatError(
            f"caveat `{echo(self.name)}` failed: {reason}",
            field="context",
            unquoted=f"caveat `{echo(self.name)}` failed (the reason may quote the context)",
        )

    def _mismatch(self, name: str, raw: object, field: str) -> CaveatError:
        declared = dict(self.parameters)[name]
        try:
            shown = json.dumps(raw, ensure_ascii=False)
        except (TypeError, ValueError):
            shown = repr(raw)
        expects = f"parameter `{echo(name)}` of caveat `{self.name}` expects {declared}"
        return CaveatError(
            f"{expects}, got `{echo(shown)}`",
            field=field,
            value=raw,
            unquoted=f"{expects}, got {cel_type_name(raw)}",
        )

    def _not_boolean(self, value: object) -> CaveatError:
        message = (
            f"caveat `{echo(self.name)}` failed: expression evaluated to {cel_type_name(value)}, "
            "not bool"
        )
        return CaveatError(message, field="context", unquoted=message)  # a type, no value


def compile_caveat(
    name: str,
    parameters: Sequence[tuple[str, str]],
    expression: str,
    *,
    max_cost: int | None = None,
    allow_undefined_functions: bool = False,
) -> CompiledCaveat:
    """Validate and compile `caveat name(parameters) { expression }`; raises CaveatError.
    With `max_cost`, an expression whose cost bound exceeds it even for the smallest
    inputs (nested comprehensions over literal lists) is refused before it is run on
    sample values. `allow_undefined_functions` is for caveats stored before calls to
    functions CEL does not define were refused (see `functions.py`): such a call then
    fails when evaluated."""
    typed = parse_parameters(name, parameters)
    cost = cost_model(expression)
    least = cost.estimate()
    if max_cost is not None and least > max_cost:
        raise CaveatError(
            f"caveat `{name}` could take up to {least} steps on any input, over the limit "
            f"AUTHZ_MAX_CAVEAT_COST = {max_cost}",
            field="caveat",
            value=name,
        )
    try:
        program = cel.compile(expression)
    except ValueError as error:
        message, line, column = describe_syntax_error(error)
        where = f" at {line}:{column}" if line else ""
        raise CaveatError(
            f"caveat `{echo(name)}` has a syntax error{where}: {message}",
            field="caveat",
            value=name,
        ) from error
    declared = frozenset(parameter for parameter, _ in typed)
    try:
        bound = comprehension_variables(tokenize(expression))
    except SplitError:
        bound = frozenset()
    undeclared = sorted(set(program.variables()) - declared - bound - CEL_TYPE_IDENTIFIERS)
    if undeclared:
        names = ", ".join(f"`{identifier}`" for identifier in undeclared)
        noun = "parameter" if len(undeclared) == 1 else "parameters"
        raise CaveatError(
            f"caveat `{echo(name)}` references undeclared {noun} {names}",
            field="caveat",
            value=name,
        )
    if not allow_undefined_functions:
        refuse_undefined_functions(name, program.functions(), expression)
    referenced = frozenset(program.variables()) & declared
    functions = IP_FUNCTIONS if set(program.functions()) & IP_FUNCTIONS.keys() else None
    refuse_uint_literals(name, typed, expression)
    tree = _logical_tree(expression, program, declared, referenced)
    check_with_sample_values(name, typed, tree, SAMPLE_IP_FUNCTIONS if functions else None)
    return CompiledCaveat(
        name=name,
        parameters=typed,
        expression=expression,
        _program=program,
        _tree=tree,
        _converters=tuple((parameter, converter_for(kind)) for parameter, kind in typed),
        _referenced=referenced,
        _functions=functions,
        _cost=cost,
    )


def _logical_tree(
    expression: str, program: cel.Program, declared: frozenset[str], referenced: frozenset[str]
) -> Node:
    def leaf(source: str) -> Node:
        try:
            piece = cel.compile(source)
        except ValueError as error:
            raise SplitError(source) from error
        return Leaf(source, piece, frozenset(piece.variables()) & declared)

    whole = Leaf(expression, program, referenced)
    try:
        tree = split_logical(
            expression, leaf=leaf, negate=Not, conjoin=AllOf, disjoin=AnyOf, choose=Choose
        )
    except SplitError:
        # Still correct, only coarser: any absent parameter leaves the whole undecided.
        return whole
    # A lone leaf is the whole expression; reuse its program rather than a second copy.
    return whole if isinstance(tree, Leaf) else tree
