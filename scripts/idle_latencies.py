"""Per-instance latency of every registered solver on every problem's default scenario,
timed by the harness on an otherwise idle machine: the figures the README quotes as
"idle, one thread".

    python scripts/idle_latencies.py [--instances 16] [--problems urllc,mmtc,...] [--out results/latency]

Each problem is one ``cfbench run --problem P --solvers all --instances N --workers 1
--threads 1`` (seed 0; one solve at a time after the runner's untimed warm-up, so no two
solves share the cores). The runs are kept under ``OUT/<problem>/`` (rows and manifest)
and ``OUT/idle.md`` gathers per solver the median and 95th-percentile latency with the
machine's 1-minute load average before each run (rows of problems not in ``--problems`` are
kept from the previous file). Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

PROBLEMS = ("urllc", "mmtc", "sum-ee", "dmimo", "uccf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--out", type=Path, default=Path("results/latency"))
    args = parser.parse_args()
    problems = [p for p in args.problems.split(",") if p]
    lines = ["# Per-instance latency on an idle machine", "",
             f"`python scripts/idle_latencies.py --instances {args.instances}`: each problem's default "
             f"scenario, {args.instances} instances (seed 0), `--workers 1 --threads 1`, {os.cpu_count()} cores, "
             "nothing else running; load average (1 min) before each run in the last column.", "",
             "| problem | scenario | solver | kind | ok | median latency | p95 latency | load before |",
             "|---|---|---|---|---|---|---|---|"]
    for problem in problems:
        out = args.out / problem
        load = os.getloadavg()[0]
        subprocess.run([sys.executable, "-m", "cfbench.cli", "run", "--problem", problem, "--solvers", "all",
                        "--instances", str(args.instances), "--seed", "0", "--workers", "1", "--threads", "1",
                        "--quiet", "--overwrite", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
        rows = pd.read_parquet(out / "results.parquet")
        for solver, group in rows.groupby("solver", sort=False):
            latency = group["latency_s"]
            lines.append(f"| {problem} | {group['scenario'].iloc[0]} | `{solver}` | {group['kind'].iloc[0]} "
                         f"| {(group['status'] == 'ok').sum()}/{len(group)} | {_fmt(latency.median())} "
                         f"| {_fmt(latency.quantile(0.95))} | {load:.2f} |")
    # rows of problems not rerun this time are kept from the previous file (with their own load column)
    previous = args.out / "idle.md"
    if previous.is_file():
        kept = [line for line in previous.read_text().splitlines()
                if line.startswith("| ") and line.split("|")[1].strip() in set(PROBLEMS) - set(problems)]
        lines += kept
    previous.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


if __name__ == "__main__":
    main()
