"""``urllc``: EE-SE trade-off Omega of ground and aerial terminals in a URLLC cell-free uplink.

Yan et al., "EE-SE Trade-Off in Deep Learning-Based URLLC Cell-Free Massive
MIMO Systems" (``shared/papers/urllc_ee_se_tradeoff.txt``), eqs. (1)-(12),
(20) and Table I; open points fixed by ``shared/spec/urllc.md``. The signal
model, the closed-form UatF SINR and the FBL formulas live in
:mod:`cfbench.problems.urllc_model` and :mod:`cfbench.physics.fbl` (tested
against Monte Carlo there); this module only assembles them.

Instance (``sample_one``). ``M`` APs with ``L`` antennas at ``ap_height_m``
dropped uniformly at random in a ``side_m`` x ``side_m`` square per instance
("M uniformly distributed APs", as in the paper's path-loss reference [15];
``ap_layout="grid"`` puts them on a cell-centred grid instead: it moves the
share of terminals violating eps_QoS on ``stress-k60`` from 17-37 % to
9-22 %, and only the random drop reproduces the spec's 15-35 %), ``K``
terminals uniform in the square: the first ``K - round(aerial_fraction K)``
are ground terminals (GTs, Rayleigh, eq. 2, height ``gt_height_m``), the rest
aerial terminals (ATs, Rician factor ``rician_factor``, eq. 1, height
``at_height_m``). 3-D distances, no wrap-around. Large-scale fading (eq. 20)
``beta_mk [dB] = -30.5 - 37.6 log10(d_mk) + Psi``, ``Psi ~ N(0, 8^2)``
i.i.d. per link, stored linear and divided by the noise power
``-174 dBm/Hz + 10 log10(B) + NF`` (so the AWGN is CN(0, 1) and ``beta`` is
per W). Arrays of one instance:

- ``beta`` (M, K): noise-normalised LSF, the only input of the evaluator;
- ``rician_factor`` (K,), ``aerial`` (K,) bool: terminal types;
- ``terminal_xy_m`` (K, 2), ``ap_xy_m`` (M, 2): geometry;
- ``channel_estimate`` (M, K, L) complex64: one LS channel estimate
  ``H_hat = H + W`` (eq. 4) of one small-scale realisation, with pilots sent
  at ``csi_pilot_power_w`` (default ``p_max``), in sqrt(per W) units like
  ``beta``. It is the CSI input of the paper's network (Section III, eqs.
  13-14: instance-normalised real channel plus ``log10 beta``); the UatF
  objective depends on ``beta`` only, so solvers may ignore it.

Decision: ``power_w`` (K,), ``p_min <= p_k <= p_max`` (W), the data and pilot
power of each terminal.

Evaluator (``evaluate``, vectorised over the batch):

- ``delta_k`` = :func:`urllc_model.uatf_sinr` (UatF bound, closed form);
- ``eps_k = Q((log2(1 + delta_k) - D/n_d) / sqrt(V(delta_k)/n_d))`` (eq. 7);
- ``R_k = max(0, log2(1 + delta_k) - sqrt(V(delta_k)/n_d) Q^-1(eps_QoS))``;
- ``SE_g, SE_a`` mean ``R_k`` per group (eq. 8), ``EE_g, EE_a`` =
  ``B sum R_k / sum(mu p_k + sigma)`` per group (eq. 9), bit/J;
- objective ``Omega`` (eqs. 10-11) with ``alpha_g``, ``alpha_a``,
  ``lambda = 0.5`` and the scenario's normalisation bounds (below). Omega is
  dimensionless and maximised; it is not clipped to [0, 2 lambda], so a
  solver can exceed the calibration range.

Constraints of (12), each as a non-negative violation in its own unit:

- ``power_below_min_w`` = ``max_k (p_min - p_k)+``, ``power_above_max_w`` =
  ``max_k (p_k - p_max)+`` (W);
- ``delay_s`` = ``((n_p + n_d) / B - t_QoS)+`` (s); constant 0 (0.206 ms <
  0.5 ms), kept because it is the paper's constraint;
- ``error_probability_decades`` = ``max_k (log10 eps_k - log10 eps_QoS)+``:
  how many decades the least reliable terminal misses ``eps_QoS`` by.

Reliability is a hard constraint, as in (12) and the spec ("power control
decides feasibility"): an instance is ``feasible`` only if every terminal
meets ``eps_k <= eps_QoS`` (within 1e-6 decades) and the powers are within
bounds (1e-9 relative). On the ``stress`` scenarios uniform power leaves
2-19 % of the terminals above ``eps_QoS`` (32 instances, seed 0, best common
level), so power control decides feasibility. Whether every terminal of an
instance can be made reliable at once is decided exactly, with a certificate
either way, by :mod:`cfbench.problems.urllc_reliability` (Yates' least
fixed point of the least admissible powers; every ``stress`` instance drawn so
far admits a fully reliable vector). The graded reliability is reported as
metrics so that infeasible instances still compare solvers:
``n_violating_eps`` (terminals with ``eps_k > eps_QoS``), ``worst_eps``
(``max_k eps_k``) and ``n_unreachable_eps``, the fewest terminals that miss
``eps_QoS`` under ANY decision (0 when a fully reliable vector exists; else
``K`` minus the largest reliable set, by exhaustive search over the number
of dropped terminals; NaN where that search did not close within its budget
or a test stayed undecided). It depends on the instance only and is a lower
bound on ``n_violating_eps`` of every decision. Omega is reported for every
valid decision, feasible or not.

Normalisation bounds (eq. 11, spec: "fixed per scenario"). ``SE^min/max``
and ``EE^min/max`` per group are the minimum and maximum of the group SE/EE
over a fixed calibration set: the scenario's own instance stream at seed
``CALIBRATION_SEED`` (instances 0..255, i.e. ``sample(scenario, 256,
CALIBRATION_SEED)``), each evaluated at all-``p_min``, all-``p_max``,
``N_CALIBRATION_LEVELS`` common levels log-spaced over ``[p_min, p_max]``
(the EE peak sits at tens of mW) and ``N_CALIBRATION_RANDOM`` per-terminal
log-uniform random power vectors (``SeedSequence([CALIBRATION_SEED, i,
1])``). They depend on the physical parameters only, not on ``alpha``, so the
alpha sweep shares the bounds of ``k50``. The registered scenarios carry the
values computed by :func:`calibrate_bounds` (``python -m
cfbench.problems.urllc`` prints them; a test checks they are current); a
scenario built with ``bounds=None`` is calibrated on first use.

Terminal order convention: GTs first, then ATs. The evaluator only uses the
``aerial`` mask, so it is equivariant under any permutation of terminals.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from cfbench import DecisionField, Instances, Problem, Score, hookimpl
from cfbench.physics import dbm_to_watt, distances_3d_m, grid_positions_m, log_distance_gain, uniform_positions_m
from cfbench.physics import channels, fbl
from cfbench.problems import urllc_model as um
from cfbench.problems import urllc_reliability as reliability
from cfbench.problems.urllc_model import TradeoffBounds

#: seed of the calibration instance stream behind the normalisation bounds
CALIBRATION_SEED = 1_112_026
N_CALIBRATION_INSTANCES = 256
N_CALIBRATION_LEVELS = 41
N_CALIBRATION_RANDOM = 32
#: feasibility tolerances of the evaluator
EPS_TOLERANCE_DECADES = 1e-6
POWER_TOLERANCE_REL = 1e-9


@dataclass(frozen=True)
class UrllcScenario:
    """One parameter set; Table I values are the defaults (units in the names)."""

    n_terminals: int                      # K
    n_aps: int = 64                       # M (Table I)
    n_antennas: int = 16                  # L (Table I)
    alpha_g: float = 0.25                 # trade-off weight of GTs (eq. 10); the paper sets alpha_g = alpha_a = alpha
    alpha_a: float = 0.25                 # trade-off weight of ATs
    trade_off_lambda: float = 0.5         # lambda (eq. 10)
    aerial_fraction: float = 0.5          # ATs : GTs = 1 : 1 (Table I)
    side_m: float = 1000.0
    ap_layout: str = "random"             # "random" (uniform per instance) or "grid" (cell-centred)
    ap_height_m: float = 10.0
    gt_height_m: float = 1.5
    at_height_m: float = 30.0
    carrier_ghz: float = 1.9              # Table I; documents the model (enters through the intercept)
    bandwidth_hz: float = 10e6            # B (Table I)
    noise_psd_dbm_per_hz: float = -174.0
    noise_figure_db: float = 9.0
    pathloss_intercept_db: float = -30.5  # eq. (20)
    pathloss_exponent: float = 3.76       # eq. (20): 37.6 log10(d)
    shadowing_std_db: float = 8.0         # eq. (20)
    rician_factor: float = 10.0           # rho of ATs (linear); GTs have rho = 0
    bits_per_packet: int = 32             # D (Table I "frame length of data")
    n_pilot: int = 64                     # n_p (Table I "frame length of pilot")
    n_data: int = 2000                    # n_d (Table I "blocklength of data")
    delay_qos_s: float = 0.5e-3           # t_QoS (Table I)
    eps_qos: float = 1e-5                 # eps_QoS (Table I)
    p_min_w: float = 0.001                # Table I
    p_max_w: float = 1.0                  # Table I
    amplifier_inefficiency: float = 2.5   # mu_k (40 % PA efficiency)
    static_power_w: float = 0.2           # sigma_k
    csi_pilot_power_w: float | None = None  # pilot power of the stored CSI realisation (None: p_max)
    bounds: TradeoffBounds | None = None  # eq. (11); None: calibrated on first use
    description: str = ""

    @property
    def noise_w(self) -> float:
        """Noise power over the band, ``noise_psd + 10 log10(B) + NF`` (W)."""
        return float(dbm_to_watt(self.noise_psd_dbm_per_hz + 10.0 * np.log10(self.bandwidth_hz) + self.noise_figure_db))

    @property
    def n_aerial(self) -> int:
        return int(round(self.aerial_fraction * self.n_terminals))

    @property
    def n_ground(self) -> int:
        return self.n_terminals - self.n_aerial

    @property
    def packet_rate_bits(self) -> float:
        """``D / n_d`` in bit per channel use."""
        return self.bits_per_packet / self.n_data

    @property
    def sinr_threshold(self) -> float:
        """Smallest ``delta_k`` with ``eps_k <= eps_QoS`` (about 0.037 at Table I values)."""
        return _sinr_threshold(self.n_data, self.bits_per_packet, self.eps_qos)

    @property
    def end_to_end_delay_s(self) -> float:
        return um.end_to_end_delay_s(self.n_pilot, self.n_data, self.bandwidth_hz)


@functools.lru_cache(maxsize=None)
def _sinr_threshold(n_data: int, bits_per_packet: float, eps_qos: float) -> float:
    return float(fbl.sinr_threshold(n_data, bits_per_packet / n_data, eps_qos))


# --- sampling -------------------------------------------------------------------------

def _grid_shape(n: int) -> tuple[int, int]:
    rows = max(r for r in range(1, int(np.sqrt(n)) + 1) if n % r == 0)
    return rows, n // rows


def terminal_types(params: UrllcScenario) -> tuple[np.ndarray, np.ndarray]:
    """``aerial`` mask (K,) (GTs first) and per-terminal Rician factor (K,)."""
    aerial = np.arange(params.n_terminals) >= params.n_ground
    return aerial, np.where(aerial, params.rician_factor, 0.0)


def draw_large_scale(params: UrllcScenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Geometry and noise-normalised LSF of one instance (the first draws of ``sample_one``)."""
    if params.ap_layout == "grid":
        ap_xy = grid_positions_m(*_grid_shape(params.n_aps), params.side_m)
    elif params.ap_layout == "random":
        ap_xy = uniform_positions_m(rng, params.n_aps, params.side_m)
    else:
        raise ValueError(f"unknown ap_layout {params.ap_layout!r}")
    terminal_xy = uniform_positions_m(rng, params.n_terminals, params.side_m)
    aerial, rho = terminal_types(params)
    height_m = np.where(aerial, params.at_height_m, params.gt_height_m)
    d = distances_3d_m(ap_xy, terminal_xy, params.ap_height_m - height_m[None, :])  # (M, K)
    beta_w = log_distance_gain(d, params.pathloss_intercept_db, params.pathloss_exponent,
                               params.shadowing_std_db, rng)
    return {
        "beta": beta_w / params.noise_w,
        "rician_factor": rho,
        "aerial": aerial,
        "terminal_xy_m": terminal_xy,
        "ap_xy_m": ap_xy,
    }


