"""sum-ee gnn forward speed, optionally against an earlier version of the module in the same process.

    python scripts/sum_ee_gnn_speed.py [--reference OLD_MODULE.py] [--instances 64] [--chunk 4] [--repeats 3]
    python scripts/sum_ee_gnn_speed.py --compile [--precision float32] [--chunk 1]
    python scripts/sum_ee_gnn_speed.py --training [--reference OLD_MODULE.py]

The joint model (``plugins/weights/gnn-sum-ee.pt``; every shipped default has its size) in float64 under
``torch.inference_mode()`` on one thread; per configuration ms per instance of the network alone
on ``--instances`` instances of seed 3 fed in chunks of ``--chunk`` (best of the repeats).
``--reference`` (e.g. ``git show 44164db:plugins/sum_ee_gnn.py > /tmp/old.py``) times that copy
on the same inputs and weights, alternating with the current one, and prints the largest relative
difference of the outputs ``z_a, z_w``. ``--compile`` times the network through
``torch.compile`` as the solver's option ``compile=true`` builds it (``compile_network``, compiled
before the timing) next to the eager one. ``--precision float32`` runs the networks in float32
(default float64). ``--training`` times one training step instead (float32,
a batch of 64 instances, 8 draws of u per instance, the loss of Section III and its backward
pass, as ``cfbench train`` runs it; best of the repeats).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import time

import torch

from cfbench.learning import load_checkpoint
from cfbench.plugins import sum_ee_gnn
from cfbench.registry import build_registry

CONFIGURATIONS = ("tiny", "5ap-10ue", "10ap-10ue", "15ap-15ue")


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("sum_ee_gnn_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="an earlier copy of plugins/sum_ee_gnn.py to time alongside")
    parser.add_argument("--instances", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--training", action="store_true", help="time a training step instead of the forward")
    parser.add_argument("--compile", action="store_true", help="also time the network through torch.compile")
    parser.add_argument("--precision", choices=sum_ee_gnn.PRECISIONS, default="float64")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(sum_ee_gnn.WEIGHTS_DIR / sum_ee_gnn.SHIPPED_WEIGHTS)
    modules = {"current": sum_ee_gnn}
    if args.reference:
        modules["reference"] = load_module(args.reference)
    dtype = getattr(torch, args.precision)
    networks = {k: m.network_from_checkpoint(checkpoint).to(dtype).eval() for k, m in modules.items()}
    problem = build_registry().problem("sum-ee")
    if args.training:
        return training_steps(modules, checkpoint, problem, args.repeats)
    print(f"sum-ee gnn forward, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread, {args.precision}, inference_mode, load average before "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.instances} instances (seed 3) in chunks of "
          f"{args.chunk}, best of {args.repeats}\n")
    names = list(networks) + (["compiled"] if args.compile else [])
    other = "reference" if args.reference else "compiled" if args.compile else None
    print("| configuration | " + " | ".join(f"{k} (ms per instance)" for k in names)
          + (" | largest relative difference |" if other else " |"))
    print("|---" * (len(names) + 1 + bool(other)) + "|")
    for scenario in CONFIGURATIONS:
        instances = problem.sample(scenario, args.instances, seed=3)
        if args.compile:                             # both graphs the timing calls, compiled first
            p = instances.params
            networks["compiled"] = sum_ee_gnn.compile_network(networks["current"], p.n_ues, p.n_aps, args.chunk, dtype)
        best = {k: float("inf") for k in networks}
        with torch.inference_mode():                 # inputs made here too: a compiled graph expects them
            x = sum_ee_gnn.network_inputs(instances.gain_over_noise, checkpoint["input"], dtype)
            outputs = {k: net(x[:args.chunk]) for k, net in networks.items()}
            for _ in range(args.repeats):
                for k, net in networks.items():      # alternate, so all see the same machine load
                    t = time.perf_counter()
                    for s in range(0, args.instances, args.chunk):
                        net(x[s:s + args.chunk])
                    best[k] = min(best[k], time.perf_counter() - t)
        row = [f"{1e3 * best[k] / args.instances:.2f}" for k in names]
        if other:
            diff = max(float((a - b).abs().max() / b.abs().max())
                       for a, b in zip(outputs[other], outputs["current"]))
            row.append(f"{diff:.1e}")
        print(f"| {scenario} | " + " | ".join(row) + " |")


def training_steps(modules: dict, checkpoint: dict, problem, repeats: int) -> None:
    print(f"sum-ee gnn training step, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread, float32, load average before "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; 64 instances (seed 3), 8 draws each, best of {repeats}\n")
    print("| configuration | " + " | ".join(f"{k} (ms per step)" for k in modules) + " |")
    print("|---" * (len(modules) + 1) + "|")
    for scenario in CONFIGURATIONS[1:]:
        instances = problem.sample(scenario, 64, seed=3)
        x = sum_ee_gnn.network_inputs(instances.gain_over_noise, checkpoint["input"])
        gains = torch.as_tensor(instances.gain_over_noise, dtype=torch.float32)
        networks = {k: m.network_from_checkpoint(checkpoint) for k, m in modules.items()}
        best = {k: float("inf") for k in modules}
        for _ in range(repeats):
            for k, module in modules.items():
                generator = torch.Generator().manual_seed(0)
                t = time.perf_counter()
                networks[k].zero_grad()
                terms = module.step_terms(networks[k], x, gains, instances.params, "paper", 8, generator)
                (-(terms["objective"] - 0.01 * terms["psi"])).backward()
                best[k] = min(best[k], time.perf_counter() - t)
        print(f"| {scenario} | " + " | ".join(f"{1e3 * best[k]:.0f}" for k in modules) + " |")


if __name__ == "__main__":
    main()
