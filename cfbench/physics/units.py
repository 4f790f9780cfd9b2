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


def noise_power_dbm(bandwidth_hz: float, noise_figure_db: float,
                    psd_dbm_per_hz: float = BOLTZMANN_DBM_PER_HZ) -> float:
    """Thermal noise power ``psd + 10 log10(B) + NF`` in dBm (``psd`` defaults to
    -174 dBm/Hz; Ngo et al. 2017 use kT = -203.975 dBW/Hz = -173.975 dBm/Hz, which
    with 20 MHz and NF = 9 dB gives -91.96 dBm)."""
    return float(psd_dbm_per_hz + 10.0 * np.log10(bandwidth_hz) + noise_figure_db)


def noise_power_w(bandwidth_hz: float, noise_figure_db: float,
                  psd_dbm_per_hz: float = BOLTZMANN_DBM_PER_HZ) -> float:
    """Thermal noise power ``psd + 10 log10(B) + NF`` in watts (see :func:`noise_power_dbm`)."""
    return float(dbm_to_watt(noise_power_dbm(bandwidth_hz, noise_figure_db, psd_dbm_per_hz)))
