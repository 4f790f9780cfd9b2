"""Baselines for ``sum-ee`` (``shared/spec/sum_ee.md``, "Methods to register").

Raghunath, Peng, Jorswieck, "Energy-Efficient Power Allocation in Cell-Free
Massive MIMO via Graph Neural Networks", problem (1): maximise

    J(P) = sum_k log2(1 + SINR_k) / (mu sum_l p_kl + P_c)

over the K x L power matrix P (p_kl: power AP l spends on UE k), here with the
spec's per-AP budget sum_k p_kl <= P_max.

Four baselines:

- ``equal``: P_max / K on every link (the paper's "equal power allocation").
- ``random``: per AP a Dirichlet(1, ..., 1) split of U(0, 1) * P_max over the
  K UEs (the paper's "random power allocation"), seeded per instance.
- ``best-uniform``: one common power level on every link, chosen per instance
  by a 1-D search on the true objective.
- ``nearest-ap``: each UE served only by its strongest AP (largest beta_lk),
  one common power level on the served links, chosen by a 1-D search.

The helpers below (objective of many candidate power matrices for one
instance, the 1-D level search, budget repair) are shared with the SCA and
reference plugins. They evaluate J only through ``SumEE.objective_terms``, the
evaluator's own formula.
"""

from __future__ import annotations

import numpy as np

from cfbench import Instances, Solver, hookimpl, instance_rng

#: ``instance_rng`` stream of the ``random`` baseline.
RANDOM_POWER_STREAM = 1101


# -- shared helpers -------------------------------------------------------------------

def repeat_instance(instances: Instances, i: int, n_candidates: int) -> Instances:
    """Instance ``i`` seen ``n_candidates`` times (read-only broadcast views, no copies),
    so the problem's vectorised formulas score many power matrices of one instance."""
    arrays = {
        name: np.broadcast_to(arr[i], (n_candidates,) + arr.shape[1:]) for name, arr in instances.arrays.items()
    }
    index = np.full(n_candidates, instances.index[i])
    return Instances(instances.problem, instances.scenario, instances.seed, index, arrays, instances.params)


def sum_ee(problem, instances: Instances, power_w: np.ndarray) -> np.ndarray:
    """Eq. (1): ``J = B/1e6 * sum_k SE_k / (mu sum_l p_kl + P_c)`` per instance, in the
    evaluator's unit (bit/s/Hz/J at 1 MHz), from ``SumEE.objective_terms``."""
    se, consumption_w = problem.objective_terms(instances, power_w)
    return (instances.params.bandwidth_hz / 1e6) * np.sum(se / consumption_w, axis=1)


def candidate_sum_ee(problem, instances: Instances, i: int, power_w: np.ndarray) -> np.ndarray:
    """J of each candidate power matrix ``power_w`` (S, K, L) on instance ``i``, shape (S,)."""
    return sum_ee(problem, repeat_instance(instances, i, len(power_w)), power_w)


def fit_budget(power_w: np.ndarray, ap_power_budget_w: float) -> np.ndarray:
    """Clip to ``p_kl >= 0`` and scale down every AP whose load ``sum_k p_kl``
    exceeds ``P_max`` (repairs rounding of an optimiser's output); (..., K, L)."""
    power_w = np.maximum(np.asarray(power_w, dtype=float), 0.0)
    load_w = power_w.sum(axis=-2, keepdims=True)
    scale = np.where(load_w > ap_power_budget_w, ap_power_budget_w / np.maximum(load_w, 1e-300), 1.0)
    return np.minimum(power_w * scale, ap_power_budget_w)


