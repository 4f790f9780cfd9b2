"""OPC for ``mmtc``: sequential fractional programming around generalised Dinkelbach.

Coexistence paper (``shared/papers/mmtc_embb_coexistence.txt``), Section V,
Algorithms 1-2. Problem (21), ``max_theta min_d psi R_d / (N mu q_d + Theta)``
over user and device powers ``theta = (p, q)``, is solved as follows.

Outer loop (sequential FP, Algorithm 2 lines 3-9). At the current point
``theta_bar`` the device rate is replaced by a concave minorant, tight at
``theta_bar``: with ``A_d(theta) = lambda_d q_d + varrho_d(theta)`` (affine,
eq. 26) and ``rho_bar = lambda_d q_bar_d / varrho_d(theta_bar)``,

    C~_d = log2(1 + rho_bar) + rho_bar / ln 2 (2 sqrt(q_d / q_bar_d) - A_d(theta) / A_d(theta_bar) - 1)  (27)-(28)
    D-_d = D(rho_bar) / 2 (A_d(theta_bar) / A_d(theta) + q_d / q_bar_d)                                (33)
    R~_d = C~_d - v_d D-_d                       (v_d = 0 in the Shannon regime)                      (34)

Inner loop (generalised Dinkelbach, Algorithm 1). For a level ``vartheta`` solve
the convex problem (31)

    F(vartheta) = max_theta min_d psi R~_d(theta) - vartheta (N mu q_d + Theta)   s.t. C1-C5,

and update ``vartheta = min_d psi R~_d(theta*) / (N mu q*_d + Theta)`` until
``F(vartheta) <= F0``. The objective is (21)'s (the static power counted once,
see :mod:`cfbench.problems.mmtc`).

Constraints. C1-C2 are boxes. C4 (30) and C5 are linear in ``theta`` after
multiplying by the SINR denominators. C3 is linear too: ``R_d(rho)`` of (20)
is quasi-convex in ``rho`` (``R_d' > 0`` iff ``2 rho (1 + rho) > (v_d ln 2)^2``)
and starts at 0, so ``R_d >= R_min > 0`` iff ``rho_d >= rho_3``, the larger
root, found once by bisection. This is exact, where the paper's (35)
restricts C3 to the surrogate; at the defaults C5 implies C3 anyway.
C3 and C5 merge into ``rho_d >= max(S, rho_3)``.

Monotonicity. The surrogate is a minorant tight at ``theta_bar`` and
``theta_bar`` is feasible for (31), so every outer step cannot lower the
true min EE (up to the inner tolerance); a step that would lower it is
rejected and the loop stops. The solver's trace is the true min EE (Mbit/J)
after each outer step. Start: among UPC, FPC, G-FPC and the least-device-power point
of the linear constraints (an LP), the feasible one with the best true min EE
(the least-power point under (21), whose static power is small; G-FPC under
Algorithm 2's EE); when the LP is infeasible no power vector meets the
instance's constraints and the solver returns UPC, which the evaluator reports
as infeasible.

Numerics. Variables are powers over budgets (``x = p / P``, ``y = q / Q``),
rates in Mbit/s and EE in Mbit/J, each SINR row divided by its noise term; one
DPP cvxpy problem per (K_u, K_d, regime) is built once and re-solved with new
parameters (Clarabel). Every QoS row is scaled to read ``row . z >= 1`` and the
solvers aim at ``1 + MARGIN`` (1e-6, above Clarabel's feasibility tolerance
of 1e-8) so that round-off cannot make a returned decision infeasible. The
fallback paths (an answer with status ``OPTIMAL_INACCURATE``, whose
feasibility tolerance is 1e-4 and so exceeds the margin; a Dinkelbach step
re-solved in a smaller trust region after the solver failed) are not trusted
either: :func:`solve_verified` accepts any answer only after the rows it must
meet are recomputed outside the solver, ``row . z >= 1`` exactly and
``0 <= z <= 1`` (the margin the answer actually achieves, not the one asked
for), and treats a failed check as a failed solve.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import fields, replace

import numpy as np

from cfbench import Option, Solution, Solver, hookimpl
from cfbench.lazy import lazy_import
from cfbench.plugins.mmtc_baselines import HEURISTICS
from cfbench.problems.mmtc import coefficients, performance

cp = lazy_import("cvxpy")  # imported when a solver first builds a problem: listing stays fast

LN2 = math.log(2.0)
MARGIN = 1e-6
START_POINTS = ("upc", "fpc", "g-fpc", "least-power")
DEFAULT_STARTS = START_POINTS  # relative tightening of the SINR thresholds


def rate_threshold_sinr(rate_min: float, penalty: float) -> float:
    """Smallest ``rho`` with ``log2(1 + rho) - penalty sqrt(2 rho / (1 + rho)) >= rate_min``
    on the increasing branch (the module docstring's exact form of C3)."""
    if rate_min <= 0:
        return 0.0
    rate = lambda r: math.log2(1 + r) - penalty * math.sqrt(2 * r / (1 + r))  # noqa: E731
    lo = ((penalty * LN2) ** 2 / 2) / 2  # below the turning point 2 rho (1 + rho) = (v ln 2)^2
    hi = max(1.0, 2 ** rate_min)
    while rate(hi) < rate_min:
        hi *= 2
    lo = min(lo, hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) < rate_min else (lo, mid)
    return hi


class InstanceData:
    """One instance in the solver's normalised variables ``z = [x; y]`` (powers over budgets)."""

    def __init__(self, params, coeffs, i: int) -> None:
        p = params
        Ku, Kd = p.n_users, p.n_devices
        P, Q = p.user_max_power_w, p.device_max_power_w
        scale = np.concatenate([np.full(Ku, P), np.full(Kd, Q)])
        # C4 (30): delta p_u >= gamma_min (v p_u + sum kappa p + sum Z q + xi), divided by gamma_min xi
        gamma_min = p.user_sinr_min
        user = np.concatenate([coeffs.kappa[i], coeffs.z[i]], axis=1)
        user[np.arange(Ku), np.arange(Ku)] = coeffs.v[i]
        signal = np.zeros((Ku, Ku + Kd))
        signal[np.arange(Ku), np.arange(Ku)] = coeffs.delta[i]
        self.user_rows = (signal / gamma_min - user) * scale / coeffs.xi[i][:, None]
        # devices: A_d(z) = (lambda q_d + varrho_d) / chi_d = total_d . z + 1, varrho_d / chi_d = interference_d . z + 1
        device = np.concatenate([coeffs.eps_user[i], coeffs.eps_dev[i]], axis=1)
        device[np.arange(Kd), Ku + np.arange(Kd)] = coeffs.nu[i]
        self.interference = device * scale / coeffs.chi[i][:, None]
        self.signal = coeffs.lam[i] * Q / coeffs.chi[i]                     # lambda_d Q / chi_d
        self.total = self.interference.copy()
        self.total[np.arange(Kd), Ku + np.arange(Kd)] += self.signal
        # C3 + C5: lambda q_d >= rho_min varrho_d, divided by rho_min chi_d
        rho_min = max(p.sinr_min, rate_threshold_sinr(p.device_spectral_rate_min, p.fbl_penalty))
        signal_rows = np.zeros((Kd, Ku + Kd))
        signal_rows[np.arange(Kd), Ku + np.arange(Kd)] = self.signal / rho_min
        self.device_rows = signal_rows - self.interference
        #: every QoS constraint reads rows @ z >= 1
        self.qos_rows = np.concatenate([self.user_rows, self.device_rows])
        self.Ku, self.Kd = Ku, Kd

    def split(self, z: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
        return z[:self.Ku] * params.user_max_power_w, z[self.Ku:] * params.device_max_power_w

    def feasible(self, z: np.ndarray) -> bool:
        """C2-C5 hold at ``z`` (exact thresholds; the solvers aim at ``1 + MARGIN``)."""
        return bool(np.all(self.qos_rows @ z >= 1.0) and np.all((z >= 0) & (z <= 1)))


def solve_verified(problem: cp.Problem, variable: cp.Variable, accept) -> np.ndarray | None:
    """``variable``'s value after solving ``problem`` with Clarabel, or ``None`` when the
    solver fails, stops without an (inaccurate) optimum, or its answer fails ``accept``:
    the caller's check of the constraints that answer must meet, recomputed outside
    the solver (module docstring, Numerics)."""
    try:
        with warnings.catch_warnings():  # "Solution may be inaccurate": checked below
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=cp.CLARABEL)
    except cp.error.SolverError:
        return None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or variable.value is None:
        return None
    x = np.asarray(variable.value, dtype=float)
    return x if np.all(np.isfinite(x)) and accept(x) else None


class DinkelbachStep:
    """The convex problem (31) with the surrogate (27)-(28), (33), as a DPP cvxpy problem.

    Its variable is ``w = z / z_bar`` (elementwise), the step relative to the
    current point, so that powers spanning six decades stay O(1) for the solver:
    QoS rows scaled by ``z_bar``, ``sqrt(y / y_bar) = sqrt(w_y)``. A trust region
    ``1 / r <= w <= min(r, 1 / z_bar)`` keeps the data well conditioned; it contains
    ``w = 1`` (the current point), so every step still cannot lower the surrogate,
    and its fixed points are those of the unrestricted step. ``r`` shrinks when
    the conic solver fails.
    """

    def __init__(self, n_users: int, n_devices: int, fbl: bool) -> None:
        T, Kd = n_users + n_devices, n_devices
        self.w = cp.Variable(T, nonneg=True, name="power_over_current")
        self.t = cp.Variable(name="min_dinkelbach_margin")
        self.lower = cp.Parameter(T, nonneg=True, name="trust_region_lower")
        self.upper = cp.Parameter(T, nonneg=True, name="trust_region_upper")
        self.qos_rows = cp.Parameter((T, T), name="qos_rows")
        self.sqrt_coef = cp.Parameter(Kd, nonneg=True, name="sqrt_coefficient")
        self.linear = cp.Parameter((Kd, T), name="linear_coefficients")
        self.offset = cp.Parameter(Kd, name="offset")
        terms = self.offset + cp.multiply(self.sqrt_coef, cp.sqrt(self.w[n_users:])) + self.linear @ self.w
        if fbl:
            self.inv_rows = cp.Parameter((Kd, T), name="penalty_rows")
            self.inv_offset = cp.Parameter(Kd, nonneg=True, name="penalty_offset")
            terms = terms - cp.inv_pos(self.inv_rows @ self.w + self.inv_offset)
        self.fbl = fbl
        constraints = [self.w >= self.lower, self.w <= self.upper, self.t <= terms, self.qos_rows @ self.w >= 1 + MARGIN]
        self.problem = cp.Problem(cp.Maximize(self.t), constraints)
        self.accept = None

    def solve(self) -> tuple[float, np.ndarray] | None:
        """``(F, w)`` at the optimum; ``None`` when the solver fails or ``w`` fails
        ``self.accept``, the check that the caller sets for each step (the point must
        meet C1-C5 exactly; by default the QoS rows, ``rows . w >= 1``), see
        :func:`solve_verified`."""
        accept = self.accept or (lambda w: bool(np.all(self.qos_rows.value @ w >= 1.0)))
        w = solve_verified(self.problem, self.w, lambda w: accept(np.maximum(w, 0.0)))
        if w is None or self.t.value is None:
            return None
        return float(self.t.value), np.maximum(w, 0.0)


class SurrogateModel:
    """Surrogate rate R~_d(z; z_bar) and EE of one instance in Mbit/s and Mbit/J."""

    def __init__(self, params, data: InstanceData) -> None:
        self.d = data
        self.psi = 1e-6 * params.psi_hz * params.device_prb_share          # Mbit/s per bit/s/Hz
        self.cost = params.device_spreading * params.amplifier_inefficiency * params.device_max_power_w
        self.static = params.static_power_total_w
        self.v = params.fbl_penalty

    def linearise(self, z_bar: np.ndarray) -> dict[str, np.ndarray]:
        d = self.d
        y_bar = z_bar[d.Ku:]
        a_bar = d.total @ z_bar + 1.0
        rho_bar = d.signal * y_bar / (d.interference @ z_bar + 1.0)
        dispersion = np.sqrt(2 * rho_bar / (1 + rho_bar))
        ku = d.Ku
        linear = -(rho_bar / (LN2 * a_bar))[:, None] * d.total
        linear[np.arange(d.Kd), ku + np.arange(d.Kd)] -= self.v * dispersion / (2 * y_bar)
        out = {
            # the constant of A_d(z) = total . z + 1 goes to the offset
            "offset": np.log2(1 + rho_bar) - rho_bar / LN2 - rho_bar / (LN2 * a_bar),
            "sqrt_coef": 2 * rho_bar / (LN2 * np.sqrt(y_bar)),
            "linear": linear,
        }
        if self.v > 0:
            k = self.v * dispersion * a_bar / 2          # k / A_d(z) = inv_pos(A_d(z) / k)
            out["inv_rows"] = d.total / k[:, None]
            out["inv_offset"] = 1.0 / k
        return out

    def surrogate_rate(self, lin: dict, z: np.ndarray) -> np.ndarray:
        y = z[self.d.Ku:]
        r = lin["offset"] + lin["sqrt_coef"] * np.sqrt(y) + lin["linear"] @ z
        if "inv_rows" in lin:
            r = r - 1.0 / (lin["inv_rows"] @ z + lin["inv_offset"])
        return r

    def power(self, z: np.ndarray) -> np.ndarray:
        return self.cost * z[self.d.Ku:] + self.static


class SequentialFractionalProgramming(Solver):
    """OPC: sequential FP (outer) around generalised Dinkelbach (inner); options
    ``max_outer`` (300), ``max_inner`` (30), ``outer_tol`` (theta_0 = 1e-8, relative
    squared step), ``inner_tol`` (F_0 = 1e-7 Mbit/J), ``trust_region`` (10: a step
    changes each power by at most this factor), ``starts`` (comma-separated subset of
    ``upc, fpc, g-fpc, least-power``, default all: the run starts from the feasible
    candidate with the best true min EE), ``multistart`` (False: True runs from every
    feasible candidate and keeps the best), ``extrapolate`` (True: monotone geometric
    extrapolation of each step)."""

    name = "opc"
    kind = "iterative"
    problems = ("mmtc",)
    description = "OPC: sequential FP with surrogates (27)-(28), (33) around generalised Dinkelbach (cvxpy/Clarabel)"
    options_spec = (
        Option("max_outer", int, 300, "sequential FP (outer) iterations at most"),
        Option("max_inner", int, 30, "Dinkelbach (inner) iterations per outer one at most"),
        Option("outer_tol", float, 1e-8, "theta_0: outer stop on the relative squared step"),
        Option("inner_tol", float, 1e-7, "F_0: inner stop on the Dinkelbach value, Mbit/J"),
        Option("trust_region", float, 10.0, "a step changes each power by at most this factor"),
        Option("extrapolate", bool, True, "monotone geometric extrapolation of each step"),
        Option("multistart", bool, False, "run from every feasible start and keep the best (false: the best start)"),
        Option("starts", str, ",".join(DEFAULT_STARTS), f"comma-separated start points: {', '.join(START_POINTS)}"),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.starts = tuple(self.options["starts"].split(","))
        unknown = sorted(set(self.starts) - set(START_POINTS))
        if unknown:
            raise ValueError(f"unknown OPC start {unknown[0]!r}; valid: {', '.join(START_POINTS)}")

    def setup(self, problem, scenario):
        super().setup(problem, scenario)
        params = problem.scenario_params(scenario)
        self.max_outer = self.options["max_outer"]
        self.max_inner = self.options["max_inner"]
        self.outer_tol = self.options["outer_tol"]
        self.inner_tol = self.options["inner_tol"]
        self.trust_region = self.options["trust_region"]
        self.extrapolate = self.options["extrapolate"]
        self.multistart = self.options["multistart"]
        self.step = DinkelbachStep(params.n_users, params.n_devices, params.fbl_penalty > 0)
        T = params.n_users + params.n_devices
        self.z0 = cp.Variable(T, name="power_over_budget")
        self.rows = cp.Parameter((T, T), name="qos_rows")
        self.phase0 = cp.Problem(cp.Minimize(cp.sum(self.z0[params.n_users:])),
                                 [self.z0 >= 0, self.z0 <= 1, self.rows @ self.z0 >= 1 + MARGIN])

    def least_power_point(self, data: InstanceData) -> np.ndarray | None:
        """Least total device power meeting C2-C5 (an LP), or ``None`` when none does."""
        self.rows.value = data.qos_rows
        z = solve_verified(self.phase0, self.z0, lambda z: data.feasible(np.clip(z, 1e-12, 1.0)))
        return None if z is None else np.clip(z, 1e-12, 1.0)

    def dinkelbach(self, model: SurrogateModel, lin: dict, z_bar: np.ndarray) -> tuple[np.ndarray, int]:
        """Algorithm 1 on the surrogate problem (31) around ``z_bar``; returns the maximiser
        and the number of convex solves."""
        step, data, Ku, Kd = self.step, model.d, model.d.Ku, model.d.Kd
        radius = self.trust_region
        step.lower.value = np.full(z_bar.shape, 1.0 / radius)
        step.upper.value = np.minimum(radius, 1.0 / z_bar)
        step.qos_rows.value = data.qos_rows * z_bar
        # t <= psi R~_d(z_bar w) - level (cost y_d + static): psi, the level and z_bar folded in
        step.sqrt_coef.value = model.psi * lin["sqrt_coef"] * np.sqrt(z_bar[Ku:])
        if step.fbl:
            step.inv_rows.value = lin["inv_rows"] * z_bar / model.psi
            step.inv_offset.value = lin["inv_offset"] / model.psi
        z = z_bar
        level = float(np.min(model.psi * model.surrogate_rate(lin, z) / model.power(z)))
        for k in range(1, self.max_inner + 1):
            step.offset.value = model.psi * lin["offset"] - level * model.static
            linear = model.psi * lin["linear"]
            linear[np.arange(Kd), Ku + np.arange(Kd)] -= level * model.cost
            step.linear.value = linear * z_bar

            step.accept = lambda w: data.feasible(np.minimum(z_bar * w, 1.0))  # the step's point meets C1-C5
            result = step.solve()
            while result is None and radius > 1.01:  # failed or unverified: smaller trust region
                radius = np.sqrt(radius)
                step.lower.value = np.full(z_bar.shape, 1.0 / radius)
                step.upper.value = np.minimum(radius, 1.0 / z_bar)
                result = step.solve()
            if result is None:
                return z, k
            value, w = result
            z_new = np.minimum(z_bar * w, 1.0)
            new_level = float(np.min(model.psi * model.surrogate_rate(lin, z_new) / model.power(z_new)))
            if new_level <= level:  # no progress on the surrogate (solver round-off): keep z
                return z, k
            z, level = z_new, new_level
            if value <= self.inner_tol:  # F(level) <= F_0: Dinkelbach has converged
                return z, k
        return z, self.max_inner

    @staticmethod
    def extrapolation(data: InstanceData, z_bar: np.ndarray, z: np.ndarray, value: float, min_ee):
        """Geometric extrapolation of the step ``z_bar -> z`` in log-power space,
        ``z_bar (z / z_bar)^s`` for s = 2, 4, 8, ..., kept while it is feasible and
        raises the true min EE: a monotone acceleration of the slow MM tail."""
        ratio = np.log(np.maximum(z, 1e-300) / z_bar)
        for s in (2.0, 4.0, 8.0, 16.0, 32.0):
            trial = np.minimum(z_bar * np.exp(s * ratio), 1.0)
            if not data.feasible(trial):
                break
            trial_value = min_ee(trial)
            if trial_value <= value:
                break
            z, value = trial, trial_value
        return z, value

    def sequential_fp(self, model: SurrogateModel, z_bar: np.ndarray, min_ee) -> tuple[np.ndarray, list[float], int]:
        """Algorithm 2 from the feasible ``z_bar``: (point, true min EE per outer step, Dinkelbach steps)."""
        data = model.d
        trace, inner_total = [min_ee(z_bar)], 0
        for _ in range(self.max_outer):
            lin = model.linearise(z_bar)
            z, inner = self.dinkelbach(model, lin, z_bar)
            inner_total += inner
            value = min_ee(z)
            if value < trace[-1]:  # round-off of the inner solve: keep the better point
                break
            if self.extrapolate:
                z, value = self.extrapolation(data, z_bar, z, value, min_ee)
            step = float(np.sum((z - z_bar) ** 2) / max(np.sum(z ** 2), 1e-300))
            z_bar = z
            trace.append(value)
            if step <= self.outer_tol:
                break
        return z_bar, trace, inner_total

    def solve_one(self, params, coeffs, i: int, heuristic_starts: dict[str, np.ndarray]):
        """Run from the best feasible starting point (or from each, with ``multistart``);
        returns (z, trace, outer steps, start name)."""
        data = InstanceData(params, coeffs, i)
        model = SurrogateModel(params, data)
        row = _row(coeffs, i)

        def min_ee(z):
            user, device = data.split(z, params)
            return 1e-6 * float(np.min(performance(params, row, user[None], device[None])["device_ee_bit_per_j"]))

        starts = {name: z for name, z in heuristic_starts.items() if name in self.starts and data.feasible(z)}
        if "least-power" in self.starts:
            z = self.least_power_point(data)
            if z is not None:
                starts["least-power"] = z
        if not self.multistart and starts:  # one run, from the candidate with the best true min EE
            name = max(starts, key=lambda k: min_ee(starts[k]))
            starts = {name: starts[name]}
        best = None
        for name, z0 in starts.items():
            z, trace, _ = self.sequential_fp(model, z0, min_ee)
            if best is None or trace[-1] > best[1][-1]:
                best = (z, trace, len(trace) - 1, name)
        if best is None:  # no feasible start: no power vector meets C2-C5 (or the LP failed)
            return np.ones(data.Ku + data.Kd), [], 0, "none"
        return best

    def solve(self, instances):
        params = instances.params
        coeffs = coefficients(instances)
        n = len(instances)
        heuristics = {cls.name: cls().solve(instances) for cls in HEURISTICS}
        scale = np.concatenate([np.full(params.n_users, params.user_max_power_w),
                                np.full(params.n_devices, params.device_max_power_w)])
        user = np.empty((n, params.n_users))
        device = np.empty((n, params.n_devices))
        traces, iterations, self.start_used = [], [], []
        for i in range(n):
            heuristic_starts = {name: np.concatenate([d["user_power_w"][i], d["device_power_w"][i]]) / scale
                                for name, d in heuristics.items()}
            z, trace, outer, start = self.solve_one(params, coeffs, i, heuristic_starts)
            user[i] = z[:params.n_users] * params.user_max_power_w
            device[i] = z[params.n_users:] * params.device_max_power_w
            traces.append(trace)
            iterations.append(outer)
            self.start_used.append(start)
        return Solution({"user_power_w": user, "device_power_w": device},
                        iterations=np.asarray(iterations), trace=traces)


def _row(coeffs, i: int):
    """The coefficients of instance ``i`` as a batch of one."""
    return replace(coeffs, **{f.name: getattr(coeffs, f.name)[i:i + 1] for f in fields(coeffs)})


@hookimpl
def cfbench_solvers():
    return [SequentialFractionalProgramming]
