"""Median per-instance latency of SCA, L-BFGS-B and U-ESTPANet at K = 10 and K = 60 on one thread,
timed the way the runner times a solve: setup and an untimed warm-up first, then one
instance per call (U-ESTPANet's input preprocessing included).

Usage: python scripts/urllc_latency.py [N_INSTANCES]   (default 5; run it on an idle machine)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from cfbench.registry import build_registry
from cfbench.runner import WARMUP_SEED, limit_threads


def median_latency_s(problem, scenario: str, solver_cls: type, n_instances: int) -> float:
    solver = solver_cls()
    solver.setup(problem, scenario)
    limit_threads(1)
    solver.solve(problem.sample(scenario, 1, seed=WARMUP_SEED))
    instances = problem.sample(scenario, n_instances, seed=0)
    seconds = []
    for i in range(n_instances):
        start = time.perf_counter()
        solver.solve(instances[i])
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def main(n_instances: int) -> None:
    limit_threads(1)
    registry = build_registry()
    problem = registry.problem("urllc")
    for scenario in ("k10", "k60"):
        for name in ("sca", "lbfgs", "estpanet"):
            latency = median_latency_s(problem, scenario, registry.solver("urllc", name).cls, n_instances)
            torch = sys.modules.get("torch")
            threads = torch.get_num_threads() if torch is not None else "-"
            print(f"{scenario} {name}: median {1e3 * latency:.1f} ms over {n_instances} instances, "
                  f"torch threads {threads}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
