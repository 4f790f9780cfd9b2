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


def dcc_pilot_assignment(gain: np.ndarray, pilot_energy, n_pilots: int,
                         threshold_db: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pilots, master APs and DCC clusters with at most ``n_pilots`` UEs per AP.

    ``gain`` is (L, K) (APs, UEs); returns ``pilot`` (K,) int, ``master`` (K,) int and
    ``clusters`` (L, K) 0/1 floats. The rule of Björnson and Sanguinetti, "Scalable
    cell-free massive MIMO" (Alg. 1 and Sec. V-A; Demir et al. 2021, Alg. 4.1,
    ``generateSetup.m``), with the load fix of ``shared/spec/uccf.md`` A.3 step 4
    [CHOSEN, checked]. UEs are taken in order k = 0..K-1:

    1. master ``l_k = argmax_l gain_lk``;
    2. pilot: among the pilots **not yet used by a UE mastered by** ``l_k`` (fix (a)),
       the first ``n_pilots`` UEs take pilot k; later ones the pilot with the least
       received pilot energy ``sum_{i < k on t} e_i gain_{l_k i}`` at the master. If all
       pilots are taken at ``l_k``, the master moves to the UE's next-strongest AP with
       a free pilot (the argmin then runs at that AP);
    3. clusters, once every UE has a pilot: AP l serves every UE it masters; then for
       each pilot t **not held at l by a UE mastered by l** (fix (b)), AP l serves
       ``k* = argmax_{k on t} gain_lk`` (the book's rule; with ``threshold_db`` only if
       ``gain_{l k*} >= 10^(-threshold_db/10) gain_{l_{k*} k*}``, i.e. within that many
       dB of its master AP, as in the journal paper with 40 dB).

    Every UE is served (by its master) and every AP serves at most one UE per pilot, so
    ``sum_k clusters_lk <= n_pilots`` exactly. Without the fix an AP could serve its own
    master UE and, on the same pilot, the strongest other UE. Needs ``K <= L n_pilots``
    (otherwise no AP has a free pilot for some UE). Ties go to the lower index.
    """
    gain = np.asarray(gain, dtype=float)
    n_aps, n_ues = gain.shape
    if n_ues > n_aps * n_pilots:
        raise ValueError(f"{n_ues} UEs cannot be served with {n_aps} APs x {n_pilots} pilots at one UE per pilot")
    energy = np.broadcast_to(np.asarray(pilot_energy, dtype=float), (n_ues,))
    pilot = np.empty(n_ues, dtype=np.int64)
    master = np.empty(n_ues, dtype=np.int64)
    held = np.zeros((n_aps, n_pilots), dtype=bool)   # pilot t used by a UE mastered by l
    received = np.zeros((n_aps, n_pilots))           # sum_{i on t} e_i gain_li
    for k in range(n_ues):
        for l in np.argsort(-gain[:, k], kind="stable"):
            if not held[l].all():
                break
        l = int(l)
        free = ~held[l]
        if k < n_pilots and free[k]:
            t = k
        else:
            t = int(np.argmin(np.where(free, received[l], np.inf)))
        pilot[k], master[k] = t, l
        held[l, t] = True
        received[:, t] += energy[k] * gain[:, k]
    clusters = np.zeros((n_aps, n_ues))
    clusters[master, np.arange(n_ues)] = 1.0
    master_gain = gain[master, np.arange(n_ues)]
    fraction = 0.0 if threshold_db is None else 10.0 ** (-threshold_db / 10.0)
    for t in range(n_pilots):
        on_t = np.flatnonzero(pilot == t)
        if on_t.size == 0:
            continue
        best = on_t[np.argmax(gain[:, on_t], axis=1)]               # k* per AP
        serve = ~held[:, t] & (gain[np.arange(n_aps), best] >= fraction * master_gain[best])
        clusters[np.flatnonzero(serve), best[serve]] = 1.0
    return pilot, master, clusters
