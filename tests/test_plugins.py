"""Third-party plugins: discovered through entry points, contained when broken, scored like built-ins."""

import re
from pathlib import Path

import pandas as pd

from conftest import FIXTURE_PLUGIN, ROOT, run_cli


def test_external_plugin_appears_in_list_with_its_distribution(plugin_path):
    res = run_cli("list", plugin_path=plugin_path)
    assert res.returncode == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if l.startswith("strongest-link"))
    assert "baseline" in line and "sum-ee" in line and "example (cfbench-example-plugin)" in line
    # a plugin that fails to import is named, the rest still loads
    assert "plugin 'broken' from cfbench-example-plugin failed to load: ModuleNotFoundError" in res.stderr
    # a duplicate name is named and ignored; the built-in keeps it
    assert "plugin 'faulty': solver name 'equal' already provided by plugin 'sum_ee_baselines'" in res.stderr
    equal_line = next(l for l in res.stdout.splitlines() if l.startswith("equal "))
    assert "sum_ee_baselines (cfbench)" in equal_line


def test_external_plugin_runs_in_all(plugin_path, tmp_path):
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "all", "--instances", "3",
                  "--timeout", "20", "--out", str(tmp_path / "all"), plugin_path=plugin_path)
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(tmp_path / "all" / "results.parquet")
    ours = rows[rows["solver"] == "strongest-link"]
    assert list(ours["status"]) == ["ok"] * 3 and ours["feasible"].all()
    assert {"equal", "sca", "strongest-link", "raises"} <= set(rows["solver"])


def test_faulty_solvers_get_statuses_and_other_rows_survive(plugin_path, tmp_path):
    out = tmp_path / "faulty"
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny",
                  "--solvers", "equal,raises,hangs,returns-nan,wrong-shape,strongest-link",
                  "--instances", "4", "--timeout", "3", "--out", str(out), plugin_path=plugin_path)
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(out / "results.parquet")
    status = {s: list(g.sort_values("instance")["status"]) for s, g in rows.groupby("solver")}
    assert status["raises"] == ["ok", "error", "ok", "ok"]
    assert status["hangs"] == ["timeout", "ok", "ok", "ok"]
    assert status["returns-nan"] == ["ok", "ok", "invalid", "ok"]
    assert status["wrong-shape"] == ["invalid"] * 4
    assert status["equal"] == ["ok"] * 4 and status["strongest-link"] == ["ok"] * 4
    msg = rows.set_index(["solver", "instance"])["message"]
    assert "deliberate failure on instance 1" in msg[("raises", 1)]
    assert "NaN" in msg[("returns-nan", 2)] and "shape" in msg[("wrong-shape", 0)]
    # the solves after a timeout ran in a fresh worker and were scored
    assert rows[(rows["solver"] == "hangs") & (rows["status"] == "ok")]["feasible"].all()
    assert "Non-ok rows:" in res.stdout and "timeout 1" in res.stdout


def test_readme_plugin_example_is_the_tested_plugin():
    """The README's "write your own solver plugin" code is this fixture, verbatim."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n# my_plugin\.py\n(.*?)```", readme, flags=re.S)
    assert blocks, "README lost its plugin example"
    assert blocks[0] == (FIXTURE_PLUGIN / "cfbench_example" / "plugin.py").read_text()
    assert len(blocks[0].splitlines()) <= 30
    toml = (FIXTURE_PLUGIN / "pyproject.toml").read_text()
    assert 'example = "cfbench_example.plugin"' in toml and "[project.entry-points.cfbench]" in readme


def test_example_plugin_passes_the_conformance_kit(plugin_path, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_path))
    from cfbench_example.plugin import StrongestLink

    from cfbench.testing import check_solver

    check_solver(StrongestLink)


def test_interrupted_run_keeps_finished_solvers(plugin_path, tmp_path):
    """Ctrl-C during a hanging solve: exit 130, every finished solve's row stays on disk."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "interrupted"
    env = dict(os.environ, PYTHONPATH=str(plugin_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cfbench.cli", "run", "--problem", "sum-ee", "--scenario", "tiny",
         "--solvers", "equal,hangs", "--instances", "2", "--out", str(out), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        # a CI job started in the background inherits SIGINT ignored, and Python then installs
        # no KeyboardInterrupt handler; a terminal's Ctrl-C always finds the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until 'equal' is finished
        if (out / "results.parquet").exists() and (pd.read_parquet(out / "results.parquet")["solver"] == "equal").sum() == 2:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # 'hangs' is now stuck in its first solve (no --timeout)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    rows = pd.read_parquet(out / "results.parquet")
    assert list(rows["solver"][:2]) == ["equal", "equal"] and (rows["status"] == "ok").all()
    # instance 1 of 'hangs' may have finished beside the hanging instance 0; instance 0 never does
    assert list(rows[rows["solver"] == "hangs"]["instance"]) in ([], [1])



def test_interrupt_before_any_solve_finished_leaves_a_resumable_run(plugin_path, tmp_path):
    """The folder is a valid (empty, incomplete) run from the start, so the printed --resume
    command works even when nothing had finished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "nothing"
    env = dict(os.environ, PYTHONPATH=str(plugin_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cfbench.cli", "run", "--problem", "sum-ee", "--scenario", "tiny",
         "--solvers", "hangs", "--instances", "1", "--workers", "1", "--out", str(out), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not (out / "results.parquet").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "0 of 1 solves kept" in stderr and "--resume" in stderr
    assert len(pd.read_parquet(out / "results.parquet")) == 0
    resumed = subprocess.run([sys.executable, "-m", "cfbench.cli", "run", "--problem", "sum-ee", "--scenario", "tiny",
                              "--solvers", "hangs", "--instances", "1", "--workers", "1", "--out", str(out), "--quiet",
                              "--resume", "--timeout", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert list(pd.read_parquet(out / "results.parquet")["status"]) == ["timeout"]
