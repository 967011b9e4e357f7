"""The gateway (``bastion serve``): an OpenAI-compatible API that puts the guard in front of
any model and records every exchange, redacted, for the monitor."""

from bastion.serve.app import create_app
from bastion.serve.auth import KeyRing, Principal, RateLimiter
from bastion.serve.circuit import CircuitBreaker
from bastion.serve.config import GatewayConfig, load_config
from bastion.serve.local import ModelUpstream
from bastion.serve.sink import EventSink, JsonlSink, MemorySink, ReviewQueue
from bastion.serve.upstream import (
    Completion,
    Delta,
    HTTPUpstream,
    Upstream,
    UpstreamFailure,
    UpstreamRequest,
)

__all__ = [
    "CircuitBreaker",
    "Completion",
    "Delta",
    "EventSink",
    "GatewayConfig",
    "HTTPUpstream",
    "JsonlSink",
    "KeyRing",
    "MemorySink",
    "ModelUpstream",
    "Principal",
    "RateLimiter",
    "ReviewQueue",
    "Upstream",
    "UpstreamFailure",
    "UpstreamRequest",
    "create_app",
    "load_config",
]
