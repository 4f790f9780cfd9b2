"""``sum-ee``: downlink sum of per-UE energy efficiencies with MRT.

Raghunath, Peng, Jorswieck, "Energy-Efficient Power Allocation in Cell-Free
Massive MIMO via Graph Neural Networks" (``shared/papers/sum_ee_downlink_gnn.txt``),
problem (1)-(2) and Section V; open points fixed by ``shared/spec/sum_ee.md``.

Model. L APs with N antennas on a cell-centred grid over a square, ``height_m``
above K single-antenna UEs dropped uniformly. Large-scale gain
``beta_lk = -30.5 - 36.7 log10(d_lk) + X`` dB, ``X ~ N(0, 4^2)``; one i.i.d.
Rayleigh realisation ``h_lk ~ CN(0, beta_lk I_N)`` per instance. With MRT, the
effective gain from AP l's beam for UE j at UE k is (eq. 2)

    h_l,kj = | h_lk^H h_lj / ||h_lj|| |^2 .

Decision: ``power_w`` P in R^{K x L}, p_kl >= 0 the power AP l spends on UE k,
with a per-AP budget ``sum_k p_kl <= P_max`` (the spec's addition; the paper
states only p_kl >= 0).

Objective (eq. 1), in Mbit/J for bandwidth B (bit/s/Hz/J at the default 1 MHz):

    J(P) = B/1e6 * sum_k log2(1 + SINR_k) / (mu sum_l p_kl + P_c),
    SINR_k = sum_l h_l,kk p_kl / (sigma^2 + sum_{j != k} sum_l h_l,kj p_jl).

Gains are stored divided by the noise power (``gain_over_noise``, per W), so
SINR_k = S_k / (1 + I_k) with powers in W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfbench import DecisionField, Instances, Problem, Score, hookimpl
from cfbench.physics import (
    dbm_to_watt,
    distances_3d_m,
    grid_positions_m,
    log_distance_gain,
    rayleigh_channels,
    uniform_positions_m,
)


@dataclass(frozen=True)
class SumEEScenario:
    ap_rows: int
    ap_cols: int
    n_ues: int
    n_antennas: int = 5
    side_m: float = 100.0
    ap_height_above_ue_m: float = 10.0
    pathloss_intercept_db: float = -30.5
    pathloss_exponent: float = 3.67
    shadowing_std_db: float = 4.0
    carrier_ghz: float = 2.0  # documents the model; enters only through the intercept
    noise_dbm: float = -86.0
    amplifier_inefficiency: float = 1.0  # mu
    static_power_w: float = 4.0          # P_c
    ap_power_budget_w: float = 1.0       # P_max per AP
    bandwidth_hz: float = 1e6
    description: str = ""

    @property
    def n_aps(self) -> int:
        return self.ap_rows * self.ap_cols


SCENARIOS = {
    "5ap-10ue": SumEEScenario(1, 5, 10, description="Table II: 5 APs (1x5 grid), 10 UEs"),
    "10ap-10ue": SumEEScenario(2, 5, 10, description="Table II: 10 APs (2x5 grid), 10 UEs"),
    "15ap-15ue": SumEEScenario(3, 5, 15, description="Table II: 15 APs (3x5 grid), 15 UEs"),
    "tiny": SumEEScenario(1, 2, 3, description="test scenario: 2 APs, 3 UEs"),
}


def mrt_effective_gains(h: np.ndarray) -> np.ndarray:
    """Eq. (2): ``g[l, k, j] = |h_lk^H h_lj / ||h_lj|| |^2`` for channels ``h`` of shape (L, K, N)."""
    inner = np.einsum("lkn,ljn->lkj", h.conj(), h)
    return np.abs(inner) ** 2 / np.sum(np.abs(h) ** 2, axis=-1)[:, None, :]


def received_powers(gain_over_noise: np.ndarray, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Desired ``S_k = sum_l g_l,kk p_kl`` and interference ``I_k = sum_{j!=k} sum_l g_l,kj p_jl``
    (both over the noise power) for batches ``g`` (n, L, K, K) and ``P`` (n, K, L)."""
    total = np.einsum("nlkj,njl->nk", gain_over_noise, power_w)
    desired = np.einsum("nlkk,nkl->nk", gain_over_noise, power_w)
    return desired, np.maximum(total - desired, 0.0)


def spectral_efficiency(gain_over_noise: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """Per-UE ``log2(1 + SINR_k)`` in bit/s/Hz, shape (n, K)."""
    desired, interference = received_powers(gain_over_noise, power_w)
    return np.log2(1.0 + desired / (1.0 + interference))


class SumEE(Problem):
    name = "sum-ee"
    title = "Downlink sum EE with MRT"
    paper = "Raghunath, Peng, Jorswieck: Energy-efficient power allocation in CF mMIMO via GNNs"
    objective_unit = "Mbit/J"
    scenarios = SCENARIOS
    default_scenario = "10ap-10ue"
    paper_iterative_solver = "sca"

    def decision_fields(self, scenario: str):
        p = self.scenario_params(scenario)
        return [
            DecisionField(
                "power_w", (p.n_ues, p.n_aps), lower=0.0, upper=p.ap_power_budget_w, unit="W",
                description="p_kl: power AP l spends on UE k",
            )
        ]

    def sample_one(self, p: SumEEScenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ap_xy = grid_positions_m(p.ap_rows, p.ap_cols, p.side_m)
        ue_xy = uniform_positions_m(rng, p.n_ues, p.side_m)
        d = distances_3d_m(ap_xy, ue_xy, p.ap_height_above_ue_m)  # (L, K)
        beta = log_distance_gain(d, p.pathloss_intercept_db, p.pathloss_exponent, p.shadowing_std_db, rng)
        h = rayleigh_channels(rng, beta, p.n_antennas)  # (L, K, N)
        noise_w = float(dbm_to_watt(p.noise_dbm))
        return {
            "ue_xy_m": ue_xy,
            "beta": beta,
            "gain_over_noise": mrt_effective_gains(h) / noise_w,
        }

    def objective_terms(self, instances: Instances, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-UE spectral efficiency (n, K) and power consumption ``mu sum_l p_kl + P_c`` (n, K)."""
        p = instances.params
        se = spectral_efficiency(instances.gain_over_noise, power_w)
        consumption = p.amplifier_inefficiency * power_w.sum(axis=2) + p.static_power_w
        return se, consumption

    def evaluate(self, instances: Instances, decision) -> Score:
        p = instances.params
        power = np.asarray(decision["power_w"], dtype=float)
        se, consumption = self.objective_terms(instances, np.maximum(power, 0.0))
        ee = (p.bandwidth_hz / 1e6) * np.sum(se / consumption, axis=1)
        ap_load = power.sum(axis=1)  # (n, L)
        violation = {
            "nonnegative_power_w": np.maximum(-power.min(axis=(1, 2)), 0.0),
            "ap_power_budget_w": np.maximum(ap_load.max(axis=1) - p.ap_power_budget_w, 0.0),
        }
        max_violation = np.max(np.stack(list(violation.values())), axis=0)
        return Score(
            objective=ee,
            violation=violation,
            feasible=max_violation <= 1e-6 * p.ap_power_budget_w,
            metrics={
                "ee_ln": ee * np.log(2.0),
                "sum_se": se.sum(axis=1),
                "n_served": np.sum(power.sum(axis=2) > 1e-6, axis=1).astype(float),
                "total_power_w": power.sum(axis=(1, 2)),
                "max_ap_load_w": ap_load.max(axis=1),
            },
        )


@hookimpl
def cfbench_problems():
    return [SumEE]
