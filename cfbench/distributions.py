"""Distances between two samples of a per-terminal metric (how learned solvers are compared
with their labels in the papers' tables).

- :func:`kl_divergence`: ``KL(P || Q) = sum_b P_b ln(P_b / Q_b)`` (nats) between histograms
  of the reference sample ``P`` (e.g. OPC's device EEs) and the estimate ``Q`` (the
  GNN's) on shared bins. The coexistence paper's Table II reports this number without
  fixing the estimator; here: ``bins`` equal-width bins of ``log10`` of the values over
  the pooled range (EEs span decades), values ``<= 0`` (a device without a reliable
  rate) in the lowest bin, and half a count added to every bin of both histograms
  (Jeffreys smoothing) so that an empty bin of ``Q`` gives a finite number.
- :func:`likely_loss_percent`: the "95 %-likely loss" of Table II, the relative shortfall
  of the estimate's ``percent``-th percentile with respect to the reference's,
  ``100 (x_ref - x_est) / x_ref`` (negative when the estimate is better).
"""

from __future__ import annotations

import numpy as np


def _clean(sample) -> np.ndarray:
    x = np.asarray(sample, float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("empty sample (no finite values)")
    return x


def kl_divergence(reference, estimate, bins: int = 50, log10: bool = True) -> float:
    """``KL(P_reference || Q_estimate)`` in nats between smoothed histograms (module docstring)."""
    p, q = _clean(reference), _clean(estimate)
    if log10:
        positive = np.concatenate([p[p > 0], q[q > 0]])
        floor = positive.min() if positive.size else 1.0
        p, q = np.log10(np.maximum(p, floor)), np.log10(np.maximum(q, floor))
    lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    hp = np.histogram(p, edges)[0] + 0.5
    hq = np.histogram(q, edges)[0] + 0.5
    hp, hq = hp / hp.sum(), hq / hq.sum()
    return float(np.sum(hp * np.log(hp / hq)))


def likely_loss_percent(reference, estimate, percent: float = 5.0) -> float:
    """Relative shortfall (%) of the estimate's ``percent``-th percentile (module docstring)."""
    x_ref = np.percentile(_clean(reference), percent)
    x_est = np.percentile(_clean(estimate), percent)
    return float(100.0 * (x_ref - x_est) / x_ref)
