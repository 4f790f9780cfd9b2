"""Solver options are declared: every option a solver reads, typed, listed by
``cfbench list --solver``, checked up front by ``--set`` and recorded in the manifest."""

import inspect
import json
import os
import re
import subprocess
import sys

import pytest

from cfbench import Option, OptionError, Solver
from cfbench.registry import build_registry
from conftest import ROOT, run_cli

REGISTRY = build_registry()
SOLVERS = sorted(REGISTRY.solvers, key=lambda p: (p.cls.problems, p.cls.name))
#: ``self.options["key"]``, ``self.options.get("key"``, ``options.get("key"`` in a solver's source
READ = re.compile(r"""options(?:\[|\.get\()\s*["']([A-Za-z_]\w*)["']""")


def _source_reads(cls) -> set[str]:
    keys = set()
    for klass in cls.__mro__:
        if klass in (Solver, object) or not issubclass(klass, Solver):
            continue
        keys |= set(READ.findall(inspect.getsource(klass)))
    return keys


@pytest.mark.parametrize("provided", SOLVERS, ids=lambda p: f"{p.cls.problems[0]}:{p.cls.name}")
def test_every_option_a_solver_reads_is_declared(provided):
    cls = provided.cls
    declared = {o.name for o in cls.options_spec}
    assert _source_reads(cls) <= declared, f"{cls.name} reads undeclared options {_source_reads(cls) - declared}"
    assert len(declared) == len(cls.options_spec), f"{cls.name} declares an option twice"
    solver = cls()                                     # the defaults are valid values
    assert solver.options == {o.name: o.default for o in cls.options_spec}
    for option in cls.options_spec:
        assert option.help and "\n" not in option.help
        if option.default is not None:
            assert option.parse(str(option.default).lower() if option.type is bool else str(option.default),
                                "test") == option.default


@pytest.mark.parametrize("provided", [p for p in SOLVERS if hasattr(p.cls, "train")], ids=lambda p: p.cls.name)
def test_every_trainable_solver_declares_its_training_options(provided):
    cls = provided.cls
    assert cls.training_options_spec
    module = sys.modules[cls.__module__]
    assert {o.name for o in cls.training_options_spec} == set(module.DEFAULTS)
    assert cls.parse_training_options({}) == module.DEFAULTS


def test_option_values_are_typed_from_strings_and_refused_with_one_line():
    opt = Option("n", int, 3, "h")
    assert opt.parse("7", "s") == 7 and opt.parse(7.0, "s") == 7
    for bad in ("abc", "1.5", True, 2.5):
        with pytest.raises(OptionError, match=r"option 'n' of s must be an int"):
            opt.parse(bad, "s")
    flag = Option("on", bool, True, "h")
    assert [flag.parse(v, "s") for v in ("true", "False", "1", "0", "yes", "no", 0, True)] == \
        [True, False, True, False, True, False, False, True]
    with pytest.raises(OptionError, match="'maybe'"):
        flag.parse("maybe", "s")
    assert Option("x", float, 1.0, "h").parse("1e-3", "s") == 1e-3
    pick = Option("mode", str, "a", "h", choices=("a", "b"))
    with pytest.raises(OptionError, match="must be one of a, b, got 'c'"):
        pick.parse("c", "s")
    assert Option("w", str, None, "h").parse(None, "s") is None


def _one_line_error(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cfbench: error: ") and "Traceback" not in res.stderr, res.stderr
    return lines[0]


@pytest.mark.parametrize("args, must_mention", [
    (["run", "--problem", "urllc", "--solvers", "p-max", "--set", "p-max:bogus=1"], ["'bogus'", "valid: (none)"]),
    (["run", "--problem", "sum-ee", "--solvers", "sca", "--set", "sca:max_iter=abc"], ["'abc'", "int", "max_iter"]),
    (["run", "--problem", "sum-ee", "--solvers", "sca", "--set", "sca:maxiter=3"], ["'maxiter'", "max_iter, tol"]),
    (["run", "--problem", "mmtc", "--solvers", "opc", "--set", "opc:extrapolate=maybe"], ["'maybe'", "bool"]),
    (["run", "--problem", "mmtc", "--solvers", "g-fpc", "--set", "g-fpc:kappa=3"], ["g-fpc", "kappa", "[-1, 1]"]),
    (["run", "--problem", "mmtc", "--solvers", "opc", "--set", "opc:starts=upc,nope"], ["'nope'", "least-power"]),
    (["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "opc", "--samples", "2", "--out", "x",
      "--set", "max_outer=many"], ["'many'", "int"]),
    (["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny", "--set", "lr=abc"],
     ["'abc'", "float", "lr"]),
    (["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny", "--set", "bogus=1"],
     ["'bogus'", "epochs"]),
    (["list", "--solver", "sca"], ["'sca'", "sum-ee", "urllc", "--problem"]),
    (["list", "--solver", "nope"], ["'nope'", "p-max"]),
])
def test_bad_options_are_one_line_errors_before_any_work(tmp_path, args, must_mention):
    line = _one_line_error(run_cli(*args, cwd=tmp_path))
    for text in must_mention:
        assert text in line, line
    assert not any(tmp_path.iterdir()), "nothing may be written before the options are checked"


def test_list_solver_prints_the_options_with_type_default_and_help():
    res = run_cli("list", "--solver", "sca", "--problem", "urllc")
    assert res.returncode == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if l.startswith("max_iter"))
    assert line.split()[:3] == ["max_iter", "int", "20"] and "iterations" in line
    res = run_cli("list", "--solver", "het-gnn")
    assert res.returncode == 0, res.stderr
    assert "weights" in res.stdout and "Training options" in res.stdout and "lr_final" in res.stdout
    assert "No options." in run_cli("list", "--solver", "p-max").stdout


def test_the_manifest_records_the_options_used(tmp_path):
    res = run_cli("run", "--problem", "mmtc", "--scenario", "tiny", "--solvers", "fpc,opc-fast", "--instances", "1",
                  "--quiet", "--set", "opc-fast:rel_gap=1e-3", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    solvers = json.loads((tmp_path / "run" / "manifest.json").read_text())["solvers"]
    assert solvers["opc-fast"]["options"] == {"rel_gap": 1e-3}
    assert solvers["opc-fast"]["options_used"] == {"rel_gap": 1e-3, "max_iterations": 20000}
    assert solvers["fpc"]["options_used"] == {"upsilon": 0.5} and "options" not in solvers["fpc"]
    assert run_cli("report", str(tmp_path / "run")).returncode == 0


def test_list_imports_neither_torch_nor_cvxpy():
    code = ("import sys; from cfbench.cli import main; main(['list']); "
            "heavy = [m for m in ('torch', 'cvxpy', 'pandas', 'scipy') if m in sys.modules]; "
            "assert not heavy, heavy")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr


def test_a_closed_pipe_ends_quietly():
    """``cfbench list | head -1``: the reader is gone before the writer writes (made certain
    here by closing the read end first): no traceback, no 'Exception ignored'."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run([sys.executable, "-m", "cfbench.cli", "list"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(write_end)
    assert res.stderr == "", res.stderr
    assert res.returncode == 141
