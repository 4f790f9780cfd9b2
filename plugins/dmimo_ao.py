"""``ao``: the D-mMIMO paper's alternating optimisation (Algorithm 1) for ``dmimo``.

Khan, Karthik, Agnihotri (``shared/papers/dmimo_ee_se_association.txt``),
Section IV: problem (11), maximise ``EE = B sum_t SE_t / P_T`` over the power
coefficients eta in [0, 1]^T and the association d, subject to the sum-SE
target (11d) and every UE served (11e). All physics comes from
:mod:`cfbench.problems.dmimo_model`; nothing here recomputes an SINR.

Derivation (paper's Steps 1-6, with the model's notation, p_t = eta_t p_u).

Step 1 (12a). Write ``P_T = P0 + c B S`` with ``S = sum_t SE_t``, ``P0 = P_fix
+ P_c`` (affine in eta and d) and ``c = P_cpu^deco``. Then
``1 / EE = P0 / (B S) + c``, so maximising ``EE' = B S / P0`` maximises EE:
the paper's reformulation is exact, and any increase of EE' is an increase of EE.

Step 2 (13). d is relaxed to [0, 1]. The model's SINR is valid for relaxed d
(it is the bound for LSFD weights a_mt = d_mt), so every relaxed iterate is a
physical operating point and its EE is measured by ``dmimo_model.performance``.

Step 3 (15)-(17). ``Gamma_t = DS_t / I_t`` with ``I_t = PC_t + NI_t + N_t``
(BU inside NI) is bounded below by ``2 z_t sqrt(DS_t) - z_t^2 I_t``, tight at
``z_t = sqrt(DS_t) / I_t``.

Step 4 (19)-(21). The ratio ``u / v`` (u = w B sum log2(1 + Gamma*_t) in
Mbit/s, v = P0 in W) is bounded below by ``2 b sqrt(u) - b^2 v``, tight at
``b = sqrt(u) / v``. ``sqrt(u)`` of a concave u is concave.

Step 5 (23)-(24). For fixed d, with ``q_t = sqrt(eta_t)``:
``sqrt(DS_t) = sqrt(a_t p_u) q_t`` is linear, ``I_t = p_u sum_i B_ti q_i^2 + c_t``
is a convex quadratic (``(a, B, c) = LinkCoefficients.fixed_association_form(d)``)
and ``v`` holds ``sum_t eta_t = ||q||^2``, so subproblem (23) is concave in q:

    max_{q, g}  2 b sqrt(kU sum_t ln(1 + g_t)) - b^2 (p_u / zeta) ||q||^2 + lambda min(S(g), SE^QoS)
    s.t.        g_t <= 2 z_t sqrt(a_t p_u) q_t - z_t^2 (p_u sum_i B_ti q_i^2 + c_t),  0 <= q <= 1,
                S(g) = (w / ln 2) sum_t ln(1 + g_t) >= SE^QoS   (phase 2 only, see below)

(kU = w B / (1e6 ln 2)). For fixed eta, ``sqrt(DS_t) = sqrt(p_t) sum_m d_mt s_mt`` is
linear in d, ``PC_t = sum_{i in P_t \\ t} p_i (sum_m d_mt s_mt beta_mi / beta_mt)^2``
and ``NI_t + N_t = sum_m d_mt^2 (n_mt + sum_i p_i x_mti)`` are convex quadratics
and the link power ``sum_mt d_mt (A P_proc + P_sig + P_cpu^lsfd)`` is linear, so
subproblem (24) over d in [0, 1]^{M x T} with ``sum_m d_mt >= 1`` (11e) is concave
too. Conic form: ``NI_t + N_t = sum_m h_mt w_mt`` with ``w_mt >= d_mt^2`` and
``PC_t = sum_{i in P_t \\ t} v_it`` with ``v_it >= p_i (sum_m d_mt s_mt beta_mi / beta_mt)^2``,
each a cone of size 3 (one cone per UE holding all its terms mixes coefficients
from 1e-12 to 1e2 that equilibration cannot separate, and Clarabel stalls).

Candidate links (our restriction, stated). (24) optimises only UE t's
``candidates`` (12) strongest APs by beta_mt, plus every link of the start
(so the start is feasible for every (24) and its support never leaves the set);
other d_mt stay 0. ``candidates = 0`` uses all M APs. Measured (loaded 2-core
machine, seed 0): on ``small`` (M = 20) the final EE of 4 instances is the same
as unrestricted to 1e-7; on ``m60-t30`` (2 instances) the relaxed EE differs by
at most 0.1 % (3.7682 vs 3.7721 Mbit/J) and the final EE by 0.26 % / 0 %,
within the spread that rounding alone gives (20 candidates: 3.5512, 12: 3.5570,
all: 3.5662 on instance 0), while (24) takes 0.08-0.26 s instead of 0.9-5.2 s
and the compiled problem 0.5 GB instead of 7.6 GB.

Phases (our addition, stated). The paper assumes a feasible start. When the
current point misses SE^QoS the hard constraint is dropped (its value would make
the subproblem infeasible) and the term ``lambda min(S, SE^QoS)`` (``lambda``
Mbit/J per bit/s/Hz, option ``qos_weight``, default 1, an order above EE's
marginal value of SE) pulls the sum SE up first; once the target holds the
hard constraint is imposed and stays satisfied (the surrogate is tight at the
current point, which is therefore feasible, and a minorant everywhere). The
merit ``lambda min(S, SE^QoS) + EE'`` is what each step cannot decrease: the
subproblem's optimum is at least its value at the current point, which equals
the merit there, and the true merit of the new point is at least the
subproblem's value there (both transforms are minorants). In phase 2 the merit
is EE' plus a constant, so **the true EE of the relaxed iterates is
non-decreasing** once the target holds (Appendix A's monotonicity, for the
true objective rather than the surrogate).

Algorithm 1. Each outer iteration refreshes z and b (17), (21) at the current
point, solves (23), refreshes them again and solves (24). It stops when
``|f2^(i) - f2^(i-1)| <= tol |f2^(i-1)|`` (line 15, ``tol`` = 5e-3), with f2^(i)
EE' (12a) after (24) of iteration i (what (24)'s optimum becomes once z and b
are refreshed, Lemmas 1-2; the merit while the target is missed, whose constant
part would otherwise dilute the test) and f2^(0) that of the start, applied only
once the target holds (in phase 1 the merit is dominated by ``lambda S``: at
SE^QoS = 70 a step of 0.3 bit/s/Hz towards the target is under 0.5 % and stopped
the search short of it on ``m40-t30-paper``); or when neither step was accepted;
or after ``max_iter`` (50) iterations.

Verification. A subproblem's answer is taken only if it lies in its box within
the solver's feasibility tolerance (1e-8 Clarabel, 1e-4 SCS and any inaccurate
answer), is clipped into it, and then meets the true conditions recomputed by
the problem's physics: the merit does not decrease (1e-9 relative), the sum SE
still meets the target in phase 2, every UE keeps ``sum_m d_mt >= 1 - 1e-6``.
A solver that fails or answers outside the box is followed by Clarabel with
shorter steps (``max_step_fraction`` 0.9, 0.7, 0.5: the log-inside-sqrt objective
often stalls Clarabel's default 0.99 step at "insufficient progress"; at M = 60,
T = 30 every (24) measured did, so (24) starts at 0.9), then SCS, with
the same checks; an in-box answer that fails the
true check means no ascent is left at this accuracy and leaves the point
unchanged. Each subproblem is one DPP cvxpy problem, (23) per T and (24) per
(candidate slots, copilot slots, T), compiled once and re-solved with new parameters.

Rounding (our rule, the paper does not state one). From the relaxed ``(eta, d)``:

1. ``d_mt = 1`` iff the relaxed ``d_mt >= round_threshold`` (0.5);
2. a UE left without a link gets the AP with its largest relaxed d_mt (ties: largest beta);
3. power step: (23) iterated with refreshed z, b to convergence (1e-5 relative,
   at most 30 solves) for the binary d, from the relaxed eta;
4. QoS repair: while the sum SE misses SE^QoS, add the unused link with the best
   sum-SE gain per watt at the current eta (each link costs the same 6.61 W, so
   this is the best SE gain), until the target holds or no link raises the sum
   SE; then the power step again;
5. safeguard: the binary start (the initial association after the same power
   step) replaces the result when the problem's judge prefers it (feasible
   first, then EE). It matters only when rounding loses feasibility.

Initialisations (Section V-C). ``association`` (Schemes 1-5): ``top-aps`` (each
UE by its ``top_k`` = 10 strongest APs), ``top-ues`` (each AP serves its 10
strongest UEs, plus each UE's strongest AP if it has none), ``all`` (fully
connected), ``lsf95`` (default, Section V: ``beta_mt >= 0.95 max_m beta_mt``),
``random`` (``d_mt ~ Bernoulli(top_k / M)`` plus one random AP for a UE left
without a link; seeded by ``instance_rng``); ``scheme1`` ... ``scheme5`` are
aliases. ``power`` (Fig. 9 has five; the paper does not describe them, these are
ours): ``full`` (default, eta = 1: the paper's "initial UE transmit power 100
mW"), ``half`` (0.5), ``tenth`` (0.1), ``random`` (U(0, 1), seeded), and
``equal-sinr`` (the largest common SINR the initial association supports with
eta <= 1, by bisection on ``(diag(a) - gamma B) p = gamma c``).

Options: ``association``, ``power``, ``tol`` (5e-3), ``max_iter`` (50),
``top_k`` (10), ``round_threshold`` (0.5), ``qos_weight`` (1.0), ``candidates``
(12; 0 = all APs). Unknown names
and bad values raise ``ValueError`` naming the valid ones. The per-UE SE floor
(``-minse`` scenarios) is not part of the paper's method and not enforced here.

Reported: ``iterations`` = outer iterations; ``trace`` = the true EE (Mbit/J,
``dmimo_model.performance``) of the start and of the relaxed iterate after each
outer iteration (the paper's Fig. 7 curve; length iterations + 1). The
returned binary decision is scored by the problem alone. ``details`` on the
solver holds, per instance of the last ``solve``, the stop reason, the merit
trace, the relaxed and rounded EE and the links the repair added.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from cfbench import Instances, Option, Solution, Solver, hookimpl, instance_rng
from cfbench.lazy import lazy_import
from cfbench.physics.association import lsf_fraction_association
from cfbench.problems import dmimo_model as dm

cp = lazy_import("cvxpy")  # imported when a solver first builds a problem: listing stays fast

LN2 = math.log(2.0)
ASSOCIATION_INITS = ("top-aps", "top-ues", "all", "lsf95", "random")      # Schemes 1-5
POWER_INITS = ("full", "half", "tenth", "random", "equal-sinr")
ROUNDING_RULES = ("prefix", "threshold")
DEFAULTS = {"association": "lsf95", "power": "full", "tol": 5e-3, "max_iter": 50, "top_k": 10,
            "rounding": "prefix", "round_threshold": 0.5, "qos_weight": 1.0, "candidates": 12}
#: ``instance_rng`` streams of the random initialisations
RANDOM_ASSOCIATION_STREAM = 4101
RANDOM_POWER_STREAM = 4102
#: relative margin above SE^QoS that phase-2 steps aim at (round-off never loses the target)
QOS_MARGIN = 1e-6
#: conic solvers tried in turn, with the primal feasibility tolerance each stops at
#: ``warm_start=False``: cvxpy would otherwise update its cached Clarabel solver in place, and a
#: solve would depend on the previous one (answers then differ between identical calls).
SOLVER_ATTEMPTS = (("CLARABEL", {"warm_start": False}, 1e-8),
                   ("CLARABEL", {"warm_start": False, "max_step_fraction": 0.9}, 1e-8),
                   ("CLARABEL", {"warm_start": False, "max_step_fraction": 0.7}, 1e-8),
                   ("CLARABEL", {"warm_start": False, "max_step_fraction": 0.5}, 1e-8),
                   ("SCS", {"max_iters": 20000}, 1e-4))
#: (24) starts at the 0.9 step: at M = 60, T = 30 the default step stalled on every (24) measured
ASSOCIATION_ATTEMPTS = SOLVER_ATTEMPTS[1:]
INACCURATE_FEASIBILITY_TOL = 1e-4
POWER_STEP_TOL, POWER_STEP_MAX = 1e-5, 30


def parse_options(options: dict, defaults: dict = DEFAULTS) -> dict:
    """Validated options (strings from ``--set`` accepted); ``ValueError`` on bad ones."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; valid: {', '.join(defaults)}")
    out = dict(defaults)
    for key, value in options.items():
        default = defaults[key]
        try:
            out[key] = type(default)(value) if not isinstance(default, str) else str(value)
        except (TypeError, ValueError):
            raise ValueError(f"option {key!r} must be a {type(default).__name__}, got {value!r}") from None
    scheme = {f"scheme{k + 1}": name for k, name in enumerate(ASSOCIATION_INITS)}
    if "association" in out:
        out["association"] = scheme.get(out["association"], out["association"])
        if out["association"] not in ASSOCIATION_INITS:
            raise ValueError(f"unknown association initialisation {out['association']!r}; valid: "
                             f"{', '.join(ASSOCIATION_INITS)} (or scheme1 ... scheme5)")
    if "rounding" in out and out["rounding"] not in ROUNDING_RULES:
        raise ValueError(f"unknown rounding rule {out['rounding']!r}; valid: {', '.join(ROUNDING_RULES)}")
    if "power" in out and out["power"] not in POWER_INITS:
        raise ValueError(f"unknown power initialisation {out['power']!r}; valid: {', '.join(POWER_INITS)}")
    checks = {"tol": lambda v: v > 0, "max_iter": lambda v: v >= 1, "top_k": lambda v: v >= 1,
              "round_threshold": lambda v: 0 < v <= 1, "qos_weight": lambda v: v >= 0,
              "candidates": lambda v: v >= 0}
    for key, ok in checks.items():
        if key in out and not ok(out[key]):
            raise ValueError(f"option {key!r} out of range: {out[key]!r}")
    return out