# --- the SINR as a function of the powers -----------------------------------------------

#: the instance arrays the closed form reads (the regroupings and the reliability verdict)
LSF_ARRAYS = ("beta", "rician_factor")


def _lsf_arguments(instances: Instances) -> tuple:
    """``(beta, rician_factor, n_antennas, n_pilot)`` of a batch, what both regroupings take."""
    p = instances.params
    return instances.beta, instances.rician_factor, p.n_antennas, p.n_pilot


@dataclass(frozen=True)
class SinrCoefficients:
    """The closed forms (A)-(D) of :mod:`urllc_model` regrouped by powers.

    With ``c_k = 1/(n_p p_k)``: ``E S_kk = m_k``, ``Var S_kk = v_k + c_k u_k``,
    ``E|S_ki|^2 = G_ki + c_k F_ki`` (i != k), ``E|AW_k|^2 = u_k + c_k z_k``, where

        m_k = L sum_m eta_mk beta_mk,          v_k = L sum_m eta_mk^2 (beta_mk^2 - a_mk^2),
        u_k = L sum_m eta_mk^2 beta_mk,        z_k = L sum_m eta_mk^2,
        G_ki = L sum_m eta_mk^2 beta_mk beta_mi,   F_ki = L sum_m eta_mk^2 beta_mi   (0 on the diagonal).

    Multiplying the UatF ratio by ``p_k / p_k`` gives ``1/delta_k`` as a
    posynomial in the powers (the form the SCA solver uses in log variables)::

        1/delta_k = v_k/m_k^2 + (u_k (1 + 1/n_p) + sum_i G_ki p_i) / (m_k^2 p_k)
                    + (sum_i F_ki p_i + z_k) / (n_p m_k^2 p_k^2).

    Arrays carry the leading batch axes of ``beta``: (..., K) and (..., K, K).
    :meth:`sinr` equals :func:`urllc_model.uatf_sinr` (tested) at O(K^2) per
    power vector instead of O(M K^2), for solvers scoring many candidates.
    """

    mean: np.ndarray
    v: np.ndarray
    u: np.ndarray
    z: np.ndarray
    g: np.ndarray
    f: np.ndarray
    n_pilot: int

    @classmethod
    def from_lsf(cls, beta: np.ndarray, rician_factor, n_antennas: int, n_pilot: int) -> "SinrCoefficients":
        beta = np.asarray(beta, dtype=float)
        L = float(n_antennas)
        eta = um.lsf_weights_eta(beta)
        eta_sq = eta ** 2
        los = um.los_power(beta, np.asarray(rician_factor, dtype=float))
        off = 1.0 - np.eye(beta.shape[-1])
        return cls(
            mean=L * np.sum(eta * beta, axis=-2),
            v=L * np.sum(eta_sq * (beta ** 2 - los ** 2), axis=-2),
            u=L * np.sum(eta_sq * beta, axis=-2),
            z=L * np.sum(eta_sq, axis=-2),
            g=L * np.matmul(np.swapaxes(eta_sq * beta, -1, -2), beta) * off,     # [k, i]: sum_m (BLAS)
            f=L * np.matmul(np.swapaxes(eta_sq, -1, -2), beta) * off,
            n_pilot=int(n_pilot),
        )

    @classmethod
    def from_instances(cls, instances: Instances) -> "SinrCoefficients":
        return cls.from_lsf(*_lsf_arguments(instances))

    def inverse_sinr(self, power_w: np.ndarray) -> np.ndarray:
        """``1/delta_k`` for power vectors (..., S, K) or (..., K) matching the batch axes."""
        p = np.asarray(power_w, dtype=float)
        extra = p.ndim - self.mean.ndim  # number of candidate axes between batch and K
        expand = (Ellipsis,) + (None,) * extra + (slice(None),)
        mean_sq, v, u, z = (a[expand] for a in (self.mean ** 2, self.v, self.u, self.z))
        gp = np.matmul(self.g[(Ellipsis,) + (None,) * extra + (slice(None), slice(None))], p[..., None])[..., 0]
        fp = np.matmul(self.f[(Ellipsis,) + (None,) * extra + (slice(None), slice(None))], p[..., None])[..., 0]
        n_p = self.n_pilot
        return (v + (u * (1.0 + 1.0 / n_p) + gp) / p + (fp + z) / (n_p * p ** 2)) / mean_sq

    def sinr(self, power_w: np.ndarray) -> np.ndarray:
        return 1.0 / self.inverse_sinr(power_w)


