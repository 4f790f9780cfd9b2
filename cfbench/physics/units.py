"""dB helpers and thermal noise power. SI units inside cfbench; dB only at the edges."""

from __future__ import annotations

import numpy as np

BOLTZMANN_DBM_PER_HZ = -174.0  # kT at 290 K in dBm/Hz


def db_to_linear(x_db):
    return 10.0 ** (np.asarray(x_db, dtype=float) / 10.0)


def linear_to_db(x):
    return 10.0 * np.log10(np.asarray(x, dtype=float))


def dbm_to_watt(x_dbm):
    return 10.0 ** ((np.asarray(x_dbm, dtype=float) - 30.0) / 10.0)


def watt_to_dbm(x_w):
    return 10.0 * np.log10(np.asarray(x_w, dtype=float)) + 30.0


def noise_power_w(bandwidth_hz: float, noise_figure_db: float) -> float:
    """Thermal noise power ``-174 dBm/Hz + 10 log10(B) + NF`` in watts."""
    return float(dbm_to_watt(BOLTZMANN_DBM_PER_HZ + 10.0 * np.log10(bandwidth_hz) + noise_figure_db))
