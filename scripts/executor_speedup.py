"""Wall time of one ``cfbench run`` on each executor: the speed-up of parallel workers, and
what a unit costs on Dask beyond its solves.

    python scripts/executor_speedup.py [--instances 16] [--out results/executors]

1. ``urllc`` ``stress-k40``, solver ``sca``, ``--instances`` instances (seed 0), with
   ``--workers 1``, ``--workers 2`` and ``--executor dask --workers 2``: wall time of
   the whole command and speed-up over one worker; the rows must agree (decisions,
   objectives) across the three.
2. Overhead per unit: ``urllc`` ``tiny``, solver ``p-max`` (microseconds per solve),
   in units of one instance (``--block 1``), one worker, local and Dask, with 8 and
   with 64 instances: the difference of (wall time - sum of solve latencies) between
   the two, over the 56 extra units (start-up of the command and of the cluster
   cancel out).

Writes ``OUT/speedup.md`` with the machine's load average before each run; run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _run(args: list[str], out: Path) -> tuple[float, pd.DataFrame, float]:
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cfbench.cli", "run", *args, "--out", str(out), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - began, pd.read_parquet(out / "results.parquet"), load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("results/executors"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cfbench-speedup-"))
    lines = ["# Executors: speed-up and overhead", "",
             f"`python scripts/executor_speedup.py --instances {args.instances}`; {os.cpu_count()} cores, "
             "one thread per solve; load average (1 min) before each run in the last column.", "",
             f"`urllc` `stress-k40`, `sca`, {args.instances} instances, seed 0:", "",
             "| executor | workers | wall time | speed-up over one worker | load before |", "|---|---|---|---|---|"]
    common = ["--problem", "urllc", "--scenario", "stress-k40", "--solvers", "sca",
              "--instances", str(args.instances), "--seed", "0"]
    runs = [("local", ["--workers", "1"]), ("local", ["--workers", "2"]),
            ("dask", ["--executor", "dask", "--workers", "2"])]
    base_time, base_rows = None, None
    for name, extra in runs:
        seconds, rows, load = _run(common + extra, scratch / f"{name}{extra[-1]}")
        if base_rows is None:
            base_time, base_rows = seconds, rows
        else:
            a = base_rows.sort_values("instance")
            b = rows.sort_values("instance")
            assert np.array_equal(a["objective"].to_numpy(), b["objective"].to_numpy()), "rows differ"
        lines.append(f"| {name} | {extra[-1]} | {seconds:.1f} s | {base_time / seconds:.2f}x | {load:.2f} |")
    lines += ["", "Overhead per unit (`urllc` `tiny`, `p-max`, `--block 1`, one worker; 8 and 64 instances):", "",
              "| executor | wall time, 8 / 64 units | overhead per unit | load before |", "|---|---|---|---|"]
    for name, extra in (("local", []), ("dask", ["--executor", "dask"])):
        spent = {}
        for n in (8, 64):
            trivial = ["--problem", "urllc", "--scenario", "tiny", "--solvers", "p-max", "--instances", str(n),
                       "--block", "1", "--workers", "1"]
            seconds, rows, load = _run(trivial + extra, scratch / f"trivial-{name}-{n}")
            spent[n] = (seconds, seconds - float(rows["latency_s"].sum()))
        per_unit = (spent[64][1] - spent[8][1]) / 56
        lines.append(f"| {name} | {spent[8][0]:.1f} s / {spent[64][0]:.1f} s | {per_unit * 1e3:.0f} ms | {load:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speedup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
