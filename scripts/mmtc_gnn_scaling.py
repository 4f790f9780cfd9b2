"""Inference cost of the mmtc GNN against the number of line-graph edges.

For each scenario: nodes ``M (K_u + K_d)``, directed edges
``M K_u (K_u - 1) + M K_d (K_d - 1) + 2 M K_u K_d + (K_u + K_d) M (M - 1)`` (the six types
of Section VI-A), and the median latency of one drop (batch of one) and per drop in a
batch of 256, under ``torch.inference_mode()`` on one thread; then the fitted exponent
of latency against edges. Usage: python scripts/mmtc_gnn_scaling.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from cfbench.plugins import mmtc_gnn as gnn
from cfbench.problems.mmtc import Mmtc

SCENARIOS = ("scale-k4", "scale-k8", "scale-k12", "scale-k16", "scale-k24", "scale-k32", *gnn.TABLE_II)
REPEATS = 30


def edges(p) -> int:
    M, ku, kd = p.n_aps, p.n_users, p.n_devices
    return M * ku * (ku - 1) + M * kd * (kd - 1) + 2 * M * ku * kd + (ku + kd) * M * (M - 1)


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    torch.set_num_threads(1)
    problem = Mmtc()
    solver = gnn.HeterogeneousGnn()
    rows = []
    for s in SCENARIOS:
        solver.setup(problem, s)
        one = problem.sample(s, 1, seed=0)
        batch = problem.sample(s, 256, seed=0)
        with torch.inference_mode():
            t1 = median_seconds(lambda: solver.solve(one), REPEATS)
            t256 = median_seconds(lambda: solver.solve(batch), 3) / 256
        p = one.params
        rows.append((s, p.n_aps * (p.n_users + p.n_devices), edges(p), t1, t256))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    print("| scenario | nodes | edges | ms per drop (alone) | ms per drop (batch of 256) |")
    print("|---|---|---|---|---|")
    for s, n, e, t1, t256 in rows:
        print(f"| {s} | {n} | {e} | {1e3 * t1:.2f} | {1e3 * t256:.3f} |")
    scale = [r for r in rows if r[0].startswith("scale-")]
    e = np.log([r[2] for r in scale])
    for name, col in (("alone", 3), ("batch of 256", 4)):
        slope = np.polyfit(e, np.log([r[col] for r in scale]), 1)[0]
        print(f"fitted latency ~ edges^{slope:.2f} ({name}, scale-k4 ... scale-k32)")


if __name__ == "__main__":
    main()
