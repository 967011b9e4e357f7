"""How the review pages look: the page shell with its one stylesheet and the headers that
go with it, the tables and the inline-SVG charts. Functions return HTML text; everything from
the database goes through :func:`escape`.

The Content-Security-Policy allows that stylesheet by its SHA-256 and nothing else to load
(``data:`` only for the empty favicon); inline SVG needs no permission. So a style attribute
or a script added to a page is refused by the browser: give it a class in :data:`STYLE`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse

from bastion.monitor.events import Feedback
from bastion.monitor.export import KINDS, ReviewedItem, agreement

if TYPE_CHECKING:
    from bastion.monitor.web import Reviewer

STAGES = ("input", "output", "context")  # bastion.guard.policy's, without loading the scanners


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def short(text: str | None, n: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def error_page(status: int, title: str, message: str) -> HTMLResponse:
    return HTMLResponse(layout(title, f"<p class='error'>{escape(message)}</p>"), status)


def pager(status: str, reason: str, page: int, *, more: bool, empty: bool) -> str:
    """Links to the neighbouring pages of the queue: "next" only when there is one."""

    def link(number: int, text: str, id_: str) -> str:
        query = urlencode({"status": status, "reason": reason, "page": number})
        return f"<a href='/review?{escape(query)}' id='{id_}'>{text}</a>"

    links = []
    if page > 1:  # past the end, "previous" would be empty too: back to the start instead
        links.append(link(1, "first page", "first-page") if empty else
                     link(page - 1, "previous page", "previous-page"))  # fmt: skip
    if more:
        links.append(link(page + 1, "next page", "next-page"))
    return f"<p class='pager'>Page {page}{''.join(' · ' + x for x in links)}</p>"


def scanner_table(inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        _scanner_row(result, origin)
        for origin, results in (("input", inputs), ("output", outputs))
        for result in results
    )
    if not rows:
        return "<p>No scanner results.</p>"
    return (
        "<table id='scanners'><thead><tr><th>stage</th><th>scanner</th><th>score</th>"
        f"<th>flagged</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _scanner_row(result: Mapping[str, Any], origin: str) -> str:
    """One scanner result; its stage is the list it came from unless the result names one
    (context findings from a conversation's tool messages), and the message it was on, when
    the result says (a whole conversation went through the rails)."""
    stage = result["stage"] if result.get("stage") in STAGES else origin
    where = ""
    if "message" in result or "role" in result:
        role, index = result.get("role", ""), result.get("message", "?")
        where = f" <small>{escape(str(role))} message {escape(str(index))}</small>"
    score = result.get("score")
    return (
        f"<tr class='stage-{stage}'><td><span class='stage'>{stage}</span>{where}</td>"
        f"<td>{escape(str(result.get('scanner')))}</td>"
        f"<td class='score' title='{escape(str(score))}'>{escape(_score(score))}</td>"
        f"<td>{'yes' if result.get('flagged') else ''}</td></tr>"
    )


def _score(value: Any) -> str:
    """Three significant digits (0.00911, 0.5, 1), no exponent: scores are in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "—" if value is None else str(value)
    if 0 < abs(value) < 0.001:
        return "<0.001"
    return f"{value:.3g}"


def feedback_list(reports: Sequence[Feedback]) -> str:
    if not reports:
        return "<h3>User feedback</h3><p id='feedback'>None.</p>"
    items = "".join(
        f"<li><b class='kind'>{escape(f.kind)}</b> from {escape(f.user)} at "
        f"{escape(f.ts.strftime('%Y-%m-%d %H:%M'))}"
        + (f": <span class='comment'>{escape(f.comment)}</span>" if f.comment else " (no comment)")
        + "</li>"
        for f in reports
    )
    return f"<h3>User feedback</h3><ul id='feedback'>{items}</ul>"


def rate(part: int, total: int) -> str:
    return f"{part / total:.1%}" if total else "—"


def span(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def agreement_html(items: list[ReviewedItem]) -> str:
    report = agreement(items)
    if not report["pairs"]:
        return "<p class='kappa'>Agreement: no item has two reviewers yet.</p>"
    cells = "".join(
        f"<tr><td>{escape(' & '.join(p['reviewers']))}</td><td>{p['items']}</td>"
        f"<td>{_kappa(p['kappa'])}</td></tr>"
        for p in report["pairs"]
    )
    mean = report["mean_kappa"]
    head = f"mean κ {mean:.2f}" if mean is not None else "κ needs two shared items"
    return (
        f"<details class='kappa' open><summary>Inter-annotator agreement (Cohen's κ): "
        f"<b id='kappa'>{head}</b></summary><table><thead><tr><th>reviewers</th>"
        f"<th>shared items</th><th>κ</th></tr></thead><tbody>{cells}</tbody></table></details>"
    )


def _kappa(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _points(values: Sequence[float], top: float, width: int, height: int) -> Iterator[str]:
    step = width / max(len(values) - 1, 1)
    for i, v in enumerate(values):
        yield f"{i * step:.1f},{height - (v / top if top else 0) * height:.1f}"


@dataclass(frozen=True)
class Series:
    """One line of a chart; drawn in the order given, so a later one lies on top."""

    name: str
    values: Sequence[float]
    colour: str
    width: int = 2
    dash: str | None = None  # an SVG stroke-dasharray, e.g. "6 4"


def line_chart(series: Sequence[Series], *, fraction: bool = False) -> str:
    width, height = 720, 160
    top = 1.0 if fraction else max((max(s.values, default=0) for s in series), default=0) or 1.0
    lines = "".join(
        f"<polyline class='series-{s.name}' fill='none' stroke='{s.colour}' "
        f"stroke-width='{s.width}' stroke-linejoin='round'"
        + (f" stroke-dasharray='{s.dash}'" if s.dash else "")
        + f" points='{' '.join(_points(s.values, top, width, height))}'/>"
        for s in series
        if s.values
    )
    label = "100%" if fraction else f"{top:g}"
    return (
        f"<svg class='chart' viewBox='-40 -10 {width + 50} {height + 30}' role='img'>"
        f"<line x1='0' y1='{height}' x2='{width}' y2='{height}' stroke='#999'/>"
        f"<line x1='0' y1='0' x2='0' y2='{height}' stroke='#999'/>"
        f"<text x='-36' y='8' font-size='11'>{label}</text>"
        f"<text x='-14' y='{height}' font-size='11'>0</text>{lines}</svg>"
    )


def bar_chart(counts: Sequence[tuple[str, int]]) -> str:
    if not counts:
        return "<p>No flagged categories.</p>"
    top = max(n for _, n in counts)
    rows = "".join(
        f"<g transform='translate(0,{i * 24})'>"
        f"<text x='0' y='15' font-size='12'>{escape(name)}</text>"
        f"<rect x='180' y='3' height='16' width='{400 * n / top:.1f}' fill='#7c3aed'/>"
        f"<text x='{186 + 400 * n / top:.1f}' y='15' font-size='12'>{n}</text></g>"
        for i, (name, n) in enumerate(counts)
    )
    return f"<svg class='chart' viewBox='0 0 640 {24 * len(counts)}' role='img'>{rows}</svg>"


STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#111;background:#fafafa}
header{background:#111;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#fff}main{padding:1rem 1.2rem;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:.6rem}
.card{background:#fff;border:1px solid #ddd;padding:.8rem;display:grid;gap:.5rem;max-width:700px}
.error{color:#b91c1c}.chart{width:100%;max-width:760px;background:#fff;border:1px solid #ddd}
textarea{width:100%}.choice{margin-right:1rem}.filters{display:flex;gap:1rem;margin:.5rem 0}
dl{grid-template-columns:8rem 1fr}dt{font-weight:600}dd{margin:0}
.stage{font-weight:600;padding:0 .4rem;border-radius:3px}.stage-input .stage{background:#dbeafe}
.stage-output .stage{background:#fde68a}.stage-context .stage{background:#e9d5ff}
.legend span{margin-right:1.2rem}.key-block{color:#b91c1c}.key-refusal{color:#d97706}
.comment{white-space:pre-wrap}"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
SECURITY_HEADERS = {
    # the one inline stylesheet, by its hash; inline SVG needs nothing; data: is the favicon
    "content-security-policy": (
        f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",  # redacted prompts, still nothing for a shared disk cache
}


def layout(title: str, body: str, reviewer: Reviewer | None = None) -> str:
    nav = ""
    if reviewer is not None:
        exports = (
            " ".join(f"<a href='/review/export?kind={k}'>export {k}</a>" for k in KINDS)
            if reviewer.role == "admin"
            else ""
        )
        nav = (
            f"<a href='/review'>queue</a><a href='/dashboard'>dashboard</a>{exports}"
            f"<span>{escape(reviewer.name)} ({escape(reviewer.role)})</span>"
            "<form method='post' action='/review/logout'><button>sign out</button></form>"
        )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)} · "
        f"Bastion</title><meta name='viewport' content='width=device-width'>"
        "<link rel='icon' href='data:,'>"
        f"<style>{STYLE}</style></head><body><header><b>Bastion</b>{nav}</header>"
        f"<main><h2>{escape(title)}</h2>{body}</main></body></html>"
    )
