"""Heuristic power control for ``mmtc``: UPC, FPC and G-FPC (coexistence paper, Section VII).

All three depend on the large-scale fading only and are returned as is: a
decision that misses C3-C5 is reported infeasible by the evaluator (the paper's
"modified to satisfy C1-C5" is not specified; ``shared/spec/mmtc.md`` asks
not to repair silently).
"""

from __future__ import annotations

import numpy as np

from cfbench import Option, Solver, hookimpl


def served_gain(gain: np.ndarray, serving: np.ndarray) -> np.ndarray:
    """``sum_m a_mu alpha_mu`` (or ``b_md beta_md``): the LSF a terminal sees through its APs, (n, K)."""
    return np.einsum("nmk,nmk->nk", gain, serving)


class UniformPowerControl(Solver):
    """UPC: every user at ``P_u`` and every device at ``Q_d``."""

    name = "upc"
    kind = "baseline"
    problems = ("mmtc",)
    description = "uniform power control: everyone at the budget"

    def solve(self, instances):
        p = instances.params
        n = len(instances)
        return {"user_power_w": np.full((n, p.n_users), p.user_max_power_w),
                "device_power_w": np.full((n, p.n_devices), p.device_max_power_w)}


def fractional_power(gain_sum: np.ndarray, budget_w: float, exponent: float, normaliser: np.ndarray) -> np.ndarray:
    """``budget (sum_m a beta)^kappa / c``: the fractional rule with normaliser ``c`` (n, 1)."""
    return budget_w * gain_sum ** exponent / normaliser


class FractionalPowerControl(Solver):
    """FPC (Demir, Björnson, Sanguinetti, *Foundations of user-centric cell-free
    massive MIMO*, Section 7.1): per service, ``p_k = P min_i (g_i)^upsilon / (g_k)^upsilon``
    with ``g_k`` the LSF summed over the serving APs and ``upsilon = 0.5``
    (option ``upsilon``): the weakest terminal of each service transmits at its
    budget, stronger ones back off fractionally."""

    name = "fpc"
    kind = "baseline"
    problems = ("mmtc",)
    description = "fractional power control per service (upsilon = 0.5)"
    options_spec = (Option("upsilon", float, 0.5, "exponent of the fractional rule p_k ~ g_k^-upsilon"),)

    def solve(self, instances):
        p = instances.params
        upsilon = self.options["upsilon"]
        gu = served_gain(instances.user_gain, instances.user_serving)
        gd = served_gain(instances.device_gain, instances.device_serving)
        return {
            "user_power_w": fractional_power(gu, p.user_max_power_w, -upsilon, np.max(gu ** -upsilon, 1, keepdims=True)),
            "device_power_w": fractional_power(gd, p.device_max_power_w, -upsilon,
                                               np.max(gd ** -upsilon, 1, keepdims=True)),
        }


class GeneralisedFractionalPowerControl(Solver):
    """G-FPC, the paper's UL extension of [47] (Section VII)::

        p_u = P_u (sum_m a_mu alpha_mu)^kappa / c,   q_d = Q_d (sum_m b_md beta_md)^kappa / c,
        c = max over users and devices of (sum_m ...)^kappa,

    ``kappa`` in [-1, 1] (option ``kappa``, default -0.5: ``kappa < 0`` resembles
    max-min). The printed ``Q_u`` in the device rule is ``Q_d``. One normaliser
    for both services, as printed."""

    name = "g-fpc"
    kind = "baseline"
    problems = ("mmtc",)
    description = "generalised fractional power control, joint normaliser (kappa = -0.5)"
    options_spec = (Option("kappa", float, -0.5, "exponent in [-1, 1] of the served LSF sum (< 0 resembles max-min)"),)

    def __init__(self, **options):
        super().__init__(**options)
        self.kappa = self.options["kappa"]
        if not -1.0 <= self.kappa <= 1.0:
            raise ValueError(f"kappa must be in [-1, 1], got {self.kappa}")

    def solve(self, instances):
        p = instances.params
        gu = served_gain(instances.user_gain, instances.user_serving) ** self.kappa
        gd = served_gain(instances.device_gain, instances.device_serving) ** self.kappa
        c = np.maximum(gu.max(axis=1), gd.max(axis=1))[:, None]
        return {"user_power_w": p.user_max_power_w * gu / c, "device_power_w": p.device_max_power_w * gd / c}


HEURISTICS = (UniformPowerControl, FractionalPowerControl, GeneralisedFractionalPowerControl)


@hookimpl
def cfbench_solvers():
    return list(HEURISTICS)
