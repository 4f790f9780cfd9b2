"""Executors: where the runner's units of work run.

The runner decides *what* to solve (problem x scenario x solvers x seeded
instances, minus the pairs a results folder already holds); an executor
decides *where*. The unit of work is one :class:`WorkUnit`: one solver on a
contiguous block of instance indices. :func:`run_unit` draws that block from
the seeded stream, solves it in an isolated worker process
(:func:`cfbench.runner.solve_all`: each solve timed alone, hard timeout,
crash and hang isolation) and scores it with the problem's evaluator, so a
unit returns finished rows and nothing else crosses back. The worker process
outlives its unit: the next unit of the same solver on the same executor slot
reuses it (:class:`cfbench.runner.WarmWorkers`), so set-up and the untimed
warm-up solve are paid once per slot and solver, not once per unit. Because instance
``i`` of a seed is the same on every machine and every solve is independent
of the others, the rows (decisions, objectives, metrics; not the latencies)
are the same whatever the executor, the number of workers or the block size.

- ``local`` (default): a pool of ``workers`` threads in this process, each
  driving one isolated worker process at a time, so ``workers`` solves run
  at once. No server, no extra dependency.
- ``dask``: the same units submitted to a ``dask.distributed`` cluster, an
  existing one (``scheduler`` address) or a ``LocalCluster`` of ``workers``
  single-threaded processes. Dask workers are made non-daemonic so that
  they may start the isolated solve process (``pip install cfbench[dask]``).
  A kept solve process dies with its Dask worker, and on a long-lived cluster
  exits by itself after ``WORKER_IDLE_EXIT_S`` without work.

Both yield each unit's rows as soon as it is finished (in completion order),
so the caller can save them as they come.
"""

from __future__ import annotations

import functools
import os
import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from cfbench.api import CfbenchError
from cfbench.lazy import lazy_import

pd = lazy_import("pandas")  # imported on first use: 'cfbench list' does without it

EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class WorkUnit:
    """One solver on instances ``start .. start + count - 1`` of a seeded scenario stream."""

    problem: str
    scenario: str
    seed: int
    solver: str
    start: int
    count: int
    options: dict = field(default_factory=dict)
    timeout_s: float | None = None
    threads: int = 1
    memory_limit_mb: float | None = None
    batch: int | None = None


#: workers kept warm between the units run by this process (one per executor thread)
_WARM = None


def _warm_workers():
    global _WARM
    if _WARM is None:
        from cfbench.runner import WarmWorkers

        _WARM = WarmWorkers()
    return _WARM


@functools.lru_cache(maxsize=1)
def _registry():
    from cfbench.registry import build_registry

    return build_registry()


def run_unit(unit: WorkUnit) -> pd.DataFrame:
    """Draw, solve (isolated worker) and score one unit; its rows with run identifiers."""
    from cfbench.runner import score_outcomes, solve_all

    registry = _registry()
    problem = registry.problem(unit.problem)
    provided = registry.solver(unit.problem, unit.solver)
    instances = problem.sample(unit.scenario, unit.count, unit.seed, start=unit.start)
    outcomes = solve_all(problem, unit.scenario, provided.cls, instances, options=unit.options,
                         timeout_s=unit.timeout_s, threads=unit.threads, memory_limit_mb=unit.memory_limit_mb,
                         batch=unit.batch, keep=_warm_workers())
    frame = score_outcomes(problem, instances, outcomes)
    frame.insert(0, "problem", unit.problem)
    frame.insert(1, "scenario", unit.scenario)
    frame.insert(2, "seed", unit.seed)
    frame.insert(4, "solver", unit.solver)
    frame.insert(5, "kind", provided.cls.kind)
    frame["threads"] = unit.threads
    return frame


def plan_units(problem: str, scenario: str, seed: int, missing: dict[str, list[int]], block: int,
               options: dict[str, dict] | None = None, **common) -> list[WorkUnit]:
    """Units covering the ``missing`` instance indices of each solver (in the mapping's order):
    contiguous runs of indices cut into blocks of at most ``block``. ``options`` maps a solver
    to its options; ``common`` holds the other :class:`WorkUnit` fields."""
    units = []
    for solver, indices in missing.items():
        runs: list[list[int]] = []
        for i in sorted(indices):
            if runs and i == runs[-1][-1] + 1 and len(runs[-1]) < block:
                runs[-1].append(i)
            else:
                runs.append([i])
        solver_options = dict((options or {}).get(solver, {}))
        units.extend(WorkUnit(problem, scenario, seed, solver, r[0], len(r), options=solver_options, **common)
                     for r in runs)
    return units


