"""The runner: problem x scenario x solvers x seeded instances -> one row per (instance, solver).

Each solver runs in its own worker process, one instance at a time, so the
runner can time every solve (warm-up excluded), stop a solve that exceeds the
time limit, and survive a solver that raises, hangs or crashes. Its output is
validated against the problem's declared decision fields and scored by the
problem's evaluator only; a solver's own claims are never used.

Row status: ``ok`` (scored), ``error`` (raised or crashed), ``timeout``
(exceeded ``timeout_s``), ``invalid`` (NaN, wrong shape, out of bounds, ...).

Workers start from multiprocessing's fork server (where the platform has one;
else ``spawn``), a single-threaded process that preloads the runner and the
problem and solver modules, so starting one stays cheap. They are not forked from the run itself: the run
drives units from several threads, and a process forked while another thread
holds a lock (a module's import lock, say) inherits the lock held by a thread
that does not exist in it, and hangs when it takes it. A worker imports only
what it needs by name, never the run's ``__main__`` (so a script that starts a
run needs no ``if __name__ == "__main__"`` guard); a solver class it cannot
import by name (defined in a function or in that script) is started by a plain
fork instead.

A worker never outlives the run: on Linux it asks the kernel for SIGKILL when
its parent (the fork server, which exits when the run's process does, even on
SIGKILL) dies (``PR_SET_PDEATHSIG``), and :func:`stop_all_workers` ends the
live ones when a run is interrupted. A worker that dies is reported with its
real exit code or signal. ``memory_limit_mb`` caps a worker's address space
(``RLIMIT_AS``): a runaway solver then fails inside its worker (an ``error``
row) instead of taking the machine down.
"""

from __future__ import annotations

import ctypes
import io
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from cfbench.api import Instances, Problem, Solution, Solver
from cfbench.lazy import lazy_import

try:
    from multiprocessing import context as mp_context
    from multiprocessing import forkserver, popen_forkserver, spawn
    from multiprocessing import util as mp_util
except ImportError:  # pragma: no cover - no fork server on this platform (Windows)
    popen_forkserver = None

pd = lazy_import("pandas")  # imported on first use: the workers (and their fork server) do without it

STATUSES = ("ok", "error", "timeout", "invalid")

#: Fixed seed of the warm-up instance, disjoint from user seeds by construction
#: (``SeedSequence([seed, index])`` with a negative-free marker tuple).
WARMUP_SEED = 2**31 - 1


@dataclass
class SolveOutcome:
    status: str
    message: str = ""
    decision: dict | None = None
    latency_s: float = float("nan")
    iterations: float = float("nan")
    trace: list[float] | None = None
    batch_latency_s: float = float("nan")   # a batch call's time / its size (``--batch``)


def limit_threads(threads: int) -> None:
    """Pin BLAS/OpenMP and torch (if imported by the solver) to ``threads``."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _unpack(out: Any) -> tuple[dict, float, list[float] | None]:
    if isinstance(out, Solution):
        iters = float(np.asarray(out.iterations).ravel()[0]) if out.iterations is not None else float("nan")
        trace = [float(v) for v in out.trace[0]] if out.trace else None
        return out.decision, iters, trace
    return out, float("nan"), None


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent (the fork server, or the run
    for a forked worker) dies (Linux; elsewhere the daemon flag and :func:`stop_all_workers`
    cover normal exits and interrupts)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    run = mp.parent_process()
    if os.getppid() != parent or (run is not None and not run.is_alive()):  # died before the request took effect
        os._exit(1)


def _limit_memory(memory_limit_mb: float | None) -> None:
    if memory_limit_mb is None:
        return
    import resource

    limit = int(memory_limit_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def describe_exit(exitcode: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` (``exitcode`` as multiprocessing reports it)."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _worker(conn, solver_cls, options, problem: Problem, scenario: str, instances: Instances,
            warmup: Instances, threads: int, memory_limit_mb: float | None) -> None:
    """Child process: set up, warm up (untimed), then solve indices sent by the parent.

    Ctrl-C reaches the whole process group; the worker ignores it so that only
    the parent decides (it stops its workers and keeps the finished rows)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    limit_threads(threads)
    try:
        _limit_memory(memory_limit_mb)
        solver: Solver = solver_cls(**options)
        solver.setup(problem, scenario)
        try:
            solver.solve(warmup)
        except Exception:  # noqa: BLE001 - warm-up failures show up again on real instances
            pass
        limit_threads(threads)  # the solver may have imported torch during setup / warm-up
    except Exception as exc:  # noqa: BLE001
        conn.send(("setup_error", _short(exc), traceback.format_exc()))
        return
    conn.send(("ready",))
    while True:
        if not conn.poll(WORKER_IDLE_EXIT_S):  # kept warm but no longer wanted
            return
        i = conn.recv()
        if i is None:
            return
        if isinstance(i, tuple) and i[0] == "load":  # ("load", instances): a kept worker's next block
            instances = i[1]
            conn.send(("loaded",))
            continue
        if isinstance(i, tuple):  # ("batch", [indices]): time one call on them, decisions unused
            t0 = time.perf_counter()
            try:
                solver.solve(instances[list(i[1])])
                conn.send(("batch", time.perf_counter() - t0))
            except Exception as exc:  # noqa: BLE001
                conn.send(("error", i, _short(exc), time.perf_counter() - t0))
            continue
        t0 = time.perf_counter()
        try:
            out = solver.solve(instances[i])
            latency = time.perf_counter() - t0
            decision, iters, trace = _unpack(out)
            conn.send(("ok", i, decision, latency, iters, trace))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", i, _short(exc), time.perf_counter() - t0))


