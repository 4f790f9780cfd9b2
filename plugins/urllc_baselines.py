"""Baselines for ``urllc`` (``shared/spec/urllc.md``, "Methods to register").

Yan et al., "EE-SE Trade-Off in Deep Learning Based URLLC Cell-Free Massive
MIMO Systems": maximise Omega (eq. 10) over the terminal powers
``p_min <= p_k <= p_max`` subject to ``eps_k <= eps_QoS`` (eq. 12).

- ``p-max``: every terminal at ``p_max`` (the paper's benchmark, "p_max").
- ``p-min``: every terminal at ``p_min``.
- ``random``: ``p_k ~ U[p_min, p_max]`` i.i.d. (linear), seeded per instance
  with :func:`cfbench.instance_rng`.
- ``best-uniform``: the best common power level per instance: 200 levels
  log-spaced over ``[p_min, p_max]`` and two refinements (41 log-spaced
  levels between the neighbours of the best level). "Best" follows (12):
  first the fewest terminals violating ``eps_QoS``, then the largest Omega
  (reliability is a constraint, Omega the objective). With
  ``reliability_first=False`` it maximises Omega alone.

The helpers (:class:`CandidateScorer`, :func:`best_common_level`) score power
vectors of one instance with the evaluator's own formulas
(:func:`cfbench.problems.urllc.tradeoff_terms`) and the power-regrouped
closed-form SINR (:class:`cfbench.problems.urllc.SinrCoefficients`, equal to
``urllc_model.uatf_sinr``, tested); the SCA plugin reuses them.
"""

from __future__ import annotations

import numpy as np

from cfbench import Instances, Option, Solver, hookimpl, instance_rng
from cfbench.problems.urllc import EPS_TOLERANCE_DECADES, SinrCoefficients, tradeoff_terms

#: ``instance_rng`` stream of the ``random`` baseline
RANDOM_POWER_STREAM = 2201


class CandidateScorer:
    """Omega and reliability of many power vectors (S, K) on instance ``i`` of ``instances``."""

    def __init__(self, instances: Instances, i: int) -> None:
        self.params = p = instances.params
        self.aerial = np.asarray(instances.aerial[i], dtype=bool)
        self.coefficients = SinrCoefficients.from_lsf(instances.beta[i], instances.rician_factor[i],
                                                      p.n_antennas, p.n_pilot)
        self.log10_eps_limit = np.log10(p.eps_qos) + EPS_TOLERANCE_DECADES

    def sinr(self, power_w: np.ndarray) -> np.ndarray:
        return self.coefficients.sinr(power_w)

    def score(self, power_w: np.ndarray) -> dict[str, np.ndarray]:
        """``tradeoff_terms`` of ``power_w`` (S, K) plus ``sinr`` (S, K), ``reliable`` (S, K)
        (eps_k within eps_QoS, with the evaluator's tolerance) and ``n_violating`` (S,)."""
        power_w = np.atleast_2d(np.asarray(power_w, dtype=float))
        sinr = self.sinr(power_w)
        out = tradeoff_terms(self.params, sinr, power_w, self.aerial)
        out["sinr"] = sinr
        out["reliable"] = np.log10(np.maximum(out["eps"], 1e-300)) <= self.log10_eps_limit
        out["n_violating"] = np.sum(~out["reliable"], axis=-1)
        return out


def best_index(omega: np.ndarray, n_violating: np.ndarray, reliability_first: bool = True) -> int:
    """Index of the best candidate: fewest violating terminals, then largest Omega
    (or largest Omega alone)."""
    omega = np.where(np.isfinite(omega), omega, -np.inf)
    if not reliability_first:
        return int(np.argmax(omega))
    fewest = n_violating == np.min(n_violating)
    return int(np.argmax(np.where(fewest, omega, -np.inf)))


def best_common_level(scorer: CandidateScorer, n_grid: int = 200, n_refine: int = 2, n_fine: int = 41,
                      reliability_first: bool = True) -> tuple[float, dict[str, float]]:
    """Best common power level over ``[p_min, p_max]`` (grid + refinements, log scale).
    Returns ``(level_w, {"omega": ..., "n_violating": ...})``."""
    p = scorer.params
    K = p.n_terminals
    levels = np.geomspace(p.p_min_w, p.p_max_w, n_grid)
    best_level, best = None, None
    for _ in range(n_refine + 1):
        if best_level is not None:
            levels = np.append(levels, best_level)  # never lose the incumbent
        s = scorer.score(np.repeat(levels[:, None], K, axis=1))
        j = best_index(s["omega"], s["n_violating"], reliability_first)
        best_level, best = float(levels[j]), {"omega": float(s["omega"][j]), "n_violating": int(s["n_violating"][j])}
        order = np.sort(levels)
        pos = int(np.searchsorted(order, best_level))
        a = order[max(pos - 1, 0)]
        b = order[min(pos + 1, len(order) - 1)]
        levels = np.geomspace(a, b, n_fine)
    return best_level, best


# -- solvers --------------------------------------------------------------------------

class _FixedPower(Solver):
    """Every terminal at the scenario's power named by ``level`` (``p_max_w`` or ``p_min_w``)."""

    kind = "baseline"
    problems = ("urllc",)
    level: str

    def solve(self, instances: Instances):
        p = instances.params
        return {"power_w": np.full((len(instances), p.n_terminals), getattr(p, self.level))}


class PMax(_FixedPower):
    name = "p-max"
    level = "p_max_w"
    description = "every terminal at p_max (the paper's benchmark)"


class PMin(_FixedPower):
    name = "p-min"
    level = "p_min_w"
    description = "every terminal at p_min"


class RandomPower(Solver):
    name = "random"
    kind = "baseline"
    problems = ("urllc",)
    description = "p_k ~ U[p_min, p_max] i.i.d., seeded per instance"

    def solve(self, instances: Instances):
        p = instances.params
        power_w = np.empty((len(instances), p.n_terminals))
        for i in range(len(instances)):
            rng = instance_rng(instances, i, stream=RANDOM_POWER_STREAM)
            power_w[i] = rng.uniform(p.p_min_w, p.p_max_w, size=p.n_terminals)
        return {"power_w": power_w}


class BestUniformPower(Solver):
    name = "best-uniform"
    kind = "baseline"
    problems = ("urllc",)
    description = "best common power level per instance (fewest eps_QoS violations, then max Omega; 1-D search)"
    options_spec = (Option("reliability_first", bool, True,
                           "rank levels by eps_QoS violations first, then Omega (false: Omega only)"),)

    def solve(self, instances: Instances):
        p = instances.params
        reliability_first = self.options["reliability_first"]
        power_w = np.empty((len(instances), p.n_terminals))
        for i in range(len(instances)):
            level_w, _ = best_common_level(CandidateScorer(instances, i), reliability_first=reliability_first)
            power_w[i] = level_w
        return {"power_w": np.clip(power_w, p.p_min_w, p.p_max_w)}


@hookimpl
def cfbench_solvers():
    return [PMax, PMin, RandomPower, BestUniformPower]
