"""``lbfgs`` (and ``multistart-lbfgs``) against the stored ``sca`` runs, instance by instance.

Runs a solver on the first N instances (seed 0) of every ``urllc`` scenario with a
stored run under ``results/reference/urllc/<scenario>/`` (``scripts/urllc_paper_runs.sh``),
timed as the runner times a solve (setup and an untimed warm-up first, one instance per
call, one thread), scores each answer with the evaluator and compares it with the stored
``sca`` row of the same instance. Prints a markdown table: mean Omega of both on the
same instances and their relative difference, the worst per-instance ratio, feasible
counts, median latencies (``sca``'s from the stored rows, over the same instances) and
their ratio, then the latency growth exponents in K fitted over k10..k60
(``median latency ~ K^b``, least squares in log-log).

Usage: python scripts/urllc_fast_vs_sca.py [--instances N] [--solver NAME] [--scenarios A,B]
       [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.registry import build_registry
from cfbench.runner import WARMUP_SEED, limit_threads

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "results" / "reference" / "urllc"
SCENARIOS = ("k10", "k20", "k30", "k40", "k50", "k60", "alpha0.1", "alpha0.15", "alpha0.2", "alpha0.3",
             "alpha0.35", "alpha0.4", "stress-k20", "stress-k40", "stress-k60")


def compare(problem, solver_cls, scenario: str, n: int) -> dict:
    stored = pd.read_parquet(STORED / scenario / "results.parquet")
    sca = stored[stored["solver"] == "sca"].set_index("instance").sort_index().iloc[:n]
    solver = solver_cls()
    solver.setup(problem, scenario)
    limit_threads(1)
    solver.solve(problem.sample(scenario, 1, seed=WARMUP_SEED))
    instances = problem.sample(scenario, n, seed=0)
    omega, feasible, seconds = np.empty(n), np.empty(n, bool), np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        out = solver.solve(instances[i])
        seconds[i] = time.perf_counter() - start
        score = problem.evaluate(instances[i], out.decision)
        omega[i], feasible[i] = score.objective[0], score.feasible[0]
    ref = sca["objective"].to_numpy()
    ratio = omega / ref
    return {
        "scenario": scenario, "n": n,
        "Omega sca": ref.mean(), "Omega new": omega.mean(),
        "mean diff %": 100 * (omega.mean() / ref.mean() - 1),
        "worst inst %": 100 * (ratio.min() - 1), "best inst %": 100 * (ratio.max() - 1),
        "below sca by >1e-4": int(np.sum(ratio < 1 - 1e-4)),
        "feasible sca": int(sca["feasible"].sum()), "feasible new": int(feasible.sum()),
        "sca median ms": 1e3 * float(np.median(sca["latency_s"])), "new median ms": 1e3 * float(np.median(seconds)),
        "new p95 ms": 1e3 * float(np.percentile(seconds, 95)),
    }


def growth_exponent(table: pd.DataFrame, column: str) -> float:
    k = table[table["scenario"].str.fullmatch(r"k\d+")]
    K = k["scenario"].str[1:].astype(float).to_numpy()
    return float(np.polyfit(np.log(K), np.log(k[column].to_numpy()), 1)[0]) if len(K) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=64)
    ap.add_argument("--solver", default="lbfgs")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args()
    limit_threads(1)
    registry = build_registry()
    problem = registry.problem("urllc")
    cls = registry.solver("urllc", args.solver).cls
    lines = []
    for scenario in args.scenarios.split(","):
        lines.append(compare(problem, cls, scenario, args.instances))
        print(f"{scenario}: done", flush=True)
    table = pd.DataFrame(lines)
    table["speedup"] = table["sca median ms"] / table["new median ms"]
    text = [f"`{args.solver}` vs stored `sca` rows, seed 0, instances 0..{args.instances - 1} per scenario, "
            "1 thread", "", table.to_markdown(index=False, floatfmt=".4g"), "",
            f"latency growth in K over k10..k60 (median ~ K^b): {args.solver} b = "
            f"{growth_exponent(table, 'new median ms'):.2f}, sca (stored rows, same instances) b = "
            f"{growth_exponent(table, 'sca median ms'):.2f}"]
    print("\n".join(text))
    if args.out:
        args.out.write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
