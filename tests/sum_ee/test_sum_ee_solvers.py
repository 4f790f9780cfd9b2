"""Solvers for ``sum-ee``: feasibility, reproducibility, monotone SCA, its
stopping rule and its verified solver fallbacks, the reference against SCA and
against random search, permutation equivariance."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest

from cfbench.plugins import sum_ee_baselines, sum_ee_reference, sum_ee_sca
from cfbench.plugins.sum_ee_baselines import BestUniformPower, EqualPower, NearestAP, RandomPower, fit_budget
from cfbench.plugins.sum_ee_reference import MultiStartProjectedGradient, SumEEAscent, project_capped_simplex
from cfbench.plugins.sum_ee_sca import DinkelbachSubproblem, SCADinkelbach
from cfbench.problems.sum_ee import SumEE
from cfbench.registry import build_registry

ALL_SOLVERS = [EqualPower, RandomPower, BestUniformPower, NearestAP, SCADinkelbach, MultiStartProjectedGradient]
BASELINES = [EqualPower, RandomPower, BestUniformPower, NearestAP]


@pytest.fixture(scope="module")
def problem():
    return SumEE()


def make(cls, problem, scenario, **options):
    solver = cls(**options)
    solver.setup(problem, scenario)
    return solver


def power_of(result):
    decision = result.decision if hasattr(result, "decision") else result
    return np.asarray(decision["power_w"])


_cache: dict = {}


def solve_cached(cls, problem, scenario, n):
    """Objective and decision of ``cls`` on the first ``n`` instances (seed 0), computed once."""
    key = (cls.name, scenario, n)
    if key not in _cache:
        instances = problem.sample(scenario, n, seed=0)
        result = make(cls, problem, scenario).solve(instances)
        _cache[key] = (result, problem.evaluate(instances, {"power_w": power_of(result)}).objective)
    return _cache[key]


# -- contract -------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ALL_SOLVERS, ids=lambda c: c.name)
def test_solver_returns_feasible_decision(problem, cls):
    instances = problem.sample("tiny", 3, seed=5)
    result = make(cls, problem, "tiny").solve(instances)
    decision = result.decision if hasattr(result, "decision") else result
    assert problem.check_decision(instances, decision) is None
    assert power_of(result).shape == (3, 3, 2)
    score = problem.evaluate(instances, decision)
    assert score.feasible.all()
    assert np.all(score.objective > 0)


@pytest.mark.parametrize("cls", BASELINES, ids=lambda c: c.name)
def test_baselines_feasible_on_paper_scenario(problem, cls):
    instances = problem.sample("15ap-15ue", 2, seed=1)
    decision = make(cls, problem, "15ap-15ue").solve(instances)
    assert problem.check_decision(instances, decision) is None
    assert problem.evaluate(instances, decision).feasible.all()


def test_registered_through_entry_points():
    names = set(build_registry().solvers_for("sum-ee"))
    assert {"equal", "random", "best-uniform", "nearest-ap", "sca", "multistart-pg"} <= names
    hooked = [c.name for m in (sum_ee_baselines, sum_ee_sca, sum_ee_reference) for c in m.cfbench_solvers()]
    assert hooked == ["equal", "random", "best-uniform", "nearest-ap", "sca", "multistart-pg"]
    assert MultiStartProjectedGradient.kind == "reference" and SCADinkelbach.kind == "iterative"


def test_equal_power_is_budget_over_ues(problem):
    instances = problem.sample("5ap-10ue", 2, seed=0)
    power_w = power_of(make(EqualPower, problem, "5ap-10ue").solve(instances))
    np.testing.assert_allclose(power_w, 0.1)


def test_nearest_ap_serves_each_ue_from_its_strongest_ap(problem):
    instances = problem.sample("10ap-10ue", 3, seed=0)
    power_w = power_of(make(NearestAP, problem, "10ap-10ue").solve(instances))
    served = power_w > 0
    assert np.all(served.sum(axis=2) == 1)
    np.testing.assert_array_equal(np.argmax(power_w, axis=2), np.argmax(instances.beta, axis=1))
    levels = power_w[served].reshape(3, -1)
    np.testing.assert_allclose(levels, np.broadcast_to(levels[:, :1], levels.shape))  # one common level


# -- random ---------------------------------------------------------------------------

def test_random_is_reproducible_per_instance(problem):
    instances = problem.sample("5ap-10ue", 4, seed=3)
    solver = make(RandomPower, problem, "5ap-10ue")
    first = power_of(solver.solve(instances))
    np.testing.assert_array_equal(first, power_of(solver.solve(instances)))
    np.testing.assert_array_equal(first[2], power_of(solver.solve(instances[2]))[0])  # batch-independent
    for i in range(1, 4):
        assert not np.allclose(first[0], first[i])
    other_seed = problem.sample("5ap-10ue", 1, seed=4)
    assert not np.allclose(first[0], power_of(solver.solve(other_seed))[0])


# -- SCA ------------------------------------------------------------------------------

def test_sca_subproblem_gradient_matches_objective_gradient(problem):
    """The derivation's key identity: at P^t the subproblem's gradient is grad J."""
    instances = problem.sample("5ap-10ue", 1, seed=2)
    power_w = np.random.default_rng(0).uniform(0.0, 0.05, size=(10, 5))
    total_gain, weight, linear = DinkelbachSubproblem(10, 5).coefficients(problem, instances, power_w)
    p = power_w.ravel()
    subproblem_grad = (weight / (1.0 + total_gain @ p)) @ total_gain / np.log(2.0) - linear
    _, grad = SumEEAscent(problem, instances, 0).value_and_gradient(power_w[None])
    np.testing.assert_allclose(subproblem_grad, grad[0].ravel(), rtol=1e-9, atol=1e-9 * np.abs(grad).max())


@pytest.mark.parametrize("scenario,n", [("tiny", 6), ("5ap-10ue", 2)])
def test_sca_trace_is_monotone_and_ends_at_evaluator_objective(problem, scenario, n):
    result, objective = solve_cached(SCADinkelbach, problem, scenario, n)
    assert len(result.trace) == n
    for i, trace in enumerate(result.trace):
        trace = np.asarray(trace)
        assert len(trace) == result.iterations[i] >= 1
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
        assert trace[-1] == pytest.approx(objective[i], rel=1e-9)
    _, equal = solve_cached(EqualPower, problem, scenario, n)
    assert np.all(objective > equal)  # started at equal power, and improved on it


def test_sca_respects_max_iter(problem):
    instances = problem.sample("tiny", 2, seed=0)
    result = make(SCADinkelbach, problem, "tiny", max_iter=3).solve(instances)
    assert np.all(result.iterations <= 3)


def test_sca_beats_baselines_on_mean(problem):
    _, sca = solve_cached(SCADinkelbach, problem, "5ap-10ue", 8)
    for cls in BASELINES:
        _, baseline = solve_cached(cls, problem, "5ap-10ue", 8)
        assert sca.mean() > baseline.mean(), cls.name


def test_sca_default_rule_is_converged(problem):
    """The default stops by its tolerance, not its cap, and a run to 1e-12 / 2000
    iterations gains less than 1e-6 (relative) over it, while the old fast rule
    (1e-4 / 50) loses more than that on the same instances."""
    default_solver = make(SCADinkelbach, problem, "5ap-10ue")
    assert (default_solver.tol, default_solver.max_iter) == (1e-8, 500)
    result, objective = solve_cached(SCADinkelbach, problem, "5ap-10ue", 2)
    instances = problem.sample("5ap-10ue", 2, seed=0)

    def objective_of(**options):
        solver = make(SCADinkelbach, problem, "5ap-10ue", **options)
        return problem.evaluate(instances, {"power_w": power_of(solver.solve(instances))}).objective, solver

    tight_objective, tight = objective_of(tol=1e-12, max_iter=2000)
    assert set(tight.stop_reasons) <= {"tol", "no-ascent"}
    assert np.all(result.iterations < 500)
    assert np.all(tight_objective <= objective * (1 + 1e-6))
    fast_objective, _ = objective_of(tol=1e-4, max_iter=50)
    assert np.all(fast_objective < objective * (1 - 1e-6))


def test_sca_stop_reasons(problem):
    instances = problem.sample("tiny", 3, seed=0)
    capped = make(SCADinkelbach, problem, "tiny", max_iter=1)
    capped.solve(instances)
    assert capped.stop_reasons == ["max_iter"] * 3
    solver = make(SCADinkelbach, problem, "tiny", tol="1e-4", max_iter="50")  # as --set passes them
    assert (solver.tol, solver.max_iter) == (1e-4, 50)
    solver.solve(instances)
    assert len(solver.stop_reasons) == 3 and set(solver.stop_reasons) <= {"tol", "no-ascent"}


# -- SCA: every solver answer is verified before it is accepted ------------------------

def subproblem_at_equal_power(problem):
    """A tiny instance (K = 3, L = 2), its subproblem and the equal-power iterate (W)."""
    instances = problem.sample("tiny", 1, seed=3)
    params = instances.params
    subproblem = DinkelbachSubproblem(params.n_ues, params.n_aps)
    return instances, subproblem, sum_ee_baselines.equal_power_w(params)[0]


def scripted(answers):
    """A stand-in for ``DinkelbachSubproblem.solve_with``: per solver name, an
    exception to raise or a (status, x) to return; "real" runs the solver."""
    real = DinkelbachSubproblem.solve_with
    calls = []

    def solve_with(self, solver, options):
        calls.append(solver)
        answer = answers[solver]
        if isinstance(answer, Exception):
            raise answer
        if answer == "real":
            return real(self, solver, options)
        return answer

    return solve_with, calls


def test_power_violation_and_margin():
    x = np.array([[0.5, 0.2], [0.4, 0.0]])
    assert sum_ee_sca.power_violation(x, 1.0) == 0.0
    assert sum_ee_sca.power_violation(x, 0.8) == pytest.approx(0.1)  # AP 0 carries 0.9
    assert sum_ee_sca.power_violation(x - 0.3, 1.0) == pytest.approx(0.3)
    assert sum_ee_sca.power_violation(np.full((2, 2), np.nan), 1.0) == np.inf
    assert sum_ee_sca.power_violation(None, 1.0) == np.inf
    assert sum_ee_sca.feasibility_margin(1e-5, 100.0) == pytest.approx(1.01e-3)


def test_sca_fallback_answer_that_breaks_the_budget_is_rejected(problem, monkeypatch):
    instances, subproblem, power_w = subproblem_at_equal_power(problem)
    budget = instances.params.ap_power_budget_w / subproblem.power_unit_w
    overloaded = np.full(6, 0.75 * budget)  # each AP at 2.25 x its budget
    subproblem.attempts = [("CLARABEL", {}, 1e-8), ("SCS", {}, 1e-5)]
    solve_with, calls = scripted({"CLARABEL": cp.error.SolverError("stall"), "SCS": (cp.OPTIMAL, overloaded)})
    monkeypatch.setattr(DinkelbachSubproblem, "solve_with", solve_with)
    assert subproblem.maximiser(problem, instances, power_w) is None
    assert calls == ["CLARABEL", "SCS"]
    assert [r[:2] for r in subproblem.rejected] == [("SCS", cp.OPTIMAL)]
    assert subproblem.rejected[0][2] == pytest.approx(1.25 * instances.params.ap_power_budget_w)


@pytest.mark.parametrize("garbage", ["negative", "nan", "none"])
def test_sca_garbage_then_valid_fallback(problem, monkeypatch, garbage):
    """Garbage from the first solvers is skipped; the valid answer of the next is taken."""
    instances, subproblem, power_w = subproblem_at_equal_power(problem)
    exact_w = DinkelbachSubproblem(3, 2).maximiser(problem, instances, power_w)  # Clarabel, unscripted
    x = {"negative": np.full(6, -1.0), "nan": np.full(6, np.nan), "none": None}[garbage]
    valid = exact_w.ravel() / subproblem.power_unit_w
    subproblem.attempts = [("CLARABEL", {}, 1e-8), ("ECOS", {}, 1e-8), ("SCS", {}, 1e-5)]
    solve_with, calls = scripted({"CLARABEL": (cp.OPTIMAL, x), "ECOS": (cp.OPTIMAL_INACCURATE, x),
                                  "SCS": (cp.OPTIMAL_INACCURATE, valid)})
    monkeypatch.setattr(DinkelbachSubproblem, "solve_with", solve_with)
    target_w = subproblem.maximiser(problem, instances, power_w)
    assert calls == ["CLARABEL", "ECOS", "SCS"]
    assert [r[0] for r in subproblem.rejected] == ["CLARABEL", "ECOS"]
    np.testing.assert_allclose(target_w, exact_w, rtol=1e-12)


def test_sca_margin_is_the_answering_solvers(problem, monkeypatch):
    """A negative power of 0.5x SCS's margin is within SCS's tolerance (accepted, then
    clipped to exactly 0) but not within Clarabel's at OPTIMAL; Clarabel's
    OPTIMAL_INACCURATE answer gets the reduced tolerance 1e-4."""
    instances, subproblem, power_w = subproblem_at_equal_power(problem)
    budget = instances.params.ap_power_budget_w / subproblem.power_unit_w
    x = np.full(6, 5.0)
    x[1] = -0.5 * sum_ee_sca.feasibility_margin(1e-5, budget)
    cases = [({"CLARABEL": (cp.OPTIMAL, x)}, ("CLARABEL", {}, 1e-8), False),
             ({"SCS": (cp.OPTIMAL, x)}, ("SCS", {}, 1e-5), True),
             ({"CLARABEL": (cp.OPTIMAL_INACCURATE, x)}, ("CLARABEL", {}, 1e-8), True)]
    for answers, attempt, accepted in cases:
        subproblem.attempts = [attempt]
        monkeypatch.setattr(DinkelbachSubproblem, "solve_with", scripted(answers)[0])
        target_w = subproblem.maximiser(problem, instances, power_w)
        assert (target_w is not None) == accepted, answers
        if accepted:
            assert target_w[0, 1] == 0.0 and target_w.min() == 0.0
            np.testing.assert_allclose(np.delete(target_w.ravel(), 1), 5.0 * subproblem.power_unit_w)


def test_sca_on_the_real_scs_fallback(problem, monkeypatch):
    """With Clarabel failing every time, SCA runs on SCS, which stops at its iteration
    cap on these exponential-cone subproblems: exactly its answers outside the
    margin are turned down, and the result is feasible, monotone and no worse than
    the equal-power start. With every solver returning garbage SCA keeps equal
    power and says so."""
    instances = problem.sample("tiny", 2, seed=5)
    answers = []
    real = DinkelbachSubproblem.solve_with

    def clarabel_fails(self, solver, options):
        if solver != "SCS":
            raise cp.error.SolverError("forced")
        status, x = real(self, solver, options)
        tolerance = 1e-5 if status == cp.OPTIMAL else sum_ee_sca.INACCURATE_FEASIBILITY_TOL
        budget = self.budget.value
        violation = sum_ee_sca.power_violation(np.asarray(x).reshape(self.n_ues, self.n_aps), budget)
        answers.append(violation > sum_ee_sca.feasibility_margin(tolerance, budget))
        return status, x

    monkeypatch.setattr(DinkelbachSubproblem, "solve_with", clarabel_fails)
    solver = make(SCADinkelbach, problem, "tiny", max_iter=5)
    result = solver.solve(instances)
    assert len(answers) >= 2
    assert len(solver._subproblem(3, 2).rejected) == sum(answers)
    score = problem.evaluate(instances, {"power_w": power_of(result)})
    assert score.feasible.all()
    equal = problem.evaluate(instances, make(EqualPower, problem, "tiny").solve(instances)).objective
    assert np.all(score.objective >= equal)
    for trace in result.trace:
        assert np.all(np.diff(trace) >= 0)

    garbage = (cp.OPTIMAL, np.full(6, 1e3))
    monkeypatch.setattr(DinkelbachSubproblem, "solve_with",
                        scripted({"CLARABEL": garbage, "ECOS": garbage, "SCS": garbage})[0])
    solver = make(SCADinkelbach, problem, "tiny")
    result = solver.solve(instances)
    assert solver.stop_reasons == ["solver-failed"] * 2
    np.testing.assert_allclose(power_of(result), sum_ee_baselines.equal_power_w(instances.params, 2))


# -- reference ------------------------------------------------------------------------

def test_capped_simplex_projection_is_euclidean_projection():
    rng = np.random.default_rng(1)
    v = rng.normal(0.2, 0.6, size=(200, 4, 3))
    y = project_capped_simplex(v, 1.0)
    assert y.min() >= 0 and y.sum(axis=1).max() <= 1.0 + 1e-12
    # optimality: y = max(v - theta, 0) per column with theta >= 0, theta > 0 only at a full budget
    for s in range(len(v)):
        for l in range(3):
            col, proj = v[s, :, l], y[s, :, l]
            on = proj > 0
            theta = np.mean(col[on] - proj[on]) if on.any() else 0.0
            assert theta >= -1e-12
            np.testing.assert_allclose(proj, np.maximum(col - theta, 0.0), atol=1e-12)
            if theta > 1e-12:
                assert proj.sum() == pytest.approx(1.0)


def test_objective_gradient_matches_finite_differences(problem):
    instances = problem.sample("tiny", 1, seed=4)
    ascent = SumEEAscent(problem, instances, 0)
    power_w = np.random.default_rng(2).uniform(0.001, 0.05, size=(2, 3, 2))
    _, grad = ascent.value_and_gradient(power_w)
    h = 1e-7
    numeric = np.zeros_like(power_w)
    for index in np.ndindex(*power_w.shape[1:]):
        e = np.zeros_like(power_w)
        e[(slice(None),) + index] = h
        numeric[(slice(None),) + index] = (ascent.value(power_w + e) - ascent.value(power_w - e)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * np.abs(grad).max())


def test_reference_at_least_sca_on_tiny(problem):
    _, sca = solve_cached(SCADinkelbach, problem, "tiny", 12)
    _, reference = solve_cached(MultiStartProjectedGradient, problem, "tiny", 12)
    assert reference.mean() >= sca.mean() - 1e-6
    assert np.all(reference >= sca - 1e-3 * sca)


def test_reference_not_beaten_by_dense_random_search(problem):
    """On tiny instances (6 powers), 60 000 random feasible points (random supports,
    log-uniform powers from 0.1 mW to 1 W) must not beat the reference."""
    n = 4
    instances = problem.sample("tiny", n, seed=0)
    _, reference = solve_cached(MultiStartProjectedGradient, problem, "tiny", 12)
    rng = np.random.default_rng(7)
    for i in range(n):
        support = rng.uniform(size=(60_000, 3, 2)) < rng.uniform(0.2, 1.0, size=(60_000, 1, 1))
        power_w = fit_budget(support * 10.0 ** rng.uniform(-4.0, 0.0, size=(60_000, 3, 2)), 1.0)
        best = sum_ee_baselines.candidate_sum_ee(problem, instances, i, power_w).max()
        assert best <= reference[i] * (1 + 1e-9)
        assert best >= 0.98 * reference[i]  # the search is dense enough to come close


def test_reference_monotone_trace(problem):
    result, objective = solve_cached(MultiStartProjectedGradient, problem, "tiny", 12)
    for i, trace in enumerate(result.trace):
        assert np.all(np.diff(trace) >= 0)
        assert trace[-1] == pytest.approx(objective[i], rel=1e-9)


# -- permutation equivariance (paper Sec. II-B, Fig. 2) ----------------------------------

def permute_ues(instances, perm):
    arrays = dict(instances.arrays)
    arrays["gain_over_noise"] = instances.gain_over_noise[:, :, perm][:, :, :, perm]
    arrays["beta"] = instances.beta[:, :, perm]
    arrays["ue_xy_m"] = instances.ue_xy_m[:, perm]
    return dataclasses.replace(instances, arrays=arrays)


@pytest.mark.parametrize(
    "cls,scenario,rtol_objective,atol_power_w",
    [(EqualPower, "10ap-10ue", 1e-12, 0.0), (NearestAP, "10ap-10ue", 1e-12, 0.0), (SCADinkelbach, "tiny", 1e-4, 1e-3)],
    ids=["equal", "nearest-ap", "sca"],
)
def test_permuting_ues_permutes_powers(problem, cls, scenario, rtol_objective, atol_power_w):
    n = 3
    instances = problem.sample(scenario, n, seed=11)
    n_ues = instances.params.n_ues
    perm = np.random.default_rng(0).permutation(n_ues)
    assert not np.array_equal(perm, np.arange(n_ues))
    solver = make(cls, problem, scenario)
    power_w = power_of(solver.solve(instances))
    permuted = permute_ues(instances, perm)
    permuted_power_w = power_of(solver.solve(permuted))
    np.testing.assert_allclose(permuted_power_w, power_w[:, perm], rtol=1e-9, atol=atol_power_w)
    np.testing.assert_allclose(
        problem.evaluate(permuted, {"power_w": permuted_power_w}).objective,
        problem.evaluate(instances, {"power_w": power_w}).objective,
        rtol=rtol_objective,
    )
