"""``urllc`` problem: scenarios, sampling, and the evaluator against urllc_model by hand.

The closed forms themselves (UatF moments, FBL) are checked against Monte Carlo
in test_urllc_closed_forms.py and test_physics_fbl.py; here the problem module
is checked to assemble them as eqs. (7)-(12) say.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cfbench import Instances
from cfbench.physics import fbl
from cfbench.problems import urllc as u
from cfbench.problems import urllc_model as um

PROBLEM = u.Urllc()


def _instances(arrays: dict, scenario: str = "tiny", params=None) -> Instances:
    n = len(next(iter(arrays.values())))
    return Instances("urllc", scenario, 0, np.arange(n), arrays, params or u.SCENARIOS[scenario])


# --- scenarios --------------------------------------------------------------------------

def test_scenarios_follow_table_i_and_the_spec():
    s = u.SCENARIOS
    assert [f"k{k}" for k in (10, 20, 30, 40, 50, 60)] == [n for n in s if n.startswith("k")]
    assert {n for n in s if n.startswith("alpha")} == {f"alpha{a:g}" for a in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)}
    assert {n for n in s if n.startswith("stress")} == {"stress-k20", "stress-k40", "stress-k60"}
    assert PROBLEM.default_scenario in s and PROBLEM.paper_iterative_solver == "sca"
    k50 = s["k50"]
    table_i = dict(n_aps=64, n_antennas=16, bandwidth_hz=10e6, bits_per_packet=32, n_pilot=64, n_data=2000,
                   delay_qos_s=0.5e-3, eps_qos=1e-5, p_min_w=0.001, p_max_w=1.0, carrier_ghz=1.9,
                   aerial_fraction=0.5, pathloss_intercept_db=-30.5, pathloss_exponent=3.76, shadowing_std_db=8.0)
    assert {k: getattr(k50, k) for k in table_i} == table_i
    # spec: rho = 10, heights 10 / 1.5 / 30 m, mu = 2.5, sigma = 0.2 W, NF 9 dB over -174 dBm/Hz
    assert (k50.rician_factor, k50.ap_height_m, k50.gt_height_m, k50.at_height_m) == (10.0, 10.0, 1.5, 30.0)
    assert (k50.amplifier_inefficiency, k50.static_power_w) == (2.5, 0.2)
    assert 10 * np.log10(k50.noise_w) + 30 == pytest.approx(-174 + 70 + 9)
    for name, p in s.items():
        assert p.alpha_g == p.alpha_a  # the paper sets alpha_g = alpha_a = alpha
        assert p.bounds is not None
        if name.startswith("k"):
            assert p.alpha_g == 0.25 and p.n_terminals == int(name[1:])
        if name.startswith("alpha"):
            assert p.n_terminals == 50 and p.alpha_g == float(name[5:]) and p.bounds == s["k50"].bounds
        if name.startswith("stress"):
            assert (p.n_aps, p.n_antennas, p.n_terminals) == (16, 4, int(name[8:]))
    field, = PROBLEM.decision_fields("k30")
    assert (field.name, field.shape, field.lower, field.upper) == ("power_w", (30,), 0.001, 1.0)


def test_sinr_threshold_and_delay():
    p = u.SCENARIOS["k10"]
    assert p.sinr_threshold == pytest.approx(0.037, abs=5e-4)  # spec: about 0.037 (-14.3 dB)
    eps = um.terminal_error_probability(p.sinr_threshold * np.array([0.999, 1.0, 1.001]), p.n_data, p.bits_per_packet)
    assert eps[0] > p.eps_qos and eps[1] == pytest.approx(p.eps_qos, rel=1e-6) and eps[2] < p.eps_qos
    assert p.end_to_end_delay_s == pytest.approx(0.2064e-3)


# --- sampling ---------------------------------------------------------------------------

def test_sampling_is_reproducible_and_prefix_stable():
    a = PROBLEM.sample("tiny", 3, seed=5)
    b = PROBLEM.sample("tiny", 2, seed=5)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k][:2], b.arrays[k])
    c = PROBLEM.sample("tiny", 3, seed=6)
    assert not np.allclose(a.beta, c.beta)
    assert a.beta.shape == (3, 4, 4) and a.channel_estimate.shape == (3, 4, 4, 2)
    assert a.channel_estimate.dtype == np.complex64
    np.testing.assert_array_equal(a.aerial[0], [False, False, True, True])
    np.testing.assert_array_equal(a.rician_factor[0], [0.0, 0.0, 10.0, 10.0])
    # pin values so a change of the sampler (and of every published table) is noticed
    first = PROBLEM.sample("k10", 1, seed=0)
    assert first.terminal_xy_m.shape == (1, 10, 2) and first.ap_xy_m.shape == (1, 64, 2)
    np.testing.assert_allclose(first.terminal_xy_m[0, 0], [124.55470584, 288.33075701], rtol=1e-9)
    assert first.beta[0, 0, 0] == pytest.approx(0.09406407914975197, rel=1e-9)


def test_lsf_follows_eq_20_with_3d_distances():
    """Recover the shadowing Psi from the stored geometry: N(0, 8^2) i.i.d. (eq. 20).

    20 instances x 64 APs x 10 terminals = 12 800 samples: the SE of the mean is
    0.07 dB and of the std about 0.05 dB; tolerances 0.35 dB (5 SE)."""
    inst = PROBLEM.sample("k10", 20, seed=1)
    p = inst.params
    height = np.where(inst.aerial, p.at_height_m, p.gt_height_m)  # (n, K)
    horizontal = np.linalg.norm(inst.ap_xy_m[:, :, None, :] - inst.terminal_xy_m[:, None, :, :], axis=-1)
    d = np.sqrt(horizontal ** 2 + (p.ap_height_m - height[:, None, :]) ** 2)
    psi_db = 10 * np.log10(inst.beta * p.noise_w) + 30.5 + 37.6 * np.log10(d)
    assert abs(psi_db.mean()) < 0.35 and abs(psi_db.std() - 8.0) < 0.35
    assert np.all(inst.terminal_xy_m >= 0) and np.all(inst.terminal_xy_m <= p.side_m)


def test_channel_estimate_is_ls_estimate_of_the_eq_1_2_channel():
    """E|H_hat_mkl|^2 = beta_mk + 1/(n_p p_csi) per entry (eq. 4), for GTs and ATs.

    Normalised by that variance, each entry has mean 1 and std 1 (Rayleigh plus
    Gaussian error: exponential) or less (Rician); 8 instances x 64 x 5 x 16 =
    40 960 entries per type, SE 0.005, tolerance 0.03."""
    inst = PROBLEM.sample("k10", 8, seed=2)
    p = inst.params
    variance = inst.beta + 1.0 / (p.n_pilot * p.p_max_w)
    ratio = np.abs(inst.channel_estimate.astype(complex)) ** 2 / variance[..., None]
    for aerial in (False, True):
        mask = np.broadcast_to((inst.aerial == aerial)[:, None, :, None], ratio.shape)
        assert abs(ratio[mask].mean() - 1.0) < 0.03
    # ATs' constant-modulus LoS part makes |H|^2 fluctuate less than the Rayleigh GTs'
    gt = ratio[np.broadcast_to(~inst.aerial[:, None, :, None], ratio.shape)]
    at = ratio[np.broadcast_to(inst.aerial[:, None, :, None], ratio.shape)]
    assert abs(gt.std() - 1.0) < 0.03 and at.std() < 0.75


# --- the SINR regrouped by powers -----------------------------------------------------------

def test_sinr_coefficients_equal_the_uatf_closed_form():
    inst = PROBLEM.sample("stress-k20", 3, seed=3)
    p = inst.params
    rng = np.random.default_rng(0)
    power = np.exp(rng.uniform(np.log(1e-3), 0.0, size=(3, 5, 20)))  # (n, S candidates, K)
    coefficients = u.SinrCoefficients.from_instances(inst)
    direct = um.uatf_sinr(inst.beta[:, None], inst.rician_factor[:, None], power, p.n_antennas, p.n_pilot)
    np.testing.assert_allclose(coefficients.sinr(power), direct, rtol=1e-11)
    np.testing.assert_allclose(coefficients.sinr(power[:, 0]), direct[:, 0], rtol=1e-11)  # no candidate axis
    one = u.SinrCoefficients.from_lsf(inst.beta[1], inst.rician_factor[1], p.n_antennas, p.n_pilot)
    np.testing.assert_allclose(one.sinr(power[1]), direct[1], rtol=1e-11)
    # a wrong pilot length is caught
    wrong = u.SinrCoefficients.from_lsf(inst.beta[1], inst.rician_factor[1], p.n_antennas, 2 * p.n_pilot)
    assert not np.allclose(wrong.sinr(power[1]), direct[1], rtol=1e-3)


@pytest.mark.parametrize("scenario", ["k50", "stress-k60", "alpha0.4"])
def test_sinr_factors_equal_the_uatf_closed_form(scenario):
    """The evaluator's O(M K) regrouping (no K x K matrices) against the moments and against
    the coefficients, over powers spanning p_min..p_max (a terminal's own term dominates its
    nearest APs' received power, where the subtraction loses digits)."""
    inst = PROBLEM.sample(scenario, 6, seed=21)
    p = inst.params
    power = np.exp(np.random.default_rng(1).uniform(np.log(p.p_min_w), np.log(p.p_max_w), inst.beta.shape[::2]))
    direct = um.uatf_sinr(inst.beta, inst.rician_factor, power, p.n_antennas, p.n_pilot)
    factors = u.SinrFactors.from_instances(inst)
    np.testing.assert_allclose(factors.sinr(power), direct, rtol=1e-12)
    np.testing.assert_allclose(factors.sinr(power), u.SinrCoefficients.from_instances(inst).sinr(power), rtol=1e-12)
    one = u.SinrFactors.from_lsf(inst.beta[2], inst.rician_factor[2], p.n_antennas, p.n_pilot)
    np.testing.assert_allclose(one.sinr(power[2]), direct[2], rtol=1e-12)
    wrong = u.SinrFactors.from_lsf(inst.beta, inst.rician_factor, 2 * p.n_antennas, p.n_pilot)
    assert not np.allclose(wrong.sinr(power), direct, rtol=1e-3)


def test_reliability_verdict_is_remembered_per_instance_not_per_batch(monkeypatch):
    """n_unreachable_eps is computed once per instance (the judge's cache), whatever batch it
    comes in, and a changed instance is not mistaken for a remembered one."""
    inst = PROBLEM.sample("stress-k40", 5, seed=4)
    calls = []
    real = u.Urllc._unreachable_terminals
    monkeypatch.setattr(u.Urllc, "_unreachable_terminals",
                        lambda self, x: calls.append(len(x)) or real(self, x))
    seen_arrays = []
    monkeypatch.setattr(u.Urllc, "_unreachable_terminals",
                        lambda self, x, f=u.Urllc._unreachable_terminals: seen_arrays.append(set(x.arrays)) or f(self, x))
    monkeypatch.setattr(u, "_UNREACHABLE_CACHE", type(u._UNREACHABLE_CACHE)())
    batch = PROBLEM.unreachable_terminals(inst)
    single = [PROBLEM.unreachable_terminals(inst[np.array([i])])[0] for i in range(5)]
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_array_equal(batch, real(PROBLEM, inst))
    assert calls == [5]
    weaker = dataclasses.replace(inst, arrays={**inst.arrays, "beta": inst.beta * 1e-3})   # same seed and index
    assert np.sum(PROBLEM.unreachable_terminals(weaker)) > np.sum(batch)
    assert calls == [5, 5]
    # the verdict is computed from the large-scale fading alone: no copy of the channel estimates
    assert seen_arrays and all(a == set(u.LSF_ARRAYS) for a in seen_arrays)


# --- the evaluator ----------------------------------------------------------------------

def test_evaluator_matches_hand_computation_on_tiny():
    inst = PROBLEM.sample("tiny", 2, seed=11)
    p = inst.params
    power = np.array([[0.002, 0.5, 0.03, 0.9], [1.0, 0.001, 0.2, 0.01]])
    score = PROBLEM.evaluate(inst, {"power_w": power})
    b = p.bounds
    for j in range(2):
        sinr = um.uatf_sinr(inst.beta[j], inst.rician_factor[j], power[j], 2, 64)
        eps = fbl.q_function((np.log2(1 + sinr) - 32 / 2000) / np.sqrt(fbl.channel_dispersion_bits2(sinr) / 2000))
        rate = np.maximum(np.log2(1 + sinr) - np.sqrt(fbl.channel_dispersion_bits2(sinr) / 2000) * fbl.q_inverse(1e-5), 0)
        se_g, se_a = rate[:2].mean(), rate[2:].mean()  # GTs first
        ee_g = 10e6 * rate[:2].sum() / np.sum(2.5 * power[j, :2] + 0.2)
        ee_a = 10e6 * rate[2:].sum() / np.sum(2.5 * power[j, 2:] + 0.2)
        omega = (0.25 * (se_g - b.se_g_min) / (b.se_g_max - b.se_g_min)
                 + 0.25 * (ee_g - b.ee_g_min) / (b.ee_g_max - b.ee_g_min)
                 + 0.25 * (se_a - b.se_a_min) / (b.se_a_max - b.se_a_min)
                 + 0.25 * (ee_a - b.ee_a_min) / (b.ee_a_max - b.ee_a_min))
        assert score.objective[j] == pytest.approx(omega, rel=1e-10)
        m = score.metrics
        assert (m["se_g"][j], m["se_a"][j]) == (pytest.approx(se_g, rel=1e-10), pytest.approx(se_a, rel=1e-10))
        assert (m["ee_g_kbit_per_j"][j], m["ee_a_kbit_per_j"][j]) == (pytest.approx(1e-3 * ee_g, rel=1e-10),
                                                                     pytest.approx(1e-3 * ee_a, rel=1e-10))
        assert m["worst_eps"][j] == pytest.approx(eps.max(), rel=1e-8)
        assert m["n_violating_eps"][j] == np.sum(eps > 1e-5)
        excess = max(np.log10(eps.max()) - np.log10(1e-5), 0.0)
        assert score.violation["error_probability_decades"][j] == pytest.approx(excess, abs=1e-9)
        assert score.feasible[j] == (excess <= 1e-6)
        assert m["mean_power_w"][j] == pytest.approx(power[j].mean())
    assert np.all(score.violation["delay_s"] == 0.0)


def test_omega_weights_and_alpha_asymmetry():
    """Eq. (10) with alpha_g != alpha_a: which group's SE/EE each weight multiplies."""
    params = dataclasses.replace(u.SCENARIOS["tiny"], alpha_g=0.1, alpha_a=0.4)
    inst = dataclasses.replace(PROBLEM.sample("tiny", 3, seed=4), params=params)
    power = np.array([[0.01] * 4, [0.5, 0.001, 0.02, 1.0], [1.0] * 4])
    t = PROBLEM.terms(inst, power)
    b = params.bounds
    by_hand = (0.4 * (t["se_g"] - b.se_g_min) / (b.se_g_max - b.se_g_min)
               + 0.1 * (t["ee_g"] - b.ee_g_min) / (b.ee_g_max - b.ee_g_min)
               + 0.4 * (t["se_a"] - b.se_a_min) / (b.se_a_max - b.se_a_min)
               + 0.1 * (t["ee_a"] - b.ee_a_min) / (b.ee_a_max - b.ee_a_min))
    np.testing.assert_allclose(PROBLEM.evaluate(inst, {"power_w": power}).objective, by_hand, rtol=1e-12)
    w = u.omega_weights(params)
    affine = w["offset"] + w["se_g"] * t["se_g"] + w["ee_g"] * t["ee_g"] + w["se_a"] * t["se_a"] + w["ee_a"] * t["ee_a"]
    np.testing.assert_allclose(affine, by_hand, rtol=1e-10)
    # swapping alpha_g and alpha_a changes Omega (the groups are not interchangeable)
    swapped = dataclasses.replace(inst, params=dataclasses.replace(params, alpha_g=0.4, alpha_a=0.1))
    assert not np.allclose(PROBLEM.evaluate(swapped, {"power_w": power}).objective, by_hand)


def test_constraint_violations_and_feasibility():
    inst = PROBLEM.sample("stress-k20", 4, seed=0)
    p = inst.params
    power = np.full((4, 20), 0.001)
    score = PROBLEM.evaluate(inst, {"power_w": power})
    n_viol = score.metrics["n_violating_eps"]
    assert np.all(n_viol >= 1)  # at p_min the stress scenario violates eps_QoS
    assert not np.any(score.feasible)
    eps = um.terminal_error_probability(PROBLEM.terms(inst, power)["sinr"], 2000, 32)
    np.testing.assert_allclose(score.violation["error_probability_decades"],
                               np.log10(eps.max(axis=1)) + 5, rtol=1e-9)
    assert np.all(score.metrics["n_unreachable_eps"] <= n_viol)
    # out-of-bounds powers are violations in W
    bad = np.full((4, 20), 0.05)
    bad[0, 3], bad[1, 7] = 1.2, 0.0005
    score = PROBLEM.evaluate(inst, {"power_w": bad})
    assert score.violation["power_above_max_w"][0] == pytest.approx(0.2)
    assert score.violation["power_below_min_w"][1] == pytest.approx(0.0005)
    assert not score.feasible[0] and not score.feasible[1]
    assert PROBLEM.check_decision(inst, {"power_w": bad}) is not None
    # a longer packet than t_QoS allows
    slow = dataclasses.replace(inst, params=dataclasses.replace(p, n_data=6000))
    score = PROBLEM.evaluate(slow, {"power_w": np.full((4, 20), 0.05)})
    assert score.violation["delay_s"][0] == pytest.approx((64 + 6000) / 10e6 - 0.5e-3)
    assert not np.any(score.feasible)


def test_feasible_when_every_terminal_is_reliable():
    inst = PROBLEM.sample("k10", 3, seed=0)
    score = PROBLEM.evaluate(inst, {"power_w": np.full((3, 10), 0.01)})
    assert np.all(score.metrics["n_violating_eps"] == 0) and np.all(score.feasible)
    assert np.all(score.max_violation == 0.0) and np.all(score.metrics["worst_eps"] <= 1e-5)


def test_unreachable_terminals_bounds_every_decision_and_detects_a_lost_terminal():
    inst = PROBLEM.sample("stress-k20", 2, seed=9)
    beta = inst.beta.copy()
    beta[:, :, 5] *= 1e-9  # terminal 5 is heard by no AP
    lost = dataclasses.replace(inst, arrays={**inst.arrays, "beta": beta})
    unreachable = PROBLEM.unreachable_terminals(lost)
    assert np.all(unreachable == 1)
    rng = np.random.default_rng(1)
    for _ in range(5):
        power = np.exp(rng.uniform(np.log(1e-3), 0, size=(2, 20)))
        power[:, 5] = 1.0
        score = PROBLEM.evaluate(lost, {"power_w": power})
        assert np.all(score.metrics["n_violating_eps"] >= unreachable)
        assert np.all(score.metrics["n_unreachable_eps"] == unreachable)
    assert np.all(PROBLEM.unreachable_terminals(inst) < unreachable)


def test_evaluator_is_permutation_equivariant_over_terminals():
    inst = PROBLEM.sample("stress-k20", 3, seed=7)
    rng = np.random.default_rng(2)
    power = np.exp(rng.uniform(np.log(1e-3), 0.0, size=(3, 20)))
    base = PROBLEM.evaluate(inst, {"power_w": power})
    perm = rng.permutation(20)
    arrays = dict(inst.arrays)
    arrays["beta"] = inst.beta[:, :, perm]
    arrays["channel_estimate"] = inst.channel_estimate[:, :, perm]
    for name in ("rician_factor", "aerial", "terminal_xy_m"):
        arrays[name] = inst.arrays[name][:, perm]
    permuted = dataclasses.replace(inst, arrays=arrays)
    moved = PROBLEM.evaluate(permuted, {"power_w": power[:, perm]})
    np.testing.assert_allclose(moved.objective, base.objective, rtol=1e-10)
    for name in ("n_violating_eps", "worst_eps", "se_g", "ee_a_kbit_per_j", "n_unreachable_eps"):
        np.testing.assert_allclose(moved.metrics[name], base.metrics[name], rtol=1e-10)
    # a decision that is not permuted along with the instance scores differently
    assert not np.allclose(PROBLEM.evaluate(permuted, {"power_w": power}).objective, base.objective)


def test_evaluator_is_vectorised_over_the_batch():
    inst = PROBLEM.sample("tiny", 5, seed=3)
    power = np.exp(np.random.default_rng(5).uniform(np.log(1e-3), 0.0, size=(5, 4)))
    batch = PROBLEM.evaluate(inst, {"power_w": power})
    for j in range(5):
        single = PROBLEM.evaluate(inst[j], {"power_w": power[j:j + 1]})
        assert single.objective[0] == pytest.approx(batch.objective[j], rel=1e-12)
        assert single.feasible[0] == batch.feasible[j]


# --- normalisation bounds -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny", "k10", "stress-k20"])
def test_stored_bounds_are_the_calibration(name):
    params = u.build_scenarios(with_bounds=False)[name]
    np.testing.assert_allclose(dataclasses.astuple(u.calibrate_bounds(params)),
                               dataclasses.astuple(u.SCENARIOS[name].bounds), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_all_stored_bounds_are_the_calibration():
    for name, params in u.build_scenarios(with_bounds=False).items():
        source = u.ALPHA_SWEEP_BASE if name.startswith("alpha") else name
        calibrated = u.bounds_of(params)  # cached per physical parameter set: alpha is not part of the key
        np.testing.assert_allclose(dataclasses.astuple(calibrated),
                                   dataclasses.astuple(u.CALIBRATED_BOUNDS[source]), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def test_calibration_covers_its_power_vectors_and_depends_on_physics_only():
    params = u.SCENARIOS["tiny"]
    powers = u.calibration_powers(params, 0)
    assert powers.shape == (2 + u.N_CALIBRATION_LEVELS + u.N_CALIBRATION_RANDOM, 4)
    assert powers.min() >= 1e-3 * (1 - 1e-12) and powers.max() <= 1.0 * (1 + 1e-12)
    # the calibration instances are the problem's own stream at CALIBRATION_SEED
    inst = PROBLEM.sample("tiny", 3, seed=u.CALIBRATION_SEED)
    terms = PROBLEM.terms(inst[0], powers)  # one instance broadcast against S power vectors
    b = params.bounds
    assert b.se_g_min <= terms["se_g"].min() and terms["se_g"].max() <= b.se_g_max
    assert b.ee_a_min <= terms["ee_a"].min() and terms["ee_a"].max() <= b.ee_a_max
    # a scenario without stored bounds is calibrated on first use; alpha does not matter
    fresh = dataclasses.replace(params, bounds=None, alpha_g=0.4, alpha_a=0.4)
    np.testing.assert_allclose(dataclasses.astuple(u.bounds_of(fresh)), dataclasses.astuple(params.bounds),
                               rtol=1e-9, atol=1e-12)
    assert u.bounds_of(dataclasses.replace(fresh, n_antennas=4)) != u.bounds_of(fresh)
