"""The gateway's configuration, keys, rate limits, review band and sinks, without a server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.guard.pipeline import Decision
from bastion.guard.policy import parse_policy
from bastion.guard.result import ScanResult
from bastion.monitor.events import Event, Feedback
from bastion.serve import JsonlSink, KeyRing, RateLimiter, load_config
from bastion.serve.config import GatewayConfig, KeyEntry
from bastion.serve.record import near_threshold


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert (config.host, config.port, config.store) == ("127.0.0.1", 8000, "runs/bastion.db")
    assert config.upstream.url is None and not config.store_raw and config.review_band == 0.1


def test_a_config_file_is_read_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "port: 9000\npolicy: policy.yaml\nupstream: {url: 'http://x/v1', max_retries: 0}\n"
        "keys: {sk-a: {user: alice, role: reviewer}}\n",
    )
    config = load_config(path)
    assert config.port == 9000 and config.policy == tmp_path / "policy.yaml"
    assert config.upstream.max_retries == 0 and config.keys["sk-a"].role == "reviewer"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upstream: {max_retries: -1}", "upstream.max_retries: Input should be greater than"),
        ("upstream: {retries: 3}", "upstream.retries: Extra inputs are not permitted"),
        ("review_band: 2", "review_band: Input should be less than or equal to 1"),
        ("keys: {sk-secret-key: {user: a, role: god}}", "keys.sk-sec….role: Input should be"),
        ("- a list", "the gateway config must be a mapping"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "sk-secret-key" not in str(caught.value)  # an API key is never echoed


def test_the_cli_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    expected = f"error: {path}: port: Input should be less than or equal to 65535"
    assert result.stderr.strip() == expected


def test_keys_plain_hashed_from_a_file_and_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = "sha256:" + hashlib.sha256(b"sk-hidden").hexdigest()
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(f"'{hashed}': {{user: bob, role: admin, rate_per_minute: 5}}\n")
    monkeypatch.setenv("BASTION_API_KEYS", "dave:sk-env")
    config = GatewayConfig(keys={"sk-plain": KeyEntry(user="alice")}, keys_file=keys_file)
    ring = KeyRing.from_config(config)
    assert len(ring) == 3
    alice, bob, dave = (ring.authenticate(k) for k in ("sk-plain", "sk-hidden", "sk-env"))
    assert alice is not None and alice.user == "alice" and alice.role == "user"
    assert bob is not None and (bob.user, bob.role, bob.rate_per_minute) == ("bob", "admin", 5)
    assert dave is not None and dave.user == "dave"
    assert ring.authenticate("sk-plai") is None and ring.authenticate("") is None
    assert alice.key_id != bob.key_id


def test_a_malformed_hashed_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a sha256 hex digest"):
        KeyRing({"sha256:zz": KeyEntry(user="x")})


def test_the_token_bucket_allows_a_burst_then_one_per_interval() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    principal = KeyRing({"k": KeyEntry(user="u", rate_per_minute=60)}).authenticate("k")
    assert principal is not None
    assert all(limiter.take(principal) == 0 for _ in range(60))  # a minute's burst
    assert limiter.take(principal) == pytest.approx(1.0)  # then one a second
    now[0] = 0.5
    assert limiter.take(principal) == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.take(principal) == 0
    unlimited = KeyRing({"k": KeyEntry(user="u", rate_per_minute=None)}).authenticate("k")
    assert unlimited is not None and all(limiter.take(unlimited) == 0 for _ in range(500))


def test_the_review_band_catches_near_misses_below_a_threshold() -> None:
    policy = parse_policy(
        {
            "input": [
                {"scanner": "blocklist", "phrases": ["x"], "threshold": 0.5, "action": "block"},
                {"scanner": "secrets", "action": "mask"},
                {"scanner": "length", "max_chars": 10, "action": "block"},  # runs first
            ]
        }
    )

    def decision(blocklist: float, secrets: float, length: float) -> Decision:
        results = (  # the pipeline's order: raw-text rails (length) first
            ScanResult("length", length, length >= 0.5),
            ScanResult("blocklist", blocklist, blocklist >= 0.5),
            ScanResult("secrets", secrets, secrets >= 0.5),
        )
        return Decision("allow", "t", results, "input", 0.0)

    assert near_threshold(decision(0.45, 0.0, 0.0), policy.input, 0.1) == ["blocklist"]
    assert near_threshold(decision(0.40, 0.0, 0.0), policy.input, 0.1) == ["blocklist"]
    assert near_threshold(decision(0.39, 0.0, 0.0), policy.input, 0.1) == []
    assert near_threshold(decision(0.0, 0.45, 0.0), policy.input, 0.1) == []  # mask: no review
    assert near_threshold(decision(0.0, 0.0, 0.45), policy.input, 0.1) == ["length"]
    assert near_threshold(decision(0.6, 0.0, 0.0), policy.input, 0.1) == []  # blocked: decided
    assert near_threshold(decision(0.45, 0.0, 0.0), policy.input, 0.0) == []


def test_the_jsonl_sink_writes_one_line_per_record(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "runs" / "events.jsonl")
    event = Event(user="u", model="m", prompt="p", response="r", decision="allow")
    sink.record(event)
    sink.add_feedback(Feedback(event.id, "u", "thumbs_up"))
    sink.enqueue_review(event.id, "review_band")
    sink.close()
    lines = (tmp_path / "runs" / "events.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["type"] for r in rows] == ["event", "feedback", "review"]
    assert Event.from_dict({k: v for k, v in rows[0].items() if k != "type"}) == event


def test_spans_are_exported_only_when_an_endpoint_is_configured() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from bastion.serve.telemetry import tracer_provider

    quiet = tracer_provider("svc", None, env={})
    assert quiet._active_span_processor._span_processors == ()
    loud = tracer_provider(
        "svc", None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    )
    (processor,) = loud._active_span_processor._span_processors
    assert isinstance(processor, BatchSpanProcessor)
    assert processor._batch_processor._exporter._endpoint == "http://collector:4318/v1/traces"
    assert loud.resource.attributes["service.name"] == "svc"
    loud.shutdown()
