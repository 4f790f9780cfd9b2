"""The asv suite stays runnable: every benchmark runs once on its first parameter set."""

import importlib
import inspect
import itertools
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
SUITES = ["benchmarks.bench_sum_ee", "benchmarks.bench_urllc", "benchmarks.bench_mmtc", "benchmarks.bench_dmimo",
          "benchmarks.bench_uccf"]


def _benchmarks():
    for module_name in SUITES:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for name in dir(cls):
                if name.startswith(("time_", "peakmem_", "track_")):
                    yield pytest.param(cls, name, id=f"{module_name.split('.')[-1]}:{cls.__name__}.{name}")


@pytest.mark.parametrize("cls, method", list(_benchmarks()))
def test_benchmark_runs(cls, method):
    params = getattr(cls, "params", ())
    args = next(itertools.product(*params)) if params else ()
    bench = cls()
    if hasattr(bench, "setup"):
        bench.setup(*args)
    getattr(bench, method)(*args)
