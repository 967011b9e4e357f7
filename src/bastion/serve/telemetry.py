"""What the gateway tells operators: Prometheus metrics and OpenTelemetry traces.

Metrics live in a registry of their own per app (``GET /metrics``), so two gateways in one
process (tests) never collide. Traces follow the OpenTelemetry semantic conventions for
generative-AI client spans (``gen_ai.*``: operation, provider, request and response model,
token usage, finish reasons, temperature, max tokens), one span per request named
``chat {model}``, plus ``bastion.*`` attributes (decision, blocked stage, event id). Spans are
exported over OTLP/HTTP only when an endpoint is configured (``otlp_endpoint`` or
``$OTEL_EXPORTER_OTLP_ENDPOINT``); message text is attached as span events only with
``trace_content: true``, and then redacted like the stored events.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from bastion.monitor.events import Event

CIRCUIT_STATES = ["closed", "half_open", "open"]
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The gateway's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bastion_requests",
            "Requests by guard decision (none: refused before the guard), HTTP status, mode.",
            ["decision", "status", "stream"],
            registry=r,
        )
        self.latency = Histogram(
            "bastion_request_seconds",
            "Whole request, as the client saw it.",
            ["stream"],
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.guard = Histogram(
            "bastion_guard_seconds",
            "Time in the guard's rails, by stage.",
            ["stage"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "bastion_upstream_seconds",
            "Time waiting on the upstream model.",
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "bastion_upstream_errors", "Upstream calls that failed, by code.", ["code"], registry=r
        )
        self.circuit = Enum(
            "bastion_circuit_state",
            "The upstream circuit breaker.",
            states=CIRCUIT_STATES,
            registry=r,
        )
        self.queue_depth = Gauge(
            "bastion_queue_depth",
            "Requests waiting on or being served by the upstream.",
            registry=r,
        )
        self.tokens = Counter("bastion_tokens", "Tokens in and out.", ["direction"], registry=r)
        self.feedback = Counter("bastion_feedback", "Feedback by kind.", ["kind"], registry=r)
        self.responses = Counter(
            "bastion_http_responses",
            "Every response, by route and HTTP status (errors before the guard included).",
            ["route", "status"],
            registry=r,
        )
        self.sink_errors = Counter(
            "bastion_sink_errors", "Events the sink failed to take.", registry=r
        )


def tracer_provider(
    service_name: str, endpoint: str | None = None, *, env: dict[str, str] | None = None
) -> TracerProvider:
    """A provider that exports over OTLP/HTTP when an endpoint is configured, else nowhere."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    environ = os.environ if env is None else env
    endpoint = endpoint or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):  # the base endpoint, as the env variable gives it
            url += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider


def tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("bastion.serve")


def trace_id(span: Span) -> str | None:
    context = span.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def end_span(
    span: Span,
    event: Event,
    model: str,
    finish_reason: str,
    blocked_stage: str | None,
    *,
    trace_content: bool,
) -> None:
    """End an exchange's span with the GenAI attributes of its recorded event."""
    span.set_attributes(
        {
            "gen_ai.response.model": model,
            "gen_ai.response.finish_reasons": [finish_reason],
            "gen_ai.usage.input_tokens": event.prompt_tokens,
            "gen_ai.usage.output_tokens": event.completion_tokens,
            "bastion.decision": event.decision,
            "bastion.review": event.review,
            "http.response.status_code": event.status,
        }
    )
    if blocked_stage:
        span.set_attribute("bastion.blocked_stage", blocked_stage)
    if trace_content:  # the stored (redacted) texts, never more
        span.add_event("gen_ai.user.message", {"content": event.prompt})
        span.add_event("gen_ai.choice", {"content": event.response, "finish_reason": finish_reason})
    if event.error:
        span.set_attribute("error.type", str(event.status))
        span.set_status(Status(StatusCode.ERROR, event.error))
    span.end()
