"""``dmimo`` problem: the spec's numbers, setup rules, evaluator, scenarios and the solver interface.

The closed-form SINR itself is checked against Monte Carlo in ``test_dmimo_closed_forms.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cfbench import CfbenchError, Instances, Solver
from cfbench.physics import linear_to_db
from cfbench.physics.association import greedy_pilot_assignment, lsf_fraction_association
from cfbench.physics.geometry import distances_3d_m
from cfbench.physics.large_scale import (
    correlated_shadowing_db,
    hata_cost231_intercept_db,
    three_slope_gain,
    three_slope_pathloss_db,
)
from cfbench.physics.units import noise_power_dbm
from cfbench.problems import dmimo_model as dm
from cfbench.problems.dmimo import SCENARIOS, Dmimo, parse_scenario, scenario_name
from cfbench.runner import SolveOutcome, score_outcomes

PROB = Dmimo()


@pytest.fixture(scope="module")
def default_batch() -> Instances:
    return PROB.sample("m60-t30", 6, seed=0)


@pytest.fixture(scope="module")
def small_batch() -> Instances:
    return PROB.sample("small", 8, seed=0)


def _full_power(instances: Instances) -> dict[str, np.ndarray]:
    """The spec's baseline: eta = 1 and the 95 % LSF initial association."""
    return {"eta": np.ones(instances.beta.shape[::2]),
            "d": lsf_fraction_association(instances.beta, 0.95)}


def _with(instances: Instances, **arrays) -> Instances:
    return dataclasses.replace(instances, arrays={**instances.arrays, **arrays})


# --- the spec's numbers (B.2, B.7) ------------------------------------------------------------

def test_pathloss_and_noise_match_the_spec():
    L = hata_cost231_intercept_db(1900.0, 15.0, 1.65)
    assert L == pytest.approx(140.715, abs=5e-4)
    assert three_slope_pathloss_db(100.0, L) == pytest.approx(-105.715, abs=1e-3)
    near = three_slope_pathloss_db(np.array([0.0, 1.0, 5.0, 10.0]), L)
    np.testing.assert_allclose(near, -81.1996, atol=1e-3)                    # constant below d0
    # continuous at d0 and d1, the three slopes 0 / 20 / 35 dB per decade
    for d in (10.0, 50.0):
        assert three_slope_pathloss_db(d * (1 + 1e-9), L) == pytest.approx(three_slope_pathloss_db(d, L), abs=1e-6)
    assert three_slope_pathloss_db(40.0, L) - three_slope_pathloss_db(20.0, L) == pytest.approx(-20 * np.log10(2))
    assert three_slope_pathloss_db(800.0, L) - three_slope_pathloss_db(400.0, L) == pytest.approx(-35 * np.log10(2))
    assert noise_power_dbm(20e6, 9.0, -173.975) == pytest.approx(-91.96, abs=5e-3)
    p = dm.DmimoScenario()
    assert p.noise_dbm == pytest.approx(-91.965, abs=1e-3) and p.pathloss_intercept_db == pytest.approx(140.715, abs=5e-4)
    assert p.pre_log == pytest.approx(0.4875)


def test_power_model_matches_the_spec_sanity_check():
    """B.7: P_fix = 153.5 W at M = 60, T = 30; 6.61 W per link; 30 links at full power and
    70 bit/s/Hz: 198 W links, 7.5 W PA, 1.1 W decoding, about 360 W and 3.9 Mbit/J."""
    p = dm.DmimoScenario()
    assert p.fixed_power_w == pytest.approx(153.5)
    assert p.link_power_w == pytest.approx(6.61)
    d = np.zeros((1, 60, 30))
    d[0, np.arange(30), np.arange(30)] = 1
    parts = dm.power_parts_w(p, np.ones((1, 30)), d, np.array([70.0]))
    assert parts["links_w"][0] == pytest.approx(198.3)
    assert parts["pa_w"][0] == pytest.approx(7.5)
    assert parts["decoding_w"][0] == pytest.approx(1.12)
    assert parts["total_w"][0] == pytest.approx(153.5 + 198.3 + 7.5 + 1.12)
    ee = dm.energy_efficiency_mbit_per_j(p, np.array([70.0]), parts["total_w"])
    assert ee[0] == pytest.approx(20e6 * 70 / 360.42 / 1e6, rel=1e-4) and 3.8 < ee[0] < 4.0
    # relaxed d: the link power is linear in sum d
    half = dm.power_parts_w(p, np.ones((1, 30)), 0.5 * d, np.array([70.0]))
    assert half["links_w"][0] == pytest.approx(99.15)


