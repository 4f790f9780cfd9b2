"""Harness internals: decision validation, registry containment, scoring table, conformance kit."""

import types

import numpy as np
import pandas as pd
import pytest

from cfbench import CfbenchError, DecisionField, Instances, Problem, Score, Solver, hookimpl
from cfbench.registry import build_registry
from cfbench.report import comparison_table
from cfbench.runner import run
from cfbench.testing import check_solver


class Toy(Problem):
    """Powers plus a binary association, with a per-instance power bound: the
    shape of the ``dmimo`` decision, to show the API carries it generically."""

    name = "toy"
    scenarios = {"s": None}
    default_scenario = "s"

    def decision_fields(self, scenario):
        return [DecisionField("power_w", (3,), lower=0.0, upper="p_max_w"),
                DecisionField("association", (2, 3), lower=0.0, upper=1.0, binary=True)]

    def sample_one(self, params, rng):
        return {"p_max_w": np.array(rng.uniform(1.0, 2.0))}

    def evaluate(self, instances, decision):
        served = decision["association"].max(axis=1)  # (n, 3)
        short = np.maximum(1.0 - served, 0).sum(axis=1)
        return Score(objective=(decision["power_w"] * served).sum(axis=1), violation={"unserved": short},
                     feasible=short == 0)


def _instances(n=4):
    return Toy().sample("s", n, seed=3)


def test_check_decision_accepts_valid_and_names_each_defect():
    inst = _instances()
    good = {"power_w": np.ones((4, 3)) * 0.5, "association": np.ones((4, 2, 3))}
    assert Toy().check_decision(inst, good) is None
    cases = {
        "missing decision field 'association'": {"power_w": good["power_w"]},
        "shape": {**good, "power_w": np.ones((4, 2))},
        "NaN": {**good, "power_w": np.full((4, 3), np.nan)},
        "binary": {**good, "association": np.full((4, 2, 3), 0.5)},
        "below its lower bound": {**good, "power_w": -np.ones((4, 3))},
        "above its upper bound": {**good, "power_w": np.ones((4, 3)) * 2.5},
        "mapping": np.ones(3),
    }
    for expected, decision in cases.items():
        reason = Toy().check_decision(inst, decision)
        assert reason is not None and expected in reason, (expected, reason)


def test_per_instance_upper_bound_is_per_instance():
    inst = _instances()
    p_max = inst.p_max_w
    power = np.repeat(p_max[:, None], 3, axis=1)  # exactly at each instance's own bound
    ok = {"power_w": power, "association": np.ones((4, 2, 3))}
    assert Toy().check_decision(inst, ok) is None
    power = power.copy()
    power[np.argmin(p_max)] = p_max.max()  # the largest bound, on the instance with the smallest
    assert "above" in Toy().check_decision(inst, {**ok, "power_w": power})


def test_sampling_is_reproducible_and_prefix_stable():
    a, b = Toy().sample("s", 5, seed=9), Toy().sample("s", 3, seed=9)
    np.testing.assert_array_equal(a.p_max_w[:3], b.p_max_w)
    assert not np.allclose(Toy().sample("s", 3, seed=10).p_max_w, b.p_max_w)
    sub = a[[1, 3]]
    assert isinstance(sub, Instances) and list(sub.index) == [1, 3]
    with pytest.raises(CfbenchError, match="'nope'.*valid: s"):
        Toy().sample("nope", 1)


class _ToySolver(Solver):
    kind = "baseline"
    problems = ("toy",)

    def solve(self, instances):
        n = len(instances)
        return {"power_w": np.repeat(instances.p_max_w[:, None], 3, 1), "association": np.ones((n, 2, 3))}


class Full(_ToySolver):
    name = "full"


class Dup(_ToySolver):
    name = "full"


class SameNameOtherProblem(_ToySolver):
    name = "full"
    problems = ("other",)


class BadKind(_ToySolver):
    name = "bad-kind"
    kind = "magic"


def _registry():
    first = types.SimpleNamespace(cfbench_problems=hookimpl(lambda: [Toy]), cfbench_solvers=hookimpl(lambda: [Full]))
    second = types.SimpleNamespace(cfbench_solvers=hookimpl(lambda: [Dup, SameNameOtherProblem, BadKind]))

    def broken():
        raise ValueError("boom")

    third = types.SimpleNamespace(cfbench_solvers=hookimpl(broken))
    return build_registry(extra_plugins=[("first", first), ("second", second), ("third", third)])


def test_registry_contains_duplicates_bad_classes_and_raising_hooks():
    reg = _registry()
    assert reg.solver("toy", "full").cls is Full and reg.solver("toy", "full").plugin == "first"
    # a name is unique per problem: the same name for another problem is a different solver
    assert reg.solver("other", "full").cls is SameNameOtherProblem
    joined = "\n".join(reg.warnings)
    assert "plugin 'second': solver name 'full' already provided by plugin 'first' for toy; ignored" in joined
    assert joined.count("'full'") == 1
    assert "plugin 'second': solver 'bad-kind' has kind 'magic'" in joined
    assert "plugin 'third': cfbench_solvers raised ValueError: boom" in joined
    assert "bad-kind" not in reg.solver_names()
    with pytest.raises(CfbenchError, match="unknown solver 'zzz'; valid for 'toy': all, full"):
        reg.select_solvers("toy", "full,zzz")


