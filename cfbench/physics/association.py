"""AP-terminal association and pilot assignment of scalable (user-centric) cell-free networks."""

from __future__ import annotations

import numpy as np


def strongest_ap_association(gain: np.ndarray, n_serving: int) -> np.ndarray:
    """Terminal-centric clusters: each terminal is served by the ``n_serving`` APs
    with the largest large-scale fading (coexistence paper, Section VII, after
    [28]). ``gain`` is (..., M, K); returns a 0/1 array of the same shape with
    exactly ``min(n_serving, M)`` ones per terminal (ties broken by AP index)."""
    gain = np.asarray(gain, dtype=float)
    n_aps = gain.shape[-2]
    if not 1 <= n_serving:
        raise ValueError(f"each terminal needs at least one serving AP, got n_serving={n_serving}")
    rank = np.argsort(np.argsort(-gain, axis=-2, kind="stable"), axis=-2, kind="stable")
    return (rank < min(n_serving, n_aps)).astype(float)


def greedy_pilot_assignment(gain: np.ndarray, pilot_energy: np.ndarray, n_pilots: int) -> np.ndarray:
    """Pilot index of each terminal, shape (K,), for ``gain`` (M, K).

    Terminals are taken in order: the first ``n_pilots`` get distinct pilots;
    each next terminal takes the pilot with the least received pilot energy
    ``sum_{k on t} e_k gain_mk`` at its strongest AP (the greedy rule of
    Björnson and Sanguinetti, "Scalable cell-free massive MIMO", Alg. 1, with
    ``e_k = pilot_energy[k]``; ``shared/spec/mmtc.md`` fixes the order: users
    first, then devices).
    """
    gain = np.asarray(gain, dtype=float)
    n_terminals = gain.shape[1]
    energy = np.broadcast_to(np.asarray(pilot_energy, dtype=float), (n_terminals,))
    assignment = np.empty(n_terminals, dtype=np.int64)
    received = np.zeros((gain.shape[0], n_pilots))  # (M, tau_p)
    for k in range(n_terminals):
        if k < n_pilots:
            t = k
        else:
            t = int(np.argmin(received[int(np.argmax(gain[:, k]))]))
        assignment[k] = t
        received[:, t] += energy[k] * gain[:, k]
    return assignment


def lsf_fraction_association(gain: np.ndarray, fraction: float) -> np.ndarray:
    """Terminal-centric clusters by a fraction of the best AP: ``d_mk = 1`` iff
    ``gain_mk >= fraction * max_m' gain_m'k`` (the D-mMIMO paper's initial association
    with ``fraction = 0.95``, Section V and Scheme 4; the "within x dB of the master
    AP" rule of Björnson and Sanguinetti with ``fraction = 10^(-x/10)``).

    ``gain`` is (..., M, K); returns 0/1 floats of the same shape. Every terminal
    keeps at least its strongest AP. With ``fraction = 0.95`` (0.22 dB) and
    independent shadowing that is almost always the only one.
    """
    gain = np.asarray(gain, dtype=float)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return (gain >= fraction * gain.max(axis=-2, keepdims=True)).astype(float)
