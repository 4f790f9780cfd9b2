"""Deployment geometry: AP grids, uniform terminal drops, 3-D distances."""

from __future__ import annotations

import numpy as np


def grid_positions_m(rows: int, cols: int, width_m: float, height_m: float | None = None) -> np.ndarray:
    """Cell-centred ``rows x cols`` grid over a ``width_m x height_m`` rectangle
    (x along columns), shape ``(rows * cols, 2)``, row-major."""
    height_m = width_m if height_m is None else height_m
    xs = (np.arange(cols) + 0.5) * width_m / cols
    ys = (np.arange(rows) + 0.5) * height_m / rows
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def uniform_positions_m(rng: np.random.Generator, n: int, width_m: float, height_m: float | None = None) -> np.ndarray:
    """``n`` points uniform in ``[0, width_m] x [0, height_m]``, shape ``(n, 2)``."""
    height_m = width_m if height_m is None else height_m
    return rng.uniform(0.0, 1.0, size=(n, 2)) * np.array([width_m, height_m])


def distances_3d_m(a_xy: np.ndarray, b_xy: np.ndarray, height_difference_m: float | np.ndarray = 0.0,
                   wrap_around_m: float | None = None) -> np.ndarray:
    """Distances between every point of ``a_xy`` (A, 2) and ``b_xy`` (B, 2), shape (A, B).

    ``height_difference_m`` adds a vertical offset (scalar or broadcastable to
    (A, B)); ``wrap_around_m`` (side of a square torus) takes the shortest of
    the nine shifted copies, the usual way to avoid edge effects.
    """
    diff = np.abs(a_xy[:, None, :] - b_xy[None, :, :])
    if wrap_around_m is not None:
        diff = np.minimum(diff, wrap_around_m - diff)
    horizontal_sq = np.sum(diff ** 2, axis=-1)
    return np.sqrt(horizontal_sq + np.asarray(height_difference_m, dtype=float) ** 2)
