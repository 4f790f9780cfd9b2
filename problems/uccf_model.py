"""Signal model of the ``uccf`` problem: user-centric cell-free max-min SE, UL and DL.

"Linear attention for joint power optimization and user-centric clustering in
cell-free networks" (``shared/papers/uccf_linear_attention.txt``), Sects. II-III,
eqs. (1)-(10); the paper's equations and Table III were lost in conversion, so the
model is the one ``shared/spec/uccf.md`` reconstructs from the paper's references
(section numbers A.x and tags [D21], [BS20], [M22], [N17], [DER], [CHOSEN] below
refer to that file).

Units. Powers in mW; large-scale fading (LSF) ``beta_lk`` is the linear channel gain
divided by the noise power in mW, so ``p beta`` is an SNR and the noise is CN(0, 1)
per antenna [D21 code]. Arrays are AP-first, ``(..., L, K)``; instance arrays carry the
leading instance axis n.

Setup (A.1-A.2, :func:`draw_setup`). L APs with N antennas, uniform at random (or on a
grid) in a square of side ``side_m`` with wrap-around (shortest of the nine shifted
copies), K single-antenna UEs uniform; the APs are 10 m above the UEs. 3GPP UMi at
2 GHz [D21 (5.42)-(5.43)]::

    beta_lk [dB] = -30.5 - 36.7 log10(d_lk / 1 m) + F_lk - sigma^2 [dBm],
    d_lk = sqrt(d_horizontal^2 + 10^2),   F_lk ~ N(0, 4^2),
    E{F_lk F_li} = 4^2 2^(-delta_ki / 9 m)   (same AP, UE-UE distance on the torus),

independent across APs (:func:`cfbench.physics.large_scale.ue_correlated_shadowing_db`);
``sigma^2 = -174 + 10 log10(20 MHz) + 7 = -94.0 dBm``. Channels ``h_kl ~ CN(0, beta_kl I_N)``
(uncorrelated fading, the default of A.1), independent across APs and UEs.

Pilots and DCC (A.3, :func:`cfbench.physics.association.dcc_pilot_assignment`). tau_p
orthogonal pilots at power eta = p_max; master AP = strongest, pilot = least received
pilot power at the master, AP l serves the strongest UE of each pilot (the book's rule,
or within ``dcc_threshold_db`` of the UE's master [BS20]), with the [CHOSEN, checked]
fix of A.3 step 4 (UEs mastered by one AP on distinct pilots; a pilot held at l by a UE
mastered by l goes to no other UE there), so every AP serves at most tau_p UEs.

MMSE estimation with pilot sharing (A.4, [D21 (4.4)-(4.9)]). ``P_k`` = UEs on k's
pilot. AP l sees ``y_tl = sum_{i in P_t} sqrt(eta) tau_p h_il + sqrt(tau_p) n_l`` and
estimates ``hhat_kl = sqrt(eta) beta_kl / Psi_tl y_tl``,
``Psi_tl = tau_p eta sum_{i in P_t} beta_il + 1``, so (:func:`estimate_quality`)::

    hhat_kl ~ CN(0, gamma_kl I_N),   gamma_kl = eta tau_p beta_kl^2 / (tau_p eta sum_{i in P_k} beta_il + 1),

the error ``h_kl - hhat_kl`` is independent of it with variance ``beta_kl - gamma_kl``,
and copilot estimates are parallel: ``hhat_il = (beta_il / beta_kl) hhat_kl`` for
``i in P_k``. All APs estimate all UEs; a cluster only says which estimates are used.

UatF SINRs for a fixed combiner (A.5-A.6). For clusters ``D`` (D_lk = 1 if AP l serves
UE k) and combiners ``v_k`` (zero outside k's serving APs), with
``b_k = |E{v_k^H h_k}|^2``, ``c_ki = E{|v_k^H h_i|^2}`` (i != k),
``c_kk = E{|v_k^H h_k|^2} - b_k``, ``s_k = E{||v_k||^2}``::

    UL   SINR_k = p_k b_k / (sum_i p_i c_ki + s_k)                            [D21 Thm 5.2]
    DL   SINR_k = rho_k (b_k / s_k) / (sum_i rho_i c_ik / s_i + 1)            [D21 Thm 6.1]

The DL uses the normalised precoder ``w_k = sqrt(rho_k) v_k / sqrt(s_k)`` (UL-DL duality:
the combiner reused as precoder), so the DL terms are the UL ones with the interference
matrix transposed; AP l spends ``rho_k w_lk`` on UE k with ``w_lk = E{||v_kl||^2} / s_k``
and must keep ``sum_k w_lk rho_k <= rho_max`` (paper eq. (10), ``rho_k = sum_l rho_kl``).
SE = (tau_u / tau_c) log2(1 + SINR^ul), (tau_d / tau_c) log2(1 + SINR^dl).
:class:`UatfCoefficients` holds ``b`` (``signal``), ``c`` (``interference[k, i]``,
receiver k, interferer i), ``s`` (``noise``) and ``w`` (``ap_share``) for a batch.

MR closed forms (A.7 [DER], :func:`mr_coefficients`). With ``v_k = D_k hhat_k`` and
``G_lk = D_lk gamma_lk`` (equal pilot powers, so sqrt(eta_j / eta_k) = 1)::

    b_k  = N^2 (sum_l G_lk)^2
    c_kj = N sum_l G_lk beta_lj  +  [j in P_k \\ {k}] N^2 (sum_l G_lk beta_lj / beta_lk)^2
    s_k  = N sum_l G_lk,          w_lk = G_lk / sum_l' G_l'k

(the coherent copilot term from ``hhat_jl = (beta_lj / beta_lk) hhat_kl``; the diagonal
keeps only the non-coherent part, since ``Var ||hhat_kl||^2 + E|e^H hhat|^2 = N gamma beta``).
With N = 1 and all APs serving, b / N, c / N, s / N is Ngo et al.'s UL SINR [N17]. The DL
MR terms of A.7 (``at_k = N sum_l G_lk``, ``bt_ki = c_ik / s_i``) are these by the duality
above. Checked against Monte Carlo of the pilot model in ``tests/uccf/test_uccf_closed_forms.py``.

Centralized MMSE by Monte Carlo (A.5 recipe, :func:`uatf_monte_carlo`). Per realisation:
draw channels and pilot noise, estimate as above, form (with ``p_i = p_max`` for all i:
the combiner is computed once at full power and then held fixed during power control
[D21 Sec. 7 scripts]; labels are optimal *given* that combiner)::

    v_k = p (D_k (sum_i p hhat_i hhat_i^H + sum_i p C_i + I) D_k)^+ D_k hhat_k,

and accumulate ``h_i^H v_k``, ``|h_i^H v_k|^2`` and ``||v_kl||^2``. With uncorrelated
fading ``sum_i p C_il + I = lambda_l I_N``, ``lambda_l = p sum_i (beta_il - gamma_il) + 1``,
and Woodbury gives, on k's serving APs S_k,

    v_k = Lambda_S^-1 Hhat_S z_k,   (I / p + G_k) z_k = e_k,   G_k = sum_{l in S_k} Hhat_l^H Hhat_l / lambda_l,

one K x K solve per UE instead of an N|S_k| one, with the per-AP Gram matrices shared
by every cluster. The realisations come from the instance's ``mc_seed`` (common random
numbers: every clustering of an instance is judged on the same draws, so a solver that
computes the same coefficients gets exactly the evaluator's SINRs).

Max-min power (A.8, :func:`maxmin_closed_form`, [M22]). Both links are
``SINR_k = x_k / (M x + u)_k`` under ``max_j a_j^T x <= 1`` (:class:`MaxMinForm`):

- UL: ``M[k, i] = c_ki / b_k``, ``u_k = s_k / b_k``, ``a_j = e_j / p_max`` (K rows);
- DL: ``M[k, i] = c_ik s_k / (s_i b_k)``, ``u_k = s_k / b_k``, ``a_l = w_l / rho_max`` (L rows).

Then ``t* = 1 / max_j rho(M + u a_j^T)``, ``x* = t* (I - t* M)^-1 u``, every SINR equals
``t*``. Checked against the normalised fixed-point iteration [D21 Alg. 7.1/7.3]
(:func:`maxmin_fixed_point`) and bisection on ``rho(t M) < 1, max_j a_j^T x(t) <= 1`` [N17]
(:func:`maxmin_bisection`). A UE that no AP serves has SINR 0 whatever the powers: it
is left out (zero power, no interference) and ``t*`` is the max-min over the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfbench.physics.association import dcc_pilot_assignment
from cfbench.physics.geometry import distances_3d_m, grid_positions_m, uniform_positions_m
from cfbench.physics.large_scale import log_distance_gain, ue_correlated_shadowing_db
from cfbench.physics.units import noise_power_dbm

COMBINERS = ("mr", "mmse")
AP_LAYOUTS = ("random", "grid")


@dataclass(frozen=True)
class UccfScenario:
    """One parameter set; the spec's A.2 values are the defaults (units in names)."""

    n_aps: int = 16                          # L [CHOSEN: spec's default size]
    n_antennas: int = 4                      # N
    n_ues: int = 40                          # K
    side_m: float = 500.0                    # square side [CHOSEN]; 1000 at paper scale [D21]
    combiner: str = "mr"                     # "mr" (A.7 closed forms) or "mmse" (A.5 Monte Carlo)
    n_mc: int = 1000                         # Monte Carlo realisations per instance (mmse only) [D21]
    ap_layout: str = "random"                # "random" (uniform) [D21] or "grid"
    tau_c: int = 200                         # coherence block [D21 Sec. 7]
    tau_p: int = 10                          # pilots = max UEs per AP [D21 Sec. 7]
    tau_u: int = 95                          # UL data symbols [CHOSEN]
    tau_d: int = 95                          # DL data symbols [CHOSEN]
    p_max_mw: float = 100.0                  # max UL power [D21]
    pilot_power_mw: float = 100.0            # eta = p_max [D21]
    rho_max_mw: float = 200.0                # max DL power per AP [D21 Sec. 7; CHOSEN over 1 W]
    pathloss_intercept_db: float = -30.5     # 3GPP UMi at 2 GHz
    pathloss_exponent: float = 3.67
    height_difference_m: float = 10.0        # APs above UEs
    shadowing_std_db: float = 4.0
    shadowing_decorrelation_m: float = 9.0   # 2^(-delta / 9 m) across UEs
    bandwidth_hz: float = 20e6
    noise_figure_db: float = 7.0
    dcc_threshold_db: float | None = None    # None: the book's DCC; 40.0: the journal's [BS20]
    wrap_around: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.combiner not in COMBINERS:
            raise ValueError(f"combiner must be one of {COMBINERS}, got {self.combiner!r}")
        if self.ap_layout not in AP_LAYOUTS:
            raise ValueError(f"ap_layout must be one of {AP_LAYOUTS}, got {self.ap_layout!r}")
        if min(self.n_aps, self.n_antennas, self.n_ues, self.tau_p, self.n_mc) < 1:
            raise ValueError("n_aps, n_antennas, n_ues, tau_p and n_mc must be >= 1")
        if self.tau_p + self.tau_u + self.tau_d > self.tau_c:
            raise ValueError(f"need tau_p + tau_u + tau_d <= tau_c, got {self.tau_p}+{self.tau_u}+{self.tau_d} > {self.tau_c}")
        if self.n_ues > self.n_aps * self.tau_p:
            raise ValueError(f"K = {self.n_ues} UEs exceed L tau_p = {self.n_aps * self.tau_p}: some UE cannot be served")
        if self.ap_layout == "grid" and round(np.sqrt(self.n_aps)) ** 2 != self.n_aps:
            raise ValueError(f"a grid layout needs a square number of APs, got {self.n_aps}")

    @property
    def noise_dbm(self) -> float:
        """-94.0 dBm at the defaults (-174 dBm/Hz, 20 MHz, 7 dB)."""
        return noise_power_dbm(self.bandwidth_hz, self.noise_figure_db)

    @property
    def noise_mw(self) -> float:
        return float(10.0 ** (self.noise_dbm / 10.0))

    @property
    def pilot_energy(self) -> float:
        """``tau_p eta`` (mW x symbols over the noise), the estimation SNR factor."""
        return self.tau_p * self.pilot_power_mw

    @property
    def ul_pre_log(self) -> float:
        return self.tau_u / self.tau_c

    @property
    def dl_pre_log(self) -> float:
        return self.tau_d / self.tau_c


