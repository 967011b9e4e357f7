"""The review queue and the dashboard: server-rendered pages the gateway serves.

* ``/review/login`` — a reviewer signs in with their token (an API key whose role is
  ``reviewer`` or ``admin``); the session is an HttpOnly, SameSite=Strict cookie holding a
  signed reviewer name, never the token itself.
* ``/review`` — the queue: filter by status and reason; each row shows the redacted prompt, the
  decision, how many reviewers labelled it and their consensus. Cohen's κ between every pair
  of reviewers is shown above the list.
* ``/review/item/{id}`` — the redacted exchange, every scanner's result, the labels given so
  far (admins see who gave which; reviewers see their own and a count); a form to label it
  ``safe``, ``unsafe`` or ``over_refusal`` and optionally write a better response. Saving goes
  to the next open item.
* ``/review/export?kind=preferences|sft|attacks`` — admins download the reviewed items as
  training data (:mod:`bastion.monitor.export`).
* ``/dashboard`` — traffic, block rate and refusal rate over time (inline SVG), the latest
  alerts, the top flagged categories.

Pages are plain HTML with inline CSS and SVG: no script, no external asset, so they render
the same offline and in a headless browser. (FastAPI is imported at the top: it resolves the
handlers' annotations against this module's globals.)
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bastion.monitor.events import LABELS, REVIEW_REASONS, utcnow
from bastion.monitor.export import KINDS, ReviewedItem, ReviewLabel, agreement, export_rows

COOKIE = "bastion_review"
ROLES = ("reviewer", "admin")


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str  # "reviewer" or "admin"


class Sessions:
    """Who may sign in, and signed session cookies (``name.signature``, an HMAC with a key made
    at start). ``tokens``: a token → :class:`Reviewer` mapping, or a function that looks a
    token up (the gateway passes its API-key ring); ``roles``: every reviewer's role by name
    (an admin's label settles a tie)."""

    def __init__(
        self,
        tokens: Mapping[str, Reviewer] | Callable[[str], Reviewer | None],
        roles: Mapping[str, str] | None = None,
        secret: bytes | None = None,
    ) -> None:
        if isinstance(tokens, Mapping):
            known = {t: r for t, r in tokens.items() if r.role in ROLES}
            self.lookup: Callable[[str], Reviewer | None] = lambda token: _find(known, token)
            self.roles = {r.name: r.role for r in known.values()}
        else:
            self.lookup, self.roles = tokens, {}
        self.roles.update(roles or {})
        self.secret = secret or secrets.token_bytes(32)

    def login(self, token: str) -> str | None:
        reviewer = self.lookup(token)
        if reviewer is None or reviewer.role not in ROLES:
            return None
        self.roles[reviewer.name] = reviewer.role
        return self._sign(reviewer.name)

    def reviewer(self, cookie: str | None) -> Reviewer | None:
        if not cookie or "." not in cookie:
            return None
        name = cookie.rpartition(".")[0]
        if not hmac.compare_digest(self._sign(name), cookie) or name not in self.roles:
            return None
        return Reviewer(name, self.roles[name])

    def _sign(self, name: str) -> str:
        digest = hmac.new(self.secret, name.encode(), hashlib.sha256).hexdigest()
        return f"{name}.{digest}"


def _find(known: Mapping[str, Reviewer], token: str) -> Reviewer | None:
    found = None
    for candidate, reviewer in known.items():  # every entry, always: constant time
        if hmac.compare_digest(candidate.encode(), token.encode()):
            found = reviewer
    return found


def reviewed_items(store: Any, roles: Mapping[str, str], limit: int = 10_000) -> list[ReviewedItem]:
    """Every labelled review item with its event and labels, for export and agreement."""
    items = []
    for item in store.review_items(status="labelled", limit=limit):
        if item.event is None:
            continue
        labels = [
            ReviewLabel(x.reviewer, x.label, x.better_response, roles.get(x.reviewer, "reviewer"))
            for x in store.labels_for(item.id)
        ]
        items.append(ReviewedItem(item.id, item.event, labels))
    return items


def review_router(store: Any, sessions: Sessions) -> APIRouter:
    """The pages above as a FastAPI router, reading and writing ``store``
    (:class:`~bastion.monitor.store.EventStore`)."""
    router = APIRouter()

    def who(request: Request) -> Reviewer | None:
        return sessions.reviewer(request.cookies.get(COOKIE))

    def to_login() -> Response:
        return RedirectResponse("/review/login", status_code=303)

    @router.get("/review/login", response_class=HTMLResponse)
    def login_page(error: str = "") -> str:
        note = '<p class="error">That token is not a reviewer\'s.</p>' if error else ""
        return _page(
            "Sign in",
            f"""{note}<form method="post" action="/review/login" class="card">
            <label>Reviewer token <input type="password" name="token" id="token"
              autocomplete="off" required></label>
            <button type="submit" id="sign-in">Sign in</button></form>""",
        )

    @router.post("/review/login")
    def login(token: str = Form(...)) -> Response:
        cookie = sessions.login(token)
        if cookie is None:
            return RedirectResponse("/review/login?error=1", status_code=303)
        response = RedirectResponse("/review", status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        return response

    @router.post("/review/logout")
    def logout() -> Response:
        response = to_login()
        response.delete_cookie(COOKIE)
        return response

    @router.get("/review", response_class=HTMLResponse)
    def queue(request: Request, status: str = "open", reason: str = "", page: int = 0) -> Any:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        status_filter = status if status in ("open", "labelled") else None
        items = store.review_items(
            status=status_filter, reason=reason or None, limit=50, offset=max(page, 0) * 50
        )
        rows = []
        for item in items:
            labels = store.labels_for(item.id)
            verdict = _consensus(labels, sessions.roles)
            event = item.event
            prompt = event.prompt if event else "(event on its way to the database)"
            rows.append(
                f"<tr><td><a href='/review/item/{_e(item.id)}' class='item'>"
                f"{_e(item.created.strftime('%Y-%m-%d %H:%M'))}</a></td>"
                f"<td>{_e(item.reason)}</td><td>{_e(event.user if event else '')}</td>"
                f"<td>{_e(event.decision if event else '')}</td><td>{_e(_short(prompt))}</td>"
                f"<td>{len(labels)}</td><td>{_e(verdict or '—')}</td></tr>"
            )
        options = "".join(
            f"<option value='{r}' {'selected' if r == reason else ''}>{r}</option>"
            for r in ("", *REVIEW_REASONS)
        )
        statuses = "".join(
            f"<option value='{s}' {'selected' if s == status else ''}>{s}</option>"
            for s in ("open", "labelled", "all")
        )
        body = f"""
        {_agreement_html(reviewed_items(store, sessions.roles))}
        <form method="get" action="/review" class="filters">
          <label>Status <select name="status" id="status">{statuses}</select></label>
          <label>Reason <select name="reason" id="reason">{options}</select></label>
          <button type="submit">Filter</button></form>
        <table id="queue"><thead><tr><th>created</th><th>reason</th><th>user</th>
          <th>decision</th><th>prompt (redacted)</th><th>labels</th><th>consensus</th></tr>
        </thead><tbody>{"".join(rows) or "<tr><td colspan=7>Nothing here.</td></tr>"}
        </tbody></table>
        <p><a href="/review?status={_e(status)}&reason={_e(reason)}&page={page + 1}">next page</a>
        </p>"""
        return _page("Review queue", body, reviewer)

    @router.get("/review/item/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str) -> Any:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        item = store.review_item(item_id)
        if item is None:
            return HTMLResponse(_page("Not found", "<p>No such item.</p>", reviewer), 404)
        labels = store.labels_for(item_id)
        mine = next((x for x in labels if x.reviewer == reviewer.name), None)
        if reviewer.role == "admin":
            given = "".join(
                f"<li>{_e(x.reviewer)}: <b>{_e(x.label)}</b>"
                + (f" — better: {_e(_short(x.better_response, 200))}" if x.better_response else "")
                + "</li>"
                for x in labels
            )
        else:
            given = f"<li>{len(labels)} label(s) so far</li>" + (
                f"<li>yours: <b>{_e(mine.label)}</b></li>" if mine else ""
            )
        event = item.event
        context = "<p>The event is still on its way to the database.</p>"
        if event is not None:
            results = event.input_results + event.output_results
            scanners = "".join(
                f"<tr><td>{_e(str(r.get('scanner')))}</td><td>{_e(str(r.get('score')))}</td>"
                f"<td>{'yes' if r.get('flagged') else ''}</td></tr>"
                for r in results
            )
            context = f"""
            <dl class="card"><dt>user</dt><dd>{_e(event.user)}</dd>
              <dt>time</dt><dd>{_e(event.ts.isoformat(timespec="seconds"))}</dd>
              <dt>decision</dt><dd>{_e(event.decision)} {_e(event.blocked_stage or "")}</dd>
              <dt>categories</dt><dd>{_e(", ".join(event.categories) or "—")}</dd></dl>
            <h3>Prompt (redacted)</h3><pre id="prompt">{_e(event.prompt)}</pre>
            <h3>Response (redacted)</h3><pre id="response">{_e(event.response)}</pre>
            <table><thead><tr><th>scanner</th><th>score</th><th>flagged</th></tr></thead>
            <tbody>{scanners}</tbody></table>"""
        choices = "".join(
            f"<label class='choice'><input type='radio' name='label' value='{x}' id='label-{x}'"
            f" {'checked' if mine and mine.label == x else ''} required> {x}</label>"
            for x in LABELS
        )
        better = _e(mine.better_response or "") if mine else ""
        body = f"""<p>Reason: <b>{_e(item.reason)}</b> · status: {_e(item.status)}</p>
        {context}<h3>Labels</h3><ul>{given}</ul>
        <form method="post" action="/review/item/{_e(item_id)}" class="card">
          {choices}
          <label>Better response (optional)
            <textarea name="better_response" id="better" rows="4">{better}</textarea></label>
          <button type="submit" id="save">Save label</button></form>"""
        return _page("Review item", body, reviewer)

    @router.post("/review/item/{item_id}")
    def save_label(
        request: Request, item_id: str, label: str = Form(...), better_response: str = Form("")
    ) -> Response:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        if label not in LABELS or store.review_item(item_id) is None:
            return HTMLResponse(_page("Bad label", "<p>Unknown item or label.</p>"), 400)
        store.label(item_id, reviewer.name, label, better_response.strip() or None)
        following = [
            x
            for x in store.review_items(status="open", limit=200)
            if x.id != item_id and all(y.reviewer != reviewer.name for y in store.labels_for(x.id))
        ]
        target = f"/review/item/{following[0].id}" if following else "/review?status=labelled"
        return RedirectResponse(target, status_code=303)

    @router.get("/review/export")
    def export(request: Request, kind: str) -> Response:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        if reviewer.role != "admin":
            return HTMLResponse(_page("Forbidden", "<p>Admins only.</p>", reviewer), 403)
        if kind not in KINDS:
            return HTMLResponse(_page("Bad kind", f"<p>kind: one of {KINDS}</p>"), 400)
        rows = export_rows(reviewed_items(store, sessions.roles), kind)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        headers = {"content-disposition": f"attachment; filename={kind}.jsonl"}
        return Response(text, media_type="application/x-ndjson", headers=headers)

    @router.get("/dashboard", response_class=HTMLResponse)
    def dashboard(request: Request, hours: int = 24) -> Any:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        hours = min(max(hours, 1), 24 * 90)
        now = utcnow()
        bucket = timedelta(hours=1) if hours > 6 else timedelta(minutes=5)
        since = now - timedelta(hours=hours)
        buckets = store.stats(since, bucket, until=now)
        totals = [b.total for b in buckets]
        block = [b.blocked / b.total if b.total else 0.0 for b in buckets]
        refusal = [b.refused / b.total if b.total else 0.0 for b in buckets]
        alerts = store.alerts(since=since, limit=20)
        alert_rows = "".join(
            f"<tr><td>{_e(a.ts.strftime('%m-%d %H:%M'))}</td><td>{_e(a.detector)}</td>"
            f"<td>{_e(a.user or '')}</td><td>{_e(a.statistic)}</td>"
            f"<td>{a.value:.3g} &gt; {a.threshold:.3g}</td></tr>"
            for a in alerts
        )
        categories = store.top_categories(since=since, n=8)
        total = sum(totals)
        blocked = sum(b.blocked for b in buckets)
        refused = sum(b.refused for b in buckets)
        body = f"""<p class="summary">Last {hours} h: <b id="traffic">{total}</b> exchanges ·
          block rate <b>{_rate(blocked, total)}</b> · refusal rate
          <b>{_rate(refused, total)}</b> · open review items
          <b>{len(store.review_items(status="open", limit=1000))}</b></p>
        <h3>Traffic (exchanges per {_span(bucket)})</h3>{_line_chart([totals], ["#2563eb"])}
        <h3>Block rate and refusal rate</h3>
        {_line_chart([block, refusal], ["#dc2626", "#d97706"], fraction=True)}
        <p class="legend"><span style="color:#dc2626">■ block</span>
          <span style="color:#d97706">■ refusal</span></p>
        <h3>Top flagged categories</h3>{_bar_chart(categories)}
        <h3>Latest alerts</h3><table id="alerts"><thead><tr><th>time</th><th>detector</th>
          <th>user</th><th>statistic</th><th>value</th></tr></thead>
          <tbody>{alert_rows or "<tr><td colspan=5>No alerts.</td></tr>"}</tbody></table>"""
        return _page("Dashboard", body, reviewer)

    return router


# --- rendering helpers ---------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _short(text: str | None, n: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _rate(part: int, total: int) -> str:
    return f"{part / total:.1%}" if total else "—"


def _span(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def _consensus(labels: Sequence[Any], roles: Mapping[str, str]) -> str | None:
    from bastion.monitor.export import consensus

    return consensus(
        [
            ReviewLabel(x.reviewer, x.label, x.better_response, roles.get(x.reviewer, "reviewer"))
            for x in labels
        ]
    )


def _agreement_html(items: list[ReviewedItem]) -> str:
    report = agreement(items)
    if not report["pairs"]:
        return "<p class='kappa'>Agreement: no item has two reviewers yet.</p>"
    cells = "".join(
        f"<tr><td>{_e(' & '.join(p['reviewers']))}</td><td>{p['items']}</td>"
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


def _line_chart(series: Sequence[Sequence[float]], colours: Sequence[str], *,
                fraction: bool = False) -> str:  # fmt: skip
    width, height = 720, 160
    top = 1.0 if fraction else max((max(s, default=0) for s in series), default=0) or 1.0
    lines = "".join(
        f"<polyline fill='none' stroke='{c}' stroke-width='2' "
        f"points='{' '.join(_points(s, top, width, height))}'/>"
        for s, c in zip(series, colours, strict=True)
        if s
    )
    label = "100%" if fraction else f"{top:g}"
    return (
        f"<svg class='chart' viewBox='-40 -10 {width + 50} {height + 30}' role='img'>"
        f"<line x1='0' y1='{height}' x2='{width}' y2='{height}' stroke='#999'/>"
        f"<line x1='0' y1='0' x2='0' y2='{height}' stroke='#999'/>"
        f"<text x='-36' y='8' font-size='11'>{label}</text>"
        f"<text x='-14' y='{height}' font-size='11'>0</text>{lines}</svg>"
    )


def _bar_chart(counts: Sequence[tuple[str, int]]) -> str:
    if not counts:
        return "<p>No flagged categories.</p>"
    top = max(n for _, n in counts)
    rows = "".join(
        f"<g transform='translate(0,{i * 24})'><text x='0' y='15' font-size='12'>{_e(name)}</text>"
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
dl{grid-template-columns:8rem 1fr}dt{font-weight:600}dd{margin:0}"""


def _page(title: str, body: str, reviewer: Reviewer | None = None) -> str:
    nav = ""
    if reviewer is not None:
        exports = (
            " ".join(f"<a href='/review/export?kind={k}'>export {k}</a>" for k in KINDS)
            if reviewer.role == "admin"
            else ""
        )
        nav = (
            f"<a href='/review'>queue</a><a href='/dashboard'>dashboard</a>{exports}"
            f"<span>{_e(reviewer.name)} ({_e(reviewer.role)})</span>"
            "<form method='post' action='/review/logout'><button>sign out</button></form>"
        )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)} · "
        f"Bastion</title><meta name='viewport' content='width=device-width'>"
        "<link rel='icon' href='data:,'>"
        f"<style>{STYLE}</style></head><body><header><b>Bastion</b>{nav}</header>"
        f"<main><h2>{_e(title)}</h2>{body}</main></body></html>"
    )
