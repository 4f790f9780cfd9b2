"""het-gnn inference speed: ms per drop one at a time and in a batch, forward only and through the
solver's ``solve`` (inputs and readout included), under ``torch.inference_mode()`` on
``--threads`` torch threads (default one: the eager forward's operations use them; the compiled
forward runs a batch's chunks on that many threads at once, each on one); also the number of
tensor operations per forward (of one drop; the count does not depend on the batch).

    python scripts/mmtc_gnn_speed.py [--reference OLD_MODULE.py] [--compile] [--threads 1] [--batch 256] [--repeats 5]

``--reference`` times a second copy of the module (e.g. an earlier version,
``git show COMMIT:plugins/mmtc_gnn.py > /tmp/old.py``) on the same drops in the same process,
alternating with the current one, so that both see the same machine load; it also prints the
largest relative difference of the output powers. ``--compile`` adds each module with
``compile=true`` (compiled in setup, not timed; its forward is the compiled one, run in the
solver's chunks; its operations are not counted: inductor's kernels bypass the dispatcher).
Medians over the repeats (each repeat: 30 single-drop calls, one batch call). Last, the floor
of the current forward, eager and compiled: its matrix products (one per layer and node type,
which hold almost all of its arithmetic) timed alone at the forward's shapes and chunks, best of
the repeats.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import time

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cfbench.plugins import mmtc_gnn
from cfbench.problems.mmtc import Mmtc

SCENARIO = "ku2-kd10-m10-ms5"


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("mmtc_gnn_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.WEIGHTS_DIR = mmtc_gnn.WEIGHTS_DIR      # the same shipped weights
    return module


class CountOps(TorchDispatchMode):
    """Tensor operations that reach the kernels (views, which move no data, counted apart)."""

    def __init__(self):
        super().__init__()
        self.ops = self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.is_view:
            self.views += 1
        else:
            self.ops += 1
        return func(*args, **(kwargs or {}))


def seconds(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def linear_maps(network, features: dict) -> dict[str, tuple[list, int]]:
    """The matrix products of each form of the forward, per layer and node type, as ``(node
    type, weight)``, and its chunk in drops: the eager forward's ``fused()`` maps (chunks of about
    ``CHUNK_NODES`` line-graph nodes) and the compiled forward's ``feature_major_maps()`` (chunks
    of ``COMPILED_CHUNK_DROPS``; its first layer, three columns, is not a matrix product)."""
    M, K = features["user"].shape[1], {t: f.shape[2] for t, f in features.items()}
    live = {name: True for types in mmtc_gnn.EDGE_TYPES.values() for name, _, _ in types}
    eager = [(t, layer.fused(live)[t][0]) for layer in network.layers for t in mmtc_gnn.EDGE_TYPES]
    maps = network.feature_major_maps(live)["layers"]
    compiled = [(t, layer[t][0]) for layer in maps for t in mmtc_gnn.EDGE_TYPES if layer[t][0].shape[1] > 3]
    return {"eager": (eager, max(1, mmtc_gnn.CHUNK_NODES // (M * sum(K.values())))),
            "compile=true": (compiled, mmtc_gnn.COMPILED_CHUNK_DROPS)}


def linear_maps_floor(weights: list, chunk: int, features: dict, drops: int, repeats: int) -> tuple[float, float]:
    """Seconds per drop of the matrix products ``weights`` (from ``linear_maps``) alone at the
    shapes of ``drops`` drops of the scenario, in chunks of ``chunk`` drops, best of ``repeats``,
    and their MFLOP per drop: what no rearrangement of the other operations can go below in
    float32."""
    M, K = features["user"].shape[1], {t: f.shape[2] for t, f in features.items()}
    chunk = max(1, min(drops, chunk))
    inputs = [(torch.randn(chunk * M * K[t], w.shape[1]), w) for t, w in weights]
    n_chunks = -(-drops // chunk)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n_chunks):
            for x, w in inputs:
                torch.mm(x, w.t())
        best = min(best, (time.perf_counter() - t0) / (n_chunks * chunk))
    flops = sum(2 * M * K[t] * w.shape[0] * w.shape[1] for t, w in weights)
    return best, flops / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="another copy of plugins/mmtc_gnn.py to time alongside")
    parser.add_argument("--compile", action="store_true", help="also time compile=true")
    parser.add_argument("--scenario", default=SCENARIO)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the harness's --threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = Mmtc()
    modules = {"current": mmtc_gnn}
    if args.reference:
        modules = {"reference": load_module(args.reference), **modules}
    one = problem.sample(args.scenario, 1, seed=0)
    batch = problem.sample(args.scenario, args.batch, seed=0)
    variants = [(label, module, {}) for label, module in modules.items()]
    if args.compile:
        variants += [(f"{label}, compile=true", module, {"compile": True}) for label, module in modules.items()]
    cases = {}
    for label, module, options in variants:
        solver = module.HeterogeneousGnn(**options)
        solver.setup(problem, args.scenario)
        inputs = {n: module.network_inputs(inst, solver.checkpoint["input"]) for n, inst in (("1", one), ("B", batch))}
        cases[label] = (solver, inputs)
    times = {(label, what): [] for label in cases for what in ("fwd1", "fwdB", "solve1", "solveB")}
    calls = {}
    with torch.inference_mode():
        for label, (solver, inputs) in cases.items():
            net = getattr(solver, "forward", solver.network)
            net(*inputs["1"]), solver.solve(one), net(*inputs["B"])            # warm-up
            if net is not solver.network:
                calls[label] = "(compiled)"
                continue
            with CountOps() as counter:
                net(*inputs["1"])
            calls[label] = f"{counter.ops} (+ {counter.views} views)"
        for _ in range(args.repeats):
            for label, (solver, inputs) in cases.items():
                net = getattr(solver, "forward", solver.network)
                times[label, "fwd1"].append(seconds(lambda: net(*inputs["1"]), 30))
                times[label, "solve1"].append(seconds(lambda: solver.solve(one), 30))
                times[label, "fwdB"].append(seconds(lambda: net(*inputs["B"]), 1) / args.batch)
                times[label, "solveB"].append(seconds(lambda: solver.solve(batch), 1) / args.batch)
        powers = {label: solver.solve(batch) for label, (solver, _) in cases.items()}
        solver, inputs = cases["current"]
        floors = {}
        for form, (weights, chunk) in linear_maps(solver.network, inputs["1"][0]).items():
            floor_1, mflop = linear_maps_floor(weights, chunk, inputs["1"][0], 1, 30 * args.repeats)
            floor_b, _ = linear_maps_floor(weights, chunk, inputs["1"][0], args.batch, args.repeats)
            floors[form] = (floor_1, floor_b, mflop)
    print(f"het-gnn, scenario {args.scenario}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), inference_mode, "
          f"{os.cpu_count()} cores, load average before {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"{platform.processor() or platform.machine()}; medians of {args.repeats} repeats")
    print()
    print(f"| code | tensor operations per forward | forward, 1 drop | forward, per drop in {args.batch} | "
          f"solve, 1 drop | solve, per drop in {args.batch} |")
    print("|---|---|---|---|---|---|")
    for label in cases:
        ms = {w: 1e3 * float(np.median(times[label, w])) for w in ("fwd1", "fwdB", "solve1", "solveB")}
        print(f"| {label} | {calls[label]} | {ms['fwd1']:.2f} ms | {ms['fwdB']:.3f} ms | "
              f"{ms['solve1']:.2f} ms | {ms['solveB']:.3f} ms |")
    print()
    for form, (floor_1, floor_b, mflop) in floors.items():
        print(f"the current forward's matrix products alone, {form} (float32 GEMM, {mflop:.1f} MFLOP per drop, best "
              f"of the repeats): {floor_1 * 1e3:.3f} ms for 1 drop, {floor_b * 1e3:.3f} ms per drop in {args.batch}")
    for label in powers:
        if label != "current":
            diff = max(float(np.max(np.abs(powers[label][k] / powers["current"][k] - 1))) for k in powers["current"])
            print()
            print(f"largest relative difference of the output powers, {label} vs current, {args.batch} drops: {diff:.1e}")


if __name__ == "__main__":
    main()
