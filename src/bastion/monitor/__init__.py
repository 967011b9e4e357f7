"""Production monitoring: the event store every gateway exchange goes into, the anomaly
detectors that watch it, and the review queue whose labels export as training data."""

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
