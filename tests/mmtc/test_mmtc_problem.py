"""The ``mmtc`` problem: physics helpers, scenarios, evaluator and the paper's landscape facts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cfbench.physics import fbl
from cfbench.physics.association import greedy_pilot_assignment, strongest_ap_association
from cfbench.physics.spreading import m_sequence, signature_cross_correlation_sq, signatures
from cfbench.problems.mmtc import SCENARIOS, Mmtc, coefficients, device_spectral_rate


@pytest.fixture(scope="module")
def problem():
    return Mmtc()


def upc(instances):
    p = instances.params
    n = len(instances)
    return {"user_power_w": np.full((n, p.n_users), p.user_max_power_w),
            "device_power_w": np.full((n, p.n_devices), p.device_max_power_w)}


# --- physics helpers ------------------------------------------------------------------------

@pytest.mark.parametrize("length", [3, 7, 15, 31, 63, 127, 255, 511])
def test_m_sequence_has_two_valued_periodic_autocorrelation(length):
    c = m_sequence(length)
    assert set(np.unique(c)) == {-1.0, 1.0}
    autocorrelation = np.array([c @ np.roll(c, s) for s in range(length)])
    assert autocorrelation[0] == length
    np.testing.assert_array_equal(autocorrelation[1:], -1.0)


def test_signature_cross_correlation_is_one_for_distinct_shifts_and_reuses_shifts_beyond_n():
    x = signature_cross_correlation_sq(10, 15)
    np.testing.assert_array_equal(np.diag(x), 225.0)
    np.testing.assert_array_equal(x[~np.eye(10, dtype=bool)], 1.0)
    crowded = signature_cross_correlation_sq(5, 3)   # shifts 0,1,2,0,1: devices 0 and 3 collide
    assert crowded[0, 3] == 9.0 and crowded[0, 1] == 1.0
    assert signatures(4, 7).shape == (4, 7)
    with pytest.raises(ValueError, match="2\\^n - 1"):
        m_sequence(16)


def test_strongest_ap_association_serves_each_terminal_by_its_best_aps():
    rng = np.random.default_rng(0)
    gain = rng.lognormal(size=(2, 7, 5))
    serving = strongest_ap_association(gain, 3)
    np.testing.assert_array_equal(serving.sum(axis=1), 3)
    weakest_served = np.min(np.where(serving == 1, gain, np.inf), axis=1)
    strongest_unserved = np.max(np.where(serving == 0, gain, -np.inf), axis=1)
    assert np.all(weakest_served > strongest_unserved)


def test_greedy_pilot_assignment_gives_the_least_loaded_pilot_at_the_strongest_ap():
    gain = np.array([[10.0, 1.0, 1.0, 5.0],    # AP 0
                     [1.0, 10.0, 1.0, 1.0]])   # AP 1
    pilots = greedy_pilot_assignment(gain, np.ones(4), 2)
    # terminals 0, 1 take pilots 0, 1; terminal 2's strongest AP (tie -> AP 0) sees
    # pilot 0 at 10 and pilot 1 at 1, so it joins pilot 1; terminal 3 (AP 0) then sees
    # pilot 0 at 10 and pilot 1 at 2, so pilot 1 again
    np.testing.assert_array_equal(pilots, [0, 1, 1, 1])


def test_gaussian_codebook_dispersion_and_the_rate_of_eq_20():
    x = np.array([0.1, 1.0, 10.0, 1e4])
    v = fbl.gaussian_codebook_dispersion_nats2(x)
    np.testing.assert_allclose(v, 2 * x / (1 + x))
    assert np.all(v > fbl.channel_dispersion_nats2(x))
    params = SCENARIOS["ku2-kd10-m10-ms5"]
    by_hand = np.log2(1 + x) - np.log2(np.e) / np.sqrt(100) * fbl.q_inverse(1e-3) * np.sqrt(2 * x / (1 + x))
    np.testing.assert_allclose(device_spectral_rate(x, params), np.maximum(by_hand, 0))
    np.testing.assert_allclose(device_spectral_rate(x, SCENARIOS["shannon"]), np.log2(1 + x))


# --- scenarios -------------------------------------------------------------------------------

def test_default_scenario_matches_section_vii():
    p = SCENARIOS[Mmtc.default_scenario]
    assert (p.n_users, p.n_devices, p.n_aps, p.n_serving, p.n_antennas, p.n_prb) == (2, 10, 10, 5, 4, 255)
    assert p.n_pilot == 6 and p.n_uplink == 97
    assert p.psi_hz == pytest.approx(20e6 * 97 / 200)
    assert p.user_max_power_w == pytest.approx(0.1) and p.device_max_power_w == pytest.approx(0.01)
    assert p.noise_w == pytest.approx(10 ** ((-174 + 73.0103 - 30) / 10), rel=1e-4)
    # C3 is implied by C5 (S = 0 dB) at N = 255: R_d(1) = 1 - v_d exceeds N R^mMTC+ / psi
    assert device_spectral_rate(1.0, p) > p.device_spectral_rate_min
    with pytest.raises(ValueError, match="regime"):
        dataclasses.replace(p, regime="bad")


def test_instances_are_reproducible_and_carry_association_and_pilots(problem):
    a = problem.sample("ku2-kd10-m10-ms5", 3, seed=4)
    b = problem.sample("ku2-kd10-m10-ms5", 3, seed=4)
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    np.testing.assert_array_equal(a.device_serving.sum(axis=1), 5)
    pilots = np.concatenate([a.user_pilot, a.device_pilot], axis=1)
    assert pilots.max() == 5
    np.testing.assert_array_equal(pilots[:, :6], np.tile(np.arange(6), (3, 1)))  # the first tau_p terminals get distinct pilots


# --- evaluator -------------------------------------------------------------------------------

def test_objective_is_the_worst_device_ee_of_eq_21(problem):
    inst = problem.sample("ku2-kd10-m10-ms5", 4, seed=1)
    p = inst.params
    decision = upc(inst)
    score = problem.evaluate(inst, decision)
    c = coefficients(inst)
    rho = c.device_sinr(decision["user_power_w"], decision["device_power_w"])
    ee = p.psi_hz * device_spectral_rate(rho, p) / (p.n_prb * 2.5 * 0.01 + 0.1)
    np.testing.assert_allclose(score.objective, 1e-6 * ee.min(axis=1))
    np.testing.assert_allclose(score.metrics["device_ee_mbit_per_j"], 1e-6 * ee)


def test_silent_users_fail_c4_and_silent_devices_fail_c5(problem):
    inst = problem.sample("ku2-kd10-m10-ms5", 3, seed=2)
    decision = upc(inst)
    decision["user_power_w"][:, 0] = 0.0
    score = problem.evaluate(inst, decision)
    assert not score.feasible.any() and np.all(score.metrics["fails_c4"] == 1)
    assert np.all(score.violation["user_rate_bps"] == pytest.approx(1e6))
    decision = upc(inst)
    decision["device_power_w"][:, 3] = 0.0
    score = problem.evaluate(inst, decision)
    assert not score.feasible.any() and np.all(score.metrics["fails_c5"] == 1)
    assert np.all(score.objective == 0.0)


def test_evaluator_cache_gives_the_uncached_scores_and_tells_instances_apart(problem, monkeypatch):
    from cfbench.problems import mmtc

    monkeypatch.setattr(mmtc, "_COEFFICIENT_CACHE", type(mmtc._COEFFICIENT_CACHE)())
    monkeypatch.setattr(mmtc, "COEFFICIENT_CACHE_INSTANCES", 6)
    inst = problem.sample("ku2-kd10-m10-ms5", 4, seed=17)
    p = inst.params
    decision = {"user_power_w": np.full((4, p.n_users), 0.5 * p.user_max_power_w),
                "device_power_w": np.full((4, p.n_devices), 0.3 * p.device_max_power_w)}
    uncached = mmtc.performance(p, mmtc.coefficients(inst), decision["user_power_w"], decision["device_power_w"])
    for _ in range(2):  # cold, then warm
        score = problem.evaluate(inst, decision)
        np.testing.assert_array_equal(score.metrics["device_ee_mbit_per_j"], 1e-6 * uncached["device_ee_bit_per_j"])
    # the same drop with another association is another key, scored with its own coefficients
    moved = inst[np.array([0])]
    moved.arrays["device_serving"] = 1 - moved.device_serving
    other = mmtc.performance(p, mmtc.coefficients(moved), decision["user_power_w"][:1], decision["device_power_w"][:1])
    score = problem.evaluate(moved, {k: v[:1] for k, v in decision.items()})
    np.testing.assert_array_equal(score.metrics["device_ee_mbit_per_j"], 1e-6 * other["device_ee_bit_per_j"])
    assert not np.allclose(other["device_ee_bit_per_j"], uncached["device_ee_bit_per_j"][:1])
    # bounded: the batch of 4 plus the single drop fit, another batch of 4 evicts the oldest
    assert sum(k[1][0] for k in mmtc._COEFFICIENT_CACHE) == 5
    problem.evaluate(problem.sample("ku2-kd10-m10-ms5", 4, seed=18), decision)
    assert sum(k[1][0] for k in mmtc._COEFFICIENT_CACHE) == 5


def test_evaluator_is_equivariant_under_device_and_user_permutations(problem):
    inst = problem.sample("ku2-kd10-m10-ms5", 2, seed=3)
    rng = np.random.default_rng(0)
    decision = {"user_power_w": rng.uniform(0.01, 0.1, (2, 2)), "device_power_w": rng.uniform(1e-4, 0.01, (2, 10))}
    score = problem.evaluate(inst, decision)
    du, dd = np.array([1, 0]), rng.permutation(10)
    arrays = dict(inst.arrays)
    for name in ("user_gain", "user_serving"):
        arrays[name] = arrays[name][:, :, du]
    for name in ("device_gain", "device_serving"):
        arrays[name] = arrays[name][:, :, dd]
    arrays["user_pilot"], arrays["device_pilot"] = arrays["user_pilot"][:, du], arrays["device_pilot"][:, dd]
    permuted = dataclasses.replace(inst, arrays=arrays)
    moved = problem.evaluate(permuted, {"user_power_w": decision["user_power_w"][:, du],
                                        "device_power_w": decision["device_power_w"][:, dd]})
    np.testing.assert_allclose(moved.objective, score.objective, rtol=1e-12)
    np.testing.assert_allclose(moved.metrics["device_ee_mbit_per_j"], score.metrics["device_ee_mbit_per_j"][:, dd],
                               rtol=1e-12)


def test_shannon_regime_is_an_upper_bound_of_the_fbl_rate(problem):
    fbl_inst = problem.sample("ku2-kd10-m10-ms5", 8, seed=5)
    shannon_inst = problem.sample("shannon", 8, seed=5)
    decision = upc(fbl_inst)
    a = problem.evaluate(fbl_inst, decision).objective
    b = problem.evaluate(shannon_inst, decision).objective
    assert np.all(b > a)


def test_oma_removes_cross_service_interference(problem):
    inst = problem.sample("oma-u50-d50", 2, seed=0)
    c = coefficients(inst)
    assert np.all(c.z == 0) and np.all(c.eps_user == 0)
    assert inst.params.device_spreading == 127
    noma = coefficients(problem.sample("ku2-kd10-m10-ms5", 2, seed=0))
    assert np.all(noma.z > 0)


# --- landscape facts of the spec and Fig. 4 (UPC) ---------------------------------------------

@pytest.fixture(scope="module")
def upc_feasibility(problem):
    out = {}
    for n in (1, 15, 63, 255, 511):
        inst = problem.sample(f"spread-n{n}", 200, seed=0)
        out[n] = problem.evaluate(inst, upc(inst)).feasible.mean()
    return out


def test_upc_without_spreading_is_never_feasible_and_n15_mostly_infeasible(upc_feasibility):
    assert upc_feasibility[1] == 0.0
    assert upc_feasibility[15] < 0.3          # paper: "N = 15 yields more than 70 %" infeasible


def test_upc_feasibility_rises_with_the_spreading_factor(upc_feasibility):
    shares = [upc_feasibility[n] for n in (15, 63, 255, 511)]
    assert all(a < b for a, b in zip(shares, shares[1:]))
