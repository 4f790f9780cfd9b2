"""The CLI contract: --help everywhere, one-line errors with exit status 2, files written by run."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

REQUIRED_COLUMNS = {"problem", "scenario", "seed", "instance", "solver", "kind", "status", "objective",
                    "max_violation", "feasible", "latency_s"}


@pytest.mark.parametrize("command", [[], ["list"], ["run"], ["report"], ["dataset"], ["train"]])
def test_help_on_every_command(command):
    res = run_cli(*command, "--help")
    assert res.returncode == 0
    assert "usage: cfbench" in res.stdout


@pytest.mark.parametrize(
    "args, must_mention",
    [
        (["run", "--problem", "nope"], ["'nope'", "sum-ee"]),
        (["run", "--problem", "sum-ee", "--scenario", "huge"], ["'huge'", "5ap-10ue", "tiny"]),
        (["run", "--problem", "sum-ee", "--solvers", "equal,magic"], ["'magic'", "sca", "all"]),
        (["run", "--problem", "sum-ee", "--instances", "zero"], ["'zero'"]),
        (["run", "--problem", "sum-ee", "--instances", "-3"], ["'-3'"]),
        (["run", "--problem", "sum-ee", "--timeout", "nan"], ["'nan'"]),
        (["run", "--problem", "sum-ee", "--seed", "x"], ["'x'"]),
        (["report", "/definitely/not/here"], ["/definitely/not/here"]),
        (["report", ".", "--format", "xml"], ["'xml'", "markdown"]),
        (["frobnicate"], ["'frobnicate'", "run"]),
        (["run", "--problem", "sum-ee", "--solvers", "equal", "--set", "sca:max_outer=3"], ["'sca'", "equal"]),
        (["run", "--problem", "sum-ee", "--set", "kappa=1"], ["'kappa=1'", "SOLVER:KEY=VALUE"]),
        (["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "upc", "--samples", "0",
          "--out", "x"], ["'0'"]),
    ],
)
def test_bad_input_is_one_line_exit_2(args, must_mention):
    res = run_cli(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("cfbench: error: ")
    assert "Traceback" not in res.stderr
    for text in must_mention:
        assert text in lines[0]


def test_list_shows_problems_scenarios_and_solvers():
    res = run_cli("list")
    assert res.returncode == 0, res.stderr
    for text in ("sum-ee", "10ap-10ue (default)", "tiny", "sca", "iterative", "multistart-pg", "reference",
                 "sum_ee_baselines (cfbench)"):
        assert text in res.stdout


def test_run_writes_results_manifest_and_report_reproduces_table(tmp_path):
    out = tmp_path / "run"
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal,nearest-ap",
                  "--instances", "3", "--seed", "7", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(out / "results.parquet")
    assert REQUIRED_COLUMNS <= set(rows.columns)
    assert len(rows) == 6 and set(rows["status"]) == {"ok"}
    assert set(rows["seed"]) == {7} and sorted(set(rows["instance"])) == [0, 1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario_parameters"]["n_ues"] == 3
    assert manifest["threads"] == 1 and manifest["versions"]["numpy"]
    assert "cfbench run --problem sum-ee" in manifest["command"]
    table_lines = [l for l in res.stdout.splitlines() if l.strip().startswith(("1 ", "2 "))]
    assert len(table_lines) == 2
    rep = run_cli("report", str(out))
    assert rep.returncode == 0
    for line in table_lines:
        assert line in rep.stdout
    md = run_cli("report", str(out), "--format", "markdown")
    assert md.stdout.startswith("| ")
    csv = run_cli("report", str(out), "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("rank,solver,kind")
    js = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    assert {r["solver"] for r in js} == {"equal", "nearest-ap"}
    again = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal", "--instances", "1",
                    "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_append_adds_solvers_to_a_run_on_the_same_instances(tmp_path):
    out = tmp_path / "run"
    base = ("run", "--problem", "sum-ee", "--scenario", "tiny", "--instances", "3", "--seed", "4", "--quiet",
            "--out", str(out))
    assert run_cli(*base, "--solvers", "equal,random").returncode == 0
    first = pd.read_parquet(out / "results.parquet")
    res = run_cli(*base, "--solvers", "random,best-uniform", "--append")
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(out / "results.parquet")
    assert sorted(rows["solver"].value_counts().items()) == [("best-uniform", 3), ("equal", 3), ("random", 3)]
    pd.testing.assert_frame_equal(rows[rows["solver"] == "equal"].reset_index(drop=True),
                                  first[first["solver"] == "equal"].reset_index(drop=True))
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["solvers"]) == {"equal", "random", "best-uniform"}
    assert manifest["appended"][0]["solvers"] == ["random", "best-uniform"]
    assert "best-uniform" in res.stdout and "equal" in res.stdout  # the table covers every solver
    other = run_cli(*base[:-5], "--seed", "5", "--quiet", "--out", str(out), "--solvers", "equal", "--append")
    assert other.returncode == 2 and "its seed is 4, this run's is 5" in other.stderr
    both = run_cli(*base, "--solvers", "equal", "--append", "--overwrite")
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_a_solver_of_another_problem_is_named_as_such():
    res = run_cli("run", "--problem", "urllc", "--scenario", "tiny", "--solvers", "equal")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "solver 'equal' does not support problem 'urllc'; valid for 'urllc': all, best-uniform" in res.stderr


def test_solver_options_reach_the_solver_and_the_manifest(tmp_path):
    common = ["run", "--problem", "mmtc", "--scenario", "tiny", "--solvers", "g-fpc", "--instances", "2", "--quiet"]
    assert run_cli(*common, "--out", str(tmp_path / "default")).returncode == 0
    res = run_cli(*common, "--set", "g-fpc:kappa=0.5", "--out", str(tmp_path / "set"))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["solvers"]["g-fpc"]["options"] == {"kappa": 0.5}
    default = pd.read_parquet(tmp_path / "default" / "results.parquet")
    chosen = pd.read_parquet(tmp_path / "set" / "results.parquet")
    assert not all(np.array_equal(a, b) for a, b in zip(default["decision_device_power_w"],
                                                         chosen["decision_device_power_w"]))


def test_manifest_pins_the_weights_and_resume_refuses_other_ones(tmp_path):
    """A learned solver's weight file is recorded by SHA-256 (the shipped file by default, a
    given one by path); resuming with the same option but other file content is refused
    before any work, as one line."""
    import hashlib
    import shutil

    from cfbench.plugins import urllc_estpanet as est

    common = ["run", "--problem", "urllc", "--scenario", "tiny", "--instances", "2", "--quiet"]
    res = run_cli(*common, "--solvers", "estpanet,p-max", "--out", str(tmp_path / "shipped"))
    assert res.returncode == 0, res.stderr
    solvers = json.loads((tmp_path / "shipped" / "manifest.json").read_text())["solvers"]
    shipped = est.WEIGHTS_DIR / est.SHIPPED_WEIGHTS["tiny"]
    assert solvers["estpanet"]["artifacts"] == {
        "weights": {"file": shipped.name, "sha256": hashlib.sha256(shipped.read_bytes()).hexdigest()}}
    assert "artifacts" not in solvers["p-max"]
    weights = tmp_path / "w.pt"
    shutil.copy(shipped, weights)
    given = [*common, "--solvers", "estpanet", "--set", f"estpanet:weights={weights}", "--out", str(tmp_path / "run")]
    assert run_cli(*given).returncode == 0
    shutil.copy(est.WEIGHTS_DIR / est.SHIPPED_WEIGHTS["k10"], weights)       # same path, other weights
    before = (tmp_path / "run" / "results.parquet").read_bytes()
    res = run_cli(*given, "--resume")
    assert res.returncode == 2 and "solver 'estpanet' ran with other weights" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert (tmp_path / "run" / "results.parquet").read_bytes() == before
    res = run_cli(*common, "--solvers", "estpanet", "--set", f"estpanet:weights={tmp_path / 'none.pt'}",
                  "--out", str(tmp_path / "missing"))
    assert res.returncode == 2 and "no weights file" in res.stderr and not (tmp_path / "missing").exists()


def test_run_shows_one_progress_bar_per_solver(tmp_path, monkeypatch):
    """Solvers differ in cost by orders of magnitude: each gets its own bar, which ends at its
    own instance count, instead of one bar over every solve."""
    import io
    import sys

    from cfbench.cli import main

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["run", "--problem", "urllc", "--scenario", "tiny", "--solvers", "p-max,random",
                 "--instances", "3", "--out", str(tmp_path / "run")]) == 0
    frames = [part.strip() for part in err.getvalue().replace("\x1b[A", "").split("\r")]
    for solver in ("p-max", "random"):
        assert any(f.startswith(solver) and "3/3" in f for f in frames), (solver, frames[-6:])
    assert not any("/6" in f for f in frames)  # no bar over both solvers' 6 solves
