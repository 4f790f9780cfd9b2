"""Fuzzing the CLI contract: whatever the arguments or the bytes in a run folder, cfbench
ends with status 0, or 2 and one line ``cfbench: error: ...``; never a traceback, and a
failed command leaves every file that existed before it as it was.

Argument lists are drawn from the real subcommands, flags and values plus garbage tokens,
and run in this process (``cfbench.cli.main``). So that a valid list stays cheap, ``run``
and ``dataset`` always end with one instance of a cheap solver on one worker (argparse
keeps the last value of a flag), and ``train`` always ends with ``--set batch_size=0``,
which every trainable solver refuses before training.

By default each test draws the same 60 examples on every run (CI stays deterministic);
``CFBENCH_FUZZ_EXAMPLES=1000`` draws that many new ones instead, to search further.
"""

import contextlib
import json
import os
import shutil
import string
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cfbench.cli import main
from conftest import run_cli

EXAMPLES = int(os.environ.get("CFBENCH_FUZZ_EXAMPLES", 0)) or None
FUZZ = settings(max_examples=EXAMPLES or 60, derandomize=EXAMPLES is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

GARBAGE = st.one_of(
    st.sampled_from(["", "-", "--", "-x", "--nope", "nan", "inf", "-1", "0", "1e999", "18446744073709551616",
                     "9223372036854775808", "1000000000", "all,", ",", "a:b=c", "=", ":=", "\x00", "é", " "]),
    st.text(string.printable, max_size=8),
)
PROBLEMS = ["sum-ee", "mmtc", "urllc", "uccf", "dmimo", "nope"]
SCENARIOS = ["tiny", "default", "huge", "tiny,tiny", ""]
PATHS = ["{tmp}/new", "{tmp}/file", "{tmp}/file/sub", "{tmp}/run", "{tmp}/corrupt", "{tmp}", "/proc/nope",
         "{tmp}/run/results.parquet"]
NUMBERS = ["1", "2", "0", "-3", "x", "1.5", "18446744073709551616", "9223372036854775807", "1000000000"]

FLAG_VALUES = {
    "--problem": PROBLEMS, "--scenario": SCENARIOS, "--solver": ["equal", "estpanet", "het-gnn", "elu-cosformer", "nope"],
    "--solvers": ["equal", "nearest-ap", "upc", "p-max", "equal,equal", "nope", ""],
    "--instances": NUMBERS, "--seed": NUMBERS, "--timeout": ["1", "0", "nan", "-1", "inf", "x"],
    "--threads": NUMBERS, "--workers": NUMBERS, "--block": NUMBERS, "--batch": NUMBERS,
    "--memory-limit": ["100", "0", "-1", "nan", "x"], "--executor": ["local", "spark"],
    "--scheduler": ["tcp://127.0.0.1:1"], "--out": PATHS, "--labels": ["upc", "fpc", "equal", "nope"],
    "--samples": NUMBERS, "--shard-size": NUMBERS, "--epochs": NUMBERS, "--init": PATHS,
    "--set": ["equal:x=1", "x=1", "sca:max_outer=3", "samples=abc", "epochs=1", "nope", "upc:a=b", "lr=x"],
    "--format": ["text", "markdown", "csv", "json", "xml"],
}
SWITCHES = ["--append", "--resume", "--overwrite", "--quiet", "--help", "--version"]
COMMANDS = ["run"] * 4 + ["dataset", "train", "report"] * 2 + ["list", "frobnicate"]
#: each command's own flags (drawn most often) and switches
OWN = {"run": ["--problem", "--scenario", "--solvers", "--instances", "--seed", "--timeout", "--threads", "--out",
               "--set", "--executor", "--workers", "--scheduler", "--block", "--batch", "--memory-limit",
               "--append", "--resume", "--overwrite", "--quiet"],
       "dataset": ["--problem", "--scenario", "--labels", "--samples", "--seed", "--shard-size", "--set", "--threads",
                   "--executor", "--workers", "--out", "--quiet"],
       "train": ["--solver", "--problem", "--scenario", "--seed", "--epochs", "--samples", "--init", "--set",
                 "--threads", "--out"],
       "report": ["--format"], "list": ["--solver", "--problem"]}

_kinds = [  # a flag with a value (most often), a switch, a lone path, a garbage token
    st.sampled_from(sorted(FLAG_VALUES)).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(FLAG_VALUES[f]))),
    st.sampled_from(SWITCHES).map(lambda s: (s,)),
    st.sampled_from(PATHS).map(lambda p: (p,)),
    GARBAGE.map(lambda g: (g,)),
]
token = st.sampled_from([0] * 12 + [1, 1, 2, 3]).flatmap(lambda k: _kinds[k])


