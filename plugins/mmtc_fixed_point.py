"""Fast OPC for ``mmtc``: bisection on the EE level with a monotone fixed-point power iteration.

Same problem (21) as :mod:`cfbench.plugins.mmtc_opc`, solved by a different,
vectorised method (numpy over the whole batch, no conic solver):

Level test. For an EE level ``t`` (Mbit/J), device ``d`` with the others'
powers fixed sees ``rho_d(q_d) = lambda_d q_d / (nu_d q_d + I_d)`` and its
margin ``f_d(q_d) = psi R_d(rho_d(q_d)) - t (N mu q_d + Theta)``. On the region
``rho_d >= rho_min = max(S, rho_3)`` (C3, C5; ``R_d`` is increasing there) the
set ``{f_d >= 0}`` is an interval ``[a_d(I_d), b_d(I_d)]`` (``f_d`` is unimodal in
``q_d``), ``a_d`` grows and ``b_d`` shrinks with the interference ``I_d``. The
least admissible power of each terminal is therefore

    q_d <- max(q_C5(I_d), a_d(I_d)),      p_u <- gamma_min r_u / (delta_u - gamma_min v_u)   (C4, eq. 30)

(``r_u`` the user's interference besides its own ``v_u p_u``), a monotone map
``T`` of the power vector. Iterating ``T`` from zero powers gives an increasing
sequence that stays below every feasible point of level ``t`` (a feasible point
``x`` has ``T(x) <= x``), so it converges to the least fixed point, which is
itself feasible whenever any point is; if it leaves the power box or a
terminal cannot reach its target at all, level ``t`` is infeasible.

Bisection on ``t`` then finds the largest feasible level: the global optimum of
(21) up to the bisection and fixed-point tolerances, so OPC (a local method)
can only match or trail it. At the optimum every user sits at its least
power, i.e. C4 holds with equality, as the paper reports for OPC.
Unimodality of ``f_d`` on ``rho_d >= rho_min`` (``R_d`` concave increasing there
for the defaults: ``rho_min = 1`` is far above the turning point of (20)) is
assumed; a ``ValueError`` is raised when ``rho_min`` lies below the turning point.
"""

from __future__ import annotations

import math

import numpy as np

from cfbench import Solution, Solver, hookimpl
from cfbench.plugins.mmtc_opc import rate_threshold_sinr
from cfbench.problems.mmtc import coefficients, device_spectral_rate

LOG_STEPS = 50          # bisection / golden-section steps on log q (relative precision ~1e-13)
GOLDEN = (math.sqrt(5) - 1) / 2
STALL_STREAK = 3        # consecutive extrapolations outside the box that declare a level infeasible