#: a worker kept warm between :func:`solve_all` calls exits after this long without a message,
#: and is reused only if it has waited for less than half of it (so it never exits under a reuse)
WORKER_IDLE_EXIT_S = 120.0

#: workers alive in this process (any thread), so that an interrupt can end them all
_LIVE: set["_WorkerHandle"] = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


class RunStopped(Exception):
    """:func:`stop_all_workers` was called while a unit was running."""


def stop_all_workers() -> None:
    """Kill every live worker of this process and make running :func:`solve_all` calls stop."""
    _STOPPING.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for handle in live:
        handle.kill()


def reset_stop() -> None:
    _STOPPING.clear()


class _WorkerHandle:
    def __init__(self, ctx, solver_cls, options, problem, scenario, instances, warmup, threads,
                 memory_limit_mb=None):
        self._kill_lock = threading.Lock()
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker,
            args=(child, solver_cls, options, problem, scenario, instances, warmup, threads, memory_limit_mb),
            daemon=True,
        )
        self.proc.start()
        child.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        self.idle_since = time.monotonic()

    def load(self, instances: Instances, timeout_s: float = 30.0) -> bool:
        """Hand a kept worker its next block; False if it is gone (it is then killed)."""
        try:
            self.parent.send(("load", instances))
        except (BrokenPipeError, OSError):
            self.kill()
            return False
        if self.receive(timeout_s) != ("loaded",):
            self.kill()
            return False
        return True

    def exit_description(self) -> str:
        self.proc.join(timeout=5)  # a dead worker is reaped before its exit code is read
        return describe_exit(self.proc.exitcode)

    def receive(self, timeout_s: float | None):
        """Next message, ``"timeout"`` or ``"died"``."""
        try:
            if not self.parent.poll(timeout_s):
                return "timeout"
            return self.parent.recv()
        except (EOFError, OSError):
            return "died"

    def stop(self) -> None:
        try:
            self.parent.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=2)
        self.kill()

    def kill(self) -> None:
        """Idempotent and safe from any thread: an interrupt's :func:`stop_all_workers` may
        meet the thread that owns this worker stopping it at the same moment."""
        with self._kill_lock:
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(timeout=5)
            try:
                self.parent.close()
            except OSError:  # closed already
                pass
        with _LIVE_LOCK:
            _LIVE.discard(self)