# --- one instance, seen through the problem's physics ---------------------------------------------

class InstanceModel:
    """Instance ``i`` of a batch: its link coefficients and the problem's performance formula."""

    def __init__(self, instances: Instances, i: int) -> None:
        self.instances, self.i = instances, i
        self.one = instances[i]
        self.params: dm.DmimoScenario = instances.params
        self.coeffs = dm.coefficients(self.one)
        self.beta = self.coeffs.beta[0]
        self.n_aps, self.n_ues = self.beta.shape
        p = self.params
        self.qos = p.se_qos_bit_per_hz
        self.se_cap = p.se_qos_bit_per_hz * (1 + QOS_MARGIN)
        self._x = None

    @property
    def x(self) -> np.ndarray:
        """``x_mti`` (M, T, T), per unit power."""
        if self._x is None:
            self._x = self.coeffs.interference_per_link()[0]
        return self._x

    def perf(self, eta: np.ndarray, d: np.ndarray) -> dict:
        """``dmimo_model.performance`` of one point (eta (T,), d (M, T)) or of candidates
        (eta (C, T) and/or d (C, M, T)); values without the instance axis."""
        out = dm.performance(self.params, self.coeffs, np.asarray(eta)[None], np.asarray(d)[None])
        return {k: v[0] for k, v in out.items()}

    def ee_prime(self, perf: dict) -> np.ndarray:
        """(12a): ``B S / (P_T - decoding)`` in Mbit/J."""
        return 1e-6 * self.params.bandwidth_hz * perf["sum_se_bit_per_hz"] / (perf["total_w"] - perf["decoding_w"])

    def merit(self, perf: dict, qos_weight: float) -> np.ndarray:
        """``lambda min(S, SE^QoS (1 + margin)) + EE'``: what no accepted step decreases."""
        return qos_weight * np.minimum(perf["sum_se_bit_per_hz"], self.se_cap) + self.ee_prime(perf)

    def judge_key(self, perf: dict) -> tuple[bool, float]:
        """The problem's preference: feasible first (sum SE and every UE served), then EE."""
        return (bool(perf["sum_se_bit_per_hz"] >= self.qos * (1 - 1e-6)), float(perf["ee_mbit_per_j"]))

    def qt_weights(self, perf: dict, eta: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, float]:
        """z (17) and b (21) at the current point: ``z_t = sqrt(DS_t) / I_t``, ``b = sqrt(u) / v``."""
        t = dm.sinr_terms(self.coeffs, np.asarray(eta)[None], np.asarray(d)[None])
        interference = (t["pc"] + t["ni"] + t["noise"])[0]
        z = np.sqrt(t["ds"][0]) / np.maximum(interference, 1e-300)
        u = 1e-6 * self.params.bandwidth_hz * float(perf["sum_se_bit_per_hz"])
        v = float(perf["total_w"] - perf["decoding_w"])
        return z, math.sqrt(max(u, 0.0)) / v


