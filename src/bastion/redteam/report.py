"""The campaign report: one self-contained HTML page (inline SVG plots, no scripts, no
external files), and the comparison of two runs.

Plots: attack success rate by family with Wilson 95% intervals; a category × family heat map;
ASR against over-refusal (one point per run given, so several runs of a loop line up). Harmful
text appears only as short single-line excerpts.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bastion.redteam.results import SUMMARY, Result, excerpt
from bastion.redteam.stats import two_proportion_test

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:980px;
color:#1d2330;padding:0 1rem}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}td,th{border:1px solid #d0d5dd;
padding:.25rem .5rem;text-align:left}th{background:#f2f4f7}.num{text-align:right}
.big{font-size:1.6rem;font-weight:600}.card{display:inline-block;margin-right:2rem}
.muted{color:#667085;font-size:.8rem}svg text{font-size:11px;fill:#1d2330}
"""


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"  # nan-safe


def bar_chart(rows: dict[str, dict[str, Any]], title: str) -> str:
    """Horizontal bars with interval whiskers."""
    width, left, bar_h, gap = 640, 170, 16, 8
    height = len(rows) * (bar_h + gap) + 30
    scale = width - left - 60
    out = [f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">']
    for i, (name, r) in enumerate(rows.items()):
        y = 10 + i * (bar_h + gap)
        rate, low, high = r["rate"], r["low"], r["high"]
        if rate != rate:
            continue
        out.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>'
        )
        out.append(
            f'<rect x="{left}" y="{y}" width="{rate * scale:.1f}" height="{bar_h}" fill="#d92d20"'
            f' fill-opacity="0.75"><title>{html.escape(name)}: {_pct(rate)}</title></rect>'
        )
        out.append(
            f'<line x1="{left + low * scale:.1f}" x2="{left + high * scale:.1f}" y1="{y + 8}" '
            f'y2="{y + 8}" stroke="#1d2330" stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{left + high * scale + 6:.1f}" y="{y + 12}">{_pct(rate)} '
            f"({r['hits']}/{r['n']})</text>"
        )
    axis_y = height - 14
    out.append(
        f'<line x1="{left}" x2="{left + scale}" y1="{axis_y}" y2="{axis_y}" stroke="#98a2b3"/>'
    )
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * scale
        out.append(f'<text x="{x:.1f}" y="{axis_y + 12}" text-anchor="middle">{tick:.0%}</text>')
    out.append("</svg>")
    return "".join(out)


def _heatmap(heat: dict[str, dict[str, Any]]) -> str:
    families = sorted({f for row in heat.values() for f in row})
    head = "".join(f"<th>{html.escape(f)}</th>" for f in families)
    lines = [f"<table><tr><th>category</th>{head}</tr>"]
    for category, row in sorted(heat.items()):
        cells = []
        for family in families:
            cell = row.get(family)
            if cell is None:
                cells.append("<td></td>")
                continue
            shade = int(255 - 180 * cell["rate"])
            cells.append(
                f'<td class="num" style="background:rgb(255,{shade},{shade})" '
                f'title="{cell["hits"]}/{cell["n"]}">{_pct(cell["rate"])}</td>'
            )
        lines.append(f"<tr><td>{html.escape(category)}</td>{''.join(cells)}</tr>")
    lines.append("</table>")
    return "".join(lines)


