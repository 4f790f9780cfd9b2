"""Signal and power model of the ``dmimo`` problem: PFZF uplink SINR, power consumption, EE.

Khan, Karthik and Agnihotri, "Energy- and spectral-efficiency trade-off in
distributed massive-MIMO networks" (``shared/papers/dmimo_ee_se_association.txt``),
eqs. (1)-(11), with the values the paper defers to its references fixed by
``shared/spec/dmimo.md`` (section numbers B.x below refer to that file).

Units. Powers in mW, large-scale fading (LSF) ``beta_mt`` linear and divided by
the noise power in mW, so ``p beta`` is an SNR and the noise is CN(0, 1) per
antenna (spec, "Units"). Instance arrays keep the leading instance axis n:
``beta``, ``gamma``, ``strong`` are (n, M, T), ``pilot`` (n, T),
``n_strong_pilots`` (n, M).

Setup (B.1-B.2, :func:`draw_setup`). M APs with A antennas and T single-antenna
UEs uniform in a 1 km x 1 km square with wrap-around (shortest of the nine
shifted copies, 2-D distances); three-slope path loss with the COST-231 Hata
intercept L = 140.715 dB (:func:`cfbench.physics.large_scale.three_slope_pathloss_db`),
8 dB log-normal shadowing **only beyond d1 = 50 m** (i.i.d., or the two-component
correlated model of Ngo et al. with ``shadowing="correlated"``); noise
-203.975 dBW/Hz + 10 log10(20 MHz) + 9 dB = -91.96 dBm.

Pilots and estimation (B.3). L_p = 5 orthogonal pilots, reused (T > L_p), assigned
by the greedy master-AP rule (spec A.3 step 2,
:func:`cfbench.physics.association.greedy_pilot_assignment`) [CHOSEN: the
paper's own assignment, its ref. [2], is not available]. P_t is the set of UEs
on t's pilot (t included). With pilot power p_p, AP m correlates its received
pilots with pilot q and sees ``ybar_mq = sum_{i on q} sqrt(L_p p_p) g_mi + n``,
per-antenna variance ``Psi_mq = L_p p_p sum_{i on q} beta_mi + 1``; the MMSE
estimate ``ghat_mt = sqrt(L_p p_p) beta_mt / Psi_mq ybar_mq`` has per-antenna
mean square

    gamma_mt = L_p p_p beta_mt^2 / (L_p p_p sum_{t' in P_t} beta_mt' + 1)       (paper, Sec. II-A)

and copilot estimates are parallel: ``ghat_mi = (beta_mi / beta_mt) ghat_mt``. (The
paper calls gamma_mt ``E||ghat_mt||^2``; its formula is the per-antenna value,
``E||ghat_mt||^2 = A gamma_mt``, which is how eqs. (5)-(9) use it.)

PFZF groups (B.4, :func:`pfzf_strong_sets`, the rule of Zhang et al.'s code
``functionUEgrouping.m``). At AP m sort all T UEs by beta_mt; add them to S_m
while the cumulative share ``sum_{S_m} beta_mt / sum_t beta_mt`` stays <= 0.85
(the strongest always); then close S_m under pilot sharing; tau_Sm = number of
distinct pilots in S_m; W_m is the rest. Groups are formed over all T UEs
whether or not m serves them (B.8). PFZF needs A - tau_Sm >= 1; otherwise
[CHOSEN] the weakest strong pilots (by their strongest UE's beta_mt) are moved to
W_m until tau_Sm = A - 1 (never with A = 8, L_p = 5).

Combiners (B.5). At AP m a strong UE t gets zero-forcing on the tau_Sm
strong-pilot signals, ``v_mt = sqrt(L_p p_p) beta_mt Ybar_S (Ybar_S^H Ybar_S)^-1 e_q``
(``Ybar_S`` = A x tau_Sm matrix of the strong ``ybar_mq``), scaled so that
``E{v_mt^H g_mt} = gamma_mt``; a weak UE gets MR, ``v_mt = ghat_mt``, with
``E{v_mt^H g_mt} = A gamma_mt``. Complex-Wishart algebra gives
``E||v_mt||^2 = gamma_mt / (A - tau_Sm)`` (strong) and ``A gamma_mt`` (weak).
The CPU sums ``d_mt a_mt v_mt^H y_m`` over APs (eq. 2) with LSFD weights
a_mt = 1 [CHOSEN, B.6].

Per-link coefficients (:func:`link_coefficients`). Let

    s_mt = gamma_mt (t in S_m)   or  A gamma_mt (t in W_m)        mean gain E{v^H g_mt}
    n_mt = gamma_mt / (A - tau_Sm)   or  A gamma_mt               E||v_mt||^2
    x_mti = Var{v_mt^H g_mi}:
        t in W_m (MR):          n_mt beta_mi                           every i (copilots too:
                                (beta_mi/beta_mt)^2 Var||ghat||^2 + E||ghat||^2 (beta_mi - gamma_mi)
                                = A gamma_mt beta_mi since gamma_mi = gamma_mt beta_mi^2 / beta_mt^2)
        t in S_m, i in S_m:     n_mt (beta_mi - gamma_mi)              ZF removes ghat_mi, the error stays
        t in S_m, i in W_m:     n_mt beta_mi                           i's pilot is not a strong pilot
                                                                       (closure), so v_mt is independent of g_mi
    and E{v_mt^H g_mi} = s_mt beta_mi / beta_mt for i in P_t (0 otherwise).

With ``p_i = eta_i p_u`` and any (also relaxed) weights d in [0, 1]^{M x T}, the
use-and-then-forget bound (eq. 4) has

    DS_t        = p_t (sum_m d_mt s_mt)^2                                          (5)
    PC_t        = sum_{i in P_t \\ t} p_i (sum_m d_mt s_mt beta_mi / beta_mt)^2     (6)
    BU_t + NI_t = sum_m d_mt^2 sum_i p_i x_mti                                     (7)-(8)
    N_t         = sum_m d_mt^2 n_mt                                                (9)
    Gamma_t     = DS_t / (PC_t + BU_t + NI_t + N_t),     SE_t = w log2(1 + Gamma_t),

w = (1 - L_p / L_c) / 2. (The relaxed d is exactly the bound for LSFD weights
a_mt = d_mt, so it is physical, not only a relaxation.) Two readings differ from
the printed paper, both checked by Monte Carlo in
``tests/dmimo/test_dmimo_closed_forms.py``:

- ``interference="corrected"`` (default, B.5 [DER]): x_mti as above. The printed
  eq. (8) (and Zhang et al.'s code) uses ``beta_mi - gamma_mi`` for **every**
  interferer at an AP where t is strong; for a weak interferer i there the ZF
  does not remove anything and the term is ``beta_mi``. ``interference="paper"``
  reproduces the printed form: ``x_mti = n_mt (beta_mi - gamma_mi)`` for every i
  when t in S_m. It underestimates the interference, hence overstates SE.
- Eq. (6) writes ``sqrt(eta_t' beta_mt') / sqrt(eta_t beta_mt)``; with equal pilot
  powers the copilot ratio is ``beta_mi / beta_mt`` (pilot, not data, powers).
  Both variants use the latter.

NI is evaluated in factored form, ``sum_m d_mt^2 n_mt (q_m - [t in S_m] r_m)``
with ``q_m = sum_i p_i beta_mi`` and ``r_m = sum_i p_i gamma_mi [i in S_m]``
(corrected; every i for ``paper``), which costs O(M T) per instance;
:meth:`LinkCoefficients.interference_per_link` returns the full x_mti.

Power and EE (B.7, eq. 10, (11a)). With B = 20 MHz and sum SE in bit/s/Hz
(w included),

    P_T   = P_fix + P_c + B P_cpu^deco sum_t SE_t
    P_fix = T P_ue^c + M A P_ap^c + M P_fh^fix + P_cpu^fix
    P_c   = sum_t eta_t p_u / zeta + sum_{m,t} d_mt (A P_proc + P_sig + P_cpu^lsfd)
    EE    = B sum_t SE_t / P_T        [bit/J; reported in Mbit/J]

(the paper's P_T^c mixes the indices; this is the spec's corrected form). The
decoding term is in the EE denominator, as eq. (10)/(11a) write it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfbench.physics.association import greedy_pilot_assignment
from cfbench.physics.geometry import distances_3d_m, uniform_positions_m
from cfbench.physics.large_scale import (
    correlated_shadowing_db,
    hata_cost231_intercept_db,
    three_slope_gain,
)
from cfbench.physics.units import noise_power_dbm

INTERFERENCE_VARIANTS = ("corrected", "paper")
SHADOWING_MODELS = ("iid", "correlated", "none")
#: spectral efficiency below which a UE counts as silent (spec B.8), bit/s/Hz
SILENT_SE_BIT_PER_HZ = 1e-3


@dataclass(frozen=True)
class DmimoScenario:
    """One parameter set; the spec's B.1/B.2/B.7 values are the defaults (units in names)."""

    n_aps: int = 60                          # M [CHOSEN within the paper's sweep]
    n_ues: int = 30                          # T [CHOSEN within the paper's sweep]
    se_qos_bit_per_hz: float = 60.0          # SE^QoS, sum over UEs (B.1: 60 corrected, 70 paper)
    interference: str = "corrected"          # "corrected" (B.5, Monte Carlo-verified) or "paper" (eq. 8)
    p_u_mw: float = 100.0                    # p_u, maximum UL data power
    min_ue_se_bit_per_hz: float = 0.0        # optional per-UE SE floor (B.8; 0 = the paper's problem)
    shadowing: str = "iid"                   # "iid" N(0, 1), "correlated" (Ngo et al. eq. 54), "none"
    n_antennas: int = 8                      # A
    n_coherence: int = 200                   # L_c
    n_pilots: int = 5                        # L_p
    pilot_power_mw: float = 100.0            # p_p
    side_m: float = 1000.0
    wrap_around: bool = True
    carrier_mhz: float = 1900.0
    ap_height_m: float = 15.0
    ue_height_m: float = 1.65
    d0_m: float = 10.0
    d1_m: float = 50.0
    shadowing_std_db: float = 8.0
    shadowing_delta: float = 0.5             # correlated model: AP/UE component split
    shadowing_decorrelation_m: float = 100.0  # correlated model: 2^(-d / 100 m)
    bandwidth_hz: float = 20e6               # B
    noise_figure_db: float = 9.0
    noise_psd_dbm_per_hz: float = -173.975   # -203.975 dBW/Hz (Ngo et al. code)
    strong_share: float = 0.85               # PFZF cumulative LSF share (Zhang et al. code)
    # power model (B.7; C22 code, N18)
    pa_efficiency: float = 0.4               # zeta
    ue_circuit_w: float = 0.1                # P_ue^c per UE
    ap_circuit_per_antenna_w: float = 0.2    # P_ap^c per antenna
    fronthaul_fixed_per_ap_w: float = 0.825  # P_fh^fix per AP
    cpu_fixed_w: float = 5.0                 # P_cpu^fix
    processing_per_antenna_per_link_w: float = 0.8  # P_proc
    signalling_per_link_w: float = 0.01      # P_sig
    cpu_lsfd_per_link_w: float = 0.2         # P_cpu^lsfd
    cpu_decoding_j_per_bit: float = 0.8e-9   # P_cpu^deco (0.8 W per Gbit/s)
    description: str = ""

    def __post_init__(self) -> None:
        if self.interference not in INTERFERENCE_VARIANTS:
            raise ValueError(f"interference must be one of {INTERFERENCE_VARIANTS}, got {self.interference!r}")
        if self.shadowing not in SHADOWING_MODELS:
            raise ValueError(f"shadowing must be one of {SHADOWING_MODELS}, got {self.shadowing!r}")
        if self.n_aps < 1 or self.n_ues < 1 or self.n_antennas < 1 or self.n_pilots < 1:
            raise ValueError("n_aps, n_ues, n_antennas and n_pilots must be >= 1")
        if not 0 < self.n_pilots < self.n_coherence:
            raise ValueError(f"need 0 < n_pilots < n_coherence, got {self.n_pilots}, {self.n_coherence}")
        if self.p_u_mw <= 0 or self.pilot_power_mw <= 0:
            raise ValueError("p_u_mw and pilot_power_mw must be positive")
        if self.se_qos_bit_per_hz < 0 or self.min_ue_se_bit_per_hz < 0:
            raise ValueError("SE targets must be >= 0")

    # derived quantities (one place each)
    @property
    def pre_log(self) -> float:
        """``w = (1 - L_p / L_c) / 2`` (eq. 4): 0.4875 at the defaults."""
        return (1.0 - self.n_pilots / self.n_coherence) / 2.0

    @property
    def pathloss_intercept_db(self) -> float:
        """COST-231 Hata ``L`` (140.715 dB at the defaults)."""
        return hata_cost231_intercept_db(self.carrier_mhz, self.ap_height_m, self.ue_height_m)

    @property
    def noise_dbm(self) -> float:
        """-91.96 dBm at the defaults."""
        return noise_power_dbm(self.bandwidth_hz, self.noise_figure_db, self.noise_psd_dbm_per_hz)

    @property
    def noise_mw(self) -> float:
        return float(10.0 ** (self.noise_dbm / 10.0))

    @property
    def pilot_energy(self) -> float:
        """``L_p p_p`` in mW x symbols over the noise: the estimation SNR factor."""
        return self.n_pilots * self.pilot_power_mw

    @property
    def fixed_power_w(self) -> float:
        """``P_fix = T P_ue^c + M A P_ap^c + M P_fh^fix + P_cpu^fix`` (153.5 W at M = 60, T = 30)."""
        return (self.n_ues * self.ue_circuit_w + self.n_aps * self.n_antennas * self.ap_circuit_per_antenna_w
                + self.n_aps * self.fronthaul_fixed_per_ap_w + self.cpu_fixed_w)

    @property
    def link_power_w(self) -> float:
        """Power of one served AP-UE link, ``A P_proc + P_sig + P_cpu^lsfd`` (6.61 W)."""
        return (self.n_antennas * self.processing_per_antenna_per_link_w + self.signalling_per_link_w
                + self.cpu_lsfd_per_link_w)


