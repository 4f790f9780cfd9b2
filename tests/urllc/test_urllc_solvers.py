"""``urllc`` solvers: valid output, the baselines' definitions, and the SCA's guarantees.

Mostly on ``tiny`` (K = 4) and a couple of ``stress-k20`` instances, where the
reliability constraint binds. The solver classes are used directly
(``random``, ``best-uniform`` and ``sca`` are also ``sum-ee`` solver names;
the registry tells them apart by problem).
"""

from __future__ import annotations

import numpy as np
import pytest

from cfbench import Solution
from cfbench.plugins import urllc_baselines as bl
from cfbench.plugins import urllc_sca as sca
from cfbench.problems import urllc as u

PROBLEM = u.Urllc()
SOLVERS = [bl.PMax, bl.PMin, bl.RandomPower, bl.BestUniformPower, sca.SCA]


def _solve(cls, instances, scenario, **options):
    solver = cls(**options)
    solver.setup(PROBLEM, scenario)
    out = solver.solve(instances)
    return out if isinstance(out, Solution) else Solution(out)


@pytest.fixture(scope="module")
def tiny():
    return PROBLEM.sample("tiny", 6, seed=21)


@pytest.fixture(scope="module")
def tiny_solutions(tiny):
    return {cls.name: _solve(cls, tiny, "tiny") for cls in SOLVERS}


@pytest.fixture(scope="module")
def stress():
    """Instances 1 and 2 of stress-k20, seed 0: at the best common level instance 2 has an
    unreliable terminal, and on instance 1 the Omega-only level has one."""
    return PROBLEM.sample("stress-k20", 3, seed=0)[[1, 2]]


@pytest.fixture(scope="module")
def stress_solutions(stress):
    return {cls.name: _solve(cls, stress, "stress-k20") for cls in (bl.PMax, bl.BestUniformPower, sca.SCA)}


def test_solver_metadata():
    names = [c.name for c in SOLVERS]
    assert names == ["p-max", "p-min", "random", "best-uniform", "sca"]
    assert all(c.problems == ("urllc",) for c in SOLVERS)
    assert [c.kind for c in SOLVERS] == ["baseline"] * 4 + ["iterative"]
    assert PROBLEM.paper_iterative_solver == sca.SCA.name


@pytest.mark.parametrize("name", [c.name for c in SOLVERS])
def test_every_solver_returns_a_valid_decision_within_bounds(tiny, tiny_solutions, name):
    decision = tiny_solutions[name].decision
    assert PROBLEM.check_decision(tiny, decision, atol=0.0) is None
    power = decision["power_w"]
    assert np.all(power >= 0.001) and np.all(power <= 1.0)
    score = PROBLEM.evaluate(tiny, decision)
    assert np.all(np.isfinite(score.objective))
    assert np.all(score.violation["power_below_min_w"] == 0) and np.all(score.violation["power_above_max_w"] == 0)


def test_fixed_power_baselines(tiny, tiny_solutions):
    np.testing.assert_array_equal(tiny_solutions["p-max"].decision["power_w"], np.ones((6, 4)))
    np.testing.assert_array_equal(tiny_solutions["p-min"].decision["power_w"], np.full((6, 4), 0.001))


def test_random_baseline_is_seeded_per_instance(tiny, tiny_solutions):
    power = tiny_solutions["random"].decision["power_w"]
    again = _solve(bl.RandomPower, tiny[3], "tiny").decision["power_w"]
    np.testing.assert_array_equal(again[0], power[3])  # same instance alone -> same draw
    assert len(np.unique(power)) == power.size     # different across terminals and instances
    other_seed = PROBLEM.sample("tiny", 1, seed=22)
    assert not np.allclose(_solve(bl.RandomPower, other_seed, "tiny").decision["power_w"][0], power[0])


def _level_scan(instances, i, n=301):
    """(levels, Omega, n_violating) of common power levels, scored by the evaluator itself."""
    levels = np.geomspace(0.001, 1.0, n)
    K = instances.params.n_terminals
    score = PROBLEM.evaluate(instances[[i] * n], {"power_w": np.repeat(levels[:, None], K, axis=1)})
    return levels, score.objective, score.metrics["n_violating_eps"]


