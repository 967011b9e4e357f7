"""The monitor's configuration: the ``monitor:`` section of a YAML file (:class:`MonitorConfig`,
:func:`parse_config`, :func:`load_config`), and the detectors it names, built fresh
(:data:`DETECTORS`, :func:`build_detectors`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bastion.config import error_where, read_yaml, validate
from bastion.errors import ConfigError
from bastion.monitor.detectors import (
    AttackTrend,
    BlockRate,
    Detector,
    NearDuplicates,
    Probing,
    RefusalRate,
)
from bastion.monitor.text_detectors import Entropy, Perplexity, Repetition, lm_scorer

DETECTORS: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (
        BlockRate,
        RefusalRate,
        Probing,
        NearDuplicates,
        AttackTrend,
        Repetition,
        Entropy,
        Perplexity,
    )
}
OFF_BY_DEFAULT = frozenset({"perplexity"})
DEFAULT_LM = "smollm2-135m-instruct"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    timeout_s: float = Field(5.0, gt=0)


class MonitorConfig(BaseModel):
    """The ``monitor:`` section: cooldown, state cap, sinks, and per-detector options.

    ``detectors`` maps a detector name to its options plus ``enabled`` (every detector but
    ``perplexity`` is on by default; ``perplexity`` also takes ``model``, the packaged model
    that scores, default ``smollm2-135m-instruct``). ``max_keys`` caps each detector's
    per-user or per-session state unless its own options set it.
    """

    model_config = ConfigDict(extra="forbid")

    cooldown_s: float = Field(300.0, ge=0)
    max_keys: int = Field(10_000, ge=1)
    log: bool = True
    webhook: WebhookConfig | None = None
    detectors: dict[str, dict[str, Any] | None] = Field(default_factory=dict)


def parse_config(raw: Mapping[str, Any] | None, *, source: str = "monitor") -> MonitorConfig:
    """Validate a ``monitor:`` section; a :class:`ConfigError` names the bad key."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: must be a mapping, got {type(raw).__name__}")
    config = validate(MonitorConfig, raw or {}, source, brackets=False)
    build_detectors(config, scorer=lambda text: 0.0, source=source)  # checks their options
    return config


def load_config(path: str | Path) -> MonitorConfig:
    """A YAML file: its ``monitor:`` section when it has one, else the whole file."""
    raw = read_yaml(Path(path), "the monitor config") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the monitor config must be a mapping")
    section = raw.get("monitor", raw)
    return parse_config(section, source=f"{path}: monitor" if "monitor" in raw else str(path))


def build_detectors(
    config: MonitorConfig,
    *,
    scorer: Callable[[str], float] | None = None,
    source: str = "monitor",
) -> list[Detector]:
    """Fresh detectors for the enabled entries (``scorer`` for perplexity; by default the
    configured packaged model, loaded here)."""
    unknown = sorted(set(config.detectors) - set(DETECTORS))
    if unknown:
        known = ", ".join(DETECTORS)
        raise ConfigError(f"{source}: detectors.{unknown[0]}: unknown (known: {known})")
    detectors = []
    for name, cls in DETECTORS.items():
        options = dict(config.detectors.get(name) or {})
        enabled = options.pop("enabled", name not in OFF_BY_DEFAULT)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{source}: detectors.{name}.enabled: must be true or false")
        if not enabled:
            continue
        if "max_keys" in cls.__dataclass_fields__:
            options.setdefault("max_keys", config.max_keys)
        if name == "perplexity":
            model = options.pop("model", DEFAULT_LM)
            options["scorer"] = scorer or _packaged_scorer(model)
        try:
            detectors.append(TypeAdapter(cls).validate_python(options))
        except ValidationError as exc:
            where, message = error_where(exc, brackets=False, prefix=("detectors", name))
            raise ConfigError(f"{source}: {where}: {message}") from None
    return detectors


def _packaged_scorer(name: str) -> Callable[[str], float]:
    from bastion.models import load  # torch and transformers: only when perplexity is on

    return lm_scorer(load(name))