# --- estimation and grouping -------------------------------------------------------------------

def same_pilot(pilot: np.ndarray) -> np.ndarray:
    """``[i in P_t]`` as 0/1 floats, shape (..., T, T) for pilot indices (..., T) (diagonal 1)."""
    pilot = np.asarray(pilot)
    return (pilot[..., :, None] == pilot[..., None, :]).astype(float)


def estimate_quality(beta: np.ndarray, pilot: np.ndarray, pilot_energy: float) -> np.ndarray:
    """``gamma_mt = e beta_mt^2 / (e sum_{t' in P_t} beta_mt' + 1)``, ``e = L_p p_p`` (B.3), (..., M, T)."""
    beta = np.asarray(beta, dtype=float)
    psi = pilot_energy * np.einsum("...mk,...tk->...mt", beta, same_pilot(pilot)) + 1.0
    return pilot_energy * beta ** 2 / psi


def pfzf_strong_sets(beta: np.ndarray, pilot: np.ndarray, n_pilots: int, n_antennas: int,
                     share: float = 0.85) -> tuple[np.ndarray, np.ndarray]:
    """Strong sets S_m of B.4: ``strong`` (..., M, T) bool (t in S_m) and ``n_strong_pilots``
    (..., M) int (tau_Sm).

    Per AP: the UEs in descending beta while the cumulative LSF share stays <= ``share``
    (the strongest always), closed under pilot sharing; then, where ``tau_Sm > A - 1``,
    only the ``A - 1`` strongest pilots (by their strongest UE) stay strong [CHOSEN].
    """
    beta = np.asarray(beta, dtype=float)
    pilot = np.asarray(pilot)
    order = np.argsort(-beta, axis=-1, kind="stable")
    ranked = np.take_along_axis(beta, order, axis=-1)
    cumulative_share = np.cumsum(ranked, axis=-1) / np.sum(beta, axis=-1, keepdims=True)
    chosen_ranked = cumulative_share <= share
    chosen_ranked[..., 0] = True
    chosen = np.zeros_like(chosen_ranked)
    np.put_along_axis(chosen, order, chosen_ranked, axis=-1)
    one_hot = (pilot[..., :, None] == np.arange(n_pilots)).astype(float)        # (..., T, L_p)
    # strength of each pilot at each AP: its strongest chosen UE (0 if none chosen)
    strength = np.max(np.where(chosen[..., :, :, None], beta[..., :, :, None] * one_hot[..., None, :, :], 0.0),
                      axis=-2)                                                     # (..., M, L_p)
    strong_pilot = strength > 0
    capacity = max(n_antennas - 1, 0)
    if np.any(strong_pilot.sum(axis=-1) > capacity):
        rank = np.argsort(np.argsort(-strength, axis=-1, kind="stable"), axis=-1, kind="stable")
        strong_pilot &= rank < capacity
    strong = np.einsum("...mq,...tq->...mt", strong_pilot.astype(float), one_hot) > 0
    return strong, strong_pilot.sum(axis=-1).astype(np.int64)


