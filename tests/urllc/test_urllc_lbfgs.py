"""``urllc`` ``lbfgs`` and ``multistart-lbfgs``: the closed-form gradient, exact feasibility where
a reliable vector exists, monotonicity, agreement with ``sca`` and the reference's order."""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.plugins import urllc_lbfgs as lb
from cfbench.plugins import urllc_sca as sca
from cfbench.plugins.urllc_baselines import CandidateScorer
from cfbench.problems import urllc as u

PROBLEM = u.Urllc()
#: stress-k40 instances (seed 0) that needed the exact reliability phase (tests/urllc/test_urllc_reliability.py)
STRESS_K40_CASES = (120, 139, 205)


def _solve(cls, instances, **options):
    solver = cls(**options)
    solver.setup(PROBLEM, instances.scenario)
    return solver.solve(instances)


@pytest.fixture(scope="module")
def stress():
    """stress-k20, seed 0, instances 1 and 2 (an unreliable terminal at the best common level on 2)."""
    return PROBLEM.sample("stress-k20", 3, seed=0)[[1, 2]]


@pytest.fixture(scope="module")
def k10():
    return PROBLEM.sample("k10", 3, seed=0)


@pytest.mark.parametrize("scenario", ["stress-k20", "k10"])
def test_gradient_matches_finite_differences(scenario):
    inst = PROBLEM.sample(scenario, 2, seed=3)
    scorer = CandidateScorer(inst, 1)
    model = lb.OmegaGradient(scorer)
    K = inst.params.n_terminals
    rng = np.random.default_rng(0)
    x = rng.uniform(np.log(1e-3), 0.0, K)
    value, grad, z, z_vjp = model.omega(x)
    assert value == pytest.approx(scorer.score(np.exp(x)[None])["omega"][0], rel=1e-12)
    np.testing.assert_allclose(np.exp(z), scorer.coefficients.inverse_sinr(np.exp(x)[None])[0], rtol=1e-12)
    h = 1e-6
    y = rng.normal(size=K)
    numeric = np.empty(K)
    numeric_z = np.empty(K)
    for j in range(K):
        e = np.zeros(K)
        e[j] = h
        plus, minus = model.omega(x + e), model.omega(x - e)
        numeric[j] = (plus[0] - minus[0]) / (2 * h)
        numeric_z[j] = (y @ plus[2] - y @ minus[2]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8 * np.abs(grad).max())
    np.testing.assert_allclose(z_vjp(y), numeric_z, rtol=1e-5, atol=1e-8 * np.abs(numeric_z).max())


def test_trace_is_monotone_and_the_answer_is_no_worse_than_the_start(stress, k10):
    for inst in (stress, k10):
        solver = lb.LBFGS()
        solver.setup(PROBLEM, inst.scenario)
        for i in range(len(inst)):
            power, trace, iterations, info = solver.solve_one(inst, i)
            scorer = CandidateScorer(inst, i)
            x0, _, _ = lb.lbfgs_start(scorer)
            start = scorer.score(np.exp(x0)[None])["omega"][0]
            assert trace[0] == start and np.all(np.diff(trace) >= 0.0)
            final = PROBLEM.evaluate(inst[[i]], {"power_w": power[None]}).objective[0]
            assert final == pytest.approx(trace[-1], rel=1e-12) and final >= start
            assert iterations > 0


def test_within_a_tenth_of_a_percent_of_sca_and_feasible_where_it_is(stress, k10):
    for inst in (stress, k10):
        ours = PROBLEM.evaluate(inst, _solve(lb.LBFGS, inst).decision)
        theirs = PROBLEM.evaluate(inst, _solve(sca.SCA, inst).decision)
        assert np.all(ours.feasible >= theirs.feasible)
        np.testing.assert_array_less(theirs.objective * (1 - 1e-3), ours.objective)


def test_reference_is_never_below_lbfgs(stress, k10):
    for inst in (stress, k10):
        ours = PROBLEM.evaluate(inst, _solve(lb.LBFGS, inst).decision)
        ref = PROBLEM.evaluate(inst, _solve(lb.MultiStartLBFGS, inst, n_random=2).decision)
        assert np.all(ref.feasible >= ours.feasible)
        assert np.all(ref.objective >= ours.objective - 1e-12)


def test_no_conic_solver_runs(stress, monkeypatch):
    """Instance 2 starts unreliable (the exact reliability phase runs): still no cvxpy solve."""
    import cvxpy as cp

    def refuse(*args, **kwargs):
        raise AssertionError("lbfgs called a conic solver")

    monkeypatch.setattr(cp.Problem, "solve", refuse)
    scorer = CandidateScorer(stress, 1)
    _, served, info = lb.lbfgs_start(scorer)
    assert info["n_served_start"] < served.sum()
    assert np.all(PROBLEM.evaluate(stress, _solve(lb.LBFGS, stress).decision).feasible)


def test_feasible_on_the_stress_instances_that_need_the_reliability_phase():
    """stress-k40 (seed 0) 120, 139, 205 and stress-k60 (seed 0) 20: the best common level
    leaves terminals unreliable, every terminal can be reliable, and lbfgs makes them so."""
    for scenario, n, cases in (("stress-k40", 206, STRESS_K40_CASES), ("stress-k60", 21, (20,))):
        inst = PROBLEM.sample(scenario, n, seed=0)[list(cases)]
        score = PROBLEM.evaluate(inst, _solve(lb.LBFGS, inst).decision)
        assert np.all(score.metrics["n_unreachable_eps"] == 0)
        assert np.all(score.feasible), score.metrics["n_violating_eps"]


def test_answers_do_not_spend_the_evaluators_eps_tolerance():
    """tiny, seed 0: on three of the four instances a reliability cap binds at the optimum; the
    answers meet eps_QoS itself (violation exactly 0), not just within the evaluator's 1e-6 decades."""
    inst = PROBLEM.sample("tiny", 4, seed=0)
    for cls, options in ((lb.LBFGS, {}), (lb.MultiStartLBFGS, {"n_random": 2})):
        score = PROBLEM.evaluate(inst, _solve(cls, inst, **options).decision)
        assert np.all(score.feasible)
        np.testing.assert_array_equal(score.violation["error_probability_decades"], 0.0)
