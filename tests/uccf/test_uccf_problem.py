"""``uccf`` problem: the spec's numbers, pilot/DCC rules, scenarios, evaluator, invalid
decisions, equivariance and the solver interface.

The closed forms themselves are checked against Monte Carlo in ``test_uccf_closed_forms.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cfbench import CfbenchError, Instances, Solver
from cfbench.physics import linear_to_db
from cfbench.physics.association import dcc_pilot_assignment, greedy_pilot_assignment
from cfbench.physics.large_scale import ue_correlated_shadowing_db
from cfbench.problems import uccf_model as um
from cfbench.problems.uccf import SCENARIOS, Uccf
from cfbench.runner import SolveOutcome, score_outcomes

PROB = Uccf()


@pytest.fixture(scope="module")
def tiny() -> Instances:
    return PROB.sample("tiny", 6, seed=0)


@pytest.fixture(scope="module")
def k20() -> Instances:
    return PROB.sample("mr-k20", 8, seed=0)


def _with(instances: Instances, **arrays) -> Instances:
    return dataclasses.replace(instances, arrays={**instances.arrays, **arrays})


# --- the spec's numbers (A.2) ------------------------------------------------------------------

def test_pathloss_noise_and_wrap_around_match_the_spec():
    p = SCENARIOS["mr-k40"]
    assert p.noise_dbm == pytest.approx(-93.99, abs=0.01)                    # -174 + 73.01 + 7
    assert (p.n_aps, p.n_antennas, p.tau_p, p.tau_c, p.side_m) == (16, 4, 10, 200, 500.0)
    assert (p.p_max_mw, p.pilot_power_mw, p.rho_max_mw) == (100.0, 100.0, 200.0)
    paper = SCENARIOS["mr-paper"]
    assert (paper.n_aps, paper.n_antennas, paper.n_ues, paper.side_m) == (100, 4, 40, 1000.0)
    inst = PROB.sample("mr-k40", 30, seed=4)
    side = p.side_m
    for i in range(3):                                                         # torus distances, 10 m above
        ap, ue = inst.ap_xy_m[i], inst.ue_xy_m[i]
        shifts = [np.array([dx, dy]) * side for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        flat = np.min([np.linalg.norm(ap[:, None] - (ue[None] + s), axis=-1) for s in shifts], axis=0)
        np.testing.assert_allclose(inst.distance_m[i], np.sqrt(flat ** 2 + 100.0), rtol=1e-12)
    assert inst.distance_m.max() <= np.sqrt(side ** 2 / 2 + 100) + 1e-9 and inst.distance_m.min() >= 10.0
    # beta [dB] = -30.5 - 36.7 log10(d) + F - noise, F ~ N(0, 4^2)
    shadow_db = linear_to_db(inst.beta * p.noise_mw) - (-30.5 - 36.7 * np.log10(inst.distance_m))
    assert np.mean(shadow_db) == pytest.approx(0.0, abs=0.2)
    assert np.std(shadow_db) == pytest.approx(4.0, rel=0.05)
    # a point 100 m away: -30.5 - 73.4 = -103.9 dB, i.e. -9.9 dB SNR per mW
    assert 10 * np.log10(10 ** ((-30.5 - 36.7 * np.log10(np.hypot(100.0, 10.0))) / 10) / p.noise_mw) == \
        pytest.approx(-30.5 - 36.7 * np.log10(np.hypot(100.0, 10.0)) + 93.99, abs=0.01)


def test_shadowing_is_correlated_across_ues_with_2_pow_minus_d_over_9m():
    ue = np.array([[100.0, 100.0], [109.0, 100.0], [300.0, 300.0], [1.0, 250.0], [499.0, 250.0]])
    f = ue_correlated_shadowing_db(np.random.default_rng(0), ue, 40_000, 4.0, 9.0, wrap_around_m=500.0)
    assert f.shape == (40_000, 5)
    c = np.corrcoef(f.T)
    assert np.std(f, axis=0) == pytest.approx(np.full(5, 4.0), rel=0.02)
    assert c[0, 1] == pytest.approx(0.5, abs=0.02)                             # 9 m apart
    assert abs(c[0, 2]) < 0.02                                                 # far apart
    assert c[3, 4] == pytest.approx(2 ** (-2 / 9), abs=0.02)                   # 2 m apart across the edge


# --- pilots and DCC (A.3) -------------------------------------------------------------------------

def _check_dcc(beta, pilot, master, clusters, tau_p):
    n_aps, n_ues = beta.shape
    assert np.all(clusters[master, np.arange(n_ues)] == 1)                     # every UE served by its master
    assert np.all(clusters.sum(axis=1) <= tau_p)                               # load limit
    for l in range(n_aps):                                                     # one UE per pilot per AP
        served = np.flatnonzero(clusters[l])
        assert len(set(pilot[served])) == len(served)
        mastered = np.flatnonzero(master == l)
        assert len(set(pilot[mastered])) == len(mastered)                      # fix (a)
    if n_ues >= tau_p:
        np.testing.assert_array_equal(clusters.sum(axis=1), tau_p)            # L tau_p links
    else:
        np.testing.assert_array_equal(clusters, 1.0)                           # DCC = all APs


@pytest.mark.parametrize("scenario,n", [("mr-k10", 20), ("mr-k20", 60), ("mr-k40", 60), ("mr-k60", 60),
                                        ("tiny", 60), ("mr-paper", 5)])
def test_dcc_serves_everyone_within_tau_p_on_many_seeds(scenario, n):
    inst = PROB.sample(scenario, n, seed=7)
    p = inst.params
    for i in range(n):
        _check_dcc(inst.beta[i], inst.pilot[i], inst.master_ap[i], inst.dcc_clusters[i], p.tau_p)
    score = PROB.evaluate(inst, um.maxmin_decision(inst, inst.dcc_clusters))
    assert np.all(score.violation["ap_load_ues"] == 0) and np.all(score.violation["unserved_ues"] == 0)
    assert np.all(score.feasible)


def _book_dcc(beta, tau_p):
    """The unfixed rule (greedy pilots, master + strongest UE per pilot) for comparison."""
    pilot = greedy_pilot_assignment(beta, np.ones(beta.shape[1]), tau_p)
    clusters = np.zeros_like(beta)
    clusters[np.argmax(beta, axis=0), np.arange(beta.shape[1])] = 1
    for t in range(tau_p):
        on_t = np.flatnonzero(pilot == t)
        if on_t.size:
            clusters[np.arange(beta.shape[0]), on_t[np.argmax(beta[:, on_t], axis=1)]] = 1
    return pilot, clusters


def test_the_load_fix_is_needed_and_matches_the_greedy_rule_otherwise():
    inst = PROB.sample("mr-k40", 40, seed=1)
    overloaded = 0
    for i in range(len(inst)):
        pilot, clusters = _book_dcc(inst.beta[i], 10)
        overloaded += clusters.sum(axis=1).max() > 10
        masters = np.argmax(inst.beta[i], axis=0)
        if len(np.unique(masters)) == len(masters):                            # no master shared: same pilots
            np.testing.assert_array_equal(inst.pilot[i], pilot)
    assert overloaded > 20                                                     # spec A.3: ~80 % at K = 40
    # a hand example with tau_p = 2: AP 0 is the strongest AP of UEs 0, 1 and 2; UE 2 finds both
    # pilots held there, moves to its next-strongest AP 1 and takes the pilot least heard there
    beta = np.array([[10.0, 9.0, 8.0, 0.1], [1.0, 3.0, 2.0, 0.5], [0.1, 0.2, 1.0, 6.0]])
    pilot, master, clusters = dcc_pilot_assignment(beta, 1.0, 2)
    assert pilot.tolist() == [0, 1, 0, 1] and master.tolist() == [0, 0, 1, 2]
    np.testing.assert_array_equal(clusters, [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    _check_dcc(beta, pilot, master, clusters, 2)
    with pytest.raises(ValueError, match="cannot be served"):
        dcc_pilot_assignment(np.ones((2, 5)), 1.0, 2)


def test_threshold_option_prunes_weak_links():
    p = dataclasses.replace(SCENARIOS["mr-k40"], dcc_threshold_db=10.0)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 0])))
    pruned = um.draw_setup(p, rng)
    full = PROB.sample("mr-k40", 1, seed=0)
    assert np.all(pruned["dcc_clusters"] <= full.dcc_clusters[0])
    assert pruned["dcc_clusters"].sum() < full.dcc_clusters[0].sum()
    ratio = pruned["beta"] / pruned["beta"][pruned["master_ap"], np.arange(40)]
    assert np.all(ratio[pruned["dcc_clusters"] > 0] >= 0.1 - 1e-12)


def test_estimation_quality_formula():
    beta = np.array([[4.0, 1.0, 2.0], [0.5, 3.0, 1.0]])
    pilot = np.array([0, 1, 0])
    e = 1000.0
    gamma = um.estimate_quality(beta, pilot, e)
    assert gamma[0, 0] == pytest.approx(e * 16 / (e * (4 + 2) + 1))
    assert gamma[1, 1] == pytest.approx(e * 9 / (e * 3 + 1))
    assert gamma[1, 2] == pytest.approx(e * 1 / (e * 1.5 + 1))


# --- scenarios --------------------------------------------------------------------------------------

def test_named_scenarios():
    for k in (10, 20, 30, 40, 50, 60):
        assert SCENARIOS[f"mr-k{k}"].n_ues == k and SCENARIOS[f"mr-k{k}"].combiner == "mr"
        assert SCENARIOS[f"mmse-k{k}"].n_ues == k and SCENARIOS[f"mmse-k{k}"].combiner == "mmse"
    assert SCENARIOS["mmse-paper"].combiner == "mmse" and SCENARIOS["mmse-paper"].n_aps == 100
    assert PROB.default_scenario in SCENARIOS and "tiny" in SCENARIOS
    fields = {f.name: f for f in PROB.decision_fields("mr-k20")}
    assert fields["clusters"].shape == (16, 20) and fields["clusters"].binary
    assert fields["ul_power_mw"].upper == 100.0 and fields["dl_power_mw"].shape == (20,)
    with pytest.raises(ValueError, match="tau_p"):
        um.UccfScenario(n_aps=2, tau_p=3, n_ues=7)


@pytest.mark.parametrize("bad", ["mr-k45", "mmse", "K40", ""])
def test_bad_scenario_names_are_one_line_errors(bad):
    with pytest.raises(CfbenchError) as err:
        PROB.sample(bad, 1)
    message = str(err.value)
    assert "\n" not in message and "mr-k40" in message and "mmse-paper" in message


def test_sampling_is_pinned_and_prefix_stable():
    inst = PROB.sample("tiny", 3, seed=0)
    again = PROB.sample("tiny", 1, seed=0, start=2)
    np.testing.assert_array_equal(inst.beta[2:], again.beta)
    np.testing.assert_array_equal(inst.mc_seed[2:], again.mc_seed)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 0])))
    np.testing.assert_allclose(inst.ap_xy_m[0, 0], rng.uniform(size=2) * 200.0, rtol=1e-15)
    assert inst.beta.shape == (3, 9, 8) and inst.pilot.shape == (3, 8) and inst.mc_seed.shape == (3,)
    assert len(set(inst.mc_seed.tolist())) == 3


# --- the evaluator ----------------------------------------------------------------------------------

def test_evaluator_matches_hand_computation(tiny):
    inst = tiny[[0]]
    p = inst.params
    rng = np.random.default_rng(0)
    d = inst.dcc_clusters
    ul = rng.uniform(1, 100, (1, 8))
    dl = rng.uniform(1, 20, (1, 8))
    beta, gamma, pilot, N = inst.beta[0], inst.gamma[0], inst.pilot[0], p.n_antennas
    a, b, c = np.zeros(8), np.zeros((8, 8)), np.zeros(8)                        # A.7 written out
    for k in range(8):
        served = np.flatnonzero(d[0, :, k])
        a[k] = N ** 2 * gamma[served, k].sum() ** 2
        c[k] = N * gamma[served, k].sum()
        for j in range(8):
            b[k, j] = N * np.sum(gamma[served, k] * beta[served, j])
            if j != k and pilot[j] == pilot[k]:
                b[k, j] += N ** 2 * np.sum(gamma[served, k] * beta[served, j] / beta[served, k]) ** 2
    ul_sinr = ul[0] * a / (b @ ul[0] + c)
    at, w = c, N * d[0] * gamma / c                                             # DL: at_k = N sum gamma
    dl_sinr = dl[0] * at / (np.array([sum(dl[0, i] * b[i, k] / c[i] for i in range(8)) for k in range(8)]) + 1)
    score = PROB.evaluate(inst, {"clusters": d, "ul_power_mw": ul, "dl_power_mw": dl})
    ul_se, dl_se = 95 / 200 * np.log2(1 + ul_sinr), 95 / 200 * np.log2(1 + dl_sinr)
    np.testing.assert_allclose(score.metrics["ul_ue_se_bit_per_hz"][0], ul_se, rtol=1e-12)
    np.testing.assert_allclose(score.metrics["dl_ue_se_bit_per_hz"][0], dl_se, rtol=1e-12)
    assert score.objective[0] == pytest.approx(min(ul_se.min(), dl_se.min()), rel=1e-12)
    assert score.metrics["ul_min_se_bit_per_hz"][0] == pytest.approx(ul_se.min(), rel=1e-12)
    assert score.metrics["max_ap_power_mw"][0] == pytest.approx(np.max(w @ dl[0]), rel=1e-12)
    assert score.violation["dl_ap_power_mw"][0] == pytest.approx(max(np.max(w @ dl[0]) - 200.0, 0.0), abs=1e-9)


def test_maxmin_decision_is_feasible_and_tight(k20):
    dec = um.maxmin_decision(k20, k20.dcc_clusters)
    assert PROB.check_decision(k20, dec) is None
    score = PROB.evaluate(k20, dec)
    assert np.all(score.feasible) and np.all(score.max_violation <= 1e-9 * 200)
    t = PROB.performance(k20, dec["clusters"], dec["ul_power_mw"], dec["dl_power_mw"])
    np.testing.assert_allclose(t["ul_sinr"], t["ul_sinr"][:, :1] * np.ones((1, 20)), rtol=1e-10)  # all equal
    np.testing.assert_allclose(t["dl_sinr"], t["dl_sinr"][:, :1] * np.ones((1, 20)), rtol=1e-10)
    np.testing.assert_allclose(dec["ul_power_mw"].max(axis=1), 100.0, rtol=1e-12)                # some UE at p_max
    np.testing.assert_allclose(t["ap_power_mw"].max(axis=1), 200.0, rtol=1e-12)                  # some AP at rho_max
    # more power on the binding resources only lowers someone: the optimum is max-min
    for scale in (0.5, 0.9):
        worse = PROB.evaluate(k20, {**dec, "ul_power_mw": scale * dec["ul_power_mw"],
                                    "dl_power_mw": scale * dec["dl_power_mw"]})
        assert np.all(worse.objective < score.objective)


def test_violations_metrics_and_feasibility(k20):
    inst = k20[[0, 1, 2, 3]]
    base = um.maxmin_decision(inst, inst.dcc_clusters)
    all_aps = um.maxmin_decision(inst, um.all_ap_clusters(inst))              # "Optimal CF": K > tau_p per AP
    s = PROB.evaluate(inst, all_aps)
    np.testing.assert_array_equal(s.violation["ap_load_ues"], 16 * (20 - 10))
    assert not s.feasible.any() and np.all(s.metrics["n_links"] == 320)
    unserved = {k: v.copy() for k, v in base.items()}
    unserved["clusters"][:, :, 3] = 0
    s = PROB.evaluate(inst, unserved)
    np.testing.assert_array_equal(s.violation["unserved_ues"], 1)
    assert not s.feasible.any() and np.all(s.objective == 0) and np.all(s.metrics["n_unserved"] == 1)
    over = {**base, "dl_power_mw": 1.5 * base["dl_power_mw"]}
    s = PROB.evaluate(inst, over)
    np.testing.assert_allclose(s.violation["dl_ap_power_mw"], 100.0, rtol=1e-9)  # binding AP at 300 mW
    assert not s.feasible.any()
    s = PROB.evaluate(inst, base)
    assert s.feasible.all() and np.all(s.metrics["max_ap_load"] == 10) and np.all(s.metrics["n_links"] == 160)
    assert np.all(s.objective == np.minimum(s.metrics["ul_min_se_bit_per_hz"], s.metrics["dl_min_se_bit_per_hz"]))


def test_permutation_equivariance_over_ues(k20):
    inst = k20[[0, 1, 2]]
    dec = um.maxmin_decision(inst, inst.dcc_clusters)
    dec["ul_power_mw"] = dec["ul_power_mw"] * np.linspace(0.5, 1.0, 20)        # break the equal-SINR symmetry
    perm = np.random.default_rng(0).permutation(20)
    arrays = dict(inst.arrays)
    for name in ("beta", "gamma", "dcc_clusters", "distance_m"):
        arrays[name] = inst.arrays[name][:, :, perm]
    for name in ("pilot", "master_ap", "ue_xy_m"):
        arrays[name] = inst.arrays[name][:, perm]
    permuted = _with(inst, **arrays)
    pdec = {"clusters": dec["clusters"][:, :, perm], "ul_power_mw": dec["ul_power_mw"][:, perm],
            "dl_power_mw": dec["dl_power_mw"][:, perm]}
    a, b = PROB.evaluate(inst, dec), PROB.evaluate(permuted, pdec)
    np.testing.assert_allclose(b.objective, a.objective, rtol=1e-12)
    np.testing.assert_allclose(b.metrics["ul_ue_se_bit_per_hz"], a.metrics["ul_ue_se_bit_per_hz"][:, perm], rtol=1e-12)
    np.testing.assert_allclose(b.metrics["dl_ue_se_bit_per_hz"], a.metrics["dl_ue_se_bit_per_hz"][:, perm], rtol=1e-12)
    again = um.maxmin_decision(permuted, permuted.dcc_clusters)                # solver interface too
    np.testing.assert_allclose(again["ul_power_mw"], um.maxmin_decision(inst, inst.dcc_clusters)["ul_power_mw"][:, perm],
                               rtol=1e-9)


def test_mmse_scenario_evaluates_the_decisions_clusters():
    inst = PROB.sample("mmse-tiny", 2, seed=0)
    dcc = um.maxmin_decision(inst, inst.dcc_clusters)
    s = PROB.evaluate(inst, dcc)
    assert s.feasible.all()
    t = PROB.performance(inst, dcc["clusters"], dcc["ul_power_mw"], dcc["dl_power_mw"])
    np.testing.assert_allclose(t["ul_sinr"], t["ul_sinr"][:, :1] * np.ones((1, 8)), rtol=1e-9)  # solver = judge
    np.testing.assert_array_equal(PROB.evaluate(inst, dcc).objective, s.objective)             # reproducible
    mr = _with(inst)
    mr.params = dataclasses.replace(inst.params, combiner="mr")
    assert not np.allclose(PROB.evaluate(mr, dcc).objective, s.objective)


# --- invalid decisions ----------------------------------------------------------------------------

@pytest.mark.parametrize("case,words", [
    ("fractional", ["'clusters' must be binary", "AP 2, UE 5", "0.5"]),
    ("transposed", ["'clusters' has shape (2, 8, 9)", "L APs, K UEs"]),
    ("ul_above", ["'ul_power_mw' must lie in [0, 100] mW", "UE 1", "120"]),
    ("ul_below", ["'ul_power_mw' must lie in", "-1"]),
    ("dl_below", ["'dl_power_mw' must be >= 0", "UE 4"]),
    ("nan", ["'dl_power_mw' has NaN or inf", "(0, 0)"]),
    ("missing", ["missing decision field 'ul_power_mw'"]),
    ("flat", ["'ul_power_mw' has shape (8,)"]),
    ("text", ["'clusters' is not numeric"]),
])
def test_invalid_decisions_get_a_clear_message(tiny, case, words):
    inst = tiny[[0, 1]]
    good = um.maxmin_decision(inst, inst.dcc_clusters)
    assert PROB.check_decision(inst, good) is None
    bad = {k: v.copy() for k, v in good.items()}
    if case == "fractional":
        bad["clusters"][1, 2, 5] = 0.5
    elif case == "transposed":
        bad["clusters"] = np.swapaxes(bad["clusters"], 1, 2)
    elif case == "ul_above":
        bad["ul_power_mw"][0, 1] = 120.0
    elif case == "ul_below":
        bad["ul_power_mw"][1, 0] = -1.0
    elif case == "dl_below":
        bad["dl_power_mw"][0, 4] = -0.5
    elif case == "nan":
        bad["dl_power_mw"][0, 0] = np.nan
    elif case == "missing":
        del bad["ul_power_mw"]
    elif case == "flat":
        bad["ul_power_mw"] = bad["ul_power_mw"][0]
    elif case == "text":
        bad["clusters"] = "dcc"
    reason = PROB.check_decision(inst, bad)
    assert reason is not None and "\n" not in reason
    for w in words:
        assert w in reason, (w, reason)
    # the generic field check agrees that it is invalid
    assert Uccf.__mro__[1].check_decision(PROB, inst, bad) is not None or case == "dl_below"


def test_an_invalid_decision_loses_nothing_else(tiny):
    inst = tiny[[0, 1, 2]]
    good = um.maxmin_decision(inst, inst.dcc_clusters)
    relaxed = {k: v[1:2].copy() for k, v in good.items()}
    relaxed["clusters"] = 0.5 * relaxed["clusters"]
    outcomes = [
        SolveOutcome("ok", decision={k: v[0:1] for k, v in good.items()}, latency_s=0.1),
        SolveOutcome("ok", decision=relaxed, latency_s=0.1),
        SolveOutcome("ok", decision={**{k: v[2:3] for k, v in good.items()}, "ul_power_mw": 2 * good["ul_power_mw"][2:3] + 1},
                     latency_s=0.1),
    ]
    rows = score_outcomes(PROB, inst, outcomes)
    assert list(rows["status"]) == ["ok", "invalid", "invalid"]
    assert "must be binary" in rows["message"][1] and "must lie in" in rows["message"][2]
    expected = PROB.evaluate(inst[[0]], {k: v[0:1] for k, v in good.items()}).objective[0]
    assert rows["objective"][0] == pytest.approx(expected) and np.isnan(rows["objective"][1])


# --- the conformance kit --------------------------------------------------------------------------

class _DccMaxMin(Solver):
    name = "dcc-maxmin-test"
    kind = "baseline"
    problems = ("uccf",)

    def solve(self, instances):
        return um.maxmin_decision(instances, instances.dcc_clusters)


def test_conformance_kit_with_a_closed_form_solver():
    from cfbench.testing import check_solver

    check_solver(_DccMaxMin, problem="uccf", scenario="tiny", n_instances=2)
    check_solver(_DccMaxMin, problem="uccf", scenario="mmse-tiny", n_instances=2)