@dataclass(frozen=True)
class SinrFactors:
    """:class:`SinrCoefficients` regrouped for scoring one power vector per instance, without
    the K x K matrices. With ``eta_mk = w_m beta_mk`` (``w_m = 1 / sum_q beta_mq``), a Rician
    LoS share ``r_k = rho_k / (rho_k + 1)`` (``a_mk = r_k beta_mk``) and ``q = beta p`` (the
    power each AP receives, (..., M))::

        m_k = L sum_m w_m beta_mk^2                 v_k = L (1 - r_k^2) sum_m w_m^2 beta_mk^4
        u_k = L sum_m w_m^2 beta_mk^3               z_k = L sum_m w_m^2 beta_mk^2
        sum_{i != k} G_ki p_i = L sum_m w_m^2 beta_mk^3 q_m - (L sum_m w_m^2 beta_mk^4) p_k
        sum_{i != k} F_ki p_i = L sum_m w_m^2 beta_mk^2 q_m - u_k p_k

    so a score costs a few passes over the (M, K) powers of beta and matrix-vector products,
    O(M K) per instance instead of forming G and F (O(M K^2)). The subtraction removes a
    terminal's own term from its APs' received power; where that term dominates (a terminal
    next to its AP) it costs a few digits, so :meth:`sinr` equals :meth:`SinrCoefficients.sinr`
    to about 1e-12 relative (tested on ``k`` and ``stress`` scenarios).
    """

    mean: np.ndarray
    v: np.ndarray
    u: np.ndarray
    z: np.ndarray
    beta: np.ndarray
    w_sq: np.ndarray         # (..., M): w_m^2
    beta_sq: np.ndarray      # (..., M, K)
    beta_cube: np.ndarray    # (..., M, K)
    own_g: np.ndarray        # (..., K): L sum_m w_m^2 beta_mk^4
    n_antennas: float
    n_pilot: int

    @classmethod
    def from_lsf(cls, beta: np.ndarray, rician_factor, n_antennas: int, n_pilot: int) -> "SinrFactors":
        beta = np.asarray(beta, dtype=float)
        L = float(n_antennas)
        w = 1.0 / np.sum(beta, axis=-1)                                    # (..., M)
        w_sq = w * w
        beta_sq = beta * beta
        beta_cube = beta_sq * beta
        rho = np.asarray(rician_factor, dtype=float)
        r = rho / (rho + 1.0)

        def weighted(weights, powers):                                     # L sum_m weights_m powers_mk
            return L * np.matmul(weights[..., None, :], powers)[..., 0, :]

        own_g = weighted(w_sq, beta_sq * beta_sq)
        return cls(mean=weighted(w, beta_sq), v=(1.0 - r * r) * own_g, u=weighted(w_sq, beta_cube),
                   z=weighted(w_sq, beta_sq), beta=beta, w_sq=w_sq, beta_sq=beta_sq, beta_cube=beta_cube,
                   own_g=own_g, n_antennas=L, n_pilot=int(n_pilot))

    @classmethod
    def from_instances(cls, instances: Instances) -> "SinrFactors":
        return cls.from_lsf(*_lsf_arguments(instances))

    def inverse_sinr(self, power_w: np.ndarray) -> np.ndarray:
        """``1/delta_k`` for power vectors (..., K) with the batch axes of ``beta``."""
        p = np.asarray(power_w, dtype=float)
        L = self.n_antennas
        weighted_q = (self.w_sq * np.matmul(self.beta, p[..., None])[..., 0])[..., None, :]    # (..., 1, M)
        gp = L * np.matmul(weighted_q, self.beta_cube)[..., 0, :] - self.own_g * p
        fp = L * np.matmul(weighted_q, self.beta_sq)[..., 0, :] - self.u * p
        n_p = self.n_pilot
        return (self.v + (self.u * (1.0 + 1.0 / n_p) + gp) / p + (fp + self.z) / (n_p * p ** 2)) / self.mean ** 2

    def sinr(self, power_w: np.ndarray) -> np.ndarray:
        return 1.0 / self.inverse_sinr(power_w)


