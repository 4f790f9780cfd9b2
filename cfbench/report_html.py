"""``cfbench report DIR --html FILE``: one self-contained HTML page of a run.

The page holds the run's manifest, the comparison table (the very table
``cfbench report`` prints, from :func:`cfbench.report.comparison_table`), and
plots drawn with matplotlib: per-solver objective CDFs (all valid rows with
the infeasible ones marked, beside the feasible rows alone), latency
distributions on a log axis, feasibility per solver, and the problem's own
plot types when its :meth:`cfbench.Problem.report_plots` returns any (urllc:
per-terminal SE and EE CDFs).

Every plot is inlined as SVG (glyphs drawn as paths, no metadata links), the
style sheet is inline and there is no script, so the file opens offline and
can be mailed or archived as one artefact; nothing in it points to a network
address. Each plot sits in a ``<figure data-plot="NAME">`` and the table is
``<table id="comparison-table">``, so tests (and readers' tools) can find them.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cfbench.api import CfbenchError, Problem
from cfbench.report import _number, _replace_atomically, comparison_table, status_summary

#: the plots every run gets, by their ``data-plot`` name
GENERIC_PLOTS = ("objective-cdf", "latency", "feasibility")
#: manifest keys shown at the top of the page, in this order
MANIFEST_KEYS = ("command", "problem", "scenario", "seed", "n_instances", "threads", "timeout_s", "complete",
                 "git_commit", "created_utc", "cpu", "platform")

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
dl.manifest { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; font-size: 0.9em; }
dl.manifest dt { font-weight: bold; } dl.manifest dd { margin: 0; font-family: monospace; word-break: break-all; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #444; margin-bottom: 0.4em; }
figure svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.note { color: #8a4b00; } .scroll { overflow-x: auto; }
"""