def test_runner_scores_with_the_problem_not_the_solver():
    reg = _registry()
    (frame,) = run(reg, "toy", "s", ["full"], n_instances=3, seed=1)
    inst = Toy().sample("s", 3, seed=1)
    np.testing.assert_allclose(frame["objective"], 3 * inst.p_max_w)
    # every valid row keeps its decision, flattened, so results can be re-judged
    np.testing.assert_allclose(np.stack(frame["decision_power_w"]), np.repeat(inst.p_max_w[:, None], 3, 1))
    assert np.stack(frame["decision_association"]).shape == (3, 6)
    assert frame["feasible"].all() and (frame["latency_s"] > 0).all()
    assert "viol_unserved" in frame.columns


def _rows(records):
    base = {"problem": "p", "scenario": "s", "seed": 0, "max_violation": 0.0, "status": "ok"}
    return pd.DataFrame([{**base, **r} for r in records])


class _Hangs(_ToySolver):
    """Answers the runner's untimed warm-up, then never returns."""
    name = "hangs"

    def setup(self, problem, scenario):
        super().setup(problem, scenario)
        self.calls = 0

    def solve(self, instances):
        self.calls += 1
        if self.calls > 1:
            import time
            time.sleep(600)
        return super().solve(instances)


class _KillsItsProcess(_Hangs):
    name = "exits"

    def solve(self, instances):
        self.calls += 1
        if self.calls > 1:
            import os
            os._exit(3)
        return _ToySolver.solve(self, instances)


class _Unsendable(_ToySolver):
    name = "unsendable"

    def solve(self, instances):
        out = super().solve(instances)
        return {**out, "extra": lambda: None}  # a decision that cannot cross a process boundary


@pytest.mark.parametrize("cls, expected", [(_Hangs, "timeout: exceeded 2 s"), (_KillsItsProcess, "worker died"),
                                           (_Unsendable, "error: .*[Pp]ickle")])
def test_conformance_kit_runs_the_solver_as_the_runner_does(cls, expected):
    """A solver that hangs, ends its process or returns what cannot be sent fails the kit
    with the runner's status, before (and instead of) hanging or dying in the caller."""
    import cfbench.testing as kit
    from cfbench.registry import build_registry as real

    kit.build_registry = lambda: _registry()
    try:
        with pytest.raises(AssertionError, match=f"isolated worker .*{expected}"):
            check_solver(cls, n_instances=2, timeout_s=2.0)
    finally:
        kit.build_registry = real


def test_comparison_table_gap_ranking_and_speedup():
    rows = _rows([
        # instance 0: best feasible is 10 (ref); 'fast' infeasible there with a higher value
        {"instance": 0, "solver": "ref", "kind": "reference", "objective": 10.0, "feasible": True, "latency_s": 1.0},
        {"instance": 0, "solver": "sca", "kind": "iterative", "objective": 9.0, "feasible": True, "latency_s": 2.0},
        {"instance": 0, "solver": "fast", "kind": "learned", "objective": 50.0, "feasible": False, "latency_s": 0.01},
        {"instance": 1, "solver": "ref", "kind": "reference", "objective": 4.0, "feasible": True, "latency_s": 1.0},
        {"instance": 1, "solver": "sca", "kind": "iterative", "objective": 4.0, "feasible": True, "latency_s": 2.0},
        {"instance": 1, "solver": "fast", "kind": "learned", "objective": 2.0, "feasible": True, "latency_s": 0.01},
    ])
    t = comparison_table(rows, paper_solver="sca").set_index("solver")
    assert t.loc["ref", "rank"] == 1 and t.loc["sca", "rank"] == 2 and t.loc["fast", "rank"] == 3
    assert t.loc["sca", "mean_gap_pct"] == pytest.approx((10.0 + 0.0) / 2)
    assert t.loc["fast", "mean_gap_pct"] == pytest.approx(50.0)  # only its feasible instance counts
    assert t.loc["fast", "feasible_pct"] == pytest.approx(50.0)
    assert t.loc["fast", "mean_objective"] == pytest.approx(2.0)
    assert t.loc["sca", "speedup"] == pytest.approx(1.0) and t.loc["fast", "speedup"] == pytest.approx(200.0)


def test_conformance_kit_rejects_a_bad_solver():
    class Bad(_ToySolver):
        name = "bad"

        def solve(self, instances):
            return {"power_w": np.ones((len(instances), 3)) * 9.0, "association": np.ones((len(instances), 2, 3))}

    from cfbench.registry import build_registry as real

    import cfbench.testing as kit

    kit.build_registry = lambda: _registry()
    try:
        check_solver(Full)
        with pytest.raises(AssertionError, match="above its upper bound"):
            check_solver(Bad)
    finally:
        kit.build_registry = real


def test_a_finished_cli_run_does_not_stop_later_runs_in_the_same_process(tmp_path):
    """The local executor stops its workers when a run ends; the stop must not outlive the run,
    or every later solve in the process (a library user's, the conformance kit's) is refused."""
    from cfbench.cli import main

    assert main(["run", "--problem", "urllc", "--scenario", "tiny", "--solvers", "p-max", "--instances", "1",
                 "--quiet", "--out", str(tmp_path / "run")]) == 0
    (frame,) = run(_registry(), "toy", "s", ["full"], n_instances=2, seed=1)
    assert (frame["status"] == "ok").all()
