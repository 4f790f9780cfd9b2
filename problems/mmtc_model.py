"""Signal model of the ``mmtc`` problem: closed-form SINRs of eMBB+ users and mMTC+ devices.

Liesegang, Salaün, Chen and Buzzi, "Optimization of CF-mMIMO systems for the
coexistence between eMBB+ and mMTC+" (``shared/papers/mmtc_embb_coexistence.txt``),
eqs. (1)-(20), specialised to uncorrelated Rayleigh fading (``R_mu = alpha_mu I``,
``Q_md = beta_md I``) as fixed by ``shared/spec/mmtc.md``.

Units. Large-scale fading (LSF) is linear and divided by the noise power
``sigma^2`` (so the noise is CN(0, 1) and gains are per W); powers in W;
pilot *energies* ``e_k = tau_p P_k`` in W x symbols (the book convention the
printed closed forms hold in, with ``|phi_k^H phi_u|^2`` in {0, 1}).

Channel estimation (eqs. 3-5). Terminal ``t`` (user or device) shares its pilot
with the set ``P(t)`` (itself included). AP ``m`` observes, per antenna,
``y_mt = sum_{k in P(t)} sqrt(e_k) h_mk + w`` with variance

    Psi_mt = sum_{k in P(t)} e_k beta_mk + 1      (C_mu of eq. 4; tilde_beta_{m,d} for devices)

and the MMSE estimate ``h_hat_mt = sqrt(e_t) (beta_mt / Psi_mt) y_mt`` has per-antenna
variance ``gamma_mt = e_t beta_mt^2 / Psi_mt``.

eMBB+ SINR, eq. (13) with the coefficients (15) (MR combining ``f = h_hat``, UatF):

    delta_u   = e_u^2 (sum_m a_mu L beta_mu^2 / Psi_mu)^2
    v_u       = e_u sum_m a_mu L beta_mu^3 / Psi_mu
    kappa_uk  = e_u sum_m a_mu L beta_mu^2 beta_mk / Psi_mu
                + e_u e_k [k in P(u)] (sum_m a_mu L beta_mu beta_mk / Psi_mu)^2   (same form for Z_ud)
    xi_u      = e_u sum_m a_mu L beta_mu^2 / Psi_mu.

mMTC+ SINR, eq. (17) with (18)-(19) after despreading (10)-(11). Write
``g_md = zeta_d beta_md`` (tilde_beta_{m,d,d}), ``Psi = Psi_md``, ``hb = beta_md / Psi``
(hat_beta_{m,d}), ``x_mdk = e_k beta_mk [k in P(d)]`` (tilde_beta_{m,d,k} or
tilde_alpha_{m,d,u}):

    lambda_d = N^2 L^2 (sum_m b_md hb^2 g (Psi + L g))^2                                  (18)
    nu_d     = N L sum_m b_md hb^4 g^2 ((L+1)((L+1) g (L g + 4 Psi) + 2 Psi^2) - L (Psi + L g)^2)
    eps_dk   = N L zeta_d sum_m b_md hb^4 g beta_mk ((L+1) Psi^2 + (L+1)^2 Psi (g + x_mdk) + L(2L+1) g x_mdk)
               + |c_d^H c_k|^2 L^4 zeta_d e_k [k in P(d)] (sum_m b_md hb^2 g beta_mk)^2
    eps_du   = the same with the user's alpha_mu, eta_u and N in place of |c_d^H c_k|^2
    chi_d    = N L (L+1) zeta_d sum_m b_md hb^4 g Psi ((L+1) g + Psi)                        (19)

The printed eps_dk of (19) has ``tilde_beta_{m,d,k}`` where ``beta_mk`` stands
above (prefactor and coherent sum), which makes devices on other pilots
interference-free; ``printed_eps_dk=True`` reproduces it for comparison.
The incoherent terms are N times the per-PRB variance of the despread
interference (channels and estimates are independent across PRBs); the
coherent terms come from the mean of pilot-contaminated products and add up
over the PRBs through the chips (``|c_d^H c_k|^2``, 1 for distinct m-sequence
shifts) for a device, and through the N independent user symbols for a user.
Every expression is checked against a Monte Carlo simulation of the signal
model (6)-(11), (14), (16) in ``tests/mmtc/test_mmtc_closed_forms.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CoexistenceCoefficients:
    """The SINR coefficients of one batch (leading axis n), in the paper's names.

    eMBB+ (13): ``delta`` (n, Ku), ``v`` (n, Ku), ``kappa`` (n, Ku, Ku) with a
    zero diagonal, ``z`` (n, Ku, Kd) (``Z_ud``), ``xi`` (n, Ku).
    mMTC+ (17): ``lam`` (n, Kd), ``nu`` (n, Kd), ``eps_dev`` (n, Kd, Kd) with a
    zero diagonal (``epsilon_dk``), ``eps_user`` (n, Kd, Ku) (``varepsilon_du``),
    ``chi`` (n, Kd). Both SINRs are ratios of functions linear in (p, q).
    """

    delta: np.ndarray
    v: np.ndarray
    kappa: np.ndarray
    z: np.ndarray
    xi: np.ndarray
    lam: np.ndarray
    nu: np.ndarray
    eps_dev: np.ndarray
    eps_user: np.ndarray
    chi: np.ndarray

    def user_interference(self, user_power_w: np.ndarray, device_power_w: np.ndarray) -> np.ndarray:
        """Denominator of (13): ``v_u p_u + sum_k kappa_uk p_k + sum_d Z_ud q_d + xi_u``, (n, Ku)."""
        p, q = np.asarray(user_power_w, float), np.asarray(device_power_w, float)
        return (self.v * p + np.einsum("nuk,nk->nu", self.kappa, p) + np.einsum("nud,nd->nu", self.z, q) + self.xi)

    def device_interference(self, user_power_w: np.ndarray, device_power_w: np.ndarray) -> np.ndarray:
        """``varrho_d`` of (26), the denominator of (17), (n, Kd)."""
        p, q = np.asarray(user_power_w, float), np.asarray(device_power_w, float)
        return (self.nu * q + np.einsum("ndk,nk->nd", self.eps_dev, q) + np.einsum("ndu,nu->nd", self.eps_user, p)
                + self.chi)

    def user_sinr(self, user_power_w, device_power_w) -> np.ndarray:
        """``gamma_u`` of eq. (13), (n, Ku)."""
        return self.delta * np.asarray(user_power_w, float) / self.user_interference(user_power_w, device_power_w)

    def device_sinr(self, user_power_w, device_power_w) -> np.ndarray:
        """``rho_d`` of eq. (17), (n, Kd)."""
        return self.lam * np.asarray(device_power_w, float) / self.device_interference(user_power_w, device_power_w)


def pilot_covariance(gain: np.ndarray, energy: np.ndarray, share: np.ndarray) -> np.ndarray:
    """``Psi_mt = sum_k [k in P(t)] e_k beta_mk + 1`` (eq. 4, noise-normalised), (n, M, T)."""
    return np.einsum("ntk,k,nmk->nmt", share, energy, gain) + 1.0


def coexistence_coefficients(user_gain: np.ndarray, device_gain: np.ndarray, user_serving: np.ndarray,
                             device_serving: np.ndarray, user_pilot: np.ndarray, device_pilot: np.ndarray,
                             user_pilot_energy: np.ndarray, device_pilot_energy: np.ndarray,
                             chip_xcorr_sq: np.ndarray, n_antennas: int, spreading: int,
                             cross_service: bool = True, printed_eps_dk: bool = False) -> CoexistenceCoefficients:
    """Closed forms (15), (18), (19) for a batch.

    ``user_gain`` (n, M, Ku) and ``device_gain`` (n, M, Kd): noise-normalised
    LSF ``alpha_mu``, ``beta_md``; ``*_serving``: ``a_mu``, ``b_md`` (0/1, same
    shapes); ``*_pilot``: pilot index per terminal, (n, Ku) and (n, Kd);
    ``*_pilot_energy``: ``eta_u = tau_p P_u`` (Ku,) and ``zeta_d = tau_p Q_d``
    (Kd,); ``chip_xcorr_sq`` (Kd, Kd): ``|c_d^H c_k|^2``; ``spreading`` is N.
    ``cross_service=False`` drops the eMBB+/mMTC+ interference (orthogonal
    access: the services use disjoint PRBs).
    """
    L, N = float(n_antennas), float(spreading)
    n, _, Ku = user_gain.shape
    Kd = device_gain.shape[2]
    gain = np.concatenate([user_gain, device_gain], axis=2)  # (n, M, T)
    energy = np.concatenate([np.broadcast_to(user_pilot_energy, (Ku,)), np.broadcast_to(device_pilot_energy, (Kd,))])
    pilot = np.concatenate([user_pilot, device_pilot], axis=1)
    share = (pilot[:, :, None] == pilot[:, None, :]).astype(float)  # (n, T, T)
    psi = pilot_covariance(gain, energy, share)

    # --- eMBB+ (15): targets t = users, interferers k = every terminal --------------------
    a = user_serving
    e_u = energy[:Ku]
    w = a * L * user_gain / psi[:, :, :Ku]                          # a_mu tr(A_mu) / (e_u ... ) per AP: L beta/Psi
    mean = np.einsum("nmu,nmk->nuk", w, gain)                      # sum_m a L beta_mu beta_mk / Psi_mu
    incoherent = e_u[None, :, None] * np.einsum("nmu,nmk->nuk", w * user_gain, gain)
    coherent = e_u[None, :, None] * energy[None, None, :] * share[:, :Ku, :] * mean ** 2
    interference = incoherent + coherent                            # E|I_uk|^2 per unit power, k = u included
    diag = np.arange(Ku)
    delta = (e_u[None, :] * mean[:, diag, diag]) ** 2
    v = incoherent[:, diag, diag]
    kappa = interference[:, :, :Ku].copy()
    kappa[:, diag, diag] = 0.0
    z = interference[:, :, Ku:] if cross_service else np.zeros((n, Ku, Kd))
    xi = e_u[None, :] * np.einsum("nmu->nu", w * user_gain)

    # --- mMTC+ (18)-(19): targets d = devices -----------------------------------------------
    b = device_serving
    zeta = energy[Ku:]
    psi_d = psi[:, :, Ku:]                                          # tilde_beta_{m,d}
    g = zeta[None, None, :] * device_gain                           # tilde_beta_{m,d,d}
    hb = device_gain / psi_d                                        # hat_beta_{m,d}
    lam = (N * L * np.einsum("nmd->nd", b * hb ** 2 * g * (psi_d + L * g))) ** 2
    nu = N * L * np.einsum("nmd->nd", b * hb ** 4 * g ** 2 * (
        (L + 1) * ((L + 1) * g * (L * g + 4 * psi_d) + 2 * psi_d ** 2) - L * (psi_d + L * g) ** 2))
    chi = N * L * (L + 1) * zeta[None, :] * np.einsum("nmd->nd", b * hb ** 4 * g * psi_d * ((L + 1) * g + psi_d))

    # (19) summed over the APs without the (n, M, Kd, T) array: with x_mdk = e_k beta_mk s_dk
    # (s_dk = 1 when d and k share a pilot) and the interferer's gain I_mdk = beta_mk, the
    # per-AP term c_md I_mdk (A_md + B_md x_mdk) sums to matrix products over m:
    #   c = b hat_beta^4 tilde_beta_dd,  A = (L+1) Psi^2 + (L+1)^2 Psi tilde_beta_dd,
    #   B = (L+1)^2 Psi + L (2L+1) tilde_beta_dd.
    # The printed (19) (``printed_eps_dk``) uses I_mdk = x_mdk for device interferers, so
    # their term is c (A x + B x^2) with x^2 = e_k^2 beta_mk^2 s_dk.
    c = b * hb ** 4 * g
    coef_a = (L + 1) * psi_d ** 2 + (L + 1) ** 2 * psi_d * g
    coef_b = (L + 1) ** 2 * psi_d + L * (2 * L + 1) * g
    ca, cb = np.swapaxes(c * coef_a, 1, 2), np.swapaxes(c * coef_b, 1, 2)           # (n, Kd, M)
    share_d = share[:, Ku:, :]                                                      # s_dk, (n, Kd, T)
    summed = ca @ gain + share_d * energy * (cb @ gain ** 2)                        # sum_m per-AP term
    coherent_gain = np.swapaxes(b * hb ** 2 * g, 1, 2)                              # (n, Kd, M)
    coherent_sum = coherent_gain @ gain                                             # sum_m (.) I_mdk
    if printed_eps_dk:
        dev_gain, e_dev = gain[..., Ku:], energy[Ku:]
        summed[..., Ku:] = share_d[..., Ku:] * (e_dev * (ca @ dev_gain) + e_dev ** 2 * (cb @ dev_gain ** 2))
        coherent_sum[..., Ku:] = share_d[..., Ku:] * e_dev * (coherent_gain @ dev_gain)
    incoherent_d = N * L * zeta[None, :, None] * summed                             # (n, Kd, T)
    chips = np.concatenate([np.full((Kd, Ku), N), np.asarray(chip_xcorr_sq, float)], axis=1)  # (Kd, T)
    coherent_d = (chips[None] * L ** 4 * zeta[None, :, None] * energy[None, None, :] * share[:, Ku:, :]
                  * coherent_sum ** 2)
    eps_all = incoherent_d + coherent_d
    eps_dev = eps_all[:, :, Ku:].copy()
    ddiag = np.arange(Kd)
    eps_dev[:, ddiag, ddiag] = 0.0
    eps_user = eps_all[:, :, :Ku] if cross_service else np.zeros((n, Kd, Ku))
    return CoexistenceCoefficients(delta, v, kappa, z, xi, lam, nu, eps_dev, eps_user, chi)
