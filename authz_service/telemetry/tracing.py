"""OpenTelemetry tracing: one server span per sampled call, child spans via `span()`.

Sampling is `ParentBased(TraceIdRatioBased(ratio))`: a call that carries a W3C
`traceparent` follows its caller's decision, any other call is sampled with
probability `ratio`. Ratio 0 (the default) turns tracing off altogether: no provider
is built and the interceptor and `span()` never reach the SDK, whatever the caller
sends.

The SDK costs about 7 µs per call even for a span it then drops (ids, sampler, a
non-recording span, context attach and detach). So the interceptor decides first,
with exactly the sampler's rule: it draws the trace id itself and compares it with the
ratio bound, and reads the caller's sampled flag from `traceparent` without parsing
the rest. Only calls that will be sampled reach the SDK, which then draws the same
conclusion from the same trace id (handed over through `_PresetIdGenerator`). At 1%
an unsampled call costs well under a microsecond.

The provider is owned by `Tracing`, not installed as the global OpenTelemetry
provider, so several can coexist in tests. `span()` uses the most recently started one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from authz_service.errors import InvalidArgument, echo

__all__ = ["Tracing", "setup_tracing", "span"]

log = logging.getLogger(__name__)

_NOOP: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_ID_LOW_BITS = TraceIdRatioBased.TRACE_ID_LIMIT


class _Active:
    """The tracer `span()` uses; None while tracing is off."""

    tracer: trace.Tracer | None = None


def _flagged_sampled(traceparent: str) -> bool:
    """Bit 0 of the flags in `00-<trace id>-<parent id>-<flags>`; malformed: True, so
    that the propagator (which validates fully) decides."""
    if len(traceparent) < 55 or traceparent[52] != "-":
        return True
    try:
        return bool(int(traceparent[53:55], 16) & 1)
    except ValueError:
        return True


class _PresetIdGenerator(RandomIdGenerator):
    """Hands the SDK the trace id the interceptor already sampled on."""

    def __init__(self) -> None:
        self.preset = 0

    def generate_trace_id(self) -> int:
        trace_id, self.preset = self.preset, 0
        return trace_id or super().generate_trace_id()


class Tracing:
    """A tracer provider with the service's sampler and an optional exporter."""

    def __init__(self, ratio: float, exporter: SpanExporter | None = None) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise InvalidArgument(
                f"trace sample ratio `{echo(ratio)}` is not between 0 and 1",
                field="trace_ratio",
                value=ratio,
            )
        self.ratio = ratio
        self.enabled = ratio > 0.0
        self._bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        self._ids = _PresetIdGenerator()
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        if not self.enabled:
            return
        if exporter is None:
            log.warning("trace sampling is on but no span exporter is configured")
        # An explicit Resource: Resource.create() would read OTEL_* variables, and
        # config.py is the only reader of the environment.
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(ratio)),
            resource=Resource({"service.name": "authz-service"}),
            id_generator=self._ids,
        )
        if exporter is not None:
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self._provider.get_tracer("authz_service")

    def start_server_span(
        self,
        name: str,
        traceparent: str | None,
        tracestate: str | None,
        attributes: Mapping[str, AttributeValue],
    ) -> Span | None:
        """The span of one incoming call, or None when it is not sampled.

        Only called when `enabled`. The caller makes the span current and ends it.
        """
        parent: otel_context.Context | None = None
        if traceparent is not None:
            if not _flagged_sampled(traceparent):
                return None  # the caller decided not to sample this trace (common case)
            carrier = {"traceparent": traceparent}
            if tracestate is not None:
                carrier["tracestate"] = tracestate
            parent = _PROPAGATOR.extract(carrier)
            if not trace.get_current_span(parent).get_span_context().is_valid:
                parent = None  # malformed: treat the call as a root
        if parent is None:
            trace_id = random.getrandbits(128)
            if trace_id & _TRACE_ID_LOW_BITS >= self._bound or not trace_id:
                return None
            self._ids.preset = trace_id
            parent = otel_context.Context()  # a root, whatever is current
        return self.tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )

    def activate(self) -> None:
        """Make this provider the one `span()` uses."""
        _Active.tracer = self.tracer if self.enabled else None

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        """Export finished spans now (blocking); tests use it instead of waiting."""
        return self._provider.force_flush(timeout_ms) if self._provider is not None else True

    def shutdown(self) -> None:
        """Flush and stop the exporter (blocking: run it in a thread from async code)."""
        if _Active.tracer is self.tracer:
            _Active.tracer = None
        provider, self._provider = self._provider, None
        if provider is not None:
            provider.shutdown()


def setup_tracing(ratio: float, exporter: SpanExporter | None = None) -> Tracing:
    """Build the provider for `ratio` and make it the one `span()` uses."""
    tracing = Tracing(ratio, exporter)
    tracing.activate()
    return tracing


def span(name: str, **attributes: Any) -> AbstractContextManager[Span]:
    """A child span of the current span, or a shared no-op when it is not sampled.

        with span("engine.check", permission=perm) as s:
            s.set_attribute("authz.dispatches", n)   # no-op when not sampled

    Costs one global read when tracing is off and one context lookup when the call
    is not sampled. Attribute values must be str, bool, int, float or sequences of them.
    """
    tracer = _Active.tracer
    if tracer is None or not trace.get_current_span().is_recording():
        return _NOOP
    return tracer.start_as_current_span(name, attributes=attributes)