# --- per-link coefficients and the SINR ----------------------------------------------------------

def _lift(a: np.ndarray, n_extra: int) -> np.ndarray:
    """Insert ``n_extra`` axes after the instance axis (candidate axes of a decision)."""
    a = np.asarray(a)
    return a.reshape(a.shape[:1] + (1,) * n_extra + a.shape[1:])


@dataclass
class LinkCoefficients:
    """Per-link SINR coefficients of a batch (leading axis n); see the module docstring.

    ``signal`` s_mt, ``noise`` n_mt, ``beta`` and ``strong`` ([t in S_m]) are (n, M, T);
    ``zf_removed`` (n, M, T) is the gamma_mi a strong target's ZF removes from
    interferer i at AP m (``gamma_mi [i in S_m]`` corrected, ``gamma_mi`` paper), so
    that ``x_mti = n_mt (beta_mi - [t in S_m] zf_removed_mi)``; ``copilot`` (n, T, T)
    is ``[i in P_t \\ t]``. ``p_u_mw`` converts eta to ``p = eta p_u`` (mW).
    """

    signal: np.ndarray
    noise: np.ndarray
    beta: np.ndarray
    strong: np.ndarray
    zf_removed: np.ndarray
    copilot: np.ndarray
    p_u_mw: float
    interference: str = "corrected"

    def interference_per_link(self) -> np.ndarray:
        """``x_mti`` of B.5 (per unit power, noise-normalised), shape (n, M, T, T): O(M T^2) memory."""
        return self.noise[..., :, :, None] * (
            self.beta[..., :, None, :] - self.strong[..., :, :, None] * self.zf_removed[..., :, None, :])

    def coherent_gain(self, d: np.ndarray) -> np.ndarray:
        """``c_ti = sum_m d_mt s_mt beta_mi / beta_mt`` for every pair, (n, ..., T, T)
        (``c_tt = sum_m d_mt s_mt``; PC uses the copilot entries)."""
        d = np.asarray(d, dtype=float)
        extra = d.ndim - 3
        weighted = d * _lift(self.signal / self.beta, extra)
        return np.swapaxes(weighted, -1, -2) @ _lift(self.beta, extra)

    def fixed_association_form(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a fixed association ``d`` (n, M, T): ``Gamma_t = a_t p_t / (sum_i B_ti p_i + c_t)``
        with powers ``p`` in mW. Returns ``a`` (n, T), ``B`` (n, T, T) (PC, BU and NI
        per unit power of UE i, self term BU on the diagonal) and ``c`` (n, T) (N_t)."""
        d = np.asarray(d, dtype=float)
        weight = d ** 2 * self.noise
        a = np.sum(d * self.signal, axis=-2) ** 2
        coherent = self.copilot * self.coherent_gain(d) ** 2
        incoherent = (np.einsum("nmt,nmi->nti", weight, self.beta)
                      - np.einsum("nmt,nmi->nti", weight * self.strong, self.zf_removed))
        return a, coherent + incoherent, np.sum(weight, axis=-2)


def link_coefficients(beta: np.ndarray, gamma: np.ndarray, pilot: np.ndarray, strong: np.ndarray,
                      n_strong_pilots: np.ndarray, n_antennas: int, p_u_mw: float,
                      interference: str = "corrected") -> LinkCoefficients:
    """Coefficients of B.5 for a batch: ``beta``, ``gamma``, ``strong`` (n, M, T), ``pilot`` (n, T),
    ``n_strong_pilots`` (n, M) (tau_Sm). ``interference`` picks x_mti: ``"corrected"`` or
    ``"paper"`` (printed eq. 8)."""
    if interference not in INTERFERENCE_VARIANTS:
        raise ValueError(f"interference must be one of {INTERFERENCE_VARIANTS}, got {interference!r}")
    beta = np.asarray(beta, dtype=float)
    gamma = np.asarray(gamma, dtype=float)
    strong = np.asarray(strong, dtype=float)
    A = float(n_antennas)
    zf_dof = A - np.asarray(n_strong_pilots, dtype=float)[..., :, None]          # A - tau_Sm, (n, M, 1)
    if np.any((zf_dof < 1) & (strong > 0)):
        raise ValueError("PFZF needs A - tau_Sm >= 1 at every AP with strong UEs")
    signal = np.where(strong > 0, gamma, A * gamma)
    noise = np.where(strong > 0, gamma / np.maximum(zf_dof, 1.0), A * gamma)
    zf_removed = gamma * strong if interference == "corrected" else gamma
    copilot = same_pilot(pilot)
    copilot = copilot * (1.0 - np.eye(copilot.shape[-1]))
    return LinkCoefficients(signal, noise, beta, strong, zf_removed, copilot, float(p_u_mw), interference)


def sinr_terms(coeffs: LinkCoefficients, eta: np.ndarray, d: np.ndarray) -> dict[str, np.ndarray]:
    """DS, PC, NI (BU included) and N of B.5, each (n, ..., T), for ``eta`` (n, ..., T) in [0, 1]
    and association weights ``d`` (n, ..., M, T) in [0, 1] (binary or relaxed). Extra
    candidate axes between the instance axis and (M, T) broadcast."""
    eta = np.asarray(eta, dtype=float)
    d = np.asarray(d, dtype=float)
    extra = max(d.ndim - 3, eta.ndim - 2)
    d = d.reshape(d.shape[:1] + (1,) * (extra - (d.ndim - 3)) + d.shape[1:])
    eta = eta.reshape(eta.shape[:1] + (1,) * (extra - (eta.ndim - 2)) + eta.shape[1:])
    p = eta * coeffs.p_u_mw
    beta, noise, strong = (_lift(a, extra) for a in (coeffs.beta, coeffs.noise, coeffs.strong))
    zf_removed, copilot = _lift(coeffs.zf_removed, extra), _lift(coeffs.copilot, extra)
    c = coeffs.coherent_gain(d)                                                   # (n, ..., T, T)
    amplitude = np.sum(d * _lift(coeffs.signal, extra), axis=-2)                 # sum_m d_mt s_mt
    ds = p * amplitude ** 2
    pc = np.sum(copilot * c ** 2 * p[..., None, :], axis=-1)
    received = np.sum(beta * p[..., None, :], axis=-1)                            # q_m = sum_i p_i beta_mi
    removed = np.sum(zf_removed * p[..., None, :], axis=-1)                       # r_m
    weight = d ** 2 * noise
    ni = np.sum(weight * (received[..., :, None] - strong * removed[..., :, None]), axis=-2)
    return {"ds": ds, "pc": pc, "ni": ni, "noise": np.sum(weight, axis=-2)}


def sinr(coeffs: LinkCoefficients, eta: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``Gamma_t = DS_t / (PC_t + NI_t + N_t)``, (n, ..., T); 0 for a UE no AP serves."""
    t = sinr_terms(coeffs, eta, d)
    denominator = t["pc"] + t["ni"] + t["noise"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, t["ds"] / np.where(denominator > 0, denominator, 1.0), 0.0)


# --- power, EE -----------------------------------------------------------------------------------

def power_parts_w(params: DmimoScenario, eta: np.ndarray, d: np.ndarray,
                  sum_se_bit_per_hz: np.ndarray) -> dict[str, np.ndarray]:
    """B.7 in W, each (n, ...): ``fixed_w`` (P_fix), ``pa_w`` (sum eta p_u / zeta),
    ``links_w`` (sum_mt d_mt (A P_proc + P_sig + P_cpu^lsfd), linear in relaxed d),
    ``decoding_w`` (B P_cpu^deco sum SE) and ``total_w``."""
    eta = np.asarray(eta, dtype=float)
    d = np.asarray(d, dtype=float)
    sum_se = np.asarray(sum_se_bit_per_hz, dtype=float)
    pa = np.sum(eta, axis=-1) * params.p_u_mw * 1e-3 / params.pa_efficiency
    links = np.sum(d, axis=(-2, -1)) * params.link_power_w
    decoding = params.bandwidth_hz * params.cpu_decoding_j_per_bit * sum_se
    shape = np.broadcast_shapes(pa.shape, links.shape, decoding.shape)
    parts = {"fixed_w": np.full(shape, params.fixed_power_w), "pa_w": np.broadcast_to(pa, shape),
             "links_w": np.broadcast_to(links, shape), "decoding_w": np.broadcast_to(decoding, shape)}
    parts["total_w"] = parts["fixed_w"] + parts["pa_w"] + parts["links_w"] + parts["decoding_w"]
    return parts


def energy_efficiency_mbit_per_j(params: DmimoScenario, sum_se_bit_per_hz: np.ndarray,
                                 total_power_w: np.ndarray) -> np.ndarray:
    """``EE = B sum_t SE_t / P_T`` (eq. 10) in Mbit/J."""
    return 1e-6 * params.bandwidth_hz * np.asarray(sum_se_bit_per_hz, float) / np.asarray(total_power_w, float)


def performance(params: DmimoScenario, coeffs: LinkCoefficients, eta: np.ndarray, d: np.ndarray) -> dict:
    """SINR and SE per UE (n, ..., T), sum SE, power parts and EE (n, ...): the one place
    the objective is computed, shared by the evaluator and the solvers (relaxed d allowed)."""
    gamma_sinr = sinr(coeffs, eta, d)
    ue_se = params.pre_log * np.log2(1.0 + gamma_sinr)
    sum_se = np.sum(ue_se, axis=-1)
    power = power_parts_w(params, eta, d, sum_se)
    return {"sinr": gamma_sinr, "ue_se_bit_per_hz": ue_se, "sum_se_bit_per_hz": sum_se, **power,
            "ee_mbit_per_j": energy_efficiency_mbit_per_j(params, sum_se, power["total_w"])}


# --- instances -------------------------------------------------------------------------------------

def draw_setup(params: DmimoScenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One setup (B.1-B.4): AP and UE drops, LSF, pilots, estimation quality, PFZF groups.

    Draw order: AP positions, UE positions, shadowing. Arrays: ``beta`` (M, T) noise-normalised
    LSF per mW; ``gamma`` (M, T); ``pilot`` (T,); ``strong`` (M, T) 0/1; ``n_strong_pilots``
    (M,); ``ap_xy_m`` (M, 2), ``ue_xy_m`` (T, 2); ``distance_m`` (M, T) (wrap-around, 2-D).
    """
    p = params
    ap_xy = uniform_positions_m(rng, p.n_aps, p.side_m)
    ue_xy = uniform_positions_m(rng, p.n_ues, p.side_m)
    wrap = p.side_m if p.wrap_around else None
    distance = distances_3d_m(ap_xy, ue_xy, 0.0, wrap_around_m=wrap)
    if p.shadowing == "iid":
        shadow_db = p.shadowing_std_db * rng.standard_normal(distance.shape)
    elif p.shadowing == "correlated":
        shadow_db = correlated_shadowing_db(rng, ap_xy, ue_xy, p.shadowing_std_db, p.shadowing_delta,
                                            p.shadowing_decorrelation_m, wrap)
    else:
        shadow_db = None
    gain = three_slope_gain(distance, p.pathloss_intercept_db, p.d0_m, p.d1_m, shadow_db)
    beta = gain / p.noise_mw
    pilot = greedy_pilot_assignment(beta, np.ones(p.n_ues), p.n_pilots)
    gamma = estimate_quality(beta, pilot, p.pilot_energy)
    strong, n_strong_pilots = pfzf_strong_sets(beta, pilot, p.n_pilots, p.n_antennas, p.strong_share)
    return {"beta": beta, "gamma": gamma, "pilot": pilot, "strong": strong.astype(float),
            "n_strong_pilots": n_strong_pilots, "ap_xy_m": ap_xy, "ue_xy_m": ue_xy, "distance_m": distance}


def coefficients(instances, interference: str | None = None) -> LinkCoefficients:
    """Link coefficients of a batch of ``dmimo`` instances (the evaluator's and every solver's
    source of truth); ``interference`` overrides the scenario's variant."""
    p: DmimoScenario = instances.params
    return link_coefficients(instances.beta, instances.gamma, instances.pilot, instances.strong,
                             instances.n_strong_pilots, p.n_antennas, p.p_u_mw,
                             interference or p.interference)