def best_level_w(problem, instances: Instances, i: int, links: np.ndarray, max_level_w: float,
                 decades: float = 6.0, n_grid: int = 61, n_refine: int = 2, n_fine: int = 41) -> tuple[float, float]:
    """1-D search for the common power level p of the links in the 0/1 pattern
    ``links`` (K, L): maximise J(p * links) over p in (0, max_level_w].

    A log-spaced grid over ``decades`` decades below ``max_level_w``, then
    ``n_refine`` finer log grids between the neighbours of the best point.
    Returns ``(level_w, J)``.
    """
    links = np.asarray(links, dtype=float)
    lo, hi = np.log(max_level_w) - decades * np.log(10.0), np.log(max_level_w)
    levels = np.exp(np.linspace(lo, hi, n_grid))
    for _ in range(n_refine + 1):
        values = candidate_sum_ee(problem, instances, i, levels[:, None, None] * links[None])
        best = int(np.argmax(values))
        level, value = levels[best], values[best]
        a = np.log(levels[max(best - 1, 0)])
        b = np.log(levels[min(best + 1, len(levels) - 1)])
        levels = np.exp(np.linspace(a, b, n_fine))
    return float(level), float(value)


def equal_power_w(params, n: int = 1) -> np.ndarray:
    """``P_max / K`` on every link, shape (n, K, L)."""
    return np.full((n, params.n_ues, params.n_aps), params.ap_power_budget_w / params.n_ues)


def nearest_ap_links(beta: np.ndarray) -> np.ndarray:
    """0/1 pattern (K, L): UE k served only by its strongest AP ``argmax_l beta_lk``."""
    n_aps, n_ues = beta.shape
    links = np.zeros((n_ues, n_aps))
    links[np.arange(n_ues), np.argmax(beta, axis=0)] = 1.0
    return links


def max_common_level_w(links: np.ndarray, ap_power_budget_w: float) -> float:
    """Largest common level of the links in ``links`` (K, L) that keeps every AP
    within budget: ``P_max / (most UEs served by one AP)``."""
    return ap_power_budget_w / max(float(links.sum(axis=0).max()), 1.0)


# -- solvers --------------------------------------------------------------------------

class EqualPower(Solver):
    name = "equal"
    kind = "baseline"
    problems = ("sum-ee",)
    description = "P_max / K on every AP-UE link"

    def solve(self, instances: Instances):
        return {"power_w": equal_power_w(instances.params, len(instances))}


class RandomPower(Solver):
    name = "random"
    kind = "baseline"
    problems = ("sum-ee",)
    description = "per AP, a Dirichlet(1,...,1) split of U(0,1) * P_max over the UEs (seeded per instance)"

    def solve(self, instances: Instances):
        p = instances.params
        power_w = np.empty((len(instances), p.n_ues, p.n_aps))
        for i in range(len(instances)):
            rng = instance_rng(instances, i, stream=RANDOM_POWER_STREAM)
            ap_total_w = rng.uniform(0.0, 1.0, size=p.n_aps) * p.ap_power_budget_w
            split = rng.dirichlet(np.ones(p.n_ues), size=p.n_aps)  # (L, K)
            power_w[i] = (split * ap_total_w[:, None]).T
        return {"power_w": fit_budget(power_w, p.ap_power_budget_w)}


class BestUniformPower(Solver):
    name = "best-uniform"
    kind = "baseline"
    problems = ("sum-ee",)
    description = "one common power level on every link, best level per instance (1-D search)"

    def solve(self, instances: Instances):
        p = instances.params
        power_w = np.empty((len(instances), p.n_ues, p.n_aps))
        all_links = np.ones((p.n_ues, p.n_aps))
        for i in range(len(instances)):
            level_w, _ = best_level_w(self.problem, instances, i, all_links, p.ap_power_budget_w / p.n_ues)
            power_w[i] = level_w * all_links
        return {"power_w": fit_budget(power_w, p.ap_power_budget_w)}


class NearestAP(Solver):
    name = "nearest-ap"
    kind = "baseline"
    problems = ("sum-ee",)
    description = "each UE served only by its strongest AP, common power level by 1-D search"

    def solve(self, instances: Instances):
        p = instances.params
        power_w = np.empty((len(instances), p.n_ues, p.n_aps))
        for i in range(len(instances)):
            links = nearest_ap_links(instances.beta[i])
            cap_w = max_common_level_w(links, p.ap_power_budget_w)
            level_w, _ = best_level_w(self.problem, instances, i, links, cap_w)
            power_w[i] = level_w * links
        return {"power_w": fit_budget(power_w, p.ap_power_budget_w)}


@hookimpl
def cfbench_solvers():
    return [EqualPower, RandomPower, BestUniformPower, NearestAP]