def sinr_scale(perf: dict) -> np.ndarray:
    """Row scaling of the SINR constraints, ``max(Gamma_t, 1)`` at the current point: each row
    reads ``g_t / scale_t <= (2 z_t sqrt(DS_t) - z_t^2 I_t) / scale_t``, O(1) at the current point."""
    return np.maximum(np.asarray(perf["sinr"], dtype=float), 1.0)


def _solve_verified(problem: cp.Problem, extract, accept, attempts=SOLVER_ATTEMPTS):
    """Clarabel, then SCS: the first answer that ``extract`` (status, tolerance) turns into a
    point inside its box, if ``accept`` (the true conditions) takes it; None otherwise. A later
    solver is tried only when the earlier one fails or answers outside the box."""
    for solver, options, tolerance in attempts:
        if solver not in cp.installed_solvers():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                problem.solve(solver=solver, **options)
        except cp.error.SolverError:
            continue
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            continue
        if problem.status == cp.OPTIMAL_INACCURATE:
            tolerance = max(tolerance, INACCURATE_FEASIBILITY_TOL)
        point = extract(tolerance)
        if point is not None:
            # an answer inside its box that the true check turns down means no ascent is left
            # at this accuracy: another solver would not find one either
            return accept(point)
    return None


def _box(value, tolerance: float) -> np.ndarray | None:
    """``value`` clipped into [0, 1] if it lies there within ``tolerance``, else None."""
    if value is None:
        return None
    value = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(value)) or value.min() < -tolerance or value.max() > 1 + tolerance:
        return None
    return np.clip(value, 0.0, 1.0)


