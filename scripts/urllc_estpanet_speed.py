"""U-ESTPANet at inference: time per instance in batches and one at a time, and what the
bfloat16 option costs in Omega, against the plain module forward it replaces.

    python scripts/urllc_estpanet_speed.py [--instances 256] [--threads 1] [--out results/latency]

Timing (scenario ``k50``, seed 0, ``--instances`` instances, batches of 64, median of 7
repeats after a warm-up, the paths taking turns within each repeat so that a change of the
machine's speed hits them alike, ``torch.inference_mode()``, ``--threads`` torch threads): the
network inputs included, the evaluator not. Five paths on the same inputs:
``module`` (``UESTPANet.forward`` on the whole batch, the code before the inference path),
``float32`` and ``bfloat16`` (``EstpaNet.solve`` with ``precision=...``), and the same two
with ``cnn=narrow``; with ``--reference OLD.py`` also the ``solve`` of an earlier copy of the
plugin, timed in the same process. Their outputs are compared with the plain
forward of the same weights.

Quality: every scenario with shipped weights, ``--instances`` instances of seed 0, each
precision scored by the problem's evaluator: mean Omega, feasible share, and the mean and
largest per-instance change of Omega against float32; then the narrow CNN (``cnn=narrow``)
against the paper's width on the K-sweep scenarios.
Writes ``OUT/estpanet_speed.md``; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from cfbench.plugins import urllc_estpanet as E
from cfbench.registry import build_registry
from cfbench.runner import WARMUP_SEED, limit_threads

SPEED_SCENARIO, BATCH, REPEATS = "k50", 64, 7
QUALITY_SCENARIOS = [s for s in E.SHIPPED_WEIGHTS if s != "tiny"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/latency"))
    parser.add_argument("--reference", help="an earlier copy of plugins/urllc_estpanet.py whose solve is timed "
                        "alongside (rows 'reference float32' / 'reference bfloat16'), same weights")
    args = parser.parse_args()
    limit_threads(args.threads)
    import torch

    registry = build_registry()
    problem = registry.problem("urllc")
    cls = registry.solver("urllc", "estpanet").cls
    solvers = {}
    warmup = problem.sample(SPEED_SCENARIO, 1, seed=WARMUP_SEED)

    def ready(solver):
        solver.setup(problem, SPEED_SCENARIO)
        solver.solve(warmup)
        return solver

    if args.reference:
        spec = importlib.util.spec_from_file_location("urllc_estpanet_reference", args.reference)
        reference_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference_module)
        reference_module.WEIGHTS_DIR = E.WEIGHTS_DIR
        for precision in ("float32", "bfloat16"):
            solvers[f"reference {precision}"] = ready(reference_module.EstpaNet(precision=precision))
    for cnn in ("paper", "narrow"):
        for precision in ("float32", "bfloat16"):
            solvers[precision if cnn == "paper" else f"cnn=narrow, {precision}"] = ready(cls(precision=precision, cnn=cnn))
    limit_threads(args.threads)
    load = os.getloadavg()[0]
    instances = problem.sample(SPEED_SCENARIO, args.instances, seed=0)
    batches = [instances[s:s + BATCH] for s in range(0, len(instances), BATCH)]

    def module_forward(solver):
        network, stats = solver.network, solver.checkpoint["input"]

        def forward(batch):
            with torch.inference_mode():
                x, aerial = E.network_inputs(batch, stats["log10_beta_mean"], stats["log10_beta_std"])
                return network(x, aerial).double().numpy()
        return forward

    p = instances.params
    modules = {"paper": module_forward(solvers["float32"]), "narrow": module_forward(solvers["cnn=narrow, float32"])}
    reference = {k: np.concatenate([f(b) for b in batches]) for k, f in modules.items()}
    rows = []
    paths = {"module": modules["paper"],
             **{k: (lambda b, s=s: (s.solve(b)["power_w"] - p.p_min_w) / (p.p_max_w - p.p_min_w))
                for k, s in solvers.items()}}
    one = [instances[i] for i in range(min(32, len(instances)))]
    timed = {name: {"batch": [], "alone": []} for name in paths}
    for name, f in paths.items():                      # warm-up
        f(batches[0]), f(one[0])
    for _ in range(REPEATS):                           # the paths in turn, repeat by repeat
        for name, f in paths.items():
            for what, parts in (("batch", batches), ("alone", one)):
                start = time.perf_counter()
                for b in parts:
                    f(b)
                timed[name][what].append((time.perf_counter() - start) / sum(len(b) for b in parts))
    for name, f in paths.items():
        out = np.concatenate([f(b) for b in batches])
        own = reference["narrow" if name.startswith("cnn=narrow") else "paper"]
        rows.append((name, float(np.median(timed[name]["batch"])), float(np.median(timed[name]["alone"])),
                     float(np.max(np.abs(out - own)))))

    lines = ["# U-ESTPANet inference: speed and precision", "",
             f"`python scripts/urllc_estpanet_speed.py --instances {args.instances} --threads {args.threads}"
             f"{' --reference ' + args.reference if args.reference else ''}`, "
             f"{datetime.date.today()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s), load average (1 min) {load:.2f} before timing.", "",
             f"Speed: `{SPEED_SCENARIO}` (K = {p.n_terminals}), {args.instances} instances of seed 0, batches "
             f"of {BATCH}; per instance, network inputs included, evaluator not.", "",
             "| path | per instance in batches | one at a time | largest change of the output fraction vs the "
             "plain forward of the same weights |",
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
    lines += ["", f"Narrow CNN (`cnn=narrow`, d_cnn = 32) against the paper's width on the K-sweep scenarios, "
              f"{args.instances} instances of seed 0, Omega from the evaluator.", "",
              "| scenario | mean Omega paper (float32) | mean Omega narrow (float32) | change | narrow bfloat16 "
              "| feasible paper / narrow |", "|---|---|---|---|---|---|"]
    for scenario in [s for s in E.NARROW_WEIGHTS if s != "alpha0.25"]:
        inst = problem.sample(scenario, args.instances, seed=0)
        scores = {}
        for key, options in (("paper", {}), ("narrow", {"cnn": "narrow"}),
                             ("narrow-bf16", {"cnn": "narrow", "precision": "bfloat16"})):
            s = cls(**options)
            s.setup(problem, scenario)
            scores[key] = problem.evaluate(inst, s.solve(inst))
        a, b, c = (scores[k].objective.mean() for k in ("paper", "narrow", "narrow-bf16"))
        lines.append(f"| {scenario} | {a:.5f} | {b:.5f} | {100 * (b - a) / abs(a):+.3f} % | {c:.5f} "
                     f"| {100 * scores['paper'].feasible.mean():.1f} % / {100 * scores['narrow'].feasible.mean():.1f} % |")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "estpanet_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
