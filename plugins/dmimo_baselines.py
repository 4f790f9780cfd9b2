"""Baselines for ``dmimo`` (``shared/spec/dmimo.md``, "Methods").

- ``full-power``: eta = 1 and the paper's initial association, ``d_mt = 1`` iff
  ``beta_mt >= 0.95 max_m' beta_m't`` (Section V; Scheme 4).
- ``all-serve``: every AP serves every UE (Scheme 3, the fully connected
  network) with one common eta for all UEs, chosen per instance by a 1-D
  search on the problem's own EE (``dmimo_model.performance``): the best EE
  among the levels that meet SE^QoS, or the level with the largest sum SE
  when none does. With a_mt = 1 every extra link adds noise and interference
  and costs 6.61 W, so this baseline is very poor (spec B.10); it shows what
  the association decision is worth.
"""

from __future__ import annotations

import numpy as np

from cfbench import Instances, Solver, hookimpl
from cfbench.physics.association import lsf_fraction_association
from cfbench.problems import dmimo_model as dm

#: 95 % of the best AP's LSF (Section V)
LSF_FRACTION = 0.95


def best_common_eta(params, coeffs, d: np.ndarray, decades: float = 4.0, n_grid: int = 41,
                    n_refine: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per instance, the common eta in [10^-decades, 1] that the problem prefers for the
    association ``d`` (n, M, T): best EE among levels meeting SE^QoS, else largest sum SE.
    A log grid, then ``n_refine`` finer grids around the best level. Returns (eta (n,), EE (n,))."""
    n = d.shape[0]
    lo = np.full(n, -decades * np.log(10.0))
    hi = np.zeros(n)
    best = np.ones(n)
    for _ in range(n_refine + 1):
        levels = np.exp(lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, n_grid)[None, :])   # (n, G)
        eta = np.broadcast_to(levels[:, :, None], levels.shape + (params.n_ues,))
        perf = dm.performance(params, coeffs, eta, d[:, None])
        feasible = perf["sum_se_bit_per_hz"] >= params.se_qos_bit_per_hz
        key = np.where(feasible, 1e6 + perf["ee_mbit_per_j"], perf["sum_se_bit_per_hz"])
        k = np.argmax(key, axis=1)
        best = levels[np.arange(n), k]
        step = (hi - lo) / (n_grid - 1)
        lo = np.maximum(np.log(best) - step, -decades * np.log(10.0))
        hi = np.minimum(np.log(best) + step, 0.0)
    ee = dm.performance(params, coeffs, np.repeat(best[:, None], params.n_ues, 1), d)["ee_mbit_per_j"]
    return best, ee


class FullPower(Solver):
    name = "full-power"
    kind = "baseline"
    problems = ("dmimo",)
    description = "eta = 1 with the 95 % LSF initial association (Section V)"

    def solve(self, instances: Instances):
        return {"eta": np.ones((len(instances), instances.params.n_ues)),
                "d": lsf_fraction_association(instances.beta, LSF_FRACTION)}


class AllServe(Solver):
    name = "all-serve"
    kind = "baseline"
    problems = ("dmimo",)
    description = "every AP serves every UE, the best common eta by a 1-D search on the problem's EE"

    def solve(self, instances: Instances):
        p = instances.params
        d = np.ones((len(instances), p.n_aps, p.n_ues))
        level, _ = best_common_eta(p, dm.coefficients(instances), d)
        return {"eta": np.repeat(level[:, None], p.n_ues, axis=1), "d": d}


@hookimpl
def cfbench_solvers():
    return [FullPower, AllServe]
