"""What a run records about itself: command, versions, CPU, threads, git commit, scenario."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ("cfbench", "numpy", "scipy", "pandas", "pyarrow", "cvxpy", "clarabel", "pluggy", "torch")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """Commit of the cfbench source tree (with ``-dirty`` if modified), if it is a git checkout."""
    src = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def scenario_dict(params) -> dict:
    if dataclasses.is_dataclass(params):
        return dataclasses.asdict(params)
    return dict(params) if params is not None else {}


def build_manifest(*, problem, scenario: str, solvers: dict, n_instances: int, seed: int,
                   timeout_s: float | None, threads: int, warnings: list[str]) -> dict:
    return {
        "command": " ".join(["cfbench", *sys.argv[1:]]),
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "problem": problem.name,
        "scenario": scenario,
        "scenario_parameters": scenario_dict(problem.scenario_params(scenario)),
        "objective_unit": problem.objective_unit,
        "objective_sense": problem.sense,
        "paper_iterative_solver": problem.paper_iterative_solver,
        "table_metrics": list(problem.table_metrics),
        "n_instances": n_instances,
        "seed": seed,
        "timeout_s": timeout_s,
        "threads": threads,
        "solvers": solvers,
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
        "plugin_warnings": warnings,
    }
