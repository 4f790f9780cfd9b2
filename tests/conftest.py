import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_PLUGIN = Path(__file__).resolve().parent / "fixtures" / "example_plugin"


def pytest_collection_modifyitems(config, items):
    """Paper-scale runs and training are marked ``slow`` and skipped in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        skip = pytest.mark.skip(reason="slow: skipped when CI=true")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory) -> Path:
    """The example third-party plugin, pip-installed into a private folder (not the
    test environment), so only subprocesses given this folder on PYTHONPATH see it."""
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(FIXTURE_PLUGIN)],
        check=True, capture_output=True, text=True,
    )
    return target


def run_cli(*args, plugin_path: Path | None = None, cwd: Path | None = None, timeout: float = 300):
    env = dict(os.environ)
    if plugin_path is not None:
        env["PYTHONPATH"] = str(plugin_path) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "cfbench.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def assert_compile_fails_in_one_line(monkeypatch, solver, problem, scenario: str) -> None:
    """With ``torch.compile`` and inductor failing as they do without a C++ compiler, ``solver`` (a learned
    solver with option ``compile``) stops in ``setup`` with one line naming itself and
    ``compile=false``, not inductor's traceback."""
    import torch
    import torch._inductor

    from cfbench.api import CfbenchError

    def broken(fn, **_):
        def call(*args):
            raise RuntimeError("Compiler: cc is not found.\nmore lines")
        return call

    def broken_inductor(graph, example_inputs, **_):
        raise RuntimeError("Compiler: cc is not found.\nmore lines")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(torch._inductor, "compile", broken_inductor)    # compile_graph calls inductor directly
    with pytest.raises(CfbenchError, match=rf"^{solver.name}: compile=true failed \(RuntimeError: Compiler: cc is "
                                           rf"not found.\); .*run with compile=false$"):
        solver(compile=True).setup(problem, scenario)
