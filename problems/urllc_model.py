"""Signal model of the ``urllc`` problem: closed-form UatF SINR, FBL reliability, SE/EE/Omega.

Yan et al., "EE-SE Trade-Off in Deep Learning-Based URLLC Cell-Free Massive
MIMO Systems" (``shared/papers/urllc_ee_se_tradeoff.txt``), eqs. (1)-(12),
with the open points fixed by ``shared/spec/urllc.md``.

Units. LSF ``beta_mk`` is linear and divided by the noise power (so the AWGN
is CN(0, 1) and ``beta`` is per W); powers ``p_k`` are in W; rates in
bit/s/Hz (bit per channel use); EE in bit/J.

Model (see :mod:`cfbench.physics.channels`). ``M`` APs with ``L`` antennas,
``K`` terminals; terminal ``k`` has Rician factor ``rho_k`` (0 for a ground
terminal, GT: Rayleigh, eq. 2; ``rho`` for an aerial terminal, AT: eq. 1
with an independent uniform LoS phase per antenna). Entries of ``H_mk`` are
i.i.d., zero-mean, circularly symmetric, with

    E|H_mkl|^2 = beta_mk,     E|H_mkl|^4 = 2 beta_mk^2 - a_mk^2,
    a_mk = rho_k beta_mk / (rho_k + 1)          (LoS power).

(Fourth moment: |h|^2 = a + b|g|^2 + 2 sqrt(ab) Re(e^{-j theta} g) with
b = beta - a, g ~ CN(0, 1), so E|h|^4 = a^2 + 2 b^2 + 2ab + 2ab = 2 beta^2 - a^2.)
LS estimate (eq. 4): ``H_hat_mk = H_mk + W_mk``, ``W_mk ~ CN(0, c_k I_L)``,
``c_k = 1 / (n_p p_k)``, independent of all channels and of each other.
CPU weights (text after eq. 4): ``eta_mk = beta_mk / sum_q beta_mq``.

Combined data signal of terminal k (the paper's eq. 5 regrouped):

    r_k = sum_m eta_mk H_hat_mk^H y_m = sum_i sqrt(p_i) S_ki s_i + AW_k,
    S_ki = sum_m eta_mk H_hat_mk^H H_mi,     AW_k = sum_m eta_mk H_hat_mk^H N_m,

with y_m = sum_i sqrt(p_i) H_mi s_i + N_m (eq. 3, data part), N_m ~ CN(0, I_L).

UatF SINR. Split r_k = sqrt(p_k) E[S_kk] s_k + [sqrt(p_k) (S_kk - E S_kk) s_k
+ sum_{i != k} sqrt(p_i) S_ki s_i + AW_k]. The bracket is uncorrelated with
the first term (unit-power data symbols, independent of channels and noise),
so treating it as worst-case Gaussian noise gives the achievable SINR

    delta_k = p_k |E S_kk|^2 / (p_k Var S_kk + sum_{i != k} p_i E|S_ki|^2 + E|AW_k|^2).

This is the rigorous form of the paper's channel-hardening step
``H_hat^H H_hat ~ E[H_hat^H H]`` (Section II-A) applied to eqs. (5)-(6).

Closed forms (derivation; every one is checked against Monte Carlo in
``tests/urllc/test_urllc_closed_forms.py``). Terms of different APs are
independent, so means add and (for zero-mean or centred terms) variances add.

(A) Mean of the desired gain. S_kk = sum_m eta_mk (||H_mk||^2 + W_mk^H H_mk);
    E||H_mk||^2 = L beta_mk and E[W_mk^H H_mk] = 0 (W zero-mean, independent):

        E S_kk = L sum_m eta_mk beta_mk.

(B) Beamforming-gain uncertainty. Per AP, Var(||H||^2 + W^H H) = Var ||H||^2
    + E|W^H H|^2 (the cross term has the factor E W = 0). The L entries are
    independent, so Var ||H||^2 = L (E|h|^4 - beta^2) = L (beta^2 - a^2), and
    E|W^H H|^2 = E[H^H E(W W^H) H] = c_k L beta:

        Var S_kk = L sum_m eta_mk^2 (beta_mk^2 - a_mk^2 + c_k beta_mk).

    Rayleigh: a = 0. Rician: the random-phase LoS part is zero-mean but of
    constant modulus, so ||H||^2 fluctuates less (factor (2 rho + 1)/(rho + 1)^2
    on beta^2); this is the only place the terminal type enters.

(C) Interference, i != k. X_m = eta_mk H_hat_mk^H H_mi has zero mean (H_mi is
    zero-mean and independent of H_hat_mk), and the X_m are independent, so
    E|S_ki|^2 = sum_m E|X_m|^2 = sum_m eta_mk^2 E[H_hat_mk^H E(H_mi H_mi^H) H_hat_mk].
    E(H_mi H_mi^H) = beta_mi I_L for both types, because the per-antenna LoS
    phases are independent (E e^{j(theta_l - theta_l')} = 0 for l != l'), and
    E||H_hat_mk||^2 = L (beta_mk + c_k):

        E|S_ki|^2 = L sum_m eta_mk^2 beta_mi (beta_mk + c_k),   same for every
        GT/AT mix of (k, i).

    (A steering-vector LoS with one common random phase would make
    E(H H^H) = a u u^H + (beta - a) I and break this type independence; the
    paper's eq. (1) has independent phases.)

(D) Noise. N_m ~ CN(0, I_L) independent of everything else:

        E|AW_k|^2 = L sum_m eta_mk^2 (beta_mk + c_k).

Behaviour at low power. c_k = 1/(n_p p_k) grows as p_k -> 0: the numerator
is O(p_k) while E|AW_k|^2 and the interference term are O(1/p_k), so
delta_k = O(p_k^2) -> 0. The literal eq. (6) instead uses
E|DS_k|^2 = p_k E|sum_m eta_mk ||H_hat_mk||^2|^2 >= p_k L^2 (sum_m eta_mk c_k)^2,
which is O(1/p_k) too, so its ratio tends to a positive constant (the pilot
noise in H_hat is counted as signal); see ``shared/spec/urllc.md``.

Where the printed eqs. (5)-(6) differ from this model: IT_ki carries
``sqrt(p_k) eta_mi`` where the received signal of terminal i, combined for k,
carries ``sqrt(p_i) eta_mk``; EW_ki likewise carries ``sqrt(p_k)`` instead of
``sqrt(p_i)``; and the sum over i of EA_ki in eq. (6) would count the noise
E|AW_k|^2 K times. With the indices corrected, IT_ki - EW_ki =
sqrt(p_i) S_ki (H_hat_mk^H H_hat_mi - H_hat_mk^H W_mi = H_hat_mk^H H_mi),
i.e. the S_ki above.

Reliability and rates (eq. 7, :mod:`cfbench.physics.fbl`): with D bits per
packet in n_d data channel uses,
``eps_k = Q((log2(1 + delta_k) - D/n_d) / sqrt(V(delta_k)/n_d))`` and the rate
used in SE/EE is ``R_k = max(0, log2(1 + delta_k) - sqrt(V(delta_k)/n_d) Q^-1(eps_QoS))``.
SE per group is the mean R_k (eq. 8), EE per group ``B sum R_k / sum(mu_k p_k + sigma_k)``
(eq. 9), Omega eqs. (10)-(11).

Array convention: LSF ``beta`` is (..., M, K); per-terminal arrays (power,
Rician factor, group masks) are (..., K) and broadcast; any leading batch
axes are carried through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfbench.physics import fbl
from cfbench.physics.channels import ls_error_variance


# --- large-scale quantities ---------------------------------------------------------

def lsf_weights_eta(beta: np.ndarray) -> np.ndarray:
    """CPU weights ``eta_mk = beta_mk / sum_q beta_mq`` (text after eq. 4), shape (..., M, K)."""
    beta = np.asarray(beta, dtype=float)
    return beta / np.sum(beta, axis=-1, keepdims=True)


def los_power(beta: np.ndarray, rician_factor) -> np.ndarray:
    """LoS part of the LSF, ``a_mk = rho_k beta_mk / (rho_k + 1)`` (eq. 1; 0 for GTs, eq. 2)."""
    rho = np.asarray(rician_factor, dtype=float)[..., None, :]
    return rho / (rho + 1.0) * np.asarray(beta, dtype=float)


# --- UatF moments (closed forms A-D of the module docstring) ------------------------

@dataclass(frozen=True)
class UatFMoments:
    """Closed-form expectations entering the UatF SINR.

    ``mean_s_kk`` E S_kk (..., K); ``var_s_kk`` Var S_kk (..., K);
    ``second_moment_s_ki`` E|S_ki|^2 (..., K, K) indexed [k, i] (the diagonal
    is E|S_kk|^2 = |E S_kk|^2 + Var S_kk); ``noise_aw`` E|AW_k|^2 (..., K).
    """

    mean_s_kk: np.ndarray
    var_s_kk: np.ndarray
    second_moment_s_ki: np.ndarray
    noise_aw: np.ndarray


def uatf_moments(beta: np.ndarray, rician_factor, power_w, n_antennas: int, n_pilot: int) -> UatFMoments:
    """Closed forms (A)-(D) for LSF ``beta`` (..., M, K) (per W, noise-normalised),
    per-terminal Rician factors and powers ``p_k > 0`` in W, ``L = n_antennas``
    antennas per AP and ``n_p = n_pilot`` pilot channel uses. The batch axes of
    ``beta`` (...,) and of the per-terminal arrays (..., K) broadcast together,
    e.g. one instance against a batch of power vectors."""
    beta = np.asarray(beta, dtype=float)
    power_w = np.asarray(power_w, dtype=float)
    rician_factor = np.asarray(rician_factor, dtype=float)
    n_aps, n_terminals = beta.shape[-2:]
    terminal_shape = np.broadcast_shapes(beta.shape[:-2] + (n_terminals,), power_w.shape, rician_factor.shape)
    beta = np.broadcast_to(beta, terminal_shape[:-1] + (n_aps, n_terminals))
    power_w = np.broadcast_to(power_w, terminal_shape)
    rho = np.broadcast_to(rician_factor, terminal_shape)
    L = float(n_antennas)

    eta = lsf_weights_eta(beta)
    eta_sq = eta ** 2
    error_var = ls_error_variance(power_w, n_pilot)[..., None, :]  # c_k, (..., 1, K)
    estimate_power = beta + error_var                               # E||H_hat_mk||^2 / L
    los = los_power(beta, rho)

    mean_s_kk = L * np.sum(eta * beta, axis=-2)
    var_s_kk = L * np.sum(eta_sq * (beta ** 2 - los ** 2 + error_var * beta), axis=-2)
    second_moment = L * np.matmul(np.swapaxes(eta_sq * estimate_power, -1, -2), beta)   # [k, i]: sum_m (BLAS)
    diagonal = np.arange(n_terminals)
    second_moment[..., diagonal, diagonal] = mean_s_kk ** 2 + var_s_kk
    noise_aw = L * np.sum(eta_sq * estimate_power, axis=-2)
    return UatFMoments(mean_s_kk, var_s_kk, second_moment, noise_aw)


def uatf_sinr_from_moments(moments: UatFMoments, power_w) -> np.ndarray:
    """``delta_k = p_k |E S_kk|^2 / (p_k Var S_kk + sum_{i!=k} p_i E|S_ki|^2 + E|AW_k|^2)``, (..., K)."""
    power_w = np.broadcast_to(np.asarray(power_w, dtype=float), moments.mean_s_kk.shape)
    n_terminals = power_w.shape[-1]
    off_diagonal = 1.0 - np.eye(n_terminals)
    interference = np.matmul(moments.second_moment_s_ki * off_diagonal, power_w[..., None])[..., 0]
    desired = power_w * moments.mean_s_kk ** 2
    return desired / (power_w * moments.var_s_kk + interference + moments.noise_aw)


def uatf_sinr(beta: np.ndarray, rician_factor, power_w, n_antennas: int, n_pilot: int) -> np.ndarray:
    """Closed-form UatF SINR ``delta_k`` (linear), shape (..., K); see the module docstring."""
    return uatf_sinr_from_moments(uatf_moments(beta, rician_factor, power_w, n_antennas, n_pilot), power_w)


# --- finite blocklength (eq. 7) -----------------------------------------------------

def terminal_error_probability(sinr, n_data: int, bits_per_packet: float):
    """Eq. (7) with packet rate ``D / n_d``: ``eps_k = Q((log2(1+delta_k) - D/n_d) / sqrt(V(delta_k)/n_d))``."""
    return fbl.packet_error_probability(sinr, n_data, bits_per_packet)


def terminal_rate_bits(sinr, n_data: int, target_error_probability: float):
    """Achievable rate ``R_k = max(0, log2(1+delta_k) - sqrt(V(delta_k)/n_d) Q^-1(eps_QoS))``
    in bit/s/Hz (eq. 7 solved for R at eps_QoS; the spec's reading for eqs. 8-9)."""
    return fbl.normal_approximation_rate_bits(sinr, n_data, target_error_probability, clip_at_zero=True)


def end_to_end_delay_s(n_pilot: int, n_data: int, bandwidth_hz: float) -> float:
    """``t_E = (n_p + n_d) / B``: a packet occupies ``N = B T`` channel uses (Section II)."""
    return (n_pilot + n_data) / bandwidth_hz


# --- SE, EE, Omega (eqs. 8-11) ------------------------------------------------------

def group_se_bits(rate_bits: np.ndarray, in_group: np.ndarray) -> np.ndarray:
    """Eq. (8) over one group: mean ``R_k`` over the terminals with ``in_group`` true, (...,)."""
    in_group = np.broadcast_to(np.asarray(in_group, dtype=bool), np.shape(rate_bits))
    return np.sum(np.where(in_group, rate_bits, 0.0), axis=-1) / np.sum(in_group, axis=-1)


def consumed_power_w(power_w, amplifier_inefficiency, static_power_w):
    """Terminal power consumption ``mu_k p_k + sigma_k`` in W (denominator of eq. 9)."""
    return np.asarray(amplifier_inefficiency) * np.asarray(power_w, dtype=float) + np.asarray(static_power_w)


def group_ee_bit_per_joule(rate_bits: np.ndarray, power_w, in_group: np.ndarray, bandwidth_hz: float,
                           amplifier_inefficiency, static_power_w) -> np.ndarray:
    """Eq. (9) over one group: ``B sum R_k / sum (mu_k p_k + sigma_k)`` in bit/J, (...,)."""
    in_group = np.broadcast_to(np.asarray(in_group, dtype=bool), np.shape(rate_bits))
    consumption = np.broadcast_to(consumed_power_w(power_w, amplifier_inefficiency, static_power_w), np.shape(rate_bits))
    throughput = bandwidth_hz * np.sum(np.where(in_group, rate_bits, 0.0), axis=-1)
    return throughput / np.sum(np.where(in_group, consumption, 0.0), axis=-1)


@dataclass(frozen=True)
class TradeoffBounds:
    """Normalisation bounds of eq. (11), per group (``g`` ground, ``a`` aerial);
    SE in bit/s/Hz, EE in bit/J. Computed once per scenario (see the spec)."""

    se_g_min: float
    se_g_max: float
    ee_g_min: float
    ee_g_max: float
    se_a_min: float
    se_a_max: float
    ee_a_min: float
    ee_a_max: float


def normalised(value, lower: float, upper: float):
    """Eq. (11): ``(x - x_min) / (x_max - x_min)``."""
    return (np.asarray(value, dtype=float) - lower) / (upper - lower)


def omega(se_g, ee_g, se_a, ee_a, bounds: TradeoffBounds, alpha_g: float, alpha_a: float,
          trade_off_lambda: float = 0.5):
    """Eq. (10): ``Omega = (lambda - alpha_g) SE~_g + alpha_g EE~_g + alpha_a SE~_a + (lambda - alpha_a) EE~_a``."""
    se_g_n = normalised(se_g, bounds.se_g_min, bounds.se_g_max)
    ee_g_n = normalised(ee_g, bounds.ee_g_min, bounds.ee_g_max)
    se_a_n = normalised(se_a, bounds.se_a_min, bounds.se_a_max)
    ee_a_n = normalised(ee_a, bounds.ee_a_min, bounds.ee_a_max)
    omega_g = (trade_off_lambda - alpha_g) * se_g_n + alpha_g * ee_g_n
    omega_a = alpha_a * se_a_n + (trade_off_lambda - alpha_a) * ee_a_n
    return omega_g + omega_a