# --- Omega and its ingredients ----------------------------------------------------------

def tradeoff_terms(params: UrllcScenario, sinr: np.ndarray, power_w: np.ndarray, aerial: np.ndarray,
                   bounds: TradeoffBounds | None = None) -> dict[str, np.ndarray]:
    """eps_k, R_k (..., K) and SE/EE per group and Omega (...,) from SINRs and powers.

    ``aerial`` broadcasts against ``sinr``. Eqs. (7)-(11) through
    :mod:`urllc_model`; the one place the objective is computed, shared by the
    evaluator and the solvers.
    """
    bounds = bounds if bounds is not None else bounds_of(params)
    aerial = np.broadcast_to(np.asarray(aerial, dtype=bool), np.shape(sinr))
    eps = um.terminal_error_probability(sinr, params.n_data, params.bits_per_packet)
    rate = um.terminal_rate_bits(sinr, params.n_data, params.eps_qos)
    se_g = um.group_se_bits(rate, ~aerial)
    se_a = um.group_se_bits(rate, aerial)
    ee_args = (params.bandwidth_hz, params.amplifier_inefficiency, params.static_power_w)
    ee_g = um.group_ee_bit_per_joule(rate, power_w, ~aerial, *ee_args)
    ee_a = um.group_ee_bit_per_joule(rate, power_w, aerial, *ee_args)
    omega = um.omega(se_g, ee_g, se_a, ee_a, bounds, params.alpha_g, params.alpha_a, params.trade_off_lambda)
    return {"eps": eps, "rate": rate, "se_g": se_g, "se_a": se_a, "ee_g": ee_g, "ee_a": ee_a, "omega": omega}


