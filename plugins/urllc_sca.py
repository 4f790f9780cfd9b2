"""``sca``: successive convex approximation for ``urllc`` (the paper's CVX-solved SCA baseline).

Yan et al. benchmark U-ESTPANet against a "CVX-solved SCA" run for 20
iterations but do not describe it; this is an SCA for problem (12) built on
the closed-form UatF SINR, every convex subproblem solved by cvxpy (Clarabel).

Variables. Log powers ``x_k = ln p_k`` in ``[ln p_min, ln p_max]``. With the
SINR regrouped by powers (:class:`cfbench.problems.urllc.SinrCoefficients`),

    1/delta_k = v_k/m_k^2 + (u_k (1 + 1/n_p) + sum_{i!=k} G_ki p_i)/(m_k^2 p_k)
                + (sum_{i!=k} F_ki p_i + z_k)/(n_p m_k^2 p_k^2)

is a posynomial with 2K + 1 terms, so ``Z_k(x) = ln(1/delta_k) =
log_sum_exp_j(b_kj + a_kj . x)`` is convex in ``x`` (``b_kj`` the log
coefficients, ``a_kj`` the exponent rows).

Reliability (exact, convex). ``eps_k`` falls as ``delta_k`` rises
(:func:`cfbench.physics.fbl.sinr_threshold`), so ``eps_k <= eps_QoS`` is
``delta_k >= gamma`` (gamma ~ 0.037), i.e. ``Z_k(x) <= -ln gamma``: a
geometric-programming constraint, convex in ``x`` and kept exactly (not
approximated) in every subproblem.

Rates (concave minorant). ``t_k = ln(1 + delta_k) = ln(1 + e^{Z_k}) - Z_k``
is a difference of convex functions of ``x``; replacing the convex
``l_k(x) = ln(1 + e^{Z_k(x)})`` by its tangent at the iterate ``x^t`` gives
the concave ``t~_k(x) = l_k(x^t) + grad l_k(x^t) . (x - x^t) - Z_k(x) <= t_k``,
tight at ``x^t`` with the same gradient. The rate in nats is
``g(t) = t - a sqrt(1 - e^{-2t})``, ``a = Q^-1(eps_QoS) / sqrt(n_d)``, and
``R_k = max(0, g(t_k)) / ln 2``. ``g`` is convex in ``t`` (``sqrt(1 - e^{-2t})``
is concave), and ``g' > 0`` wherever ``g > 0`` (``h(t) = sqrt(1 - e^{-2t})``
is concave with ``h(0) = 0``, so ``a h'(t) <= a h(t)/t < 1`` there). Hence,
with ``s_k = g'(t_k^t) / ln 2 >= 0``,

    R_k(x) >= R~_k(x) = R_k(x^t) + s_k (t~_k(x) - t_k^t)    (concave in x),

and ``R~_k = 0`` for a terminal whose rate is 0 at ``x^t`` (``max(0, g)`` is
convex with subgradient 0 there).

Energy efficiencies (first order). ``EE_grp = B N_grp / D_grp`` with
``N_grp = sum_{k in grp} R_k`` and the convex ``D_grp(x) = sum (mu e^{x_k} + sigma)``
is replaced by its first-order expansion in (N, D) at ``x^t``,

    EE~_grp(x) = EE_grp^t + B (N~_grp(x) - N_grp^t) / D_grp^t - B N_grp^t (D_grp(x) - D_grp^t) / (D_grp^t)^2,

with ``N~_grp = sum R~_k``: concave in ``x``, equal to ``EE_grp`` at ``x^t``
with the same gradient. (It is not a global minorant. The quadratic-transform
minorant ``B (2 y sqrt(N~) - y^2 D)`` would be one, but with it Clarabel
stopped with "insufficient progress" on about 5 % of the subproblems at
K = 40; this form solved all of them. The line search below restores
monotonicity.)

Subproblem. Omega is affine in (SE_g, EE_g, SE_a, EE_a) with non-negative
weights (``0 <= alpha <= lambda``, :func:`cfbench.problems.urllc.omega_weights`),
so substituting R~ and EE~ gives a concave surrogate ``Omega~`` with
``Omega~(x^t) = Omega(x^t)`` and ``grad Omega~(x^t) = grad Omega(x^t)``:

    max_{x, zeta}  sum_k c_k s_k (grad l_k(x^t) . x - zeta_k) - sum_k q_k e^{x_k}      (+ const)
    s.t.  Z_k(x) <= zeta_k             (epigraph of Z_k; the objective falls with zeta),
          zeta_k <= -ln gamma          for the served terminals k in S,
          ln p_min <= x_k <= ln p_max,

with ``c_k = w_SE(grp)/|grp| + w_EE(grp) B / D_grp^t`` and
``q_k = w_EE(grp) B mu N_grp^t / (D_grp^t)^2``. It is one DPP cvxpy problem
per K (log coefficients, linear weights and caps are parameters), built and
compiled in ``setup``, solved by Clarabel, with SCS as a fallback when Clarabel
stops early (a few per cent of the stress-scenario subproblems). For its maximiser ``x*``, concavity gives ``grad Omega(x^t) .
(x* - x^t) >= Omega~(x*) - Omega~(x^t) >= 0``: ``d = x* - x^t`` is an ascent
direction. A backtracking line search on the true Omega along ``x^t + s d``
(s = 1, 1/2, ..., 2^-12) accepts the first step that does not lower Omega
and keeps every served terminal reliable (the reliable set is convex in
``x``, so the whole segment stays reliable up to solver tolerance, which the
check absorbs). The trace (Omega after each iteration) is therefore
non-decreasing; the iterations stop after ``max_iter`` or when the line
search finds no ascent.

Initialisation and the served set S. The start is the ``best-uniform``
common power level (fewest terminals above eps_QoS, then largest Omega).
If every terminal is reliable there, S is all terminals. Otherwise the exact
test of :mod:`cfbench.problems.urllc_reliability` decides whether every
terminal can be reliable at once (Yates' least fixed point of the least
admissible powers, certified either way; no conic solver involved) and, if
not, finds the largest set of terminals that can (exhaustive over the number
of dropped terminals, a greedy drop when that search exceeds its budget). S
is that set, unless the uniform start already makes more terminals reliable.
The start is then the best (largest Omega) of the points that keep S
reliable among: the reliable point nearest to the uniform level ``x^u`` (a
convex problem, ``min ||x - x^u||_1`` subject to the served terminals' GP
reliability constraints and the box, solved and verified like the surrogate
below; it is feasible because the test's vector ``x^r`` lies in it), and the
33 points ``x^r + s (x^u - x^r)``, s = 0, 1/32, ..., 1, of the log-power
segment from ``x^r`` towards ``x^u`` (s = 0 always qualifies, so a solver
failure cannot cost the reliable start). Terminals outside S are not
served in the reliability sense: their eps constraint is dropped (no
decision can serve them together with S), while their rates still count in
Omega. So ``sca`` is feasible on every instance
that admits a reliable vector, and elsewhere leaves the fewest terminals
above eps_QoS that the search certified. The trace starts after this phase.

Solver failures. Every surrogate maximiser, from Clarabel or the SCS
fallback, is verified before it is used: its log-SINRs, recomputed in
closed form, must meet the served terminals' caps and its log powers the box
within the accuracy that solver actually reaches (``SOLVER_ACCURACY``); an
answer that misses them is rejected and the next solver is tried. When both
fail (it happens from starts on the reliability boundary: on ``stress-k60``,
seed 0, instances 20, 62, 88 and 126 Clarabel stops with "insufficient
progress" and SCS misses the caps), Clarabel is tried again with shorter
interior-point steps and more iterative refinement (``RETRY_SOLVER``), first
on the same surrogate, then with the served caps tightened by 1e-4 and 1e-2
in log-SINR: a smaller convex set that still contains the iterate, so its
maximiser is still an ascent direction. Only when all of these fail do the
iterations stop. An accepted answer is only a direction: the line search then checks every trial point on
the true Omega and the evaluator's own reliability test. Options:
``max_iter`` (default 20, the paper's count) and ``tol`` (stop when an
iteration raises Omega by less than ``tol * |Omega|``; default 0).
"""