def own_token(command: str):
    """A flag of ``command`` (with a value if it takes one)."""
    return st.sampled_from(OWN.get(command, ["--help"])).flatmap(
        lambda f: st.tuples(st.just(f), st.sampled_from(FLAG_VALUES[f])) if f in FLAG_VALUES else st.just((f,)))
#: appended last so that a valid list does little work (module docstring)
CHEAP = {"run": ["--instances", "1", "--workers", "1", "--quiet", "--timeout", "60"],
         "dataset": ["--samples", "1", "--shard-size", "1", "--workers", "1", "--quiet"],
         "train": ["--set", "batch_size=0"]}
#: drawn first, mostly valid, so that lists get past argparse to the commands' own checks
BASE = {"run": [("--problem", ["sum-ee", "mmtc", "urllc", "nope"]), ("--scenario", ["tiny", "huge"]),
                ("--solvers", ["equal", "upc", "p-max", "nope"]), ("--out", PATHS)],
        "dataset": [("--problem", ["mmtc", "sum-ee", "nope"]), ("--scenario", ["tiny", "tiny,huge"]),
                    ("--labels", ["upc", "fpc", "equal", "nope"]), ("--out", PATHS)],
        "train": [("--solver", ["estpanet", "elu-cosformer", "het-gnn", "equal"]),
                  ("--problem", ["urllc", "uccf", "mmtc"]), ("--scenario", ["tiny", "huge"]), ("--out", PATHS)],
        "report": [("", PATHS)]}


@st.composite
def argv_strategy(draw):
    command = draw(st.sampled_from(COMMANDS))
    argv = [command]
    for flag, values in BASE.get(command, []):
        if draw(st.integers(0, 9)):  # each left out now and then
            argv += [flag, draw(st.sampled_from(values))] if flag else [draw(st.sampled_from(values))]
    for group in draw(st.lists(st.one_of(own_token(command), own_token(command), own_token(command), token),
                               max_size=6)):
        argv += group
    return argv + CHEAP.get(command, [])


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_outcome(argv: list[str], capsys) -> tuple[int, str]:
    """Run ``cfbench argv``; its status and stderr, checked against the CLI contract."""
    try:
        status = main(argv)
    except SystemExit as exc:  # --help and --version
        status = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out, (argv, captured.err)
    assert status in (0, 2), (argv, status, captured.err)
    if status == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cfbench: error: "), (argv, captured.err)
    return status, captured.err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal,nearest-ap",
                  "--instances", "2", "--workers", "1", "--quiet", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


@contextlib.contextmanager
def workspace(run_dir: Path):
    """A fresh folder (also the working directory) holding a file, a run and a corrupted run."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "file").write_text("a file")
        shutil.copytree(run_dir, tmp / "run")
        shutil.copytree(run_dir, tmp / "corrupt")
        (tmp / "corrupt" / "manifest.json").write_text("[")
        os.chdir(tmp)
        try:
            yield tmp
        finally:
            os.chdir(old)


@settings(FUZZ, deadline=timedelta(seconds=30))
@given(argv=argv_strategy())
def test_random_argument_lists_keep_the_contract(run_dir, capsys, argv):
    with workspace(run_dir) as tmp:
        argv = [a.replace("{tmp}", str(tmp)) for a in argv]
        before = snapshot(tmp)
        status, _ = check_outcome(argv, capsys)
        event(f"{argv[0]} exit {status}")
        if status != 0:
            assert snapshot(tmp) == before, argv


# -- random bytes in a run folder -----------------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3),
                           max_leaves=8)
MANIFEST_KEYS = ["problem", "scenario", "seed", "n_instances", "threads", "solvers", "command", "complete",
                 "objective_unit", "paper_iterative_solver", "table_metrics"]


@st.composite
def damage(draw, real: bytes, json_file: bool):
    """Bytes of a damaged ``real`` file: truncated, bytes flipped, random, or (JSON) foreign JSON."""
    kind = draw(st.sampled_from(["truncate", "flip", "random"] + (["json", "key"] if json_file else [])))
    if kind == "truncate":
        return real[:draw(st.integers(0, max(0, len(real) - 1)))]
    if kind == "flip":
        data = bytearray(real)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    manifest = json.loads(real)
    manifest[draw(st.sampled_from(MANIFEST_KEYS))] = draw(json_values)
    return json.dumps(manifest).encode()


@settings(FUZZ, deadline=timedelta(seconds=10))
@given(data=st.data(), name=st.sampled_from(["results.parquet", "manifest.json"]))
def test_report_on_random_bytes_keeps_the_contract(run_dir, capsys, data, name):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        shutil.copytree(run_dir, folder)
        real = (run_dir / name).read_bytes()
        (folder / name).write_bytes(data.draw(damage(real, name.endswith(".json"))))
        before = snapshot(folder)
        check_outcome(["report", str(folder)], capsys)
        assert snapshot(folder) == before
