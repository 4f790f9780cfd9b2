"""Large-scale fading and small-scale Rayleigh channel draws.

Two path-loss families: the 3GPP UMi-style log-distance model
(:func:`log_distance_gain`) and the three-slope model of Ngo et al., "Cell-free
massive MIMO versus small cells" (2017), with the COST-231 Hata intercept
(:func:`hata_cost231_intercept_db`, :func:`three_slope_pathloss_db`,
:func:`three_slope_gain`) and that paper's correlated shadowing
(:func:`correlated_shadowing_db`). The three-slope forms follow the authors'
published code (``hienquocngo/Cell-Free-Massive-MIMO-Versus-Small-Cells``,
``UL_PowerAllocation_MaxMin_correlation.m``), as fixed by ``shared/spec/dmimo.md``, B.2.
"""

from __future__ import annotations

import numpy as np

from cfbench.physics.geometry import distances_3d_m
from cfbench.physics.units import db_to_linear


def log_distance_gain(distance_m: np.ndarray, intercept_db: float, exponent: float,
                      shadowing_std_db: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Linear channel gain ``10^((intercept_db - 10 exponent log10(d) + X) / 10)``,
    ``X ~ N(0, shadowing_std_db^2)`` i.i.d. per link (3GPP UMi-style log-distance
    model, e.g. ``-30.5 - 36.7 log10(d)`` in Björnson-Sanguinetti 2020)."""
    gain_db = intercept_db - 10.0 * exponent * np.log10(np.asarray(distance_m, dtype=float))
    if shadowing_std_db > 0:
        if rng is None:
            raise ValueError("shadowing needs an rng")
        gain_db = gain_db + shadowing_std_db * rng.standard_normal(np.shape(gain_db))
    return db_to_linear(gain_db)


def rayleigh_channels(rng: np.random.Generator, gain: np.ndarray, n_antennas: int) -> np.ndarray:
    """i.i.d. Rayleigh draws ``h ~ CN(0, gain I_N)``, shape ``gain.shape + (N,)``."""
    scale = np.sqrt(np.asarray(gain, dtype=float) / 2.0)[..., None]
    shape = np.shape(gain) + (n_antennas,)
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def hata_cost231_intercept_db(carrier_mhz: float, ap_height_m: float, ue_height_m: float) -> float:
    """COST-231 Hata loss at 1 km, the ``L`` of the three-slope model (Ngo et al. 2017, eq. 52)::

        L = 46.3 + 33.9 log10(f) - 13.82 log10(h_AP) - [(1.1 log10(f) - 0.7) h_u - (1.56 log10(f) - 0.8)]

    with ``f`` in MHz and heights in m; 140.715 dB at 1900 MHz, 15 m, 1.65 m.
    """
    log_f = np.log10(carrier_mhz)
    mobile_correction = (1.1 * log_f - 0.7) * ue_height_m - (1.56 * log_f - 0.8)
    return float(46.3 + 33.9 * log_f - 13.82 * np.log10(ap_height_m) - mobile_correction)


def three_slope_pathloss_db(distance_m, intercept_db: float, d0_m: float = 10.0, d1_m: float = 50.0) -> np.ndarray:
    """Three-slope path loss, as a gain in dB (negative, as Ngo et al. write PL), distances in m::

        PL = -L - 35 log10(d)                         d > d1
           = -L - 15 log10(d1) - 20 log10(d)          d0 < d <= d1
           = -L - 15 log10(d1) - 20 log10(d0)         d <= d0

    with ``d``, ``d0``, ``d1`` in km inside the logarithms (the model's unit). The
    slopes join continuously at ``d0`` and ``d1``. E.g. with ``L = 140.715`` dB:
    -105.7 dB at 100 m and -81.2 dB at or below 10 m. Shadowing is not included
    (see :func:`three_slope_gain`).
    """
    d_km = np.maximum(np.asarray(distance_m, dtype=float), 1e-12) / 1000.0
    d0_km, d1_km = d0_m / 1000.0, d1_m / 1000.0
    far = -intercept_db - 35.0 * np.log10(d_km)
    middle = -intercept_db - 15.0 * np.log10(d1_km) - 20.0 * np.log10(d_km)
    near = -intercept_db - 15.0 * np.log10(d1_km) - 20.0 * np.log10(d0_km)
    return np.where(d_km > d1_km, far, np.where(d_km > d0_km, middle, near))


def three_slope_gain(distance_m, intercept_db: float, d0_m: float = 10.0, d1_m: float = 50.0,
                     shadowing_db=None) -> np.ndarray:
    """Linear gain ``10^((PL + X) / 10)`` of the three-slope model, where the shadowing
    ``X`` (dB, broadcast against ``distance_m``) applies **only beyond** ``d1``: in the
    authors' code the two near slopes carry no shadowing."""
    gain_db = three_slope_pathloss_db(distance_m, intercept_db, d0_m, d1_m)
    if shadowing_db is not None:
        far = np.asarray(distance_m, dtype=float) > d1_m
        gain_db = gain_db + np.where(far, np.asarray(shadowing_db, dtype=float), 0.0)
    return db_to_linear(gain_db)


def _correlated_normal(rng: np.random.Generator, correlation: np.ndarray) -> np.ndarray:
    """One draw of N(0, C): Cholesky factor, or a symmetric square root with negative
    eigenvalues clipped when rounding (or a torus metric) makes C not positive definite."""
    try:
        factor = np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(correlation)
        factor = v * np.sqrt(np.clip(w, 0.0, None))
    scale = np.sqrt(np.sum(factor ** 2, axis=1))  # unit variance per entry, as the authors' code does
    return (factor @ rng.standard_normal(len(correlation))) / np.where(scale > 0, scale, 1.0)


def correlated_shadowing_db(rng: np.random.Generator, ap_xy_m: np.ndarray, ue_xy_m: np.ndarray, std_db: float,
                            delta: float = 0.5, decorrelation_m: float = 100.0,
                            wrap_around_m: float | None = None) -> np.ndarray:
    """Two-component shadowing of Ngo et al. 2017 (eq. 54), in dB, shape (M, K)::

        X_mk = std_db (sqrt(delta) a_m + sqrt(1 - delta) b_k),
        E{a_m a_m'} = 2^(-d(m, m') / d_decorr),  E{b_k b_k'} = 2^(-d(k, k') / d_decorr),

    ``a`` and ``b`` standard normal (AP and UE components, independent). Distances
    between APs (UEs) are taken on the same torus as the links when
    ``wrap_around_m`` is given, as in the authors' code. Draws ``a`` first, then ``b``.
    """
    def component(xy: np.ndarray) -> np.ndarray:
        d = distances_3d_m(xy, xy, 0.0, wrap_around_m=wrap_around_m)
        return _correlated_normal(rng, 2.0 ** (-d / decorrelation_m))

    a = component(np.asarray(ap_xy_m, dtype=float))
    b = component(np.asarray(ue_xy_m, dtype=float))
    return std_db * (np.sqrt(delta) * a[:, None] + np.sqrt(1.0 - delta) * b[None, :])


def ue_correlated_shadowing_db(rng: np.random.Generator, ue_xy_m: np.ndarray, n_aps: int, std_db: float,
                               decorrelation_m: float = 9.0, wrap_around_m: float | None = None) -> np.ndarray:
    """Shadowing of the 3GPP UMi setup of Demir, Björnson and Sanguinetti (2021, eqs.
    (5.42)-(5.43), ``generateSetup.m``), in dB, shape (L, K)::

        F_lk ~ N(0, std_db^2),   E{F_lk F_li} = std_db^2 2^(-delta_ki / decorrelation_m),

    correlated across UEs seen from the same AP (``delta_ki`` the UE-UE distance, on the
    torus when ``wrap_around_m`` is given, as in the book's code) and independent across
    APs. The book draws the UEs one by one from the conditional Gaussian; the joint law
    is the same, drawn here at once: ``F = std_db * (S Z)^T`` with ``S S^T`` the UE
    correlation matrix (Cholesky, or a clipped symmetric square root with unit-variance
    rows when the torus metric makes it indefinite) and ``Z`` (K, L) standard normal.
    """
    ue_xy_m = np.asarray(ue_xy_m, dtype=float)
    distance = distances_3d_m(ue_xy_m, ue_xy_m, 0.0, wrap_around_m=wrap_around_m)
    correlation = 2.0 ** (-distance / decorrelation_m)
    try:
        factor = np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(correlation)
        factor = v * np.sqrt(np.clip(w, 0.0, None))
        scale = np.sqrt(np.sum(factor ** 2, axis=1))
        factor = factor / np.where(scale > 0, scale, 1.0)[:, None]
    z = rng.standard_normal((len(ue_xy_m), n_aps))
    return std_db * (factor @ z).T
