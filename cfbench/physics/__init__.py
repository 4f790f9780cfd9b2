"""Physics shared by every problem: units, geometry, large-scale fading.

Written once here and reused; each function cites the model it implements.
"""

from cfbench.physics.units import db_to_linear, dbm_to_watt, linear_to_db, noise_power_dbm, noise_power_w, watt_to_dbm
from cfbench.physics.geometry import distances_3d_m, grid_positions_m, uniform_positions_m
from cfbench.physics.large_scale import (
    correlated_shadowing_db,
    hata_cost231_intercept_db,
    log_distance_gain,
    rayleigh_channels,
    three_slope_gain,
    three_slope_pathloss_db,
    ue_correlated_shadowing_db,
)

__all__ = [
    "correlated_shadowing_db",
    "db_to_linear",
    "dbm_to_watt",
    "distances_3d_m",
    "grid_positions_m",
    "hata_cost231_intercept_db",
    "linear_to_db",
    "log_distance_gain",
    "noise_power_dbm",
    "noise_power_w",
    "rayleigh_channels",
    "three_slope_gain",
    "three_slope_pathloss_db",
    "ue_correlated_shadowing_db",
    "uniform_positions_m",
    "watt_to_dbm",
]
