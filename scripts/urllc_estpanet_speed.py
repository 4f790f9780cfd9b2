"""U-ESTPANet at inference: time per instance in batches and one at a time, and what the
bfloat16 option costs in Omega, against the plain module forward it replaces.

    python scripts/urllc_estpanet_speed.py [--instances 256] [--threads 1] [--out results/latency]

Timing (scenario ``k50``, seed 0, ``--instances`` instances, batches of 64, median of 5
repeats after a warm-up, ``torch.inference_mode()``, ``--threads`` torch threads): the
network inputs included, the evaluator not. Three paths on the same inputs:
``module`` (``UESTPANet.forward`` on the whole batch, the code before the inference path),
``float32`` and ``bfloat16`` (``EstpaNet.solve`` with ``precision=...``). Their outputs
are compared with the module's.

Quality: every scenario with shipped weights, ``--instances`` instances of seed 0, each
precision scored by the problem's evaluator: mean Omega, feasible share, and the mean and
largest per-instance change of Omega against float32.
Writes ``OUT/estpanet_speed.md``; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np

from cfbench.plugins import urllc_estpanet as E
from cfbench.registry import build_registry
from cfbench.runner import WARMUP_SEED, limit_threads

SPEED_SCENARIO, BATCH = "k50", 64
QUALITY_SCENARIOS = [s for s in E.SHIPPED_WEIGHTS if s != "tiny"]


def median_s(f, repeats: int = 5) -> float:
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/latency"))
    args = parser.parse_args()
    limit_threads(args.threads)
    import torch

    registry = build_registry()
    problem = registry.problem("urllc")
    cls = registry.solver("urllc", "estpanet").cls
    solvers = {}
    for precision in ("float32", "bfloat16"):
        solvers[precision] = cls(precision=precision)
        solvers[precision].setup(problem, SPEED_SCENARIO)
        solvers[precision].solve(problem.sample(SPEED_SCENARIO, 1, seed=WARMUP_SEED))
    limit_threads(args.threads)
    load = os.getloadavg()[0]
    instances = problem.sample(SPEED_SCENARIO, args.instances, seed=0)
    batches = [instances[s:s + BATCH] for s in range(0, len(instances), BATCH)]
    network, stats = solvers["float32"].network, solvers["float32"].checkpoint["input"]

    def module_forward(batch):
        with torch.inference_mode():
            x, aerial = E.network_inputs(batch, stats["log10_beta_mean"], stats["log10_beta_std"])
            return network(x, aerial).double().numpy()

    p = instances.params
    reference = np.concatenate([module_forward(b) for b in batches])
    rows = []
    paths = {"module": module_forward,
             **{k: (lambda b, s=s: (s.solve(b)["power_w"] - p.p_min_w) / (p.p_max_w - p.p_min_w))
                for k, s in solvers.items()}}
    for name, f in paths.items():
        out = np.concatenate([f(b) for b in batches])
        batch_s = median_s(lambda: [f(b) for b in batches]) / len(instances)
        one = [instances[i] for i in range(min(32, len(instances)))]
        alone_s = median_s(lambda: [f(b) for b in one]) / len(one)
        rows.append((name, batch_s, alone_s, float(np.max(np.abs(out - reference)))))

    lines = ["# U-ESTPANet inference: speed and precision", "",
             f"`python scripts/urllc_estpanet_speed.py --instances {args.instances} --threads {args.threads}`, "
             f"{datetime.date.today()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s), load average (1 min) {load:.2f} before timing.", "",
             f"Speed: `{SPEED_SCENARIO}` (K = {p.n_terminals}), {args.instances} instances of seed 0, batches "
             f"of {BATCH}; per instance, network inputs included, evaluator not.", "",
             "| path | per instance in batches | one at a time | largest change of the output fraction vs module |",
             "|---|---|---|---|"]
    for name, batch_s, alone_s, diff in rows:
        lines.append(f"| `{name}` | {batch_s * 1e3:.3f} ms | {alone_s * 1e3:.3f} ms | {diff:.1e} |")
    lines += ["", f"Quality: {args.instances} instances of seed 0 per scenario, Omega from the evaluator.", "",
              "| scenario | mean Omega float32 | mean Omega bfloat16 | change of the mean | largest change "
              "per instance | feasible float32 | feasible bfloat16 |", "|---|---|---|---|---|---|---|"]
    for scenario in QUALITY_SCENARIOS:
        inst = problem.sample(scenario, args.instances, seed=0)
        scores = {}
        for precision in ("float32", "bfloat16"):
            s = cls(precision=precision)
            s.setup(problem, scenario)
            scores[precision] = problem.evaluate(inst, s.solve(inst))
        a, b = scores["float32"].objective, scores["bfloat16"].objective
        lines.append(f"| {scenario} | {a.mean():.5f} | {b.mean():.5f} | {100 * (b.mean() - a.mean()) / abs(a.mean()):+.3f} % "
                     f"| {np.max(np.abs(b - a)):.2e} | {100 * scores['float32'].feasible.mean():.1f} % "
                     f"| {100 * scores['bfloat16'].feasible.mean():.1f} % |")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "estpanet_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