@pytest.mark.parametrize("fixture", ["tiny", "stress"])
def test_best_uniform_is_the_best_common_level(request, fixture):
    """No common level on an independent 301-point grid has fewer eps violations,
    or as few and a higher Omega (beyond 1e-9): the search is lexicographic as documented."""
    instances = request.getfixturevalue(fixture)
    power = _solve(bl.BestUniformPower, instances, instances.scenario).decision["power_w"]
    plain = _solve(bl.BestUniformPower, instances, instances.scenario, reliability_first=False).decision["power_w"]
    chosen = PROBLEM.evaluate(instances, {"power_w": power})
    chosen_plain = PROBLEM.evaluate(instances, {"power_w": plain})
    for i in range(len(instances)):
        assert np.ptp(power[i]) == 0.0  # one common level
        _, omega, n_violating = _level_scan(instances, i)
        assert chosen.metrics["n_violating_eps"][i] <= n_violating.min()
        same = n_violating == chosen.metrics["n_violating_eps"][i]
        assert chosen.objective[i] >= omega[same].max() - 1e-9
        assert chosen_plain.objective[i] >= omega.max() - 1e-9  # Omega alone when asked
        assert chosen_plain.objective[i] >= chosen.objective[i] - 1e-12


def test_best_uniform_prefers_reliability_over_omega_on_stress(stress):
    """On stress-k20 the lexicographic rule gives up Omega for reliability on some instance:
    the two rules differ, so the test of the rule above is not vacuous."""
    first = PROBLEM.evaluate(stress, _solve(bl.BestUniformPower, stress, "stress-k20").decision)
    plain = PROBLEM.evaluate(stress, _solve(bl.BestUniformPower, stress, "stress-k20",
                                            reliability_first=False).decision)
    assert np.all(first.metrics["n_violating_eps"] <= plain.metrics["n_violating_eps"])
    assert np.any(first.metrics["n_violating_eps"] < plain.metrics["n_violating_eps"])


# --- SCA ---------------------------------------------------------------------------------

