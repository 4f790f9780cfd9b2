"""Instances judged per second by each problem's evaluator: a batch of N in one call, and one
instance per call (how the runner scores a decision), one thread.

    python scripts/evaluator_throughput.py [--instances 1024] [--repeats 5] [--out FILE]

Each case samples ``--instances`` instances of seed 0 and a fixed valid decision (``urllc``:
every terminal at half of p_max; ``mmtc``: G-FPC's powers; ``sum-ee``: equal power;
``dmimo``: full power on the 95 % association; ``uccf``: DCC clusters at full power), evaluates
once untimed (so per-instance results the judge remembers, such as ``urllc``'s reliability
verdict or ``mmtc``'s closed-form coefficients, are warm, as they are for every solver but the
first in a run), then reports the best of ``--repeats`` timings. The column "first call" times
one call on a batch of N instances the judge has not seen (seed 1): what the first solver of a
run pays. Prints a Markdown table with the load average before each case; run
it on an idle machine, or say what else ran.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from cfbench.registry import build_registry
from cfbench.runner import limit_threads

CASES = (("urllc", "k10"), ("urllc", "k50"), ("urllc", "k60"), ("urllc", "stress-k60"),
         ("mmtc", "ku2-kd10-m10-ms5"), ("sum-ee", "15ap-15ue"), ("dmimo", "m60-t30"), ("uccf", "mr-k40"))
#: problem -> solver whose decision is judged (cheap, valid)
DECIDER = {"urllc": None, "mmtc": "g-fpc", "sum-ee": "equal", "dmimo": "full-power", "uccf": "full-power"}


def _decision(registry, problem, instances):
    if DECIDER[problem.name] is None:
        return {"power_w": np.full(instances.beta.shape[::2], 0.5 * instances.params.p_max_w)}
    solver = registry.solver(problem.name, DECIDER[problem.name]).cls()
    solver.setup(problem, instances.scenario)
    out = solver.solve(instances)
    return dict(out.decision if hasattr(out, "decision") else out)


def _best_s(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--singles", type=int, default=64, help="instances timed one per call")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    limit_threads(1)
    registry = build_registry()
    lines = [f"`python scripts/evaluator_throughput.py --instances {args.instances}`; one thread, best of "
             f"{args.repeats}; {os.cpu_count()} cores, load average (1 min) before each case in the last column.", "",
             "| problem | scenario | batch of N, instances/s | first call, batch of N, instances/s "
             "| one per call, instances/s | load |", "|---|---|---|---|---|---|"]
    for name, scenario in CASES:
        if name not in registry.problems:
            continue
        load = os.getloadavg()[0]
        problem = registry.problem(name)
        instances = problem.sample(scenario, args.instances, seed=0)
        decision = _decision(registry, problem, instances)
        unseen = problem.sample(scenario, args.instances, seed=1)
        unseen_decision = _decision(registry, problem, unseen)
        start = time.perf_counter()
        problem.evaluate(unseen, unseen_decision)
        first_s = time.perf_counter() - start
        problem.evaluate(instances, decision)
        batch_s = _best_s(lambda: problem.evaluate(instances, decision), args.repeats)
        singles = [(instances[np.array([i])], {k: np.asarray(v)[i:i + 1] for k, v in decision.items()})
                   for i in range(min(args.singles, args.instances))]
        single_s = _best_s(lambda: [problem.evaluate(x, d) for x, d in singles], args.repeats) / len(singles)
        lines.append(f"| {name} | {scenario} | {args.instances / batch_s:,.0f} | {args.instances / first_s:,.0f} "
                     f"| {1 / single_s:,.0f} | {load:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
