"""Latency one instance at a time against time per instance in batches, for every solver
that declares ``solves_batches``.

    python scripts/batch_throughput.py [--threads 1] [--out results/executors]

Each line is one ``cfbench run ... --batch N --workers 1 --threads T``: the runner times
every instance alone (``latency_s``) and then, in the same isolated worker, one call per
``N`` instances (``batch_latency_s`` = the call's time / N). Reported: the medians of both,
and their ratio. Writes ``OUT/batch.md`` with the thread count and the machine's load
average before each run; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

#: (problem, scenario, solver, instances, batch size)
CASES = (
    ("urllc", "k50", "estpanet", 256, 64),
    ("mmtc", "ku2-kd10-m10-ms5", "het-gnn", 256, 64),
    ("mmtc", "ku2-kd10-m10-ms5", "opc-fast", 64, 64),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/executors"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cfbench-batch-"))
    lines = ["# Latency alone and per instance in batches", "",
             f"`python scripts/batch_throughput.py --threads {args.threads}`; {os.cpu_count()} cores, one worker, "
             f"{args.threads} thread(s) per worker; load average (1 min) before each run in the last column.", "",
             "| problem | scenario | solver | instances | batch | median alone | median per instance in a batch "
             "| ratio | load before |", "|---|---|---|---|---|---|---|---|---|"]
    for problem, scenario, solver, n, batch in CASES:
        out = scratch / solver
        load = os.getloadavg()[0]
        subprocess.run([sys.executable, "-m", "cfbench.cli", "run", "--problem", problem, "--scenario", scenario,
                        "--solvers", solver, "--instances", str(n), "--seed", "0", "--batch", str(batch),
                        "--workers", "1", "--threads", str(args.threads), "--quiet", "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
        rows = pd.read_parquet(out / "results.parquet")
        alone, batched = rows["latency_s"].median(), rows["batch_latency_s"].median()
        lines.append(f"| {problem} | {scenario} | `{solver}` | {n} | {batch} | {alone * 1e3:.3g} ms "
                     f"| {batched * 1e3:.3g} ms | {alone / batched:.1f}x | {load:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
