"""Can every terminal of a ``urllc`` instance meet eps_QoS at once? An exact, certified test.

Reliability of terminal k, ``eps_k <= eps_QoS`` (eq. 12), is ``delta_k >= gamma``
with ``gamma`` the scenario's SINR threshold (about 0.037 at Table I values):
``eps_k`` falls as ``delta_k`` rises (:func:`cfbench.physics.fbl.sinr_threshold`).
This module decides, per instance, whether some power vector in the box
``[p_min, p_max]^K`` makes a given set ``S`` of terminals reliable (with the
others at ``p_min``), and returns such a vector when one exists.

Least admissible power. With the closed forms regrouped by powers
(:class:`cfbench.problems.urllc.SinrCoefficients`, ``c_k = 1/(n_p p_k)``),

    1/delta_k = v_k/m_k^2 + (u_k (1 + 1/n_p) + (G p)_k)/(m_k^2 p_k) + ((F p)_k + z_k)/(n_p m_k^2 p_k^2),

where ``G`` and ``F`` have zero diagonals, so the right-hand side depends on
``p_k`` only through the explicit ``1/p_k`` and ``1/p_k^2``. Multiplying
``1/delta_k <= 1/t`` by ``m_k^2 p_k^2`` gives, for a target SINR ``t``,

    a_k p_k^2 - b_k(p) p_k - c_k(p) >= 0,    a_k = m_k^2/t - v_k,
    b_k(p) = t-free: u_k (1 + 1/n_p) + (G p)_k,    c_k(p) = ((F p)_k + z_k)/n_p.

If ``a_k <= 0`` terminal k cannot reach ``t`` at any power (its SINR is below
``m_k^2/v_k``, the limit of its own power going to infinity). Otherwise the
quadratic has one positive root and the condition is ``p_k >= I_k(p)`` with

    I_k(p) = (b_k + sqrt(b_k^2 + 4 a_k c_k)) / (2 a_k).

``I`` is a standard interference function (Yates, IEEE JSAC 13(7), 1995):
positive; monotone (``b_k``, ``c_k`` are non-decreasing in ``p``); and
scalable, ``I(s p) < s I(p)`` for ``s > 1`` (``b`` scales by ``s``, ``c`` by at most
``s``, so the root grows by less than ``s`` since ``z_k > 0``). So is
``J_k(p) = max(I_k(p), p_min)`` for ``k`` in ``S`` (and ``J_k = p_min`` outside ``S``).
Hence, from ``p^0 = p_min``, the iterates ``p^{n+1} = J(p^n)`` are
non-decreasing and every vector ``q`` in the box that makes ``S`` reliable
(``q >= J(q)``) satisfies ``q >= p^n`` for all n (induction with monotonicity).
Two certificates follow:

- **unreachable**: some ``a_k <= 0``, or some iterate has ``p^n_k > p_max``
  (then every admissible ``q`` would too);
- **reachable**: a vector in the box whose SINRs, computed by the evaluator's
  closed form, meet the target. The iteration is run at the slightly higher
  target ``gamma (1 + REACH_MARGIN)``: when a point exists at that target its
  iterates converge to the least one, whose SINRs exceed ``gamma``, so some
  finite iterate already meets ``gamma`` and is returned.

Both iterations run side by side, vectorised over instances (and subsets).
An instance whose best max-min SINR lies within ``REACH_MARGIN`` (relative)
above ``gamma``, or so close below it that ``max_iterations`` steps do not
leave the box, stays **undecided** (status 0): it is reported, never guessed.

Largest reliable set. When not every terminal can be reliable, the fewest
terminals that must miss eps_QoS is ``K - max |S|`` over the reliable sets
``S``. Reliability of a set is monotone (a subset of a reliable set is
reliable: dropping a terminal to ``p_min`` only lowers interference), so
:func:`largest_reliable_set` searches by the number ``r`` of dropped terminals,
``r = r_0, r_0 + 1, ...``, testing every set of that size at once, where
``r_0`` counts the terminals that miss ``gamma`` even at their own ``p_max``
with every other terminal at ``p_min`` (they are in no reliable set). The
first size with a reliable set is exact; if the number of sets to test
exceeds ``max_sets`` the search stops and reports the bounds it has (a lower
bound from the sizes ruled out, an upper bound from a greedy drop).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: relative SINR margin of the "reachable" iteration (module docstring)
REACH_MARGIN = 1e-6
#: relative slack on p_max and on the SINR target that absorbs floating-point rounding
ROUNDING = 1e-12
MAX_ITERATIONS = 20_000
#: most subsets tested per instance by :func:`largest_reliable_set`
MAX_SETS = 20_000

REACHABLE, UNDECIDED, UNREACHABLE = 1, 0, -1


@dataclass(frozen=True)
class ReliabilityTest:
    """Outcome per instance: ``status`` (..., ) in {1 reachable, 0 undecided, -1 unreachable},
    ``power_w`` (..., K) a reliable vector where reachable (else the last iterate, clipped to the
    box), ``iterations`` (...,) the steps taken."""

    status: np.ndarray
    power_w: np.ndarray
    iterations: np.ndarray


def _least_power_map(coefficients, target_sinr, power_w, served, p_min_w):
    """``J(p)`` of the module docstring for every batch element; ``inf`` where ``a_k <= 0``."""
    c = coefficients
    n_p = c.n_pilot
    a = c.mean ** 2 / target_sinr[..., None] - c.v
    b = c.u * (1.0 + 1.0 / n_p) + np.matmul(c.g, power_w[..., None])[..., 0]
    cc = (np.matmul(c.f, power_w[..., None])[..., 0] + c.z) / n_p
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(a > 0, (b + np.sqrt(b * b + 4.0 * a * cc)) / (2.0 * a), np.inf)
    return np.where(served, np.maximum(root, p_min_w), p_min_w)


def reliability_test(coefficients, sinr_threshold: float, p_min_w: float, p_max_w: float,
                     served: np.ndarray | None = None, max_iterations: int = MAX_ITERATIONS) -> ReliabilityTest:
    """Decide for every instance of ``coefficients`` (batch axes ``...``) whether the terminals in
    ``served`` (..., K) bool (default: all) can all reach ``sinr_threshold`` (a scalar or one per
    instance) with the others at
    ``p_min_w`` and every power in ``[p_min_w, p_max_w]``; certified both ways (module docstring)."""
    c = coefficients
    shape = c.mean.shape
    served = np.ones(shape, dtype=bool) if served is None else np.broadcast_to(np.asarray(served, bool), shape)
    batch = shape[:-1]
    threshold = np.broadcast_to(np.asarray(sinr_threshold, dtype=float), batch)
    # two iterations side by side on a leading axis of 2: [0] at gamma (unreachable certificate),
    # [1] at gamma (1 + margin) (its iterates are checked against gamma: reachable certificate)
    stacked = type(c)(*(np.broadcast_to(x, (2,) + x.shape) for x in
                        (c.mean, c.v, c.u, c.z, c.g, c.f)), n_pilot=c.n_pilot)
    target = np.empty((2,) + batch)
    target[0], target[1] = threshold, threshold * (1.0 + REACH_MARGIN)
    power = np.full((2,) + shape, float(p_min_w))
    status = np.zeros(batch, dtype=int)
    found = np.full(shape, float(p_min_w))
    iterations = np.zeros(batch, dtype=int)
    limit = p_max_w * (1.0 + ROUNDING)
    for step in range(max_iterations + 1):
        open_ = status == UNDECIDED
        # reachable: the margin iterate lies in the box and meets gamma on every served terminal
        candidate = power[1]
        inside = np.all(candidate <= limit, axis=-1)
        with np.errstate(divide="ignore"):
            meets = np.all(~served | (c.sinr(np.minimum(candidate, p_max_w)) >= threshold[..., None] * (1.0 + ROUNDING)),
                           axis=-1)
        reached = open_ & inside & meets
        found = np.where(reached[..., None], np.minimum(candidate, p_max_w), found)
        status = np.where(reached, REACHABLE, status)
        # unreachable: the iterate at gamma leaves the box (or some a_k <= 0 made it infinite)
        left = open_ & ~reached & np.any(power[0] > limit, axis=-1)
        status = np.where(left, UNREACHABLE, status)
        iterations = np.where(open_, step, iterations)
        if not np.any(status == UNDECIDED) or step == max_iterations:
            break
        power = _least_power_map(stacked, target, power, served, p_min_w)
    found = np.where((status == REACHABLE)[..., None], found, np.clip(power[0], p_min_w, p_max_w))
    return ReliabilityTest(status, found, iterations)


def individually_unreachable(coefficients, sinr_threshold: float, p_min_w: float, p_max_w: float) -> np.ndarray:
    """(..., K) bool: terminal k misses the threshold even at its own ``p_max`` with every other
    terminal at ``p_min`` (its best case: ``delta_k`` rises with ``p_k``, falls with every ``p_i``)."""
    K = coefficients.mean.shape[-1]
    eye = np.eye(K, dtype=bool)
    power = np.where(eye, p_max_w, p_min_w)  # row k: terminal k at p_max, the rest at p_min
    sinr = coefficients.sinr(np.broadcast_to(power, coefficients.mean.shape[:-1] + (K, K)))
    return np.diagonal(sinr, axis1=-2, axis2=-1) < sinr_threshold


@dataclass(frozen=True)
class LargestReliableSet:
    """One instance: ``served`` (K,) a reliable set of the largest size found, ``power_w`` (K,) a
    vector making it reliable, and bounds on the fewest terminals that must miss eps_QoS
    (``n_unreachable_low == n_unreachable_high`` when the search closed: exact)."""

    served: np.ndarray
    power_w: np.ndarray
    n_unreachable_low: int
    n_unreachable_high: int

    @property
    def exact(self) -> bool:
        return self.n_unreachable_low == self.n_unreachable_high


def take_instance(coefficients, i):
    """The coefficients of instance ``i`` of a batch."""
    c = coefficients
    return type(c)(c.mean[i], c.v[i], c.u[i], c.z[i], c.g[i], c.f[i], n_pilot=c.n_pilot)


def _greedy_set(coefficients, threshold, p_min_w, p_max_w, served, max_iterations):
    """Drop, one at a time, the terminal that asks for the most power at the unreachable
    certificate, until the set is reachable (an upper bound on the fewest unreliable)."""
    served = served.copy()
    while served.any():
        t = reliability_test(coefficients, threshold, p_min_w, p_max_w, served, max_iterations)
        if t.status == REACHABLE:
            return served, t.power_w
        ask = _least_power_map(coefficients, np.asarray(threshold), t.power_w, served, p_min_w)
        served[int(np.argmax(np.where(served, ask, -np.inf)))] = False
    return served, np.full(served.shape, float(p_min_w))


def largest_reliable_set(coefficients, sinr_threshold: float, p_min_w: float, p_max_w: float,
                         max_sets: int = MAX_SETS, max_iterations: int = MAX_ITERATIONS) -> LargestReliableSet:
    """Largest set of terminals of ONE instance (``coefficients`` without batch axes) that can be
    reliable at once, by exhaustive search over the number of dropped terminals (module docstring)."""
    c = coefficients
    K = c.mean.shape[-1]
    hopeless = individually_unreachable(c, sinr_threshold, p_min_w, p_max_w)
    candidates = np.flatnonzero(~hopeless)
    low = int(hopeless.sum())
    tested = 0
    for extra in range(len(candidates) + 1):
        combos = list(itertools.islice(itertools.combinations(candidates, extra), max_sets - tested + 1))
        if tested + len(combos) > max_sets:
            break
        tested += len(combos)
        served = np.tile(~hopeless, (len(combos), 1))
        for row, dropped in enumerate(combos):
            served[row, list(dropped)] = False
        batch = type(c)(*(np.broadcast_to(x, (len(combos),) + x.shape) for x in (c.mean, c.v, c.u, c.z, c.g, c.f)),
                        n_pilot=c.n_pilot)
        t = reliability_test(batch, sinr_threshold, p_min_w, p_max_w, served, max_iterations)
        ok = np.flatnonzero(t.status == REACHABLE)
        if len(ok):
            j = int(ok[0])
            n_dropped = int(hopeless.sum()) + extra
            return LargestReliableSet(served[j], t.power_w[j], n_dropped, n_dropped)
        if np.any(t.status == UNDECIDED):
            break  # a set of this size might be reliable: this size is not ruled out
        low = int(hopeless.sum()) + extra + 1
    served, power = _greedy_set(c, sinr_threshold, p_min_w, p_max_w, ~hopeless, max_iterations)
    return LargestReliableSet(served, power, min(low, K - int(served.sum())), K - int(served.sum()))


def max_min_sinr(coefficients, p_min_w: float, p_max_w: float, rel_tol: float = 1e-6,
                 max_iterations: int = MAX_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Bracket ``(low, high)`` (...,) of the largest ``min_k delta_k`` over the power box, by
    bisection on the target with :func:`reliability_test`: ``low`` is met by a vector the
    evaluator's closed form checked, ``high`` is certified unreachable. An undecided level
    stops the refinement of that instance (its bracket stays as it is)."""
    c = coefficients
    low = np.min(c.sinr(np.full(c.mean.shape, float(p_max_w))), axis=-1)   # common p_max is a point
    high = np.min(c.mean ** 2 / c.v, axis=-1) * (1.0 + ROUNDING)           # no power beats own p -> inf
    stuck = np.zeros(low.shape, dtype=bool)
    for _ in range(200):
        open_ = ~stuck & (high > low * (1.0 + rel_tol))
        if not open_.any():
            break
        mid = np.sqrt(low * high)
        t = reliability_test(c, np.where(open_, mid, low), p_min_w, p_max_w, max_iterations=max_iterations)
        reached = open_ & (t.status == REACHABLE)
        achieved = np.min(c.sinr(t.power_w), axis=-1)
        low = np.where(reached, np.maximum(mid, np.minimum(achieved, high)), low)
        high = np.where(open_ & (t.status == UNREACHABLE), mid, high)
        stuck |= open_ & (t.status == UNDECIDED)
    return low, high
