"""The gateway's YAML configuration (``bastion serve --config gateway.yaml``).

```yaml
host: 127.0.0.1
port: 8000
policy: policy.yaml            # the guard policy (default: the shipped one)
upstream:                      # default: the packaged model, in process
  url: http://127.0.0.1:8001/v1   # any OpenAI-compatible server (vLLM, Ollama, a hosted API)
  model: meta-llama/Llama-3.1-8B-Instruct   # the name sent upstream (default: the client's)
  api_key_env: UPSTREAM_API_KEY
  max_retries: 2
  circuit_failures: 5          # consecutive failures that open the circuit …
  circuit_cooldown_s: 30       # … for this long, then one probe request
keys:                          # API key → user; a key may be written hashed: "sha256:<hex>"
  sk-alice-…: {user: alice, rate_per_minute: 60, role: user}
keys_file: keys.yaml           # more keys, same shape (keep it out of the repository)
store: runs/bastion.db         # the event store
journal: null                  # its journal (default: beside a SQLite file, or in the cache)
store_raw: false               # keep raw prompts/answers next to the redacted ones
review_band: 0.1               # a score this close below a blocking threshold goes to review
trace_content: false           # message text as span events
otlp_endpoint: null            # or $OTEL_EXPORTER_OTLP_ENDPOINT
access_log: false              # uvicorn's line per request (every request is an event anyway)
max_body_bytes: 4194304        # a larger request body is refused with a 413
store_max_chars: 32000         # a longer prompt or answer is stored cut, with its length and digest
```

Keys also come from ``$BASTION_API_KEYS`` (``user:KEY,user:KEY``). Errors name the file and the
key, e.g. ``gateway.yaml: upstream.max_retries: Input should be greater than or equal to 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.config import error_where, read_yaml, validate
from bastion.errors import ConfigError

Role = Literal["user", "reviewer", "admin"]
DEFAULT_REFUSAL = "I can't help with that request."


class KeyEntry(BaseModel):
    """Who an API key belongs to and how often it may call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(min_length=1)
    role: Role = "user"
    rate_per_minute: float | None = Field(60.0, gt=0)  # None: unlimited


class UpstreamConfig(BaseModel):
    """Where answers come from: an OpenAI-compatible URL, or a local model (``url: null``)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    model: str | None = None  # http: the name sent upstream; local: a packaged name or a path
    provider: str | None = None  # gen_ai.provider.name (default: openai / transformers)
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(2, ge=0)
    backoff_s: float = Field(0.25, ge=0)
    max_backoff_s: float = Field(8.0, ge=0)
    circuit_failures: int = Field(5, ge=1)
    circuit_cooldown_s: float = Field(30.0, gt=0)
    concurrency: int = Field(64, ge=1)
    max_tokens: int = Field(256, ge=1)  # when the client does not say
    device: str | None = None  # local model only


class GatewayConfig(BaseModel):
    """Everything ``bastion serve`` reads; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    policy: Path | None = None
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    keys: dict[str, KeyEntry] = Field(default_factory=dict)
    keys_file: Path | None = None
    keys_env: str = "BASTION_API_KEYS"
    store: str = "runs/bastion.db"
    journal: Path | None = None  # None: <file>.journal for SQLite, the Bastion cache for a server
    store_raw: bool = False
    review_band: float = Field(0.1, ge=0, le=1)
    refusal_text: str = DEFAULT_REFUSAL
    trace_content: bool = False
    otlp_endpoint: str | None = None
    service_name: str = "bastion-gateway"
    models: list[str] = Field(default_factory=list)  # for GET /v1/models (default: upstream's)
    access_log: bool = False  # uvicorn's line per request; the store has every request anyway
    max_body_bytes: int = Field(4 * 2**20, ge=1024)  # a larger request body is a 413
    store_max_chars: int = Field(32_000, ge=256)  # a longer text is stored cut, with its digest


def load_config(path: str | Path | None = None) -> GatewayConfig:
    """Read and validate a gateway file (the defaults when ``path`` is None); relative paths
    in it (policy, keys_file, journal) are taken from the file's folder."""
    if path is None:
        return GatewayConfig()
    path = Path(path)
    raw = read_yaml(path, "the gateway config")
    config = parse_config(raw if raw is not None else {}, source=str(path))
    base = path.parent
    for name in ("policy", "keys_file", "journal"):
        value = getattr(config, name)
        if value is not None and not value.is_absolute():
            setattr(config, name, base / value)
    return config


def parse_config(raw: Any, *, source: str = "gateway config") -> GatewayConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the gateway config must be a mapping")
    return validate(GatewayConfig, raw, source, rename=_hide_keys)


def read_keys_file(path: Path) -> dict[str, KeyEntry]:
    """A YAML mapping of keys (raw or ``sha256:<hex>``) to entries, as under ``keys:``."""
    raw = read_yaml(path, "the keys file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the keys file must map keys to {{user, role, ...}}")
    keys = {}
    for key, entry in raw.items():
        try:
            keys[str(key)] = KeyEntry.model_validate(entry)
        except ValidationError as exc:
            where, message = error_where(exc, prefix=(key_hint(str(key)),))
            raise ConfigError(f"{path}: {where}: {message}") from None
    return keys


def key_hint(key: str) -> str:
    """A key as error messages show it: its first characters only (never the secret)."""
    return f"{key[:6]}…" if len(key) > 6 else "…"


def _hide_keys(loc: list[str | int]) -> list[str | int]:
    if len(loc) > 1 and loc[0] == "keys":  # an API key is a secret: name only its start
        loc[1] = key_hint(str(loc[1]))
    return loc
