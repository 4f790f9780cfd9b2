"""``cfbench compare OLD NEW``: did a change make any solver worse?

Two runs of the same problem, scenario and seed hold the same instances, so
each solver's rows pair up on the instance index and a change shows as paired
differences rather than as two noisy means. Per solver in both runs:

- objective: means over the instances feasible in both runs (``pairs``), the change
  (absolute and relative to the old mean) and a one-sided Wilcoxon
  signed-rank test of "the new objective is worse" on those pairs (worse =
  lower for a maximised objective, higher for a minimised one); when every
  paired difference is exactly zero the verdict is ``identical``;
- feasibility: feasible instances in each run, and how many became
  infeasible (``lost``) or feasible (``gained``);
- latency: median over the ok rows of each run and their ratio (reported,
  never judged: it depends on the machine more than on the code).

A *regression* is a solver whose mean objective worsened by more than
``threshold`` (relative) with ``p < alpha``, or that lost feasibility on any
instance; the command then exits with status 1, so it can gate CI. Bad input
(a missing folder, a file that is not a run's parquet, runs of different
problems, scenarios or seeds) is a one-line error with status 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfbench.api import CfbenchError
from cfbench.lazy import lazy_import
from cfbench.validate import number_argument
from cfbench.report import MANIFEST_FILE, RESULTS_FILE, format_table

pd = lazy_import("pandas")  # imported on first use: 'cfbench list' does without it

#: columns a run's rows must have for a comparison
REQUIRED_COLUMNS = ("solver", "instance", "status", "objective", "feasible", "latency_s")
#: what must agree for two runs to hold the same instances
SAME_RUN_KEYS = ("problem", "scenario", "seed")
DEFAULT_THRESHOLD = 0.01
DEFAULT_ALPHA = 0.05


@dataclass
class Run:
    """One run folder: its rows, manifest and the identity of its instance stream."""

    path: Path
    rows: pd.DataFrame
    manifest: dict

    def key(self, name: str):
        """``problem``, ``scenario`` or ``seed`` from the manifest, else from the rows."""
        if name in self.manifest:
            return self.manifest[name]
        if name in self.rows and len(self.rows):
            value = self.rows[name].iloc[0]
            return value.item() if isinstance(value, np.generic) else value
        return None


def load_run(path: Path | str) -> Run:
    """Read a run folder, turning every way it can be unreadable into a one-line error."""
    path = Path(path)
    if not path.is_dir():
        raise CfbenchError(f"no run folder {str(path)!r}; pass a folder written by 'cfbench run'")
    if not (path / RESULTS_FILE).is_file():
        raise CfbenchError(f"no {RESULTS_FILE} in {str(path)!r}; pass a folder written by 'cfbench run'")
    try:
        rows = pd.read_parquet(path / RESULTS_FILE)
    except Exception as exc:  # pyarrow raises several types for a corrupted or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CfbenchError(f"cannot read {str(path / RESULTS_FILE)!r}: {reason}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise CfbenchError(f"{str(path / RESULTS_FILE)!r} is not a cfbench results file: "
                           f"it lacks column(s) {', '.join(missing)}")
    manifest = {}
    if (path / MANIFEST_FILE).is_file():
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CfbenchError(f"cannot read {str(path / MANIFEST_FILE)!r}: {exc}") from None
        if not isinstance(manifest, dict):
            raise CfbenchError(f"{str(path / MANIFEST_FILE)!r} is not a cfbench manifest (not a JSON object)")
    return Run(path, rows, manifest)


def objective_sense(old: Run, new: Run) -> str:
    """``"max"`` or ``"min"``: from the manifests, else the registered problem, else ``"max"``
    (every problem of the suite maximises)."""
    for run in (old, new):
        if run.manifest.get("objective_sense") in ("max", "min"):
            return run.manifest["objective_sense"]
    from cfbench.registry import build_registry

    registry = build_registry()
    provided = registry.problems.get(old.key("problem"))
    return getattr(provided.cls, "sense", "max") if provided is not None else "max"


def check_same_instances(old: Run, new: Run) -> None:
    for name in SAME_RUN_KEYS:
        a, b = old.key(name), new.key(name)
        if a != b:
            raise CfbenchError(f"the runs differ in {name}: {str(old.path)!r} has {a!r}, {str(new.path)!r} has "
                               f"{b!r}; compare runs of the same problem, scenario and seed")


def _worse_p_value(old: np.ndarray, new: np.ndarray, sense: str) -> float:
    """One-sided Wilcoxon signed-rank p-value of "new is worse than old" on paired values."""
    from scipy.stats import wilcoxon

    diff = new - old
    if not np.any(diff != 0):
        return 1.0
    return float(wilcoxon(new, old, alternative="less" if sense == "max" else "greater").pvalue)


def compare_runs(old: Run, new: Run, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                 sense: str = "max") -> pd.DataFrame:
    """One line per solver present in both runs (in the old run's order); ``regression`` says
    whether it fails the gate."""
    old_solvers = list(dict.fromkeys(old.rows["solver"]))
    common = [s for s in old_solvers if s in set(new.rows["solver"])]
    if not common:
        raise CfbenchError(f"no solver in both runs: {str(old.path)!r} has {', '.join(old_solvers) or '(none)'}, "
                           f"{str(new.path)!r} has {', '.join(dict.fromkeys(new.rows['solver'])) or '(none)'}")
    sign = 1.0 if sense == "max" else -1.0
    lines = []
    for solver in common:
        a = old.rows[old.rows["solver"] == solver].drop_duplicates("instance", keep="last").set_index("instance")
        b = new.rows[new.rows["solver"] == solver].drop_duplicates("instance", keep="last").set_index("instance")
        both = a.index.intersection(b.index)
        a, b = a.loc[both], b.loc[both]
        fa, fb = a["feasible"].astype(bool).to_numpy(), b["feasible"].astype(bool).to_numpy()
        paired = fa & fb
        ja, jb = a["objective"].to_numpy(float)[paired], b["objective"].to_numpy(float)[paired]
        finite = np.isfinite(ja) & np.isfinite(jb)
        ja, jb = ja[finite], jb[finite]
        mean_old, mean_new = (float(ja.mean()), float(jb.mean())) if len(ja) else (np.nan, np.nan)
        change = mean_new - mean_old
        if mean_old != 0 and np.isfinite(mean_old):
            relative = change / abs(mean_old)
        else:
            relative = 0.0 if change == 0 else np.sign(change) * np.inf
        identical = len(ja) > 0 and not np.any(jb != ja)
        p_worse = _worse_p_value(ja, jb, sense) if len(ja) else np.nan
        lost, gained = int((fa & ~fb).sum()), int((~fa & fb).sum())
        worsening = -sign * relative  # > 0 means worse
        objective_regressed = bool(len(ja) and worsening > threshold and p_worse < alpha)
        lat_old = a.loc[a["status"] == "ok", "latency_s"].median()
        lat_new = b.loc[b["status"] == "ok", "latency_s"].median()
        if objective_regressed or lost:
            verdict = "REGRESSION" + (f": {lost} instance(s) became infeasible" if lost else "")
        elif identical and not gained:
            verdict = "identical"
        elif len(ja) and sign * relative > threshold and _worse_p_value(jb, ja, sense) < alpha:
            verdict = "better"
        elif gained:
            verdict = f"{gained} instance(s) became feasible"
        elif len(ja) and worsening > threshold:
            verdict = "worse, not significant"
        else:
            verdict = "no significant change"
        lines.append({
            "solver": solver,
            "pairs": len(ja),
            "old_mean": mean_old,
            "new_mean": mean_new,
            "change": change,
            "change_pct": 100.0 * relative,
            "p_worse": p_worse,
            "old_feasible": int(fa.sum()),
            "new_feasible": int(fb.sum()),
            "lost": lost,
            "gained": gained,
            "old_median_ms": 1e3 * lat_old,
            "new_median_ms": 1e3 * lat_new,
            "latency_ratio": lat_new / lat_old if lat_old and lat_old > 0 else np.nan,
            "verdict": verdict,
            "regression": objective_regressed or lost > 0,
        })
    return pd.DataFrame(lines)


def render(old: Run, new: Run, table: pd.DataFrame, threshold: float, alpha: float, sense: str, fmt: str) -> str:
    """The table in ``fmt`` and, for ``text``, a header and the verdict line."""
    shown = table.drop(columns="regression")
    if fmt != "text":
        return format_table(shown, fmt)
    only_old = sorted(set(old.rows["solver"]) - set(new.rows["solver"]))
    only_new = sorted(set(new.rows["solver"]) - set(old.rows["solver"]))
    out = [f"{old.key('problem')} / {old.key('scenario')}, seed {old.key('seed')}: {str(old.path)!r} (old) vs "
           f"{str(new.path)!r} (new)\nobjective {'maximised' if sense == 'max' else 'minimised'}; means over "
           "instances feasible in both; p_worse: one-sided Wilcoxon signed-rank test on those pairs",
           format_table(shown, "text")]
    if only_old or only_new:
        out.append("not compared: " + "; ".join(
            part for part in (f"only in old: {', '.join(only_old)}" if only_old else "",
                              f"only in new: {', '.join(only_new)}" if only_new else "") if part))
    fewest = min_pairs(alpha)
    few = table[(table["pairs"] < fewest) & (table["verdict"] != "identical")]
    if len(few):
        out.append(f"note: with fewer than {fewest} paired instances the one-sided test cannot reach p < {alpha:g} "
                   f"(smallest p = 2^-pairs): {', '.join(few['solver'])}; run more instances")
    bad = table[table["regression"]]
    if len(bad):
        out.append(f"regression (objective worse by > {100 * threshold:g} % with p < {alpha:g}, or feasibility "
                   f"lost): {', '.join(bad['solver'])}")
    else:
        out.append(f"no regression (objective worse by > {100 * threshold:g} % with p < {alpha:g}, or "
                   "feasibility lost)")
    return "\n".join(out)


def min_pairs(alpha: float) -> int:
    """Fewest paired instances with which the exact one-sided signed-rank test can reach ``p < alpha``."""
    return int(np.floor(np.log2(1.0 / alpha))) + 1


def compare_dirs(old_dir: Path | str, new_dir: Path | str, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = DEFAULT_ALPHA, fmt: str = "text") -> tuple[str, int]:
    """The printed comparison and the exit status: 1 on a regression, else 0."""
    old, new = load_run(old_dir), load_run(new_dir)
    check_same_instances(old, new)
    sense = objective_sense(old, new)
    table = compare_runs(old, new, threshold, alpha, sense)
    return render(old, new, table, threshold, alpha, sense, fmt), int(table["regression"].any())


#: argparse type of ``--threshold``: a relative change, 0 or more (0.01 = 1 %)
fraction = number_argument(float, lambda v: 0 <= v < float("inf"), "a relative change >= 0 such as 0.01")
#: argparse type of ``--alpha``: a significance level in (0, 1)
probability = number_argument(float, lambda v: 0 < v < 1, "a significance level in (0, 1)")