def omega_weights(params: UrllcScenario, bounds: TradeoffBounds | None = None) -> dict[str, float]:
    """Omega is affine in (SE_g, EE_g, SE_a, EE_a): ``Omega = offset + sum w_x x`` (EE in bit/J)."""
    b = bounds if bounds is not None else bounds_of(params)
    lam, ag, aa = params.trade_off_lambda, params.alpha_g, params.alpha_a
    w = {
        "se_g": (lam - ag) / (b.se_g_max - b.se_g_min),
        "ee_g": ag / (b.ee_g_max - b.ee_g_min),
        "se_a": aa / (b.se_a_max - b.se_a_min),
        "ee_a": (lam - aa) / (b.ee_a_max - b.ee_a_min),
    }
    w["offset"] = -(w["se_g"] * b.se_g_min + w["ee_g"] * b.ee_g_min + w["se_a"] * b.se_a_min + w["ee_a"] * b.ee_a_min)
    return w


# --- normalisation bounds (eq. 11) ---------------------------------------------------------

def _calibration_key(params: UrllcScenario) -> UrllcScenario:
    """The parameters the bounds depend on (everything physical; not alpha, lambda, text)."""
    return dataclasses.replace(params, alpha_g=0.0, alpha_a=0.0, trade_off_lambda=0.5, bounds=None, description="")


def calibration_powers(params: UrllcScenario, index: int) -> np.ndarray:
    """Power vectors (S, K) of calibration instance ``index``: all-p_min, all-p_max,
    common log-spaced levels, per-terminal log-uniform random vectors."""
    K = params.n_terminals
    levels = np.geomspace(params.p_min_w, params.p_max_w, N_CALIBRATION_LEVELS)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([CALIBRATION_SEED, index, 1])))
    log_random = rng.uniform(np.log(params.p_min_w), np.log(params.p_max_w), size=(N_CALIBRATION_RANDOM, K))
    return np.concatenate([
        np.full((1, K), params.p_min_w), np.full((1, K), params.p_max_w),
        np.repeat(levels[:, None], K, axis=1), np.exp(log_random),
    ])


def calibrate_bounds(params: UrllcScenario, n_instances: int = N_CALIBRATION_INSTANCES) -> TradeoffBounds:
    """Min and max of SE_g, EE_g, SE_a, EE_a over the calibration set (module docstring)."""
    lo = {k: np.inf for k in ("se_g", "ee_g", "se_a", "ee_a")}
    hi = {k: -np.inf for k in lo}
    dummy = TradeoffBounds(0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0)
    for i in range(n_instances):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([CALIBRATION_SEED, i])))
        draw = draw_large_scale(params, rng)
        coefficients = SinrCoefficients.from_lsf(draw["beta"], draw["rician_factor"], params.n_antennas,
                                                 params.n_pilot)
        power = calibration_powers(params, i)
        terms = tradeoff_terms(params, coefficients.sinr(power), power, draw["aerial"], dummy)
        for k in lo:
            lo[k] = min(lo[k], float(np.min(terms[k])))
            hi[k] = max(hi[k], float(np.max(terms[k])))
    return TradeoffBounds(lo["se_g"], hi["se_g"], lo["ee_g"], hi["ee_g"],
                          lo["se_a"], hi["se_a"], lo["ee_a"], hi["ee_a"])


@functools.lru_cache(maxsize=None)
def _calibrated(key: UrllcScenario) -> TradeoffBounds:
    return calibrate_bounds(key)


def bounds_of(params: UrllcScenario) -> TradeoffBounds:
    """The scenario's stored bounds, or its calibration (cached) when none are stored."""
    return params.bounds if params.bounds is not None else _calibrated(_calibration_key(params))


