"""The gateway as a FastAPI app: :func:`create_app`.

Routes: ``POST /v1/chat/completions`` (JSON or SSE stream), ``GET /v1/models``,
``POST /v1/feedback``, ``GET /healthz`` and ``GET /metrics`` (Prometheus). The ``/v1`` routes
take ``Authorization: Bearer KEY``; chat requests also spend from the key's rate limit. Every
error has the OpenAI shape (``{"error": {"message", "type", "param", "code"}}``), so the
official SDKs raise their usual exceptions (``AuthenticationError``, ``RateLimitError`` …).
The chat route is a plain Starlette route, left out of the app's OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from bastion import __version__
from bastion.errors import ConfigError
from bastion.guard.pipeline import Guard
from bastion.monitor.events import Feedback, UnknownEventError
from bastion.monitor.journal import JournalError
from bastion.monitor.web import Reviewer, Sessions, review_router
from bastion.serve import flows
from bastion.serve.auth import KeyRing, Principal, RateLimiter
from bastion.serve.circuit import CircuitBreaker
from bastion.serve.config import GatewayConfig, UpstreamConfig
from bastion.serve.errors import ApiError, Guarded, http_error, parse
from bastion.serve.exchange import Gateway
from bastion.serve.schema import ChatRequest, FeedbackRequest, error_body, now, session_of
from bastion.serve.sink import EventSink
from bastion.serve.telemetry import Metrics, tracer, tracer_provider
from bastion.serve.upstream import HTTPUpstream, Upstream, UpstreamFailure


def create_app(
    config: GatewayConfig | None = None,
    *,
    sink: EventSink,
    upstream: Upstream | None = None,
    guard: Guard | None = None,
    keys: KeyRing | None = None,
    limiter: RateLimiter | None = None,
    traces: TracerProvider | None = None,
) -> FastAPI:
    """The gateway. What is not passed is built from ``config``: the guard from its policy
    (default: the shipped one), the upstream (default: the packaged model, loaded here), the
    keys, and a tracer provider that exports over OTLP when an endpoint is configured."""
    config = config or GatewayConfig()
    keys = keys if keys is not None else KeyRing.from_config(config)
    if not len(keys):
        raise ConfigError(
            "keys: no API keys configured (add keys:, keys_file: or $BASTION_API_KEYS)"
        )
    guard = guard or (Guard.from_policy(config.policy) if config.policy else Guard.default())
    upstream = upstream or build_upstream(config.upstream)
    owned_traces = traces is None
    provider = traces or tracer_provider(config.service_name, config.otlp_endpoint)
    metrics = Metrics()
    limiter = limiter or RateLimiter()
    gw = Gateway(
        guard=guard,
        upstream=upstream,
        sink=sink,
        config=config,
        metrics=metrics,
        tracer=tracer(provider),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await upstream.aclose()
        if owned_traces:
            provider.shutdown()

    app = FastAPI(title="Bastion gateway", version=__version__, lifespan=lifespan)
    app.state.gateway = gw
    app.add_middleware(Guarded, limit=config.max_body_bytes, metrics=metrics)
    limit = config.max_body_bytes

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if exc.status in (401, 429):
            metrics.requests.labels("none", str(exc.status), "unknown").inc()
        return exc.response()

    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        body = error_body(f"internal error: {type(exc).__name__}", type="server_error")
        return JSONResponse(body, status_code=500)  # the traceback goes to the server log

    def authenticate(request: Request) -> Principal:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401, "missing API key: send Authorization: Bearer KEY", code="missing_api_key"
            )
        principal = keys.authenticate(key.strip())
        if principal is None:
            raise ApiError(401, "invalid API key", code="invalid_api_key")
        return principal

    def spend(principal: Principal) -> None:
        """One request from the key's rate limit (chat and feedback alike), or a 429."""
        wait = limiter.take(principal)
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of {principal.rate_per_minute:g} requests a minute reached; "
                f"retry in {wait:.1f} s",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(math.ceil(wait))},
            )

    async def chat_completions(request: Request) -> Response:
        principal = authenticate(request)
        spend(principal)
        body = await parse(request, ChatRequest, limit)
        session = session_of(request.headers, body)
        ex = gw.begin(body, principal, session, extract(request.headers))
        return await (flows.stream if body.stream else flows.complete)(gw, ex)

    # a plain Starlette route: the endpoint reads the request itself, so FastAPI's dependency
    # solving would only add its own time to the busiest path (0.2-0.4 ms of CPU a request);
    # it is therefore not in /openapi.json (OpenAI's API reference is its schema)
    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        """The configured names, else the upstream's model, else the upstream's own list."""
        authenticate(request)
        names = config.models or [n for n in (config.upstream.model,) if n]
        if not names and isinstance(upstream, HTTPUpstream):
            try:
                names = await upstream.list_models()
            except UpstreamFailure as exc:
                raise ApiError(502, str(exc), type="server_error", code=exc.code) from None
        elif not names:
            names = [n for n in (default_model(config),) if n]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": now(), "owned_by": "bastion"} for n in names
            ],
        }

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        principal = authenticate(request)
        spend(principal)
        body = await parse(request, FeedbackRequest, limit)
        item = Feedback(body.event_id, principal.user, body.kind, body.comment)
        try:  # the event store journals it and answers alike for any id (settled later)
            await asyncio.to_thread(sink.add_feedback, item)
        except UnknownEventError:  # a sink that checks at once (MemorySink)
            raise ApiError(
                404, f"event_id: no event {body.event_id!r} of yours", code="event_not_found"
            ) from None
        except (TimeoutError, JournalError):  # the store could not take it
            raise ApiError(
                503,
                "the event store is not keeping up; send the feedback again later",
                type="server_error",
                code="store_unavailable",
                headers={"retry-after": "5"},
            ) from None
        metrics.feedback.labels(body.kind).inc()
        return {"id": item.id, "object": "feedback", "event_id": item.event_id, "kind": item.kind}

    @app.get("/healthz")
    async def healthz() -> Response:
        """ok; degraded while the circuit probes the upstream; 503 while it is open (the
        gateway answers nothing but errors then: a load balancer should look elsewhere)."""
        circuit = upstream.circuit_state
        status = {"open": "unavailable", "half_open": "degraded"}.get(circuit, "ok")
        body = {"status": status, "version": __version__, "circuit": circuit}
        return JSONResponse(body, status_code=503 if circuit == "open" else 200)

    if hasattr(sink, "review_items"):  # the event store: the review queue and dashboard too
        app.include_router(review_router(sink, review_sessions(keys)))

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.circuit.state(upstream.circuit_state)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def review_sessions(keys: KeyRing) -> Sessions:
    """Reviewers sign in to the review pages with their API key (role reviewer or admin)."""

    def lookup(token: str) -> Reviewer | None:
        principal = keys.authenticate(token)
        return Reviewer(principal.user, principal.role) if principal else None

    roles = {p.user: p.role for p in keys.principals() if p.role in ("reviewer", "admin")}
    return Sessions(lookup, roles)


def default_model(config: GatewayConfig) -> str | None:
    if config.upstream.url is not None:
        return None
    from bastion.models.packaged import DEFAULT_CHAT_MODEL

    return DEFAULT_CHAT_MODEL


def build_upstream(config: UpstreamConfig) -> Upstream:
    """An HTTP upstream for a URL, else the configured (default: packaged) model in process."""
    import os

    if config.url is not None:
        return HTTPUpstream(
            config.url,
            model=config.model,
            api_key=os.environ.get(config.api_key_env),
            provider=config.provider or "openai",
            timeout=config.timeout_s,
            connect_timeout=config.connect_timeout_s,
            max_retries=config.max_retries,
            backoff=config.backoff_s,
            max_backoff=config.max_backoff_s,
            breaker=CircuitBreaker(
                failures=config.circuit_failures, cooldown=config.circuit_cooldown_s
            ),
            concurrency=config.concurrency,
        )
    from bastion.models.packaged import DEFAULT_CHAT_MODEL, load
    from bastion.serve.local import ModelUpstream

    model = load(config.model or DEFAULT_CHAT_MODEL, device=config.device)
    return ModelUpstream(model, max_tokens=config.max_tokens, provider=config.provider)
