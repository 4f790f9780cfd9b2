"""asv benchmarks of solution quality: every registered solver of every problem on a fixed
seeded batch, tracked like a time (as scipy's optimize benchmarks track their results), so a
change that makes a solver worse shows up in ``asv compare`` like a slowdown does.

Per (problem, solver), on ``N_INSTANCES`` instances of :data:`CASES`' scenario (seed
:data:`SEED`, one thread; ``CFBENCH_QUALITY_INSTANCES`` overrides the count):

- ``track_objective``: mean objective over the feasible instances (NaN if none);
- ``track_feasible_rate``: share of the instances the judge calls feasible (an error or an
  invalid decision counts as infeasible);
- ``track_gap``: mean gap in % to the best feasible value any solver reached on the same
  instance (the runner's ``mean_gap_pct``, :func:`cfbench.report.comparison_table`), over the
  solver's feasible instances.

Every solver solves the whole batch in one call and the problem's evaluator judges it, as the
conformance kit checks that a batch and its instances solved one at a time agree. The solvers
are listed from the registry when asv imports this file, so a new solver is tracked at once;
``setup_cache`` solves each problem's batch once per asv run.

Run: ``asv run --python=same --bench bench_quality`` then ``asv compare A B``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cfbench.api import Solution
from cfbench.registry import build_registry
from cfbench.report import comparison_table
from cfbench.runner import limit_threads

#: problem -> scenario of its quality batch: small enough that the slowest solver takes seconds
CASES = {"urllc": "k10", "mmtc": "ku2-kd10-m10-ms5", "sum-ee": "5ap-10ue", "dmimo": "small", "uccf": "mr-k20"}
SEED = 11
N_INSTANCES = 8


def _n_instances() -> int:
    return int(os.environ.get("CFBENCH_QUALITY_INSTANCES", N_INSTANCES))


def quality_table(problem_name: str) -> dict[str, dict[str, float]]:
    """Solver -> {"objective", "feasible_rate", "gap_pct"} on the problem's quality batch."""
    limit_threads(1)
    registry = build_registry()
    problem = registry.problem(problem_name)
    scenario = CASES[problem_name]
    instances = problem.sample(scenario, _n_instances(), seed=SEED)
    n = len(instances)
    rows = []
    for name in registry.solvers_for(problem_name):
        provided = registry.solver(problem_name, name)
        objective, feasible, status = np.full(n, np.nan), np.zeros(n, bool), "ok"
        try:
            solver = provided.cls()
            solver.setup(problem, scenario)
            out = solver.solve(instances)
            decision = out.decision if isinstance(out, Solution) else out
            if problem.check_decision(instances, decision) is None:
                score = problem.evaluate(instances, decision)
                objective, feasible = np.asarray(score.objective, float), np.asarray(score.feasible, bool)
            else:
                status = "invalid"
        except Exception:           # a failing solver is tracked as infeasible, not as a broken suite
            status = "error"
        rows += [{"problem": problem_name, "scenario": scenario, "seed": SEED, "instance": i, "solver": name,
                  "kind": provided.cls.kind, "status": status, "objective": objective[i], "feasible": feasible[i],
                  "max_violation": np.nan, "latency_s": np.nan} for i in range(n)]
    table = comparison_table(pd.DataFrame(rows))
    return {r.solver: {"objective": float(r.mean_objective), "feasible_rate": r.feasible_pct / 100.0,
                       "gap_pct": float(r.mean_gap_pct)} for r in table.itertuples()}


class _Quality:
    """The three tracks; each subclass names its problem and defines its own ``setup_cache``
    (asv keys a cache by the defining function's file and line, so one shared
    ``setup_cache`` would hand every class the first problem's table)."""

    param_names = ["solver"]
    timeout = 900

    def track_objective(self, cache, solver):
        return cache[solver]["objective"]

    def track_feasible_rate(self, cache, solver):
        return cache[solver]["feasible_rate"]

    def track_gap(self, cache, solver):
        return cache[solver]["gap_pct"]

    track_objective.unit = "objective"
    track_feasible_rate.unit = "share"
    track_gap.unit = "%"


def _solvers(problem_name: str) -> tuple[list[str]]:
    return (build_registry().solvers_for(problem_name),)


class QualityUrllc(_Quality):
    params = _solvers("urllc")

    def setup_cache(self):
        return quality_table("urllc")


class QualityMmtc(_Quality):
    params = _solvers("mmtc")

    def setup_cache(self):
        return quality_table("mmtc")


class QualitySumEe(_Quality):
    params = _solvers("sum-ee")

    def setup_cache(self):
        return quality_table("sum-ee")


class QualityDmimo(_Quality):
    params = _solvers("dmimo")

    def setup_cache(self):
        return quality_table("dmimo")


class QualityUccf(_Quality):
    params = _solvers("uccf")

    def setup_cache(self):
        return quality_table("uccf")
