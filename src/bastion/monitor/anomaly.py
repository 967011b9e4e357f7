"""The anomaly monitor: runs streaming detectors over gateway events and hands their alerts to
sinks; :func:`scan` replays history, :func:`watch` follows a live stream, and
:func:`scan_store` and :func:`watch_store` do so on the event store.

The detectors are in :mod:`bastion.monitor.detectors` (the stream and its users) and
:mod:`bastion.monitor.text_detectors` (unusual text), the sinks in :mod:`bastion.monitor.sinks`,
the ``monitor:`` configuration in :mod:`bastion.monitor.config`; their names are importable from
here too. A detector takes one :class:`~bastion.monitor.events.Event` at a time and keeps
bounded state; :class:`AnomalyMonitor` runs a set of them over a stream, keeps one alert per
incident (a cooldown per detector and user, on event time) and hands each alert to its sinks.

===============  ================================================  ===========================
detector         statistic                                         fires when (defaults)
===============  ================================================  ===========================
block_rate       Bernoulli CUSUM of per-event block flags          S > 9, tuned to 3× baseline
refusal_rate     Bernoulli CUSUM of per-event refusal flags        S > 9, tuned to 3× baseline
probing          blocked among one user's last 10 requests         ≥ 6 within 300 s
near_duplicates  one user's recent prompts this prompt nearly      ≥ 3 of the last 10 within
                 repeats (MinHash of character 4-grams)            600 s at Jaccard ≥ 0.5
attack_trend     Mann–Kendall Z of a session's last 8 attack       Z ≥ 2.7, Theil–Sen slope
                 scores                                            ≥ 0.05/turn, last ≥ 0.5
repetition       share of repeated word 3-grams in a text          > 0.5 (texts ≥ 20 words)
entropy          character entropy, bits/char: of the text; of     < 1.5; > 0.8 × log2 of the
                 its longest unbroken run (≥ 80 chars)             run's alphabet
perplexity       exp(−mean token log-prob) under a language model  > 1000 (off by default)
===============  ================================================  ===========================

On 200,000 synthetic clean events (:mod:`bastion.monitor.traffic`, ten seeds) the defaults
raised four near-duplicate alerts (users repeating a templated request), one refusal-rate
alert and nothing else; every planted anomaly was caught (see ``tests/test_monitor_anomaly.py``
for the delays).
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from bastion.monitor.config import (
    DEFAULT_LM,
    DETECTORS,
    OFF_BY_DEFAULT,
    MonitorConfig,
    WebhookConfig,
    build_detectors,
    load_config,
    parse_config,
)
from bastion.monitor.detectors import (
    LRU,
    AttackTrend,
    BlockRate,
    Detector,
    NearDuplicates,
    Probing,
    RefusalRate,
    mann_kendall_z,
    theil_sen,
)
from bastion.monitor.events import Alert, Event
from bastion.monitor.sinks import LogSink, Sink, WebhookSink
from bastion.monitor.text_detectors import (
    Entropy,
    Perplexity,
    Repetition,
    alphabet_bits,
    entropy,
    lm_scorer,
    repetition,
)

if TYPE_CHECKING:
    from bastion.monitor.store import EventStore

__all__ = [
    "DEFAULT_LM",
    "DETECTORS",
    "OFF_BY_DEFAULT",
    "AnomalyMonitor",
    "AttackTrend",
    "BlockRate",
    "Detector",
    "Entropy",
    "LogSink",
    "MonitorConfig",
    "NearDuplicates",
    "Perplexity",
    "Probing",
    "RefusalRate",
    "Repetition",
    "Sink",
    "WebhookConfig",
    "WebhookSink",
    "alphabet_bits",
    "build_detectors",
    "build_monitor",
    "entropy",
    "lm_scorer",
    "load_config",
    "mann_kendall_z",
    "new_events",
    "parse_config",
    "repetition",
    "scan",
    "scan_store",
    "theil_sen",
    "watch",
    "watch_store",
]

logger = logging.getLogger("bastion.monitor")


class AnomalyMonitor:
    """Runs detectors over events; one alert per incident per detector and user.

    An alert is held back when the same detector raised one for the same user (or, for the
    global rates, at all) less than ``cooldown_s`` seconds of event time earlier — emitted or
    held back, so an incident that keeps firing stays one alert until it has been quiet for
    ``cooldown_s``. ``suppressed`` counts the alerts held back.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        sinks: Sequence[Sink] = (),
        cooldown_s: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self.detectors = list(detectors)
        self.sinks = list(sinks)
        self.cooldown_s = cooldown_s
        self.suppressed = 0
        self._last: LRU[list[float]] = LRU(max_keys)

    def observe(self, event: Event) -> list[Alert]:
        alerts = []
        now = event.ts.timestamp()
        for detector in self.detectors:
            for alert in detector.observe(event):
                last = self._last.get((alert.detector, alert.user), lambda: [-math.inf])
                quiet = now - last[0] >= self.cooldown_s
                last[0] = now
                if quiet:
                    alerts.append(alert)
                else:
                    self.suppressed += 1
        for alert in alerts:
            self._send(alert)
        return alerts

    def run(self, events: Iterable[Event]) -> Iterator[Alert]:
        for event in events:
            yield from self.observe(event)

    def close(self) -> None:
        """Close the sinks that hold resources (the webhook's thread and connection)."""
        for sink in self.sinks:
            if isinstance(sink, WebhookSink):
                sink.close()

    def _send(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                sink(alert)
            except Exception:  # a broken sink must not stop the monitor; the log says why
                logger.exception("alert sink %r failed", sink)


def build_monitor(
    config: MonitorConfig | None = None,
    *,
    sinks: Sequence[Sink] = (),
    scorer: Callable[[str], float] | None = None,
) -> AnomalyMonitor:
    """A monitor with the configured detectors and sinks (log, webhook) plus ``sinks``."""
    config = config or MonitorConfig()
    all_sinks: list[Sink] = [LogSink()] if config.log else []
    if config.webhook is not None:
        all_sinks.append(WebhookSink(config.webhook.url, timeout_s=config.webhook.timeout_s))
    return AnomalyMonitor(
        build_detectors(config, scorer=scorer),
        sinks=[*all_sinks, *sinks],
        cooldown_s=config.cooldown_s,
    )


def scan(
    events: Iterable[Event],
    config: MonitorConfig | None = None,
    *,
    scorer: Callable[[str], float] | None = None,
) -> list[Alert]:
    """Replay history (in time order) through fresh detectors; the alerts, sent nowhere."""
    config = config or MonitorConfig()
    monitor = AnomalyMonitor(build_detectors(config, scorer=scorer), cooldown_s=config.cooldown_s)
    return list(monitor.run(events))


def watch(
    events: Iterable[Event],
    config: MonitorConfig | None = None,
    *,
    sinks: Sequence[Sink] = (),
    scorer: Callable[[str], float] | None = None,
) -> Iterator[Alert]:
    """Follow a live stream: every alert goes to the configured sinks and ``sinks`` and is
    yielded; the webhook is flushed and closed when the stream ends or the caller stops."""
    monitor = build_monitor(config, sinks=sinks, scorer=scorer)
    try:
        yield from monitor.run(events)
    finally:
        monitor.close()


def scan_store(
    store: EventStore,
    since: datetime.datetime,
    config: MonitorConfig | None = None,
    *,
    save: bool = False,
) -> list[Alert]:
    """:func:`scan` over the events stored from ``since`` on; with ``save``, each alert is
    stored too (the dashboard) and its event queued for review."""
    alerts = scan(store.iter_events(since), config)
    if save:
        for alert in alerts:
            store.add_alert(alert)
    return alerts


def new_events(
    store: EventStore, *, poll_s: float = 2.0, duration_s: float = 0.0
) -> Iterator[Event]:
    """The events that reach the store from now on, in time order, looked for every
    ``poll_s`` seconds for ``duration_s`` seconds (0: until the caller stops)."""
    ends = time.monotonic() + duration_s if duration_s else math.inf
    since, seen = datetime.datetime.now(datetime.UTC), set[str]()
    while time.monotonic() < ends:
        batch = [e for e in store.events(since=since) if e.id not in seen]
        yield from batch
        if batch:
            since = batch[-1].ts
            seen = {e.id for e in batch if e.ts == since}
        time.sleep(poll_s)


def watch_store(
    store: EventStore,
    config: MonitorConfig | None = None,
    *,
    poll_s: float = 2.0,
    duration_s: float = 0.0,
    scorer: Callable[[str], float] | None = None,
) -> Iterator[Alert]:
    """:func:`watch` over the store's :func:`new_events`: each alert also goes into the store
    (the dashboard) and its event into the review queue."""
    events = new_events(store, poll_s=poll_s, duration_s=duration_s)
    return watch(events, config, sinks=[store.add_alert], scorer=scorer)
