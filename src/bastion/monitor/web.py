"""The review queue and the dashboard: server-rendered pages the gateway serves.

* ``/review/login`` — a reviewer signs in with their token (an API key whose role is
  ``reviewer`` or ``admin``); the session is an HttpOnly, SameSite=Strict cookie holding a
  signed reviewer name, never the token itself.
* ``/review`` — the queue: filter by status and reason; each row shows the redacted prompt, the
  decision, how many reviewers labelled it and their consensus. Cohen's κ between every pair
  of reviewers is shown above the list. 50 items a page, ``?page=`` 1 to :data:`MAX_PAGE`
  (anything else is a 400).
* ``/review/item/{id}`` — the redacted exchange, every scanner's result by stage, the user's
  feedback on it, the labels given so far (admins see who gave which; reviewers see their own
  and a count); a form to label it ``safe``, ``unsafe`` or ``over_refusal`` and optionally
  write a better response. Saving goes to the next open item.
* ``/review/export?kind=preferences|sft|attacks`` — admins download the reviewed items as
  training data (:mod:`bastion.monitor.export`).
* ``/dashboard`` — traffic, block rate and refusal rate over time (inline SVG), the latest
  alerts, the top flagged categories.

Pages are plain HTML with one inline stylesheet and inline SVG: no script, no external asset,
so they render the same offline and in a headless browser. Every response of these routes,
errors included, carries :data:`~bastion.monitor.pages.SECURITY_HEADERS`: a
Content-Security-Policy that allows nothing but that stylesheet (by its SHA-256) and
same-origin forms, no framing (clickjacking on the label form), no MIME sniffing, no referrer,
no caching. Wrong sign-in tokens are limited per client address and overall
(:class:`~bastion.monitor.login_limit.LoginLimiter`). (FastAPI is imported at the top: it
resolves the handlers' annotations against this module's globals.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from bastion.monitor.events import LABELS, REVIEW_REASONS, utcnow
from bastion.monitor.export import KINDS, ReviewedItem, ReviewLabel, export_rows
from bastion.monitor.login_limit import LoginLimiter
from bastion.monitor.pages import (
    SECURITY_HEADERS,
    Series,
    agreement_html,
    bar_chart,
    error_page,
    feedback_list,
    layout,
    line_chart,
    pager,
    rate,
    scanner_table,
    short,
    span,
)
from bastion.monitor.pages import escape as _e

COOKIE = "bastion_review"
ROLES = ("reviewer", "admin")
PAGE_SIZE = 50
MAX_PAGE = 100_000  # 5 million items: past any real queue, well inside SQLite's OFFSET


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


class _ReviewRoute(APIRoute):
    """A route whose every response carries :data:`~bastion.monitor.pages.SECURITY_HEADERS`.
    A request FastAPI cannot parse (a page number that is not one, a missing form field) gets
    a 400 page here, with the headers, instead of the application's JSON 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{' '.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in exc.errors()
                )
                response = error_page(400, "Bad request", problems)
            except HTTPException as exc:
                title = HTTPStatus(exc.status_code).phrase
                response = error_page(exc.status_code, title, str(exc.detail))
                response.headers.update(exc.headers or {})
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded


