"""A relationship's caveat as a three-valued result.

The context a caveat sees is the request context overridden by the context stored on the
relationship (what was written wins over what the caller claims). Writes check that the
stored context fits the caveat's parameter types; a row stored before they did may not,
and is then blamed by name (FailedPrecondition), not the request's `context`.
"""

from __future__ import annotations

from authz_service.engine.tristate import FALSE, TRUE, Tri
from authz_service.errors import CaveatError, FailedPrecondition, echo
from authz_service.model import FrozenContext, Relationship
from authz_service.schema.compiled import CompiledSchema

__all__ = ["CaveatEvaluator"]


class CaveatEvaluator:
    """Evaluates caveats for one request, remembering each (caveat, stored context,
    request context) outcome: a wildcard or a popular group meets the same one often."""

    def __init__(self, schema: CompiledSchema, max_cost: int | None = None) -> None:
        self._schema = schema
        self._max_cost = max_cost
        self._memo: dict[tuple[str, str, str], Tri] = {}

    def value(self, rel: Relationship, context: FrozenContext) -> Tri:
        ref = rel.caveat
        if ref is None:
            return TRUE
        key = (ref.name, ref.context.canonical, context.canonical)
        found = self._memo.get(key)
        if found is not None:
            return found
        compiled = self._schema.caveats.get(ref.name)
        if compiled is None:
            raise CaveatError(
                f"relationship `{echo(rel)}` names caveat `{echo(ref.name)}`, which the schema does not define",
                field="relationship",
                value=str(rel),
            )
        try:
            compiled.check_context(ref.context, "caveat.context")
        except CaveatError as exc:
            raise FailedPrecondition(
                f"relationship `{echo(f'{rel.resource}#{rel.relation}@{rel.subject}')}` is "
                f"stored with context that does not fit its caveat: {exc.message}; write it "
                "again"
            ) from None
        merged = dict(context)
        merged.update(ref.context)
        outcome = compiled.evaluate(merged, max_cost=self._max_cost)
        if outcome.value is True:
            result = TRUE
        elif outcome.value is False:
            result = FALSE
        else:
            missing = outcome.missing or tuple(
                name for name, _ in compiled.parameters if name not in merged
            )
            result = Tri.unknown(missing)
        self._memo[key] = result
        return result