def default_block(n_instances: int, workers: int) -> int:
    """Instances per unit: about eight units per worker and solver, so that the last units
    leave little idle time on the other workers (a unit costs some 20 ms beyond its solves
    with warm workers, ``results/executors/speedup.md``), and at most 16, so that an
    interrupt loses little."""
    return max(1, min(16, -(-n_instances // (8 * workers))))


class LocalExecutor:
    """``workers`` units at a time on this machine (module docstring)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.workers}

    def map(self, units: Iterable[WorkUnit], fn=None) -> Iterator:
        """``fn(unit)`` for every unit, ``workers`` at a time, results in completion order.
        The default ``fn``, :func:`run_unit`, isolates its solves in worker processes of its
        own, so threads drive it; any other ``fn`` runs in a pool of forked processes."""
        from cfbench.runner import reset_stop, stop_all_workers

        if fn is None:
            pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cfbench-unit")
            fn = run_unit
        else:
            pool = ProcessPoolExecutor(self.workers, mp_context=_fork_context())
        reset_stop()
        try:
            pending = {pool.submit(fn, u) for u in units}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            stop_all_workers()   # an interrupt or an error: no solve outlives the run
            _warm_workers().close()
            if isinstance(pool, ProcessPoolExecutor):
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.kill()
            pool.shutdown(wait=True, cancel_futures=True)
            reset_stop()  # every unit has ended: a later run in this process must not see the stop


class DaskExecutor:
    """The units on a ``dask.distributed`` cluster (module docstring)."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        try:
            import dask
            import distributed
        except ImportError:
            raise CfbenchError("--executor dask needs Dask: pip install 'cfbench[dask]' "
                               "(or choose --executor local)") from None
        self._dask, self._distributed = dask, distributed
        self.scheduler, self.workers = scheduler, workers or os.cpu_count() or 1

    def describe(self) -> dict:
        return {"executor": self.name, "scheduler": self.scheduler or "LocalCluster",
                "workers": None if self.scheduler else self.workers}

    def map(self, units: Iterable[WorkUnit], fn=None) -> Iterator:
        """``fn(unit)`` (default :func:`run_unit`) for every unit on the cluster, results in
        completion order."""
        distributed = self._distributed
        fn = fn or run_unit
        cluster = None
        # the isolated solve process is a child of the Dask worker: workers must not be daemons
        with self._dask.config.set({"distributed.worker.daemon": False}):
            try:
                if self.scheduler:
                    client = distributed.Client(self.scheduler, timeout="10s")
                else:
                    cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                                       processes=True, dashboard_address=None)
                    client = distributed.Client(cluster)
            except OSError as exc:
                raise CfbenchError(f"cannot reach Dask scheduler {self.scheduler!r}: {exc}") from None
            futures = [client.submit(fn, u, pure=False) for u in units]
            try:
                for future in distributed.as_completed(futures):
                    yield future.result()
            finally:
                client.cancel(futures)
                client.close()
                if cluster is not None:
                    cluster.close()


def _fork_context():
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


#: most worker processes per core this machine may start (``--workers``): a solve keeps a core
#: busy, so more only adds processes (each imports numpy, and torch for learned solvers)
MAX_WORKERS_PER_CORE = 4


def check_workers(workers: int | None, scheduler: str | None = None) -> None:
    """One-line error for a ``--workers`` this machine cannot host (a remote scheduler's
    cluster is not bounded here)."""
    cores = os.cpu_count() or 1
    if workers is not None and scheduler is None and workers > MAX_WORKERS_PER_CORE * cores:
        raise CfbenchError(f"--workers {workers} starts more worker processes than this machine can run: at most "
                           f"{MAX_WORKERS_PER_CORE * cores} ({MAX_WORKERS_PER_CORE} per core, {cores} cores); "
                           "for more, run a dask cluster and pass --executor dask --scheduler ADDRESS")


def make_executor(name: str, workers: int | None = None, scheduler: str | None = None):
    check_workers(workers, scheduler)
    if name == "local":
        if scheduler:
            raise CfbenchError("--scheduler needs --executor dask")
        return LocalExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler, workers)
    raise CfbenchError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
