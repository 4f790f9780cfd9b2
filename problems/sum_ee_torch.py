"""The ``sum-ee`` objective (1) in torch, differentiable in the powers (for the GNN's loss).

The same formula as :meth:`cfbench.problems.sum_ee.SumEE.evaluate`, on the stored
gains over noise ``g[n, l, k, j]`` (eq. 2 divided by sigma^2)::

    T_k = sum_l sum_j g_l,kj p_jl,   S_k = sum_l g_l,kk p_kl,   I_k = max(T_k - S_k, 0),
    J   = B/1e6 * sum_k log2(1 + S_k / (1 + I_k)) / (mu sum_l p_kl + P_c),

for powers of shape (..., n, K, L) (leading axes: e.g. several samples of U(a, b)
per instance). ``tests/sum_ee/test_sum_ee_gnn.py`` checks that it equals the evaluator
to 1e-10 in float64. The evaluator stays the only judge: this module is used to train.
"""

from __future__ import annotations

import math

import torch

from cfbench.problems.sum_ee import SumEEScenario


def sum_ee(params: SumEEScenario, gain_over_noise: torch.Tensor, power_w: torch.Tensor) -> torch.Tensor:
    """J of powers ``power_w`` (..., n, K, L) on gains ``gain_over_noise`` (n, L, K, K); shape (..., n)."""
    p = torch.clamp(power_w, min=0.0)
    total = torch.einsum("nlkj,...njl->...nk", gain_over_noise, p)
    desired = torch.einsum("nlkk,...nkl->...nk", gain_over_noise, p)
    interference = torch.clamp(total - desired, min=0.0)
    se = torch.log1p(desired / (1.0 + interference)) / math.log(2.0)
    consumption = params.amplifier_inefficiency * p.sum(dim=-1) + params.static_power_w
    return (params.bandwidth_hz / 1e6) * (se / consumption).sum(dim=-1)
