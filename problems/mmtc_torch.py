"""The ``mmtc`` rates and EEs in torch, differentiable in the powers (for the GNN's loss).

The same formulas as :func:`cfbench.problems.mmtc.performance` on top of
:class:`cfbench.problems.mmtc_model.CoexistenceCoefficients`, written with torch
operations so gradients flow to ``(p, q)``; ``tests/mmtc/test_mmtc_gnn.py`` checks
that both agree to 1e-10 in float64. The evaluator stays the only judge: this
module is only used to train.

- ``gamma_u = delta_u p_u / (v_u p_u + sum_k kappa_uk p_k + sum_d Z_ud q_d + xi_u)`` (13);
- ``rho_d = lambda_d q_d / (nu_d q_d + sum_k eps_dk q_k + sum_u eps_du p_u + chi_d)`` (17);
- user rate ``psi r_u log2(1 + gamma_u)`` (12); device spectral rate
  ``R_d = max(0, log2(1 + rho) - v_d sqrt(2 rho / (1 + rho)))`` (20);
- device EE ``psi r_d R_d / (N_d mu q_d + Theta)`` (21).
"""

from __future__ import annotations

import numpy as np
import torch

from cfbench.problems.mmtc import MmtcScenario
from cfbench.problems.mmtc_model import CoexistenceCoefficients

COEFFICIENT_NAMES = ("delta", "v", "kappa", "z", "xi", "lam", "nu", "eps_dev", "eps_user", "chi")


def coefficient_tensors(coefficients: CoexistenceCoefficients, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """The coefficients of a batch as tensors (same names and shapes)."""
    return {name: torch.as_tensor(np.asarray(getattr(coefficients, name)), dtype=dtype) for name in COEFFICIENT_NAMES}


def performance(params: MmtcScenario, c: dict[str, torch.Tensor], user_power_w: torch.Tensor,
                device_power_w: torch.Tensor) -> dict[str, torch.Tensor]:
    """SINRs, rates (bit/s) and device EEs (bit/J) of powers (n, K_u), (n, K_d) (module docstring)."""
    p, q = user_power_w, device_power_w
    user_interference = (c["v"] * p + torch.einsum("nuk,nk->nu", c["kappa"], p)
                         + torch.einsum("nud,nd->nu", c["z"], q) + c["xi"])
    device_interference = (c["nu"] * q + torch.einsum("ndk,nk->nd", c["eps_dev"], q)
                           + torch.einsum("ndu,nu->nd", c["eps_user"], p) + c["chi"])
    gamma = c["delta"] * p / user_interference
    rho = c["lam"] * q / device_interference
    dispersion = 2.0 * rho / (1.0 + rho)
    spectral = torch.clamp_min(torch.log2(1.0 + rho) - params.fbl_penalty * torch.sqrt(dispersion + 1e-300), 0.0)
    user_rate = params.psi_hz * params.user_prb_share * torch.log2(1.0 + gamma)
    device_rate = params.psi_hz * params.device_prb_share * spectral / params.device_spreading
    device_ee = (params.psi_hz * params.device_prb_share * spectral
                 / (params.device_spreading * params.amplifier_inefficiency * q + params.static_power_total_w))
    return {"user_sinr": gamma, "device_sinr": rho, "device_spectral_rate": spectral,
            "user_rate_bps": user_rate, "device_rate_bps": device_rate, "device_ee_bit_per_j": device_ee}