def _set_merit_terms(sub, model: "InstanceModel", b: float, qos_weight: float, perf: dict) -> tuple[bool, float]:
    """Parameters both subproblems share: the ratio transform's 2 b sqrt(u) coefficient, the
    phase-1 QoS weight and cap, the hard sum-SE floor once SE^QoS holds (phase 2). Returns
    (phase 2?, the merit at the current point)."""
    p = model.params
    k_u = p.pre_log * p.bandwidth_hz / (1e6 * LN2)
    sub.c_sqrt.value = 2 * b * math.sqrt(k_u)
    sub.c_se.value = qos_weight
    sub.se_cap.value = model.se_cap
    phase2 = bool(perf["sum_se_bit_per_hz"] >= model.se_cap)
    sub.se_floor.value = model.se_cap if phase2 else 0.0
    return phase2, float(model.merit(perf, qos_weight))


class PowerSubproblem:
    """Problem (23) for T UEs in the variables q = sqrt(eta) (module docstring)."""

    def __init__(self, n_ues: int, pre_log: float) -> None:
        T = n_ues
        self.q = cp.Variable(T, name="sqrt_eta")
        g = cp.Variable(T, name="sinr_lower")
        self.alpha = cp.Parameter(T, nonneg=True, name="signal")              # 2 z_t sqrt(a_t p_u)
        self.w = cp.Parameter((T, T), nonneg=True, name="interference")       # z_t^2 p_u B_ti
        self.k = cp.Parameter(T, nonneg=True, name="noise")                   # z_t^2 c_t
        self.c_sqrt = cp.Parameter(nonneg=True)                                # 2 b sqrt(kU)
        self.c_pa = cp.Parameter(nonneg=True)                                  # b^2 p_u / zeta (W)
        self.c_se = cp.Parameter(nonneg=True)                                  # lambda
        self.se_cap = cp.Parameter(nonneg=True)
        self.se_floor = cp.Parameter(nonneg=True)
        self.scale = cp.Parameter(T, pos=True, name="sinr_scale")             # g = scale * (row-scaled g)
        nats = cp.sum(cp.log(1 + cp.multiply(self.scale, g)))
        se = nats * (pre_log / LN2)
        capped = cp.Variable(name="capped_se")                                 # min(S, SE^QoS)
        root = cp.Variable(name="sqrt_nats")                                   # sqrt(sum ln(1 + g))
        self.problem = cp.Problem(
            cp.Maximize(self.c_sqrt * root - self.c_pa * cp.sum_squares(self.q) + self.c_se * capped),
            [g <= cp.multiply(self.alpha, self.q) - self.w @ cp.square(self.q) - self.k,
             self.q >= 0, self.q <= 1, se >= self.se_floor, capped <= se, capped <= self.se_cap,
             root <= cp.sqrt(nats)])
        assert self.problem.is_dpp()

    def step(self, model: InstanceModel, eta: np.ndarray, d: np.ndarray, perf: dict,
             qos_weight: float) -> tuple[np.ndarray, dict] | None:
        """One (23) step from (eta, d): the new eta and its performance, or None."""
        p = model.params
        z, b = model.qt_weights(perf, eta, d)
        a, B, c = (x[0] for x in model.coeffs.fixed_association_form(np.asarray(d)[None]))
        scale = sinr_scale(perf)
        self.scale.value = scale
        self.alpha.value = 2 * z * np.sqrt(np.maximum(a, 0.0) * p.p_u_mw) / scale
        self.w.value = np.maximum((z ** 2 / scale)[:, None] * p.p_u_mw * B, 0.0)
        self.k.value = z ** 2 * c / scale
        return self._finish(model, b, qos_weight, perf, lambda e: (e, d))

    def _finish(self, model, b, qos_weight, perf, point_of):
        p = model.params
        self.c_pa.value = b ** 2 * 1e-3 * p.p_u_mw / p.pa_efficiency
        phase2, old = _set_merit_terms(self, model, b, qos_weight, perf)

        def extract(tolerance):
            q = _box(self.q.value, tolerance)
            return None if q is None else q ** 2

        def accept(eta_new):
            eta_new, d_new = point_of(eta_new)
            new_perf = model.perf(eta_new, d_new)
            if float(model.merit(new_perf, qos_weight)) < old - 1e-9 * max(1.0, abs(old)):
                return None
            if phase2 and new_perf["sum_se_bit_per_hz"] < model.qos:
                return None
            return eta_new, new_perf

        return _solve_verified(self.problem, extract, accept)


