"""Finite-blocklength helpers (cfbench.physics.fbl) against reference values and each other.

Reference values of Q and Q^-1 were computed with mpmath at 40 digits
(``erfc(x / sqrt 2) / 2`` and its root), independent of scipy's ndtr/ndtri.
"""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.physics import fbl

# (x, Q(x)) from mpmath, 17 significant digits
Q_REFERENCE = [
    (0.0, 0.5),
    (1.0, 0.15865525393145705),
    (3.0, 0.0013498980316300945),
    (7.0, 1.279812543885835e-12),
    (10.0, 7.6198530241605261e-24),
    (20.0, 2.7536241186062337e-89),
]
# (p, Q^-1(p)) from mpmath
Q_INVERSE_REFERENCE = [
    (1e-3, 3.0902323061678135),
    (1e-5, 4.2648907939228246),
    (1e-9, 5.9978070150076869),
    (1e-12, 7.0344838253011319),
]


@pytest.mark.parametrize("x, expected", Q_REFERENCE)
def test_q_function_matches_reference_including_far_tail(x, expected):
    assert fbl.q_function(x) == pytest.approx(expected, rel=1e-12)
    assert fbl.q_function(-x) == pytest.approx(1.0 - expected, rel=1e-12, abs=1e-300)
    assert fbl.log_q_function(x) == pytest.approx(np.log(expected), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("p, expected", Q_INVERSE_REFERENCE)
def test_q_inverse_matches_reference_for_tiny_probabilities(p, expected):
    assert fbl.q_inverse(p) == pytest.approx(expected, rel=1e-12)
    assert fbl.q_inverse(1.0 - p) == pytest.approx(-expected, rel=1e-6)  # 1 - p rounds for tiny p


def test_q_and_q_inverse_are_inverse_of_each_other():
    probabilities = np.logspace(-15, np.log10(0.99), 400)
    np.testing.assert_allclose(fbl.q_function(fbl.q_inverse(probabilities)), probabilities, rtol=1e-12)
    # for x < 0, Q(x) = 1 - tiny loses ~1e-16 absolutely, i.e. ~1e-16 / phi(x) in x:
    # ~3e-14 at x = -3, so x in [-3, 8] is checked to 1e-10
    x = np.linspace(-3.0, 8.0, 441)
    np.testing.assert_allclose(fbl.q_inverse(fbl.q_function(x)), x, rtol=1e-10, atol=1e-10)
    assert fbl.q_inverse(0.0) == np.inf and fbl.q_inverse(1.0) == -np.inf


def test_channel_dispersion_units_and_limits():
    sinr = np.array([0.0, 1e-12, 1e-3, 1.0, 1e3, 1e9])
    v_nats = fbl.channel_dispersion_nats2(sinr)
    np.testing.assert_allclose(v_nats, 1.0 - (1.0 + sinr) ** -2.0, rtol=1e-9, atol=1e-15)
    assert v_nats[0] == 0.0
    assert v_nats[1] == pytest.approx(2e-12, rel=1e-9)  # 1 - (1+g)^-2 ~ 2g without cancellation
    assert v_nats[-1] == pytest.approx(1.0, rel=1e-12)
    # paper below eq. (7): V = [1 - (1+x)^-2] (log2 e)^2 in bit^2
    np.testing.assert_allclose(fbl.channel_dispersion_bits2(sinr), v_nats * np.log2(np.e) ** 2, rtol=1e-14)


def test_error_probability_is_eq7_in_bits():
    """The nats implementation equals eq. (7) written in bits, term by term."""
    sinr = np.array([0.02, 0.037, 0.1, 0.5, 2.0])
    n, bits = 2000, 32
    rate = bits / n
    literal = fbl.q_function((np.log2(1 + sinr) - rate) / np.sqrt(fbl.channel_dispersion_bits2(sinr) / n))
    np.testing.assert_allclose(fbl.packet_error_probability(sinr, n, bits), literal, rtol=1e-10)
    np.testing.assert_allclose(fbl.error_probability(sinr, n, rate), literal, rtol=1e-10)


@pytest.mark.parametrize("target", [1e-1, 1e-5, 1e-9, 1e-12])
def test_rate_at_eps_gives_back_eps(target):
    sinr = np.logspace(-2, 3, 60)[:, None]
    blocklength = np.array([100, 500, 2000])[None, :]
    rate = fbl.normal_approximation_rate_bits(sinr, blocklength, target, clip_at_zero=False)
    np.testing.assert_allclose(fbl.error_probability(sinr, blocklength, rate), target, rtol=1e-7)


def test_rate_formula_clipping_and_limits():
    sinr = np.array([1e-3, 0.01, 1.0, 10.0])
    raw = fbl.normal_approximation_rate_bits(sinr, 2000, 1e-5, clip_at_zero=False)
    expected = np.log2(1 + sinr) - np.sqrt(fbl.channel_dispersion_bits2(sinr) / 2000) * fbl.q_inverse(1e-5)
    np.testing.assert_allclose(raw, expected, rtol=1e-12)
    assert raw[0] < 0 < raw[-1]  # the normal approximation goes negative at low SINR
    clipped = fbl.normal_approximation_rate_bits(sinr, 2000, 1e-5)
    np.testing.assert_array_equal(clipped, np.maximum(raw, 0.0))
    # infinite blocklength: the Shannon rate
    assert fbl.normal_approximation_rate_bits(3.0, 1e16, 1e-5) == pytest.approx(2.0, rel=1e-6)
    # rate grows with the error probability allowed
    assert fbl.normal_approximation_rate_bits(1.0, 2000, 1e-3) > fbl.normal_approximation_rate_bits(1.0, 2000, 1e-9)


def test_error_probability_at_zero_sinr_is_the_limit():
    eps = fbl.error_probability(np.array([0.0, 0.0, 1e-14]), 2000, np.array([0.016, 0.0, 0.016]))
    np.testing.assert_allclose(eps, [1.0, 0.5, 1.0])


def test_sinr_threshold_of_the_urllc_spec():
    """D = 32 bits, n_d = 2000, eps_QoS = 1e-5 <=> delta >= about 0.037 (-14.3 dB), spec urllc.md."""
    threshold = fbl.sinr_threshold(2000, 32 / 2000, 1e-5)
    assert threshold == pytest.approx(0.0370085, rel=1e-5)
    assert 10 * np.log10(threshold) == pytest.approx(-14.3, abs=0.05)
    assert fbl.packet_error_probability(threshold, 2000, 32) == pytest.approx(1e-5, rel=1e-8)
    sinr = threshold * np.array([0.98, 1.02])
    below, above = fbl.packet_error_probability(sinr, 2000, 32)
    assert below > 1e-5 > above
    # eps decreases strictly with SINR (what makes the threshold unique); this
    # range keeps eps away from the saturation at 1 and the underflow to 0
    eps = fbl.packet_error_probability(np.linspace(0.005, 0.12, 500), 2000, 32)
    assert eps[0] > 0.99 and eps[-1] < 1e-20
    assert np.all(np.diff(eps) < 0)


def test_sinr_threshold_vectorised():
    blocklength = np.array([[200], [2000]])
    target = np.array([1e-3, 1e-5, 1e-9])
    thresholds = fbl.sinr_threshold(blocklength, 32 / blocklength, target)
    assert thresholds.shape == (2, 3)
    np.testing.assert_allclose(fbl.error_probability(thresholds, blocklength, 32 / blocklength), target * np.ones((2, 1)),
                               rtol=1e-6)
    assert np.all(np.diff(thresholds, axis=1) > 0)
