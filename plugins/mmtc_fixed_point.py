"""Fast OPC for ``mmtc``: bisection on the EE level with a monotone fixed-point power iteration.

Same problem (21) as :mod:`cfbench.plugins.mmtc_opc`, solved by a different,
vectorised method (numpy over the whole batch, no conic solver):

Level test. For an EE level ``t`` (Mbit/J), device ``d`` with the others'
powers fixed sees ``rho_d = lambda_d q_d / (nu_d q_d + I_d)``. With the SINR as
variable, ``q_d = I_d rho / (lambda_d - nu_d rho)`` and the margin

    g_d(rho) = psi R_d(rho) - t (N mu I_d rho / (lambda_d - nu_d rho) + Theta)

is concave on ``rho >= rho_min = max(S, rho_3)`` (C3, C5): the power term is
convex, and ``R_d`` of (20) is concave there (``(1 + rho)^2 R_d''`` grows with
``rho``, so ``R_d''(rho_min) <= 0`` suffices; it is checked, a ``ValueError``
otherwise). So ``{g_d >= 0}`` is an interval whose left end ``a_d(I_d)`` grows
with ``I_d`` (``g_d`` falls pointwise as ``I_d`` grows), and the least
admissible power of each terminal is

    q_d <- I_d a_d / (lambda_d - nu_d a_d),      p_u <- gamma_min r_u / (delta_u - gamma_min v_u)   (C4, eq. 30)

(``r_u`` the user's interference besides its own ``v_u p_u``), a monotone map
``T`` of the power vector. Iterating ``T`` from zero powers gives an increasing
sequence that stays below every feasible point of level ``t`` (a feasible point
``x`` has ``T(x) <= x``) and converges to the least fixed point. ``a_d`` is
found by Newton on ``g_d`` from the previous iterate: the tangent lies above
the concave ``g_d``, so Newton from the left of the root stays left of it (the
computed ``T`` is never above the exact one and the iterates remain lower
bounds), and the tangent certifies that no root exists when ``g_d`` falls
while negative or the tangent's root lies beyond ``rho_d(Q_d)``.

Verdicts, each on evidence. INFEASIBLE only on a certificate: an iterate
leaves the power box or a target is unreachable (the iterate lies below every
feasible point, so there is none). FEASIBLE only on a point checked with the
evaluator's own quantities: C1-C5 exactly, without the evaluator's
tolerances, and min EE ``>= t (1 - 1e-9)``. The candidates are the iterate and
its geometric extrapolation ``x + 2 dx r / (1 - r)`` (``r`` the ratio of the
last two steps), which lands just above the least fixed point along its
slowest direction, both lifted by 1e-10 so that C4 and C5 hold strictly.
The verified point's users are then brought down towards their least powers
with the devices held (from a point meeting C4 the users' map decreases and
keeps C4, and every device's interference falls), checked again: C4 holds
with equality up to the lift.
Near the optimum the iteration's rate tends to 1: a feasible level's fixed
point is approached, and an infeasible level's iterates leave the box, ever
more slowly. A level is iterated in rounds of doubling length, each on the
drops still undecided, up to ``max_iterations`` steps; after that it is
UNDECIDED, never infeasible.

Bisection on ``t``. ``lo`` is the min EE of the last verified point (the
returned decision); ``hi`` starts at ``psi R(lambda / nu) / Theta``, which
bounds every EE, and moves only to a level certified infeasible. The
iterate of a verified level starts the higher ones (``T`` grows with the
level, so it stays below their feasible points). The bisection stops when
``hi - lo <= rel_gap hi``, or at an undecided level, whose drop keeps its
wider bracket: it is flagged in the solver's ``undecided`` and a
``RuntimeWarning`` says so. The answer is thus global to its bracket
(``bracket``): it attains ``lo`` and no feasible point exceeds ``hi`` (up to
the round-off of Newton's root, relative 1e-15), so OPC (a local method) can
exceed it by at most the bracket. At the optimum every user sits at its
least power, i.e. C4 holds with equality, as the paper reports for OPC.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import fields, replace

import numpy as np

from cfbench import Option, Solution, Solver, hookimpl
from cfbench.plugins.mmtc_opc import rate_threshold_sinr
from cfbench.problems.mmtc import coefficients, device_spectral_rate, performance

LN2 = math.log(2.0)
NEWTON_STEPS = 12       # per device and fixed-point step (warm from the previous iterate: usually 1-3)
NEWTON_TOL = 1e-15      # relative Newton step that counts as converged
OVERSHOOT = 2.0         # feasibility candidate: twice the extrapolated remaining way to the fixed point
LIFT = 1e-10            # candidates scaled by 1 + LIFT: C4 and C5 bind strictly above their thresholds
SETTLE_STEPS = 4        # users' map steps that bring a verified point's users to their least powers
ACCEPT = 1e-9           # a candidate proves a level when its min EE is within this of it (lo is that min EE)
FIRST_CHUNK, MAX_CHUNK = 8, 256  # fixed-point steps between two restrictions to the undecided drops
FEASIBLE, INFEASIBLE, UNDECIDED = 1, -1, 0


class LevelTest:
    """The power map ``T`` of a batch of EE levels and the verdict of its iteration
    (module docstring)."""

    def __init__(self, params, coeffs) -> None:
        self.p, self.c = params, coeffs
        self.psi = 1e-6 * params.psi_hz * params.device_prb_share          # Mbit/s per bit/s/Hz
        self.cost = params.device_spreading * params.amplifier_inefficiency  # W of consumption per W of q
        self.static = params.static_power_total_w
        self.gamma_min = params.user_sinr_min
        self.rho_min = max(params.sinr_min, rate_threshold_sinr(params.device_spectral_rate_min, params.fbl_penalty))
        v, r = params.fbl_penalty, self.rho_min           # R''(rho_min) <= 0: g_d concave (module docstring)
        u = r / (1 + r)
        if v * math.sqrt(0.5) * (u ** -1.5 / (2 * (1 + r) ** 2) + 2 * u ** -0.5 / (1 + r)) > 1 / LN2:
            raise ValueError(f"SINR floor {r:g}: eq. (20) is not concave above it; the level test needs it")
        self.P, self.Q = params.user_max_power_w, params.device_max_power_w
        self.lam, self.nu, self.penalty = coeffs.lam, coeffs.nu, params.fbl_penalty

    def restricted(self, rows: np.ndarray) -> "LevelTest":
        """The same test on the drops ``rows`` of the batch (the iteration then costs
        only what the undecided drops need)."""
        sub = copy.copy(self)
        sub.c = replace(self.c, **{f.name: getattr(self.c, f.name)[rows] for f in fields(self.c)})
        sub.lam, sub.nu = sub.c.lam, sub.c.nu
        return sub

    def device_power(self, rest: np.ndarray, level: np.ndarray, q_from: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A lower bound of the least admissible ``q_d`` given the rest of the interference
        (equal to it up to round-off once Newton has converged), and ``False`` where a
        certificate shows that none exists. ``q_from`` must lie below the least admissible
        power (the previous iterate does).

        In the SINR ``rho = lambda q / (nu q + I)``, ``q = I rho / (lambda - nu rho)`` and the
        margin ``g(rho) = psi R(rho) - t (cost I rho / (lambda - nu rho) + Theta)`` is concave
        on ``[rho_min, rho(Q)]``; Newton from the left of its first root stays left of it."""
        lam, nu, t = self.lam, self.nu, level[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            rho_top = lam * self.Q / (nu * self.Q + rest)
            rho = np.maximum(self.rho_min, lam * q_from / (nu * q_from + rest))
        ok = rho_top >= self.rho_min                     # C5 (and C3) reachable within the box
        done = ~ok
        for _ in range(NEWTON_STEPS):
            free = lam - nu * rho
            dispersion = np.sqrt(2 * rho / (1 + rho))
            g = (self.psi * (np.log2(1 + rho) - self.penalty * dispersion)
                 - t * (self.cost * rest * rho / free + self.static))
            done |= g >= 0                               # at the root (or at the floor rho_min)
            slope = (self.psi * (1 / ((1 + rho) * LN2) - self.penalty / ((1 + rho) ** 2 * dispersion))
                     - t * self.cost * rest * lam / free ** 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(done, 0.0, -g / slope)
                after = rho + step
            # certificates (concavity: the tangent lies above g): g decreasing while negative, or the
            # tangent's root beyond rho(Q)
            dead = ~done & ((slope <= 0) | (after > rho_top))
            ok &= ~dead
            done |= dead | (step <= NEWTON_TOL * rho)
            rho = np.where(done, rho, after)
            if done.all():
                break
        q = rest * rho / (lam - nu * rho)
        return np.where(ok, q, np.inf), ok

    def verified_value(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Min EE (Mbit/J) of the powers where C1-C5 hold exactly (the evaluator's own
        quantities, without its tolerances), ``-inf`` where one fails."""
        pr = self.p
        t = performance(pr, self.c, p, q)
        with np.errstate(divide="ignore"):
            sinr_db = 10 * np.log10(t["device_sinr"])
        ok = (np.all((p >= 0) & (p <= self.P), axis=1) & np.all((q >= 0) & (q <= self.Q), axis=1)
              & np.all(t["user_rate_bps"] >= pr.user_rate_min_bps, axis=1)
              & np.all(t["device_rate_bps"] >= pr.device_rate_min_bps, axis=1)
              & np.all(sinr_db >= pr.sinr_min_db, axis=1))
        value = 1e-6 * np.min(t["device_ee_bit_per_j"], axis=1)
        return np.where(ok & np.isfinite(value), value, -np.inf)

    def least_fixed_point(self, level: np.ndarray, start: tuple[np.ndarray, np.ndarray], active: np.ndarray,
                          budget: int):
        """Iterate ``T`` at ``level`` from ``start`` for at most ``budget`` steps on the
        ``active`` rows. Returns ``(p, q, verdict, point, value, steps)``: the last iterate
        (a lower bound of every point feasible at ``level`` or above), the verdict per row
        (``FEASIBLE``, ``INFEASIBLE`` or ``UNDECIDED``), the verified point of feasible
        rows, its min EE and the steps taken.

        ``start`` must lie below every point feasible at ``level`` (zero powers, or an
        iterate of a lower level: ``T`` grows with the level). INFEASIBLE only on a
        certificate: an iterate leaves the power box or a target is unreachable.
        FEASIBLE only on a point checked by :meth:`verified_value` with a min EE of at
        least ``level``: the iterate itself, or its geometric extrapolation
        ``x + dx OVERSHOOT r / (1 - r)`` (``r`` the ratio of the last two steps), which
        lands just above the least fixed point along its slowest direction.
        """
        c = self.c
        n = level.shape[0]
        p, q = start[0].copy(), start[1].copy()
        verdict = np.where(active, UNDECIDED, INFEASIBLE)
        point_p, point_q = p.copy(), q.copy()
        value = np.full(n, -np.inf)
        previous_change = np.full(n, np.inf)
        steps = np.zeros(n, dtype=int)
        with np.errstate(divide="ignore", invalid="ignore"):
            user_gain = np.where(c.delta > self.gamma_min * c.v, c.delta - self.gamma_min * c.v, 0.0)
        for _ in range(budget):
            open_ = active & (verdict == UNDECIDED)
            if not open_.any():
                break
            rest_u = c.user_interference(p, q) - c.v * p
            with np.errstate(divide="ignore", invalid="ignore"):
                p_new = np.where(user_gain > 0, self.gamma_min * rest_u / user_gain, np.inf)
            rest_d = c.device_interference(p, q) - c.nu * q
            q_new, ok = self.device_power(rest_d, level, q)
            inside = np.all(ok, axis=1) & np.all(p_new <= self.P, axis=1) & np.all(q_new <= self.Q, axis=1)
            verdict = np.where(open_ & ~inside, INFEASIBLE, verdict)
            update = open_ & inside
            p_new = np.where(update[:, None], p_new, p)
            q_new = np.where(update[:, None], q_new, q)
            dp, dq = p_new - p, q_new - q
            change = np.maximum(np.max(np.abs(dp), axis=1) / self.P, np.max(np.abs(dq), axis=1) / self.Q)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = change / previous_change
                reach = np.where((ratio > 0) & (ratio < 1), OVERSHOOT * ratio / (1 - ratio), 0.0)[:, None]
            steps += open_
            found = np.zeros(n, dtype=bool)
            for cand_p, cand_q in ((p_new + dp * reach, q_new + dq * reach), (p_new, q_new)):
                cand_p, cand_q = cand_p * (1 + LIFT), cand_q * (1 + LIFT)
                v = self.verified_value(cand_p, cand_q)
                good = update & ~found & (v >= level * (1 - ACCEPT))
                point_p, point_q = np.where(good[:, None], cand_p, point_p), np.where(good[:, None], cand_q, point_q)
                value = np.where(good, v, value)
                found |= good
            verdict = np.where(found, FEASIBLE, verdict)
            p, q = p_new, q_new
            previous_change = np.where(update, change, previous_change)
        found = verdict == FEASIBLE
        if found.any():  # the users down to their least powers: C4 tight, every device's SINR up
            settled_p = self.settle_users(point_p, point_q, user_gain)
            v = self.verified_value(settled_p, point_q)
            better = found & (v >= value)
            point_p, value = np.where(better[:, None], settled_p, point_p), np.where(better, v, value)
        return p, q, verdict, (point_p, point_q), value, steps

    def settle_users(self, p: np.ndarray, q: np.ndarray, user_gain: np.ndarray) -> np.ndarray:
        """From a point meeting C4, the users' map with the devices held: a decreasing
        sequence of points meeting C4 (up to the lift) towards the users' least powers."""
        c = self.c
        for _ in range(SETTLE_STEPS):
            rest_u = c.user_interference(p, q) - c.v * p
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.fmin(p, (1 + LIFT) * self.gamma_min * rest_u / user_gain)
        return p


class FixedPointMaxMin(Solver):
    """Fast OPC: max-min EE, global to a certified bracket, by bisection with a monotone
    fixed point. Options: ``rel_gap`` (1e-4: bisection stops when the level bracket is
    this tight), ``max_iterations`` (20000: fixed-point steps one level may take before
    it is left undecided and the drop keeps a wider bracket). After ``solve``,
    ``bracket`` holds each drop's ``[lo, hi]`` (``lo`` the returned decision's min EE,
    no feasible point above ``hi``; NaN where even level 0 fails) and ``undecided``
    the drops whose bisection stopped on an undecided level."""

    name = "opc-fast"
    kind = "iterative"
    problems = ("mmtc",)
    description = "max-min EE of (21) by bisection on the level with a monotone power fixed point (numpy, batch)"
    solves_batches = True
    options_spec = (
        Option("rel_gap", float, 1e-4, "bisection stops when the level bracket [lo, hi] has hi - lo <= rel_gap hi"),
        Option("max_iterations", int, 20000, "fixed-point steps one level may take before it is left undecided"),
    )

    def solve(self, instances):
        params = instances.params
        c = coefficients(instances)
        level_budget = self.options["max_iterations"]
        test = LevelTest(params, c)
        rel_gap = self.options["rel_gap"]
        n = len(instances)
        everyone = np.ones(n, dtype=bool)
        zeros = (np.zeros((n, params.n_users)), np.zeros((n, params.n_devices)))
        # bracket: level 0 is feasible iff C2-C5 are; psi R(lambda / nu) / Theta bounds every EE
        hi = np.max(test.psi * device_spectral_rate(c.lam / c.nu, params), axis=1) / test.static
        lower, verdict, (best_p, best_q), lo, _ = self.decide(test, np.zeros(n), zeros, everyone, level_budget)
        feasible = verdict == FEASIBLE
        lo = np.where(feasible, lo, 0.0)
        undecided = verdict == UNDECIDED
        trace = [[] for _ in range(n)]
        steps = np.zeros(n, dtype=int)
        for _ in range(200):
            open_ = feasible & ~undecided & (hi - lo > rel_gap * hi)
            if not open_.any():
                break
            mid = np.where(open_, 0.5 * (lo + hi), lo)
            iterate, verdict, (p, q), value, _ = self.decide(test, mid, lower, open_, level_budget)
            ok = open_ & (verdict == FEASIBLE)
            lo, hi = np.where(ok, value, lo), np.where(open_ & (verdict == INFEASIBLE), mid, hi)
            best_p, best_q = np.where(ok[:, None], p, best_p), np.where(ok[:, None], q, best_q)
            lower = tuple(np.where(ok[:, None], x, y) for x, y in zip(iterate, lower))  # below every level > mid
            undecided |= open_ & (verdict == UNDECIDED)
            steps += open_
            for i in np.flatnonzero(open_):
                trace[i].append(float(lo[i]))
        self.bracket = np.where(feasible[:, None], np.stack([lo, hi], axis=1), np.nan)
        self.undecided = undecided
        if undecided.any():
            width = np.max(np.where(undecided & feasible, (hi - lo) / hi, 0.0))
            warnings.warn(f"opc-fast: {int(undecided.sum())} of {n} drops stopped on a level still undecided after "
                          f"{level_budget} fixed-point steps; their bracket is wider than rel_gap={rel_gap:g} "
                          f"(up to {width:.2e} relative)", RuntimeWarning, stacklevel=2)
        # drops where even level 0 fails (C2-C5 cannot all hold): UPC, judged infeasible
        best_p = np.where(feasible[:, None], best_p, params.user_max_power_w)
        best_q = np.where(feasible[:, None], best_q, params.device_max_power_w)
        return Solution({"user_power_w": best_p, "device_power_w": best_q}, trace=trace, iterations=steps)

    @staticmethod
    def decide(test: LevelTest, level, start, active, level_budget: int):
        """Test ``level`` on the ``active`` rows in rounds of a doubling number of steps,
        each round only on the rows still undecided, until ``level_budget`` steps are
        spent. Returns the last iterates, the verdicts, the verified points, their min EE
        and the steps spent."""
        chunk = FIRST_CHUNK
        p, q = start[0].copy(), start[1].copy()
        verdict = np.where(active, UNDECIDED, INFEASIBLE)
        point_p, point_q = p.copy(), q.copy()
        value = np.full(level.shape, -np.inf)
        spent = np.zeros(level.shape, dtype=int)
        while True:
            rows = np.flatnonzero(active & (verdict == UNDECIDED) & (spent < level_budget))
            if rows.size == 0:
                return (p, q), verdict, (point_p, point_q), value, spent
            sub = test if rows.size == level.size else test.restricted(rows)
            sp, sq, v, (pp, pq), val, steps = sub.least_fixed_point(
                level[rows], (p[rows], q[rows]), np.ones(rows.size, dtype=bool),
                min(chunk, level_budget - int(spent[rows].min())))
            p[rows], q[rows], verdict[rows], spent[rows] = sp, sq, v, spent[rows] + steps
            done = rows[v == FEASIBLE]
            point_p[done], point_q[done], value[done] = pp[v == FEASIBLE], pq[v == FEASIBLE], val[v == FEASIBLE]
            chunk = min(2 * chunk, MAX_CHUNK)


@hookimpl
def cfbench_solvers():
    return [FixedPointMaxMin]