class LevelTest:
    """The least fixed point of the power map ``T`` for a batch of EE levels."""

    def __init__(self, params, coeffs, max_iterations: int, tolerance: float) -> None:
        self.p, self.c = params, coeffs
        self.psi = 1e-6 * params.psi_hz * params.device_prb_share          # Mbit/s per bit/s/Hz
        self.cost = params.device_spreading * params.amplifier_inefficiency  # W of consumption per W of q
        self.static = params.static_power_total_w
        self.gamma_min = params.user_sinr_min
        self.rho_min = max(params.sinr_min, rate_threshold_sinr(params.device_spectral_rate_min, params.fbl_penalty))
        turning = (params.fbl_penalty * math.log(2)) ** 2 / 2          # 2 rho (1 + rho) = (v ln 2)^2, roughly
        if self.rho_min <= turning:
            raise ValueError(f"SINR floor {self.rho_min:g} below the turning point of eq. (20); "
                             "the level test needs R_d increasing on the admissible set")
        self.max_iterations, self.tolerance = max_iterations, tolerance
        self.P, self.Q = params.user_max_power_w, params.device_max_power_w
        self.lam, self.nu, self.penalty = coeffs.lam, coeffs.nu, params.fbl_penalty

    def margin(self, q, rest, level):
        """``f_d(q)`` of the module docstring, Mbit/s (eq. 20 inlined with cached constants:
        this is the inner loop)."""
        rho = self.lam * q / (self.nu * q + rest)
        rate = np.log2(1 + rho) - self.penalty * np.sqrt(2 * rho / (1 + rho))
        return self.psi * np.maximum(rate, 0.0) - level[:, None] * (self.cost * q + self.static)

    def device_power(self, rest: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Least admissible ``q_d`` given the rest of the interference, and whether it exists."""
        lam, nu = self.lam, self.nu
        with np.errstate(divide="ignore", invalid="ignore"):
            q_c5 = np.where(lam > self.rho_min * nu, self.rho_min * rest / (lam - self.rho_min * nu), np.inf)
        reachable = q_c5 <= self.Q
        lo = np.log(np.minimum(q_c5, self.Q))
        top = np.full_like(lo, math.log(self.Q))
        at_floor = self.margin(np.exp(lo), rest, level)
        at_top = self.margin(np.full_like(lo, self.Q), rest, level)
        peak = top
        search = reachable & (at_floor < 0) & (at_top < 0)
        if search.any():  # the margin may peak inside [q_C5, Q]: golden section on log q
            a, b = lo.copy(), top.copy()
            x1, x2 = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
            f1, f2 = self.margin(np.exp(x1), rest, level), self.margin(np.exp(x2), rest, level)
            for _ in range(LOG_STEPS):  # one new evaluation per step
                left = f1 >= f2          # the peak lies in [a, x2]
                a, b = np.where(left, a, x1), np.where(left, x2, b)
                x_new = np.where(left, b - GOLDEN * (b - a), a + GOLDEN * (b - a))
                f_new = self.margin(np.exp(x_new), rest, level)
                x1, x2, f1, f2 = (np.where(left, x_new, x2), np.where(left, x1, x_new),
                                  np.where(left, f_new, f2), np.where(left, f1, f_new))
            peak = np.where(search, 0.5 * (a + b), top)
        at_peak = np.where(search, self.margin(np.exp(peak), rest, level), at_top)
        ok = reachable & ((at_floor >= 0) | (at_peak >= 0))
        # smallest q in [q_C5, peak] with a non-negative margin (the margin increases there)
        a, b = lo.copy(), peak.copy()
        for _ in range(LOG_STEPS):
            mid = 0.5 * (a + b)
            good = self.margin(np.exp(mid), rest, level) >= 0
            a, b = np.where(good, a, mid), np.where(good, mid, b)
        q = np.where(at_floor >= 0, np.exp(lo), np.exp(b))
        return np.where(ok, q, np.inf), ok

    def least_fixed_point(self, level: np.ndarray, start: tuple[np.ndarray, np.ndarray] | None = None):
        """Powers (n, K_u), (n, K_d) of the least fixed point of ``T`` at ``level``, and which
        levels are feasible.

        ``start`` must lie below that fixed point (zero powers, or the fixed point of a
        lower level: ``T`` grows with the level). A level is declared infeasible when a
        power leaves its box, a target is unreachable, or the iteration stops
        contracting towards a point inside the box (the geometric extrapolation
        ``x + dx r / (1 - r)`` of the last steps, ``r`` their ratio, leaves the box
        ``STALL_STREAK`` times in a row):
        near the optimum the least fixed point is approached ever more slowly, and
        only levels whose fixed point is reached are ever called feasible.
        """
        c = self.c
        n, Ku = c.delta.shape
        Kd = c.lam.shape[1]
        p, q = (np.zeros((n, Ku)), np.zeros((n, Kd))) if start is None else (start[0].copy(), start[1].copy())
        alive = np.ones(n, dtype=bool)
        converged = np.zeros(n, dtype=bool)
        previous_change = np.full(n, np.inf)
        heading_out_streak = np.zeros(n, dtype=int)
        with np.errstate(divide="ignore", invalid="ignore"):
            user_gain = np.where(c.delta > self.gamma_min * c.v, c.delta - self.gamma_min * c.v, 0.0)
        for k in range(self.max_iterations):
            active = alive & ~converged
            rest_u = c.user_interference(p, q) - c.v * p
            with np.errstate(divide="ignore", invalid="ignore"):
                p_new = np.where(user_gain > 0, self.gamma_min * rest_u / user_gain, np.inf)
            rest_d = c.device_interference(p, q) - c.nu * q
            q_new, ok = self.device_power(rest_d, level)
            inside = np.all(ok, axis=1) & np.all(p_new <= self.P, axis=1) & np.all(q_new <= self.Q, axis=1)
            p_new = np.where(inside[:, None], p_new, p)
            q_new = np.where(inside[:, None], q_new, q)
            dp, dq = (p_new - p) / self.P, (q_new - q) / self.Q
            change = np.maximum(np.max(np.abs(dp), axis=1), np.max(np.abs(dq), axis=1))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = change / previous_change
                factor = np.where(ratio < 1, ratio / (1 - ratio), np.inf)[:, None]
                heading_out = (np.any(p_new / self.P + dp * factor > 1, axis=1)
                               | np.any(q_new / self.Q + dq * factor > 1, axis=1))
            heading_out_streak = np.where(heading_out & (change > self.tolerance), heading_out_streak + 1, 0)
            stalled = heading_out_streak >= STALL_STREAK
            alive &= ~(active & (~inside | stalled))
            update = alive & ~converged
            p, q = np.where(update[:, None], p_new, p), np.where(update[:, None], q_new, q)
            converged |= alive & (change <= self.tolerance)
            previous_change = change
            if np.all(converged | ~alive):
                break
        return p, q, alive & converged


class FixedPointMaxMin(Solver):
    """Fast OPC: global max-min EE by bisection with a monotone fixed point. Options:
    ``rel_gap`` (1e-4: bisection stops when the level bracket is this tight; the
    fixed point needs ever more steps as the level nears the optimum, so the last
    digits are the expensive ones),
    ``max_iterations`` (300 per level; a level not reached by then counts as infeasible), ``tolerance`` (1e-10: relative power change
    that counts as converged)."""

    name = "opc-fast"
    kind = "iterative"
    problems = ("mmtc",)
    description = "max-min EE of (21) by bisection on the level with a monotone power fixed point (numpy, batch)"

    def solve(self, instances):
        params = instances.params
        c = coefficients(instances)
        test = LevelTest(params, c, int(self.options.get("max_iterations", 300)),
                         float(self.options.get("tolerance", 1e-10)))
        rel_gap = float(self.options.get("rel_gap", 1e-4))
        n = len(instances)
        # bracket: level 0 is feasible iff C2-C5 are; psi R(lambda / nu) / Theta bounds every EE
        lo = np.zeros(n)
        hi = np.max(test.psi * device_spectral_rate(c.lam / c.nu, params), axis=1) / test.static
        best_p, best_q, feasible = test.least_fixed_point(lo)
        trace = [[] for _ in range(n)]
        steps = np.zeros(n, dtype=int)
        for _ in range(200):
            open_ = feasible & (hi - lo > rel_gap * hi)
            if not open_.any():
                break
            mid = np.where(open_, 0.5 * (lo + hi), lo)
            p, q, ok = test.least_fixed_point(mid, (best_p, best_q))   # the lower level's point is below
            ok &= open_
            lo, hi = np.where(ok, mid, lo), np.where(open_ & ~ok, mid, hi)
            best_p, best_q = np.where(ok[:, None], p, best_p), np.where(ok[:, None], q, best_q)
            steps += open_
            for i in np.flatnonzero(open_):
                trace[i].append(float(lo[i]))
        # drops where even level 0 fails (C2-C5 cannot all hold): UPC, judged infeasible
        best_p = np.where(feasible[:, None], best_p, params.user_max_power_w)
        best_q = np.where(feasible[:, None], best_q, params.device_max_power_w)
        return Solution({"user_power_w": best_p, "device_power_w": best_q}, trace=trace, iterations=steps)


@hookimpl
def cfbench_solvers():
    return [FixedPointMaxMin]