# --- scenarios ---------------------------------------------------------------------------

K_SWEEP = (10, 20, 30, 40, 50, 60)
ALPHA_SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
STRESS_K = (20, 40, 60)
STRESS_APS, STRESS_ANTENNAS = 16, 4
#: the alpha sweep shares the physics, hence the bounds, of this scenario
ALPHA_SWEEP_BASE = "k50"

#: Output of :func:`calibrate_bounds` per physical scenario: (SE_g min, max, EE_g min, max,
#: SE_a min, max, EE_a min, max), SE in bit/s/Hz, EE in bit/J. Regenerate with
#: ``python -m cfbench.problems.urllc`` after changing a scenario; tests check them.
CALIBRATED_BOUNDS: dict[str, TradeoffBounds] = {
    "k10": TradeoffBounds(1.45103646, 5.459905106, 13364557.67, 221068261.5, 1.356979202, 7.276730853, 15806472.99, 311180778.1),
    "k20": TradeoffBounds(1.723639074, 4.643481959, 11967538.0, 201045466.0, 1.872546378, 6.567800886, 15094805.29, 281326743.9),
    "k30": TradeoffBounds(1.642118831, 4.205431922, 10949692.11, 191305538.1, 2.000070904, 5.986987127, 12660254.61, 267232321.7),
    "k40": TradeoffBounds(1.584917914, 3.958452677, 9940347.142, 177138378.8, 1.683761033, 5.344038998, 12080794.17, 237437467.3),
    "k50": TradeoffBounds(1.562026579, 3.65968803, 9668291.559, 165282429.6, 1.758583607, 4.957951177, 11960878.72, 221501835.6),
    "k60": TradeoffBounds(1.395064223, 3.408252393, 9183781.752, 157067775.9, 1.628096924, 4.443363293, 10518740.43, 198068656.1),
    "stress-k20": TradeoffBounds(0.04767830605, 1.884386952, 2317284.864, 72830304.55, 0.1378263665, 3.241315044, 3500307.29, 117461688.4),
    "stress-k40": TradeoffBounds(0.09462542845, 1.198815341, 1369357.103, 49314411.33, 0.1991829678, 1.921928538, 1882328.69, 79816177.04),
    "stress-k60": TradeoffBounds(0.1229095053, 0.9308861407, 1241258.893, 38422633.62, 0.06979326953, 1.366887663, 805606.1464, 56362321.57),
    "tiny": TradeoffBounds(0.0, 2.077619945, 0.0, 84314120.69, 0.0, 4.01326701, 0.0, 172953511.9),
}


def build_scenarios(with_bounds: bool = True) -> dict[str, UrllcScenario]:
    """The registered scenarios; ``with_bounds=False`` leaves ``bounds=None`` (to recalibrate)."""
    s: dict[str, UrllcScenario] = {}
    for k in K_SWEEP:
        s[f"k{k}"] = UrllcScenario(k, description=f"Figs. 3-4: K = {k}, alpha = 0.25, M = 64 APs x L = 16")
    for a in ALPHA_SWEEP:
        s[f"alpha{a:g}"] = UrllcScenario(50, alpha_g=a, alpha_a=a,
                                         description=f"Figs. 5-6: K = 50, alpha_g = alpha_a = {a:g}, M = 64 x L = 16")
    for k in STRESS_K:
        s[f"stress-k{k}"] = UrllcScenario(
            k, n_aps=STRESS_APS, n_antennas=STRESS_ANTENNAS,
            description=f"reliability binds: M = {STRESS_APS} APs x L = {STRESS_ANTENNAS}, K = {k}, alpha = 0.25")
    s["tiny"] = UrllcScenario(4, n_aps=4, n_antennas=2, side_m=200.0,
                              description="test scenario: M = 4 APs x L = 2, K = 4, 200 m square")
    if with_bounds:
        for name, params in s.items():
            source = ALPHA_SWEEP_BASE if name.startswith("alpha") else name
            s[name] = dataclasses.replace(params, bounds=CALIBRATED_BOUNDS[source])
    return s


SCENARIOS = build_scenarios()


# --- the problem ---------------------------------------------------------------------------


#: instances whose reliability verdict :meth:`Urllc.unreachable_terminals` remembers (LRU)
UNREACHABLE_CACHE_SIZE = 1 << 16
_UNREACHABLE_CACHE: "OrderedDict[tuple, float]" = OrderedDict()


def _reliability_key(params: UrllcScenario, beta: np.ndarray, rician_factor: np.ndarray) -> tuple:
    """The scenario and the instance's arrays by shape and 64-bit hash of their bytes (an
    accidental match among the cache's 65,536 entries has odds below 1e-9)."""
    beta, rician_factor = (np.ascontiguousarray(a, dtype=float) for a in (beta, rician_factor))
    return params, beta.shape, hash(beta.tobytes()), hash(rician_factor.tobytes())


