"""``urllc`` reliability: the exact test of :mod:`cfbench.problems.urllc_reliability`, checked
against an independent convex (geometric-programming) solve, and what ``sca`` and the
evaluator build on it."""

from __future__ import annotations

import dataclasses
import itertools

import cvxpy as cp
import numpy as np
import pytest

from cfbench.plugins import urllc_sca as sca
from cfbench.problems import urllc as u
from cfbench.problems import urllc_reliability as rel

PROBLEM = u.Urllc()
#: stress-k40 instances (seed 0) on which the former conic phase 0 of sca left 3-6 terminals
#: unreliable although every terminal can be made reliable
STRESS_K40_CASES = (120, 139, 205)


def gp_max_min_log_sinr(coefficients, served, p_min_w, p_max_w) -> float:
    """``max_x min_{k in S} ln delta_k(e^x)`` over the box, the others at ``p_min``: a geometric
    program in log powers (``ln 1/delta_k`` is a log-sum-exp of affine functions), solved by
    cvxpy; independent of the fixed-point test."""
    K = coefficients.mean.shape[-1]
    terms = sca.PosynomialTerms(K)
    x_lo, x_hi = np.log(p_min_w), np.log(p_max_w)
    b = terms.log_coefficients(coefficients, x_lo, x_hi)
    x, s = cp.Variable(K), cp.Variable()
    z = cp.log_sum_exp(cp.reshape(terms.exponents @ x + b, (K, terms.T), order="C"), axis=1)
    idx = np.flatnonzero(served)
    # the box only on the served powers: with x >= x_lo and x == x_lo on the same entry the set has
    # no interior, and CLARABEL stopped "optimal_inaccurate" on one subset of the brute force
    constraints = [z[idx] <= s, x[idx] >= x_lo, x[idx] <= x_hi]
    if (~served).any():
        constraints.append(x[np.flatnonzero(~served)] == x_lo)
    problem = cp.Problem(cp.Minimize(s), constraints)
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL, problem.status   # an inaccurate oracle would judge nothing
    return -float(s.value)


def _coefficients(scenario, n, seed):
    inst = PROBLEM.sample(scenario, n, seed)
    return inst, u.SinrCoefficients.from_instances(inst)


def test_max_min_sinr_bracket_matches_the_geometric_program_on_the_issue_instances():
    """stress-k40, seed 0, instances 120, 139, 205: every terminal can reach a SINR of
    0.66-0.96, far above the threshold 0.037; the bisection's certified bracket contains the
    GP optimum."""
    inst, c = _coefficients("stress-k40", 256, 0)
    p = inst.params
    sub = rel.take_instance(c, list(STRESS_K40_CASES))
    low, high = rel.max_min_sinr(sub, p.p_min_w, p.p_max_w, rel_tol=1e-4)
    assert np.all(high <= low * (1 + 1e-4) * (1 + 1e-9))
    for j, i in enumerate(STRESS_K40_CASES):
        gp = np.exp(gp_max_min_log_sinr(rel.take_instance(c, i), np.ones(40, bool), p.p_min_w, p.p_max_w))
        assert low[j] * (1 - 1e-6) <= gp <= high[j] * (1 + 1e-6)
        assert 0.6 < low[j] < 1.0 and low[j] > 10 * p.sinr_threshold


@pytest.mark.parametrize("factor", [1.0, 8.0, 25.0, 60.0])
def test_reliability_test_agrees_with_the_geometric_program_both_ways(factor):
    """At the threshold and at raised targets (some reachable, some not), the certified verdict
    matches the GP optimum wherever the GP is not within 1e-4 of the target; a reachable verdict
    comes with a vector that the evaluator's closed form confirms."""
    inst, c = _coefficients("stress-k20", 6, 11)
    p = inst.params
    target = p.sinr_threshold * factor
    test = rel.reliability_test(c, target, p.p_min_w, p.p_max_w)
    verdicts = []
    for i in range(6):
        gp = gp_max_min_log_sinr(rel.take_instance(c, i), np.ones(20, bool), p.p_min_w, p.p_max_w)
        if abs(gp - np.log(target)) < 1e-4:
            continue
        expected = rel.REACHABLE if gp > np.log(target) else rel.UNREACHABLE
        assert test.status[i] == expected
        verdicts.append(expected)
        if expected == rel.REACHABLE:
            power = test.power_w[i]
            assert np.all((power >= p.p_min_w) & (power <= p.p_max_w))
            assert np.min(rel.take_instance(c, i).sinr(power)) >= target
    if factor == 1.0:
        assert set(verdicts) == {rel.REACHABLE}
    if factor == 60.0:
        assert rel.UNREACHABLE in verdicts


def _small_scenario():
    return dataclasses.replace(PROBLEM.scenario_params("stress-k20"), n_terminals=6, n_aps=3, n_antennas=2,
                               bounds=PROBLEM.scenario_params("stress-k20").bounds)


