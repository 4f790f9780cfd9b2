"""Finite-blocklength (FBL) helpers: Q, Q^-1, channel dispersion, normal approximation.

Written once for every problem that has a short-packet reliability constraint
(``urllc``, ``mmtc``). The model is the normal approximation of Polyanskiy,
Poor and Verdú (2010) for the complex AWGN channel with SINR ``gamma`` and
blocklength ``n`` channel uses, in the form of the URLLC paper
(Yan et al., ``shared/papers/urllc_ee_se_tradeoff.txt``), eq. (7)::

    eps = Q( (log2(1 + gamma) - R) / sqrt(V(gamma) / n) ),
    V(gamma) = [1 - (1 + gamma)^-2] (log2 e)^2            [bit^2 per channel use]

where ``R`` is the packet rate in bit per channel use. With ``D`` bits per
packet sent in ``n_d`` data channel uses (Table I: D = 32, n_d = 2000),
``R = D / n_d``. Multiplying numerator and denominator by ``ln 2`` gives the
same value in nats, ``Q( (ln(1 + gamma) - R ln 2) sqrt(n / V_nats) )`` with
``V_nats = 1 - (1 + gamma)^-2``: the argument of Q is dimensionless, so either
unit gives the same probability as long as rate and dispersion use the same
one. The functions below compute in nats internally and take or return rates
in bit per channel use (bit/s/Hz), the paper's unit.

Solving eq. (7) for the rate at a target error probability gives the
achievable rate (bit/s/Hz)::

    R(gamma, n, eps) = log2(1 + gamma) - sqrt(V(gamma) / n) Q^-1(eps).

All functions are vectorised over numpy arrays (broadcasting).
"""

from __future__ import annotations

import numpy as np

from cfbench.lazy import lazy_import

special = lazy_import("scipy.special")  # imported on first use: 'cfbench list' does without it

LOG2_E = 1.0 / np.log(2.0)  # log2(e) = 1 / ln 2


def q_function(x):
    """Gaussian tail ``Q(x) = P[Z > x]``, ``Z ~ N(0, 1)`` (used in eq. 7).

    Computed as ``ndtr(-x)`` (the standard normal CDF at ``-x``), which keeps
    full relative precision in the far tail (e.g. ``Q(7.03) ~ 1e-12``,
    ``Q(37) ~ 6e-300``) where ``1 - Phi(x)`` would round to 0.

    Note: the paper describes Q as the tail of a ``CN(0, 1)`` variable; its
    own integral ``1/sqrt(2 pi) int_c^inf exp(-t^2/2) dt`` is the tail of a
    real ``N(0, 1)``, which is what is implemented.
    """
    return special.ndtr(-np.asarray(x, dtype=float))


def log_q_function(x):
    """``ln Q(x)``, finite even where ``Q(x)`` underflows (``x > 38``)."""
    return special.log_ndtr(-np.asarray(x, dtype=float))


def q_inverse(probability):
    """Inverse of :func:`q_function`: ``Q^-1(p) = -Phi^-1(p)``, for ``p`` in [0, 1].

    ``-ndtri(p)`` is accurate for tiny probabilities (1e-5 ... 1e-300), unlike
    ``ndtri(1 - p)`` which loses ``p`` to rounding below about 1e-16.
    ``Q^-1(0) = +inf``, ``Q^-1(1) = -inf``.
    """
    return -special.ndtri(np.asarray(probability, dtype=float))


def channel_dispersion_nats2(sinr):
    """Channel dispersion of the complex AWGN channel ``V = 1 - (1 + gamma)^-2``,
    in nat^2 per channel use (dimensionless), for linear SINR ``gamma >= 0``."""
    sinr = np.asarray(sinr, dtype=float)
    return -np.expm1(-2.0 * np.log1p(sinr))  # 1 - (1+g)^-2 without cancellation at small g


def channel_dispersion_bits2(sinr):
    """``V(gamma) = [1 - (1 + gamma)^-2] (log2 e)^2`` in bit^2 per channel use,
    the paper's form below eq. (7)."""
    return channel_dispersion_nats2(sinr) * LOG2_E ** 2


def gaussian_codebook_dispersion_nats2(sinr):
    """Dispersion ``V(x) = 2x / (1 + x)`` (nat^2) of i.i.d. Gaussian codebooks with
    nearest-neighbour decoding (Scarlett, Tan and Durisi 2017, ref. [32] of the
    coexistence paper), the form of that paper's eq. (20). It exceeds the AWGN
    dispersion ``1 - (1 + x)^-2`` at every ``x > 0`` and tends to 2 (not 1)."""
    sinr = np.asarray(sinr, dtype=float)
    return 2.0 * sinr / (1.0 + sinr)


