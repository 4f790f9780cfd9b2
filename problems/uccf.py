"""``uccf``: user-centric cell-free max-min SE, joint AP clustering and UL/DL power.

"Linear attention for joint power optimization and user-centric clustering in
cell-free networks" (``shared/papers/uccf_linear_attention.txt``), problems (9)-(10)
with a clustering decision; open points fixed by ``shared/spec/uccf.md`` (A.1-A.10).
The physics (UMi LSF with wrap-around, pilots and DCC, MMSE estimation with pilot
sharing, MR closed forms, the centralized-MMSE Monte Carlo, closed-form max-min
power) lives in :mod:`cfbench.problems.uccf_model`, checked against Monte Carlo in
``tests/uccf/test_uccf_closed_forms.py``; this module holds the scenarios and the judge.

Instance (``sample_one`` = :func:`uccf_model.draw_setup`). L APs (N antennas) and K
UEs in a square with wrap-around; arrays ``beta`` (L, K) noise-normalised LSF per mW,
``gamma`` (L, K) estimate quality, ``pilot`` (K,), ``master_ap`` (K,), ``dcc_clusters``
(L, K) (A.3 with the load fix), ``ap_xy_m``, ``ue_xy_m``, ``distance_m``, ``mc_seed``.

Decision (:meth:`Uccf.decision_fields`):

- ``clusters`` (L, K) binary: 1 if AP l serves UE k (the paper's D_kl);
- ``ul_power_mw`` (K,) in [0, p_max]: UL data powers p_k;
- ``dl_power_mw`` (K,) >= 0: rho_k, the total DL power spent on UE k. As the spec
  states (A.6, paper eq. (10) with rho_k = sum_l rho_kl), AP l spends
  ``rho_kl = rho_k w_lk`` with the precoder's share ``w_lk`` (0 off-cluster), and the
  per-AP budget ``sum_k w_lk rho_k <= rho_max`` is a constraint of the problem.

Non-binary clusters, wrong shapes, NaN/inf, negative powers and UL powers above p_max
are ``invalid`` (:meth:`Uccf.check_decision` names the entry).

Evaluator (vectorised over the batch for ``mr``; one Monte Carlo per instance for
``mmse``, on the instance's seeded realisations and the decision's clusters). UL and
DL UatF SINRs of A.5-A.6 (A.7 closed forms for ``mr``), ``SE^ul = (tau_u / tau_c)
log2(1 + SINR^ul)``, ``SE^dl = (tau_d / tau_c) log2(1 + SINR^dl)``, and the objective

    min_k min(SE_k^ul, SE_k^dl)          [bit/s/Hz]

with both min SEs reported as metrics. Violations, non-negative in their own units:

- ``ap_load_ues``: ``sum_l (sum_k D_lk - tau_p)+``, UEs beyond tau_p per AP (paper, Sect. II);
- ``unserved_ues``: UEs no AP serves;
- ``dl_ap_power_mw``: ``max_l (sum_k w_lk rho_k - rho_max)+`` (eq. 10), met within
  ``POWER_TOLERANCE_REL`` of rho_max.

Infeasible decisions keep their objective in the table, never repaired.

Scenarios. ``mr-k10`` ... ``mr-k60`` and ``mmse-k10`` ... ``mmse-k60``: L = 16, N = 4,
500 m x 500 m, tau_p = 10 [CHOSEN, spec A.2]; ``mr-paper``, ``mmse-paper``: the
book's L = 100, N = 4, K = 40 on 1 km^2 [D21]; ``tiny`` and ``mmse-tiny`` for tests.
``mmse`` scenarios fix the number of Monte Carlo realisations so that one instance is
judged in seconds on one core (README gives the cost).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cfbench import DecisionField, Instances, Problem, Score, hookimpl
from cfbench.api import describe_entry, read_decision_fields
from cfbench.problems import uccf_model as um
from cfbench.problems.uccf_model import UccfScenario

POWER_TOLERANCE_REL = 1e-6
LOADS = (10, 20, 30, 40, 50, 60)
#: Monte Carlo realisations per instance: 1000 [D21] at L = 16; fewer at paper scale,
#: where one realisation costs about 9x more (README: evaluator cost)
N_MC_SMALL, N_MC_PAPER = 1000, 300


def build_scenarios() -> dict[str, UccfScenario]:
    s: dict[str, UccfScenario] = {}
    for combiner in ("mr", "mmse"):
        what = "MR closed forms (A.7)" if combiner == "mr" else f"centralized MMSE, {N_MC_SMALL} Monte Carlo realisations"
        for k in LOADS:
            s[f"{combiner}-k{k}"] = UccfScenario(
                n_ues=k, combiner=combiner, n_mc=N_MC_SMALL,
                description=f"L = 16 APs x N = 4, K = {k} UEs, 500 m square, tau_p = 10; {what}")
    paper = dict(n_aps=100, n_antennas=4, n_ues=40, side_m=1000.0)
    s["mr-paper"] = UccfScenario(combiner="mr", **paper,
                                 description="paper scale [D21]: L = 100 x N = 4, K = 40, 1 km square; MR closed forms")
    s["mmse-paper"] = UccfScenario(combiner="mmse", n_mc=N_MC_PAPER, **paper,
                                   description=f"paper scale [D21]: L = 100 x N = 4, K = 40, 1 km square; "
                                               f"centralized MMSE, {N_MC_PAPER} Monte Carlo realisations")
    tiny = dict(n_aps=9, n_antennas=2, n_ues=8, tau_p=4, side_m=200.0)
    s["tiny"] = UccfScenario(combiner="mr", **tiny, description="test scenario: L = 9 x N = 2, K = 8, tau_p = 4, 200 m; MR")
    s["mmse-tiny"] = UccfScenario(combiner="mmse", n_mc=200, **tiny,
                                  description="test scenario: L = 9 x N = 2, K = 8, tau_p = 4, 200 m; MMSE, 200 realisations")
    return s


SCENARIOS = build_scenarios()


class Uccf(Problem):
    name = "uccf"
    title = "User-centric cell-free max-min SE: joint AP clustering and UL/DL power"
    paper = ("Linear attention for joint power optimization and user-centric clustering in cell-free networks "
             "(ELU-CosFormer)")
    objective_unit = "bit/s/Hz"
    scenarios = SCENARIOS
    default_scenario = "mr-k40"
    #: the paper times its model against DCC clusters with closed-form max-min power
    paper_iterative_solver = "dcc-maxmin"
    table_metrics = ("ul_min_se_bit_per_hz", "dl_min_se_bit_per_hz", "n_links", "max_ap_load")

    def decision_fields(self, scenario: str):
        p = self.scenario_params(scenario)
        return [
            DecisionField("clusters", (p.n_aps, p.n_ues), lower=0.0, upper=1.0, binary=True,
                          description="D_lk: 1 if AP l serves UE k"),
            DecisionField("ul_power_mw", (p.n_ues,), lower=0.0, upper=p.p_max_mw, unit="mW",
                          description="p_k: UL data power of UE k"),
            DecisionField("dl_power_mw", (p.n_ues,), lower=0.0, upper=None, unit="mW",
                          description="rho_k: total DL power for UE k; AP l spends rho_k w_lk (A.6)"),
        ]

    def sample_one(self, p: UccfScenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return um.draw_setup(p, rng)

    def _params(self, instances: Instances) -> UccfScenario:
        return instances.params if instances.params is not None else self.scenario_params(instances.scenario)

    # -- validation: one clear message per kind of bad decision -----------------------------
    def check_decision(self, instances: Instances, decision: Any, atol: float = 1e-9) -> str | None:
        p = self._params(instances)
        n = len(instances)
        expected = {"clusters": ((n, p.n_aps, p.n_ues), "(instances, L APs, K UEs)"),
                    "ul_power_mw": ((n, p.n_ues), "(instances, K UEs)"),
                    "dl_power_mw": ((n, p.n_ues), "(instances, K UEs)")}
        values, reason = read_decision_fields(
            decision, expected, f"a uccf decision has binary 'clusters' {expected['clusters'][0]}, "
                                f"'ul_power_mw' and 'dl_power_mw' {expected['ul_power_mw'][0]}")
        if reason:
            return reason
        d = values["clusters"]
        fractional = (d != 0.0) & (d != 1.0)
        if fractional.any():
            return (f"field 'clusters' must be binary (0 or 1): {describe_entry(fractional, d, ('AP', 'UE'))} "
                    f"({int(fractional.sum())} non-binary entries)")
        ul = values["ul_power_mw"]
        outside = (ul < -atol) | (ul > p.p_max_mw * (1.0 + atol) + atol)
        if outside.any():
            return f"field 'ul_power_mw' must lie in [0, {p.p_max_mw:g}] mW; {describe_entry(outside, ul, ('UE',))}"
        dl = values["dl_power_mw"]
        if (dl < -atol).any():
            return f"field 'dl_power_mw' must be >= 0; {describe_entry(dl < -atol, dl, ('UE',))}"
        return None

    # -- the judge -----------------------------------------------------------------------------
    def performance(self, instances: Instances, clusters, ul_power_mw, dl_power_mw) -> dict[str, np.ndarray]:
        """UL and DL SINR and SE per UE (n, K) and per-AP DL power (n, L) of decisions."""
        p = self._params(instances)
        coeffs = um.uatf_coefficients(instances, clusters)
        ul_sinr = coeffs.ul_sinr(ul_power_mw)
        dl_sinr = coeffs.dl_sinr(dl_power_mw)
        return {"ul_sinr": ul_sinr, "dl_sinr": dl_sinr,
                "ul_se_bit_per_hz": p.ul_pre_log * np.log2(1.0 + ul_sinr),
                "dl_se_bit_per_hz": p.dl_pre_log * np.log2(1.0 + dl_sinr),
                "ap_power_mw": coeffs.dl_ap_power_mw(dl_power_mw)}

    def evaluate(self, instances: Instances, decision) -> Score:
        p = self._params(instances)
        d = np.asarray(decision["clusters"], dtype=float)
        ul = np.asarray(decision["ul_power_mw"], dtype=float)
        dl = np.asarray(decision["dl_power_mw"], dtype=float)
        t = self.performance(instances, d, ul, dl)
        ul_se, dl_se = t["ul_se_bit_per_hz"], t["dl_se_bit_per_hz"]
        load = np.sum(d, axis=2)                                                     # (n, L)
        aps_per_ue = np.sum(d, axis=1)                                               # (n, K)
        unserved = np.sum(aps_per_ue < 0.5, axis=1).astype(float)
        violation = {
            "ap_load_ues": np.sum(np.maximum(load - p.tau_p, 0.0), axis=1),
            "unserved_ues": unserved,
            "dl_ap_power_mw": np.max(np.maximum(t["ap_power_mw"] - p.rho_max_mw, 0.0), axis=1),
        }
        objective = np.min(np.minimum(ul_se, dl_se), axis=1)
        feasible = ((violation["ap_load_ues"] == 0) & (unserved == 0)
                    & (violation["dl_ap_power_mw"] <= POWER_TOLERANCE_REL * p.rho_max_mw)
                    & np.isfinite(objective))
        return Score(
            objective=objective,
            violation=violation,
            feasible=feasible,
            metrics={
                "ul_min_se_bit_per_hz": np.min(ul_se, axis=1),
                "dl_min_se_bit_per_hz": np.min(dl_se, axis=1),
                "ul_ue_se_bit_per_hz": ul_se,
                "dl_ue_se_bit_per_hz": dl_se,
                "ul_sum_se_bit_per_hz": np.sum(ul_se, axis=1),
                "dl_sum_se_bit_per_hz": np.sum(dl_se, axis=1),
                "n_links": np.sum(d, axis=(1, 2)),
                "max_ap_load": np.max(load, axis=1),
                "mean_aps_per_ue": np.mean(aps_per_ue, axis=1),
                "n_unserved": unserved,
                "max_ap_power_mw": np.max(t["ap_power_mw"], axis=1),
                "mean_ul_power_mw": np.mean(ul, axis=1),
            },
        )


@hookimpl
def cfbench_problems():
    return [Uccf]
