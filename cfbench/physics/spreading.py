"""Spreading sequences: binary m-sequences and their cyclic shifts.

mMTC+ devices of the coexistence paper (Liesegang et al.,
``shared/papers/mmtc_embb_coexistence.txt``, eqs. 9-10 and Section VII)
spread one symbol over ``N = 2^n - 1`` PRBs with PN signatures generated from
m-sequences. Device ``d`` uses the ``d``-th cyclic shift of one m-sequence,
chips in {-1, +1} (unit modulus). The periodic autocorrelation of an
m-sequence is ``N`` at shift 0 and ``-1`` at every other shift, so two
devices on distinct shifts have ``|c_d^H c_k| = 1`` (normalised
cross-correlation ``-1/N``) and a device with itself ``c_d^H c_d = N``.
When there are more devices than shifts (``K_d > N``), shifts are reused
round robin and such pairs have ``|c_d^H c_k| = N``.
"""

from __future__ import annotations

import functools

import numpy as np


def _lfsr_period(taps: int, degree: int) -> int:
    """Period of the Fibonacci LFSR with feedback polynomial bits ``taps`` from state 1."""
    state, start, mask = 1, 1, (1 << degree) - 1
    for period in range(1, 1 << degree):
        bit = bin(state & taps).count("1") & 1
        state = ((state << 1) | bit) & mask
        if state == start:
            return period
    return 0


@functools.lru_cache(maxsize=None)
def m_sequence(length: int) -> np.ndarray:
    """One binary m-sequence of ``length = 2^n - 1`` chips as {-1, +1} floats.

    The feedback polynomial is the first (smallest) tap set whose LFSR has
    the full period ``2^n - 1`` (i.e. a primitive polynomial), found by search,
    so no table of polynomials is needed. ``length = 1`` gives ``[1]``.
    """
    degree = int(round(np.log2(length + 1)))
    if length < 1 or (1 << degree) - 1 != length:
        raise ValueError(f"m-sequence length must be 2^n - 1 (1, 3, 7, 15, ...), got {length}")
    if length == 1:
        return np.ones(1)
    for taps in range(1 << (degree - 1), 1 << degree):  # top tap set: the polynomial has degree n
        if _lfsr_period(taps, degree) == length:
            break
    else:  # pragma: no cover - a primitive polynomial exists for every degree
        raise RuntimeError(f"no primitive polynomial of degree {degree}")
    state, mask, bits = 1, (1 << degree) - 1, []
    for _ in range(length):
        bits.append(state & 1)
        bit = bin(state & taps).count("1") & 1
        state = ((state << 1) | bit) & mask
    return 1.0 - 2.0 * np.asarray(bits, dtype=float)


def signature_shifts(n_devices: int, length: int) -> np.ndarray:
    """Cyclic shift of each device: ``d mod N`` (distinct while ``K_d <= N``)."""
    return np.arange(n_devices) % length


def signatures(n_devices: int, length: int) -> np.ndarray:
    """Chips ``c_d[n]`` of every device, shape ``(K_d, N)``: cyclic shifts of one m-sequence."""
    base = m_sequence(length)
    return np.stack([np.roll(base, s) for s in signature_shifts(n_devices, length)])


@functools.lru_cache(maxsize=256)
def signature_cross_correlation_sq(n_devices: int, length: int) -> np.ndarray:
    """``|c_d^H c_k|^2`` for every pair, shape ``(K_d, K_d)``: ``N^2`` on the diagonal
    and for reused shifts, 1 for distinct shifts of an m-sequence (``N >= 3``). Remembered
    per (K_d, N), since every evaluation needs it; the array is read-only."""
    c = signatures(n_devices, length)
    x = np.abs(c @ c.T) ** 2
    x.setflags(write=False)
    return x