DISPERSIONS = {"awgn": channel_dispersion_nats2, "gaussian-codebook": gaussian_codebook_dispersion_nats2}


def normal_approximation_rate_bits(sinr, blocklength, error_probability, clip_at_zero: bool = True,
                                   dispersion: str = "awgn"):
    """Achievable rate at error probability ``eps`` over ``n`` channel uses,
    in bit per channel use (bit/s/Hz): eq. (7) solved for ``R``::

        R = log2(1 + gamma) - sqrt(V(gamma) / n) Q^-1(eps),   V in bit^2.

    The normal approximation goes negative at low SINR (the dispersion term
    exceeds the capacity term): no positive rate is reliable at ``eps`` there.
    With ``clip_at_zero`` (default) the rate is ``max(0, R)``, the reading the
    URLLC spec uses for SE and EE (eqs. 8-9); pass ``False`` for the raw value,
    e.g. to check the inverse relation with :func:`error_probability`.
    ``dispersion`` picks ``V``: ``"awgn"`` (above) or ``"gaussian-codebook"``
    (:func:`gaussian_codebook_dispersion_nats2`, the coexistence paper's eq. 20).
    """
    sinr = np.asarray(sinr, dtype=float)
    blocklength = np.asarray(blocklength, dtype=float)
    variance = DISPERSIONS[dispersion](sinr)
    rate_nats = np.log1p(sinr) - np.sqrt(variance / blocklength) * q_inverse(error_probability)
    rate_bits = rate_nats * LOG2_E
    return np.maximum(rate_bits, 0.0) if clip_at_zero else rate_bits


def error_probability(sinr, blocklength, rate_bits):
    """Packet error probability, eq. (7)::

        eps = Q( (log2(1 + gamma) - R) / sqrt(V(gamma) / n) )
            = Q( (ln(1 + gamma) - R ln 2) sqrt(n / V_nats(gamma)) ),

    for linear SINR ``gamma``, blocklength ``n`` (channel uses) and rate ``R``
    (bit per channel use). At ``gamma = 0`` the dispersion vanishes and the
    argument is the limit ``gamma -> 0+``: ``eps = 1`` for ``R > 0`` and
    ``eps = 1/2`` for ``R = 0``.
    """
    sinr, blocklength, rate_bits = np.broadcast_arrays(
        np.asarray(sinr, dtype=float), np.asarray(blocklength, dtype=float), np.asarray(rate_bits, dtype=float)
    )
    dispersion = channel_dispersion_nats2(sinr)
    margin_nats = np.log1p(sinr) - rate_bits * np.log(2.0)
    positive = dispersion > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        argument = np.where(positive, margin_nats * np.sqrt(blocklength / np.where(positive, dispersion, 1.0)), 0.0)
    eps = q_function(argument)
    at_zero_sinr = np.where(rate_bits > 0, 1.0, 0.5)
    return np.where(positive, eps, at_zero_sinr)


def packet_error_probability(sinr, n_data: int, bits_per_packet: float):
    """Eq. (7) for a ``D``-bit packet in ``n_d`` data channel uses (``R = D / n_d``)."""
    return error_probability(sinr, n_data, np.asarray(bits_per_packet, dtype=float) / np.asarray(n_data, dtype=float))


def sinr_threshold(blocklength, rate_bits, target_error_probability, iterations: int = 200):
    """Smallest linear SINR with ``error_probability(gamma, n, R) <= eps`` (eq. 7).

    For ``R > 0`` the argument of Q in eq. (7) increases strictly with
    ``gamma`` (with ``x = ln(1 + gamma)``, ``d/dx [(x - r) / sqrt(1 - e^-2x)]
    > 0`` for all ``x > 0``), so the reliability constraint ``eps <= eps_QoS``
    is the SINR constraint ``gamma >= threshold``. Found by vectorised
    bisection on ``ln gamma`` in [1e-12, 1e12]; with 200 halvings the bracket
    ends at machine precision.
    """
    blocklength, rate_bits, target = np.broadcast_arrays(
        np.asarray(blocklength, dtype=float), np.asarray(rate_bits, dtype=float),
        np.asarray(target_error_probability, dtype=float),
    )
    lo = np.full(blocklength.shape, np.log(1e-12))
    hi = np.full(blocklength.shape, np.log(1e12))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        reliable = error_probability(np.exp(mid), blocklength, rate_bits) <= target
        hi = np.where(reliable, mid, hi)
        lo = np.where(reliable, lo, mid)
    return np.exp(hi)
