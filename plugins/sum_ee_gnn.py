"""``gnn``: the GNN with nested SINRnet of Raghunath, Peng, Jorswieck, trained without labels.

Paper: ``shared/papers/sum_ee_downlink_gnn.txt`` (Sections III-V, Table I); problem (1)
with the spec's per-AP budget ``sum_k p_kl <= P_max``.

Graph (Section IV). Every AP is a node; node ``l`` holds its K x K matrix of
effective MRT gains ``H_l = [h_l,kj]`` (eq. 2; the instance stores them over the
noise power). Node features are K x K x C tensors, one C-vector per entry
``(k, j)`` (receiver k, beam j).

SINRnet layer (eq. 11). For entry ``(k, j)`` the output is the concatenation over
four channel categories ``c`` of the mean of ``ReLU(W^c F_{k'j'} + b^c)`` over the
entries ``(k', j')`` of the category, defined relative to the entry by the place
of the channels in the SINR:

1. useful signals: the diagonal entries ``(k, k)`` and ``(j, j)`` of the
   receiver and the beam of the entry (one entry when ``k = j``);
2. interference received by UE k: row k off the diagonal, ``(k, j'), j' != k``;
3. interference caused by beam j: column j off the diagonal, ``(k', j), k' != j``;
4. all interference channels: every off-diagonal entry.

A common permutation of the UEs (rows and columns alike) permutes these sets,
so the layer is permutation-equivariant over UEs, and it works for any K
(means, not sums; a category that is empty for K = 1 contributes zeros).

Message passing (eq. 10): ``x_l <- gamma(x_l, mean_{j != l} phi(x_j))``. Each
node's message ``phi(x_j)`` is computed once and broadcast (no edge feature and
no dependence on the receiving node, as the paper's "computed once and
broadcast"); the aggregator is the mean over the other APs; ``phi`` is one
SINRnet layer, ``gamma`` one SINRnet layer on the concatenation of ``x_l`` and the
aggregated message. The same functions at every node make the network
equivariant to permutations of the APs and size-agnostic: one model serves
every (K, L) (the shipped joint model is trained on the three Table II
configurations; at each of them the default is that model fine-tuned there).
``layers`` message-passing rounds of width ``4 * width``; the readout is a
linear map of each diagonal entry ``(k, k)`` of node l to two numbers
``z_a, z_w`` for link (k, l).

Input scaling (Section V). The gains span ten decades, so the input is
``(log10 h_l,kj - mu') / sigma'`` with ``mu``, ``sigma`` the mean and deviation of
``log10 h`` over the training instances and ``mu' = mu - eps``,
``sigma' = sigma - eps'`` (the paper's shifted standardisation; options
``input_mean_shift`` = eps and ``input_std_shift`` = eps', default 0: plain
standardisation of the log gains, since the paper does not give its values).
A second input channel marks the diagonal.

Output. ``a = (P_max / K) ReLU(z_a)`` (exact zeros possible) and the support
width ``w = b - a = (P_max / K) softplus(z_w)`` (the paper's two GNNs
``alpha_delta`` and ``beta_theta``, here two heads on one trunk). A power matrix
whose AP load ``sum_k p_kl`` exceeds ``P_max`` is scaled down on that AP, so
every output (sampled or not) is feasible. At inference the decision is the
lower end ``a`` (the paper's ``alpha_delta(H')``), scaled onto the budget. The
network runs in float64, so a batch and its instances one by one give the same
powers; option ``precision=float32`` runs it in float32 (1.3-1.6x faster in one
call on 1,024 instances; the same links on, the objective within 1e-5 relative,
tested), the support and the budget fit still in float64.

Compilation (option ``compile``, off by default). Eager torch writes every layer's K x K x 3w
block of ReLU outputs to memory and reads it back for the category sums (add, ReLU and three
sums: four passes over a block larger than the core's L2 cache at 15/15); ``torch.compile``
(inductor) fuses them into C++ loops that keep the block in registers, 1.6-2.6x faster for the
network alone. ``compile_network`` compiles in ``setup`` for the scenario's sizes (a minute or two
on this machine the first time, some 20 s once inductor's disk cache holds the kernels), so no
timed solve compiles (tested); the powers equal the eager ones to 1e-12 relative in float64
(tested), not bitwise, since the fused sums add in another order.

Unsupervised loss (Section III, eqs. 5-8). Per batch::

    L = -( mean_{n, s} J(H_n, fit(a_n + w_n * u_ns)) - kappa * mean_n 1^T w_n ),   u_ns ~ U(0, 1)^{K x L},

``samples_per_instance`` draws per instance (reparametrisation trick, eq. 5),
``psi = 1^T (b - a)`` (6), ``J`` from :mod:`cfbench.problems.sum_ee_torch`
(tested equal to the evaluator). kappa follows eq. (8) after every step:
0 for the first ``h`` steps, then ``+ dkappa`` if the mean support of the last
``h`` steps is <= the current support, else ``max(0, kappa - dkappa / 2)``.
Adam; the learning rate decays along a cosine from ``lr`` to ``lr_final`` over
all steps (Table I: 1e-3 -> 1e-7; the paper does not name its scheduler).
Batches never mix configurations. The epoch with the best mean validation EE
(at the deterministic output ``a``) is kept.

Ablations (option ``mode``): ``paper`` (the above), ``no-kappa`` (kappa = 0
throughout: no support regularisation) and ``deterministic`` (``b = a``, no
sampling: plain gradient ascent of J through the network). Option
``relu_grad=leaky`` (not in the paper) back-propagates through switched-off
links with slope 0.1; trained from scratch it drove every ``z_a`` below zero
while the support was still wide (``a = 0`` on every link by epoch 2, the EE
carried by the sampling alone); started from the trained 24-epoch model it
lowered the training objective from 8 to about 2.5 within one epoch and the
loss turned non-finite at epoch 11. It is
not used for any shipped weights. Steps with a non-finite loss are skipped
(``skipped_steps`` in the history).

Pruning (solver option ``prune=ues``, not in the paper; off by default). The network serves
too many UEs (at 5/10 it keeps 6.2 of 10 on where the best known solutions keep 4.8), so
``prune_ues`` then switches whole UEs off greedily, one at a time, while J rises (at most K
passes, each one call of J on the K candidates). J never falls and the budget still holds
(tested); it is a local search on the network's output, reported beside it, not instead.

Status (README, "Learned solver: gnn"): the joint model is this recipe at ``width=16`` trained
576 epochs on the three Table II configurations (27,648 steps on one core, in eight runs each
started from the previous one; the paper: 120K iterations); at each configuration the default
is the joint model fine-tuned 96 epochs on 3,072 instances of that configuration alone. On
1024 held-out instances per configuration the defaults reach 91.1 / 93.7 / 93.4 % of the
converged SCA's mean EE at 5/10, 10/10 and 15/15 (the joint model 90.2 / 93.1 / 93.1 %; 94.4 /
95.2 / 95.2 % with ``prune=ues``), feasible everywhere and more than 250x faster one instance
at a time. The 24-epoch width-8 model (``gnn-sum-ee-24ep.pt``) and its two ablations compare
the paper's idea at equal budget.

Data: ``samples`` + ``validation`` instances per scenario drawn by the
scenario's generator at seed ``TRAIN_SEED_OFFSET + seed`` (benchmark runs use
small seeds, so training never sees a benchmark instance). Weights:
``SHIPPED_WEIGHTS_BY_SCENARIO`` at the Table II configurations, ``SHIPPED_WEIGHTS`` (the joint
model) elsewhere; ``scripts/train_sum_ee_gnn.py`` retrains them with
``cfbench train --solver gnn --problem sum-ee ...``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from cfbench import Instances, Option, Solver, hookimpl
from cfbench.api import CfbenchError
from cfbench.learning import (TrainingLog, check_training_sizes, compile_for_inference, load_checkpoint, save_checkpoint,
                               seed_everything, training_options)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TABLE_II = ("5ap-10ue", "10ap-10ue", "15ap-15ue")
#: the joint model, trained on all three Table II configurations: the default for every other scenario
SHIPPED_WEIGHTS = "gnn-sum-ee.pt"
#: the joint model fine-tuned on one configuration each (module docstring, "Status"): the default there
SHIPPED_WEIGHTS_BY_SCENARIO = {s: f"gnn-sum-ee-{s}.pt" for s in TABLE_II}
#: instances for training come from seeds TRAIN_SEED_OFFSET + seed (disjoint from benchmark seeds)
TRAIN_SEED_OFFSET = 80_000_000
#: a batch is solved in chunks of about this many gain entries K x K x L (2 instances at 15/15, 8 at
#: 10/10): a forward's float64 activations then stay in the cache (one thread, 256 instances, the
#: factored layers, other core busy: 15ap-15ue 8.7 ms per instance in chunks of 65,536 entries,
#: 5.8 ms in chunks of 8192, 6.6-6.7 ms in 2048-4096; 10ap-10ue 3.1 -> 1.5 ms; 5ap-10ue 1.4 -> 0.95 ms)
CHUNK_ENTRIES = 8192     # in float64; twice as many in float32 (option ``precision``)
#: the same with ``compile=true``, whose fused kernels keep no K x K block in memory: the compiled network
#: alone, one thread, ms per instance at 1 / 2 / 4 instances per chunk, float64: 5ap-10ue 0.56 / 0.42 /
#: 0.45, 10ap-10ue 0.80 / 0.72 / 0.86, 15ap-15ue 1.76 / 2.70 / 3.00; float32 at 1 / 4 / 8: 5ap-10ue 0.84 /
#: 0.23 / 0.20, 10ap-10ue 0.99 / 0.38 / 0.46, 15ap-15ue 1.57 / 1.45 / 1.42 (results/latency/sum_ee_gnn_compile.md);
#: the chunks this gives are within 11 % of the best of these
COMPILED_CHUNK_ENTRIES = 2048
MODES = ("paper", "no-kappa", "deterministic")
BALANCES = ("none", "relative")
PRUNES = ("none", "ues")
#: the network's arithmetic (option ``precision``); the powers are fitted to the budget in float64 either way
PRECISIONS = ("float64", "float32")
RELU_GRADS = {"exact": 0.0, "leaky": 0.1}
#: floor of the gains before the log (off-diagonal MRT gains can be exactly orthogonal)
GAIN_FLOOR = 1e-20

TRAINING_OPTIONS = (
    Option("samples", int, 1024, "training instances per scenario (paper: 10 240 in total)"),
    Option("validation", int, 64, "validation instances per scenario (model selection)"),
    Option("epochs", int, 24, "passes over the training instances (24: gnn-sum-ee-24ep.pt; others: README)"),
    Option("batch_size", int, 64, "instances per step (Table I: 64)"),
    Option("samples_per_instance", int, 8, "draws u ~ U(0,1) per instance for the expectation (5)"),
    Option("lr", float, 1e-3, "initial Adam learning rate (Table I)"),
    Option("lr_final", float, 1e-7, "final learning rate of the cosine schedule (Table I)"),
    Option("dkappa", float, 1e-3, "step of kappa in (8) (Table I: learning rate for kappa)"),
    Option("h", int, 50, "steps with kappa = 0 and window of the support mean in (8)"),
    Option("mode", str, "paper", "paper | no-kappa (kappa = 0) | deterministic (b = a, no sampling)"),
    Option("relu_grad", str, "exact", "exact (the paper) | leaky: not in the paper, a gradient of slope 0.1 "
                                      "through switched-off links (forward unchanged)"),
    Option("balance", str, "none", "none (the paper: every batch's J as is) | relative: not in the paper, each "
                                   "configuration's J divided by the starting model's validation EE there"),
    Option("width", int, 8, "features per channel category (node features are 4 * width wide)"),
    Option("layers", int, 3, "message-passing rounds (10)"),
    Option("input_mean_shift", float, 0.0, "eps of Sect. V: mu' = mu - eps (log10 units)"),
    Option("input_std_shift", float, 0.0, "eps' of Sect. V: sigma' = sigma - eps' (log10 units)"),
    Option("init", str, None, "checkpoint to start from (fine-tuning)"),
)
DEFAULTS = {o.name: o.default for o in TRAINING_OPTIONS}


def _torch():
    import torch

    return torch


# --- the network ----------------------------------------------------------------------------

def build_network(width: int = 8, layers: int = 3):
    torch = _torch()
    nn = torch.nn

    def category_means(pre_diag, z2, z3, z4):
        """Eq. (11)'s four means of ReLU outputs in factored form ``(d, r, c, g)`` (see
        ``SINRnetLayer``), from the pre-activations at the diagonal entries ``(k, k)``,
        ``pre_diag`` (..., K, 4w), and the ReLU outputs of categories 2, 3 and 4 (outputs
        w..2w, 2w..3w, 3w..4w) at every entry, ``z2, z3, z4`` (..., K, K, w), from
        ``off_diagonal_blocks``. Category 1's block is only read at the diagonal, so it is not
        formed elsewhere; the diagonal terms that the row, column and off-diagonal means leave
        out are taken from ``pre_diag``, computed from the per-row terms (the same numbers up
        to rounding; a diagonal of the K x K tensors would cost a zero-filled K x K gradient in
        training)."""
        K = z2.shape[-2]
        n_line, n_all = max(K - 1, 1), max(K * (K - 1), 1)
        d1, d2, d3, d4 = torch.relu(pre_diag).split(width, dim=-1)                  # (..., K, w) each
        r2 = (z2.sum(dim=-2) - d2) / n_line                                        # row k off-diagonal
        c3 = (z3.sum(dim=-3) - d3) / n_line                                        # column j off-diagonal
        g4 = (z4.sum(dim=(-3, -2)) - d4.sum(dim=-2)) / n_all                      # every off-diagonal entry
        return d1.contiguous(), r2, c3, g4     # a strided d1 would pass its layout on to every later layer

    def diagonal(x):
        """Entries ``(k, k)`` of (..., K, K, C): (..., K, C)."""
        return torch.diagonal(x, dim1=-3, dim2=-2).transpose(-1, -2)

    def row_column_terms(f, w_d, w_r, w_c, w_g, bias):
        """``U_k``, ``V_j`` (..., K, 4w) of a linear map of the factored features ``f = (d, r, c, g)``:
        ``W [(d_k + d_j) / 2, r_k, c_j, g] + b = U_k + V_j`` with the constant in ``U``."""
        d, r, c, g = f
        half = 0.5 * nn.functional.linear(d, w_d)
        u = half + nn.functional.linear(r, w_r) + nn.functional.linear(g, w_g, bias).unsqueeze(-2)
        return u, half + nn.functional.linear(c, w_c)

    def off_diagonal_blocks(u, v, f=None, w_f=None):
        """The ReLU outputs of categories 2-4 at every entry ``(k, j)``, ``ReLU([W_f f_kj +] u_k + v_j)``
        (``u``, ``v`` (..., K, 4w); or the bias (4w,) as ``u`` and None as ``v`` with a genuine
        input ``f``), as three (..., K, K, w) tensors: views of one tensor at inference (fewer,
        larger operations), separate tensors while gradients are recorded (the gradient of a
        split tensor is concatenated in the backward pass, a fifth of a training step)."""
        blocks = ([slice(width, 4 * width)] if not torch.is_grad_enabled()
                  else [slice(i * width, (i + 1) * width) for i in (1, 2, 3)])
        pre = []
        for b in blocks:
            if f is None:
                p = u[..., :, None, b] + v[..., None, :, b]
            elif v is None:
                p = nn.functional.linear(f, w_f[b], u[b])
            else:
                p = nn.functional.linear(f, w_f[b])
                p += u[..., :, None, b]
                p += v[..., None, :, b]
            pre.append(torch.relu_(p))
        return pre[0].split(width, dim=-1) if len(pre) == 1 else pre

    class SINRnetLayer(nn.Module):
        """Eq. (11). Its output at entry (k, j) is ``[(d_k + d_j) / 2, r_k, c_j, g]``: the mean
        over category 1 ({(k,k), (j,j)}) of the first ReLU block, over category 2 (row k off the
        diagonal) of the second, category 3 (column j off the diagonal) of the third, category 4
        (all off-diagonal entries) of the fourth. It is kept in this factored form
        ``(d, r, c, g)`` (shapes (..., K, C) x 3 and (..., C)); a linear map of the entry's
        features is then ``U_k + V_j + const`` with ``U = W_d d / 2 + W_r r``,
        ``V = W_d d / 2 + W_c c``, ``const = W_g g + b`` -- the same numbers as ``W F_kj + b``
        on the materialised K x K x 4C tensor, at a fraction of the cost. Category 1's block is
        only read at the diagonal, so only K of its K^2 entries are formed.

        The first round's layers read the genuine K x K input ``x`` (its ``full`` map); its
        ``gamma`` reads ``[x, m]`` with ``m`` the aggregated message, itself factored, so
        ``W [x_kj, m_kj] + b = W_x x_kj + U_k + V_j + const`` with the columns of ``W`` that
        read ``m`` (never materialised)."""

        def __init__(self, c_in, message: bool = False) -> None:
            super().__init__()
            if isinstance(c_in, int):      # the first round: a genuine K x K x c_in input (and a message)
                self.full = nn.Linear(c_in + (4 * width if message else 0), 4 * width)
                self.n_raw = c_in
            else:                          # (C_d, C_r, C_c, C_g) of a factored input
                self.wd, self.wr, self.wc = (nn.Linear(c, 4 * width, bias=False) for c in c_in[:3])
                self.wg = nn.Linear(c_in[3], 4 * width)

        def forward(self, f, message=None):
            """``f`` (..., K, K, c_in) or factored; ``message`` the factored aggregated message
            that joins a genuine ``f`` (first round's gamma), else None."""
            if isinstance(f, tuple):
                u, v = row_column_terms(f, self.wd.weight, self.wr.weight, self.wc.weight, self.wg.weight,
                                        self.wg.bias)
                return category_means(u + v, *off_diagonal_blocks(u, v))
            weight, bias = self.full.weight, self.full.bias
            w_raw = weight[:, :self.n_raw]
            if message is None:
                return category_means(nn.functional.linear(diagonal(f), w_raw, bias),
                                      *off_diagonal_blocks(bias, None, f, w_raw))
            u, v = row_column_terms(message, *weight[:, self.n_raw:].split(width, dim=1), bias)
            return category_means(nn.functional.linear(diagonal(f), w_raw) + u + v,
                                  *off_diagonal_blocks(u, v, f, w_raw))

    def cat(*fs):
        return tuple(torch.cat(parts, dim=-1) for parts in zip(*fs))

    class MessagePassing(nn.Module):
        """Eq. (10) with broadcast messages: ``x_l <- gamma(x_l, mean_{j != l} phi(x_j))``."""

        def __init__(self, c_in) -> None:
            super().__init__()
            self.first = isinstance(c_in, int)
            self.phi = SINRnetLayer(c_in)
            self.gamma = SINRnetLayer(c_in, message=True) if self.first else SINRnetLayer(tuple(c + width for c in c_in))

        def forward(self, x):                                   # (B, L, K, K, C) or factored (B, L, ...)
            m = self.phi(x)                                     # once per node
            L = m[0].shape[1]
            agg = tuple((t.sum(dim=1, keepdim=True) - t) / max(L - 1, 1) for t in m)   # mean over other APs
            if self.first:                                      # the genuine input with the factored message
                return self.gamma(x, agg)
            return self.gamma(cat(x, agg))

    class SumEEGNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            factored = (width,) * 4
            self.rounds = nn.ModuleList([MessagePassing(2)] + [MessagePassing(factored) for _ in range(layers - 1)])
            self.readout = nn.Linear(4 * width, 2)

        def forward(self, x):
            """``x`` (B, L, K, K, 2) scaled inputs; returns ``z_a``, ``z_w`` (B, K, L)."""
            for r in self.rounds:
                x = r(x)
            d, r, c, g = x
            diag = torch.cat([d, r, c, g[..., None, :].expand(d.shape)], dim=-1)      # features at (k, k)
            z = self.readout(diag).permute(3, 0, 2, 1)                                   # (2, B, K, L)
            return z[0], z[1]

    return SumEEGNN()


def network_from_checkpoint(checkpoint: dict):
    config = checkpoint["model"]
    network = build_network(int(config["width"]), int(config["layers"]))
    network.load_state_dict(checkpoint["state_dict"])
    return network


def compile_network(network, n_ues: int, n_aps: int, chunk: int, dtype):
    """``network`` through ``torch.compile`` (inductor), compiled now for inputs of ``n_aps`` APs and
    ``n_ues`` UEs: one graph for a single instance (dynamo specialises a dimension of size 1) and,
    where ``chunk`` > 1, one for any batch of two or more (``dynamic=True``), so no later call of
    ``solve`` compiles. The fused C++ kernels compute each layer's ReLU blocks and their category
    sums without writing the K x K blocks to memory (how it compiles: ``compile_for_inference``)."""
    torch = _torch()
    return compile_for_inference("gnn", network, [(torch.zeros(n, n_aps, n_ues, n_ues, 2, dtype=dtype),)
                                                  for n in sorted({1, chunk})], dynamic=True)


# --- inputs and outputs -----------------------------------------------------------------------

def log_gains(gain_over_noise: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(np.asarray(gain_over_noise, dtype=float), GAIN_FLOOR))


def network_inputs(gain_over_noise: np.ndarray, stats: dict, dtype=None):
    """(B, L, K, K, 2): the shifted-standardised log10 gains and a diagonal marker."""
    torch = _torch()
    dtype = dtype or torch.float32
    x = (log_gains(gain_over_noise) - stats["mean"]) / stats["std"]
    K = x.shape[-1]
    diag = np.broadcast_to(np.eye(K), x.shape)
    return torch.as_tensor(np.stack([x, diag], axis=-1), dtype=dtype)


def input_statistics(gain_over_noise: np.ndarray, mean_shift: float, std_shift: float) -> dict:
    lg = log_gains(gain_over_noise)
    mu, sigma = float(lg.mean()), float(lg.std())
    if sigma - std_shift <= 0:
        raise CfbenchError(f"gnn training: input_std_shift must be < the deviation of log10 gains "
                           f"({sigma:.3g}), got {std_shift}")
    return {"mean": mu - mean_shift, "std": sigma - std_shift, "raw_mean": mu, "raw_std": sigma}


def support(z_a, z_w, params, leak: float = 0.0):
    """Lower end ``a`` and width ``w = b - a`` of the support, (B, K, L), in W. ``leak`` > 0
    keeps the forward value ``ReLU(z_a)`` (exact zeros) but back-propagates through
    ``z_a < 0`` with slope ``leak`` (training option ``relu_grad=leaky``)."""
    torch = _torch()
    scale = params.ap_power_budget_w / params.n_ues
    a = torch.relu(z_a)
    if leak > 0:
        below = leak * torch.clamp(z_a, max=0.0)
        a = a + (below - below.detach())      # adds exactly 0 forward, slope ``leak`` backward
    return scale * a, scale * torch.nn.functional.softplus(z_w)


def fit_budget_torch(p, budget: float):
    """Scale every AP whose load ``sum_k p_kl`` exceeds ``budget`` down onto it (differentiable)."""
    torch = _torch()
    load = p.sum(dim=-2, keepdim=True)
    return p * torch.clamp(budget / torch.clamp(load, min=1e-30), max=1.0)


def prune_ues(params, gains, power_w):
    """Greedy switch-off of whole UEs (option ``prune=ues``, not in the paper): while some UE's
    row set to zero raises J by more than 1e-12 (relative), zero the row that raises it most.
    Each pass evaluates the K candidates of every instance in one call of J (its sample axis);
    at most K passes. J never falls and zeros only lower AP loads, so the budget still holds."""
    torch = _torch()
    from cfbench.problems.sum_ee_torch import sum_ee

    n_ues = params.n_ues
    off = ~torch.eye(n_ues, dtype=torch.bool)[:, None, :, None]          # candidate k: row k zeroed
    power_w = power_w.clone()
    ee = sum_ee(params, gains, power_w)
    active = torch.arange(len(power_w))
    for _ in range(n_ues):
        candidates = power_w[active][None] * off                          # (K, n_active, K, L)
        best, k = sum_ee(params, gains[active], candidates).max(dim=0)
        better = best > ee[active] * (1 + 1e-12)
        if not bool(better.any()):
            break
        rows = active[better]
        power_w[rows] = candidates[k[better], better.nonzero().squeeze(1)]
        ee[rows] = best[better]
        active = rows                                                      # the others cannot improve again
    return power_w


# --- the solver ------------------------------------------------------------------------------

class SumEEGnn(Solver):
    name = "gnn"
    kind = "learned"
    problems = ("sum-ee",)
    description = ("GNN over the APs with nested SINRnet (eqs. 10-11), trained without labels on "
                   "U(a, b) with support regularisation (eqs. 5-8); outputs a")
    solves_batches = True
    options_spec = (Option("weights", str, None, f"checkpoint file (default: the shipped gnn-sum-ee-S.pt at the "
                           f"Table II configurations S, else {SHIPPED_WEIGHTS})"),
                    Option("prune", str, "none", "none (the paper: the network's a) | ues: not in the paper, then "
                           "switch whole UEs off one at a time while J rises", choices=PRUNES),
                    Option("precision", str, "float64", "float64: a batch and its instances one by one give the "
                           "same powers | float32: faster, powers within about 1e-6 of float64's", choices=PRECISIONS),
                    Option("compile", bool, False, "true: the network through torch.compile (C++ kernels that fuse "
                           "each layer's K x K blocks; needs a C++ compiler), compiled in setup: a one-off minute or "
                           "two, about 20 s once cached on disk; false: eager torch"))
    training_options_spec = TRAINING_OPTIONS

    @classmethod
    def artifacts(cls, scenario: str, options) -> dict[str, Path]:
        if options["weights"]:
            return {"weights": Path(options["weights"])}
        return {"weights": WEIGHTS_DIR / SHIPPED_WEIGHTS_BY_SCENARIO.get(scenario, SHIPPED_WEIGHTS)}

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        torch = _torch()
        self.checkpoint = load_checkpoint(self.artifacts(scenario, self.options)["weights"])
        self.dtype = getattr(torch, self.options["precision"])   # float64: batch-size independent
        self.network = network_from_checkpoint(self.checkpoint).to(self.dtype)
        self.network.eval()
        self._torch = torch
        if self.options["compile"]:
            p = problem.scenario_params(scenario)
            self.network = compile_network(self.network, p.n_ues, p.n_aps, self._chunk(p), self.dtype)

    def _chunk(self, p) -> int:
        """Instances per forward: about ``CHUNK_ENTRIES`` gain entries (``COMPILED_CHUNK_ENTRIES``
        with ``compile``), twice as many in float32 (the same bytes)."""
        entries = (COMPILED_CHUNK_ENTRIES if self.options["compile"] else CHUNK_ENTRIES) * 8 // self.dtype.itemsize
        return max(1, entries // (p.n_ues * p.n_ues * p.n_aps))

    def solve(self, instances: Instances):
        from cfbench.plugins.sum_ee_baselines import fit_budget

        torch, p = self._torch, instances.params
        gains = instances.gain_over_noise
        chunk = self._chunk(p)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(instances), chunk):   # instances are independent: the same powers
                x = network_inputs(gains[start:start + chunk], self.checkpoint["input"], self.dtype)
                z_a, z_w = self.network(x)
                a, _ = support(z_a.double(), z_w.double(), p)
                power = fit_budget_torch(a, p.ap_power_budget_w)
                if self.options["prune"] == "ues":
                    power = prune_ues(p, torch.as_tensor(gains[start:start + chunk]), power)
                parts.append(power.numpy())
        return {"power_w": fit_budget(np.concatenate(parts), p.ap_power_budget_w)}

    @classmethod
    def check_training(cls, problem, scenarios, cfg) -> None:
        check_training_cfg(cfg)

    @classmethod
    def train(cls, problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
              report: Callable[[dict], None] | None = None, **options) -> Path:
        return train(problem, scenarios, seed=seed, out=out, report=report, **options)


def check_training_cfg(cfg: dict) -> None:
    if cfg["mode"] not in MODES:
        raise CfbenchError(f"gnn training: mode must be one of {', '.join(MODES)}, got {cfg['mode']!r}")
    if cfg["balance"] not in BALANCES:
        raise CfbenchError(f"gnn training: balance must be one of {', '.join(BALANCES)}, got {cfg['balance']!r}")
    if cfg["relu_grad"] not in RELU_GRADS:
        raise CfbenchError(f"gnn training: relu_grad must be one of {', '.join(RELU_GRADS)}, got {cfg['relu_grad']!r}")
    for key in ("samples_per_instance", "width", "layers", "h"):
        if int(cfg[key]) < 1:
            raise CfbenchError(f"gnn training: {key} must be >= 1, got {cfg[key]}")
    if not (float(cfg["lr"]) > 0 and float(cfg["lr_final"]) >= 0):
        raise CfbenchError(f"gnn training: lr must be > 0 and lr_final >= 0, got {cfg['lr']}, {cfg['lr_final']}")
    if float(cfg["dkappa"]) < 0:
        raise CfbenchError(f"gnn training: dkappa must be >= 0, got {cfg['dkappa']}")
    check_training_sizes("gnn", n_train=int(cfg["samples"]), n_validation=int(cfg["validation"]),
                         batch_size=int(cfg["batch_size"]), epochs=int(cfg["epochs"]), validation_flag="validation")


# --- training --------------------------------------------------------------------------------

def kappa_update(kappa: float, psi_history: list[float], h: int, dkappa: float) -> float:
    """Eq. (8): kappa after a step whose support is ``psi_history[-1]``; 0 while there are <= h steps."""
    if len(psi_history) <= h:
        return 0.0
    window = psi_history[-h - 1:-1]
    if sum(window) / h <= psi_history[-1]:
        return kappa + dkappa
    return max(0.0, kappa - dkappa / 2.0)


def balance_weights(balance: str, start_ee: list[float]) -> list[float]:
    """Loss weight of each configuration: 1 (``none``, the paper), or (``relative``) the mean of the
    starting model's validation EEs over the configuration's own, so that a 1 % gain in J weighs the
    same in every configuration (J at 5/10 is about half of J at 15/15, and Adam follows the larger)."""
    if balance == "none":
        return [1.0] * len(start_ee)
    ee = np.asarray(start_ee, dtype=float)
    if not np.all(ee > 0):
        raise CfbenchError(f"gnn training: balance=relative needs a starting model with a positive validation EE "
                           f"on every configuration (got {ee.round(4).tolist()}); start from one with --init")
    return (ee.mean() / ee).tolist()


def step_terms(network, x, gains, params, mode: str, n_draws: int, generator=None, leak: float = 0.0):
    """The sampled objective and the support of one batch (Section III)."""
    torch = _torch()
    from cfbench.problems.sum_ee_torch import sum_ee

    a, w = support(*network(x), params, leak)
    budget = params.ap_power_budget_w
    if mode == "deterministic":
        w = torch.zeros_like(w)
        p = fit_budget_torch(a, budget)[None]
    else:
        u = torch.rand((n_draws,) + tuple(a.shape), generator=generator, dtype=a.dtype)
        p = fit_budget_torch(a + w * u, budget)
    j = sum_ee(params, gains, p)                       # (S, B)
    psi = w.sum(dim=(-2, -1))                          # (B,) = 1^T (b - a)
    return {"objective": j.mean(), "psi": psi.mean(), "a": a}


def train(problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
          report: Callable[[dict], None] | None = None, **options) -> Path:
    torch = _torch()
    from cfbench.problems.sum_ee_torch import sum_ee

    cfg = training_options("gnn", TRAINING_OPTIONS, options)
    check_training_cfg(cfg)
    seed_everything(seed)
    log = TrainingLog(report)
    n_train, n_val = int(cfg["samples"]), int(cfg["validation"])
    sampled = [problem.sample(s, n_train + n_val, TRAIN_SEED_OFFSET + seed) for s in scenarios]
    start = load_checkpoint(Path(cfg["init"])) if cfg["init"] else None
    if start is not None:
        network, stats = network_from_checkpoint(start), start["input"]
        cfg["width"], cfg["layers"] = start["model"]["width"], start["model"]["layers"]
    else:
        stats = input_statistics(np.concatenate([s.gain_over_noise[:n_train].ravel() for s in sampled]),
                                 float(cfg["input_mean_shift"]), float(cfg["input_std_shift"]))
        network = build_network(int(cfg["width"]), int(cfg["layers"]))
    data = []
    for s, inst in zip(scenarios, sampled):
        g = inst.gain_over_noise
        data.append({"scenario": s, "params": inst.params,
                     "x": network_inputs(g[:n_train], stats), "g": torch.as_tensor(g[:n_train], dtype=torch.float32),
                     "x_val": network_inputs(g[n_train:], stats), "g_val": torch.as_tensor(g[n_train:])})
    batch_size, mode = int(cfg["batch_size"]), cfg["mode"]
    steps_per_epoch = len(scenarios) * math.ceil(n_train / batch_size)
    total_steps = int(cfg["epochs"]) * steps_per_epoch
    optimiser = torch.optim.Adam(network.parameters(), lr=float(cfg["lr"]))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps, eta_min=float(cfg["lr_final"]))
    generator = torch.Generator().manual_seed(seed)
    kappa, psi_history = 0.0, []
    h, dkappa = int(cfg["h"]), float(cfg["dkappa"]) if mode == "paper" else 0.0

    def validate() -> dict:
        network.eval()
        values = {}
        with torch.no_grad():
            for d in data:
                a, _ = support(*network(d["x_val"]), d["params"])
                p = fit_budget_torch(a.double(), d["params"].ap_power_budget_w)
                values[f"val_ee_{d['scenario']}"] = float(sum_ee(d["params"], d["g_val"], p).mean())
                values[f"val_links_on_{d['scenario']}"] = float((p > 0).double().mean())
        network.train()
        values["val_ee_mean"] = float(np.mean([values[f"val_ee_{d['scenario']}"] for d in data]))
        return values

    out = Path(out) if out is not None else Path("results") / "weights" / f"gnn-sum-ee-{mode}-seed{seed}.pt"
    best, best_state, best_epoch = -math.inf, None, 0

    def write_checkpoint() -> Path:
        return save_checkpoint(out, {
            "model": {"name": "GNN with nested SINRnet (sum-ee)", "width": int(cfg["width"]),
                      "layers": int(cfg["layers"])},
            "state_dict": best_state if best_state is not None else network.state_dict(),
            "input": stats,
            "trained_on": {"problem": problem.name, "scenarios": list(scenarios), "n_train": n_train,
                           "n_validation": n_val, "instance_seed": TRAIN_SEED_OFFSET + seed},
            "training": {"seed": seed, **{k: cfg[k] for k in DEFAULTS if k != "init"},
                         "init": str(cfg["init"]) if cfg["init"] else "", "best_epoch": best_epoch,
                         "steps": len(psi_history), "train_time_s": log.elapsed_s,
                         "final_kappa": kappa, "threads": torch.get_num_threads(),
                         "torch": str(torch.__version__), "history": log.history},
        })

    values = validate()
    log.epoch(epoch=0, **values)
    weight = balance_weights(cfg["balance"], [values[f"val_ee_{d['scenario']}"] for d in data])
    for epoch in range(1, int(cfg["epochs"]) + 1):
        plan = []
        for i, d in enumerate(data):
            order = torch.randperm(n_train, generator=generator)
            plan += [(i, order[s0:s0 + batch_size]) for s0 in range(0, n_train, batch_size)]
        sums = {"objective": 0.0, "psi": 0.0, "kappa": 0.0}
        skipped = 0
        for b in torch.randperm(len(plan), generator=generator).tolist():
            i, rows = plan[b]
            d = data[i]
            t = step_terms(network, d["x"][rows], d["g"][rows], d["params"], mode,
                           int(cfg["samples_per_instance"]), generator, RELU_GRADS[cfg["relu_grad"]])
            loss = -(t["objective"] - kappa * t["psi"]) * weight[i]      # -(7)
            optimiser.zero_grad()
            if not torch.isfinite(loss):                                  # skipped, counted in the log
                skipped += 1
                schedule.step()
                continue
            loss.backward()
            optimiser.step()
            schedule.step()
            psi = t["psi"].item()
            psi_history.append(psi)
            sums["objective"] += t["objective"].item() / len(plan)
            sums["psi"] += psi / len(plan)
            sums["kappa"] += kappa / len(plan)
            if mode == "paper":
                kappa = kappa_update(kappa, psi_history, h, dkappa)
        values = validate()
        if values["val_ee_mean"] > best:
            best, best_epoch = values["val_ee_mean"], epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        log.epoch(epoch=epoch, train_objective=sums["objective"], support=sums["psi"], kappa_mean=sums["kappa"],
                  kappa=kappa, lr=optimiser.param_groups[0]["lr"], skipped_steps=skipped, **values)
        write_checkpoint()   # after every epoch: an interrupted training keeps its best model so far
    return write_checkpoint()


@hookimpl
def cfbench_solvers():
    return [SumEEGnn]