from __future__ import annotations

import warnings

import numpy as np

from cfbench import Instances, Option, Solution, Solver, hookimpl
from cfbench.lazy import lazy_import
from cfbench.physics import fbl
from cfbench.plugins.urllc_baselines import CandidateScorer, best_common_level
from cfbench.problems import urllc_reliability as reliability
from cfbench.problems.urllc import omega_weights

# imported when a solver first builds a problem: listing stays fast
cp = lazy_import("cvxpy")
sp = lazy_import("scipy.sparse")

LN2 = float(np.log(2.0))
LINE_SEARCH_STEPS = 0.5 ** np.arange(13)
#: zeta cap of terminals without a reliability constraint (never active: Z_k < 100 in the box)
NO_CAP = 1e3
#: points on the segment from the least reliable powers to the uniform start (module docstring)
START_SEGMENT_STEPS = np.linspace(0.0, 1.0, 33)
#: log-SINR margin of the served terminals' caps in the surrogate
SURROGATE_MARGIN = 1e-7
#: Clarabel with shorter interior-point steps and more iterative refinement, tried at the
#: margins ``RETRY_MARGINS`` when no solver of ``FALLBACK_CHAIN`` gave an accepted surrogate
#: maximiser (module docstring, "Solver failures")
RETRY_SOLVER = ("CLARABEL", {"max_step_fraction": 0.9, "iterative_refinement_max_iter": 50,
                             "iterative_refinement_reltol": 1e-15})
