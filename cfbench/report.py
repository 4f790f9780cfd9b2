"""Results on disk and the comparison table.

``results.parquet`` holds one row per (instance, solver); ``manifest.json``
says how it was produced. The comparison table is always recomputed from the
rows, so ``cfbench report DIR`` prints exactly what ``cfbench run`` printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tabulate import tabulate

from cfbench.api import CfbenchError
from cfbench.lazy import lazy_import

pd = lazy_import("pandas")  # imported on first use: 'cfbench list' does without it

RESULTS_FILE = "results.parquet"
MANIFEST_FILE = "manifest.json"
FORMATS = ("text", "markdown", "csv", "json")
INSTANCE_KEY = ["problem", "scenario", "seed", "instance"]
#: columns of the rows file of a run that has no finished solve yet
EMPTY_COLUMNS = [*INSTANCE_KEY, "solver", "kind", "status"]


def best_known(rows: pd.DataFrame) -> pd.Series:
    """Best feasible objective per instance over every solver in ``rows`` (NaN if none)."""
    feasible = rows[rows["feasible"]]
    best = feasible.groupby(INSTANCE_KEY)["objective"].max().rename("best_known")
    return rows.join(best, on=INSTANCE_KEY)["best_known"]


def comparison_table(rows: pd.DataFrame, paper_solver: str | None = None,
                     metrics: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """One line per solver, ranked by mean objective over its feasible rows.

    Objective statistics and the gap use feasible rows only; ``feasible_%``
    counts every row (errors, timeouts and invalid output count as infeasible).
    ``gap_%`` is ``100 (best - J) / |best|`` against the best feasible value any
    solver in the run reached on the same instance. ``speedup`` is the paper's
    iterative solver's median latency divided by this solver's. ``batch_latency_ms``
    (runs with ``--batch``; NaN for solvers that do not solve batches) is the median of
    a batch call's time divided by its size. Each name in
    ``metrics`` adds a column with the mean of ``metric_<name>`` over the ok
    rows (feasible or not), e.g. urllc's SE/EE per group and the number of
    terminals missing eps_QoS.
    """
    rows = rows.copy()
    rows["best_known"] = best_known(rows)
    rows["gap_pct"] = 100.0 * (rows["best_known"] - rows["objective"]) / rows["best_known"].abs()
    lines = []
    for solver, g in rows.groupby("solver", sort=False):
        feas = g[g["feasible"]]
        ok = g[g["status"] == "ok"]
        lines.append({
            "solver": solver,
            "kind": g["kind"].iloc[0],
            "n": len(g),
            "ok_pct": 100.0 * len(ok) / len(g),
            "feasible_pct": 100.0 * len(feas) / len(g),
            "mean_objective": feas["objective"].mean(),
            "median_objective": feas["objective"].median(),
            "mean_max_violation": ok["max_violation"].mean(),
            "mean_gap_pct": feas["gap_pct"].mean(),
            "median_latency_ms": 1e3 * ok["latency_s"].median(),
            "p95_latency_ms": 1e3 * ok["latency_s"].quantile(0.95),
            **({"batch_latency_ms": 1e3 * ok["batch_latency_s"].median()}
               if "batch_latency_s" in ok and ok["batch_latency_s"].notna().any() else {}),
            **{name: ok[f"metric_{name}"].mean() if f"metric_{name}" in ok else np.nan for name in metrics},
        })
    table = pd.DataFrame(lines)
    if paper_solver is not None and paper_solver in set(table["solver"]):
        ref = table.loc[table["solver"] == paper_solver, "median_latency_ms"].iloc[0]
        table["speedup"] = ref / table["median_latency_ms"]
    else:
        table["speedup"] = np.nan
    has_feasible = table["feasible_pct"] > 0
    table = table.assign(_has=has_feasible).sort_values(
        ["_has", "mean_objective", "feasible_pct"], ascending=[False, False, False]
    ).drop(columns="_has")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def status_summary(rows: pd.DataFrame) -> str:
    """One line per solver with any non-ok row: counts per status and the first message."""
    out = []
    for solver, g in rows.groupby("solver", sort=False):
        bad = g[g["status"] != "ok"]
        if len(bad):
            counts = ", ".join(f"{s} {c}" for s, c in bad["status"].value_counts().items())
            out.append(f"{solver}: {counts} (first: {bad['message'].iloc[0]})")
    return "\n".join(out)


def format_table(table: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=1)
    tablefmt = "github" if fmt == "markdown" else "simple"
    shown = table.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = [_number(v) for v in shown[col]]
    return tabulate(shown, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True,
                    colalign=["left" if not pd.api.types.is_numeric_dtype(table[c]) else "right" for c in table])


def _number(value: float) -> str:
    """Four significant digits, no exponent for large values (speed-ups reach 1e4)."""
    if value != value:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def write_results(out_dir: Path, rows: pd.DataFrame, manifest: dict) -> None:
    """Write rows and manifest, each atomically (a temporary file renamed over the old one,
    after fsync), so a kill at any moment leaves the previous or the new version of each,
    never a partial one. The rows go first: a manifest never promises rows that are absent."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _replace_atomically(out_dir / RESULTS_FILE, lambda path: rows.to_parquet(path, index=False))
    text = json.dumps(manifest, indent=1, default=str) + "\n"
    _replace_atomically(out_dir / MANIFEST_FILE, lambda path: path.write_text(text))


def _replace_atomically(target: Path, write) -> None:
    tmp = target.with_name(target.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    tmp.replace(target)


def read_results(out_dir: Path) -> tuple[pd.DataFrame, dict]:
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise CfbenchError(f"no {RESULTS_FILE} in {str(out_dir)!r}; pass a folder written by 'cfbench run'")
    manifest_path = Path(out_dir) / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return pd.read_parquet(path), manifest