# --- setup rules ----------------------------------------------------------------------------------

def test_shadowing_only_beyond_d1():
    distance = np.array([5.0, 30.0, 50.0, 50.1, 400.0])
    shadow = np.full(5, 6.0)
    L = 140.715
    gain_db = linear_to_db(three_slope_gain(distance, L, 10.0, 50.0, shadow))
    np.testing.assert_allclose(gain_db - three_slope_pathloss_db(distance, L), [0, 0, 0, 6, 6], atol=1e-9)
    # in drawn setups: exact path loss within d1, about 8 dB spread beyond
    p = SCENARIOS["m60-t30"]
    inst = PROB.sample("m60-t30", 20, seed=3)
    excess_db = linear_to_db(inst.beta * p.noise_mw) - three_slope_pathloss_db(inst.distance_m, p.pathloss_intercept_db)
    near = inst.distance_m <= p.d1_m
    assert near.sum() > 10
    np.testing.assert_allclose(excess_db[near], 0.0, atol=1e-9)
    assert np.std(excess_db[~near]) == pytest.approx(8.0, rel=0.03)


def test_wrap_around_distances():
    inst = PROB.sample("small", 3, seed=1)
    side = SCENARIOS["small"].side_m
    for k in range(3):
        ap, ue = inst.ap_xy_m[k], inst.ue_xy_m[k]
        shifts = [np.array([dx, dy]) * side for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        brute = np.min([np.linalg.norm(ap[:, None, :] - (ue[None, :, :] + s), axis=-1) for s in shifts], axis=0)
        np.testing.assert_allclose(inst.distance_m[k], brute, rtol=1e-12)
    assert inst.distance_m.max() <= side / np.sqrt(2) + 1e-9
    # the torus matters: a point near the left edge is close to one near the right edge
    assert distances_3d_m(np.array([[5.0, 500.0]]), np.array([[995.0, 500.0]]), 0.0, 1000.0)[0, 0] == pytest.approx(10)


def test_pilot_assignment_is_the_greedy_master_ap_rule(default_batch):
    for k in range(len(default_batch)):
        beta, pilot = default_batch.beta[k], default_batch.pilot[k]
        np.testing.assert_array_equal(pilot[:5], np.arange(5))                 # first L_p distinct
        np.testing.assert_array_equal(pilot, greedy_pilot_assignment(beta, np.ones(30), 5))
        # spec A.3 step 2, re-derived: each later UE takes the least loaded pilot at its master AP
        received = np.zeros((60, 5))
        for t in range(30):
            if t >= 5:
                assert pilot[t] == np.argmin(received[np.argmax(beta[:, t])])
            received[:, pilot[t]] += beta[:, t]


def test_estimation_quality_formula():
    beta = np.array([[2.0, 1.0, 4.0]])
    pilot = np.array([0, 1, 0])
    gamma = dm.estimate_quality(beta, pilot, 500.0)
    expected = [500 * 4 / (500 * 6 + 1), 500 * 1 / (500 * 1 + 1), 500 * 16 / (500 * 6 + 1)]
    np.testing.assert_allclose(gamma[0], expected, rtol=1e-14)


def test_pfzf_grouping_rules_on_hand_examples():
    # shares 0.5, 0.8, 0.9, 0.95, 1.0: UEs 0 and 1 chosen (the third would exceed 0.85);
    # closure adds UE 3 (pilot 0) and UE 4 (pilot 1); tau_S = 2 distinct pilots
    beta = np.array([[5.0, 3.0, 1.0, 0.5, 0.5]])
    pilot = np.array([0, 1, 2, 0, 1])
    strong, tau = dm.pfzf_strong_sets(beta, pilot, n_pilots=3, n_antennas=8)
    np.testing.assert_array_equal(strong[0], [True, True, False, True, True])
    assert tau[0] == 2
    # a share of exactly 0.85 is still in; the strongest UE always is, even above 0.85
    strong, tau = dm.pfzf_strong_sets(np.array([[8.5, 1.0, 0.5]]), np.array([0, 1, 2]), 3, 8)
    np.testing.assert_array_equal(strong[0], [True, False, False])
    strong, _ = dm.pfzf_strong_sets(np.array([[6.0, 2.5, 1.5]]), np.array([0, 1, 2]), 3, 8)
    np.testing.assert_array_equal(strong[0], [True, True, False])           # 0.6, 0.85 in; 1.0 out
    # A - tau_S >= 1 [CHOSEN]: with A = 2 only the strongest pilot stays strong
    strong, tau = dm.pfzf_strong_sets(beta, pilot, n_pilots=3, n_antennas=2)
    np.testing.assert_array_equal(strong[0], [True, False, False, True, False])
    assert tau[0] == 1


def test_pfzf_grouping_rules_on_drawn_setups(default_batch):
    for k in range(len(default_batch)):
        beta, pilot = default_batch.beta[k], default_batch.pilot[k]
        strong = default_batch.strong[k].astype(bool)
        tau = default_batch.n_strong_pilots[k]
        for m in range(60):
            order = np.argsort(-beta[m])
            share = np.cumsum(beta[m, order]) / beta[m].sum()
            chosen = order[(share <= 0.85) | (np.arange(30) == 0)]
            assert strong[m, order[0]]                                         # strongest always in
            assert strong[m, chosen].all()
            assert set(np.flatnonzero(strong[m])) == set(np.flatnonzero(np.isin(pilot, pilot[chosen])))
            assert tau[m] == len(set(pilot[strong[m]])) and 1 <= tau[m] <= min(5, 8 - 1)
    assert 0.0 < default_batch.strong.mean() < 1.0


def test_correlated_shadowing_option():
    rng = np.random.default_rng(0)
    ap = rng.uniform(0, 1000, (40, 2))
    ue = rng.uniform(0, 1000, (30, 2))
    draws = np.stack([correlated_shadowing_db(rng, ap, ue, 8.0, 0.5, 100.0, 1000.0) for _ in range(400)])
    assert draws.std() == pytest.approx(8.0, rel=0.05)
    # links of one AP share its component: correlation delta + (1 - delta) corr(b) >= 0.5
    z = draws.reshape(400, -1)
    corr_same_ap = np.corrcoef(draws[:, 0, 0], draws[:, 0, 1])[0, 1]
    assert corr_same_ap > 0.4
    assert abs(np.corrcoef(z[:, 0], z[:, -1])[0, 1]) < 0.35                   # different AP and UE
    inst = PROB.sample("m60-t30-shcorr", 2, seed=0)
    assert inst.params.shadowing == "correlated" and np.all(np.isfinite(inst.beta))


# --- scenarios ------------------------------------------------------------------------------------

def test_named_scenarios_and_grammar():
    assert PROB.default_scenario == "m60-t30"
    d = PROB.scenario_params("m60-t30")
    assert (d.n_aps, d.n_ues, d.se_qos_bit_per_hz, d.interference, d.p_u_mw) == (60, 30, 60.0, "corrected", 100.0)
    paper = PROB.scenario_params("m60-t30-paper")
    assert (paper.se_qos_bit_per_hz, paper.interference) == (70.0, "paper")
    small = PROB.scenario_params("small")
    assert (small.n_aps, small.n_ues) == (20, 10)
    # every figure's sweep has named points
    for name in ("m30-t30-se55", "m110-t30-se100", "m60-t80-se85", "m60-t30-se40-pu10", "m60-t30-se100-pu500",
                 "m120-t70-se70", "m90-t50-se100"):
        assert name in SCENARIOS, name
    # any value parses, named or not; tokens in the grammar's order
    q = PROB.scenario_params("m45-t25-se62.5-pu150-minse0.5-shcorr-paper")
    assert (q.n_aps, q.n_ues, q.se_qos_bit_per_hz, q.p_u_mw, q.min_ue_se_bit_per_hz, q.shadowing, q.interference) \
        == (45, 25, 62.5, 150.0, 0.5, "correlated", "paper")
    assert PROB.scenario_params("m40-t30-paper").se_qos_bit_per_hz == 70.0
    assert scenario_name(60, 30, 70, 200, paper=True) == "m60-t30-se70-pu200-paper" == \
        scenario_name(60, 30, 70.0, 200.0, paper=True)
    for name, params in SCENARIOS.items():
        if name != "small":
            assert dataclasses.replace(parse_scenario(name), description="") == \
                dataclasses.replace(params, description="")
    assert PROB.decision_fields("m45-t25")[1].shape == (45, 25)


@pytest.mark.parametrize("bad", ["m60", "m60-t30-se", "m60-t30-paper-se70", "M60-t30", "m0-t30", "tiny", ""])
def test_bad_scenario_names_are_one_line_errors(bad):
    with pytest.raises(CfbenchError) as err:
        PROB.scenario_params(bad)
    message = str(err.value)
    assert "\n" not in message and "m<M>-t<T>" in message


# --- the evaluator --------------------------------------------------------------------------------

def test_evaluator_matches_hand_computation():
    """One AP (A = 8), two UEs on two pilots, UE 0 strong (tau_S = 1) and UE 1 weak; the
    gamma values are set by hand (only the algebra of B.5 and B.7 is checked here)."""
    p = dataclasses.replace(SCENARIOS["small"], n_aps=1, n_ues=2, se_qos_bit_per_hz=0.0)
    beta = np.array([[[4.0, 1.0]]])
    gamma = np.array([[[3.0, 0.5]]])
    inst = Instances("dmimo", "x", 0, np.arange(1), {
        "beta": beta, "gamma": gamma, "pilot": np.array([[0, 1]]), "strong": np.array([[[1.0, 0.0]]]),
        "n_strong_pilots": np.array([[1]])}, p)
    eta = np.array([[0.5, 1.0]])
    d = np.array([[[1.0, 1.0]]])
    score = PROB.evaluate(inst, {"eta": eta, "d": d})
    p0, p1 = 0.5 * p.p_u_mw, p.p_u_mw
    n0 = 3.0 / 7.0                                      # gamma / (A - tau_S)
    sinr0 = p0 * 3.0 ** 2 / (n0 * (1 + p0 * (4 - 3) + p1 * 1))     # corrected: weak UE 1 counts beta fully
    n1 = 8 * 0.5
    sinr1 = p1 * (8 * 0.5) ** 2 / (n1 * (1 + p0 * 4 + p1 * 1))
    se = p.pre_log * np.log2(1 + np.array([sinr0, sinr1]))
    np.testing.assert_allclose(score.metrics["ue_se_bit_per_hz"][0], se, rtol=1e-12)
    total = p.fixed_power_w + 1.5 * p.p_u_mw * 1e-3 / 0.4 + 2 * p.link_power_w + 20e6 * 0.8e-9 * se.sum()
    assert score.metrics["total_power_w"][0] == pytest.approx(total, rel=1e-12)
    assert score.objective[0] == pytest.approx(20e6 * se.sum() / total / 1e6, rel=1e-12)
    # the printed eq. (8) subtracts gamma_mi for the weak interferer too
    paper = PROB.evaluate(dataclasses.replace(inst, params=dataclasses.replace(p, interference="paper")),
                          {"eta": eta, "d": d})
    sinr0_paper = p0 * 9.0 / (n0 * (1 + p0 * (4 - 3) + p1 * (1 - 0.5)))
    assert paper.metrics["ue_se_bit_per_hz"][0, 0] == pytest.approx(p.pre_log * np.log2(1 + sinr0_paper))
    assert paper.metrics["ue_se_bit_per_hz"][0, 1] == pytest.approx(se[1])


def test_violations_metrics_and_feasibility(small_batch):
    inst = small_batch
    dec = _full_power(inst)
    base = PROB.evaluate(inst, dec)
    se = base.metrics["sum_se_bit_per_hz"]
    np.testing.assert_allclose(base.violation["sum_se_bit_per_hz"], np.maximum(14.0 - se, 0))
    np.testing.assert_array_equal(base.feasible, se >= 14.0)
    assert base.feasible.any() and np.all(base.violation["unserved_ues"] == 0)
    assert np.all(base.metrics["n_links"] >= 10) and np.all(base.metrics["n_silent"] == 0)
    # parts add up; the decoding power is in the EE denominator
    m = base.metrics
    np.testing.assert_allclose(m["fixed_power_w"] + m["link_power_w"] + m["pa_power_w"] + m["decoding_power_w"],
                               m["total_power_w"], rtol=1e-12)
    np.testing.assert_allclose(base.objective, 20e6 * se / m["total_power_w"] / 1e6, rtol=1e-12)
    # UE 3 switched off (still associated) is silent, not unserved; dropping all its links is unserved
    eta = dec["eta"].copy()
    eta[:, 3] = 0.0
    off = PROB.evaluate(inst, {"eta": eta, "d": dec["d"]})
    assert np.all(off.metrics["n_silent"] == 1) and np.all(off.violation["unserved_ues"] == 0)
    d = dec["d"].copy()
    d[:, :, 3] = 0.0
    d[:, :, 5] = 0.0
    dropped = PROB.evaluate(inst, {"eta": dec["eta"], "d": d})
    np.testing.assert_array_equal(dropped.violation["unserved_ues"], 2.0)
    assert not dropped.feasible.any() and np.all(np.isfinite(dropped.objective))
    assert np.all(dropped.metrics["ue_se_bit_per_hz"][:, [3, 5]] == 0)
    # the optional per-UE floor
    floor = dataclasses.replace(inst.params, min_ue_se_bit_per_hz=0.5, se_qos_bit_per_hz=0.0)
    floored = PROB.evaluate(dataclasses.replace(inst, params=floor), {"eta": eta, "d": dec["d"]})
    np.testing.assert_allclose(floored.violation["min_ue_se_bit_per_hz"], 0.5)
    assert not floored.feasible.any()
    assert np.all(base.violation["min_ue_se_bit_per_hz"] == 0)


def test_corrected_interference_lowers_sum_se_on_the_default_scenario(default_batch):
    dec = _full_power(default_batch)
    corrected = PROB.evaluate(default_batch, dec)
    paper = PROB.evaluate(dataclasses.replace(default_batch, params=SCENARIOS["m60-t30-paper"]), dec)
    gap = paper.metrics["sum_se_bit_per_hz"] - corrected.metrics["sum_se_bit_per_hz"]
    assert np.all(gap > 0.05 * corrected.metrics["sum_se_bit_per_hz"])
    assert np.all(paper.objective > corrected.objective)
    x_c = dm.coefficients(default_batch[[0]], "corrected").interference_per_link()
    x_p = dm.coefficients(default_batch[[0]], "paper").interference_per_link()
    strong = default_batch.strong[0].astype(bool)
    differs = strong[:, :, None] & ~strong[:, None, :]
    assert differs.any()
    np.testing.assert_array_equal(x_c[0][~differs], x_p[0][~differs])
    assert np.all(x_c[0][differs] > x_p[0][differs])


def test_permutation_equivariance_over_ues_and_aps(default_batch):
    inst = default_batch
    rng = np.random.default_rng(7)
    eta = rng.uniform(0.2, 1.0, (len(inst), 30))
    d = lsf_fraction_association(inst.beta, 0.6)
    base = PROB.evaluate(inst, {"eta": eta, "d": d})
    ue, ap = rng.permutation(30), rng.permutation(60)
    a = inst.arrays
    moved = _with(inst, beta=a["beta"][:, ap][:, :, ue], gamma=a["gamma"][:, ap][:, :, ue],
                  strong=a["strong"][:, ap][:, :, ue], pilot=a["pilot"][:, ue],
                  n_strong_pilots=a["n_strong_pilots"][:, ap])
    score = PROB.evaluate(moved, {"eta": eta[:, ue], "d": d[:, ap][:, :, ue]})
    np.testing.assert_allclose(score.metrics["ue_se_bit_per_hz"], base.metrics["ue_se_bit_per_hz"][:, ue], rtol=1e-10)
    np.testing.assert_allclose(score.objective, base.objective, rtol=1e-12)
    # the setup's derived arrays are equivariant too (grouping, estimation quality)
    strong, tau = dm.pfzf_strong_sets(moved.beta, moved.pilot, 5, 8)
    np.testing.assert_array_equal(strong, moved.strong.astype(bool))
    np.testing.assert_array_equal(tau, moved.n_strong_pilots)
    np.testing.assert_allclose(dm.estimate_quality(moved.beta, moved.pilot, 500.0), moved.gamma, rtol=1e-12)
    # a decision not permuted with the instance scores differently (the test can fail)
    wrong = PROB.evaluate(moved, {"eta": eta, "d": d[:, ap][:, :, ue]})
    assert not np.allclose(wrong.metrics["ue_se_bit_per_hz"], base.metrics["ue_se_bit_per_hz"][:, ue])


# --- the solver interface -------------------------------------------------------------------------

def test_solver_interface_agrees_with_itself(default_batch):
    """sinr(), the explicit x_mti, the fixed-association form and candidate axes give one SINR."""
    inst = default_batch
    c = dm.coefficients(inst)
    rng = np.random.default_rng(1)
    eta = rng.uniform(0, 1, (len(inst), 30))
    d = rng.uniform(0, 1, (len(inst), 60, 30)) * (rng.uniform(size=(len(inst), 60, 30)) < 0.2)
    d[:, 0, :] = 0.3                                                          # everyone served
    gamma_sinr = dm.sinr(c, eta, d)
    # explicit per-link formula of the brief
    p = eta * c.p_u_mw
    x = c.interference_per_link()
    s = c.signal
    ds = p * np.sum(d * s, axis=1) ** 2
    coherent = np.einsum("nmt,nmi->nti", d * s / c.beta, c.beta)
    pc = np.sum(c.copilot * p[:, None, :] * coherent ** 2, axis=2)
    rest = np.einsum("nmt,nmt->nt", d ** 2, c.noise) + np.einsum("nmt,nmti,ni->nt", d ** 2, x, p)
    np.testing.assert_allclose(gamma_sinr, ds / (pc + rest), rtol=1e-10)
    # fixed association: Gamma = a p / (B p + c)
    a, B, cn = c.fixed_association_form(d)
    np.testing.assert_allclose(gamma_sinr, a * p / (np.einsum("nti,ni->nt", B, p) + cn), rtol=1e-10)
    # candidate axis: (n, S, M, T) with eta (n, T), and (n, S, T) with d (n, M, T)
    stacked = dm.sinr(c, eta, np.stack([d, 0.5 * d, d], axis=1))
    np.testing.assert_allclose(stacked[:, 0], gamma_sinr, rtol=1e-12)
    np.testing.assert_allclose(stacked[:, 1], dm.sinr(c, eta, 0.5 * d), rtol=1e-12)
    stacked = dm.sinr(c, np.stack([eta, 1 - eta], axis=1), d)
    np.testing.assert_allclose(stacked[:, 1], dm.sinr(c, 1 - eta, d), rtol=1e-12)
    # SINR is invariant to a common scaling of one UE's weights (LSFD reading of relaxed d)
    scaled = d.copy()
    scaled[:, :, 4] *= 0.37
    np.testing.assert_allclose(dm.sinr(c, eta, scaled), gamma_sinr, rtol=1e-10)
    # the evaluator goes through the same function
    binary = lsf_fraction_association(inst.beta, 0.95)
    perf = dm.performance(inst.params, c, eta, binary)
    score = PROB.evaluate(inst, {"eta": eta, "d": binary})
    np.testing.assert_allclose(score.metrics["ue_se_bit_per_hz"], perf["ue_se_bit_per_hz"], rtol=0)
    np.testing.assert_allclose(score.objective, perf["ee_mbit_per_j"], rtol=0)


# --- invalid decisions ------------------------------------------------------------------------------

@pytest.mark.parametrize("case, words", [
    ("fractional_d", ["'d' must be binary", "AP 2, UE 5", "0.5"]),
    ("transposed_d", ["'d' has shape (2, 10, 20)", "expected (2, 20, 10)"]),
    ("eta_above", ["'eta' must lie in [0, 1]", "UE 1", "1.2"]),
    ("eta_below", ["'eta' must lie in [0, 1]", "-0.1"]),
    ("nan_eta", ["'eta' has NaN"]),
    ("inf_d", ["'d' has NaN or inf"]),
    ("missing_d", ["missing decision field 'd'"]),
    ("flat_eta", ["'eta' has shape (10,)"]),
    ("text", ["'eta' is not numeric"]),
])
def test_invalid_decisions_get_a_clear_message(small_batch, case, words):
    inst = small_batch[[0, 1]]
    good = _full_power(inst)
    assert PROB.check_decision(inst, good) is None
    bad = {k: v.copy() for k, v in good.items()}
    if case == "fractional_d":
        bad["d"][1, 2, 5] = 0.5
    elif case == "transposed_d":
        bad["d"] = np.swapaxes(bad["d"], 1, 2)
    elif case == "eta_above":
        bad["eta"][0, 1] = 1.2
    elif case == "eta_below":
        bad["eta"][1, 0] = -0.1
    elif case == "nan_eta":
        bad["eta"][0, 0] = np.nan
    elif case == "inf_d":
        bad["d"][0, 0, 0] = np.inf
    elif case == "missing_d":
        del bad["d"]
    elif case == "flat_eta":
        bad["eta"] = bad["eta"][0]
    elif case == "text":
        bad["eta"] = "full"
    reason = PROB.check_decision(inst, bad)
    assert reason is not None and "\n" not in reason
    for w in words:
        assert w in reason, (w, reason)


def test_an_invalid_decision_loses_nothing_else(small_batch):
    """The runner's scoring step: a non-binary association is ``invalid`` with the problem's
    message; the other rows of the unit are scored as usual."""
    inst = small_batch[[0, 1, 2]]
    good = _full_power(inst)
    relaxed = {"eta": good["eta"][1:2], "d": 0.5 * good["d"][1:2]}
    outcomes = [
        SolveOutcome("ok", decision={k: v[0:1] for k, v in good.items()}, latency_s=0.1),
        SolveOutcome("ok", decision=relaxed, latency_s=0.1),
        SolveOutcome("ok", decision={"eta": 2 * good["eta"][2:3], "d": good["d"][2:3]}, latency_s=0.1),
    ]
    rows = score_outcomes(PROB, inst, outcomes)
    assert list(rows["status"]) == ["ok", "invalid", "invalid"]
    assert "must be binary" in rows["message"][1] and "must lie in [0, 1]" in rows["message"][2]
    expected = PROB.evaluate(inst[[0]], {k: v[0:1] for k, v in good.items()}).objective[0]
    assert rows["objective"][0] == pytest.approx(expected) and np.isnan(rows["objective"][1])


# --- sampling and the conformance kit ------------------------------------------------------------

def test_sampling_is_pinned_and_prefix_stable():
    inst = PROB.sample("small", 2, seed=0)
    again = PROB.sample("small", 1, seed=0)
    np.testing.assert_array_equal(inst.beta[:1], again.beta)
    assert inst.beta.shape == (2, 20, 10) and inst.pilot.shape == (2, 10) and inst.n_strong_pilots.shape == (2, 20)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 0])))
    np.testing.assert_allclose(inst.ap_xy_m[0, 0], rng.uniform(size=2) * 1000.0, rtol=1e-15)


class _FullPower95(Solver):
    name = "full-power-95-test"
    kind = "baseline"
    problems = ("dmimo",)

    def solve(self, instances):
        return _full_power(instances)


def test_conformance_kit_with_a_baseline():
    from cfbench.testing import check_solver

    check_solver(_FullPower95, problem="dmimo", scenario="small", n_instances=2)