def review_router(store: Any, sessions: Sessions, limiter: LoginLimiter | None = None) -> APIRouter:
    """The pages above as a FastAPI router, reading and writing ``store``
    (:class:`~bastion.monitor.store.EventStore`); ``limiter`` counts sign-in attempts (by
    default 5 wrong tokens a minute per client address, 50 overall)."""
    router = APIRouter(route_class=_ReviewRoute)
    limiter = limiter or LoginLimiter()

    def who(request: Request) -> Reviewer | None:
        return sessions.reviewer(request.cookies.get(COOKIE))

    def to_login() -> Response:
        return RedirectResponse("/review/login", status_code=303)

    @router.get("/review/login", response_class=HTMLResponse)
    def login_page(error: str = "") -> str:
        note = '<p class="error">That token is not a reviewer\'s.</p>' if error else ""
        return layout(
            "Sign in",
            f"""{note}<form method="post" action="/review/login" class="card">
            <label>Reviewer token <input type="password" name="token" id="token"
              autocomplete="off" required></label>
            <button type="submit" id="sign-in">Sign in</button></form>""",
        )

    @router.post("/review/login")
    def login(request: Request, token: str = Form(...)) -> Response:
        address = request.client.host if request.client else "unknown"
        wait = limiter.attempt(address)
        if wait is not None:
            refused = error_page(
                429, "Too many attempts", f"Too many wrong tokens: try again in {wait} s."
            )
            refused.headers["retry-after"] = str(wait)
            return refused
        cookie = sessions.login(token)
        if cookie is None:
            return RedirectResponse("/review/login?error=1", status_code=303)
        limiter.forgive(address)
        response = RedirectResponse("/review", status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        return response

    @router.post("/review/logout")
    def logout() -> Response:
        response = to_login()
        response.delete_cookie(COOKIE)
        return response

    @router.get("/review", response_class=HTMLResponse)
    def queue(
        request: Request,
        status: str = "open",
        reason: str = "",
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    ) -> Any:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        status_filter = status if status in ("open", "labelled") else None
        items = store.review_items(
            status=status_filter,
            reason=reason or None,
            limit=PAGE_SIZE + 1,  # one more: is there a next page?
            offset=(page - 1) * PAGE_SIZE,
        )
        rows = []
        for item in items[:PAGE_SIZE]:
            labels = store.labels_for(item.id)
            verdict = _consensus(labels, sessions.roles)
            event = item.event
            prompt = event.prompt if event else "(event on its way to the database)"
            rows.append(
                f"<tr><td><a href='/review/item/{_e(item.id)}' class='item'>"
                f"{_e(item.created.strftime('%Y-%m-%d %H:%M'))}</a></td>"
                f"<td>{_e(item.reason)}</td><td>{_e(event.user if event else '')}</td>"
                f"<td>{_e(event.decision if event else '')}</td><td>{_e(short(prompt))}</td>"
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
        {agreement_html(reviewed_items(store, sessions.roles))}
        <form method="get" action="/review" class="filters">
          <label>Status <select name="status" id="status">{statuses}</select></label>
          <label>Reason <select name="reason" id="reason">{options}</select></label>
          <button type="submit">Filter</button></form>
        <table id="queue"><thead><tr><th>created</th><th>reason</th><th>user</th>
          <th>decision</th><th>prompt (redacted)</th><th>labels</th><th>consensus</th></tr>
        </thead><tbody>{"".join(rows) or "<tr><td colspan=7>Nothing here.</td></tr>"}
        </tbody></table>
        {pager(status, reason, page, more=len(items) > PAGE_SIZE, empty=not rows)}"""
        return layout("Review queue", body, reviewer)

    @router.get("/review/item/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str) -> Any:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        item = store.review_item(item_id)
        if item is None:
            return HTMLResponse(layout("Not found", "<p>No such item.</p>", reviewer), 404)
        labels = store.labels_for(item_id)
        mine = next((x for x in labels if x.reviewer == reviewer.name), None)
        if reviewer.role == "admin":
            given = "".join(
                f"<li>{_e(x.reviewer)}: <b>{_e(x.label)}</b>"
                + (f" — better: {_e(short(x.better_response, 200))}" if x.better_response else "")
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
            context = f"""
            <dl class="card"><dt>user</dt><dd>{_e(event.user)}</dd>
              <dt>time</dt><dd>{_e(event.ts.isoformat(timespec="seconds"))}</dd>
              <dt>decision</dt><dd>{_e(event.decision)} {_e(event.blocked_stage or "")}</dd>
              <dt>categories</dt><dd>{_e(", ".join(event.categories) or "—")}</dd></dl>
            <h3>Prompt (redacted)</h3><pre id="prompt">{_e(event.prompt)}</pre>
            <h3>Response (redacted)</h3><pre id="response">{_e(event.response)}</pre>
            {scanner_table(event.input_results, event.output_results)}"""
        choices = "".join(
            f"<label class='choice'><input type='radio' name='label' value='{x}' id='label-{x}'"
            f" {'checked' if mine and mine.label == x else ''} required> {x}</label>"
            for x in LABELS
        )
        better = _e(mine.better_response or "") if mine else ""
        body = f"""<p>Reason: <b>{_e(item.reason)}</b> · status: {_e(item.status)}</p>
        {context}{feedback_list(store.feedback_for(item.event_id))}
        <h3>Labels</h3><ul>{given}</ul>
        <form method="post" action="/review/item/{_e(item_id)}" class="card">
          {choices}
          <label>Better response (optional)
            <textarea name="better_response" id="better" rows="4">{better}</textarea></label>
          <button type="submit" id="save">Save label</button></form>"""
        return layout("Review item", body, reviewer)

    @router.post("/review/item/{item_id}")
    def save_label(
        request: Request, item_id: str, label: str = Form(...), better_response: str = Form("")
    ) -> Response:
        reviewer = who(request)
        if reviewer is None:
            return to_login()
        if label not in LABELS or store.review_item(item_id) is None:
            return HTMLResponse(layout("Bad label", "<p>Unknown item or label.</p>"), 400)
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
            return HTMLResponse(layout("Forbidden", "<p>Admins only.</p>", reviewer), 403)
        if kind not in KINDS:
            return HTMLResponse(layout("Bad kind", f"<p>kind: one of {KINDS}</p>"), 400)
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
        # a block is a refusal too, so the two lines often coincide: the refusal line is drawn
        # first and wide, the block line over it, narrow and dashed, and both stay visible
        rates = [
            Series("refusal", refusal, "#f59e0b", width=6),
            Series("block", block, "#b91c1c", width=2, dash="6 4"),
        ]
        body = f"""<p class="summary">Last {hours} h: <b id="traffic">{total}</b> exchanges ·
          block rate <b>{rate(blocked, total)}</b> · refusal rate
          <b>{rate(refused, total)}</b> · open review items
          <b>{len(store.review_items(status="open", limit=1000))}</b></p>
        <h3>Traffic (exchanges per {span(bucket)})</h3>
        {line_chart([Series("traffic", totals, "#2563eb")])}
        <h3>Block rate and refusal rate</h3>{line_chart(rates, fraction=True)}
        <p class="legend" id="rate-legend"><span class="key-block">╍ block (dashed, on top)</span>
          <span class="key-refusal">━ refusal (wide, below)</span></p>
        <h3>Top flagged categories</h3>{bar_chart(categories)}
        <h3>Latest alerts</h3><table id="alerts"><thead><tr><th>time</th><th>detector</th>
          <th>user</th><th>statistic</th><th>value</th></tr></thead>
          <tbody>{alert_rows or "<tr><td colspan=5>No alerts.</td></tr>"}</tbody></table>"""
        return layout("Dashboard", body, reviewer)

    return router


def _consensus(labels: Sequence[Any], roles: Mapping[str, str]) -> str | None:
    from bastion.monitor.export import consensus

    return consensus(
        [
            ReviewLabel(x.reviewer, x.label, x.better_response, roles.get(x.reviewer, "reviewer"))
            for x in labels
        ]
    )
