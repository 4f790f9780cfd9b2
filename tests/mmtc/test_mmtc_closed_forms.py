"""Closed-form SINR coefficients of the ``mmtc`` problem against Monte Carlo of the signal model.

``cfbench.problems.mmtc_model.coexistence_coefficients`` evaluates (15), (18)
and (19) of the coexistence paper (``shared/papers/mmtc_embb_coexistence.txt``)
for uncorrelated Rayleigh fading. Here the signal model itself is simulated,
without using any of those expressions, and every coefficient is compared with
the sample moment it stands for.

Simulated model (noise-normalised units: noise CN(0, 1), LSF in 1/W)
- M = 3 APs with L = 2 antennas, K_u = 2 users, K_d = 3 devices, tau_p = 3
  orthogonal pilots (unit-modulus DFT rows, ||phi||^2 = tau_p). Users on
  pilots [0, 1], devices on [2, 0, 2]: user 0 shares its pilot with device 1,
  devices 0 and 2 share one, every other pair is on distinct pilots.
- LSF spread over two orders of magnitude with pilot/data SNRs (gain x power)
  of 0.1..10, so noise, estimation error and pilot contamination all matter;
  every terminal is left unserved by at least one AP (a_mu, b_md exercised).
- N = 7 PRBs, device chips c_d[n] = +-1 from ``cfbench.physics.spreading``.
  Per PRB n: h_mk[n] ~ CN(0, beta_mk I_L) for every terminal, independent over
  n, m and k.
- Channel estimation (3)-(5) per PRB: Y_m[n] = sum_k sqrt(P_k) h_mk[n] phi_k^T
  + noise (L x tau_p); ybar_mt = Y_m phi_t^* / sqrt(tau_p), whose per-antenna
  variance is Psi_mt = sum_{k on t's pilot} e_k beta_mk + 1 with e_k = tau_p P_k;
  MMSE estimate hhat_mt = sqrt(e_t) (beta_mt / Psi_mt) ybar_mt.
- eMBB+ (14), MR combining f = hhat: X_uk[n] = sum_m a_mu f_mu^H h_mk and
  W_u[n] = sum_m a_mu f_mu^H w_m. delta_u = |E X_uu|^2, v_u = Var X_uu,
  kappa_uk = E|X_uk|^2 (users), Z_ud = E|X_ud|^2 (devices; |c_d[n]| = 1),
  xi_u = E|W_u|^2. Channels are independent across PRBs, so each of the
  S x N PRBs is one independent sample of these.
- mMTC+ (10)-(11), (16): t_md = ghat_md, weight tilde_g = g_md^H t_md (true
  channel), despread output sum_m b_md sum_n c_d^*[n] tilde_g[n] t_md^H[n] r_m[n].
  Per unit power: G_d = sum_{n,m} b_md |t^H g_d|^2 (lambda_d = (E G_d)^2,
  nu_d = Var G_d); J_dk = sum_n c_d^* c_k sum_m b_md (g_d^H t)(t^H g_k)
  (eps_dk = E|J_dk|^2); eps_du = E sum_n |sum_m b_md (g_d^H t)(t^H h_u)|^2,
  i.e. E|J_du|^2 with the independent unit-power user symbols s_u[n] averaged
  out exactly (cross terms over n vanish); W_d = sum_n c_d^* sum_m b_md
  (g_d^H t) t^H w_m (chi_d = E|W_d|^2). One sample per realisation of all N PRBs.

Sample size and tolerance. S = 100 000 independent realisations of all N PRBs
(700 000 PRB samples for the eMBB+ moments), simulated in chunks of 5 000
(about 7 s on one core). Every comparison is |MC - closed| <= 5 standard errors
(+ a 1e-12 relative floor), the standard error estimated from the same
samples: std / sqrt(count) for means of |.|^2; for |E X|^2 the delta method,
2 |E X| x SE of the mean projected on the direction of E X; for variances the
SE of the mean of |X - mean|^2 (delta method; the O(1/S) bias of the sample
variance is ~1e-5 relative, far below the SE). At this S the relative SEs are
0.15..0.4 % for the eMBB+ moments and lambda_d, 0.5..0.6 % for eps_dk, eps_du,
chi_d and about 0.9 % for the eighth-order nu_d (its samples have a coefficient
of variation ~2.8 and the largest single sample carries < 0.3 % of the sum, so
the normal approximation of the sample mean holds). With correct formulas a
5-SE miss has probability < 1e-6 per comparison (about 5e-5 over the ~80
comparisons); the seed is fixed anyway, and the observed |z| stay below 3.
The tolerance has power: the misprinted eps_dk of (19) and the pilot-energy
convention e_k = tau_p^2 P_k are rejected by 10..200 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.physics import spreading
from cfbench.problems import mmtc_model as mm

S_MC = 100_000  # independent realisations of all N PRBs
CHUNK = 5_000  # realisations per simulated block (peak memory of the test run ~0.5 GB)
N_SE = 5.0  # tolerance in standard errors
REL_FLOOR = 1e-12  # absolute floor, relative to the closed form's scale

M, L, KU, KD, TAU_P, N_PRB = 3, 2, 2, 3, 3, 7
T = KU + KD  # terminals: users first, then devices
USER_GAIN = np.array([[8.0, 0.5], [1.2, 6.0], [0.2, 2.0]])  # alpha_mu, (M, Ku), 1/W
DEVICE_GAIN = np.array([[20.0, 3.0, 0.6], [2.0, 40.0, 5.0], [0.5, 1.0, 30.0]])  # beta_md, (M, Kd)
USER_POWER = np.array([1.0, 0.5])  # pilot power per symbol P_u, W
DEVICE_POWER = np.array([0.2, 0.1, 0.25])  # pilot power per symbol Q_d, W
USER_SERVING = np.array([[1, 0], [1, 1], [0, 1]], dtype=float)  # a_mu
DEVICE_SERVING = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 1]], dtype=float)  # b_md
USER_PILOT = np.array([0, 1])
DEVICE_PILOT = np.array([2, 0, 2])

OFF_DIAG_USERS = ~np.eye(KU, dtype=bool)
OFF_DIAG_DEVICES = ~np.eye(KD, dtype=bool)


# --- the signal model --------------------------------------------------------------------

def _complex_normal(rng: np.random.Generator, shape) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


def dft_pilots(tau_p: int) -> np.ndarray:
    """Rows are the tau_p orthogonal unit-modulus pilots phi_p (||phi_p||^2 = tau_p)."""
    idx = np.arange(tau_p)
    return np.exp(2j * np.pi * np.outer(idx, idx) / tau_p)


def terminal_arrays():
    """LSF (M, T), pilot power per symbol (T,), pilot index (T,) of all terminals."""
    return (np.concatenate([USER_GAIN, DEVICE_GAIN], axis=1), np.concatenate([USER_POWER, DEVICE_POWER]),
            np.concatenate([USER_PILOT, DEVICE_PILOT]))


def estimation_statistics():
    """Psi_mt (per-antenna variance of ybar_mt) and gamma_mt = e_t beta_mt^2 / Psi_mt, (M, T)."""
    gain, power, pilot = terminal_arrays()
    energy = TAU_P * power
    same_pilot = pilot[:, None] == pilot[None, :]
    psi = (gain * energy) @ same_pilot.T + 1.0
    return psi, energy * gain ** 2 / psi


def simulate(n_realisations: int, chunk: int, seed: int) -> dict:
    """Samples of every quantity whose moments the closed forms give (see module docstring)."""
    rng = np.random.default_rng(seed)
    gain, power, pilot = terminal_arrays()
    energy = TAU_P * power
    phi = dft_pilots(TAU_P)[pilot]  # (T, tau_p)
    psi, _ = estimation_statistics()
    mmse = np.sqrt(energy) * gain / psi  # (M, T): hhat = mmse * ybar
    chips = spreading.signatures(KD, N_PRB)  # (Kd, N)
    dev = KU + np.arange(KD)
    usr = np.arange(KU)
    parts: dict[str, list] = {}

    def keep(name, value):
        parts.setdefault(name, []).append(value)

    for start in range(0, n_realisations, chunk):
        s = min(chunk, n_realisations - start)
        h = _complex_normal(rng, (s, N_PRB, M, L, T)) * np.sqrt(gain)[:, None, :]
        received_pilots = h @ (np.sqrt(power)[:, None] * phi) + _complex_normal(rng, (s, N_PRB, M, L, TAU_P))
        y_bar = received_pilots @ phi.conj().T / np.sqrt(TAU_P)  # (s, N, M, L, T)
        h_hat = mmse[:, None, :] * y_bar
        noise = _complex_normal(rng, (s, N_PRB, M, L))

        # per-realisation averages over PRBs and antennas (checks of the estimator)
        keep("y_bar_sq", np.mean(np.abs(y_bar) ** 2, axis=(1, 3)))
        keep("h_hat_sq", np.mean(np.abs(h_hat) ** 2, axis=(1, 3)))
        keep("error_sq", np.mean(np.abs(h - h_hat) ** 2, axis=(1, 3)))

        inner = np.einsum("snmlt,snmlk->snmtk", h_hat.conj(), h)  # hhat_mt^H h_mk, (s, N, M, T, T)
        inner_noise = np.einsum("snmlt,snml->snmt", h_hat.conj(), noise)  # hhat_mt^H w_m

        # eMBB+ (14): one sample per PRB
        x = np.einsum("mu,snmuk->snuk", USER_SERVING, inner[:, :, :, :KU, :]).reshape(-1, KU, T)
        keep("x_uu", x[:, usr, usr])
        keep("x_uk_sq", np.abs(x) ** 2)
        keep("w_u_sq", np.abs(np.einsum("mu,snmu->snu", USER_SERVING, inner_noise[..., :KU])).reshape(-1, KU) ** 2)

        # mMTC+ (10)-(11), (16): one sample per realisation of all N PRBs
        t_g = inner[:, :, :, dev, dev]  # t_md^H g_md; the weight tilde_g = g^H t is its conjugate
        keep("g_d", np.einsum("md,snmd->sd", DEVICE_SERVING, np.abs(t_g) ** 2))
        per_prb = np.einsum("md,snmd,snmdk->sndk", DEVICE_SERVING, t_g.conj(), inner[:, :, :, KU:, :])
        keep("j_dk_sq", np.abs(np.einsum("dn,kn,sndk->sdk", chips.conj(), chips, per_prb[..., KU:])) ** 2)
        keep("j_du_sq", np.sum(np.abs(per_prb[..., :KU]) ** 2, axis=1))
        w_d = np.einsum("dn,md,snmd,snmd->sd", chips.conj(), DEVICE_SERVING, t_g.conj(), inner_noise[..., KU:])
        keep("w_d_sq", np.abs(w_d) ** 2)
    return {name: np.concatenate(value) for name, value in parts.items()}


def closed_forms(pilot_energy_per_power: float = TAU_P, printed_eps_dk: bool = False) -> mm.CoexistenceCoefficients:
    """``coexistence_coefficients`` for the simulated setting (batch of one), unbatched."""
    coefficients = mm.coexistence_coefficients(
        USER_GAIN[None], DEVICE_GAIN[None], USER_SERVING[None], DEVICE_SERVING[None], USER_PILOT[None],
        DEVICE_PILOT[None], pilot_energy_per_power * USER_POWER, pilot_energy_per_power * DEVICE_POWER,
        spreading.signature_cross_correlation_sq(KD, N_PRB), n_antennas=L, spreading=N_PRB,
        printed_eps_dk=printed_eps_dk)
    return mm.CoexistenceCoefficients(**{k: v[0] for k, v in vars(coefficients).items()})


# --- sample moments with standard errors ---------------------------------------------------

def mean_with_se(samples: np.ndarray):
    """Sample mean over axis 0 and its standard error std / sqrt(count)."""
    return samples.mean(axis=0), samples.std(axis=0) / np.sqrt(len(samples))


def squared_mean_with_se(samples: np.ndarray):
    """|E X|^2 and its delta-method SE: 2 |mean| x SE of Re(X e^{-i arg mean})."""
    mean = samples.mean(axis=0)
    projected = np.real(samples * np.exp(-1j * np.angle(mean)))
    return np.abs(mean) ** 2, 2.0 * np.abs(mean) * projected.std(axis=0) / np.sqrt(len(samples))


def variance_with_se(samples: np.ndarray):
    """E|X - E X|^2 and the SE of the mean of |X - mean|^2 (delta method)."""
    return mean_with_se(np.abs(samples - samples.mean(axis=0)) ** 2)


def z_scores(mc_value, standard_error, closed):
    closed = np.asarray(closed, float)
    return (mc_value - closed) / (standard_error + REL_FLOOR * np.max(np.abs(closed)))


def assert_matches(mc_value, standard_error, closed, name):
    z = z_scores(mc_value, standard_error, closed)
    assert np.all(np.abs(z) <= N_SE), (
        f"{name}: closed form off by up to {np.max(np.abs(z)):.1f} SE\nMC     {mc_value}\nclosed {closed}\nz {z}")


@pytest.fixture(scope="module")
def mc():
    return simulate(S_MC, CHUNK, seed=20240611)


# --- the estimator the closed forms assume -------------------------------------------------

def test_pilots_and_channel_estimates(mc):
    """DFT pilots are orthogonal with ||phi||^2 = tau_p; per antenna E|ybar|^2 = Psi,
    E|hhat|^2 = gamma = e beta^2 / Psi and the MMSE error E|h - hhat|^2 = beta - gamma."""
    phi = dft_pilots(TAU_P)
    np.testing.assert_allclose(phi @ phi.conj().T, TAU_P * np.eye(TAU_P), atol=1e-12)
    gain, _, _ = terminal_arrays()
    psi, gamma = estimation_statistics()
    assert_matches(*mean_with_se(mc["y_bar_sq"]), psi, "E|ybar|^2 = Psi")
    assert_matches(*mean_with_se(mc["h_hat_sq"]), gamma, "E|hhat|^2 = e beta^2 / Psi")
    assert_matches(*mean_with_se(mc["error_sq"]), gain - gamma, "E|h - hhat|^2 = beta - gamma")


# --- eMBB+ (15) ------------------------------------------------------------------------------

def test_embb_desired_signal_delta(mc):
    cf = closed_forms()
    assert_matches(*squared_mean_with_se(mc["x_uu"]), cf.delta, "delta_u = |E X_uu|^2")
    mean, se = mean_with_se(mc["x_uu"].imag)
    assert np.all(np.abs(mean) <= N_SE * se), ("E X_uu is real", mean, se)


def test_embb_channel_uncertainty_v(mc):
    assert_matches(*variance_with_se(mc["x_uu"]), closed_forms().v, "v_u = Var X_uu")


def test_embb_user_interference_kappa(mc):
    cf = closed_forms()
    mean, se = mean_with_se(mc["x_uk_sq"][:, :, :KU])
    assert_matches(mean[OFF_DIAG_USERS], se[OFF_DIAG_USERS], cf.kappa[OFF_DIAG_USERS], "kappa_uk = E|X_uk|^2")
    np.testing.assert_array_equal(np.diag(cf.kappa), 0.0)


def test_embb_device_interference_z(mc):
    """Z_ud, both without (device on another pilot) and with pilot contamination (user 0, device 1)."""
    mean, se = mean_with_se(mc["x_uk_sq"][:, :, KU:])
    assert_matches(mean, se, closed_forms().z, "Z_ud = E|X_ud|^2")


def test_embb_noise_xi(mc):
    assert_matches(*mean_with_se(mc["w_u_sq"]), closed_forms().xi, "xi_u = E|W_u|^2")


# --- mMTC+ (18)-(19) -------------------------------------------------------------------------

def test_mmtc_desired_signal_lambda(mc):
    assert_matches(*squared_mean_with_se(mc["g_d"]), closed_forms().lam, "lambda_d = (E G_d)^2")


def test_mmtc_channel_uncertainty_nu(mc):
    assert_matches(*variance_with_se(mc["g_d"]), closed_forms().nu, "nu_d = Var G_d")


def test_mmtc_device_interference_eps_dk(mc):
    """Verified eps_dk, on the same pilot (devices 0 and 2) and on other pilots."""
    cf = closed_forms()
    mean, se = mean_with_se(mc["j_dk_sq"])
    assert_matches(mean[OFF_DIAG_DEVICES], se[OFF_DIAG_DEVICES], cf.eps_dev[OFF_DIAG_DEVICES], "eps_dk = E|J_dk|^2")
    np.testing.assert_array_equal(np.diag(cf.eps_dev), 0.0)


def test_mmtc_user_interference_eps_du(mc):
    """eps_du, with pilot contamination for (device 1, user 0) and without for the rest."""
    assert_matches(*mean_with_se(mc["j_du_sq"]), closed_forms().eps_user, "eps_du = E|J_du|^2")


def test_mmtc_noise_chi(mc):
    assert_matches(*mean_with_se(mc["w_d_sq"]), closed_forms().chi, "chi_d = E|W_d|^2")


# --- the tolerance rejects known-wrong forms ------------------------------------------------

def test_printed_eps_dk_is_rejected(mc):
    """The printed (19) has tilde_beta_{m,d,k} for beta_mk: devices on other pilots would
    cause no interference at all. The MC shows they do, by well over 5 SE."""
    printed = closed_forms(printed_eps_dk=True).eps_dev
    z = z_scores(*mean_with_se(mc["j_dk_sq"]), printed)
    other_pilot = DEVICE_PILOT[:, None] != DEVICE_PILOT[None, :]
    assert np.all(printed[other_pilot] == 0.0)
    assert np.all(z[other_pilot] > 20.0 * N_SE), z
    # on a shared pilot the printed form is off by the factor zeta_k: also rejected
    shared = ~other_pilot & OFF_DIAG_DEVICES
    assert np.all(np.abs(z[shared]) > 2.0 * N_SE), z


def test_pilot_energy_convention_matters(mc):
    """Reading ||phi||^2 = tau_p literally (e_k = tau_p^2 P_k) moves every coefficient
    beyond the MC tolerance: the closed forms hold with energies e_k = tau_p P_k."""
    wrong = closed_forms(pilot_energy_per_power=TAU_P ** 2)
    x_uk_mean, x_uk_se = mean_with_se(mc["x_uk_sq"])
    j_dk_mean, j_dk_se = mean_with_se(mc["j_dk_sq"])
    comparisons = {
        "delta": z_scores(*squared_mean_with_se(mc["x_uu"]), wrong.delta),
        "v": z_scores(*variance_with_se(mc["x_uu"]), wrong.v),
        "kappa": z_scores(x_uk_mean[:, :KU], x_uk_se[:, :KU], wrong.kappa)[OFF_DIAG_USERS],
        "z": z_scores(x_uk_mean[:, KU:], x_uk_se[:, KU:], wrong.z),
        "xi": z_scores(*mean_with_se(mc["w_u_sq"]), wrong.xi),
        "lambda": z_scores(*squared_mean_with_se(mc["g_d"]), wrong.lam),
        "nu": z_scores(*variance_with_se(mc["g_d"]), wrong.nu),
        "eps_dk": z_scores(j_dk_mean, j_dk_se, wrong.eps_dev)[OFF_DIAG_DEVICES],
        "eps_du": z_scores(*mean_with_se(mc["j_du_sq"]), wrong.eps_user),
        "chi": z_scores(*mean_with_se(mc["w_d_sq"]), wrong.chi),
    }
    for name, z in comparisons.items():
        assert np.all(np.abs(z) > N_SE), (name, z)


# --- SINRs (13) and (17) from the coefficients ------------------------------------------------

def test_sinrs_use_the_coefficients_as_in_13_and_17():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 1.0, size=(1, KU))
    q = rng.uniform(0.001, 0.1, size=(1, KD))
    batched = mm.coexistence_coefficients(
        USER_GAIN[None], DEVICE_GAIN[None], USER_SERVING[None], DEVICE_SERVING[None], USER_PILOT[None],
        DEVICE_PILOT[None], TAU_P * USER_POWER, TAU_P * DEVICE_POWER,
        spreading.signature_cross_correlation_sq(KD, N_PRB), n_antennas=L, spreading=N_PRB)
    cf = closed_forms()
    pu, qd = p[0], q[0]
    gamma = np.array([
        cf.delta[u] * pu[u] / (cf.v[u] * pu[u] + sum(cf.kappa[u, k] * pu[k] for k in range(KU) if k != u)
                               + sum(cf.z[u, d] * qd[d] for d in range(KD)) + cf.xi[u])
        for u in range(KU)])
    rho = np.array([
        cf.lam[d] * qd[d] / (cf.nu[d] * qd[d] + sum(cf.eps_dev[d, k] * qd[k] for k in range(KD) if k != d)
                             + sum(cf.eps_user[d, u] * pu[u] for u in range(KU)) + cf.chi[d])
        for d in range(KD)])
    np.testing.assert_allclose(batched.user_sinr(p, q)[0], gamma, rtol=1e-12)
    np.testing.assert_allclose(batched.device_sinr(p, q)[0], rho, rtol=1e-12)

    # orthogonal access drops exactly the cross-service terms
    oma = mm.coexistence_coefficients(
        USER_GAIN[None], DEVICE_GAIN[None], USER_SERVING[None], DEVICE_SERVING[None], USER_PILOT[None],
        DEVICE_PILOT[None], TAU_P * USER_POWER, TAU_P * DEVICE_POWER,
        spreading.signature_cross_correlation_sq(KD, N_PRB), n_antennas=L, spreading=N_PRB, cross_service=False)
    np.testing.assert_allclose(oma.user_sinr(p, np.zeros_like(q)), batched.user_sinr(p, np.zeros_like(q)), rtol=1e-12)
    np.testing.assert_allclose(oma.device_sinr(np.zeros_like(p), q), batched.device_sinr(np.zeros_like(p), q),
                               rtol=1e-12)


@pytest.mark.parametrize("printed", [False, True])
def test_device_interference_sum_equals_the_per_ap_terms_of_eq_19(printed):
    """The evaluator sums (19) over the APs as matrix products; here the same terms are formed
    AP by AP, interferer by interferer, as the equation is printed (an (M, K_d, T) array per
    drop), on drops with shared pilots and partial service."""
    from cfbench.problems.mmtc import Mmtc

    problem = Mmtc()
    inst = problem.sample("ku2-kd10-m10-ms5", 3, seed=17)
    p = inst.params
    L, N, Ku = float(p.n_antennas), float(p.device_spreading), p.n_users
    e = np.concatenate([np.full(Ku, p.n_pilot * p.user_max_power_w), np.full(p.n_devices, p.n_pilot * p.device_max_power_w)])
    c = mm.coexistence_coefficients(inst.user_gain, inst.device_gain, inst.user_serving, inst.device_serving,
                                    inst.user_pilot, inst.device_pilot, e[:Ku], e[Ku:], p.chip_xcorr_sq(),
                                    p.n_antennas, p.device_spreading, printed_eps_dk=printed)
    chips = np.concatenate([np.full((p.n_devices, Ku), N), p.chip_xcorr_sq()], axis=1)
    for n in range(len(inst)):
        gain = np.concatenate([inst.user_gain[n], inst.device_gain[n]], axis=1)          # (M, T)
        pilot = np.concatenate([inst.user_pilot[n], inst.device_pilot[n]])
        share = (pilot[:, None] == pilot[None, :]).astype(float)
        psi = (gain * e) @ share + 1.0                                                    # (M, T), eq. (4)
        b = inst.device_serving[n]
        expected = np.zeros((p.n_devices, Ku + p.n_devices))
        for d in range(p.n_devices):
            t = Ku + d
            g_dd = e[t] * gain[:, t]
            hat = gain[:, t] / psi[:, t]
            for k in range(Ku + p.n_devices):
                x = e[k] * gain[:, k] * share[t, k]
                interferer = x if (printed and k >= Ku) else gain[:, k]
                incoherent = N * L * e[t] * np.sum(b[:, d] * hat ** 4 * g_dd * interferer * (
                    (L + 1) * psi[:, t] ** 2 + (L + 1) ** 2 * psi[:, t] * (g_dd + x) + L * (2 * L + 1) * g_dd * x))
                coherent = (chips[d, k] * L ** 4 * e[t] * e[k] * share[t, k]
                            * np.sum(b[:, d] * hat ** 2 * g_dd * interferer) ** 2)
                expected[d, k] = incoherent + coherent
        np.fill_diagonal(expected[:, Ku:], 0.0)
        np.testing.assert_allclose(c.eps_dev[n], expected[:, Ku:], rtol=1e-12, atol=0)
        np.testing.assert_allclose(c.eps_user[n], expected[:, :Ku], rtol=1e-12, atol=0)