RETRY_MARGINS = (SURROGATE_MARGIN, 1e-4, 1e-2)
#: solvers tried in order for every convex subproblem
FALLBACK_CHAIN = (("CLARABEL", {}), ("SCS", {"eps": 1e-6, "max_iters": 20000}))
#: constraint accuracy each solver reaches in practice (log-SINR and log-power units): a
#: maximiser that violates the surrogate's caps or box by more is rejected
SOLVER_ACCURACY = {"CLARABEL": 1e-6, "SCS": 1e-4}
#: seed of the instance used to compile the subproblems in ``setup``
WARM_UP_SEED = 2**31 - 5
#: log coefficients below (largest term's minimum over the box) - LOG_FLOOR are floored there
LOG_FLOOR = 40.0


class PosynomialTerms:
    """Exponent rows of the 2K + 1 terms of ``1/delta_k`` (module docstring), one block per k:
    [constant, 1/p_k, p_i/p_k (i != k), p_i/p_k^2 (i != k), 1/p_k^2]."""

    def __init__(self, n_terminals: int) -> None:
        K = n_terminals
        self.K, self.T = K, 2 * K + 1
        rows, cols, vals = [], [], []
        for k in range(K):
            base = k * self.T
            others = [i for i in range(K) if i != k]

            def put(j, i, a):
                rows.append(base + j)
                cols.append(i)
                vals.append(a)

            put(1, k, -1.0)
            for n, i in enumerate(others):
                put(2 + n, i, 1.0)
                put(2 + n, k, -1.0)
                put(K + 1 + n, i, 1.0)
                put(K + 1 + n, k, -2.0)
            put(2 * K, k, -2.0)
        self.exponents = sp.csr_matrix((vals, (rows, cols)), shape=(K * self.T, K))
        self.dense = self.exponents.toarray().reshape(K, self.T, K)
        self.others = np.array([[i for i in range(K) if i != k] for k in range(K)], dtype=int).reshape(K, K - 1)

    def log_coefficients(self, c, x_lo: float, x_hi: float) -> np.ndarray:
        """``b`` (K*T,) for the coefficients ``c`` (:class:`SinrCoefficients` of one instance).

        Terms that stay below ``e^-LOG_FLOOR`` times the largest term everywhere
        in the box (e.g. a zero coefficient) are raised to that level, a relative
        change of 1e-17 that keeps every exponential cone well scaled."""
        K = self.K
        mean_sq = c.mean ** 2
        n_p = c.n_pilot
        rows = np.arange(K)[:, None]
        coef = np.concatenate([
            (c.v / mean_sq)[:, None],
            (c.u * (1.0 + 1.0 / n_p) / mean_sq)[:, None],
            c.g[rows, self.others] / mean_sq[:, None],
            c.f[rows, self.others] / (n_p * mean_sq[:, None]),
            (c.z / (n_p * mean_sq))[:, None],
        ], axis=1)
        with np.errstate(divide="ignore"):
            b = np.log(coef)
        a = self.dense
        lowest = b + np.sum(np.minimum(a * x_lo, a * x_hi), axis=-1)  # ln of each term's minimum over the box
        highest_exponent = np.sum(np.maximum(a * x_lo, a * x_hi), axis=-1)
        floor = np.max(lowest, axis=1, keepdims=True) - LOG_FLOOR - highest_exponent
        return np.maximum(b, floor).ravel()

    def log_inverse_sinr(self, b: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z_k(x)`` (K,) and its gradient (K, K) from the log coefficients ``b``."""
        e = (b + self.exponents @ x).reshape(self.K, self.T)
        top = e.max(axis=1, keepdims=True)
        w = np.exp(e - top)
        total = w.sum(axis=1)
        z = top[:, 0] + np.log(total)
        grad = np.einsum("kt,ktj->kj", w / total[:, None], self.dense)
        return z, grad

    def expression(self, x: cp.Variable, b: cp.Parameter) -> cp.Expression:
        """``Z(x)`` as a cvxpy expression (K,)."""
        return cp.log_sum_exp(cp.reshape(self.exponents @ x + b, (self.K, self.T), order="C"), axis=1)


def linearise_rates(terms: PosynomialTerms, b: np.ndarray, x: np.ndarray, params) -> dict[str, np.ndarray]:
    """The pieces of the rate minorant at the iterate ``x`` (module docstring), all (K,) or (K, K):

    ``z`` = Z_k(x), ``t`` = ln(1 + delta_k), ``ell`` = l_k(x) = ln(1 + e^{Z_k}), ``grad_ell``,
    ``rate`` = R_k(x) in bits and ``slope`` = s_k, so that for any x'

        R~_k(x') = rate_k + slope_k (ell_k + grad_ell_k . (x' - x) - Z_k(x') - t_k) <= R_k(x').
    """
    z, grad_z = terms.log_inverse_sinr(b, x)
    inverse_sinr = np.exp(z)
    ell = np.logaddexp(0.0, z)
    grad_ell = (inverse_sinr / (1.0 + inverse_sinr))[:, None] * grad_z
    t = np.log1p(np.exp(-z))
    a = float(fbl.q_inverse(params.eps_qos)) / np.sqrt(params.n_data)
    h = np.sqrt(-np.expm1(-2.0 * t))
    g = t - a * h
    with np.errstate(divide="ignore", invalid="ignore"):
        g_prime = np.where(h > 0, 1.0 - a * np.exp(-2.0 * t) / h, 0.0)
    positive = g > 0
    return {
        "z": z, "t": t, "ell": ell, "grad_ell": grad_ell,
        "rate": np.where(positive, g, 0.0) / LN2,
        "slope": np.where(positive, g_prime, 0.0) / LN2,
    }


def line_search(scorer: CandidateScorer, x: np.ndarray, target: np.ndarray, omega: float,
                served: np.ndarray) -> tuple[np.ndarray, float] | None:
    """First point ``x + s (target - x)``, s = 1, 1/2, ..., 2^-12, whose true Omega is at
    least ``omega`` and on which every ``served`` terminal is reliable: ``(x_new, Omega)``,
    or None if there is none."""
    trials = x[None] + LINE_SEARCH_STEPS[:, None] * (target - x)[None]
    scored = scorer.score(np.exp(trials))
    ok = (scored["omega"] >= omega) & np.all(scored["reliable"][:, served], axis=1)
    accepted = np.flatnonzero(ok)
    if len(accepted) == 0:
        return None
    j = int(accepted[0])
    return trials[j], float(scored["omega"][j])


class SCASubproblems:
    """The DPP surrogate problem of Omega for K terminals (module docstring)."""

    def __init__(self, n_terminals: int) -> None:
        K = n_terminals
        self.terms = PosynomialTerms(K)
        self.b = cp.Parameter(K * self.terms.T, name="log_coefficients")
        self.x_lo = cp.Parameter(name="log_p_min")
        self.x_hi = cp.Parameter(name="log_p_max")

        self.x = cp.Variable(K, name="log_power")
        self.zeta = cp.Variable(K, name="log_inverse_sinr")
        self.lin_x = cp.Parameter(K, name="linear_x")
        self.lin_zeta = cp.Parameter(K, nonneg=True, name="linear_zeta")
        self.power_cost = cp.Parameter(K, nonneg=True, name="power_cost")
        self.zeta_cap = cp.Parameter(K, name="zeta_cap")
        objective = self.lin_x @ self.x - self.lin_zeta @ self.zeta - self.power_cost @ cp.exp(self.x)
        self.surrogate = cp.Problem(cp.Maximize(objective), [
            self.terms.expression(self.x, self.b) <= self.zeta,
            self.zeta <= self.zeta_cap,
            self.x >= self.x_lo, self.x <= self.x_hi,
        ])
        assert self.surrogate.is_dpp()

        # the reliable point nearest (L1, log powers) to the uniform start
        self.x_near = cp.Variable(K, name="log_power_nearest")
        self.x_ref = cp.Parameter(K, name="log_power_uniform")
        self.near_cap = cp.Parameter(K, name="near_zeta_cap")
        self.nearest = cp.Problem(cp.Minimize(cp.norm1(self.x_near - self.x_ref)), [
            self.terms.expression(self.x_near, self.b) <= self.near_cap,
            self.x_near >= self.x_lo, self.x_near <= self.x_hi,
        ])
        assert self.nearest.is_dpp()


def _solve(problem: cp.Problem, variable: cp.Variable, violation,
           chain=FALLBACK_CHAIN) -> tuple[np.ndarray, str] | None:
    """Solve with Clarabel, falling back to SCS when Clarabel fails (it stops with
    "insufficient progress" on a few per cent of the stress scenarios' subproblems).
    An answer is accepted only if ``violation(x)``, the largest constraint violation of
    the maximiser recomputed outside the solver, is within ``SOLVER_ACCURACY`` of that
    solver; returns ``(x, solver)`` or None if no solver gave an accepted answer."""
    for solver, options in chain:
        if solver not in cp.installed_solvers():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Solution may be inaccurate"
                problem.solve(solver=solver, **options)
        except cp.error.SolverError:
            continue
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or variable.value is None:
            continue
        x = np.asarray(variable.value, dtype=float)
        if np.all(np.isfinite(x)) and violation(x) <= SOLVER_ACCURACY[solver]:
            return x, solver
    return None


def reliable_anchor(scorer: CandidateScorer) -> tuple[np.ndarray, np.ndarray, dict]:
    """The largest set S of terminals that can be reliable at once and log powers ``x_r`` (K,)
    that make S reliable, by the exact test of :mod:`cfbench.problems.urllc_reliability`
    (module docstring, "Initialisation"; no conic solver): ``(S, x_r, info)``."""
    p = scorer.params
    c = scorer.coefficients
    test = reliability.reliability_test(c, p.sinr_threshold, p.p_min_w, p.p_max_w)
    info = {"reliability_status": int(test.status)}
    if test.status == reliability.REACHABLE:
        served, power = np.ones(p.n_terminals, dtype=bool), test.power_w
    else:
        found = reliability.largest_reliable_set(c, p.sinr_threshold, p.p_min_w, p.p_max_w)
        served, power = found.served, found.power_w
        info.update(n_unreachable_low=found.n_unreachable_low, n_unreachable_high=found.n_unreachable_high)
    return served, np.log(np.clip(power, p.p_min_w, p.p_max_w)), info


def reliable_start(scorer: CandidateScorer, sub: "SCASubproblems", b: np.ndarray, x_uniform: np.ndarray,
                   served_uniform: np.ndarray):
    """The served set S and the start of the iterations (module docstring): ``(x, S, info)``."""
    p = scorer.params
    served, x_r, info = reliable_anchor(scorer)
    if served.sum() <= served_uniform.sum():
        return x_uniform, served_uniform, info
    x_lo, x_hi = np.log(p.p_min_w), np.log(p.p_max_w)
    candidates = [x_r[None] + START_SEGMENT_STEPS[:, None] * (x_uniform - x_r)[None]]
    # the reliable point nearest to the uniform start (a convex problem, feasible: x_r is in it)
    cap = np.where(served, -np.log(p.sinr_threshold) - SURROGATE_MARGIN, NO_CAP)
    sub.x_ref.value, sub.near_cap.value = x_uniform, cap
    checked_cap = np.where(served, cap, np.inf)

    def violation(x_new: np.ndarray) -> float:
        z_new, _ = sub.terms.log_inverse_sinr(b, x_new)
        return float(max(np.max(z_new - checked_cap), np.max(x_lo - x_new), np.max(x_new - x_hi), 0.0))

    nearest = _solve(sub.nearest, sub.x_near, violation)
    if nearest is not None:
        candidates.append(np.clip(nearest[0], x_lo, x_hi)[None])
    trials = np.concatenate(candidates)
    scored = scorer.score(np.exp(trials))
    ok = np.all(scored["reliable"][:, served], axis=1)
    if not ok.any():  # cannot happen when the test's closed form and the scorer agree
        return x_uniform, served_uniform, info
    j = int(np.argmax(np.where(ok, scored["omega"], -np.inf)))
    info["start"] = "nearest" if j == len(START_SEGMENT_STEPS) else f"segment {START_SEGMENT_STEPS[j]:g}"
    return trials[j], served, info


class SCA(Solver):
    name = "sca"
    kind = "iterative"
    problems = ("urllc",)
    description = "SCA on log powers: exact GP reliability constraints, concave surrogate of Omega, line search (cvxpy/Clarabel)"
    options_spec = (
        Option("max_iter", int, 20, "SCA iterations at most"),
        Option("tol", float, 0.0, "stop when an iteration raises Omega by less than tol |Omega| (0: run max_iter)"),
    )

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        self.max_iter = self.options["max_iter"]
        self.tol = self.options["tol"]
        self._subproblems: dict[int, SCASubproblems] = {}
        warm_up = problem.sample(scenario, 1, seed=WARM_UP_SEED)
        self._subproblem(CandidateScorer(warm_up, 0))

    def _subproblem(self, scorer: CandidateScorer) -> SCASubproblems:
        """The subproblems for the instance's K, built and compiled on first use.

        Compiling means solving the problem once (here with parameters from
        ``scorer``'s instance at the geometric-mean power): cvxpy's first solve of
        a DPP problem takes another code path whose rounding differs in the last
        bits, which 20 SCA iterations can amplify to 1e-5 in the powers; after it,
        a solve depends only on its instance."""
        p = scorer.params
        K = p.n_terminals
        if K not in self._subproblems:
            sub = SCASubproblems(K)
            x_lo, x_hi = float(np.log(p.p_min_w)), float(np.log(p.p_max_w))
            b = sub.terms.log_coefficients(scorer.coefficients, x_lo, x_hi)
            sub.b.value, sub.x_lo.value, sub.x_hi.value = b, x_lo, x_hi
            x = np.full(K, 0.5 * (x_lo + x_hi))
            self._surrogate_step(sub, scorer, p, b, x, np.zeros(K, dtype=bool), p.sinr_threshold)
            sub.x_ref.value, sub.near_cap.value = x, np.full(K, NO_CAP)
            _solve(sub.nearest, sub.x_near, lambda _: 0.0)
            self._subproblems[K] = sub
        return self._subproblems[K]

    # -- one instance ----------------------------------------------------------------
    def solve_one(self, instances: Instances, i: int) -> tuple[np.ndarray, list[float], dict]:
        """Final powers (K,), Omega after each iteration, and diagnostics."""
        p = instances.params
        K = p.n_terminals
        scorer = CandidateScorer(instances, i)
        sub = self._subproblem(scorer)
        x_lo, x_hi = float(np.log(p.p_min_w)), float(np.log(p.p_max_w))
        gamma = p.sinr_threshold
        b = sub.terms.log_coefficients(scorer.coefficients, x_lo, x_hi)
        sub.b.value, sub.x_lo.value, sub.x_hi.value = b, x_lo, x_hi

        level_w, _ = best_common_level(scorer)
        x = np.full(K, np.log(level_w))
        served = scorer.score(np.exp(x)[None])["reliable"][0]
        info = {"start_level_w": level_w, "n_served_start": int(served.sum())}
        if not served.all():
            x, served, more = reliable_start(scorer, sub, b, x, served)
            info.update(more)
        s = scorer.score(np.exp(x)[None])
        info["n_served"] = int(served.sum())

        omega = float(s["omega"][0])
        trace: list[float] = []
        for _ in range(self.max_iter):
            target = self._surrogate_step(sub, scorer, p, b, x, served, gamma)
            if target is None:
                break
            target = np.clip(target, x_lo, x_hi)
            step = line_search(scorer, x, target, omega, served)
            if step is None:
                break
            previous = omega
            x, omega = step
            trace.append(omega)
            if omega - previous < self.tol * abs(previous):
                break
        return np.clip(np.exp(x), p.p_min_w, p.p_max_w), trace, info

    def _surrogate_step(self, sub: SCASubproblems, scorer: CandidateScorer, p, b: np.ndarray, x: np.ndarray,
                        served: np.ndarray, gamma: float) -> np.ndarray | None:
        """Set the surrogate's parameters at the iterate ``x`` and return its maximiser."""
        K = p.n_terminals
        lin = linearise_rates(sub.terms, b, x, p)
        rate, slope, grad_ell, z = lin["rate"], lin["slope"], lin["grad_ell"], lin["z"]
        # Omega~ = sum_k c_k s_k (grad l_k . x - zeta_k) - sum_k q_k e^{x_k} + const (module docstring)
        w = omega_weights(p)
        coef, power_cost = np.zeros(K), np.zeros(K)
        power = np.exp(x)
        for grp, w_se, w_ee in ((~scorer.aerial, w["se_g"], w["ee_g"]), (scorer.aerial, w["se_a"], w["ee_a"])):
            consumption = np.sum(p.amplifier_inefficiency * power[grp] + p.static_power_w)   # D_grp(x^t)
            ee_weight = w_ee * p.bandwidth_hz
            coef[grp] = w_se / grp.sum() + ee_weight / consumption
            power_cost[grp] = ee_weight * rate[grp].sum() / consumption ** 2 * p.amplifier_inefficiency
        sub.lin_x.value = (coef * slope) @ grad_ell
        sub.lin_zeta.value = coef * slope
        sub.power_cost.value = power_cost
        # a feasible warm start: the iterate itself
        sub.x.value, sub.zeta.value = x, z
        x_lo, x_hi = float(sub.x_lo.value), float(sub.x_hi.value)
        chains = [(SURROGATE_MARGIN, FALLBACK_CHAIN)] + [(m, (RETRY_SOLVER,)) for m in RETRY_MARGINS]
        for margin, chain in chains:
            # served terminals stay reliable; the cap never cuts off the iterate itself
            sub.zeta_cap.value = np.where(served, np.maximum(-np.log(gamma) - margin, z), NO_CAP)
            cap = np.where(served, sub.zeta_cap.value, np.inf)

            def violation(x_new: np.ndarray) -> float:
                z_new, _ = sub.terms.log_inverse_sinr(b, x_new)
                return float(max(np.max(z_new - cap), np.max(x_lo - x_new), np.max(x_new - x_hi), 0.0))

            answer = _solve(sub.surrogate, sub.x, violation, chain)
            if answer is not None:
                return answer[0]
        return None

    def solve(self, instances: Instances) -> Solution:
        p = instances.params
        power_w = np.empty((len(instances), p.n_terminals))
        traces = []
        for i in range(len(instances)):
            power_w[i], trace, _ = self.solve_one(instances, i)
            traces.append(trace)
        return Solution({"power_w": power_w}, iterations=np.array([len(t) for t in traces]), trace=traces)


@hookimpl
def cfbench_solvers():
    return [SCA]
