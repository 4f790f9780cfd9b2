"""Executors, resume and worker lifetime of ``cfbench run`` (as a user runs it: subprocesses)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cfbench import Option, Solver
from cfbench.executors import WorkUnit, default_block, plan_units
from cfbench.registry import build_registry
from cfbench.runner import WARMUP_SEED, WarmWorkers, describe_exit, solve_all
from conftest import run_cli

HAS_DASK = importlib.util.find_spec("distributed") is not None
#: columns that legitimately differ between two runs of the same work
TIMING = ("latency_s",)


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = ["solver", "instance"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for column in a.columns:
        if column in TIMING:
            continue
        for x, y in zip(a[column], b[column]):
            if isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y):
                continue
            assert np.array_equal(np.asarray(x), np.asarray(y)), (column, x, y)


def _popen(args, plugin_path, **kw):
    env = dict(os.environ, PYTHONPATH=str(plugin_path))
    return subprocess.Popen([sys.executable, "-m", "cfbench.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... (workers are children of the run's fork server)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [d for c in map(int, out.split()) for d in (c, *_descendants(c))]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def _wait_for(predicate, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _n_rows(out: Path, solver: str | None = None) -> int:
    try:
        rows = pd.read_parquet(out / "results.parquet")
    except (OSError, ValueError):
        return 0
    return int(len(rows) if solver is None else (rows["solver"] == solver).sum())


def test_plan_cuts_missing_indices_into_contiguous_blocks():
    units = plan_units("p", "s", 0, {"a": [0, 1, 2, 3, 4, 7, 8], "b": [5]}, block=2, options={"a": {"k": 1}})
    assert [(u.solver, u.start, u.count) for u in units] == [
        ("a", 0, 2), ("a", 2, 2), ("a", 4, 1), ("a", 7, 2), ("b", 5, 1)]
    assert units[0].options == {"k": 1} and units[-1].options == {}
    assert default_block(256, 2) == 16 and default_block(8, 2) == 1 and default_block(40, 1) == 5
    assert default_block(10**6, 64) == 16 and default_block(24, 2) == 2
    assert isinstance(units[0], WorkUnit)


def test_rows_are_identical_across_executors_and_worker_counts(tmp_path):
    common = ["run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal,best-uniform,sca,random",
              "--instances", "6", "--seed", "3", "--quiet"]
    runs = {"one": ["--workers", "1", "--block", "6"], "two": ["--workers", "2", "--block", "1"]}
    if HAS_DASK:
        runs["dask"] = ["--executor", "dask", "--workers", "2"]
    rows = {}
    for name, extra in runs.items():
        res = run_cli(*common, *extra, "--out", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        rows[name] = pd.read_parquet(tmp_path / name / "results.parquet")
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["complete"] is True
        assert manifest["execution"]["executor"] == ("dask" if name == "dask" else "local")
    assert len(rows["one"]) == 24
    for name in rows:
        _same_rows(rows["one"], rows[name])


def test_dask_executor_without_dask_is_a_one_line_error(tmp_path):
    fake = tmp_path / "no_dask"
    (fake / "dask").mkdir(parents=True)
    (fake / "dask" / "__init__.py").write_text("raise ImportError('no dask here')\n")
    env = dict(os.environ, PYTHONPATH=str(fake))
    res = subprocess.run([sys.executable, "-m", "cfbench.cli", "run", "--problem", "sum-ee", "--scenario", "tiny",
                          "--executor", "dask", "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "pip install 'cfbench[dask]'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists()  # validated before any work


def test_kill_9_mid_run_then_resume_solves_exactly_the_missing_pairs(plugin_path, tmp_path):
    out = tmp_path / "killed"
    args = ["run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal,slow", "--instances", "12",
            "--workers", "2", "--block", "1", "--out", str(out), "--quiet"]
    proc = _popen(args, plugin_path)
    assert _wait_for(lambda: _n_rows(out, "slow") >= 3), proc.communicate(timeout=5)
    workers = _descendants(proc.pid)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=30)
    assert _wait_for(lambda: not any(_alive(w) for w in workers), 10), "a worker outlived its killed parent"
    rows = pd.read_parquet(out / "results.parquet")
    assert 3 <= len(rows) < 24
    assert not rows.duplicated(["solver", "instance"]).any() and (rows["status"] == "ok").all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    report = run_cli("report", str(out), plugin_path=plugin_path)
    assert report.returncode == 0 and "incomplete run" in report.stderr
    assert f"cfbench {' '.join(args)} --resume" in report.stderr   # the run's own command, finished
    before = {(s, i) for s, i in zip(rows["solver"], rows["instance"])}

    res = run_cli(*args[:-1], "--resume", plugin_path=plugin_path)  # --quiet dropped: the table is printed
    assert res.returncode == 0, res.stderr
    resumed = pd.read_parquet(out / "results.parquet")
    assert len(resumed) == 24 and not resumed.duplicated(["solver", "instance"]).any()
    kept = resumed.set_index(["solver", "instance"]).loc[sorted(before)]
    np.testing.assert_array_equal(kept["latency_s"].to_numpy(),
                                  rows.set_index(["solver", "instance"]).loc[sorted(before)]["latency_s"].to_numpy())
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
    fresh = tmp_path / "fresh"
    assert run_cli(*args[:-3], "--out", str(fresh), "--quiet", plugin_path=plugin_path).returncode == 0
    _same_rows(pd.read_parquet(fresh / "results.parquet"), resumed)


def test_sigterm_stops_the_run_keeps_rows_and_prints_the_resume_command(plugin_path, tmp_path):
    out = tmp_path / "terminated"
    proc = _popen(["run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal,hangs", "--instances", "2",
                   "--workers", "2", "--out", str(out), "--quiet"], plugin_path)
    assert _wait_for(lambda: _n_rows(out, "equal") == 2)
    assert _wait_for(lambda: any(_descendants(c) for c in _descendants(proc.pid)))   # a worker, under the fork server
    time.sleep(0.5)  # 'hangs' is stuck in its first solve
    workers = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr and "--resume" in stderr and str(out) in stderr
    assert _wait_for(lambda: not any(_alive(w) for w in workers), 10), "a worker outlived the run"
    rows = pd.read_parquet(out / "results.parquet")
    assert set(rows["solver"]) <= {"equal", "hangs"} and (rows[rows["solver"] == "equal"]["status"] == "ok").all()


def test_a_dead_worker_is_reported_with_its_signal(plugin_path, tmp_path):
    out = tmp_path / "crash"
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "crashes", "--instances", "3",
                  "--workers", "1", "--out", str(out), plugin_path=plugin_path)
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(out / "results.parquet").set_index("instance")
    assert list(rows["status"]) == ["ok", "error", "ok"]
    assert rows.loc[1, "message"] == "worker died (killed by SIGKILL)"
    assert describe_exit(3) == "exit code 3" and describe_exit(-9) == "killed by SIGKILL"


def test_memory_limit_turns_a_runaway_solver_into_an_error_row(plugin_path, tmp_path):
    out = tmp_path / "hog"
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "hog", "--instances", "2",
                  "--workers", "1", "--memory-limit", "2000", "--set", "hog:gib=4", "--out", str(out),
                  plugin_path=plugin_path)
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(out / "results.parquet").set_index("instance")
    assert list(rows["status"]) == ["error", "ok"]
    assert "MemoryError" in rows.loc[0, "message"]


@pytest.mark.parametrize("bad, message", [
    (["--workers", "0"], "--workers"),
    (["--executor", "ray"], "invalid choice: 'ray'"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    (["--memory-limit", "-5"], "--memory-limit"),
    (["--resume", "--append"], "exclude each other"),
])
def test_bad_execution_options_are_one_line_errors(tmp_path, bad, message):
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--out", str(tmp_path / "x"), *bad)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists()


def test_dataset_labels_are_the_same_on_every_executor(tmp_path):
    common = ["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "opc-fast", "--samples", "12",
              "--shard-size", "4", "--quiet"]
    runs = {"one": ["--workers", "1"], "two": ["--workers", "2"]}
    if HAS_DASK:
        runs["dask"] = ["--executor", "dask", "--workers", "2"]
    shards = {}
    for name, extra in runs.items():
        res = run_cli(*common, *extra, "--out", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        shards[name] = [dict(np.load(p)) for p in sorted((tmp_path / name / "tiny").glob("shard-*.npz"))]
        assert len(shards[name]) == 3
    for name in shards:
        for a, b in zip(shards["one"], shards[name]):
            assert a.keys() == b.keys()
            for key in a:
                if key != "label_seconds":
                    np.testing.assert_array_equal(a[key], b[key])


def test_batch_mode_reports_throughput_beside_latency_and_keeps_the_rows(tmp_path):
    common = ["run", "--problem", "mmtc", "--scenario", "tiny", "--solvers", "opc-fast,upc", "--instances", "8",
              "--workers", "2", "--quiet"]
    assert run_cli(*common, "--out", str(tmp_path / "plain")).returncode == 0
    res = run_cli(*common, "--batch", "4", "--out", str(tmp_path / "batch"))
    assert res.returncode == 0, res.stderr
    plain = pd.read_parquet(tmp_path / "plain" / "results.parquet")
    batch = pd.read_parquet(tmp_path / "batch" / "results.parquet")
    assert "batch_latency_s" not in plain
    fast = batch[batch["solver"] == "opc-fast"]
    assert fast["batch_latency_s"].notna().all() and (fast["batch_latency_s"] > 0).all()
    # one call per 4 instances: the 4 rows of a call share its time / 4
    assert fast["batch_latency_s"].nunique() == 2
    assert batch[batch["solver"] == "upc"]["batch_latency_s"].isna().all()  # does not declare batches
    _same_rows(plain, batch.drop(columns="batch_latency_s"))
    table = run_cli("report", str(tmp_path / "batch"), "--format", "csv").stdout
    assert "batch_latency_ms" in table.splitlines()[0]


class _RecordsItsProcess(Solver):
    """The power level of every link is the worker's process id (times 1e-9 W): which
    worker solved an instance can be read back from its decision."""

    name, kind, problems = "records-process", "baseline", ("sum-ee",)
    options_spec = (Option("hang_on", int, None, "instance index whose solve hangs"),
                    Option("x", int, 0, "no effect: another option value, so another worker"))

    def solve(self, instances):
        p = instances.params
        if self.options["hang_on"] == int(instances.index[0]) and instances.seed != WARMUP_SEED:
            time.sleep(3600)
        return {"power_w": np.full((len(instances), p.n_ues, p.n_aps), os.getpid() * 1e-9)}


def _pids(outcomes) -> set[int]:
    return {round(float(np.asarray(o.decision["power_w"]).ravel()[0]) * 1e9) for o in outcomes if o.status == "ok"}


def test_a_kept_worker_serves_the_next_block_of_the_same_solver_only():
    problem = build_registry().problem("sum-ee")
    instances = problem.sample("tiny", 6, seed=3)
    keep = WarmWorkers()
    try:
        first = solve_all(problem, "tiny", _RecordsItsProcess, instances[[0, 1]], keep=keep)
        second = solve_all(problem, "tiny", _RecordsItsProcess, instances[[2, 3]], keep=keep)
        assert len(_pids(first)) == 1 and _pids(first) == _pids(second)   # one worker for both blocks
        other = solve_all(problem, "tiny", _RecordsItsProcess, instances[[4]], options={"x": 1}, keep=keep)
        assert _pids(other).isdisjoint(_pids(first))                      # other options: another worker
        assert not _alive(next(iter(_pids(first))))                       # ... and the first one stopped
        again = solve_all(problem, "tiny", _RecordsItsProcess, instances[[5]], keep=keep)
        assert _pids(again).isdisjoint(_pids(first) | _pids(other))
    finally:
        keep.close()
    assert not any(_alive(pid) for pid in _pids(again) | _pids(other))


def test_after_a_timeout_the_restarted_worker_is_the_one_kept():
    problem = build_registry().problem("sum-ee")
    instances = problem.sample("tiny", 4, seed=3)
    keep = WarmWorkers()
    options = {"hang_on": 1}
    try:
        out = solve_all(problem, "tiny", _RecordsItsProcess, instances, options=options, timeout_s=2, keep=keep)
        assert [o.status for o in out] == ["ok", "timeout", "ok", "ok"]
        before, after = _pids(out[:1]), _pids(out[2:])
        assert len(after) == 1 and before != after and not _alive(next(iter(before)))
        again = solve_all(problem, "tiny", _RecordsItsProcess, instances[[0, 2]], options=options, keep=keep)
        assert _pids(again) == after
    finally:
        keep.close()


def test_killing_a_worker_from_several_threads_at_once_is_safe():
    """An interrupt's stop_all_workers may meet the owning thread stopping the same worker."""
    import threading

    from cfbench.runner import _LIVE, _context, _WorkerHandle

    problem = build_registry().problem("sum-ee")
    instances = problem.sample("tiny", 1, seed=3)
    for _ in range(5):
        handle = _WorkerHandle(_context(), _RecordsItsProcess, {}, problem, "tiny", instances, instances, 1)
        assert handle.receive(60) == ("ready",)
        errors = []

        def end(how):
            try:
                handle.stop() if how else handle.kill()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=end, args=(i % 2,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and not handle.proc.is_alive() and handle not in _LIVE


class _ImportsInSetup(Solver):
    """Imports module ``module`` in ``setup`` (a module the run's other thread imports at the same time)."""

    name, kind, problems = "imports-in-setup", "baseline", ("sum-ee",)
    options_spec = (Option("module", str, None, "module to import in setup"),)

    def setup(self, problem, scenario):
        super().setup(problem, scenario)
        importlib.import_module(self.options["module"])

    def solve(self, instances):
        p = instances.params
        return {"power_w": np.zeros((len(instances), p.n_ues, p.n_aps))}


def test_a_worker_started_while_another_thread_imports_a_module_can_import_it(tmp_path, monkeypatch):
    """A unit thread starts its worker while another thread of the run is importing a module the
    worker's set-up imports too. A worker forked from the multi-threaded run would inherit that
    module's import lock held by a thread that does not exist in it, and hang in set-up for good
    (seen once in CI); workers start from a single-threaded fork server instead."""
    import threading

    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(3.0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importing = threading.Thread(target=importlib.import_module, args=("slow_to_import",))
    problem = build_registry().problem("sum-ee")
    instances = problem.sample("tiny", 1, seed=3)
    try:
        importing.start()
        time.sleep(1.0)   # the other thread is inside the module's import now
        out = solve_all(problem, "tiny", _ImportsInSetup, instances, options={"module": "slow_to_import"},
                        setup_timeout_s=30)
    finally:
        importing.join()
        sys.modules.pop("slow_to_import", None)
    assert [o.status for o in out] == ["ok"], out[0].message


def test_a_script_without_a_main_guard_runs_solvers_from_modules_and_from_itself(tmp_path):
    """Workers never import the run's ``__main__``: a script's top level runs once, whether the
    solver comes from a module (fork server) or from the script itself (forked)."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import numpy as np\n"
        "from cfbench import Solver\n"
        "from cfbench.registry import build_registry\n"
        "from cfbench.runner import solve_all\n"
        "print('top level ran', flush=True)\n"
        "class Zeros(Solver):\n"
        "    name, kind, problems = 'zeros', 'baseline', ('sum-ee',)\n"
        "    def solve(self, instances):\n"
        "        p = instances.params\n"
        "        return {'power_w': np.zeros((len(instances), p.n_ues, p.n_aps))}\n"
        "registry = build_registry()\n"
        "problem = registry.problem('sum-ee')\n"
        "instances = problem.sample('tiny', 2, seed=3)\n"
        "for cls in (registry.solver('sum-ee', 'equal').cls, Zeros):\n"
        "    print(cls.__name__, [o.status for o in solve_all(problem, 'tiny', cls, instances, setup_timeout_s=60)])\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    equal = build_registry().solver("sum-ee", "equal").cls.__name__
    assert res.stdout.splitlines() == ["top level ran", f"{equal} ['ok', 'ok']", "Zeros ['ok', 'ok']"], res.stderr
