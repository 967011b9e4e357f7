"""``bastion serve``: the config, the event store, a dev key when none is configured, uvicorn."""

from __future__ import annotations

import logging
import secrets
import signal
from collections.abc import Callable
from pathlib import Path

from bastion.serve.app import create_app
from bastion.serve.auth import KeyRing
from bastion.serve.config import GatewayConfig, KeyEntry, load_config
from bastion.serve.sink import EventSink, JsonlSink

logger = logging.getLogger("bastion.serve")


def open_sink(config: GatewayConfig) -> EventSink:
    """The event store at ``config.store`` with its journal (``config.journal``, by default
    one that follows from the store); a JSONL file next to it only if the store's module
    cannot be imported (say, a missing database driver), and loudly."""
    try:
        from bastion.monitor.store import EventStore
    except ImportError as exc:
        path = Path(config.store).with_suffix(".events.jsonl")
        logger.warning("the event store is unavailable (%s): writing events to %s", exc, path)
        return JsonlSink(path)
    store = EventStore(config.store, journal=config.journal)
    logger.info("event journal: %s", store.journal)
    return store


def dev_keys() -> tuple[KeyRing, str]:
    """A one-run admin key, for trying the gateway out."""
    key = f"bst-dev-{secrets.token_urlsafe(24)}"
    return KeyRing({key: KeyEntry(user="dev", role="admin", rate_per_minute=None)}), key


def run(
    config_path: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    upstream: str | None = None,
    policy: Path | None = None,
    journal: Path | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    import uvicorn

    from bastion.serve.wire import CoalescingHttpProtocol

    config = load_config(config_path)
    if host is not None:
        config.host = host
    if port is not None:
        config.port = port
    if upstream is not None:
        config.upstream.url = upstream
    if policy is not None:
        config.policy = policy
    if journal is not None:
        config.journal = journal
    keys = KeyRing.from_config(config)
    if not len(keys):
        keys, key = dev_keys()
        echo(f"no API keys configured; a key for this run only (user dev): {key}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    where = config.upstream.url or f"{config.upstream.model or 'the packaged model'}, in process"
    echo(f"loading the guard and the upstream ({where}) …")
    sink = open_sink(config)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; by default that
    # kills the process before the ``finally`` below closes the sink. As an exception (what
    # Ctrl-C's SIGINT already is), it lets the store flush and close.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app = create_app(config, sink=sink, keys=keys)
        echo(f"bastion gateway: http://{config.host}:{config.port}/v1 · events: {config.store}")
        uvicorn.run(
            app,
            host=config.host,
            port=config.port,
            log_level="info",
            access_log=config.access_log,
            http=CoalescingHttpProtocol,
        )
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
