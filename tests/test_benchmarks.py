"""The asv suite stays runnable: every benchmark runs once on its first parameter set."""

import importlib
import inspect
import itertools
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
SUITES = ["benchmarks.bench_sum_ee", "benchmarks.bench_urllc", "benchmarks.bench_mmtc", "benchmarks.bench_dmimo",
          "benchmarks.bench_uccf", "benchmarks.bench_quality"]
#: results of ``setup_cache`` per class: asv computes it once per class and run, so does this test
_CACHES: dict[type, object] = {}


def _benchmarks():
    for module_name in SUITES:
        module = importlib.import_module(module_name)
        for class_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or class_name.startswith("_"):   # asv skips "_" names too
                continue
            for name in dir(cls):
                if name.startswith(("time_", "peakmem_", "track_")):
                    yield pytest.param(cls, name, id=f"{module_name.split('.')[-1]}:{cls.__name__}.{name}")


@pytest.mark.parametrize("cls, method", list(_benchmarks()))
def test_benchmark_runs(cls, method, monkeypatch):
    monkeypatch.setenv("CFBENCH_QUALITY_INSTANCES", "1")
    params = getattr(cls, "params", ())
    args = next(itertools.product(*params)) if params else ()
    bench = cls()
    if hasattr(bench, "setup_cache"):
        if cls not in _CACHES:
            _CACHES[cls] = bench.setup_cache()
        args = (_CACHES[cls], *args)
    if hasattr(bench, "setup"):
        bench.setup(*args)
    value = getattr(bench, method)(*args)
    if method.startswith("track_"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool)


def test_quality_tracks_tell_solvers_apart(monkeypatch):
    """On sum-ee's quality batch the best-known reference has no gap and is always feasible,
    and random power is far below it: the tracks measure quality, not a constant."""
    monkeypatch.setenv("CFBENCH_QUALITY_INSTANCES", "3")
    from benchmarks.bench_quality import quality_table

    table = quality_table("sum-ee")
    assert table["multistart-pg"]["feasible_rate"] == 1.0
    assert table["multistart-pg"]["gap_pct"] < 1e-6
    assert table["random"]["gap_pct"] > 50.0
    assert table["random"]["objective"] < table["sca"]["objective"] <= table["multistart-pg"]["objective"] * (1 + 1e-9)