class Urllc(Problem):
    name = "urllc"
    title = "URLLC uplink EE-SE trade-off Omega, ground and aerial terminals"
    paper = "Yan et al.: EE-SE trade-off in deep learning based URLLC cell-free massive MIMO systems"
    objective_unit = ""  # Omega is dimensionless
    scenarios = SCENARIOS
    default_scenario = "k50"
    paper_iterative_solver = "sca"
    table_metrics = ("se_g", "se_a", "ee_g_kbit_per_j", "ee_a_kbit_per_j", "n_violating_eps")

    def decision_fields(self, scenario: str):
        p = self.scenario_params(scenario)
        return [
            DecisionField("power_w", (p.n_terminals,), lower=p.p_min_w, upper=p.p_max_w, unit="W",
                          description="p_k: transmit power of terminal k (pilot and data)")
        ]

    def sample_one(self, p: UrllcScenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
        draw = draw_large_scale(p, rng)
        h = channels.terminal_channels(rng, draw["beta"], draw["rician_factor"], p.n_antennas)  # (M, K, L)
        pilot_w = p.p_max_w if p.csi_pilot_power_w is None else p.csi_pilot_power_w
        draw["channel_estimate"] = channels.ls_channel_estimate(rng, h, pilot_w, p.n_pilot).astype(np.complex64)
        return draw

    def terms(self, instances: Instances, power_w: np.ndarray) -> dict[str, np.ndarray]:
        """SINR, eps, rates (n, K) and SE/EE/Omega (n,) of powers (n, K) through the closed form."""
        p = instances.params
        power_w = np.maximum(np.asarray(power_w, dtype=float), 1e-30)  # the physics needs p_k > 0
        sinr = SinrFactors.from_instances(instances).sinr(power_w)
        out = tradeoff_terms(p, sinr, power_w, instances.aerial)
        out["sinr"] = sinr
        return out

    def unreachable_terminals(self, instances: Instances) -> np.ndarray:
        """Per instance, the fewest terminals that miss eps_QoS under any power vector, (n,):
        0 where a fully reliable vector exists, NaN where the exact search did not close
        (:mod:`cfbench.problems.urllc_reliability`). The verdict depends on the instance only, so
        it is remembered per instance (keyed by the scenario parameters and a hash of the
        large-scale fading and Rician factors): every solver's decisions on an instance are
        judged against one computation."""
        keys = [_reliability_key(instances.params, instances.beta[i], instances.rician_factor[i])
                for i in range(len(instances))]
        todo = [i for i, key in enumerate(keys) if key not in _UNREACHABLE_CACHE]
        if todo:
            # the verdict reads the large-scale fading only: the channel estimates (hundreds of MB
            # for a batch at K = 50) are neither copied nor passed on
            lsf = dataclasses.replace(instances, arrays={k: instances.arrays[k] for k in LSF_ARRAYS})
            counts = self._unreachable_terminals(lsf if len(todo) == len(keys) else lsf[np.asarray(todo)])
            for i, count in zip(todo, counts):
                _UNREACHABLE_CACHE[keys[i]] = float(count)
            while len(_UNREACHABLE_CACHE) > UNREACHABLE_CACHE_SIZE:
                _UNREACHABLE_CACHE.popitem(last=False)
        return np.array([_UNREACHABLE_CACHE[key] for key in keys], dtype=float)

    def _unreachable_terminals(self, instances: Instances) -> np.ndarray:
        p = instances.params
        coefficients = SinrCoefficients.from_instances(instances)
        # the SINR at which eps_k is at the evaluator's own limit (eps_QoS plus its tolerance), so
        # that the count bounds n_violating_eps of every decision exactly
        threshold = _sinr_threshold(p.n_data, p.bits_per_packet, p.eps_qos * 10.0 ** EPS_TOLERANCE_DECADES)
        test = reliability.reliability_test(coefficients, threshold, p.p_min_w, p.p_max_w)
        out = np.where(test.status == reliability.REACHABLE, 0.0, np.nan)
        for i in np.flatnonzero(test.status == reliability.UNREACHABLE):
            found = reliability.largest_reliable_set(reliability.take_instance(coefficients, i),
                                                     threshold, p.p_min_w, p.p_max_w)
            out[i] = float(found.n_unreachable_low) if found.exact else np.nan
        return out

    def evaluate(self, instances: Instances, decision) -> Score:
        p = instances.params
        power = np.asarray(decision["power_w"], dtype=float)
        t = self.terms(instances, power)
        log10_eps = np.log10(np.maximum(t["eps"], 1e-300))
        violation = {
            "power_below_min_w": np.maximum(p.p_min_w - power.min(axis=1), 0.0),
            "power_above_max_w": np.maximum(power.max(axis=1) - p.p_max_w, 0.0),
            "delay_s": np.full(len(power), max(p.end_to_end_delay_s - p.delay_qos_s, 0.0)),
            "error_probability_decades": np.maximum(np.max(log10_eps, axis=1) - np.log10(p.eps_qos), 0.0),
        }
        feasible = (
            (violation["power_below_min_w"] <= POWER_TOLERANCE_REL * p.p_min_w)
            & (violation["power_above_max_w"] <= POWER_TOLERANCE_REL * p.p_max_w)
            & (violation["delay_s"] <= 0.0)
            & (violation["error_probability_decades"] <= EPS_TOLERANCE_DECADES)
            & np.isfinite(t["omega"])
        )
        return Score(
            objective=t["omega"],
            violation=violation,
            feasible=feasible,
            metrics={
                "omega": t["omega"],
                "se_g": t["se_g"],
                "se_a": t["se_a"],
                "ee_g_kbit_per_j": 1e-3 * t["ee_g"],
                "ee_a_kbit_per_j": 1e-3 * t["ee_a"],
                "worst_eps": np.max(t["eps"], axis=1),
                "n_violating_eps": np.sum(log10_eps - np.log10(p.eps_qos) > EPS_TOLERANCE_DECADES, axis=1).astype(float),
                "n_unreachable_eps": self.unreachable_terminals(instances),
                "mean_power_w": power.mean(axis=1),
            },
        )

    def report_plots(self, rows, manifest) -> list:
        """Per-terminal CDFs for ``cfbench report --html``: SE ``R_k`` and EE ``B R_k / (mu p_k +
        sigma)``, ground and aerial terminals apart (the per-terminal view behind the group means of
        Figs. 3-6), and the error probability ``eps_k`` against eps_QoS.

        The rows store group means only, so per-terminal values are recomputed: each instance's
        large-scale fading is drawn again from ``(scenario, seed, instance)`` (the first draws of
        :meth:`sample_one`, all the closed form needs) and the stored ``power_w`` goes through
        :meth:`terms`. The titles give the largest difference between the recomputed and the
        stored Omega, so a run made with other scenario parameters shows as such."""
        from matplotlib.figure import Figure

        from cfbench.report_html import ecdf, solver_colors

        ok = rows[(rows["status"] == "ok") & rows["decision_power_w"].notna()]
        if not len(ok):
            return []
        p = self.scenario_params(manifest["scenario"])
        seed = int(manifest["seed"])
        index = np.array(sorted(int(i) for i in ok["instance"].unique()))
        draws = [draw_large_scale(p, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, int(i)]))))
                 for i in index]
        arrays = {k: np.stack([d[k] for d in draws]) for k in ("beta", "rician_factor", "aerial")}
        instances = Instances(self.name, manifest["scenario"], seed, index, arrays, p)
        solvers = list(dict.fromkeys(ok["solver"]))
        colors = solver_colors(list(dict.fromkeys(rows["solver"])))
        values: dict[str, dict[str, np.ndarray]] = {}
        worst = 0.0
        for solver in solvers:
            g = ok[ok["solver"] == solver]
            sub = instances[np.searchsorted(index, g["instance"].to_numpy(int))]
            power = np.stack([np.asarray(v, dtype=float) for v in g["decision_power_w"]])
            t = self.terms(sub, power)
            consumed = um.consumed_power_w(power, p.amplifier_inefficiency, p.static_power_w)
            worst = max(worst, float(np.nanmax(np.abs(t["omega"] - g["objective"].to_numpy(float)), initial=0.0)))
            values[solver] = {"aerial": np.asarray(sub.aerial, dtype=bool), "se": t["rate"],
                              "ee": 1e-3 * p.bandwidth_hz * t["rate"] / consumed, "eps": t["eps"]}
        check = f"recomputed from stored powers; max |Omega - stored| = {worst:.1e}"

        def by_group(key: str, xlabel: str, log: bool, title: str):
            fig = Figure(figsize=(11, 4.2), layout="constrained")
            axes = fig.subplots(1, 2, sharex=True, sharey=True)
            for ax, (group, aerial) in zip(axes, (("ground terminals", False), ("aerial terminals", True))):
                for solver in solvers:
                    v = values[solver]
                    x, level = ecdf(v[key][v["aerial"] == aerial])
                    if len(x):
                        ax.step(x, level, where="post", color=colors[solver], label=solver)
                ax.set(title=group, xlabel=xlabel, xscale="log" if log else "linear")
                ax.grid(alpha=0.3, which="both")
            axes[0].set_ylabel("fraction of terminals")
            axes[0].legend(fontsize="small", loc="upper left")
            fig.suptitle(check, fontsize="small")
            return title, fig

        eps_fig = Figure(figsize=(9, 4.2), layout="constrained")
        ax = eps_fig.subplots()
        floor = 1e-4 * p.eps_qos  # eps_k reaches 1e-300; four decades below eps_QoS show what matters
        for solver in solvers:
            x, level = ecdf(np.clip(values[solver]["eps"].ravel(), floor, 1.0))
            ax.step(x, level, where="post", color=colors[solver], label=solver)
        ax.axvline(p.eps_qos, color="black", ls="--", lw=1, label="eps_QoS")
        ax.set(xscale="log", xlim=(floor / 2, 2.0), ylabel="fraction of terminals",
               xlabel=f"error probability eps_k (log scale; values below {floor:.0e} drawn at {floor:.0e})",
               title=f"per-terminal error probability; {check}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small", loc="upper left")
        return [by_group("se", "R_k (bit/s/Hz)", False, "Per-terminal SE CDF"),
                by_group("ee", "EE_k (kbit/J, log scale)", True, "Per-terminal EE CDF"),
                ("Per-terminal error probability CDF", eps_fig)]


@hookimpl
def cfbench_problems():
    return [Urllc]


def _print_calibration() -> None:  # pragma: no cover - maintenance helper
    for name, params in build_scenarios(with_bounds=False).items():
        if not name.startswith("alpha"):
            values = ", ".join(repr(float(f"{v:.10g}")) for v in dataclasses.astuple(calibrate_bounds(params)))
            print(f'    "{name}": TradeoffBounds({values}),')


if __name__ == "__main__":  # pragma: no cover
    _print_calibration()
