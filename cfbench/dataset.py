"""Labelled datasets for learned solvers: seeded instances plus a solver's decisions.

``cfbench dataset --problem P --scenario S[,S2...] --labels SOLVER --samples N --out DIR``
draws instances ``0 .. N-1`` of each scenario's stream ``seed`` (the same
``PCG64(SeedSequence([seed, i]))`` streams as ``cfbench run``; the default seed
:data:`DEFAULT_SEED` is far from the small seeds benchmark runs use, so
training data and benchmark instances never coincide), solves them with the
label solver in batches of ``shard_size`` (``N`` is rounded up to whole shards) and scores every label with the
problem's evaluator. Shards are labelled on the executors of ``cfbench run``
(:mod:`cfbench.executors`): ``--workers`` forked processes on this machine by
default, or a Dask cluster with ``--executor dask``; a shard's labels do not
depend on where it was labelled.

Format (one folder per scenario)::

    DIR/<scenario>/manifest.json       what was asked: problem, scenario, seed, label solver and
                                        options, samples, shard size, cfbench version
    DIR/<scenario>/shard-000000.npz    instances [0, shard_size), then [shard_size, 2 shard_size), ...

Each shard (``numpy.savez_compressed``) holds ``index`` (stream indices),
``instance.<name>`` for every instance array, ``label.<field>`` for every
decision field of the label solver, ``label_objective`` and
``label_feasible`` (from the problem's evaluator) and ``label_seconds`` (the
shard's solve time divided by its size). Shards are written atomically, so an
interrupted command is resumed by running it again: finished shards are kept,
missing ones are computed. Asking for more samples later extends the dataset.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cfbench.api import CfbenchError, Instances, Problem, Solution

#: default stream seed of datasets: disjoint from the seeds benchmark runs use (0, 1, ...)
DEFAULT_SEED = 60_000_000
FORMAT = 1
#: manifest keys that must match for a folder to be resumed or extended
IDENTITY = ("format", "problem", "scenario", "seed", "labels", "label_options", "shard_size")


def shard_path(folder: Path, shard: int) -> Path:
    return Path(folder) / f"shard-{shard:06d}.npz"


def _identity(problem: str, scenario: str, seed: int, labels: str, options: dict, shard_size: int) -> dict:
    return {"format": FORMAT, "problem": problem, "scenario": scenario, "seed": seed, "labels": labels,
            "label_options": {k: options[k] for k in sorted(options)}, "shard_size": shard_size}


def label_shard(problem: Problem, solver, scenario: str, seed: int, start: int, n: int) -> dict[str, np.ndarray]:
    """Instances ``start .. start + n - 1`` with the solver's decisions and the judge's verdict."""
    instances = problem.sample(scenario, n, seed, start=start)
    began = time.perf_counter()
    out = solver.solve(instances)
    seconds = time.perf_counter() - began
    decision = out.decision if isinstance(out, Solution) else out
    reason = problem.check_decision(instances, decision)
    if reason is not None:
        raise CfbenchError(f"label solver {solver.name!r} returned an invalid decision on {scenario!r}: {reason}")
    score = problem.evaluate(instances, decision)
    arrays = {"index": instances.index}
    arrays.update({f"instance.{k}": v for k, v in instances.arrays.items()})
    arrays.update({f"label.{f.name}": np.asarray(decision[f.name], float) for f in problem.decision_fields(scenario)})
    arrays["label_objective"] = np.asarray(score.objective, float)
    arrays["label_feasible"] = np.asarray(score.feasible, bool)
    arrays["label_seconds"] = np.full(n, seconds / n)
    return arrays


@dataclass(frozen=True)
class ShardUnit:
    """One shard to label: instances ``start .. start + count - 1`` of ``scenario``'s stream
    ``seed``, labelled by solver ``labels`` with ``options`` and written to ``path``."""

    problem: str
    scenario: str
    seed: int
    labels: str
    options: dict
    start: int
    count: int
    path: str
    threads: int = 1


@functools.lru_cache(maxsize=4)
def _label_solver(problem_name: str, labels: str, options_key: tuple, scenario: str):
    """The label solver, set up once per worker process and scenario."""
    from cfbench.registry import build_registry

    registry = build_registry()
    problem = registry.problem(problem_name)
    solver = registry.solver(problem_name, labels).cls(**dict(options_key))
    solver.setup(problem, scenario)
    return problem, solver


def label_unit(unit: ShardUnit) -> int:
    """Label and write one shard (in an executor's worker process); returns its sample count."""
    from cfbench.runner import limit_threads

    limit_threads(unit.threads)
    problem, solver = _label_solver(unit.problem, unit.labels, tuple(sorted(unit.options.items())), unit.scenario)
    write_shard(Path(unit.path), label_shard(problem, solver, unit.scenario, unit.seed, unit.start, unit.count))
    return unit.count


def write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written shard left behind
        raise


def build(problem: Problem, labels: str, options: dict, scenario: str, n_samples: int, out: Path, *,
          seed: int = DEFAULT_SEED, shard_size: int = 32, executor=None, threads: int = 1,
          on_progress: Callable[[int], None] | None = None, version: str = "") -> dict:
    """Create or resume ``out/<scenario>``, labelling the missing shards on ``executor``
    (:mod:`cfbench.executors`; default: a local pool of one worker process per core);
    returns its manifest (with the time spent)."""
    if shard_size < 1:
        raise CfbenchError(f"shard size must be >= 1, got {shard_size}")
    if executor is None:
        from cfbench.executors import LocalExecutor

        executor = LocalExecutor()
    folder = Path(out) / scenario
    identity = _identity(problem.name, scenario, seed, labels, options, shard_size)
    manifest_path = folder / "manifest.json"
    previous: dict[str, Any] = {}
    if manifest_path.exists():
        previous = _read_manifest(manifest_path)
        clash = [k for k in IDENTITY if previous.get(k) != identity[k]]
        if clash:
            k = clash[0]
            raise CfbenchError(f"{str(folder)!r} holds a dataset with {k} = {previous.get(k)!r}, this command asks "
                               f"for {identity[k]!r}; choose another --out or delete that folder")
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = -(-n_samples // shard_size)
    manifest = {**identity, "samples": labelled_samples(folder), "cfbench": version,
                "label_seconds_total": labelling_seconds(folder), "execution": executor.describe()}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    units = []
    for shard in range(n_shards):
        path = shard_path(folder, shard)
        if path.exists():
            if on_progress:
                on_progress(shard_size)
            continue
        units.append(ShardUnit(problem.name, scenario, seed, labels, dict(options), shard * shard_size, shard_size,
                               str(path), threads))
    for count in executor.map(units, label_unit):
        manifest["label_seconds_total"] = labelling_seconds(folder)
        manifest["samples"] = labelled_samples(folder)
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        if on_progress:
            on_progress(count)
    return manifest


def _read_manifest(path: Path) -> dict:
    """A dataset folder's manifest: a JSON object, else a one-line :class:`CfbenchError`."""
    try:
        manifest = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        raise CfbenchError(f"{str(path)!r} is not a readable dataset manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict):
        raise CfbenchError(f"{str(path)!r} is not a dataset manifest: a JSON object expected")
    return manifest


def labelling_seconds(folder: Path) -> float:
    """Solve time of every finished shard (the sum of their ``label_seconds``)."""
    total = 0.0
    for path in sorted(Path(folder).glob("shard-*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path) as z:
            total += float(z["label_seconds"].sum())
    return total


def labelled_samples(folder: Path) -> int:
    """Samples in the leading run of finished shards (every shard holds ``shard_size``)."""
    n, shard = 0, 0
    while shard_path(folder, shard).exists():
        with np.load(shard_path(folder, shard)) as z:
            n += len(z["index"])
        shard += 1
    return n


@dataclass
class Dataset:
    """A loaded dataset folder: the instances, the label decisions and the judge's verdict."""

    instances: Instances
    labels: dict[str, np.ndarray]
    label_objective: np.ndarray
    label_feasible: np.ndarray
    label_seconds: np.ndarray
    manifest: dict

    def __len__(self) -> int:
        return len(self.instances)

    def subset(self, rows) -> "Dataset":
        return Dataset(self.instances[rows], {k: v[rows] for k, v in self.labels.items()},
                       self.label_objective[rows], self.label_feasible[rows], self.label_seconds[rows],
                       self.manifest)


def load(problem: Problem, folder: Path, n_samples: int | None = None) -> Dataset:
    """The first ``n_samples`` instances (all when None) of a dataset folder, in stream order."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise CfbenchError(f"no dataset in {str(folder)!r} (no manifest.json); create it with 'cfbench dataset'")
    manifest = _read_manifest(manifest_path)
    if manifest.get("problem") != problem.name:
        raise CfbenchError(f"{str(folder)!r} is a {manifest.get('problem')!r} dataset, not {problem.name!r}")
    want = labelled_samples(folder) if n_samples is None else n_samples
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    shard = 0
    while have < want:
        path = shard_path(folder, shard)
        if not path.exists():
            raise CfbenchError(f"{str(folder)!r} has {have} labelled samples, {want} asked; resume it with the "
                               f"'cfbench dataset' command that created it (--samples {want})")
        with np.load(path) as z:
            parts.append({k: z[k] for k in z.files})
        have += len(parts[-1]["index"])
        shard += 1
    arrays = {k: np.concatenate([p[k] for p in parts])[:want] for k in parts[0]}
    scenario = manifest["scenario"]
    instances = Instances(problem.name, scenario, manifest["seed"], arrays["index"],
                          {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("instance.")},
                          problem.scenario_params(scenario))
    labels = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("label.")}
    return Dataset(instances, labels, arrays["label_objective"], arrays["label_feasible"].astype(bool),
                   arrays["label_seconds"], manifest)