# --- setup, estimation -------------------------------------------------------------------------

def same_pilot(pilot: np.ndarray) -> np.ndarray:
    """``[i in P_k]`` as 0/1 floats, (..., K, K) (diagonal 1)."""
    pilot = np.asarray(pilot)
    return (pilot[..., :, None] == pilot[..., None, :]).astype(float)


def estimate_quality(beta: np.ndarray, pilot: np.ndarray, pilot_energy: float) -> np.ndarray:
    """``gamma_lk = e beta_lk^2 / (e sum_{i in P_k} beta_li + 1)``, ``e = tau_p eta`` (A.4), (..., L, K)."""
    beta = np.asarray(beta, dtype=float)
    psi = pilot_energy * np.einsum("...li,...ik->...lk", beta, same_pilot(pilot)) + 1.0
    return pilot_energy * beta ** 2 / psi


def draw_setup(params: UccfScenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One setup (A.1-A.4). Draw order: AP positions (random layout), UE positions,
    shadowing, the Monte Carlo seed. Arrays: ``beta`` (L, K) noise-normalised LSF per mW,
    ``gamma`` (L, K), ``pilot`` (K,), ``master_ap`` (K,), ``dcc_clusters`` (L, K) 0/1,
    ``ap_xy_m`` (L, 2), ``ue_xy_m`` (K, 2), ``distance_m`` (L, K) (3-D, wrap-around),
    ``mc_seed`` () int64 (the realisations of the mmse Monte Carlo)."""
    p = params
    if p.ap_layout == "grid":
        side = int(round(np.sqrt(p.n_aps)))
        ap_xy = grid_positions_m(side, side, p.side_m)
    else:
        ap_xy = uniform_positions_m(rng, p.n_aps, p.side_m)
    ue_xy = uniform_positions_m(rng, p.n_ues, p.side_m)
    wrap = p.side_m if p.wrap_around else None
    distance = distances_3d_m(ap_xy, ue_xy, p.height_difference_m, wrap_around_m=wrap)
    shadow_db = ue_correlated_shadowing_db(rng, ue_xy, p.n_aps, p.shadowing_std_db,
                                           p.shadowing_decorrelation_m, wrap)
    beta = log_distance_gain(distance, p.pathloss_intercept_db + shadow_db, p.pathloss_exponent) / p.noise_mw
    pilot, master, clusters = dcc_pilot_assignment(beta, p.pilot_power_mw, p.tau_p, p.dcc_threshold_db)
    gamma = estimate_quality(beta, pilot, p.pilot_energy)
    mc_seed = np.int64(rng.integers(0, 2 ** 62))
    return {"beta": beta, "gamma": gamma, "pilot": pilot, "master_ap": master, "dcc_clusters": clusters,
            "ap_xy_m": ap_xy, "ue_xy_m": ue_xy, "distance_m": distance, "mc_seed": mc_seed}


def all_ap_clusters(instances) -> np.ndarray:
    """Every AP serves every UE ("Optimal CF"): ones of shape (n, L, K)."""
    return np.ones_like(np.asarray(instances.beta, dtype=float))


# --- UatF coefficients -----------------------------------------------------------------------------

@dataclass
class MaxMinForm:
    """``SINR_k = x_k / (M x + u)_k`` subject to ``max_j a_j^T x <= 1`` (A.8), batched:
    ``coupling`` M (n, K, K) >= 0, ``offset`` u (n, K) > 0, ``constraint`` a (n, J, K) >= 0;
    ``served`` (n, K) bool: UEs left out (False) have zero rows/columns and get x = 0."""

    coupling: np.ndarray
    offset: np.ndarray
    constraint: np.ndarray
    served: np.ndarray

    def sinr(self, x: np.ndarray) -> np.ndarray:
        q = np.einsum("nki,ni->nk", self.coupling, x) + self.offset
        return np.where(self.served, x / q, 0.0)


@dataclass
class UatfCoefficients:
    """UatF coefficients of a batch for fixed clusters and combiners (module docstring):
    ``signal`` b (n, K), ``interference`` c (n, K, K) with ``c[k, i]`` the power of UE i
    leaking through k's combiner (diagonal: k's own beamforming uncertainty), ``noise``
    s (n, K), ``ap_share`` w (n, L, K) (share of k's DL power spent by AP l; 0 off-cluster)."""

    signal: np.ndarray
    interference: np.ndarray
    noise: np.ndarray
    ap_share: np.ndarray

    @property
    def served(self) -> np.ndarray:
        return self.signal > 0

    def ul_sinr(self, p_mw: np.ndarray) -> np.ndarray:
        """``p_k b_k / (sum_i c_ki p_i + s_k)``, (n, K); 0 for an unserved UE."""
        p_mw = np.asarray(p_mw, dtype=float)
        denominator = np.einsum("nki,ni->nk", self.interference, p_mw) + self.noise
        return _safe_ratio(p_mw * self.signal, denominator)

    def dl_sinr(self, rho_mw: np.ndarray) -> np.ndarray:
        """``rho_k (b_k / s_k) / (sum_i rho_i c_ik / s_i + 1)``, (n, K); 0 for an unserved UE."""
        rho_mw = np.asarray(rho_mw, dtype=float)
        per_unit = _safe_ratio(rho_mw, self.noise)                                  # rho_i / s_i
        denominator = np.einsum("nik,ni->nk", self.interference, per_unit) + 1.0
        return _safe_ratio(per_unit * self.signal, denominator)

    def dl_ap_power_mw(self, rho_mw: np.ndarray) -> np.ndarray:
        """Transmit power of every AP, ``sum_k w_lk rho_k``, (n, L)."""
        return np.einsum("nlk,nk->nl", self.ap_share, np.asarray(rho_mw, dtype=float))

    def dl_link_power_mw(self, rho_mw: np.ndarray) -> np.ndarray:
        """Per-link DL powers ``rho_kl = rho_k w_lk`` (paper's rho_kl), (n, L, K)."""
        return self.ap_share * np.asarray(rho_mw, dtype=float)[:, None, :]

    def ul_maxmin_form(self, p_max_mw: float) -> MaxMinForm:
        served = self.served
        b = np.where(served, self.signal, 1.0)
        coupling = self.interference / b[:, :, None]
        offset = np.where(served, self.noise / b, 1.0)
        constraint = np.broadcast_to(np.eye(self.signal.shape[1]) / p_max_mw, self.interference.shape)
        return _left_out(coupling, offset, constraint, served)

    def dl_maxmin_form(self, rho_max_mw: float) -> MaxMinForm:
        served = self.served
        b = np.where(served, self.signal, 1.0)
        s = np.where(served, self.noise, 1.0)
        coupling = np.swapaxes(self.interference, 1, 2) * (s[:, :, None] / (s[:, None, :] * b[:, :, None]))
        offset = np.where(served, s / b, 1.0)
        return _left_out(coupling, offset, self.ap_share / rho_max_mw, served)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def _left_out(coupling, offset, constraint, served) -> MaxMinForm:
    both = served[:, :, None] & served[:, None, :]
    coupling = np.where(both, coupling, 0.0)
    constraint = np.where(served[:, None, :], constraint, 0.0)
    return MaxMinForm(coupling, offset, constraint, served)


def mr_coefficients(beta: np.ndarray, gamma: np.ndarray, pilot: np.ndarray, clusters: np.ndarray,
                    n_antennas: int) -> UatfCoefficients:
    """A.7 closed forms for a batch: ``beta``, ``gamma``, ``clusters`` (n, L, K) (0/1; any
    weights in [0, 1] give the bound for those LSFD weights), ``pilot`` (n, K). O(L K^2)."""
    beta = np.asarray(beta, dtype=float)
    N = float(n_antennas)
    g = np.asarray(clusters, dtype=float) * np.asarray(gamma, dtype=float)        # G_lk
    total = np.sum(g, axis=-2)                                                    # sum_l G_lk
    noncoherent = N * np.swapaxes(g, -1, -2) @ beta                               # N sum_l G_lk beta_lj
    coherent = np.swapaxes(g / beta, -1, -2) @ beta                               # sum_l G_lk beta_lj / beta_lk
    copilot = same_pilot(pilot) * (1.0 - np.eye(beta.shape[-1]))
    interference = noncoherent + N ** 2 * copilot * coherent ** 2
    share = _safe_ratio(g, total[..., None, :])
    return UatfCoefficients(N ** 2 * total ** 2, interference, N * total, share)


def combiners(hhat: np.ndarray, clusters: np.ndarray, lam: np.ndarray, power_mw: float,
              combiner: str = "mmse") -> np.ndarray:
    """Combiners ``v_k`` (r, L, N, K), zero outside k's serving APs, for estimates ``hhat``
    (r, L, N, K), clusters (L, K) and ``lam`` (L,) = ``p sum_i (beta_il - gamma_il) + 1``:
    MR ``D_k hhat_k`` or centralized MMSE
    ``p (D_k (p Hhat Hhat^H + Lambda) D_k)^+ D_k hhat_k`` by the Woodbury form of the module
    docstring (the pseudo-inverse acts on the served block only)."""
    clusters = np.asarray(clusters, dtype=float)
    if combiner == "mr":
        return clusters[None, :, None, :] * hhat
    r, L, N, K = hhat.shape
    served = clusters > 0
    m_max = N * int(served.sum(axis=0).max())
    columns, group = np.unique(served, axis=1, return_inverse=True)
    group = np.ravel(group)
    if m_max <= K and columns.shape[1] > 1:
        # direct: one N|S_k| x N|S_k| solve per UE, padded with identity to the largest cluster
        flat = hhat.reshape(r, L * N, K)
        a = power_mw * flat @ np.swapaxes(flat.conj(), -1, -2)
        a[:, np.arange(L * N), np.arange(L * N)] += np.repeat(lam, N)
        antenna = np.repeat(served, N, axis=0)                                     # (L N, K)
        order = np.argsort(~antenna, axis=0, kind="stable")[:m_max].T              # (K, m): served first
        valid = np.take_along_axis(antenna.T, order, axis=1)                       # (K, m)
        block = a[:, order[:, :, None], order[:, None, :]]                         # (r, K, m, m)
        both = valid[:, :, None] & valid[:, None, :]
        block = np.where(both, block, np.eye(m_max))
        rhs = np.where(valid, flat[:, order, np.arange(K)[:, None]], 0.0)          # (r, K, m)
        sub = power_mw * np.linalg.solve(block, rhs[..., None])[..., 0]
        v = np.zeros((r, L * N, K), dtype=complex)
        k_idx, j_idx = np.nonzero(valid)
        v[:, order[k_idx, j_idx], k_idx] = sub[:, k_idx, j_idx]
        return v.reshape(r, L, N, K)
    # Woodbury: (I / p + G_k) z_k = e_k with G_k summed from per-AP Gram matrices
    eye = np.eye(K)
    scaled = hhat / np.sqrt(lam)[None, :, None, None]
    gram = np.swapaxes(scaled.conj(), -1, -2) @ scaled                           # (r, L, K, K)
    flat = np.ascontiguousarray(gram).reshape(r, L, K * K).view(float)           # (r, L, 2 K^2)
    n_groups = columns.shape[1]
    per_group = (columns.T.astype(float) @ flat).view(complex).reshape(r, n_groups, K, K)
    system = per_group + eye / power_mw
    if 3 * n_groups < K:   # few distinct clusters (all APs: one): invert once per cluster
        z = np.linalg.inv(system)[:, group, :, np.arange(K)]                     # (K, r, K): column k
        z = np.moveaxis(z, 0, 1)                                                  # (r, K, K): z[:, k] = z_k
    else:
        z = np.linalg.solve(system[:, group], np.broadcast_to(eye[:, :, None], (r, K, K, 1)))[..., 0]
    v = (hhat / lam[None, :, None, None]) @ np.swapaxes(z, -1, -2)[:, None]       # Hhat z_k / lambda
    return clusters[None, :, None, :] * v


def uatf_monte_carlo(beta: np.ndarray, pilot: np.ndarray, clusters: np.ndarray, n_antennas: int,
                     tau_p: int, pilot_power_mw: float, combiner_power_mw: float, n_mc: int,
                     rng: np.random.Generator, combiner: str = "mmse", chunk: int = 16) -> UatfCoefficients:
    """UatF coefficients of one setup by Monte Carlo of the pilot and data model (A.4-A.6):
    ``beta``, ``clusters`` (L, K), ``pilot`` (K,); returns coefficients with a batch axis of 1.

    ``combiner="mmse"``: centralized MMSE on each UE's serving APs at powers
    ``combiner_power_mw`` (the module docstring's Woodbury form); ``"mr"``: ``v_k = D_k hhat_k``
    (then the coefficients estimate the A.7 closed forms). Realisations are drawn in chunks
    of ``chunk``: channels (chunk, L, N, K), then pilot noise (chunk, L, N, tau_p), as
    standard normal pairs."""
    if combiner not in COMBINERS:
        raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
    beta = np.asarray(beta, dtype=float)
    clusters = np.asarray(clusters, dtype=float)
    pilot = np.asarray(pilot)
    L, K = beta.shape
    N = int(n_antennas)
    pilot_energy = tau_p * pilot_power_mw
    n_pilots = max(int(tau_p), int(pilot.max()) + 1)
    one_hot = (pilot[:, None] == np.arange(n_pilots)).astype(float)                 # (K, T)
    psi = pilot_energy * beta @ one_hot + 1.0                                       # (L, T)
    estimate_gain = np.sqrt(pilot_power_mw) * beta / psi[:, pilot]                  # (L, K)
    gamma = estimate_quality(beta, pilot, pilot_energy)
    lam = combiner_power_mw * np.sum(beta - gamma, axis=1) + 1.0                     # (L,)
    sum_e1 = np.zeros((K, K), dtype=complex)
    sum_e2 = np.zeros((K, K))
    sum_e3 = np.zeros((L, K))
    done = 0
    while done < n_mc:
        r = min(chunk, n_mc - done)
        h = (rng.standard_normal((r, L, N, K)) + 1j * rng.standard_normal((r, L, N, K))) \
            * np.sqrt(beta / 2.0)[None, :, None, :]
        noise = (rng.standard_normal((r, L, N, n_pilots)) + 1j * rng.standard_normal((r, L, N, n_pilots))) / np.sqrt(2)
        y = np.sqrt(pilot_power_mw) * tau_p * (h @ one_hot) + np.sqrt(tau_p) * noise     # (r, L, N, T)
        hhat = estimate_gain[None, :, None, :] * y[..., pilot]                          # (r, L, N, K)
        v = combiners(hhat, clusters, lam, combiner_power_mw, combiner)
        e1 = np.swapaxes(h.reshape(r, L * N, K).conj(), -1, -2) @ v.reshape(r, L * N, K)   # [i, k] = h_i^H v_k
        sum_e1 += e1.sum(axis=0)
        sum_e2 += (np.abs(e1) ** 2).sum(axis=0)
        sum_e3 += (np.abs(v) ** 2).sum(axis=(0, 2))
        done += r
    e1, e2, e3 = sum_e1 / n_mc, sum_e2 / n_mc, sum_e3 / n_mc
    signal = np.abs(np.diag(e1)) ** 2
    interference = e2.T.copy()                                                       # [k, i] = E|h_i^H v_k|^2
    interference[np.arange(K), np.arange(K)] -= signal
    noise_term = e3.sum(axis=0)
    share = _safe_ratio(e3, noise_term[None, :])
    return UatfCoefficients(signal[None], np.maximum(interference, 0.0)[None], noise_term[None], share[None])


def uatf_coefficients(instances, clusters: np.ndarray, combiner: str | None = None,
                      n_mc: int | None = None) -> UatfCoefficients:
    """The evaluator's coefficients for ``clusters`` (n, L, K) on a batch of ``uccf`` instances:
    A.7 closed forms for ``combiner="mr"``, the instance-seeded Monte Carlo (``mc_seed``) of
    centralized MMSE for ``"mmse"`` (defaults: the scenario's). Solvers call this to see
    exactly what the judge sees."""
    p: UccfScenario = instances.params
    combiner = combiner or p.combiner
    clusters = np.asarray(clusters, dtype=float)
    if combiner == "mr":
        return mr_coefficients(instances.beta, instances.gamma, instances.pilot, clusters, p.n_antennas)
    parts = [uatf_monte_carlo(instances.beta[i], instances.pilot[i], clusters[i], p.n_antennas, p.tau_p,
                              p.pilot_power_mw, p.p_max_mw, n_mc or p.n_mc,
                              np.random.Generator(np.random.PCG64(int(instances.mc_seed[i]))), combiner)
             for i in range(len(clusters))]
    return UatfCoefficients(*(np.concatenate([getattr(c, f) for c in parts])
                              for f in ("signal", "interference", "noise", "ap_share")))


# --- max-min power (A.8) -------------------------------------------------------------------------------

def _spectral_radius(matrices: np.ndarray) -> np.ndarray:
    return np.max(np.abs(np.linalg.eigvals(matrices)), axis=-1)


def maxmin_closed_form(form: MaxMinForm, n_candidates: int = 2,
                       screen_iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """[M22]: ``t* = 1 / max_j rho(M + u a_j^T)`` and ``x* = t* (I - t* M)^-1 u``; returns
    ``t*`` (n,) and ``x*`` (n, K) (rescaled so ``max_j a_j^T x* = 1`` to the last bit).

    Only the binding constraint matters (``t* = min_j t_j`` with ``a_j^T x(t_j) = 1``), so
    the K x K eigenvalue problems are solved for the ``n_candidates`` rows with the largest
    ``a_j^T x`` after ``screen_iterations`` steps of the fixed point, then ``x(t*)`` is
    checked against every row; an instance that fails the check (a wrong guess) is redone
    with every row. The answer is the exact closed form either way; the screen makes it
    about J / n_candidates times cheaper (J = K rows in the UL, L in the DL)."""
    M, u, a = form.coupling, form.offset, form.constraint
    n, K = u.shape
    J = a.shape[1]

    def closed_form(rows):                                                      # rows (n', c, K)
        rank_one = M_[:, None, :, :] + u_[:, None, :, None] * rows[:, :, None, :]
        t = 1.0 / np.max(_spectral_radius(rank_one), axis=1)
        x = t[:, None] * np.linalg.solve(np.eye(K) - t[:, None, None] * M_, u_[..., None])[..., 0]
        return t, x

    M_, u_ = M, u
    if n_candidates < J:
        x = np.ones_like(u) / np.max(a.sum(axis=2), axis=1)[:, None]
        for _ in range(screen_iterations):
            q = np.einsum("nki,ni->nk", M, x) + u
            x = q / np.max(np.einsum("njk,nk->nj", a, q), axis=1)[:, None]
        top = np.argsort(-np.einsum("njk,nk->nj", a, x), axis=1)[:, :n_candidates]
        t, x = closed_form(np.take_along_axis(a, top[:, :, None], axis=1))
        load = np.einsum("njk,nk->nj", a, x)
        redo = ~(np.all(x >= 0, axis=1) & (np.max(load, axis=1) <= 1.0 + 1e-10))
        if redo.any():
            M_, u_ = M[redo], u[redo]
            t[redo], x[redo] = closed_form(a[redo])
    else:
        t, x = closed_form(a)
    x = np.where(form.served, x, 0.0)
    x = x / np.max(np.einsum("njk,nk->nj", a, x), axis=1)[:, None]
    return t, x


def maxmin_fixed_point(form: MaxMinForm, rtol: float = 1e-12, max_iter: int = 200_000
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised fixed point [D21 Alg. 7.1/7.3]: ``q = M x + u``, ``x = q / max_j a_j^T q``,
    from ``x = 1 / max_j a_j^T 1``; stops when ``max SINR / min SINR - 1 < rtol`` per instance.
    Converges geometrically, at the rate of the second eigenvalue: tens to hundreds of steps
    on DCC-like clusters, but about 20,000 on one random 40 % clustering seen in testing.
    Returns ``t`` (min SINR), ``x`` and the iteration counts (n,)."""
    M, u, a = form.coupling, form.offset, form.constraint
    x = np.ones_like(u) / np.max(a.sum(axis=2), axis=1)[:, None]
    iters = np.zeros(len(u), dtype=np.int64)
    active = np.ones(len(u), dtype=bool)
    served = form.served
    for _ in range(max_iter):
        q = np.einsum("nki,ni->nk", M, x) + u
        new = q / np.max(np.einsum("njk,nk->nj", a, q), axis=1)[:, None]
        x = np.where(active[:, None], new, x)
        iters += active
        sinr = x / (np.einsum("nki,ni->nk", M, x) + u)
        spread = np.max(np.where(served, sinr, 0.0), axis=1) / np.min(np.where(served, sinr, np.inf), axis=1) - 1.0
        active &= spread >= rtol
        if not active.any():
            break
    sinr = form.sinr(x)
    return np.min(np.where(served, sinr, np.inf), axis=1), np.where(served, x, 0.0), iters


def maxmin_bisection(form: MaxMinForm, rtol: float = 1e-14, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Bisection on the target SINR t [N17]: t is achievable iff ``rho(t M) < 1`` and the
    minimum-power solution ``x(t) = t (I - t M)^-1 u`` has ``max_j a_j^T x(t) <= 1``."""
    M, u, a = form.coupling, form.offset, form.constraint
    K = u.shape[1]
    rho = _spectral_radius(M)
    cap = 1.0 / np.max(np.einsum("njk,nk->nj", a, u), axis=1)                      # t with M = 0
    hi = np.where(rho > 0, np.minimum(1.0 / np.where(rho > 0, rho, 1.0), cap), cap)
    lo = np.zeros_like(hi)

    def solution(t):
        return t[:, None] * np.linalg.solve(np.eye(K) - t[:, None, None] * M, u[..., None])[..., 0]

    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        x = solution(mid)
        ok = np.all(x >= 0, axis=1) & (np.max(np.einsum("njk,nk->nj", a, x), axis=1) <= 1.0)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        if np.all(hi - lo <= rtol * hi):
            break
    return lo, np.where(form.served, solution(lo), 0.0)


def maxmin_powers(coeffs: UatfCoefficients, p_max_mw: float, rho_max_mw: float) -> dict[str, np.ndarray]:
    """Closed-form max-min UL and DL powers for the clusters ``coeffs`` were computed for:
    ``ul_power_mw`` (n, K) in [0, p_max], ``dl_power_mw`` (n, K) (rho_k; per-AP budgets met
    with equality at the binding AP), and the common SINRs ``ul_sinr``, ``dl_sinr`` (n,)."""
    t_ul, p = maxmin_closed_form(coeffs.ul_maxmin_form(p_max_mw))
    t_dl, rho = maxmin_closed_form(coeffs.dl_maxmin_form(rho_max_mw))
    return {"ul_power_mw": np.clip(p, 0.0, p_max_mw), "dl_power_mw": np.maximum(rho, 0.0),
            "ul_sinr": t_ul, "dl_sinr": t_dl}


def maxmin_decision(instances, clusters: np.ndarray) -> dict[str, np.ndarray]:
    """A full ``uccf`` decision: ``clusters`` with their closed-form max-min UL and DL powers
    (the methods "Optimal CF" with :func:`all_ap_clusters`, "DCC" with ``dcc_clusters``,
    "Optimal UC-CF" with a model's clusters; also the labels of the learned model)."""
    p: UccfScenario = instances.params
    clusters = np.asarray(clusters, dtype=float)
    powers = maxmin_powers(uatf_coefficients(instances, clusters), p.p_max_mw, p.rho_max_mw)
    return {"clusters": clusters, "ul_power_mw": powers["ul_power_mw"], "dl_power_mw": powers["dl_power_mw"]}
