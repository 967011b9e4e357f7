"""``bastion monitor``: anomalies, review exports, erasure."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bastion.cli.common import (
    JournalOption,
    StoreOption,
    console,
    writable_folder,
)
from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.monitor.events import Alert

app = typer.Typer(
    help="Production monitoring: anomalies, review exports, erasure.", no_args_is_help=True
)


def _since(value: str) -> datetime.datetime:
    """``30m``, ``24h``, ``7d`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[:-1].isdigit() and value[-1:] in units:
        delta = datetime.timedelta(**{units[value[-1]]: int(value[:-1])})
        return datetime.datetime.now(datetime.UTC) - delta
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BastionError(f"--since {value!r}: expected 30m, 24h, 7d or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _alert_table(alerts: list[Alert], title: str) -> Table:
    table = Table("time", "detector", "user", "statistic", "value", "threshold", title=title)
    for a in alerts:
        table.add_row(
            a.ts.strftime("%Y-%m-%d %H:%M:%S"), a.detector, a.user or "", a.statistic,
            f"{a.value:.4g}", f"{a.threshold:.4g}",
        )  # fmt: skip
    return table


@app.command("scan")
def monitor_scan(
    store: StoreOption = "runs/bastion.db",
    since: Annotated[str, typer.Option(help="30m, 24h, 7d or an ISO time.")] = "24h",
    config: Annotated[Path | None, typer.Option(help="Monitor YAML (detectors, sinks).")] = None,
    save: Annotated[
        bool, typer.Option(help="Store the alerts (dashboard) and queue them for review.")
    ] = False,
) -> None:
    """Replay stored events through the anomaly detectors; print the alerts.

    Records no events, so it opens the store without a journal and runs beside the gateway;
    ``--save`` writes the alerts (and their review items) to the database directly."""
    from bastion.monitor.anomaly import load_config, scan_store
    from bastion.monitor.store import EventStore

    start = _since(since)
    settings = load_config(config) if config else None
    with EventStore(store, journal=False) as events:
        alerts = scan_store(events, start, settings, save=save)
    console.print(_alert_table(alerts, f"{len(alerts)} alert(s) since {start:%Y-%m-%d %H:%M}"))


@app.command("watch")
def monitor_watch(
    store: StoreOption = "runs/bastion.db",
    config: Annotated[Path | None, typer.Option(help="Monitor YAML (detectors, sinks).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks at the store.")] = 2.0,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0: never).")] = 0,
) -> None:
    """Run the detectors live on new events: alerts to the log, the webhook, the dashboard.

    Records no events, so it opens the store without a journal and runs beside the gateway;
    the alerts (and their review items) go to the database directly."""
    from bastion.monitor.anomaly import load_config, watch_store
    from bastion.monitor.store import EventStore

    if poll <= 0 or duration < 0:
        raise BastionError("--poll must be > 0 and --duration ≥ 0")
    settings = load_config(config) if config else None
    with EventStore(store, journal=False) as events:
        console.print(f"watching {store} for new events (Ctrl-C to stop)")
        for alert in watch_store(events, settings, poll_s=poll, duration_s=duration):
            console.print(
                f"[yellow]alert[/] {alert.detector} user={alert.user or '-'} "
                f"{alert.statistic} = {alert.value:.4g} (threshold {alert.threshold:.4g})"
            )


@app.command("export")
def monitor_export(
    kind: Annotated[str, typer.Option(help="preferences, sft or attacks.")],
    out: Annotated[Path, typer.Option(help="JSONL file to write.")],
    store: StoreOption = "runs/bastion.db",
) -> None:
    """Reviewed events as training data (bastion align dpo/sft) or attack seeds (guard).

    Only reads: it opens the store without a journal and runs beside the gateway."""
    from bastion.data.jsonl import write_jsonl
    from bastion.monitor.export import KINDS, export_rows
    from bastion.monitor.store import EventStore
    from bastion.monitor.web import reviewed_items

    if kind not in KINDS:
        raise BastionError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    writable_folder(out.parent, "--out")
    with EventStore(store, journal=False) as events:
        rows = export_rows(reviewed_items(events, {}), kind)
    write_jsonl(out, rows)
    console.print(f"{len(rows)} {kind} row(s) → {out}")


@app.command("erase")
def monitor_erase(
    user: Annotated[str, typer.Option(help="The user whose data goes, for good.")],
    store: StoreOption = "runs/bastion.db",
    journal: JournalOption = None,
) -> None:
    """Erase every event, feedback, review item and label of a user.

    Opens the store with its journal (the gateway's, unless ``--journal`` names another): it
    replays what a crash left there first and then deletes the erased text from it, so on
    SQLite stop the gateway first (its journal is in use while it runs)."""
    from bastion.monitor.store import EventStore

    with EventStore(store, journal=journal) as events:
        count = events.erase_user(user)
    console.print(f"erased {count} event(s) of {user}")


@app.command("purge")
def monitor_purge(
    older_than: Annotated[str, typer.Option(help="30d, 24h, … or an ISO time.")],
    store: StoreOption = "runs/bastion.db",
) -> None:
    """Retention: delete events (and what hangs on them) older than a cut-off.

    Deletes in the database only: it opens the store without a journal and runs beside the
    gateway (whose journal holds only events that are not yet written, so not old ones)."""
    from bastion.monitor.store import EventStore

    cutoff = _since(older_than)
    with EventStore(store, journal=False) as events:
        count = events.purge(cutoff)
    console.print(f"purged {count} event(s) older than {cutoff:%Y-%m-%d %H:%M}")
