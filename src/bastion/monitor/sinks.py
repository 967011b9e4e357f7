"""Where the anomaly monitor sends its alerts: the log (:class:`LogSink`) and a webhook
(:class:`WebhookSink`); any callable taking an :class:`~bastion.monitor.events.Alert` is a
sink too (the event store's ``add_alert``, for one)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import httpx

from bastion.monitor.events import Alert

logger = logging.getLogger("bastion.monitor")

Sink = Callable[[Alert], object]  # e.g. store.add_alert; what it returns is ignored


class LogSink:
    """Logs each alert at ``level`` on the ``bastion.monitor`` logger."""

    def __init__(self, level: int = logging.WARNING) -> None:
        self.level = level

    def __call__(self, alert: Alert) -> None:
        logger.log(
            self.level,
            "anomaly %s: %s = %.4g (threshold %.4g) user=%s event=%s",
            alert.detector, alert.statistic, alert.value, alert.threshold, alert.user,
            alert.event_id,
        )  # fmt: skip


class WebhookSink:
    """POSTs each alert as JSON (:meth:`Alert.to_dict`) from a background thread.

    Calling it only queues the alert: a slow or dead endpoint never blocks or raises into the
    monitor. Failures are logged and counted (``failed``); when ``max_queue`` alerts are
    waiting, new ones are dropped and counted (``dropped``). :meth:`close` sends what is queued
    and stops the thread.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0, max_queue: int = 1000) -> None:
        self.url = url
        self.sent = self.failed = self.dropped = 0
        self._client = httpx.Client(timeout=timeout_s)
        self._queue: queue.Queue[Alert | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._work, name="bastion-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            logger.warning("webhook %s: queue full, alert %s dropped", self.url, alert.id)

    def flush(self) -> None:
        """Wait until every queued alert was sent or failed."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._client.close()

    def _work(self) -> None:
        while (alert := self._queue.get()) is not None:
            try:
                self._client.post(self.url, json=alert.to_dict()).raise_for_status()
                self.sent += 1
            except httpx.HTTPError as exc:
                self.failed += 1
                logger.warning("webhook %s: alert %s not delivered (%s)", self.url, alert.id, exc)
            except Exception:  # a bug here must not kill the thread and stall the queue
                self.failed += 1
                logger.exception("webhook %s: alert %s not delivered", self.url, alert.id)
            finally:
                self._queue.task_done()
        self._queue.task_done()
