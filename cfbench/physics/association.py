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
