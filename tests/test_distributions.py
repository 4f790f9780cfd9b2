"""The distances Table II reports: KL of smoothed histograms and the 95 %-likely loss."""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.distributions import kl_divergence, likely_loss_percent


def test_kl_is_zero_for_one_sample_and_positive_and_asymmetric_otherwise():
    rng = np.random.default_rng(0)
    x = rng.lognormal(0.0, 1.0, 20_000)
    assert kl_divergence(x, x) == pytest.approx(0.0, abs=1e-12)
    y = rng.lognormal(0.5, 1.0, 20_000)
    assert kl_divergence(x, y) > 0.05
    z = rng.lognormal(0.0, 0.3, 20_000)
    assert abs(kl_divergence(x, z) - kl_divergence(z, x)) > 0.1


def test_kl_matches_the_closed_form_of_two_gaussians():
    """KL(N(0, 1) || N(1, 1.5^2)) = ln 1.5 + (1 + 1) / (2 * 2.25) - 1/2 = 0.3499 nats (on log10 values)."""
    rng = np.random.default_rng(1)
    p = 10 ** rng.normal(0.0, 1.0, 400_000)
    q = 10 ** rng.normal(1.0, 1.5, 400_000)
    exact = np.log(1.5) + (1.0 + 1.0) / (2 * 2.25) - 0.5
    assert kl_divergence(p, q, bins=200) == pytest.approx(exact, rel=0.03)


def test_zero_values_and_likely_loss():
    ref = np.linspace(1.0, 100.0, 1001)
    assert likely_loss_percent(ref, ref) == 0.0
    assert likely_loss_percent(ref, 0.9 * ref) == pytest.approx(10.0)
    assert likely_loss_percent(ref, 1.2 * ref) == pytest.approx(-20.0)
    with_zeros = np.concatenate([ref, np.zeros(100)])
    assert np.isfinite(kl_divergence(ref, with_zeros)) and kl_divergence(ref, with_zeros) > 0
    with pytest.raises(ValueError, match="empty"):
        kl_divergence([np.nan], ref)