def test_largest_reliable_set_is_exact_against_brute_force():
    """K = 6 terminals, a raised target: every subset is judged by the independent GP; the
    search returns a reliable set of the largest size, and its count is exact."""
    params = _small_scenario()
    rng = np.random.default_rng(5)
    checked_unreachable = 0
    for _ in range(3):
        draw = u.draw_large_scale(params, rng)
        c = u.SinrCoefficients.from_lsf(draw["beta"], draw["rician_factor"], params.n_antennas, params.n_pilot)
        full = gp_max_min_log_sinr(c, np.ones(6, bool), params.p_min_w, params.p_max_w)
        target = float(np.exp(full)) * 1.6  # not every terminal can reach it
        best = 0
        for size in range(6, 0, -1):
            for subset in itertools.combinations(range(6), size):
                served = np.zeros(6, bool)
                served[list(subset)] = True
                if gp_max_min_log_sinr(c, served, params.p_min_w, params.p_max_w) > np.log(target) + 1e-6:
                    best = size
                    break
            if best:
                break
        found = rel.largest_reliable_set(c, target, params.p_min_w, params.p_max_w)
        assert found.exact and found.n_unreachable_low == 6 - best
        assert found.served.sum() == best
        assert np.all(c.sinr(found.power_w)[found.served] >= target)
        checked_unreachable += best < 6
    assert checked_unreachable >= 1


def test_evaluator_counts_exactly_the_terminals_no_decision_can_serve():
    """A terminal heard by no AP cannot be reliable; the rest of the instance can: exactly 1."""
    inst = PROBLEM.sample("stress-k20", 2, seed=9)
    beta = inst.beta.copy()
    beta[:, :, 5] *= 1e-9
    lost = dataclasses.replace(inst, arrays={**inst.arrays, "beta": beta})
    np.testing.assert_array_equal(PROBLEM.unreachable_terminals(lost), [1.0, 1.0])
    np.testing.assert_array_equal(PROBLEM.unreachable_terminals(inst), [0.0, 0.0])


@pytest.fixture(scope="module")
def stress_k40_cases():
    inst = PROBLEM.sample("stress-k40", 256, seed=0)
    return inst[list(STRESS_K40_CASES)]


def test_sca_is_feasible_where_every_terminal_can_be_reliable(stress_k40_cases):
    solver = sca.SCA()
    solver.setup(PROBLEM, "stress-k40")
    out = solver.solve(stress_k40_cases)
    score = PROBLEM.evaluate(stress_k40_cases, out.decision)
    assert np.all(score.feasible), score.metrics["n_violating_eps"]
    assert np.all(score.metrics["n_unreachable_eps"] == 0)


def test_sca_accepts_a_fallback_answer_only_after_checking_it(monkeypatch):
    """Clarabel made to fail: SCS answers, every answer is checked against the surrogate's
    constraints, and the output stays feasible and no worse than the start. With the check made
    impossible to pass, no answer is accepted and sca returns its (reliable) start."""
    answered_by = []

    def recording(problem, variable, violation, chain=None):
        answer = original(problem, variable, violation, sca.FALLBACK_CHAIN if chain is None else chain)
        answered_by.append(None if answer is None else answer[1])
        return answer

    original = sca._solve
    monkeypatch.setattr(sca, "FALLBACK_CHAIN", (("CLARABEL", {"max_iter": 0}),) + sca.FALLBACK_CHAIN[1:])
    monkeypatch.setattr(sca, "RETRY_SOLVER", ("CLARABEL", {**sca.RETRY_SOLVER[1], "max_iter": 0}))
    monkeypatch.setattr(sca, "_solve", recording)
    solver = sca.SCA(max_iter=3)
    solver.setup(PROBLEM, "stress-k20")
    one = PROBLEM.sample("stress-k20", 16, seed=0)[[14]]  # best-uniform leaves 2 terminals unreliable
    powers, trace, info = solver.solve_one(one, 0)
    assert "SCS" in answered_by and "CLARABEL" not in answered_by
    assert np.all(PROBLEM.evaluate(one, {"power_w": powers[None]}).feasible)
    assert info["n_served"] == 20 and info["n_served_start"] == 18
    monkeypatch.setattr(sca, "SOLVER_ACCURACY", {"CLARABEL": -1.0, "SCS": -1.0})
    powers, trace, _ = solver.solve_one(one, 0)
    assert trace == []
    assert np.all(PROBLEM.evaluate(one, {"power_w": powers[None]}).feasible)


def test_solve_rejects_an_answer_that_misses_its_constraints():
    x = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1])
    assert sca._solve(problem, x, lambda v: 0.0) is not None
    assert sca._solve(problem, x, lambda v: 1.0) is None  # every solver's answer "violates" by 1