class WarmWorkers:
    """Workers kept alive between :func:`solve_all` calls: at most one per calling thread.

    A worker is set up and warmed up once, then serves every later block of the same
    solver (same class, options, problem, scenario, threads, memory limit) that the same
    thread hands to :func:`solve_all`, so a run cut into many units pays set-up and warm-up
    once per thread and solver, not once per unit. Each solve is still timed alone with the
    same timeout; a worker that timed out, died or failed to set up is never kept. Per
    thread, because a forked worker dies with the thread that started it (``PR_SET_PDEATHSIG``).
    A worker asked for another solver is stopped first; one left unused for
    :data:`WORKER_IDLE_EXIT_S` exits on its own; :meth:`close` stops them all.
    """

    def __init__(self) -> None:
        self._held: dict[int, tuple[tuple, _WorkerHandle]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(problem: Problem, scenario: str, solver_cls: type, options: dict | None, threads: int,
            memory_limit_mb: float | None) -> tuple:
        return (problem.name, scenario, f"{solver_cls.__module__}.{solver_cls.__qualname__}",
                repr(sorted((options or {}).items())), threads, memory_limit_mb)

    def take(self, key: tuple) -> "_WorkerHandle | None":
        with self._lock:
            held = self._held.pop(threading.get_ident(), None)
        if held is None:
            return None
        held_key, worker = held
        fresh = time.monotonic() - worker.idle_since < WORKER_IDLE_EXIT_S / 2
        if held_key == key and fresh and worker.proc.is_alive():
            return worker
        worker.stop()
        return None

    def give(self, key: tuple, worker: "_WorkerHandle") -> None:
        worker.idle_since = time.monotonic()
        with self._lock:
            previous = self._held.pop(threading.get_ident(), None)
            self._held[threading.get_ident()] = (key, worker)
        if previous is not None:
            previous[1].stop()

    def close(self) -> None:
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for _, worker in held:
            worker.stop()


def _context(solver_cls: type | None = None, problem: Problem | None = None):
    """Where workers start (module docstring): the fork server, or a plain fork for a solver
    or problem class that the fork server cannot import by name (defined in a function or in
    the run's ``__main__``, which the fork server never imports; it is then inherited, not sent). The fork server starts with the first
    worker of the process and imports the runner, that worker's problem and solver modules
    once, so that its workers need not."""
    methods = mp.get_all_start_methods()
    classes = [c for c in (solver_cls, type(problem) if problem is not None else None) if c is not None]
    if "fork" in methods and not all(_importable(c) for c in classes):
        return mp.get_context("fork")
    if "forkserver" in methods and popen_forkserver is not None:
        ctx = _WorkerContext()
        ctx.set_forkserver_preload(["cfbench.runner", *(c.__module__ for c in classes)])
        return ctx
    return mp.get_context("spawn")


def _importable(cls: type) -> bool:
    import pickle

    if cls.__module__ == "__main__":
        return False
    try:
        pickle.dumps(cls)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


if popen_forkserver is not None:
    class _ForkServerPopen(popen_forkserver.Popen):
        """The fork server's launcher (CPython's ``popen_forkserver.Popen._launch``), except that the
        child is not asked to import the run's main module (``init_main_from_path`` / ``_name``):
        a worker's target and arguments live in importable modules, and re-running a user's
        script in every worker would repeat its top level (all of it, without a ``__main__``
        guard)."""

        def _launch(self, process_obj):
            prep_data = {key: value for key, value in spawn.get_preparation_data(process_obj._name).items()
                         if not key.startswith("init_main_from")}
            buf = io.BytesIO()
            mp_context.set_spawning_popen(self)
            try:
                mp_context.reduction.dump(prep_data, buf)
                mp_context.reduction.dump(process_obj, buf)
            finally:
                mp_context.set_spawning_popen(None)
            self.sentinel, w = forkserver.connect_to_new_process(self._fds)
            _parent_w = os.dup(w)  # the parent's sentinel in the child, as in CPython
            self.finalizer = mp_util.Finalize(self, mp_util.close_fds, (_parent_w, self.sentinel))
            with open(w, "wb", closefd=True) as f:
                f.write(buf.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    class _WorkerProcess(mp_context.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj):
            return _ForkServerPopen(process_obj)

    class _WorkerContext(mp_context.ForkServerContext):
        Process = _WorkerProcess


def solve_all(problem: Problem, scenario: str, solver_cls: type, instances: Instances, *,
              options: dict | None = None, timeout_s: float | None = None, threads: int = 1,
              setup_timeout_s: float | None = None, on_solve: Callable[[], None] | None = None,
              memory_limit_mb: float | None = None, batch: int | None = None,
              keep: WarmWorkers | None = None) -> list[SolveOutcome]:
    """Solve every instance with one solver in an isolated worker; one outcome per instance.

    A solve that exceeds ``timeout_s`` is killed and reported as ``timeout``;
    the worker is restarted for the remaining instances. ``setup_timeout_s``
    bounds setup plus the untimed warm-up (default: ``max(120, 10 * timeout_s)``).
    Raises :class:`RunStopped` if :func:`stop_all_workers` is called meanwhile.

    With ``batch`` (for a solver that declares ``solves_batches``), the same worker then
    times one ``solve`` call per ``batch`` consecutive instances (timeout ``batch *
    timeout_s`` per call) and records the call's time divided by its size as each
    instance's ``batch_latency_s``; the rows' decisions stay the one-at-a-time ones.

    With ``keep``, the worker comes from (and goes back to) that :class:`WarmWorkers` when
    it can, instead of being started, set up and warmed up for this call alone.
    """
    ctx = _context(solver_cls, problem)
    key = WarmWorkers.key(problem, scenario, solver_cls, options, threads, memory_limit_mb) if keep else None
    warmup = problem.sample(scenario, 1, seed=WARMUP_SEED)
    if setup_timeout_s is None and timeout_s is not None:
        setup_timeout_s = max(120.0, 10.0 * timeout_s)
    outcomes: list[SolveOutcome] = []
    worker: _WorkerHandle | None = None
    n = len(instances)
    i = 0
    try:
        while i < n:
            if _STOPPING.is_set():
                raise RunStopped()
            if worker is None and keep is not None:
                worker = keep.take(key)
                if worker is not None and not worker.load(instances):
                    worker = None
            if worker is None:
                worker = _WorkerHandle(ctx, solver_cls, options or {}, problem, scenario, instances, warmup, threads,
                                       memory_limit_mb)
                msg = worker.receive(setup_timeout_s)
                if _STOPPING.is_set():
                    raise RunStopped()
                if msg != ("ready",):
                    if msg == "timeout":
                        status, text = "timeout", f"setup and warm-up exceeded {setup_timeout_s:g} s"
                    elif msg == "died":
                        status, text = "error", f"worker died during setup ({worker.exit_description()})"
                    else:
                        status, text = "error", f"setup failed: {msg[1]}"
                    worker.kill()
                    for _ in range(i, n):
                        outcomes.append(SolveOutcome(status, text))
                        if on_solve:
                            on_solve()
                    return outcomes
            worker.parent.send(i)
            msg = worker.receive(timeout_s)
            if _STOPPING.is_set():
                raise RunStopped()
            if msg == "timeout":
                outcomes.append(SolveOutcome("timeout", f"exceeded {timeout_s:g} s", latency_s=float(timeout_s)))
                worker.kill()
                worker = None
            elif msg == "died":
                outcomes.append(SolveOutcome("error", f"worker died ({worker.exit_description()})"))
                worker.kill()
                worker = None
            elif msg[0] == "error":
                outcomes.append(SolveOutcome("error", msg[2], latency_s=msg[3]))
            else:
                _, _, decision, latency, iters, trace = msg
                outcomes.append(SolveOutcome("ok", "", decision, latency, iters, trace))
            i += 1
            if on_solve:
                on_solve()
        if batch and getattr(solver_cls, "solves_batches", False):
            worker = _time_batches(worker, outcomes, batch, timeout_s, ctx, solver_cls, options, problem, scenario,
                                   instances, warmup, threads, memory_limit_mb)
        if worker is not None and keep is not None:
            keep.give(key, worker)
            worker = None
    finally:
        if worker is not None:
            worker.stop()
    return outcomes


def _time_batches(worker, outcomes, batch, timeout_s, ctx, solver_cls, options, problem, scenario, instances,
                  warmup, threads, memory_limit_mb):
    """``batch_latency_s`` of ``outcomes`` from timed calls on ``batch`` instances each; returns
    the worker still alive (or None)."""
    n = len(outcomes)
    for first in range(0, n, batch):
        chunk = list(range(first, min(first + batch, n)))
        if _STOPPING.is_set():
            raise RunStopped()
        if worker is None:
            worker = _WorkerHandle(ctx, solver_cls, options or {}, problem, scenario, instances, warmup, threads,
                                   memory_limit_mb)
            if worker.receive(None if timeout_s is None else max(120.0, 10.0 * timeout_s)) != ("ready",):
                worker.kill()
                return None
        worker.parent.send(("batch", chunk))
        msg = worker.receive(None if timeout_s is None else timeout_s * len(chunk))
        if isinstance(msg, tuple) and msg[0] == "batch":
            for j in chunk:
                outcomes[j].batch_latency_s = msg[1] / len(chunk)
        elif msg in ("timeout", "died"):
            worker.kill()
            worker = None
    return worker


def score_outcomes(problem: Problem, instances: Instances, outcomes: list[SolveOutcome]) -> "pd.DataFrame":
    """Validate decisions against the declared fields, evaluate the valid ones (one instance
    per call), and return one row per instance (without run identifiers).
    Valid rows keep their decision, flattened, in ``decision_<field>`` columns
    (shape: the field's declared shape)."""
    n = len(instances)
    rows = [
        {
            "instance": int(instances.index[i]),
            "status": o.status,
            "message": o.message,
            "objective": np.nan,
            "max_violation": np.nan,
            "feasible": False,
            "latency_s": o.latency_s,
            "iterations": o.iterations,
            "trace": o.trace,
            "batch_latency_s": o.batch_latency_s,
        }
        for i, o in enumerate(outcomes)
    ]
    valid: list[int] = []
    for i, o in enumerate(outcomes):
        if o.status != "ok":
            continue
        reason = problem.check_decision(instances[i], o.decision)
        if reason:
            rows[i]["status"], rows[i]["message"] = "invalid", reason
        else:
            valid.append(i)
    fields = [f.name for f in problem.decision_fields(instances.scenario)]
    for i in valid:
        # one instance per call: a vectorised evaluator's last bits may depend on the batch it
        # sees, and rows must not depend on how a run was cut into units
        decision = {k: np.asarray(outcomes[i].decision[k], dtype=float) for k in fields}
        score = problem.evaluate(instances[[i]], decision)
        for k in fields:  # the decision itself, flattened, so results can be re-judged later
            rows[i][f"decision_{k}"] = decision[k][0].ravel().tolist()
        objective = float(score.objective[0])
        rows[i]["objective"] = objective
        rows[i]["max_violation"] = float(score.max_violation[0])
        rows[i]["feasible"] = bool(score.feasible[0]) and np.isfinite(objective)
        for name, v in score.violation.items():
            rows[i][f"viol_{name}"] = float(v[0])
        for name, v in score.metrics.items():  # per-terminal metrics are kept as lists
            value = np.asarray(v[0], dtype=float)
            rows[i][f"metric_{name}"] = float(value) if value.ndim == 0 else value.ravel().tolist()
    assert len(rows) == n
    frame = pd.DataFrame(rows)
    if frame["batch_latency_s"].isna().all():  # no --batch timing: no column
        frame = frame.drop(columns="batch_latency_s")
    return frame


def run(registry, problem_name: str, scenario: str, solver_names: list[str], *, n_instances: int,
        seed: int = 0, timeout_s: float | None = None, threads: int = 1,
        solver_options: dict[str, dict] | None = None,
        on_solve: Callable[[], None] | None = None) -> Iterator["pd.DataFrame"]:
    """Yield one scored DataFrame per solver, in order, so callers can save as they go.
    ``solver_options`` maps a solver name to the keyword options it is built with."""
    problem = registry.problem(problem_name)
    problem.scenario_params(scenario)
    instances = problem.sample(scenario, n_instances, seed)
    for name in solver_names:
        provided = registry.solver(problem_name, name)
        outcomes = solve_all(problem, scenario, provided.cls, instances, timeout_s=timeout_s,
                             options=(solver_options or {}).get(name), threads=threads, on_solve=on_solve)
        frame = score_outcomes(problem, instances, outcomes)
        frame.insert(0, "problem", problem_name)
        frame.insert(1, "scenario", scenario)
        frame.insert(2, "seed", seed)
        frame.insert(4, "solver", name)
        frame.insert(5, "kind", provided.cls.kind)
        frame["threads"] = threads
        yield frame
