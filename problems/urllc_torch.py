"""The ``urllc`` objective in torch, differentiable in the powers (for U-ESTPANet's loss).

The same formulas as the evaluator, :func:`cfbench.problems.urllc.tradeoff_terms`
on top of :class:`cfbench.problems.urllc.SinrCoefficients`, written with torch
operations so gradients flow to the powers; ``tests/urllc/test_urllc_estpanet.py``
checks that both give the same eps_k, rates and Omega to 1e-10 in float64.
The evaluator stays the only judge: this module is only used to train.

- SINR (spec's UatF bound, regrouped by powers)::

      1/delta_k = [v_k + (u_k (1 + 1/n_p) + sum_i G_ki p_i) / p_k
                   + (sum_i F_ki p_i + z_k) / (n_p p_k^2)] / m_k^2

- eq. (7): ``eps_k = Q((ln(1+delta_k) - (D/n_d) ln 2) sqrt(n_d / V_nat(delta_k)))``;
- rate: ``R_k = max(0, ln(1+delta_k) - sqrt(V_nat/n_d) Q^-1(eps_QoS)) / ln 2``;
- eqs. (8)-(11): SE and EE per group, Omega with the scenario's bounds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cfbench.physics import fbl
from cfbench.problems.urllc import SinrCoefficients, UrllcScenario, bounds_of

COEFFICIENT_NAMES = ("mean", "v", "u", "z", "g", "f")


def coefficient_tensors(coefficients: SinrCoefficients, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """The SINR coefficients of a batch as tensors: (n, K) and (n, K, K)."""
    return {name: torch.as_tensor(np.asarray(getattr(coefficients, name)), dtype=dtype) for name in COEFFICIENT_NAMES}


def sinr(coefficients: dict[str, torch.Tensor], power_w: torch.Tensor, n_pilot: int) -> torch.Tensor:
    """``delta_k`` (n, K) of powers (n, K) (module docstring)."""
    gp = torch.einsum("nki,ni->nk", coefficients["g"], power_w)
    fp = torch.einsum("nki,ni->nk", coefficients["f"], power_w)
    inverse = (coefficients["v"] + (coefficients["u"] * (1.0 + 1.0 / n_pilot) + gp) / power_w
               + (fp + coefficients["z"]) / (n_pilot * power_w ** 2)) / coefficients["mean"] ** 2
    return 1.0 / inverse


def dispersion_nats2(sinr_: torch.Tensor) -> torch.Tensor:
    """``V = 1 - (1 + delta)^-2`` in nat^2, without cancellation at small delta."""
    return -torch.expm1(-2.0 * torch.log1p(sinr_))


def error_probability(sinr_: torch.Tensor, params: UrllcScenario) -> torch.Tensor:
    """Eq. (7) with the packet rate ``D / n_d`` (:func:`cfbench.physics.fbl.packet_error_probability`)."""
    margin = torch.log1p(sinr_) - params.packet_rate_bits * math.log(2.0)
    argument = margin * torch.sqrt(params.n_data / dispersion_nats2(sinr_).clamp_min(1e-300))
    return 0.5 * torch.special.erfc(argument / math.sqrt(2.0))  # Q(x); ndtr(-x) loses the far tail in torch


def rate_bits(sinr_: torch.Tensor, params: UrllcScenario) -> torch.Tensor:
    """``R_k`` in bit/s/Hz at ``eps_QoS`` (:func:`cfbench.physics.fbl.normal_approximation_rate_bits`)."""
    q_inv = float(fbl.q_inverse(params.eps_qos))
    nats = torch.log1p(sinr_) - torch.sqrt(dispersion_nats2(sinr_) / params.n_data) * q_inv
    return torch.clamp_min(nats, 0.0) / math.log(2.0)


def tradeoff_terms(params: UrllcScenario, sinr_: torch.Tensor, power_w: torch.Tensor,
                   aerial: torch.Tensor) -> dict[str, torch.Tensor]:
    """eps (n, K), rate (n, K), SE/EE per group and Omega (n,); ``aerial`` (n, K) bool."""
    b = bounds_of(params)
    eps = error_probability(sinr_, params)
    rate = rate_bits(sinr_, params)
    consumption = params.amplifier_inefficiency * power_w + params.static_power_w
    out = {"eps": eps, "rate": rate}
    for tag, mask in (("g", ~aerial), ("a", aerial)):
        m = mask.to(rate.dtype)
        out[f"se_{tag}"] = (rate * m).sum(-1) / m.sum(-1)
        out[f"ee_{tag}"] = params.bandwidth_hz * (rate * m).sum(-1) / (consumption * m).sum(-1)
    lam, ag, aa = params.trade_off_lambda, params.alpha_g, params.alpha_a
    out["omega"] = ((lam - ag) * (out["se_g"] - b.se_g_min) / (b.se_g_max - b.se_g_min)
                    + ag * (out["ee_g"] - b.ee_g_min) / (b.ee_g_max - b.ee_g_min)
                    + aa * (out["se_a"] - b.se_a_min) / (b.se_a_max - b.se_a_min)
                    + (lam - aa) * (out["ee_a"] - b.ee_a_min) / (b.ee_a_max - b.ee_a_min))
    return out


def violation_mean(eps: torch.Tensor, eps_qos: float) -> torch.Tensor:
    """Eq. (19)'s ``loss_1`` per instance: the mean of ``eps_k - eps_QoS`` over the terminals
    with ``eps_k > eps_QoS`` (0 when every terminal is reliable), shape (n,)."""
    excess = torch.clamp_min(eps - eps_qos, 0.0)
    count = (excess > 0).sum(-1).clamp_min(1)
    return excess.sum(-1) / count
