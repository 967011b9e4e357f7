"""Production monitoring: the event store every gateway exchange goes into, the anomaly
detectors that watch it, and the review queue whose labels export as training data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.exports import lazy_exports

if TYPE_CHECKING:
    from bastion.monitor.anomaly import (
        AnomalyMonitor,
        build_monitor,
        scan,
        scan_store,
        watch,
        watch_store,
    )
    from bastion.monitor.config import (
        DETECTORS,
        MonitorConfig,
        build_detectors,
        load_config,
        parse_config,
    )
    from bastion.monitor.detectors import (
        AttackTrend,
        BlockRate,
        Detector,
        NearDuplicates,
        Probing,
        RefusalRate,
    )
    from bastion.monitor.events import Alert, Event, Feedback
    from bastion.monitor.sinks import LogSink, WebhookSink
    from bastion.monitor.store import Bucket, EventStore, Label, ReviewItem, StoreError
    from bastion.monitor.text_detectors import Entropy, Perplexity, Repetition, lm_scorer

# each public name and the module it comes from, imported on first use (importing one module
# of the package does not load every part of it)
_HOMES = {
    "Alert": "bastion.monitor.events",
    "AnomalyMonitor": "bastion.monitor.anomaly",
    "AttackTrend": "bastion.monitor.detectors",
    "BlockRate": "bastion.monitor.detectors",
    "Bucket": "bastion.monitor.store",
    "DETECTORS": "bastion.monitor.config",
    "Detector": "bastion.monitor.detectors",
    "Entropy": "bastion.monitor.text_detectors",
    "Event": "bastion.monitor.events",
    "EventStore": "bastion.monitor.store",
    "Feedback": "bastion.monitor.events",
    "Label": "bastion.monitor.store",
    "LogSink": "bastion.monitor.sinks",
    "MonitorConfig": "bastion.monitor.config",
    "NearDuplicates": "bastion.monitor.detectors",
    "Perplexity": "bastion.monitor.text_detectors",
    "Probing": "bastion.monitor.detectors",
    "RefusalRate": "bastion.monitor.detectors",
    "Repetition": "bastion.monitor.text_detectors",
    "ReviewItem": "bastion.monitor.store",
    "StoreError": "bastion.monitor.store",
    "WebhookSink": "bastion.monitor.sinks",
    "build_detectors": "bastion.monitor.config",
    "build_monitor": "bastion.monitor.anomaly",
    "lm_scorer": "bastion.monitor.text_detectors",
    "load_config": "bastion.monitor.config",
    "parse_config": "bastion.monitor.config",
    "scan": "bastion.monitor.anomaly",
    "scan_store": "bastion.monitor.anomaly",
    "watch": "bastion.monitor.anomaly",
    "watch_store": "bastion.monitor.anomaly",
}

__all__ = [
    "DETECTORS",
    "Alert",
    "AnomalyMonitor",
    "AttackTrend",
    "BlockRate",
    "Bucket",
    "Detector",
    "Entropy",
    "Event",
    "EventStore",
    "Feedback",
    "Label",
    "LogSink",
    "MonitorConfig",
    "NearDuplicates",
    "Perplexity",
    "Probing",
    "RefusalRate",
    "Repetition",
    "ReviewItem",
    "StoreError",
    "WebhookSink",
    "build_detectors",
    "build_monitor",
    "lm_scorer",
    "load_config",
    "parse_config",
    "scan",
    "scan_store",
    "watch",
    "watch_store",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
