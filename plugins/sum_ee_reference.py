"""``multistart-pg``: the reference ("best known") solver for ``sum-ee``.

Multi-start projected gradient ascent on problem (1) of Raghunath, Peng,
Jorswieck (the spec's reference method), with the per-AP budget. The objective
is non-convex with many local optima, and the spec observes that the optimum is
largely a choice of which UE each AP serves (most links off, served UEs by one
AP at tens of mW), so the starts cover such choices:

- equal power, and the best common level on all links (and that level x 0.3, x 3);
- nearest-AP (each UE by its strongest AP) at its best common level (x 0.3, x 3);
- single-UE-on: each AP serves only one UE, either its strongest UE or the
  strongest of the UEs it is the strongest AP for, at the best common level
  and at fixed levels;
- seeded random starts (``instance_rng``), in turn: a dense Dirichlet split
  per AP, one random UE per AP, a random subset of the nearest-AP links (the
  last two at log-uniform powers).

All starts of one instance ascend together, vectorised in numpy, with the
analytic gradient of J = sum_k R_k / D_k (eq. 1), R_k = log2(1 + T_k) - log2(1 + I_k):

    dR_k/dp_jl = (1/ln 2) [ g_l,kj / (1 + T_k) - [j != k] g_l,kj / (1 + I_k) ],
    dD_k/dp_jl = mu [j = k],
    dJ/dp_jl   = sum_k dR_k/dp_jl / D_k - mu R_j / D_j^2,

a step ``P + alpha grad J`` projected, AP by AP, onto the capped simplex
{p_.l >= 0, sum_k p_kl <= P_max} (exact Euclidean projection), and a per-start
step size: Barzilai-Borwein after an accepted step, quartered after a
rejected one. A step is accepted only if it increases J by at least an Armijo
fraction of the linear prediction, so J is monotone for every start. A start
stops when it gains less than ``tol`` (relative) over ``CHECK_EVERY``
iterations; after ``prune_after`` iterations the starts below ``prune_ratio``
times the leader stop (on the Table II scenarios the eventual winner was
always within 5 % of the leader by then). The best final J over the starts is
returned; the trace holds the best J after each iteration.
"""

from __future__ import annotations

import numpy as np

from cfbench import Instances, Option, Solution, Solver, hookimpl, instance_rng
from cfbench.plugins.sum_ee_baselines import (
    best_level_w,
    equal_power_w,
    fit_budget,
    max_common_level_w,
    nearest_ap_links,
    repeat_instance,
    sum_ee,
)
from cfbench.problems.sum_ee import received_powers

LN2 = float(np.log(2.0))
#: ``instance_rng`` stream of the random starts
RANDOM_START_STREAM = 2203
#: a start stops when J gained less than ``tol`` (relative) over this many iterations
CHECK_EVERY = 25


def project_capped_simplex(power_w: np.ndarray, budget_w: float) -> np.ndarray:
    """Euclidean projection of every column (AP) of ``power_w`` (..., K, L) onto
    {p >= 0, sum_k p_k <= budget_w}: clip at zero if that fits the budget, else
    project onto the simplex sum_k p_k = budget_w (sort-based, Held et al. 1974)."""
    clipped = np.maximum(power_w, 0.0)
    over = clipped.sum(axis=-2, keepdims=True) > budget_w
    if not np.any(over):
        return clipped
    v = np.moveaxis(power_w, -2, -1)  # (..., L, K)
    u = -np.sort(-v, axis=-1)
    css = np.cumsum(u, axis=-1) - budget_w
    rank = np.arange(1, v.shape[-1] + 1)
    rho = np.sum(u - css / rank > 0, axis=-1, keepdims=True)  # >= 1 always
    theta = np.take_along_axis(css, rho - 1, axis=-1) / rho
    simplex = np.moveaxis(np.maximum(v - theta, 0.0), -1, -2)
    return np.where(over, simplex, clipped)


