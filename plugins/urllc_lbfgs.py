"""``lbfgs`` and ``multistart-lbfgs``: quasi-Newton ascent of Omega for ``urllc``, no conic solver.

Same problem as ``sca`` (:mod:`cfbench.plugins.urllc_sca`, problem (12) of Yan
et al.): maximise Omega (eq. 10) over log powers ``x_k = ln p_k`` in the box
``[ln p_min, ln p_max]``, every terminal of the served set S reliable. Where
``sca`` solves one cvxpy (Clarabel) subproblem with K(2K + 1) exponential cones
per iteration, this solver evaluates Omega and its gradient in closed form,
O(K^2) per evaluation, and hands them to scipy's L-BFGS-B, which keeps the box
exactly.

Gradient. With the SINR regrouped by powers
(:class:`cfbench.problems.urllc.SinrCoefficients`; ``G``, ``F`` zero on the
diagonal), ``S_k = 1/delta_k = [v_k + A_k/p_k + B_k/p_k^2]/m_k^2`` with
``A_k = u_k (1 + 1/n_p) + (G p)_k`` and ``B_k = ((F p)_k + z_k)/n_p``, so

    dS_k/dp_j = [G_kj/p_k + F_kj/(n_p p_k^2)]/m_k^2              (j != k),
    dS_k/dp_k = -[A_k/p_k^2 + 2 B_k/p_k^3]/m_k^2,

and a product ``y^T (dS/dx)`` costs two matrix-vector products:
``p_j (G^T (y / (m^2 p)) + F^T (y / (n_p m^2 p^2)))_j`` plus the diagonal term.
The rate in nats is ``g(t) = t - a sqrt(1 - e^{-2t})`` of ``t_k = ln(1 + 1/S_k)``
(``a = Q^-1(eps_QoS)/sqrt(n_d)``), ``R_k = max(0, g(t_k))/ln 2``, so
``dR_k/dS_k = -g'(t_k) / (ln 2 S_k (1 + S_k))`` where ``g > 0`` and 0 elsewhere.
Omega is affine in (SE_g, EE_g, SE_a, EE_a) (:func:`cfbench.problems.urllc.omega_weights`),
``SE_grp = sum_grp R_k/|grp|`` and ``EE_grp = B sum_grp R_k / D_grp`` with
``D_grp = sum_grp (mu p_k + sigma)``; hence, for k in group grp,

    dOmega/dR_k = c_k = w_SE(grp)/|grp| + w_EE(grp) B / D_grp,
    dOmega/dx_j = sum_k c_k dR_k/dS_k dS_k/dx_j - w_EE(grp) B mu N_grp p_j / D_grp^2,

with ``N_grp = sum_grp R_k`` (the ``sca`` module's ``c_k`` and ``q_k``). A test
checks it against finite differences.

Reliability (exact, convex in x). As in ``sca``, terminal k is reliable iff
``Z_k(x) = ln S_k(e^x) <= -ln gamma`` (``gamma`` the scenario's SINR threshold), a
log-sum-exp of affine functions of x: the served terminals' reliable set is
convex in x. L-BFGS-B takes bounds only, so the caps enter through an
augmented Lagrangian (Powell-Hestenes-Rockafellar, inequality form): with
``c_k(x) = Z_k(x) - (-ln gamma - CAP_MARGIN)`` for k in S, L-BFGS-B minimises

    -Omega(x) + (1/(2 rho)) sum_{k in S} [max(0, lam_k + rho c_k(x))^2 - lam_k^2]

over the box, then ``lam_k <- max(0, lam_k + rho c_k)``, and ``rho`` grows
tenfold whenever the largest violation did not fall to a quarter; the rounds
stop when the served caps hold without the margin (or after ``max_rounds``).
Most instances of the ``k`` and ``alpha`` scenarios never touch a cap: the
first round is then plain L-BFGS-B on Omega.

Exact feasibility and monotonicity. Every round's point ``x*`` is made exactly
feasible before it counts: the start ``x^0`` makes S reliable and the reliable
set is convex, so the reliable part of the segment ``x^0 + s (x* - x^0)``,
``s in [0, 1]``, is an interval containing 0; bisection (``BISECTION_STEPS``)
finds its end, and the point kept is the largest ``s`` at which the
evaluator-equivalent scorer (:class:`cfbench.plugins.urllc_baselines.CandidateScorer`,
the evaluator's own formulas and tolerance) finds every served terminal
reliable and its SINR at least ``min(gamma, delta_k(x^0))`` (a convex set
containing the start: without it the bisection would spend the evaluator's
1e-6-decade tolerance on eps_k, and an answer at that edge could flip with
the last bits of the SINR). It replaces the incumbent only if its Omega is
larger, so the trace (the incumbent's Omega after each round, starting with
the start's) is non-decreasing and the answer is never below the start.

Start and served set (exactly as ``sca``, without its conic step). The start
is the ``best-uniform`` common level. If a terminal is unreliable there, the
exact test of :mod:`cfbench.problems.urllc_reliability` (Yates' fixed point,
certified; the largest reliable set when not every terminal can be reliable)
gives S and a vector ``x^r`` making S reliable
(:func:`cfbench.plugins.urllc_sca.reliable_anchor`), and the start is the best
point of the 33-point log-power segment from ``x^r`` towards the uniform level
that keeps S reliable (``sca`` also tries the L1-nearest reliable point, a cvxpy
problem). In that case the rounds also run from the uniform level itself, with
the bisection anchored at that start, and the better verified point is kept:
the start from ``x^r`` sits where the least admissible powers put it and its
local optimum can differ from the one near the uniform level (on
``stress-k20``, seed 0, instance 2 the second ascent gains 0.2 %). So
``lbfgs`` is feasible on every instance that admits a reliable vector,
``stress`` included, and elsewhere leaves exactly as many terminals above
eps_QoS as ``sca``.

``multistart-lbfgs`` (kind "reference", the best known value for the gap
column) runs ``lbfgs`` and then the same rounds from more starts, keeping the
best verified point (so it is never below ``lbfgs``): every terminal at
``p_max`` and at the Omega-only best common level, and
``n_random`` log-uniform random vectors seeded per instance
(:func:`cfbench.instance_rng`). A start that does not make S reliable is first
moved along the segment to the ``lbfgs`` start (the largest reliable fraction,
by the same bisection) so that every round's point can be made feasible.

Options: ``max_iter`` (L-BFGS-B iterations per round), ``max_rounds``
(augmented-Lagrangian rounds), ``tol`` (L-BFGS-B's relative objective
tolerance ``ftol``) and, for the reference, ``n_random``.
"""