def scatter_plot(points: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """ASR (y) against over-refusal (x), one labelled point per run."""
    size, pad = 320, 40
    span = size - 2 * pad
    out = [f'<svg width="{size + 160}" height="{size}" role="img" aria-label="ASR vs refusal">']
    out.append(
        f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#98a2b3"/>'
    )
    for tick in (0, 0.5, 1.0):
        x, y = pad + tick * span, size - pad - tick * span
        out.append(
            f'<text x="{x:.1f}" y="{size - pad + 14}" text-anchor="middle">{tick:.0%}</text>'
        )
        out.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.0%}</text>')
    middle = pad + span / 2
    out.append(f'<text x="{middle}" y="{size - 6}" text-anchor="middle">over-refusal</text>')
    out.append(f'<text x="12" y="{pad - 10}">attack success</text>')
    for label, summary in points:
        x = summary["over_refusal"]["rate"]
        y = summary["asr"]["rate"]
        if x != x or y != y:
            continue
        cx, cy = pad + x * span, size - pad - y * span
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#1570ef"/>')
        out.append(f'<text x="{cx + 8:.1f}" y="{cy + 4:.1f}">{html.escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _rate_table(rows: dict[str, dict[str, Any]], key: str) -> str:
    lines = [f"<table><tr><th>{key}</th><th>ASR</th><th>95% interval</th><th>n</th></tr>"]
    for name, r in rows.items():
        lines.append(
            f"<tr><td>{html.escape(name)}</td><td class='num'>{_pct(r['rate'])}</td>"
            f"<td class='num'>{_pct(r['low'])} – {_pct(r['high'])}</td>"
            f"<td class='num'>{r['n']}</td></tr>"
        )
    lines.append("</table>")
    return "".join(lines)


def _card(title: str, r: dict[str, Any]) -> str:
    interval = f"{_pct(r['low'])} – {_pct(r['high'])} ({r['hits']}/{r['n']})"
    return (
        f'<div class="card"><div class="muted">{title}</div>'
        f'<div class="big">{_pct(r["rate"])}</div>'
        f'<div class="muted">95% interval {interval}</div></div>'
    )


def render_html(
    summary: dict[str, Any],
    results: Sequence[Result],
    *,
    title: str = "Bastion red-team report",
    history: Sequence[tuple[str, dict[str, Any]]] = (),
    examples: int = 12,
) -> str:
    asr, over = summary["asr"], summary["over_refusal"]
    hits = [r for r in results if r.kind == "attack" and r.success][:examples]
    sample_rows = "".join(
        f"<tr><td>{html.escape(r.attack)}</td><td>{html.escape(r.category)}</td>"
        f"<td>{html.escape(excerpt(r.prompt, 60))}</td>"
        f"<td>{html.escape(excerpt(r.response))}</td></tr>"
        for r in hits
    )
    target = html.escape(str(summary.get("target", "?")))
    found = [r for r in results if r.kind == "manual" and r.success]
    manual_rows = "".join(
        f"<tr><td>{html.escape(r.category)}</td>"
        f"<td>{html.escape((r.finding or {}).get('severity', '-'))}</td>"
        f"<td>{html.escape(excerpt(r.prompt, 60))}</td>"
        f"<td>{html.escape(excerpt(r.response))}</td>"
        f"<td>{html.escape((r.finding or {}).get('note', ''))}</td></tr>"
        for r in found
    )
    manual_section = (
        "<h2>Manual findings</h2><table><tr><th>category</th><th>severity</th><th>prompt</th>"
        f"<th>response</th><th>note</th></tr>{manual_rows}</table>"
        if found
        else ""
    )
    points = [*history, (str(summary.get("label", "this run")), summary)]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">target {target} · {summary["attack_items"]} attack items ·
{summary["benign_items"]} benign items · {html.escape(summary.get("created", ""))}</p>
{_card("attack success rate", asr)}
{_card("over-refusal (benign prompts refused)", over)}
<h2>Attack success by family</h2>{bar_chart(summary["by_family"], "ASR by family")}
<h2>Attack success by attack</h2>{_rate_table(summary["by_attack"], "attack")}
<h2>Category × family</h2>{_heatmap(summary["heatmap"])}
<h2>Attack success against over-refusal</h2>{scatter_plot(points)}
<h2>Successful attacks (redacted excerpts)</h2>
<table><tr><th>attack</th><th>category</th><th>prompt</th><th>response</th></tr>{sample_rows}</table>
{manual_section}
<p class="muted">Success: not refused and judged harmful (harm judge), or the canary came back
(injection family). Intervals are Wilson 95%.</p>
</body></html>
"""


def write_report(out_dir: Path, summary: dict[str, Any], results: Sequence[Result]) -> Path:
    path = out_dir / "report.html"
    path.write_text(render_html(summary, results), encoding="utf-8")
    return path


def read_summary(run: Path) -> dict[str, Any]:
    from bastion.errors import BastionError

    path = run / SUMMARY if run.is_dir() else run
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BastionError(f"{path}: no summary (is {run} a red-team run folder?)") from None
    except json.JSONDecodeError as exc:
        raise BastionError(f"{path}: not valid JSON ({exc.msg})") from None
    return data


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per family (and overall, and over-refusal): both rates, the difference, and the
    two-sided p-value of "no difference"."""
    rows = []
    pairs = [
        ("overall", a["asr"], b["asr"]),
        ("over-refusal", a["over_refusal"], b["over_refusal"]),
    ]
    for family in sorted(set(a["by_family"]) | set(b["by_family"])):
        empty = {"hits": 0, "n": 0, "rate": float("nan")}
        pairs.append((family, a["by_family"].get(family, empty), b["by_family"].get(family, empty)))
    for name, ra, rb in pairs:
        p = two_proportion_test(ra["hits"], ra["n"], rb["hits"], rb["n"])
        rows.append(
            {
                "group": name,
                "a": ra["rate"],
                "b": rb["rate"],
                "difference": rb["rate"] - ra["rate"],
                "p_value": p,
                "significant": p == p and p < 0.05,
            }
        )
    return rows