def _matplotlib():
    """The ``Figure`` class, or a one-line error saying how to get matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CfbenchError("--html needs matplotlib; install it with: pip install 'cfbench[report]'") from None
    return Figure


def solver_colors(solvers: Sequence[str]) -> dict[str, str]:
    """One colour per solver (matplotlib's tab10/tab20 cycle), the same in every plot of the page."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
    return {s: palette[k % len(palette)] for k, s in enumerate(solvers)}


def ecdf(values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite values and their empirical CDF levels ``1/n .. 1``."""
    x = np.sort(np.asarray(values, dtype=float)[np.isfinite(np.asarray(values, dtype=float))])
    return x, np.arange(1, len(x) + 1) / max(len(x), 1)


def objective_cdf_figure(rows: pd.DataFrame, order: Sequence[str], unit: str):
    """Left: CDF of the objective over every valid row, infeasible ones marked ``x``; right: feasible rows only."""
    Figure = _matplotlib()
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    colors = solver_colors(order)
    for solver in order:
        g = rows[(rows["solver"] == solver) & (rows["status"] == "ok")]
        g = g[np.isfinite(g["objective"].astype(float))].sort_values("objective")
        if len(g):
            levels = np.arange(1, len(g) + 1) / len(g)
            left.step(g["objective"], levels, where="post", color=colors[solver], label=solver)
            bad = ~g["feasible"].to_numpy(bool)
            if bad.any():
                left.plot(g["objective"].to_numpy()[bad], levels[bad], "x", color=colors[solver], ms=6)
        x, level = ecdf(g.loc[g["feasible"], "objective"])
        if len(x):
            right.step(x, level, where="post", color=colors[solver], label=solver)
    label = f"objective ({unit})" if unit else "objective"
    left.set(title="all valid rows (x: infeasible)", xlabel=label, ylabel="fraction of instances")
    right.set(title="feasible rows only", xlabel=label)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.02)
    left.legend(fontsize="small", loc="upper left")
    return fig


def latency_figure(rows: pd.DataFrame, order: Sequence[str]):
    """Per-solver latency of the ok rows as box plots (whiskers 5-95 %) over the points, log axis."""
    Figure = _matplotlib()
    fig = Figure(figsize=(9, 0.45 * len(order) + 1.4), layout="constrained")
    ax = fig.subplots()
    colors = solver_colors(order)
    data = []
    for k, solver in enumerate(order):
        ms = 1e3 * rows.loc[(rows["solver"] == solver) & (rows["status"] == "ok"), "latency_s"].astype(float)
        ms = ms[np.isfinite(ms) & (ms > 0)].to_numpy()
        data.append(ms if len(ms) else np.array([np.nan]))
        jitter = np.random.default_rng(k).uniform(-0.15, 0.15, len(ms))
        ax.plot(ms, len(order) - k + jitter, "o", color=colors[solver], alpha=0.4, ms=3)
    box = dict(positions=np.arange(len(order), 0, -1), whis=(5, 95), showfliers=False, widths=0.5,
               medianprops={"color": "black"})
    try:
        ax.boxplot(data, orientation="horizontal", **box)  # matplotlib >= 3.10
    except TypeError:
        ax.boxplot(data, vert=False, **box)
    ax.set_yticks(np.arange(len(order), 0, -1), labels=list(order))
    ax.set_xscale("log")
    ax.set(xlabel="latency per solve (ms, log scale)", title="latency of the ok rows (box 25-75 %, whiskers 5-95 %)")
    ax.grid(alpha=0.3, axis="x", which="both")
    return fig


def feasibility_figure(rows: pd.DataFrame, order: Sequence[str]):
    """Per solver, the share of rows that are feasible, valid but infeasible, or not ok (by status)."""
    Figure = _matplotlib()
    fig = Figure(figsize=(9, 0.45 * len(order) + 1.4), layout="constrained")
    ax = fig.subplots()
    statuses = sorted(set(rows["status"]) - {"ok"})
    parts = [("feasible", "#2ca02c"), ("infeasible", "#ff7f0e")] + [
        (s, c) for s, c in zip(statuses, ["#d62728", "#7f7f7f", "#9467bd", "#8c564b", "#17becf"] * 4)]
    y = np.arange(len(order), 0, -1)
    start = np.zeros(len(order))
    for name, color in parts:
        share = []
        for solver in order:
            g = rows[rows["solver"] == solver]
            if name == "feasible":
                count = int(g["feasible"].sum())
            elif name == "infeasible":
                count = int(((g["status"] == "ok") & ~g["feasible"].astype(bool)).sum())
            else:
                count = int((g["status"] == name).sum())
            share.append(100.0 * count / max(len(g), 1))
        ax.barh(y, share, left=start, color=color, label=name, height=0.6)
        start += np.asarray(share)
    for yy, solver in zip(y, order):
        g = rows[rows["solver"] == solver]
        ax.text(101, yy, f"{100.0 * g['feasible'].sum() / max(len(g), 1):.0f} %", va="center", fontsize="small")
    ax.set_yticks(y, labels=list(order))
    ax.set(xlim=(0, 110), xlabel="% of instances", title="feasibility per solver")
    fig.legend(*ax.get_legend_handles_labels(), fontsize="small", loc="outside lower center", ncols=len(parts))
    return fig


def figure_svg(fig) -> str:
    """The figure as an inline ``<svg>`` element: no XML prologue, no metadata, glyphs as paths."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    svg = text[text.index("<svg"):]
    # an HTML parser puts inline <svg> (and xlink:href) in their namespaces itself; dropping the
    # declarations leaves no URL of any kind in the page
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)


def _table_html(table: pd.DataFrame) -> str:
    head = "".join(f'<th class="{"text" if not pd.api.types.is_numeric_dtype(table[c]) else "num"}">'
                   f"{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for _, line in table.iterrows():
        cells = []
        for c in table.columns:
            value = line[c]
            if pd.api.types.is_float_dtype(table[c]):
                cells.append(f"<td>{html.escape(_number(float(value)))}</td>")
            elif pd.api.types.is_numeric_dtype(table[c]):
                cells.append(f"<td>{html.escape(str(value))}</td>")
            else:
                cells.append(f'<td class="text">{html.escape(str(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="comparison-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _manifest_html(manifest: dict) -> str:
    items = "".join(f"<dt>{html.escape(key)}</dt><dd>{html.escape(str(manifest[key]))}</dd>"
                    for key in MANIFEST_KEYS if key in manifest)
    solvers = manifest.get("solvers", {})
    if solvers:
        shown = ", ".join(f"{name} ({info.get('kind', '?')})" for name, info in solvers.items())
        items += f"<dt>solvers</dt><dd>{html.escape(shown)}</dd>"
    full = html.escape(json.dumps(manifest, indent=1, default=str))
    return (f'<section id="manifest"><h2>Manifest</h2><dl class="manifest">{items}</dl>'
            f"<details><summary>full manifest.json</summary><pre>{full}</pre></details></section>")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "plot"


def _figure_html(name: str, title: str, fig) -> str:
    return (f'<figure data-plot="{html.escape(name)}"><figcaption>{html.escape(title)}</figcaption>'
            f"{figure_svg(fig)}</figure>")


def problem_plots(problem: Problem | None, rows: pd.DataFrame, manifest: dict) -> list[tuple[str, str, Any]]:
    """``(data-plot name, title, figure)`` of the problem's own plots, named ``<problem>-<slug of title>``."""
    if problem is None:
        return []
    out, seen = [], set()
    for title, fig in problem.report_plots(rows, manifest) or []:
        name = f"{problem.name}-{_slug(title)}"
        while name in seen:
            name += "-2"
        seen.add(name)
        out.append((name, title, fig))
    return out


def render_html(rows: pd.DataFrame, manifest: dict, problem: Problem | None = None,
                problem_note: str | None = None) -> str:
    """The whole page as a string; ``problem`` (the run's problem object, when registered
    here) contributes its :meth:`~cfbench.Problem.report_plots`, ``problem_note`` says why not."""
    _matplotlib()
    title = f"cfbench: {manifest.get('problem', '?')} / {manifest.get('scenario', '?')}"
    parts = [f"<h1>{html.escape(title)}</h1>", _manifest_html(manifest)]
    if not len(rows):
        parts.append('<p class="note">no finished solves yet</p>')
    else:
        table = comparison_table(rows, manifest.get("paper_iterative_solver"), manifest.get("table_metrics", ()))
        order = list(table["solver"])
        unit = manifest.get("objective_unit", "")
        parts.append(f'<section id="table"><h2>Comparison</h2><p>{rows["instance"].nunique()} instances, seed '
                     f'{html.escape(str(manifest.get("seed")))}; objective '
                     f'{html.escape("in " + unit if unit else "dimensionless")}, ranked by mean feasible objective.'
                     f'</p><div class="scroll">{_table_html(table)}</div>')
        summary = status_summary(rows)
        if summary:
            parts.append(f"<h3>Non-ok rows</h3><pre>{html.escape(summary)}</pre>")
        parts.append("</section>")
        generic = [("objective-cdf", "Objective CDF per solver", objective_cdf_figure(rows, order, unit)),
                   ("latency", "Latency per solver", latency_figure(rows, order)),
                   ("feasibility", "Feasibility per solver", feasibility_figure(rows, order))]
        parts.append('<section id="plots"><h2>Plots</h2>'
                     + "".join(_figure_html(*plot) for plot in generic) + "</section>")
        rank = {s: k for k, s in enumerate(order)}
        ranked = rows.assign(_rank=rows["solver"].map(rank)).sort_values("_rank", kind="stable").drop(columns="_rank")
        own = problem_plots(problem, ranked, manifest)
        if own or problem_note:
            parts.append(f'<section id="problem-plots"><h2>{html.escape(str(manifest.get("problem")))}: '
                         "the paper's plot types</h2>"
                         + (f'<p class="note">{html.escape(problem_note)}</p>' if problem_note else "")
                         + "".join(_figure_html(*plot) for plot in own) + "</section>")
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    parts.append(f"<footer><p>generated {generated} by cfbench report --html</p></footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def run_problem(manifest: dict) -> tuple[Problem | None, str | None]:
    """The run's problem from the plugin registry, or ``None`` and why its own plots are left out."""
    from cfbench.registry import build_registry

    name = manifest.get("problem")
    registry = build_registry()
    if name not in registry.problems:
        return None, f"problem {name!r} is not registered in this installation; its own plots are left out"
    problem = registry.problem(name)
    if manifest.get("scenario") not in problem.scenarios:
        return None, (f"scenario {manifest.get('scenario')!r} is not defined by problem {name!r} here; "
                      "its own plots are left out")
    return problem, None


def write_html(path: Path | str, rows: pd.DataFrame, manifest: dict, problem: Problem | None = None,
               problem_note: str | None = None) -> Path:
    """Render the page and write it atomically to ``path`` (its folder must exist).
    Without ``problem`` the run's own problem is looked up in the plugin registry."""
    path = Path(path)
    if problem is None and problem_note is None:
        problem, problem_note = run_problem(manifest)
    if not path.parent.is_dir():
        raise CfbenchError(f"cannot write --html {str(path)!r}: folder {str(path.parent)!r} does not exist")
    text = render_html(rows, manifest, problem, problem_note)
    _replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
