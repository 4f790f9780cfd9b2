"""OPC cost versus the number of terminals K_u + K_d, with fitted power-law exponents.

The coexistence paper (Section VII-C) states O((K_u + K_d)^3.5 log(1/eps)) per
Dinkelbach step (one interior-point solve of (31)) and O(N_S N_D (K_u + K_d)^3.5 ...)
in total. This script solves the ``scale-k<T>`` scenarios (T = K_u + K_d, users :
devices = 1 : 3, M = 10, M_s = 5) with OPC and opc-fast on one thread and reports,
per T: median time per drop, median number of convex solves per drop, median
time per convex solve, and the exponents of least-squares fits
``time ~ T^a`` on log-log axes.

Usage: python scripts/mmtc_opc_scaling.py [DROPS] [T ...]   (default: 6 drops, T = 4 8 12 16 24 32)
"""

from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cfbench.plugins.mmtc_fixed_point import FixedPointMaxMin
from cfbench.plugins.mmtc_opc import SequentialFractionalProgramming
from cfbench.problems.mmtc import Mmtc


def measure(problem: Mmtc, scenario: str, drops: int) -> dict:
    instances = problem.sample(scenario, drops, seed=0)
    solver = SequentialFractionalProgramming()
    solver.setup(problem, scenario)
    solve_times: list[float] = []
    inner = solver.step.solve

    def timed_solve():
        start = time.perf_counter()
        result = inner()
        solve_times.append(time.perf_counter() - start)
        return result

    solver.step.solve = timed_solve
    per_drop, solves = [], []
    for i in range(drops):
        before = len(solve_times)
        start = time.perf_counter()
        solver.solve(instances[i])
        per_drop.append(time.perf_counter() - start)
        solves.append(len(solve_times) - before)
    fast = FixedPointMaxMin()
    fast_times = []
    for i in range(drops):
        start = time.perf_counter()
        fast.solve(instances[i])
        fast_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    fast.solve(instances)
    fast_batch = (time.perf_counter() - start) / drops
    return {"opc_s": np.median(per_drop), "solves": np.median(solves), "solve_ms": 1e3 * np.median(solve_times),
            "fast_s": np.median(fast_times), "fast_batch_s": fast_batch}


def fit_exponent(t: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(t), np.log(y), 1)[0])


def main(drops: int, sizes: list[int]) -> None:
    problem = Mmtc()
    rows = {}
    with threadpool_limits(1):
        for t in sizes:
            rows[t] = measure(problem, f"scale-k{t}", drops)
            r = rows[t]
            print(f"T = {t:3d}: OPC {r['opc_s']:.2f} s/drop, {r['solves']:.0f} convex solves of "
                  f"{r['solve_ms']:.1f} ms; opc-fast {r['fast_s']:.3f} s/drop alone, "
                  f"{r['fast_batch_s']:.3f} s/drop in a batch of {drops}", flush=True)
    t = np.array(sizes, float)
    for key, label in (("opc_s", "OPC time per drop"), ("solve_ms", "time per convex solve (Dinkelbach step)"),
                       ("solves", "convex solves per drop"), ("fast_s", "opc-fast time per drop")):
        print(f"{label}: exponent {fit_exponent(t, np.array([rows[s][key] for s in sizes])):.2f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(args[0] if args else 6, args[1:] or [4, 8, 12, 16, 24, 32])
