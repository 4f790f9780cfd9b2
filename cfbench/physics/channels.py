"""Small-scale channel draws and LS channel estimation from orthogonal pilots.

Channel models (URLLC paper, Yan et al., eqs. 1-2). The channel from a
terminal ``k`` to an AP ``m`` with ``L`` antennas and large-scale fading (LSF)
``beta_mk`` is::

    H_mk = sqrt(rho beta_mk / (rho + 1)) h_los + sqrt(beta_mk / (rho + 1)) h_nlos,   (1)
    h_los = [e^{j theta_1}, ..., e^{j theta_L}]^T,  theta_l ~ U[-pi, pi] i.i.d.,
    h_nlos ~ CN(0, I_L),

for an aerial terminal (Rician factor ``rho``, linear) and ``rho = 0``, i.e.
``H_mk = sqrt(beta_mk) h_nlos`` (2), for a ground terminal (Rayleigh). The
LoS vector is the paper's: one independent uniform phase per antenna (not a
steering vector with a single random phase), so the entries of ``H_mk`` are
i.i.d., zero-mean and circularly symmetric with ``E|H_mkl|^2 = beta_mk`` and
``E|H_mkl|^4 = 2 beta_mk^2 - (rho beta_mk / (rho + 1))^2`` (less than the
Rayleigh ``2 beta^2``: the LoS part has constant modulus).

LS estimation (eq. 4): terminal ``k`` sends a pilot row ``s_k`` (``n_p``
symbols, ``||s_k||^2 = n_p``, mutually orthogonal) at power ``p_k``; AP ``m``
receives ``Y_m = sum_k sqrt(p_k) H_mk s_k + N_m`` (eq. 3, pilot part) and
estimates ``H_hat_mk = Y_m s_k^H / (n_p sqrt(p_k)) = H_mk + W_mk`` with
``W_mk ~ CN(0, I_L / (n_p p_k))`` when the noise is ``CN(0, 1)`` (powers in
units of the noise power). Orthogonality makes the ``W_mk`` independent across
terminals and APs and independent of every channel.

Array convention: LSF arrays are ``(..., M, K)`` (APs, terminals); channels
append the antenna axis, ``(..., M, K, L)``.
"""

from __future__ import annotations

import numpy as np

from cfbench.physics.large_scale import rayleigh_channels


def rician_channels(rng: np.random.Generator, gain: np.ndarray, rician_factor, n_antennas: int) -> np.ndarray:
    """Draws of eq. (1) with random LoS phases, shape ``gain.shape + (L,)``.

    ``rician_factor`` (linear ``rho``) broadcasts against ``gain``, e.g. a
    per-terminal vector of shape (K,) against LSF of shape (..., M, K);
    ``rho = 0`` gives the Rayleigh channel of eq. (2) in distribution. The
    NLoS part reuses :func:`cfbench.physics.large_scale.rayleigh_channels`.
    """
    gain = np.asarray(gain, dtype=float)
    rho = np.broadcast_to(np.asarray(rician_factor, dtype=float), gain.shape)
    nlos = rayleigh_channels(rng, gain / (rho + 1.0), n_antennas)
    los_phase_rad = rng.uniform(-np.pi, np.pi, size=gain.shape + (n_antennas,))
    los_amplitude = np.sqrt(rho * gain / (rho + 1.0))[..., None]
    return los_amplitude * np.exp(1j * los_phase_rad) + nlos


def terminal_channels(rng: np.random.Generator, gain: np.ndarray, rician_factor, n_antennas: int) -> np.ndarray:
    """Channels of a mixed population: Rayleigh (eq. 2) where ``rician_factor == 0``,
    random-phase Rician (eq. 1) elsewhere. Pure Rayleigh populations draw only
    the NLoS part (same stream as :func:`rayleigh_channels`)."""
    if np.all(np.asarray(rician_factor) == 0):
        return rayleigh_channels(rng, gain, n_antennas)
    return rician_channels(rng, gain, rician_factor, n_antennas)


def orthogonal_pilots(n_terminals: int, n_pilot: int) -> np.ndarray:
    """Mutually orthogonal unit-modulus pilot rows (rows of the ``n_p``-point DFT),
    shape ``(K, n_p)``, with ``||s_k||^2 = n_p`` and ``s_k s_i^H = 0`` (Section II-A).
    Needs ``K <= n_p``."""
    if n_terminals > n_pilot:
        raise ValueError(f"{n_terminals} orthogonal pilots need n_pilot >= {n_terminals}, got {n_pilot}")
    k = np.arange(n_terminals)[:, None]
    t = np.arange(n_pilot)[None, :]
    return np.exp(-2j * np.pi * k * t / n_pilot)


def received_pilot_signal(rng: np.random.Generator, channels: np.ndarray, power_w, pilots: np.ndarray) -> np.ndarray:
    """Pilot part of eq. (3): ``Y_m = sum_k sqrt(p_k) H_mk s_k + N_m``, ``N_m ~ CN(0, I)``.

    ``channels`` (..., M, K, L), ``power_w`` broadcastable to (..., K) in units
    of the noise power, ``pilots`` (K, n_p); returns (..., M, L, n_p).
    """
    amplitude = np.sqrt(np.broadcast_to(np.asarray(power_w, dtype=float), channels.shape[:-3] + channels.shape[-2:-1]))
    signal = np.einsum("...mkl,...k,kt->...mlt", channels, amplitude, pilots)
    scale = np.sqrt(0.5)
    return signal + scale * (rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape))


def ls_estimate_from_pilots(received_pilot: np.ndarray, power_w, pilots: np.ndarray) -> np.ndarray:
    """Eq. (4): ``H_hat_mk = Y_m s_k^H / (n_p sqrt(p_k))``, shape (..., M, K, L)."""
    n_pilot = pilots.shape[-1]
    correlated = np.einsum("...mlt,kt->...mkl", received_pilot, pilots.conj())
    amplitude = np.sqrt(np.asarray(power_w, dtype=float))[..., None, :, None]
    return correlated / (n_pilot * amplitude)


def ls_error_variance(power_w, n_pilot: int):
    """Per-antenna variance ``1 / (n_p p_k)`` of the LS error ``W_mk`` (eq. 4),
    powers in units of the noise power."""
    return 1.0 / (n_pilot * np.asarray(power_w, dtype=float))


def ls_channel_estimate(rng: np.random.Generator, channels: np.ndarray, power_w, n_pilot: int) -> np.ndarray:
    """Statistically exact shortcut of eq. (4) with orthogonal pilots:
    ``H_hat = H + W``, ``W_mk ~ CN(0, I / (n_p p_k))`` i.i.d. over APs and
    terminals (no pilot matrices needed). ``power_w`` broadcasts to (..., K)."""
    variance = np.broadcast_to(ls_error_variance(power_w, n_pilot), channels.shape[:-3] + channels.shape[-2:-1])
    scale = np.sqrt(variance / 2.0)[..., None, :, None]
    noise = rng.standard_normal(channels.shape) + 1j * rng.standard_normal(channels.shape)
    return channels + scale * noise