class SumEEAscent:
    """J and its gradient for many power matrices (S, K, L) of one instance."""

    def __init__(self, problem, instances: Instances, i: int) -> None:
        self.problem, self.instances, self.i = problem, instances, i
        self.params = instances.params
        g = instances.gain_over_noise[i]  # (L, K, K): g[l, k, j]
        self.gain = g
        self.interference_gain = g * (1.0 - np.eye(g.shape[1]))[None]
        self.scale = self.params.bandwidth_hz / 1e6

    def batch(self, n: int) -> Instances:
        return repeat_instance(self.instances, self.i, n)

    def value(self, power_w: np.ndarray) -> np.ndarray:
        return sum_ee(self.problem, self.batch(len(power_w)), power_w)

    def value_and_gradient(self, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """J (S,) and dJ/dp_jl (S, K, L), the formula in the module docstring."""
        batch = self.batch(len(power_w))
        se, consumption_w = self.problem.objective_terms(batch, power_w)  # R_k, D_k
        desired, interference = received_powers(batch.gain_over_noise, power_w)
        total = desired + interference  # T_k
        # sum_k w_sk g_l,kj for (s, j, l), as one matrix product per gain tensor
        grad = np.tensordot(1.0 / (consumption_w * (1.0 + total) * LN2), self.gain, axes=([1], [1]))
        grad -= np.tensordot(1.0 / (consumption_w * (1.0 + interference) * LN2), self.interference_gain, axes=([1], [1]))
        grad = grad.transpose(0, 2, 1) - (self.params.amplifier_inefficiency * se / consumption_w**2)[:, :, None]
        value = self.scale * np.sum(se / consumption_w, axis=1)
        return value, self.scale * grad


def single_ue_links(beta: np.ndarray, own_ues_only: bool) -> np.ndarray:
    """0/1 pattern (K, L) with at most one UE per AP: AP l serves its strongest UE
    ``argmax_k beta_lk``; with ``own_ues_only``, the strongest of the UEs whose
    strongest AP is l (AP off if there is none)."""
    n_aps, n_ues = beta.shape
    links = np.zeros((n_ues, n_aps))
    if own_ues_only:
        nearest = np.argmax(beta, axis=0)
        for l in range(n_aps):
            own = np.flatnonzero(nearest == l)
            if len(own):
                links[own[np.argmax(beta[l, own])], l] = 1.0
    else:
        links[np.argmax(beta, axis=1), np.arange(n_aps)] = 1.0
    return links


class MultiStartProjectedGradient(Solver):
    name = "multistart-pg"
    kind = "reference"
    problems = ("sum-ee",)
    description = "multi-start projected gradient ascent on J (best known value for the gap column)"
    options_spec = (
        Option("max_iter", int, 1000, "gradient steps per start at most"),
        Option("n_random", int, 64, "random starts besides the deterministic ones"),
        Option("tol", float, 1e-8, "a start stops when its objective gains at most tol |J| between checks"),
        Option("prune_after", int, 60, "iteration at which starts far behind the leader are dropped"),
        Option("prune_ratio", float, 0.9, "starts below prune_ratio x the best objective are dropped then"),
    )

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        self.max_iter = self.options["max_iter"]
        self.n_random = self.options["n_random"]
        self.tol = self.options["tol"]
        self.prune_after = self.options["prune_after"]
        self.prune_ratio = self.options["prune_ratio"]

    def starts_w(self, instances: Instances, i: int) -> np.ndarray:
        """Initial power matrices (S, K, L) for instance ``i``."""
        p = instances.params
        budget_w, n_ues, n_aps = p.ap_power_budget_w, p.n_ues, p.n_aps
        beta = instances.beta[i]
        starts = [equal_power_w(p)[0]]
        patterns = [
            (np.ones((n_ues, n_aps)), (0.3, 1.0, 3.0), ()),
            (nearest_ap_links(beta), (0.3, 1.0, 3.0), ()),
            (single_ue_links(beta, own_ues_only=False), (1.0,), (0.01, 0.03, 0.1)),
            (single_ue_links(beta, own_ues_only=True), (1.0,), (0.01, 0.03, 0.1)),
        ]
        for links, factors, fixed_levels_w in patterns:
            cap_w = max_common_level_w(links, budget_w)
            level_w, _ = best_level_w(self.problem, instances, i, links, cap_w)
            for level in [f * level_w for f in factors] + [f * budget_w for f in fixed_levels_w]:
                starts.append(min(level, cap_w) * links)
        rng = instance_rng(instances, i, stream=RANDOM_START_STREAM)
        nearest = nearest_ap_links(beta)
        for r in range(self.n_random):
            kind = r % 3
            if kind == 0:  # dense: per AP a Dirichlet split of U(0, 1) * P_max
                ap_total_w = rng.uniform(0.0, 1.0, size=n_aps) * budget_w
                starts.append((rng.dirichlet(np.ones(n_ues), size=n_aps) * ap_total_w[:, None]).T)
                continue
            if kind == 1:  # one random UE per AP
                links = np.zeros((n_ues, n_aps))
                links[rng.integers(0, n_ues, size=n_aps), np.arange(n_aps)] = 1.0
            else:  # a random subset of the nearest-AP links
                links = nearest * (rng.uniform(size=(n_ues, 1)) < rng.uniform(0.3, 0.9))
            starts.append(links * budget_w * 10.0 ** rng.uniform(-3.0, -0.5, size=(n_ues, n_aps)))
        return fit_budget(np.stack(starts), budget_w)

    def ascend(self, ascent: SumEEAscent, power_w: np.ndarray, budget_w: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """Monotone projected gradient ascent of every start (S, K, L); returns the final
        P (S, K, L), J (S,) and the best J after each iteration."""
        value, grad = ascent.value_and_gradient(power_w)
        step = 1e-2 * budget_w / np.maximum(np.abs(grad).max(axis=(1, 2)), 1e-12)
        active = np.ones(len(power_w), dtype=bool)
        value_at_check = value.copy()
        best_trace: list[float] = []
        for iterations in range(1, self.max_iter + 1):
            idx = np.flatnonzero(active)
            trial_w = project_capped_simplex(power_w[idx] + step[idx, None, None] * grad[idx], budget_w)
            trial_value, trial_grad = ascent.value_and_gradient(trial_w)
            moved = trial_w - power_w[idx]
            predicted = np.sum(grad[idx] * moved, axis=(1, 2))
            accept = trial_value >= value[idx] + 1e-4 * predicted
            # Barzilai-Borwein step from the accepted move, quarter the step after a rejection
            curvature = -np.sum(moved * (trial_grad - grad[idx]), axis=(1, 2))
            moved_sq = np.sum(moved * moved, axis=(1, 2))
            bb = np.where(curvature > 0, moved_sq / np.maximum(curvature, 1e-300), 4.0 * step[idx])
            step[idx] = np.where(accept, np.clip(bb, 1e-12, 1e3), step[idx] / 4.0)
            a = idx[accept]
            power_w[a], value[a], grad[a] = trial_w[accept], trial_value[accept], trial_grad[accept]
            best_trace.append(float(value.max()))
            active[idx[step[idx] < 1e-14]] = False
            if iterations % CHECK_EVERY == 0:  # stalled: relative gain over the last CHECK_EVERY iterations
                active &= value - value_at_check > self.tol * np.abs(value)
                value_at_check = value.copy()
            if iterations == self.prune_after:  # drop starts far behind the leader
                active &= value >= self.prune_ratio * value.max()
            if not np.any(active):
                break
        return power_w, value, best_trace

    def solve(self, instances: Instances) -> Solution:
        p = instances.params
        power_w = np.empty((len(instances), p.n_ues, p.n_aps))
        traces = []
        for i in range(len(instances)):
            ascent = SumEEAscent(self.problem, instances, i)
            final_w, value, trace = self.ascend(ascent, self.starts_w(instances, i), p.ap_power_budget_w)
            power_w[i] = final_w[int(np.argmax(value))]
            traces.append(trace)
        return Solution(
            {"power_w": fit_budget(power_w, p.ap_power_budget_w)},
            iterations=np.array([len(t) for t in traces]),
            trace=traces,
        )


@hookimpl
def cfbench_solvers():
    return [MultiStartProjectedGradient]
