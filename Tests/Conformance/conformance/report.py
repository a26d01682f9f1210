"""Reports: the terminal table (cases × backends), a self-contained HTML report with latency
plots (inline SVG), percentiles and throughput per backend, failures and disagreements, and
results.json for machines."""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

from .backends import SHORT
from .run import RunResult

MARK = {"pass": "✓", "fail": "✗", "n/a": "·", "missing": "?", "error": "!"}
LEGEND = ("✓ pass   ~ pass by a documented host difference (variant/accepted)   ✗ fail   "
          "· not applicable   ? prerequisite missing   ! backend error")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f}ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f}µs"
    if s < 1:
        return f"{s * 1e3:.2f}ms"
    return f"{s:.2f}s"


def fmt_rate(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 1e6:
        return f"{r / 1e6:.2f}M/s"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k/s"
    return f"{r:.0f}/s"


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"…(+{len(text) - limit} chars)"


def cell(r) -> str:
    if r is None:
        return " "
    if r.state == "pass" and r.matched:
        return "~"
    return MARK.get(r.state, "?")


def counts(run: RunResult, name: str) -> dict[str, int]:
    out = {"pass": 0, "variant": 0, "fail": 0, "n/a": 0, "missing": 0, "error": 0}
    for r in run.for_backend(name):
        out[r.state] += 1
        if r.state == "pass" and r.matched:
            out["variant"] += 1
    return out


# --------------------------------------------------------------------------- terminal


def terminal(run: RunResult, width: int = 46, details: bool = True) -> str:
    names = list(run.backends)
    heads = [SHORT.get(n, n) for n in names]
    colw = [max(len(h), 1) for h in heads]
    lines = []
    header = f"{'case':{width}s} " + " ".join(f"{h:^{w}s}" for h, w in zip(heads, colw))
    for suite in run.suites:
        lines.append("")
        lines.append(f"{suite.name}  ({suite.path.name}, {len(suite.cases)} cases)")
        lines.append(header)
        lines.append("-" * len(header))
        for case in suite.cases:
            label = case.name if len(case.name) <= width else case.name[:width - 1] + "…"
            cells = [f"{cell(run.results.get((case.id, n))):^{w}s}" for n, w in zip(names, colw)]
            lines.append(f"{label:{width}s} " + " ".join(cells))
    if not run.suites:
        names = []
    else:
        lines.append("")
        lines.append(LEGEND)
        lines.append("")
    if names:
        lines.append(f"{'backend':22s} {'pass':>5s} {'(~)':>4s} {'fail':>5s} {'n/a':>4s} {'miss':>5s} {'err':>4s} "
                 f"{'p50':>9s} {'p90':>9s} {'p99':>9s} {'throughput':>11s}")
    for n in names:
        c = counts(run, n)
        info = run.backends[n]
        lat = info.latencies
        tp = info.throughput.requests_per_second if info.throughput else None
        lines.append(f"{n:22s} {c['pass']:5d} {c['variant']:4d} {c['fail']:5d} {c['n/a']:4d} {c['missing']:5d} "
                     f"{c['error']:4d} {fmt_seconds(percentile(lat, 50)):>9s} {fmt_seconds(percentile(lat, 90)):>9s} "
                     f"{fmt_seconds(percentile(lat, 99)):>9s} {fmt_rate(tp):>11s}")
    for n in names:
        info = run.backends[n]
        if info.missing:
            lines.append(f"  {n}: prerequisite missing: {'; '.join(info.missing)}")
        for e in info.errors:
            lines.append(f"  {n}: {e[:600]}")
    if details:
        failures = [r for r in run.failures() if r.state == "fail"]
        errors: dict[tuple[str, str], int] = {}
        for r in run.failures():
            if r.state == "error":
                errors[(r.backend, r.detail)] = errors.get((r.backend, r.detail), 0) + 1
        if errors:
            lines.append("")
            lines.append("BACKEND ERRORS")
            for (backend, detail), n in errors.items():
                lines.append(f"- {backend} ({n} cases): {detail}")
        if failures:
            lines.append("")
            lines.append(f"FAILURES ({len(failures)})")
            for r in failures:
                lines.append(f"- {r.case.id} on {r.backend}: {clip(r.detail, 400)}")
                lines.append(f"    request:  {r.case.describe_request()}")
                lines.append(f"    expected: {clip(r.expected)}")
                lines.append(f"    observed: {clip(r.observed)}")
    if run.diff is not None:
        lines.append("")
        lines += run.diff.summary_lines()
        rows = [(n, i.diff_latencies) for n, i in run.backends.items() if i.diff_latencies]
        if rows:
            lines.append(f"  {'latency (differential)':22s} {'p50':>9s} {'p90':>9s} {'p99':>9s} {'max':>9s}")
            for n, lat in rows:
                lines.append(f"  {n:22s} " + " ".join(f"{fmt_seconds(percentile(lat, p)):>9s}" for p in (50, 90, 99, 100)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31"]


def latency_svg(series: dict[str, list[float]], title: str) -> str:
    """One histogram row per backend on a shared log-scale axis (100 ns … 1 s), with p50/p99 ticks."""
    rows = [(n, v) for n, v in series.items() if v]
    if not rows:
        return f"<p><em>{html.escape(title)}: no samples.</em></p>"
    lo_exp, hi_exp = -7.0, 0.0
    all_values = [x for _, v in rows for x in v if x > 0]
    if all_values:
        lo_exp = math.floor(math.log10(min(all_values)))
        hi_exp = math.ceil(math.log10(max(all_values)))
        if hi_exp - lo_exp < 2:
            hi_exp = lo_exp + 2
    bins = 72
    left, right, row_h, top = 170, 20, 34, 28
    plot_w = 900
    height = top + row_h * len(rows) + 40
    width = left + plot_w + right

    def x_of(value: float) -> float:
        e = math.log10(max(value, 10 ** lo_exp))
        return left + (e - lo_exp) / (hi_exp - lo_exp) * plot_w

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for e in range(int(lo_exp), int(hi_exp) + 1):
        x = left + (e - lo_exp) / (hi_exp - lo_exp) * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + row_h * len(rows)}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + row_h * len(rows) + 14}" text-anchor="middle">'
                     f'{html.escape(fmt_seconds(10.0 ** e))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">latency (log scale); '
                 f'ticks: p50 (solid), p99 (dashed)</text>')
    for i, (name, values) in enumerate(rows):
        y0 = top + i * row_h
        color = COLORS[i % len(COLORS)]
        hist = [0] * bins
        for v in values:
            e = math.log10(max(v, 10 ** lo_exp))
            k = min(bins - 1, max(0, int((e - lo_exp) / (hi_exp - lo_exp) * bins)))
            hist[k] += 1
        peak = max(hist) or 1
        bw = plot_w / bins
        for k, h in enumerate(hist):
            if h:
                bh = (row_h - 8) * h / peak
                parts.append(f'<rect x="{left + k * bw:.1f}" y="{y0 + row_h - 4 - bh:.1f}" width="{bw - 0.5:.1f}" '
                             f'height="{bh:.1f}" fill="{color}" opacity="0.8"><title>{html.escape(name)}: {h} '
                             f'requests near {html.escape(fmt_seconds(10 ** (lo_exp + (k + 0.5) * (hi_exp - lo_exp) / bins)))}'
                             f'</title></rect>')
        for p, dash in ((50, ""), (99, ' stroke-dasharray="3,2"')):
            v = percentile(values, p)
            if v:
                x = x_of(v)
                parts.append(f'<line x1="{x:.1f}" y1="{y0 + 2}" x2="{x:.1f}" y2="{y0 + row_h - 2}" stroke="#000"{dash}/>')
        parts.append(f'<text x="{left - 6}" y="{y0 + row_h / 2 + 4}" text-anchor="end">{html.escape(name)} '
                     f'(n={len(values)})</text>')
        parts.append(f'<line x1="{left}" y1="{y0 + row_h - 4}" x2="{left + plot_w}" y2="{y0 + row_h - 4}" stroke="#999"/>')
    parts.append("</svg>")
    return "\n".join(parts)


CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 20px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; font-size: 12px; }
th { background: #f3f3f3; }
td.c { text-align: center; font-weight: bold; }
td.pass { background: #e3f4e3; color: #1a7f1a; } td.variant { background: #eef6d8; color: #4d7a00; }
td.fail, td.error { background: #fbe0e0; color: #b00; } td.na { color: #999; } td.missing { background: #fff3cd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-size: 12px; } pre { background: #f7f7f7; padding: 8px; overflow-x: auto; }
.ok { color: #1a7f1a; } .bad { color: #b00; }
"""


def html_report(run: RunResult) -> str:
    names = list(run.backends)
    failures = run.failures()
    status = "bad" if failures or run.missing() or (run.diff and run.diff.disagreements) else "ok"
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Redirector conformance report</title>",
           f"<style>{CSS}</style></head><body>",
           "<h1>Redirector conformance report</h1>",
           f"<p>{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.started))}, "
           f"{run.finished - run.started:.0f} s. Command: <code>{html.escape(run.command)}</code></p>",
           f"<p class='{status}'><b>{sum(len(s.cases) for s in run.suites)} cases × {len(names)} backends: "
           f"{len(failures)} failures"
           + (f", {len(run.missing())} results with a missing prerequisite" if run.missing() else "")
           + (f"; differential: {run.diff.total_requests} requests, {len(run.diff.disagreements)} disagreements"
              if run.diff else "") + "</b></p>"]

    out.append("<h2>Backends</h2><table><tr><th>backend</th><th>what</th><th>profile</th><th>pass</th>"
               "<th>~</th><th>fail</th><th>n/a</th><th>missing</th><th>error</th><th>p50</th><th>p90</th>"
               "<th>p99</th><th>max</th><th>throughput</th><th>measured by</th></tr>")
    for n in names:
        info = run.backends[n]
        c = counts(run, n)
        lat = info.latencies
        tp = info.throughput
        out.append(
            f"<tr><td><b>{html.escape(n)}</b></td><td>{html.escape(info.title)}</td><td>{info.profile}</td>"
            + "".join(f"<td class='num'>{c[k]}</td>" for k in ("pass", "variant", "fail", "n/a", "missing", "error"))
            + "".join(f"<td class='num'>{fmt_seconds(percentile(lat, p))}</td>" for p in (50, 90, 99, 100))
            + f"<td class='num'>{fmt_rate(tp.requests_per_second if tp else None)}</td>"
            f"<td>{html.escape(tp.method if tp else '')}</td></tr>")
    out.append("</table>")
    out.append("<p>Latency: library backends report the decision time (core: inside the process; abi: around the "
               "ctypes call); HTTP backends the round trip of a new loopback connection per suite request "
               "(differential: keep-alive). Throughput: see 'measured by'. A shared 2-core machine: compare ratios "
               "within one run.</p>")
    problems = [(n, e) for n in names for e in run.backends[n].missing + run.backends[n].errors]
    if problems:
        out.append("<h3>Backend problems</h3><ul>")
        out += [f"<li><b>{html.escape(n)}</b>: <pre>{html.escape(e)}</pre></li>" for n, e in problems]
        out.append("</ul>")

    out.append("<h2>Latency distribution</h2>")
    out.append(latency_svg({n: run.backends[n].latencies for n in names}, "suite requests"))
    if run.diff is not None:
        out.append(latency_svg({n: run.backends[n].diff_latencies for n in names if n in run.backends},
                               "differential requests"))

    if run.diff is not None:
        out.append("<h2>Differential</h2>")
        out.append(run.diff.html())

    out.append("<h2>Failures</h2>")
    if not failures:
        out.append("<p class='ok'>None.</p>")
    else:
        out.append("<table><tr><th>case</th><th>backend</th><th>request</th><th>expected</th><th>observed</th>"
                   "<th>problems</th></tr>")
        for r in failures:
            out.append(f"<tr><td>{html.escape(r.case.id)}</td><td>{html.escape(r.backend)}</td>"
                       f"<td><code>{html.escape(r.case.describe_request())}</code></td>"
                       f"<td>{html.escape(r.expected)}</td><td>{html.escape(r.observed)}</td>"
                       f"<td>{html.escape(r.detail)}</td></tr>")
        out.append("</table>")

    out.append("<h2>Cases × backends</h2><p>" + html.escape(LEGEND) + " — hover a cell for details.</p>")
    for suite in run.suites:
        out.append(f"<h3>{html.escape(suite.name)}</h3><p>{html.escape(suite.description)}</p>")
        out.append("<table><tr><th>case</th>" + "".join(f"<th>{html.escape(SHORT.get(n, n))}</th>" for n in names)
                   + "</tr>")
        for case in suite.cases:
            row = [f"<tr><td title='{html.escape(case.describe_request())}'>{html.escape(case.name)}</td>"]
            for n in names:
                r = run.results.get((case.id, n))
                if r is None:
                    row.append("<td></td>")
                    continue
                klass = {"pass": "variant" if r.matched else "pass", "n/a": "na"}.get(r.state, r.state)
                tip = "; ".join(x for x in (r.state, r.matched, r.detail, f"expected: {r.expected}" if r.expected else "",
                                            f"observed: {r.observed}" if r.observed else "") if x)
                row.append(f"<td class='c {klass}' title='{html.escape(tip)}'>{cell(r)}</td>")
            out.append("".join(row) + "</tr>")
        out.append("</table>")

    variants = sorted({(r.case.id, r.matched) for r in run.results.values() if r.state == "pass" and r.matched})
    if variants:
        out.append("<h2>Documented host differences that applied</h2><table><tr><th>case</th><th>why</th></tr>")
        out += [f"<tr><td>{html.escape(c)}</td><td>{html.escape(m)}</td></tr>" for c, m in variants]
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def results_json(run: RunResult) -> dict:
    return {
        "started": run.started, "finished": run.finished, "command": run.command,
        "backends": {n: {"title": i.title, "profile": i.profile, "traits": i.traits, "missing": i.missing,
                         "errors": i.errors,
                         "latency": {f"p{p}": percentile(i.latencies, p) for p in (50, 90, 99)},
                         "throughput": i.throughput.__dict__ if i.throughput else None}
                     for n, i in run.backends.items()},
        "results": [{"case": r.case.id, "backend": r.backend, "state": r.state, "detail": r.detail,
                     "expected": r.expected, "observed": r.observed, "matched": r.matched, "seconds": r.seconds,
                     "health": r.case.health.describe() if r.case.health is not None else None}
                    for r in run.results.values()],
        "diff": run.diff.as_json() if run.diff is not None else None,
    }


def write_reports(run: RunResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text(html_report(run))
    (directory / "results.json").write_text(json.dumps(results_json(run), indent=1, default=str))
    (directory / "table.txt").write_text(terminal(run) + "\n")
    return directory / "index.html"