class CandidateLinks:
    """The links (24) may use for one instance: UE t's ``k`` strongest APs (by beta_mt) plus every
    link of the start (``d_mt > 0``), as slots ``index[s, t]`` (an AP; ``valid[s, t]`` False on
    padding), and UE t's copilot UEs ``copilot_index[c, t]`` (``copilot_valid``). ``k = 0``: all APs."""

    def __init__(self, model: "InstanceModel", d_start: np.ndarray, k: int) -> None:
        M, T = model.n_aps, model.n_ues
        beta = model.beta
        order = np.argsort(-beta, axis=0, kind="stable")                  # (M, T), strongest first
        keep = np.zeros((M, T), dtype=bool)
        if k <= 0 or k >= M:
            keep[:] = True
        else:
            keep[order[:k], np.arange(T)[None, :]] = True
            keep |= np.asarray(d_start) > 0
        self.keep = keep
        n_slots = int(keep.sum(axis=0).max())
        ranked = np.take_along_axis(keep, order, axis=0)                     # kept APs first, by beta
        slot_order = np.argsort(~ranked, axis=0, kind="stable")[:n_slots]
        self.index = np.take_along_axis(order, slot_order, axis=0)           # (K, T)
        self.valid = np.take_along_axis(ranked, slot_order, axis=0)
        copilot = model.coeffs.copilot[0] > 0                               # [t, i]
        n_copilots = int(copilot.sum(axis=1).max())
        self.copilot_index = np.zeros((n_copilots, T), dtype=int)
        self.copilot_valid = np.zeros((n_copilots, T), dtype=bool)
        for t in range(T):
            others = np.flatnonzero(copilot[t])
            self.copilot_index[:len(others), t] = others
            self.copilot_valid[:len(others), t] = True

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slots K, copilot slots C, UEs T): what the compiled (24) depends on."""
        return self.index.shape[0], self.copilot_index.shape[0], self.index.shape[1]

    def full(self, x: np.ndarray, n_aps: int) -> np.ndarray:
        """The (M, T) association of slot values ``x`` (K, T)."""
        d = np.zeros((n_aps, x.shape[1]))
        cols = np.broadcast_to(np.arange(x.shape[1]), x.shape)
        d[self.index[self.valid], cols[self.valid]] = x[self.valid]
        return d


class AssociationSubproblem:
    """Problem (24) for T UEs over their candidate links (:class:`CandidateLinks`, K slots per
    UE, C copilot slots), variable ``x[s, t] = d_{index[s, t], t}`` (0 on other links).

    Per UE t the quadratic terms are one sum of squares of K + C small affine expressions:
    ``PC_t + NI_t = sum_c w_ct (sum_s r_sct x_st)^2 + sum_s h_st x_st^2`` with the copilot
    amplitudes ``r_sct = s_mt beta_mi / beta_mt`` (m = index[s, t], i the c-th copilot UE of t),
    so every parameter enters elementwise (DPP compilation stays small) and only the few
    couplings that exist (C <= 7 at M = 60, T = 30) are written. All coefficients are scaled by
    the row scaling ``z_t / sqrt(scale_t)`` of (17), which makes them O(1) at the current point."""

    def __init__(self, n_slots: int, n_copilots: int, n_ues: int, pre_log: float) -> None:
        K, C, T = n_slots, n_copilots, n_ues
        self.x = cp.Variable((K, T), name="association")
        g = cp.Variable(T, name="sinr_lower")
        self.upper = cp.Parameter((K, T), nonneg=True, name="slot_valid")      # 1 candidate, 0 padding
        self.alpha = cp.Parameter((K, T), nonneg=True, name="signal")          # 2 z_t sqrt(p_t) s_mt / scale_t
        self.h = cp.Parameter((K, T), nonneg=True, name="ni")                  # z_t^2 h_mt / scale_t
        self.copilot = [cp.Parameter((K, T), nonneg=True, name=f"pc{c}") for c in range(C)]
        self.c_link = cp.Parameter(nonneg=True)                                # b^2 x link power (W)
        self.c_sqrt = cp.Parameter(nonneg=True)
        self.c_se = cp.Parameter(nonneg=True)
        self.se_cap = cp.Parameter(nonneg=True)
        self.se_floor = cp.Parameter(nonneg=True)
        self.scale = cp.Parameter(T, pos=True, name="sinr_scale")
        amplitude = cp.sum(cp.multiply(self.alpha, self.x), axis=0)
        square = cp.Variable((K, T), name="association_squared")             # >= x^2
        # padding slots: no coefficient and a link cost, so they go to 0; (11e) counts real slots only
        constraints = [self.x >= 0, self.x <= 1, cp.sum(cp.multiply(self.upper, self.x), axis=0) >= 1,
                       square >= cp.square(self.x)]
        interference = cp.sum(cp.multiply(self.h, square), axis=0)
        for w in self.copilot:                                                 # PC: C cones of size 3 per UE
            amplitude_c = cp.sum(cp.multiply(w, self.x), axis=0)
            pc = cp.Variable(T, name="copilot_power")
            constraints.append(pc >= cp.square(amplitude_c))
            interference = interference + pc
        constraints.append(g <= amplitude - interference)
        nats = cp.sum(cp.log(1 + cp.multiply(self.scale, g)))
        se = nats * (pre_log / LN2)
        capped = cp.Variable(name="capped_se")                                 # min(S, SE^QoS)
        root = cp.Variable(name="sqrt_nats")
        constraints += [se >= self.se_floor, capped <= se, capped <= self.se_cap, root <= cp.sqrt(nats)]
        self.problem = cp.Problem(
            cp.Maximize(self.c_sqrt * root - self.c_link * cp.sum(self.x) + self.c_se * capped),
            constraints)
        assert self.problem.is_dpp()

    def step(self, model: InstanceModel, eta: np.ndarray, d: np.ndarray, perf: dict,
             qos_weight: float, links: CandidateLinks) -> tuple[np.ndarray, dict] | None:
        """One (24) step from (eta, d) over ``links`` (which hold d's support): the new relaxed
        d and its performance, or None."""
        p, cf = model.params, model.coeffs
        z, b = model.qt_weights(perf, eta, d)
        scale = sinr_scale(perf)
        self.scale.value = scale
        power = eta * p.p_u_mw
        s, beta = cf.signal[0], cf.beta[0]
        m, valid = links.index, links.valid
        cols = np.broadcast_to(np.arange(model.n_ues), m.shape)
        weight = z / np.sqrt(scale)                                              # (T,)
        self.upper.value = valid.astype(float)
        self.alpha.value = valid * 2 * (z * np.sqrt(power) / scale)[None, :] * s[m, cols]
        h = cf.noise[0] + np.einsum("mti,i->mt", model.x, power)
        self.h.value = valid * (weight ** 2)[None, :] * np.maximum(h[m, cols], 0.0)
        ratio = s[m, cols] / beta[m, cols]                                       # (K, T)
        for c, par in enumerate(self.copilot):
            i = links.copilot_index[c]                                           # (T,)
            on = links.copilot_valid[c]
            par.value = (valid * (on * weight * np.sqrt(power[i]))[None, :] * ratio * beta[m, i[None, :]])
        self.c_link.value = b ** 2 * p.link_power_w
        phase2, old = _set_merit_terms(self, model, b, qos_weight, perf)

        def extract(tolerance):
            x = _box(self.x.value, tolerance)
            if x is None:
                return None
            D = links.full(x, model.n_aps)
            if np.any(D.sum(axis=0) < 1 - max(tolerance, 1e-6) * model.n_aps):
                return None
            return D

        def accept(d_new):
            new_perf = model.perf(eta, d_new)
            if float(model.merit(new_perf, qos_weight)) < old - 1e-9 * max(1.0, abs(old)):
                return None
            if phase2 and new_perf["sum_se_bit_per_hz"] < model.qos:
                return None
            return d_new, new_perf

        return _solve_verified(self.problem, extract, accept, ASSOCIATION_ATTEMPTS)


# --- initialisations ------------------------------------------------------------------------------

def initial_association(scheme: str, beta: np.ndarray, rng: np.random.Generator | None = None,
                        top_k: int = 10) -> np.ndarray:
    """Schemes 1-5 of Section V-C for one instance, ``beta`` (M, T) -> 0/1 d (M, T); every UE served."""
    M, T = beta.shape
    k_ap, k_ue = min(top_k, M), min(top_k, T)
    d = np.zeros((M, T))
    if scheme == "top-aps":
        rows = np.argsort(-beta, axis=0, kind="stable")[:k_ap]
        d[rows, np.arange(T)[None, :]] = 1.0
    elif scheme == "top-ues":
        cols = np.argsort(-beta, axis=1, kind="stable")[:, :k_ue]
        d[np.arange(M)[:, None], cols] = 1.0
    elif scheme == "all":
        d[:] = 1.0
    elif scheme == "lsf95":
        d = lsf_fraction_association(beta, 0.95)
    elif scheme == "random":
        if rng is None:
            raise ValueError("the random association needs a generator")
        d = (rng.random((M, T)) < k_ap / M).astype(float)
        empty = np.flatnonzero(d.sum(axis=0) == 0)
        d[rng.integers(0, M, size=len(empty)), empty] = 1.0
    else:
        raise ValueError(f"unknown association initialisation {scheme!r}; valid: {', '.join(ASSOCIATION_INITS)}")
    empty = np.flatnonzero(d.sum(axis=0) == 0)
    d[np.argmax(beta[:, empty], axis=0), empty] = 1.0
    return d


def equal_sinr_eta(model: InstanceModel, d: np.ndarray, n_bisect: int = 60) -> np.ndarray:
    """Largest common SINR gamma the binary ``d`` supports with eta <= 1: ``p`` solves
    ``(diag(a) - gamma B) p = gamma c``; bisection on log gamma; eta = p / p_u."""
    a, B, c = (x[0] for x in model.coeffs.fixed_association_form(np.asarray(d)[None]))
    p_u = model.params.p_u_mw

    def powers(gamma):
        try:
            p = np.linalg.solve(np.diag(a) - gamma * B, gamma * c)
        except np.linalg.LinAlgError:
            return None
        return p if np.all(p >= 0) and np.all(p <= p_u) else None

    lo, hi = 1e-8, 1e8
    if powers(lo) is None:
        return np.ones(model.n_ues)
    for _ in range(n_bisect):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if powers(mid) is not None else (lo, mid)
    return np.clip(powers(lo) / p_u, 0.0, 1.0)


def initial_power(scheme: str, model: InstanceModel, d: np.ndarray,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """The power initialisations (module docstring), eta (T,)."""
    T = model.n_ues
    fixed = {"full": 1.0, "half": 0.5, "tenth": 0.1}
    if scheme in fixed:
        return np.full(T, fixed[scheme])
    if scheme == "random":
        if rng is None:
            raise ValueError("the random power initialisation needs a generator")
        return rng.uniform(0.0, 1.0, T)
    if scheme == "equal-sinr":
        return equal_sinr_eta(model, d)
    raise ValueError(f"unknown power initialisation {scheme!r}; valid: {', '.join(POWER_INITS)}")


# --- the pieces of the method ---------------------------------------------------------------------

class Subproblems:
    """The compiled (23) and (24) per (M, T), built on first use and reused across instances."""

    def __init__(self) -> None:
        self._power: dict = {}
        self._association: dict = {}

    def power(self, T: int, pre_log: float) -> PowerSubproblem:
        if (T, pre_log) not in self._power:
            self._power[(T, pre_log)] = PowerSubproblem(T, pre_log)
        return self._power[(T, pre_log)]

    def association(self, links: CandidateLinks, pre_log: float) -> AssociationSubproblem:
        key = links.shape + (pre_log,)
        if key not in self._association:
            self._association[key] = AssociationSubproblem(*key)
        return self._association[key]


def stopping_value(model: InstanceModel, perf: dict, qos_weight: float) -> float:
    """f2 of line 15: EE' (12a) once the target holds (the merit less its constant), else the merit."""
    if perf["sum_se_bit_per_hz"] >= model.se_cap:
        return float(model.ee_prime(perf))
    return float(model.merit(perf, qos_weight))


def power_step(subproblems: Subproblems, model: InstanceModel, d: np.ndarray, eta: np.ndarray,
               qos_weight: float, tol: float = POWER_STEP_TOL, max_solves: int = POWER_STEP_MAX
               ) -> tuple[np.ndarray, dict, int]:
    """(23) iterated with refreshed z and b for a fixed d until the merit gains at most ``tol``
    (relative): the final eta, its performance and the number of solves."""
    sub = subproblems.power(model.n_ues, model.params.pre_log)
    perf = model.perf(eta, d)
    value = stopping_value(model, perf, qos_weight)
    for k in range(1, max_solves + 1):
        out = sub.step(model, eta, d, perf, qos_weight)
        if out is None:
            return eta, perf, k
        eta, perf = out
        new = stopping_value(model, perf, qos_weight)
        if abs(new - value) <= tol * abs(value):
            return eta, perf, k
        value = new
    return eta, perf, max_solves


def repair_qos(model: InstanceModel, d: np.ndarray, eta: np.ndarray, max_links: int | None = None
               ) -> tuple[np.ndarray, int]:
    """Rounding step 4: add the unused links with the best sum-SE gain per watt at ``eta``
    until the sum SE meets SE^QoS or no link raises it; (d, number of links added)."""
    d = d.copy()
    added = 0
    se = float(model.perf(eta, d)["sum_se_bit_per_hz"])
    limit = max_links if max_links is not None else d.size
    while se < model.se_cap and added < limit:
        free = np.argwhere(d == 0)
        if len(free) == 0:
            break
        candidates = np.broadcast_to(d, (len(free),) + d.shape).copy()
        candidates[np.arange(len(free)), free[:, 0], free[:, 1]] = 1.0
        gain = (model.perf(eta, candidates)["sum_se_bit_per_hz"] - se) / model.params.link_power_w
        best = int(np.argmax(gain))
        if gain[best] <= 0:
            break
        d = candidates[best]
        se = se + gain[best] * model.params.link_power_w
        added += 1
    return d, added


def prefix_rounding(model: InstanceModel, d_relaxed: np.ndarray, eta: np.ndarray,
                    floor: float = 1e-3) -> np.ndarray:
    """Rounding steps 1-2 of the ``prefix`` rule: every UE's largest relaxed d_mt first, then the
    other links in decreasing relaxed d_mt (those above ``floor``); of these nested binary
    associations the one the judge prefers at the relaxed ``eta`` (feasible first, then EE)."""
    base = round_association(d_relaxed, model.beta, threshold=1.1)        # argmax AP per UE only
    rest = np.argwhere((base == 0) & (d_relaxed > floor))
    order = np.argsort(-d_relaxed[rest[:, 0], rest[:, 1]], kind="stable")
    rest = rest[order]
    candidates = np.broadcast_to(base, (len(rest) + 1,) + base.shape).copy()
    for k, (m, t) in enumerate(rest):
        candidates[k + 1:, m, t] = 1.0
    perf = model.perf(eta, candidates)
    feasible = perf["sum_se_bit_per_hz"] >= model.se_cap
    key = np.where(feasible, 1e6, 0.0) + np.where(feasible, perf["ee_mbit_per_j"], perf["sum_se_bit_per_hz"])
    return candidates[int(np.argmax(key))]


def round_association(d_relaxed: np.ndarray, beta: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Rounding steps 1-2: threshold, then every UE without a link gets its largest relaxed d_mt
    (ties broken by beta)."""
    d = (d_relaxed >= threshold).astype(float)
    empty = np.flatnonzero(d.sum(axis=0) == 0)
    if len(empty):
        score = d_relaxed[:, empty] + 1e-12 * beta[:, empty] / beta[:, empty].max(axis=0)
        d[np.argmax(score, axis=0), empty] = 1.0
    return d


class AlternatingOptimisation(Solver):
    """Algorithm 1 with our rounding (module docstring). Options: ``association`` (lsf95),
    ``power`` (full), ``tol`` (5e-3), ``max_iter`` (50), ``top_k`` (10), ``round_threshold``
    (0.5), ``qos_weight`` (1.0), ``candidates`` (12)."""

    name = "ao"
    kind = "iterative"
    problems = ("dmimo",)
    description = ("Algorithm 1: quadratic transforms (15)-(17), (20)-(21), alternating (23)/(24) "
                   "over eta and relaxed d (cvxpy/Clarabel), rounding with QoS repair, final power step")
    options_spec = (
        Option("association", str, DEFAULTS["association"],
               f"initial association: {', '.join(ASSOCIATION_INITS)} (or scheme1 ... scheme5)"),
        Option("power", str, DEFAULTS["power"], "initial power", choices=POWER_INITS),
        Option("tol", float, DEFAULTS["tol"], "phase-2 stop when the stopping value changes by at most tol (relative)"),
        Option("max_iter", int, DEFAULTS["max_iter"], "alternating iterations at most"),
        Option("top_k", int, DEFAULTS["top_k"], "k of the top-aps, top-ues and random initial associations"),
        Option("rounding", str, DEFAULTS["rounding"], "rounding of the relaxed association", choices=ROUNDING_RULES),
        Option("round_threshold", float, DEFAULTS["round_threshold"], "threshold of the threshold rounding, in (0, 1]"),
        Option("qos_weight", float, DEFAULTS["qos_weight"], "weight of the QoS term in the merit"),
        Option("candidates", int, DEFAULTS["candidates"], "strongest APs per UE the association step (24) may add (0: all APs)"),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.config = parse_options(self.options)
        self.subproblems = Subproblems()
        self.details: list[dict] = []

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        params = problem.scenario_params(scenario)
        self.subproblems.power(params.n_ues, params.pre_log)

    def start(self, model: InstanceModel, instances: Instances, i: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        rng_d = instance_rng(instances, i, RANDOM_ASSOCIATION_STREAM)
        d0 = initial_association(cfg["association"], model.beta, rng_d, cfg["top_k"])
        rng_p = instance_rng(instances, i, RANDOM_POWER_STREAM)
        return initial_power(cfg["power"], model, d0, rng_p), d0

    def iterate(self, model: InstanceModel, eta: np.ndarray, d: np.ndarray) -> dict:
        """Algorithm 1 from (eta, d): the relaxed point, EE and merit traces, stop reason."""
        cfg = self.config
        lam = cfg["qos_weight"]
        p = model.params
        power_sub = self.subproblems.power(model.n_ues, p.pre_log)
        links = CandidateLinks(model, d, cfg["candidates"])
        assoc_sub = self.subproblems.association(links, p.pre_log)
        perf = model.perf(eta, d)
        ee_trace = [float(perf["ee_mbit_per_j"])]
        merit_trace = [float(model.merit(perf, lam))]
        f2_previous = stopping_value(model, perf, lam)
        reason = "max_iter"
        for _ in range(cfg["max_iter"]):
            moved = False
            out = power_sub.step(model, eta, d, perf, lam)                  # (23), lines 4-8
            if out is not None:
                eta, perf = out
                moved = True
            out = assoc_sub.step(model, eta, d, perf, lam, links)           # (24), lines 9-13
            if out is not None:
                d, perf = out
                moved = True
            merit_trace.append(float(model.merit(perf, lam)))
            ee_trace.append(float(perf["ee_mbit_per_j"]))
            f2 = stopping_value(model, perf, lam)
            if not moved:
                reason = "no-ascent"
                break
            phase2 = perf["sum_se_bit_per_hz"] >= model.se_cap
            if phase2 and abs(f2 - f2_previous) <= cfg["tol"] * abs(f2_previous):   # line 15
                reason = "tol"
                break
            f2_previous = f2
        return {"eta": eta, "d": d, "ee_trace": ee_trace, "merit_trace": merit_trace, "reason": reason}

    def finish(self, model: InstanceModel, eta: np.ndarray, d_relaxed: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Rounding steps 1-4: a binary d and its eta, and the links the repair added."""
        lam = self.config["qos_weight"]
        if self.config["rounding"] == "prefix":
            d = prefix_rounding(model, d_relaxed, eta)
        else:
            d = round_association(d_relaxed, model.beta, self.config["round_threshold"])
        eta, perf, _ = power_step(self.subproblems, model, d, eta, lam)
        added = 0
        if perf["sum_se_bit_per_hz"] < model.se_cap:
            d, added = repair_qos(model, d, eta)
            if added:
                eta, perf, _ = power_step(self.subproblems, model, d, eta, lam)
        return eta, d, added

    def solve_one(self, instances: Instances, i: int) -> tuple[np.ndarray, np.ndarray, dict]:
        model = InstanceModel(instances, i)
        eta0, d0 = self.start(model, instances, i)
        run = self.iterate(model, eta0, d0)
        eta, d, added = self.finish(model, run["eta"], run["d"])
        final = model.perf(eta, d)
        info = {"reason": run["reason"], "ee_trace": run["ee_trace"], "merit_trace": run["merit_trace"],
                "relaxed_ee": run["ee_trace"][-1], "links_added": added, "used_start": False,
                "iterations": len(run["ee_trace"]) - 1}
        if np.all((d0 == 0) | (d0 == 1)):                                  # safeguard (rounding step 5)
            eta_s, perf_s, _ = power_step(self.subproblems, model, d0, eta0, self.config["qos_weight"])
            if model.judge_key(perf_s) > model.judge_key(final):
                eta, d, final = eta_s, d0, perf_s
                info["used_start"] = True
        info["ee"] = float(final["ee_mbit_per_j"])
        return eta, d, info

    def solve(self, instances: Instances) -> Solution:
        p = instances.params
        n = len(instances)
        eta = np.empty((n, p.n_ues))
        d = np.empty((n, p.n_aps, p.n_ues))
        self.details = []
        for i in range(n):
            eta[i], d[i], info = self.solve_one(instances, i)
            self.details.append(info)
        return Solution({"eta": np.clip(eta, 0.0, 1.0), "d": d},
                        iterations=np.array([info["iterations"] for info in self.details]),
                        trace=[info["ee_trace"] for info in self.details])


@hookimpl
def cfbench_solvers():
    return [AlternatingOptimisation]
