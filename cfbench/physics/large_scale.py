"""Large-scale fading and small-scale Rayleigh channel draws."""

from __future__ import annotations

import numpy as np

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
