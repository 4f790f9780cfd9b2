"""Closed forms of the ``uccf`` problem against Monte Carlo of the signal model itself.

1. MMSE estimation with pilot sharing (spec A.4): the per-antenna variance of the
   estimate is ``gamma_lk``, of the error ``beta_lk - gamma_lk``, the two are
   uncorrelated, and copilot estimates are parallel.
2. MR UatF terms (A.7): the test simulates pilots, MMSE estimates and MR combining
   ``v_k = D_k hhat_k`` without any closed-form expression and compares the sample
   moments ``E{v_k^H h_k}``, ``E|v_k^H h_i|^2`` and ``E||v_k||^2`` with
   :func:`uccf_model.mr_coefficients`, and the UL and DL SINRs built from them.
3. The evaluator's own Monte Carlo (:func:`uccf_model.uatf_monte_carlo`) with MR
   combining reproduces the closed forms; its centralized MMSE combiner equals the
   pseudo-inverse formula of A.5; it is reproducible for a seed.
4. Closed-form max-min power (A.8) = fixed-point iteration = bisection to 1e-9.

Setup of 1-2 (noise-normalised): L = 3 APs with N = 2 antennas, K = 6 UEs on tau_p = 3
pilots [0, 1, 2, 0, 1, 0] (P_0 = {0, 3, 5}), pilot power eta = 1 (tau_p eta = 3, pilot
SNRs 0.3-60, so estimation error and contamination both matter), partial clusters.
S = 100,000 realisations in 20 batches; each estimate's standard error is the spread of
the batch values over sqrt(20) and every comparison is |MC - closed form| <= 5 SE
(SEs are 0.3-1 % of the quantities; a missing coherent copilot term or a wrong N
power is off by tens of SEs). Seeds fixed. About 3 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.api import Instances
from cfbench.problems import uccf_model as um
from cfbench.problems.uccf import Uccf

S_BATCH, N_BATCH = 5_000, 20
N_SE = 5.0
L, N, K, TAU_P = 3, 2, 6, 3
ETA = 1.0
PILOT = np.array([0, 1, 2, 0, 1, 0])
BETA = np.array([          # (L, K)
    [20.0, 4.0, 0.5, 6.0, 1.0, 0.1],
    [2.0, 10.0, 3.0, 0.2, 5.0, 8.0],
    [0.5, 1.0, 15.0, 4.0, 0.3, 2.0],
])
CLUSTERS = np.array([
    [1, 1, 0, 1, 0, 0],
    [1, 1, 1, 0, 1, 1],
    [0, 0, 1, 1, 0, 1],
], dtype=float)
P_UL = np.array([1.0, 0.5, 2.0, 1.5, 0.8, 1.2])   # unequal data powers (mW over noise units)


def _simulate(rng: np.random.Generator, s: int):
    """Channels, pilot-based MMSE estimates (spec A.4 written out), shape (s, L, N, K)."""
    h = (rng.standard_normal((s, L, N, K)) + 1j * rng.standard_normal((s, L, N, K))) * np.sqrt(BETA / 2)[:, None, :]
    n = (rng.standard_normal((s, L, N, TAU_P)) + 1j * rng.standard_normal((s, L, N, TAU_P))) / np.sqrt(2)
    y = np.zeros((s, L, N, TAU_P), dtype=complex)
    psi = np.ones((L, TAU_P))
    for k in range(K):
        y[..., PILOT[k]] += np.sqrt(ETA) * TAU_P * h[..., k]
        psi[:, PILOT[k]] += TAU_P * ETA * BETA[:, k]
    y += np.sqrt(TAU_P) * n
    hhat = np.empty_like(h)
    for k in range(K):
        hhat[..., k] = np.sqrt(ETA) * (BETA[:, k] / psi[:, PILOT[k]])[None, :, None] * y[..., PILOT[k]]
    return h, hhat


def _z(batches: np.ndarray, expected: np.ndarray) -> np.ndarray:
    mean = batches.mean(axis=0)
    se = batches.std(axis=0, ddof=1) / np.sqrt(len(batches))
    return np.abs(mean - expected) / se


@pytest.fixture(scope="module")
def moments():
    rng = np.random.default_rng(20260501)
    out = {k: [] for k in ("hhat_var", "err_var", "cross", "amp", "power", "norm")}
    for _ in range(N_BATCH):
        h, hhat = _simulate(rng, S_BATCH)
        err = h - hhat
        out["hhat_var"].append(np.mean(np.abs(hhat) ** 2, axis=(0, 2)))
        out["err_var"].append(np.mean(np.abs(err) ** 2, axis=(0, 2)))
        out["cross"].append(np.abs(np.mean(hhat * err.conj(), axis=(0, 2))))
        v = CLUSTERS[None, :, None, :] * hhat                                  # MR, v_k = D_k hhat_k
        x = np.einsum("slni,slnk->sik", h.conj(), v)                           # x[i, k] = h_i^H v_k
        out["amp"].append(np.mean(np.diagonal(x, axis1=1, axis2=2).real, axis=0))
        out["power"].append(np.mean(np.abs(x) ** 2, axis=0))
        out["norm"].append(np.mean(np.sum(np.abs(v) ** 2, axis=(1, 2)), axis=0))
    return {k: np.array(v) for k, v in out.items()}


def _closed_form() -> um.UatfCoefficients:
    gamma = um.estimate_quality(BETA, PILOT, TAU_P * ETA)
    return um.mr_coefficients(BETA[None], gamma[None], PILOT[None], CLUSTERS[None], N)


def test_mmse_estimation_with_pilot_sharing(moments):
    gamma = um.estimate_quality(BETA, PILOT, TAU_P * ETA)
    assert np.all(_z(moments["hhat_var"], gamma) < N_SE)
    assert np.all(_z(moments["err_var"], BETA - gamma) < N_SE)
    assert np.all(moments["cross"].mean(axis=0) < 0.02 * BETA)                  # error orthogonal to estimate
    # sharper than the SEs: gamma is not the estimate of orthogonal pilots
    alone = TAU_P * ETA * BETA ** 2 / (TAU_P * ETA * BETA + 1)
    assert np.max(_z(moments["hhat_var"], alone)) > 50
    # copilot estimates are parallel: hhat_3 = (beta_l3 / beta_l0) hhat_0 at every AP
    h, hhat = _simulate(np.random.default_rng(1), 10)
    np.testing.assert_allclose(hhat[..., 3], (BETA[:, 3] / BETA[:, 0])[None, :, None] * hhat[..., 0], rtol=1e-12)


def test_mr_closed_forms_match_monte_carlo(moments):
    cf = _closed_form()
    b, c, s = cf.signal[0], cf.interference[0], cf.noise[0]
    assert np.all(_z(moments["amp"], np.sqrt(b)) < N_SE)                      # E{v_k^H h_k} = N sum G
    second = c.T + np.diag(b)                                                # E|h_i^H v_k|^2 as [i, k]
    assert np.all(_z(moments["power"], second) < N_SE)
    assert np.all(_z(moments["norm"], s) < N_SE)
    # the coherent copilot term is resolved: dropping it misses by far more than 5 SE
    copilot = um.same_pilot(PILOT) * (1 - np.eye(K))
    gamma = um.estimate_quality(BETA, PILOT, TAU_P * ETA)
    noncoherent = N * (CLUSTERS * gamma).T @ BETA
    assert np.max(_z(moments["power"], (noncoherent * (1 - copilot)).T + np.diag(b))) > 50
    # UL and DL SINRs from the sample moments (UatF definitions written out)
    amp, power, norm = (moments[k].mean(axis=0) for k in ("amp", "power", "norm"))
    b_mc = amp ** 2
    ul_mc = P_UL * b_mc / (power.T @ P_UL - P_UL * b_mc + norm)
    np.testing.assert_allclose(cf.ul_sinr(P_UL[None])[0], ul_mc, rtol=0.02)
    rho = np.array([30.0, 10.0, 50.0, 20.0, 5.0, 40.0])
    # DL: precoder w_i = sqrt(rho_i) v_i / sqrt(E||v_i||^2); UE k hears h_k^H w_i
    gain = power * (rho / norm)[None, :]                                     # E|h_k^H w_i|^2 as [k, i]
    dl_mc = rho * b_mc / norm / (gain.sum(axis=1) - rho * b_mc / norm + 1.0)
    np.testing.assert_allclose(cf.dl_sinr(rho[None])[0], dl_mc, rtol=0.02)


def test_evaluator_monte_carlo_reproduces_the_mr_closed_forms():
    cf = _closed_form()
    mc = um.uatf_monte_carlo(BETA, PILOT, CLUSTERS, N, TAU_P, ETA, 1.0, 40_000,
                             np.random.default_rng(3), combiner="mr", chunk=4000)
    np.testing.assert_allclose(mc.signal, cf.signal, rtol=0.02)
    np.testing.assert_allclose(mc.noise, cf.noise, rtol=0.02)
    np.testing.assert_allclose(mc.interference, cf.interference, rtol=0.05, atol=0.02 * cf.interference.max())
    np.testing.assert_allclose(mc.ap_share, cf.ap_share, atol=0.01)
    t_cf, _ = um.maxmin_closed_form(cf.ul_maxmin_form(1.0))
    t_mc, _ = um.maxmin_closed_form(mc.ul_maxmin_form(1.0))
    assert t_mc[0] == pytest.approx(t_cf[0], rel=0.02)


@pytest.mark.parametrize("size", [(4, 2, 5, 0.5), (6, 1, 12, 0.2), (3, 2, 10, 1.0), (5, 2, 12, 0.3)])
def test_mmse_combiner_is_the_pseudo_inverse_formula(size):
    """Both internal forms (padded direct solve, Woodbury) equal
    ``p (D_k (p Hhat Hhat^H + Lambda) D_k)^+ D_k hhat_k`` (A.5)."""
    n_aps, n_ant, n_ues, share = size
    rng = np.random.default_rng(n_aps * 100 + n_ues)
    hhat = rng.standard_normal((2, n_aps, n_ant, n_ues)) + 1j * rng.standard_normal((2, n_aps, n_ant, n_ues))
    clusters = (rng.random((n_aps, n_ues)) < share).astype(float)
    clusters[0] = 1.0
    lam, power = 1.0 + rng.random(n_aps), 3.0
    v = um.combiners(hhat, clusters, lam, power, "mmse")
    for r in range(2):
        flat = hhat[r].reshape(n_aps * n_ant, n_ues)
        a = power * flat @ flat.conj().T + np.diag(np.repeat(lam, n_ant))
        for k in range(n_ues):
            d = np.diag(np.repeat(clusters[:, k], n_ant))
            expected = power * np.linalg.pinv(d @ a @ d) @ d @ flat[:, k]
            np.testing.assert_allclose(v[r, ..., k].reshape(-1), expected, atol=1e-12)


def test_mmse_coefficients_are_reproducible_and_seeded():
    prob = Uccf()
    inst = prob.sample("mmse-tiny", 2, seed=0)
    first = um.uatf_coefficients(inst, inst.dcc_clusters)
    again = um.uatf_coefficients(inst, inst.dcc_clusters)
    np.testing.assert_array_equal(first.interference, again.interference)
    alone = um.uatf_coefficients(inst[[1]], inst.dcc_clusters[1:])            # an instance alone: same draws
    np.testing.assert_array_equal(alone.signal, first.signal[1:])
    other = Instances(inst.problem, inst.scenario, inst.seed, inst.index,
                      {**inst.arrays, "mc_seed": inst.mc_seed + 1}, inst.params)
    moved = um.uatf_coefficients(other, inst.dcc_clusters)
    assert not np.array_equal(moved.signal, first.signal)
    np.testing.assert_allclose(moved.signal, first.signal, rtol=0.3)         # same physics, other draws
    # MMSE suppresses interference: more UL SINR than MR at full power on these setups
    full = np.full((2, 8), inst.params.p_max_mw)
    mr = um.uatf_coefficients(inst, inst.dcc_clusters, combiner="mr")
    assert np.mean(first.ul_sinr(full)) > np.mean(mr.ul_sinr(full))


# --- max-min power: closed form = fixed point = bisection -------------------------------------------

def _forms(scenario: str, n: int, seed: int):
    prob = Uccf()
    inst = prob.sample(scenario, n, seed=seed)
    p = inst.params
    rng = np.random.default_rng(seed)
    random_clusters = np.maximum(inst.dcc_clusters, rng.random(inst.beta.shape) < 0.3)
    random_clusters[:, 0, :] = 1.0
    for clusters in (inst.dcc_clusters, um.all_ap_clusters(inst), random_clusters):
        coeffs = um.uatf_coefficients(inst, clusters)
        yield coeffs, coeffs.ul_maxmin_form(p.p_max_mw), "ul"
        yield coeffs, coeffs.dl_maxmin_form(p.rho_max_mw), "dl"


@pytest.mark.parametrize("scenario", ["mr-k20", "mr-k40"])
def test_closed_form_maxmin_agrees_with_fixed_point_and_bisection(scenario):
    for coeffs, form, link in _forms(scenario, 6, seed=0):
        t_cf, x_cf = um.maxmin_closed_form(form)
        t_fp, x_fp, iters = um.maxmin_fixed_point(form)
        t_bi, x_bi = um.maxmin_bisection(form)
        np.testing.assert_allclose(t_fp, t_cf, rtol=1e-9, err_msg=f"{scenario} {link} fixed point")
        np.testing.assert_allclose(t_bi, t_cf, rtol=1e-9, err_msg=f"{scenario} {link} bisection")
        scale = x_cf.max(axis=1, keepdims=True)
        np.testing.assert_allclose(x_fp / scale, x_cf / scale, atol=1e-9)
        np.testing.assert_allclose(x_bi / scale, x_cf / scale, atol=1e-9)
        # every UE at the same SINR t*, the binding constraint tight, none exceeded
        sinr = coeffs.ul_sinr(x_cf) if link == "ul" else coeffs.dl_sinr(x_cf)
        np.testing.assert_allclose(sinr, np.broadcast_to(t_cf[:, None], sinr.shape), rtol=1e-10)
        load = np.einsum("njk,nk->nj", form.constraint, x_cf)
        np.testing.assert_allclose(load.max(axis=1), 1.0, rtol=1e-12)
        # the screened closed form is the full one
        t_all, _ = um.maxmin_closed_form(form, n_candidates=10 ** 6)
        np.testing.assert_allclose(t_cf, t_all, rtol=1e-12)
        assert np.all(iters > 1)


def test_no_power_vector_beats_the_maxmin():
    """Random feasible powers never reach t* (and scaling the optimum down loses)."""
    coeffs, form, _ = next(_forms("mr-k20", 4, seed=1))
    t, x = um.maxmin_closed_form(form)
    rng = np.random.default_rng(0)
    for _ in range(200):
        y = rng.random(x.shape) * 100.0
        y /= np.max(np.einsum("njk,nk->nj", form.constraint, y), axis=1)[:, None]
        assert np.all(np.min(coeffs.ul_sinr(y), axis=1) <= t * (1 + 1e-12))


def test_unserved_ue_is_left_out_of_the_maxmin():
    coeffs, _, _ = next(_forms("mr-k20", 3, seed=2))
    prob = Uccf()
    inst = prob.sample("mr-k20", 3, seed=2)
    clusters = inst.dcc_clusters.copy()
    clusters[:, :, 4] = 0.0
    coeffs = um.uatf_coefficients(inst, clusters)
    powers = um.maxmin_powers(coeffs, inst.params.p_max_mw, inst.params.rho_max_mw)
    assert np.all(powers["ul_power_mw"][:, 4] == 0) and np.all(powers["dl_power_mw"][:, 4] == 0)
    others = np.delete(np.arange(20), 4)
    sinr = coeffs.ul_sinr(powers["ul_power_mw"])
    np.testing.assert_allclose(sinr[:, others], np.broadcast_to(powers["ul_sinr"][:, None], (3, 19)), rtol=1e-10)
    t_fp, _, _ = um.maxmin_fixed_point(coeffs.dl_maxmin_form(inst.params.rho_max_mw))
    np.testing.assert_allclose(t_fp, powers["dl_sinr"], rtol=1e-9)
