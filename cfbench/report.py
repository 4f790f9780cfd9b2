"""Results on disk and the comparison table.

``results.parquet`` holds one row per (instance, solver); ``manifest.json``
says how it was produced. The comparison table is always recomputed from the
rows, so ``cfbench report DIR`` prints exactly what ``cfbench run`` printed.
"""

from __future__ import annotations

import json
import os
import re
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
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written file left beside the previous version
        raise


#: columns ``cfbench report`` reads from a run's rows (besides :data:`EMPTY_COLUMNS`)
ROW_COLUMNS = [*EMPTY_COLUMNS, "objective", "max_violation", "feasible", "latency_s", "message"]
#: manifest keys that are read, with the types they must have when present
MANIFEST_TYPES = {"problem": str, "scenario": str, "seed": int, "n_instances": int, "threads": int,
                  "solvers": dict, "command": str, "complete": bool, "objective_unit": str,
                  "paper_iterative_solver": (str, type(None)), "table_metrics": list, "created_utc": str,
                  "appended": list, "resumed": list}


def read_results(out_dir: Path) -> tuple[pd.DataFrame, dict]:
    """The rows and manifest of a run folder. A folder that is not a run, a rows file that
    is not parquet or lacks the columns of a run, a manifest that is not a JSON object with
    the keys of one: :class:`CfbenchError` naming the file and what is wrong (one line)."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise CfbenchError(f"no {RESULTS_FILE} in {str(out_dir)!r}; pass a folder written by 'cfbench run'")
    manifest_path = Path(out_dir) / MANIFEST_FILE
    manifest = read_manifest(manifest_path) if manifest_path.exists() else {}
    import pyarrow.parquet

    try:
        # full validation first: pandas decodes strings lazily, so invalid UTF-8 would fail later
        pyarrow.parquet.read_table(path).validate(full=True)
        rows = pd.read_parquet(path)
    except Exception as exc:  # damaged bytes fail anywhere in pyarrow and pandas (ArrowInvalid, KeyError, ...)
        cause = re.sub(r"^Could not open Parquet input source '.*?': ", "", _first_line(exc))
        raise CfbenchError(f"{str(path)!r} is not a readable parquet file ({cause})") from None
    missing = [c for c in (ROW_COLUMNS if len(rows) else EMPTY_COLUMNS) if c not in rows.columns]
    if missing:
        raise CfbenchError(f"{str(path)!r} is not the rows of a cfbench run: missing column(s) {', '.join(missing)}")
    if len(rows):
        checks = {"feasible": pd.api.types.is_bool_dtype, "instance": pd.api.types.is_integer_dtype,
                  **{c: pd.api.types.is_numeric_dtype for c in ("objective", "max_violation", "latency_s")}}
        for column, ok in checks.items():
            if not ok(rows[column]) or pd.api.types.is_bool_dtype(rows[column]) != (column == "feasible"):
                raise CfbenchError(f"{str(path)!r} is not the rows of a cfbench run: column {column!r} holds "
                                   f"{rows[column].dtype}")
    return rows, manifest


def read_manifest(path: Path) -> dict:
    """``manifest.json`` of a run: a JSON object whose known keys have their types."""
    try:
        manifest = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise CfbenchError(f"cannot read {str(path)!r} ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError as exc:
        raise CfbenchError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # json.JSONDecodeError, and numbers json refuses
        raise CfbenchError(f"{str(path)!r} is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(manifest, dict):
        raise CfbenchError(f"{str(path)!r} is not a cfbench manifest: a JSON object expected, got a JSON "
                           f"{_json_type(manifest)}")
    for key, types in MANIFEST_TYPES.items():
        value = manifest.get(key)
        if key in manifest and (not isinstance(value, types) or (types is int and isinstance(value, bool))):
            raise CfbenchError(f"{str(path)!r} is not a cfbench manifest: {key!r} is a JSON {_json_type(value)}")
    if any(not isinstance(v, dict) for v in manifest.get("solvers", {}).values()):
        raise CfbenchError(f"{str(path)!r} is not a cfbench manifest: 'solvers' maps names to non-objects")
    if any(not isinstance(m, str) for m in manifest.get("table_metrics", [])):
        raise CfbenchError(f"{str(path)!r} is not a cfbench manifest: 'table_metrics' holds a non-string")
    if manifest.get("n_instances", 0) < 0:
        raise CfbenchError(f"{str(path)!r} is not a cfbench manifest: 'n_instances' is negative")
    return manifest


def _json_type(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