def test_sca_subproblems_are_dpp_and_reproduce_the_sinr():
    sub = sca.SCASubproblems(5)
    assert sub.surrogate.is_dpp()
    inst = PROBLEM.sample("stress-k20", 1, seed=4)
    coefficients = u.SinrCoefficients.from_instances(inst)
    terms = sca.PosynomialTerms(20)
    b = terms.log_coefficients(u.SinrCoefficients.from_lsf(inst.beta[0], inst.rician_factor[0], 4, 64),
                               np.log(1e-3), 0.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(np.log(1e-3), 0.0, size=20)
    z, grad = terms.log_inverse_sinr(b, x)
    np.testing.assert_allclose(np.exp(z), coefficients.inverse_sinr(np.exp(x)[None])[0], rtol=1e-9)
    step = 1e-6
    for j in (0, 7, 19):
        e = np.zeros(20)
        e[j] = step
        numeric = (terms.log_inverse_sinr(b, x + e)[0] - terms.log_inverse_sinr(b, x - e)[0]) / (2 * step)
        np.testing.assert_allclose(grad[:, j], numeric, rtol=1e-5, atol=1e-8)


def test_sca_rate_minorant_is_below_the_rate_and_tight():
    """R~_k(x') <= R_k(x') everywhere, with equality at the iterate (module docstring)."""
    inst = PROBLEM.sample("stress-k20", 1, seed=5)
    p = inst.params
    scorer = bl.CandidateScorer(inst, 0)
    terms = sca.PosynomialTerms(20)
    b = terms.log_coefficients(scorer.coefficients, np.log(1e-3), 0.0)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.uniform(np.log(1e-3), 0.0, size=20)
        lin = sca.linearise_rates(terms, b, x, p)
        rate_here = scorer.score(np.exp(x)[None])["rate"][0]
        np.testing.assert_allclose(lin["rate"], rate_here, rtol=1e-9, atol=1e-12)
        for _ in range(20):
            x2 = np.clip(x + rng.normal(scale=1.5, size=20), np.log(1e-3), 0.0)
            z2, _ = terms.log_inverse_sinr(b, x2)
            minorant = lin["rate"] + lin["slope"] * (lin["ell"] + lin["grad_ell"] @ (x2 - x) - z2 - lin["t"])
            assert np.all(minorant <= scorer.score(np.exp(x2)[None])["rate"][0] + 1e-9)


def test_line_search_never_lowers_omega_nor_drops_a_served_terminal():
    inst = PROBLEM.sample("stress-k20", 1, seed=0)
    scorer = bl.CandidateScorer(inst, 0)
    x = np.full(20, np.log(0.05))
    start = scorer.score(np.exp(x)[None])
    omega, served = float(start["omega"][0]), start["reliable"][0]
    # towards p_max everywhere Omega falls (EE collapses): no step may be accepted
    assert scorer.score(np.ones((1, 20)))["omega"][0] < omega
    assert sca.line_search(scorer, x, np.zeros(20), omega, served) is None
    # cutting a served terminal to p_min raises Omega (less power) but makes it unreliable
    found = False
    for k in np.flatnonzero(served):
        target = x.copy()
        target[k] = np.log(1e-3)
        at_target = scorer.score(np.exp(target)[None])
        if at_target["omega"][0] > omega and not at_target["reliable"][0, k]:
            found = True
            step = sca.line_search(scorer, x, target, omega, served)
            assert step is None or np.all(scorer.score(np.exp(step[0])[None])["reliable"][0, served])
            assert step is None or step[1] >= omega
            # without the reliability requirement the full step is taken
            full = sca.line_search(scorer, x, target, omega, np.zeros(20, dtype=bool))
            np.testing.assert_allclose(full[0], target)
    assert found


def test_sca_trace_is_non_decreasing_and_ends_at_the_evaluated_objective(tiny, tiny_solutions):
    solution = tiny_solutions["sca"]
    score = PROBLEM.evaluate(tiny, solution.decision)
    for i, trace in enumerate(solution.trace):
        assert 1 <= len(trace) <= 20 and solution.iterations[i] == len(trace)
        assert np.all(np.diff(trace) >= 0.0)
        assert trace[-1] == pytest.approx(score.objective[i], rel=1e-9)


def test_sca_beats_p_max_and_best_uniform_on_mean_omega(tiny, tiny_solutions):
    omega = {name: PROBLEM.evaluate(tiny, s.decision).objective for name, s in tiny_solutions.items()}
    assert omega["sca"].mean() > omega["best-uniform"].mean() + 1e-3
    assert omega["sca"].mean() > omega["p-max"].mean() + 1e-3


def test_sca_never_leaves_more_terminals_unreliable_than_best_uniform(stress, stress_solutions, tiny,
                                                                     tiny_solutions):
    for instances, solutions in ((tiny, tiny_solutions), (stress, stress_solutions)):
        viol = {name: PROBLEM.evaluate(instances, solutions[name].decision).metrics["n_violating_eps"]
                for name in ("sca", "best-uniform", "p-max")}
        assert np.all(viol["sca"] <= viol["best-uniform"])
    # on these stress instances uniform power leaves terminals unreliable; SCA serves them all
    stress_viol = PROBLEM.evaluate(stress, stress_solutions["best-uniform"].decision).metrics["n_violating_eps"]
    sca_score = PROBLEM.evaluate(stress, stress_solutions["sca"].decision)
    assert stress_viol.sum() > 0 and np.all(sca_score.feasible)
    for trace in stress_solutions["sca"].trace:
        assert np.all(np.diff(trace) >= 0.0)


def test_sca_solves_each_instance_independently(tiny, tiny_solutions):
    alone = _solve(sca.SCA, tiny[2], "tiny").decision["power_w"]
    np.testing.assert_allclose(alone[0], tiny_solutions["sca"].decision["power_w"][2], rtol=1e-6)


def test_sca_respects_max_iter(tiny):
    out = _solve(sca.SCA, tiny[:2], "tiny", max_iter=2)
    assert all(len(t) <= 2 for t in out.trace)
    assert PROBLEM.check_decision(tiny[:2], out.decision) is None


def test_sca_keeps_iterating_when_every_fallback_solver_fails(tiny, monkeypatch):
    """A surrogate that neither Clarabel nor SCS solves (here: both capped at one interior-point
    iteration) is retried with the robust Clarabel settings instead of ending the iterations."""
    monkeypatch.setattr(sca, "FALLBACK_CHAIN", (("CLARABEL", {"max_iter": 1}), ("SCS", {"max_iters": 1})))
    out = _solve(sca.SCA, tiny[:2], "tiny", max_iter=3)
    assert all(len(t) > 0 for t in out.trace)
    monkeypatch.setattr(sca, "RETRY_MARGINS", ())
    assert all(len(t) == 0 for t in _solve(sca.SCA, tiny[:2], "tiny", max_iter=3).trace)