from __future__ import annotations

import numpy as np

from cfbench import Instances, Option, Solution, Solver, hookimpl, instance_rng
from cfbench.lazy import lazy_import
from cfbench.physics import fbl
from cfbench.plugins.urllc_baselines import CandidateScorer, best_common_level
from cfbench.plugins.urllc_sca import START_SEGMENT_STEPS, reliable_anchor
from cfbench.problems.urllc import omega_weights

optimize = lazy_import("scipy.optimize")

LN2 = float(np.log(2.0))
#: log-SINR margin of the served caps in the augmented Lagrangian (the caps are kept exactly
#: by the bisection; the margin makes the rounds end strictly inside, so the bisection is rare)
CAP_MARGIN = 1e-7
#: bisection steps on the segment from the start to a round's point (reliable fraction to 2^-40)
BISECTION_STEPS = 40
#: initial penalty weight of the augmented Lagrangian and its growth factor
RHO_START, RHO_GROWTH = 10.0, 10.0
#: ``instance_rng`` stream of the reference's random starts
RANDOM_START_STREAM = 2205


class OmegaGradient:
    """Omega, its gradient in log powers and the served terminals' log inverse SINRs ``Z_k``
    with their gradients, for one instance (module docstring), all in O(K^2)."""

    def __init__(self, scorer: CandidateScorer) -> None:
        p = self.params = scorer.params
        c = scorer.coefficients
        self.c = c
        self.aerial = scorer.aerial
        self.mean_sq = c.mean ** 2
        self.n_p = float(c.n_pilot)
        self.u_term = c.u * (1.0 + 1.0 / self.n_p)
        self.gt = np.ascontiguousarray(c.g.T)
        self.ft = np.ascontiguousarray(c.f.T)
        self.a = float(fbl.q_inverse(p.eps_qos)) / np.sqrt(p.n_data)
        w = omega_weights(p)
        self.offset = w["offset"]
        groups = ((~self.aerial, w["se_g"], w["ee_g"]), (self.aerial, w["se_a"], w["ee_a"]))
        self.groups = [(g, w_se / g.sum(), w_ee * p.bandwidth_hz) for g, w_se, w_ee in groups if g.any()]
        self.mu, self.sigma = p.amplifier_inefficiency, p.static_power_w

    def inverse_sinr(self, power: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``S_k`` (K,) and the numerators ``A_k``, ``B_k`` (module docstring)."""
        c = self.c
        A = self.u_term + c.g @ power
        B = (c.f @ power + c.z) / self.n_p
        return (c.v + A / power + B / power ** 2) / self.mean_sq, A, B

    def vjp(self, y: np.ndarray, power: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``sum_k y_k dS_k/dx_j`` (K,) with ``x = ln p``."""
        scaled = y / self.mean_sq
        off = self.gt @ (scaled / power) + self.ft @ (scaled / (self.n_p * power ** 2))
        diag = -scaled * (A / power ** 2 + 2.0 * B / power ** 3)
        return power * (off + diag)

    def rates(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``R_k`` in bits and ``dR_k/dS_k`` (K,)."""
        t = np.log1p(1.0 / S)
        h = np.sqrt(-np.expm1(-2.0 * t))
        g = t - self.a * h
        positive = g > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            g_prime = np.where(positive, 1.0 - self.a * np.exp(-2.0 * t) / h, 0.0)
        return np.where(positive, g, 0.0) / LN2, -g_prime / (LN2 * S * (1.0 + S))

    def omega(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Omega, dOmega/dx (K,), ``Z = ln S`` (K,) and a function giving ``y^T dZ/dx``."""
        power = np.exp(x)
        S, A, B = self.inverse_sinr(power)
        rate, d_rate = self.rates(S)
        value = self.offset
        coef = np.zeros_like(x)
        direct = np.zeros_like(x)
        for grp, w_se, ee_weight in self.groups:
            n = rate[grp].sum()
            d = np.sum(self.mu * power[grp] + self.sigma)
            value += w_se * n + ee_weight * n / d
            coef[grp] = w_se + ee_weight / d
            direct[grp] = -ee_weight * n * self.mu * power[grp] / d ** 2
        grad = self.vjp(coef * d_rate, power, A, B) + direct
        return float(value), grad, np.log(S), lambda y: self.vjp(y / S, power, A, B)


def _reliable_fraction(scorer: CandidateScorer, x0: np.ndarray, x1: np.ndarray, served: np.ndarray) -> float:
    """Largest ``s`` in [0, 1] (to 2^-BISECTION_STEPS) with every ``served`` terminal reliable at
    ``x0 + s (x1 - x0)``; ``x0`` itself must make them reliable (module docstring). Reliable means
    both: the scorer finds eps_k within eps_QoS (the evaluator's test, with its tolerance) and
    ``delta_k >= min(gamma, delta_k(x0))`` (no use of that tolerance beyond the start's)."""
    floor = np.minimum(scorer.params.sinr_threshold, scorer.sinr(np.exp(x0)[None])[0, served])

    def ok(s: float) -> bool:
        scored = scorer.score(np.exp(x0 + s * (x1 - x0))[None])
        return bool(np.all(scored["reliable"][0, served]) and np.all(scored["sinr"][0, served] >= floor))

    if ok(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def ascend(scorer: CandidateScorer, model: OmegaGradient, x_start: np.ndarray, x_safe: np.ndarray,
           served: np.ndarray, omega_safe: float, max_iter: int, max_rounds: int,
           ftol: float) -> tuple[np.ndarray, float, list[float], int]:
    """Augmented-Lagrangian rounds of L-BFGS-B from ``x_start``; every round's point is pulled
    back towards the reliable ``x_safe`` (Omega ``omega_safe``) until the scorer finds ``served``
    reliable, and kept if it beats the incumbent. Returns (x, Omega, trace, L-BFGS-B iterations)."""
    p = scorer.params
    x_lo, x_hi = float(np.log(p.p_min_w)), float(np.log(p.p_max_w))
    cap = -np.log(p.sinr_threshold) - CAP_MARGIN
    lam = np.zeros(int(served.sum()))
    rho = RHO_START
    best_x, best = x_safe, omega_safe
    trace = [best]
    x = np.clip(x_start, x_lo, x_hi)
    iterations = 0
    previous_violation = np.inf

    def fun(x):
        value, grad, z, z_vjp = model.omega(x)
        m = np.maximum(0.0, lam + rho * (z[served] - cap))
        penalty = float(np.sum(m * m - lam * lam)) / (2.0 * rho)
        y = np.zeros_like(x)
        y[served] = m
        return penalty - value, z_vjp(y) - grad

    for _ in range(max_rounds):
        result = optimize.minimize(fun, x, jac=True, method="L-BFGS-B", bounds=[(x_lo, x_hi)] * len(x),
                                   options={"maxiter": max_iter, "ftol": ftol, "gtol": 1e-10, "maxcor": 20})
        x = np.clip(result.x, x_lo, x_hi)
        iterations += int(result.nit)
        s = _reliable_fraction(scorer, x_safe, x, served)
        candidate = x_safe + s * (x - x_safe)
        omega = float(scorer.score(np.exp(candidate)[None])["omega"][0])
        if omega > best:
            best_x, best = candidate, omega
        trace.append(best)
        z = model.omega(x)[2][served]
        violation = float(np.max(z - cap, initial=0.0))
        if violation <= CAP_MARGIN:  # the served caps hold without the margin: s = 1 above
            break
        lam = np.maximum(0.0, lam + rho * (z - cap))
        if violation > 0.25 * previous_violation:
            rho *= RHO_GROWTH
        previous_violation = violation
    return best_x, best, trace, iterations


def lbfgs_start(scorer: CandidateScorer) -> tuple[np.ndarray, np.ndarray, dict]:
    """``sca``'s start and served set without its conic step (module docstring): ``(x, S, info)``."""
    p = scorer.params
    K = p.n_terminals
    level_w, _ = best_common_level(scorer)
    x = np.full(K, np.log(level_w))
    served = scorer.score(np.exp(x)[None])["reliable"][0]
    info = {"start_level_w": level_w, "n_served_start": int(served.sum())}
    if served.all():
        return x, served, info
    served_r, x_r, more = reliable_anchor(scorer)
    info.update(more)
    if served_r.sum() <= served.sum():
        return x, served, info
    trials = x_r[None] + START_SEGMENT_STEPS[:, None] * (x - x_r)[None]
    scored = scorer.score(np.exp(trials))
    ok = np.all(scored["reliable"][:, served_r], axis=1)
    if not ok.any():  # cannot happen when the test's closed form and the scorer agree
        return x, served, info
    j = int(np.argmax(np.where(ok, scored["omega"], -np.inf)))
    info["start"] = f"segment {START_SEGMENT_STEPS[j]:g}"
    return trials[j], served_r, info


class LBFGS(Solver):
    name = "lbfgs"
    kind = "iterative"
    problems = ("urllc",)
    description = ("L-BFGS-B on log powers with the analytic gradient of Omega; reliability caps by an "
                   "augmented Lagrangian, made exact by bisection (no conic solver)")
    options_spec = (
        Option("max_iter", int, 500, "L-BFGS-B iterations per augmented-Lagrangian round at most"),
        Option("max_rounds", int, 8, "augmented-Lagrangian rounds at most"),
        Option("tol", float, 1e-12, "L-BFGS-B's relative objective tolerance (ftol)"),
    )

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        self.max_iter = self.options["max_iter"]
        self.max_rounds = self.options["max_rounds"]
        self.tol = self.options["tol"]

    def _ascend(self, scorer, model, x_start, x_safe, served, omega_safe):
        return ascend(scorer, model, x_start, x_safe, served, omega_safe, self.max_iter, self.max_rounds, self.tol)

    def _lbfgs(self, scorer: CandidateScorer, model: OmegaGradient):
        """The ``lbfgs`` answer of one instance: ``(x, Omega, trace, iterations, x0, S, info)``."""
        p = scorer.params
        x0, served, info = lbfgs_start(scorer)
        omega0 = float(scorer.score(np.exp(x0)[None])["omega"][0])
        info["n_served"] = int(served.sum())
        x, omega, trace, iterations = self._ascend(scorer, model, x0, x0, served, omega0)
        if info["n_served_start"] < info["n_served"]:
            # the uniform level misses a served cap: ascend from it too, pulled back towards x0
            x_u = np.full(p.n_terminals, np.log(info["start_level_w"]))
            x_2, omega_2, trace_2, iterations_2 = self._ascend(scorer, model, x_u, x0, served, omega0)
            iterations += iterations_2
            if omega_2 > omega:
                x, omega = x_2, omega_2
            trace = trace + [max(trace[-1], b) for b in trace_2[1:]]
        return x, omega, trace, iterations, x0, served, info

    def solve_one(self, instances: Instances, i: int) -> tuple[np.ndarray, list[float], int, dict]:
        """Final powers (K,), the incumbent's Omega after each round, L-BFGS-B iterations, diagnostics."""
        p = instances.params
        scorer = CandidateScorer(instances, i)
        x, _, trace, iterations, _, _, info = self._lbfgs(scorer, OmegaGradient(scorer))
        return np.clip(np.exp(x), p.p_min_w, p.p_max_w), trace, iterations, info

    def solve(self, instances: Instances) -> Solution:
        p = instances.params
        power_w = np.empty((len(instances), p.n_terminals))
        traces, iterations = [], []
        for i in range(len(instances)):
            power_w[i], trace, n_iter, _ = self.solve_one(instances, i)
            traces.append(trace)
            iterations.append(n_iter)
        return Solution({"power_w": power_w}, iterations=np.array(iterations), trace=traces)


class MultiStartLBFGS(LBFGS):
    name = "multistart-lbfgs"
    kind = "reference"
    description = "lbfgs, then the same ascent from p_max, the Omega-only level and seeded log-uniform starts: best known value"
    options_spec = LBFGS.options_spec + (
        Option("n_random", int, 8, "log-uniform random starts besides the deterministic ones"),
    )

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        self.n_random = self.options["n_random"]

    def solve_one(self, instances: Instances, i: int) -> tuple[np.ndarray, list[float], int, dict]:
        p = instances.params
        K = p.n_terminals
        scorer = CandidateScorer(instances, i)
        model = OmegaGradient(scorer)
        best_x, best, trace, total, x0, served, info = self._lbfgs(scorer, model)
        x_lo, x_hi = float(np.log(p.p_min_w)), float(np.log(p.p_max_w))
        level_w, _ = best_common_level(scorer, reliability_first=False)
        rng = instance_rng(instances, i, stream=RANDOM_START_STREAM)
        starts = [np.full(K, x_hi), np.full(K, np.log(level_w))]
        starts += list(rng.uniform(x_lo, x_hi, size=(self.n_random, K)))
        for start in starts:
            # a start that leaves a served terminal unreliable moves towards x0 until none does
            safe = x0 + _reliable_fraction(scorer, x0, start, served) * (start - x0)
            omega_safe = float(scorer.score(np.exp(safe)[None])["omega"][0])
            x, omega, _, n_iter = self._ascend(scorer, model, start, safe, served, omega_safe)
            total += n_iter
            if omega > best:
                best_x, best = x, omega
            trace.append(best)
        return np.clip(np.exp(best_x), p.p_min_w, p.p_max_w), trace, total, info


@hookimpl
def cfbench_solvers():
    return [LBFGS, MultiStartLBFGS]
