"""``het-gnn``: the heterogeneous line-graph attention GNN of the coexistence paper (Section VI).

Graph (Section VI-A). Every AP-terminal link is a node: ``M K_u`` AP-user nodes
``(m, u)`` with feature ``h(0) = alpha_mu`` and ``M K_d`` AP-device nodes
``(m, d)`` with ``g(0) = beta_md`` (LSF only, as the paper; features are
``log10`` of the noise-normalised LSF, standardised with the training set's
mean and deviation per node type, footnote 8). Two nodes are connected when
they share an AP, a user or a device, giving six directed edge types::

    AP_uu  (m,u') -> (m,u)     AP_dd  (m,d') -> (m,d)
    AP_ud  (m,u)  -> (m,d)     AP_du  (m,d)  -> (m,u)
    user   (m',u) -> (m,u)     device (m',d) -> (m,d)          (no self-loops)

and every edge carries the one-hot attribute of Table I: whether its source
and its destination link is active (the AP serves the terminal, ``a_mu``,
``b_md``).

Layer (Section VI-B, eqs. 37-41). For each edge type ``*`` into a node type
and each head ``c`` (head size ``d = width / C``)::

    Phi_*c(i) = L1(h_i) + sum_{i' in N_*(i)} alpha_*c(i, i') (L2(h_i') + L3(attr(i, i')))       (39)-(40)
    alpha_*c(i, i') = softmax_{i'} (L4(h_i)^T (L5(h_i') + L3(attr(i, i'))) / sqrt(d))           (41)

the heads are concatenated, the edge types into the node type summed (38),
then ``h(t+1) = LayerNorm(ReLU(.))`` (37). Widths ``[1, 32, 32, 64, 64, 32, 32]``,
``C = 4`` heads, then a linear ``Lambda_out`` to one value per node (``T = 7``
layers). Readout (36): average over the ``M`` APs, sigmoid, times the
budget ``P_u`` / ``Q_d``. Every neighbourhood is complete (all terminals of an
AP, all APs of a terminal), so the layer is computed densely, as attention
along the terminal axis or the AP axis of ``(batch, M, K, width)`` tensors:
the cost grows with the number of edges ``M K (K - 1) + K M (M - 1)``, and the
network is equivariant to permutations of users, devices and APs by
construction (``tests/mmtc/test_mmtc_gnn.py`` checks it). One network serves any
``(K_u, K_d, M, M_s)``.

Loss (eqs. 42-44), per batch::

    L = alpha MSE(log theta_hat, log theta) + (1 - alpha) L_EE + beta (lambda v + rho / 2 v^2)

``theta`` the labels (powers of the fast OPC, :mod:`cfbench.plugins.mmtc_fixed_point`:
the global optimum of (21)); ``L_EE`` the MSE of every device's EE relative
to the label's EE (the paper's ``MSE(EE(theta_hat), EE(theta))`` made
scale-free, since the five settings' EEs differ by factors of several); ``v``
the mean over the batch of ``ReLU(1 - min_u R_u(theta_hat) / R^eMBB+)`` (the
C4 shortfall, relative); ``lambda <- max(0, lambda + rho v)`` after every step
(projected dual ascent; rho defaults to 10, the paper gives no value).
Option ``lr_final`` decays the learning rate along a cosine to that value
(the shipped weights: lr 1e-3 -> 1e-5, see the README: this machine affords a
few thousand steps, not the paper's 10^5). Option ``constraints="c3-c5"``
adds the relative C3 and C5 shortfalls of the worst device to ``v``. Option ``min_ee_weight`` (gamma,
not in the paper, 0 by default) adds ``gamma (1 - min_d EE_d(theta_hat) / min_d EE_d(theta))`` averaged
over the batch: the max-min objective itself, relative to the label's, where (42)'s MSE pulls every
device's EE towards the label's common level from both sides. EE and rates come from
:mod:`cfbench.problems.mmtc_torch` (tested equal to the evaluator). AdamW,
lr 1e-4, weight decay 1e-4, batch 32 (Section VI-C); batches never mix
settings. Drops whose label is infeasible are left out. The readout bias
starts at the logit of the labels' mean log power fraction (at lr 1e-4 the
network would otherwise spend epochs walking down from half the budget to the
optimum's microwatts). The epoch with the best validation score (the loss
without the multiplier's drift) is kept.

Inference. Eager by default (the layer's folded form, ``Layer``). Option ``compile=true`` runs
the network compiled by inductor (``compile_network``) in a feature-major layout,
``(width, M, K, drops)`` (``Layer.forward_feature_major``): the linear map is one matrix product
over all nodes and drops, without the rows of known value (``Layer.feature_major_maps``) and
with the layer norms' affine parts folded in, and each attention a broadcast sum over a leading axis,
which inductor turns into loops vectorised along the drops (the terminals for one drop) and
fuses with the softmax and the layer norm. Compiled in ``setup`` for the scenario's sizes, one
drop and ``COMPILED_CHUNK_DROPS`` drops, for one thread; on ``n`` torch threads a batch's chunks
run on ``n`` threads at once. The same logits to float32 rounding
(``results/latency/het_gnn_compile.md`` gives the speed).

Data: ``cfbench dataset --problem mmtc --labels opc-fast ...`` (format in
:mod:`cfbench.dataset`); split 80/10/10 in stream order (the last 10 % is the
held-out test part, never read in training). Weights: ``SHIPPED_WEIGHTS``;
``cfbench train --solver het-gnn --problem mmtc --scenario S1,...`` retrains
(README lists the exact commands).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from cfbench import Instances, Option, Solver, hookimpl
from cfbench.api import CfbenchError
from cfbench.learning import (TrainingLog, check_training_sizes, compile_graph, load_checkpoint, save_checkpoint,
                               seed_everything, training_options)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TABLE_II = ("ku2-kd10-m10-ms5", "ku2-kd10-m10-ms1", "ku2-kd10-m5-ms5", "ku1-kd10-m10-ms5", "ku1-kd5-m10-ms5")
#: one model for every scenario (trained on the five Table II settings; other scenarios test generalisation)
SHIPPED_WEIGHTS = "het-gnn-mmtc.pt"
WIDTHS = (32, 32, 64, 64, 32, 32)
HEADS = 4
#: line-graph nodes per chunk of a batch at inference (see ``build_network``'s forward)
CHUNK_NODES = 3072
#: drops per chunk of the compiled forward (option ``compile``): one AVX-512 vector of float32 along the
#: drops, the innermost axis of its loops; 8 / 12 / 16 / 25 / 32 drops took 0.73 / 0.63 / 0.54 / 0.66 / 0.66
#: ms per drop of the default scenario on an AMD EPYC (het_gnn_compile.md)
COMPILED_CHUNK_DROPS = 16
#: edge types into each node type: (name, source node type, axis the neighbourhood runs along)
EDGE_TYPES = {
    "user": (("ap_uu", "user", "terminal"), ("ap_du", "device", "terminal"), ("user", "user", "ap")),
    "device": (("ap_dd", "device", "terminal"), ("ap_ud", "user", "terminal"), ("device", "device", "ap")),
}
CONSTRAINTS = ("c4", "c3-c5")

TRAINING_OPTIONS = (
    Option("data", str, "data/mmtc-gnn", "cfbench dataset folder (one subfolder per scenario)"),
    Option("samples", int, None, "labelled samples per scenario (default: all of the folder)"),
    Option("epochs", int, 100, "training epochs"),
    Option("batch_size", int, 32, "drops per step"),
    Option("lr", float, 1e-4, "AdamW learning rate"),
    Option("lr_final", float, None, "cosine decay from lr to lr_final over the epochs (default: constant lr, the paper)"),
    Option("weight_decay", float, 1e-4, "AdamW weight decay"),
    Option("alpha", float, 0.5, "weight of the log-power MSE in (42)"),
    Option("beta", float, 1.0, "augmented Lagrangian on (1) or off (0), (43)"),
    Option("rho", float, 10.0, "penalty of (44); not in the paper (rho = 1 left C4 violated in ~10 % of drops)"),
    Option("constraints", str, "c4", "constraint term: c4 (the paper's v) or c3-c5"),
    Option("min_ee_weight", float, 0.0, "weight gamma of the max-min term 1 - min EE / label's min EE (0: the paper)"),
    Option("validation_fraction", float, 0.1, "share of each scenario's samples held out for validation"),
    Option("test_fraction", float, 0.1, "share of each scenario's samples held out for testing"),
    Option("patience", int, 0, "stop after this many epochs without a better validation loss (0: never)"),
    Option("init", str, None, "checkpoint to start from (fine-tuning)"),
)
DEFAULTS = {o.name: o.default for o in TRAINING_OPTIONS}


def _torch():
    import torch

    return torch


# --- the network ----------------------------------------------------------------------------

def build_network(widths=WIDTHS, heads: int = HEADS):
    torch = _torch()
    nn = torch.nn
    types = [(name, src, dst, axis) for dst, ts in EDGE_TYPES.items() for name, src, axis in ts]
    #: per edge type: its slot among the destination's queries and among the source's keys/values
    slots = {name: ([n for n, _, d, _ in types if d == dst].index(name), [n for n, s, _, _ in types if s == src].index(name))
             for name, src, dst, _ in types}
    into = {t: [n for n, _, d, _ in types if d == t] for t in EDGE_TYPES}
    out_of = {t: [n for n, s, _, _ in types if s == t] for t in EDGE_TYPES}
    edges_into = {t: [(name, src, axis, *slots[name]) for name, src, dst, axis in types if dst == t] for t in EDGE_TYPES}
    masks: dict = {}

    def without_self(n: int, dtype):
        """Additive score mask of a neighbourhood that excludes the node itself."""
        if (n, dtype) not in masks:
            masks[n, dtype] = torch.zeros(n, n, dtype=dtype).fill_diagonal_(float("-inf"))
        return masks[n, dtype]

    def live_edges_into(dst: str, live: dict) -> list:
        """The edge types into node type ``dst`` that have neighbours: (name, source node type,
        axis, slot among ``dst``'s queries, slot among the source's keys and values)."""
        return [edge for edge in edges_into[dst] if live[edge[0]]]

    def attend(q, k, v, self_mask):
        """Softmax attention of ``q`` (..., D, c + 1) over ``k`` (..., S, c + 1) and ``v``
        (..., S, c + 2) whose entry ``c`` is 1; the scale and the edge attributes are folded
        into them (see ``Layer``). The softmax is written out (``torch.softmax`` over rows of
        ten is several times slower on CPU) and normalised after the product with ``v``, by
        its column of ones."""
        score = torch.matmul(q, k.transpose(-1, -2))
        if self_mask is not None:
            score += self_mask
        o = torch.matmul(torch.exp_(score - score.amax(-1, keepdim=True)), v)
        c = v.shape[-1] - 2
        return o / o[..., c:c + 1]

    def attend_feature_major(q, k, v, a_dst, a_src, group_axis: int, self_mask):
        """``attend`` on feature-major tensors of one node type pair: ``q`` (H, c + 1, M, K_dst, B)
        (its entry ``c`` the query's last entry before the factor ``a``), ``k``, ``v``
        (H, c, M, K_src, B), the activities ``a_dst`` (M, K_dst, B) and ``a_src`` (M, K_src, B),
        neighbourhoods along the terminals (``group_axis`` 2: the groups are the APs) or along the
        APs (3: the groups are the terminals). The entries of ``attend``'s keys and values that
        are ``a'`` or 1 are read from ``a_src`` or summed directly, not carried as rows of the
        linear map. Every product is a broadcast sum over a leading axis, so a compiler keeps the
        last axes (the drops, then the terminals) innermost, vectorised, with no horizontal
        reductions. Returns the normalised messages (H, c, M, K_dst, B) and ``sum w a' / sum w``
        (H, M, K_dst, B)."""
        c = v.shape[1]
        last = q[:, c] * a_dst                                   # a q^T (d_1 - d_0) / sqrt(c)
        if group_axis == 2:                                      # score (H, M, K_dst, K_src, B)
            score = (q[:, :c, :, :, None] * k[:, :, :, None]).sum(1) + last[:, :, :, None] * a_src[:, None]
            if self_mask is not None:
                score = score + self_mask[:, :, None]
            weight = torch.exp(score - score.amax(3, keepdim=True))
            total, active_total = weight.sum(3), (weight * a_src[:, None]).sum(3)
            o = (weight[:, None] * v[:, :, :, None]).sum(4)
        else:                                                    # score (H, M_dst, M_src, K, B)
            score = (q[:, :c, :, None] * k[:, :, None]).sum(1) + self_mask[:, :, None, None] + last[:, :, None] * a_src
            weight = torch.exp(score - score.amax(2, keepdim=True))
            total, active_total = weight.sum(2), (weight * a_src).sum(2)
            o = (weight[:, None] * v[:, :, None]).sum(3)
        return o / total[:, None], active_total / total

    def diagonal_mask(n: int, dtype):
        """``without_self`` built afresh (a compiled graph holds it as a constant; no cache to guard)."""
        return torch.where(torch.eye(n, dtype=torch.bool), float("-inf"), 0.0).to(dtype)

    class Layer(nn.Module):
        """One update (37)-(39) of both node types. The parameters are those of the equations:
        the root terms ``Lambda^1`` of the three edge types into a node type (summed in (38), so
        one linear map per node type), queries ``Lambda^4`` into a node type and keys and values
        ``Lambda^5``, ``Lambda^2`` out of it (one fused map each), ``Lambda^3`` per edge type.

        The forward pass folds them into one linear map per node type of ``[h, a, 1]`` (the
        features and the node's activity), ``fused()``. With ``e_r`` the edge embedding of the
        Table I one-hot ``r = 2 a_src + a_dst``, ``d_0 = e_1 - e_0`` and ``d_1 = e_3 - e_2``:

            q^T (k' + e_{2a'+a}) / sqrt(c) = [q / sqrt(c), a q^T (d_1 - d_0) / sqrt(c)] . [k' + e_{2a'}, a']
                                             + a q^T d_0 / sqrt(c)
            sum w (v' + e_{2a'+a}) = sum w (v' + e_{2a'}) + a d_0 + a (sum w a') (d_1 - d_0)

        (primes: the source). The last score term is the same for all neighbours, so the
        softmax drops it; all bracketed source and destination terms are affine in ``[h, a]``
        except the factor ``a`` of the query's last entry, so each edge type is one attention
        with queries and keys of size ``c + 1`` and values ``[v' + e_{2a'}, 1, a']``, and
        ``a d_0`` joins the root term. A layer is two matrix products and six attentions for
        any batch: eqs. (39)-(41) exactly, up to the order of float rounding
        (``tests/mmtc/test_mmtc_gnn.py`` compares it with the edge-by-edge form and with the
        earlier per-edge-type code)."""

        def __init__(self, width_in: int, width_out: int) -> None:
            super().__init__()
            if width_out % heads:
                raise ValueError(f"width {width_out} not divisible by {heads} heads")
            self.width, self.head_size = width_out, width_out // heads
            self.root = nn.ModuleDict({t: nn.Linear(width_in, width_out) for t in EDGE_TYPES})
            self.query = nn.ModuleDict({t: nn.Linear(width_in, 3 * width_out) for t in EDGE_TYPES})
            self.key_value = nn.ModuleDict({t: nn.Linear(width_in, 2 * 3 * width_out) for t in EDGE_TYPES})
            self.edge = nn.ParameterDict({name: nn.Parameter(torch.randn(4, width_out) / 2.0)
                                          for name, _, _, _ in types})
            self.norm = nn.ModuleDict({t: nn.LayerNorm(width_out) for t in EDGE_TYPES})
            self._fused_cache = None

        def fused(self, live: dict) -> dict:
            """Per node type ``t`` the weight ``(width + 3 H (3 c + 4), width_in + 2)`` of
            ``[h, a, 1] -> [root + a sum d_0, queries (3, H, c + 1), keys (3, H, c + 1), values
            (3, H, c + 2)]`` (its last column the bias), and ``d_1 - d_0`` of the edge types into
            ``t``, (3, H, 1, c). ``live[name]``: whether the edge type has neighbours (``a d_0``
            joins the root only then). Rebuilt from the parameters on every call while gradients
            are recorded; else kept until one of them changes."""
            params = [self.edge[n] for n in self.edge] + [m[t].weight for m in (self.root, self.query, self.key_value)
                                                          for t in EDGE_TYPES] + [m[t].bias for m in (self.root, self.query, self.key_value) for t in EDGE_TYPES]
            key = (tuple(live.values()),
                   tuple((p.data_ptr(), 0 if p.is_inference() else p._version, p.dtype) for p in params))
            if not torch.is_grad_enabled() and self._fused_cache is not None and self._fused_cache[0] == key:
                return self._fused_cache[1]
            H, c, w = heads, self.head_size, self.width
            scale = 1.0 / math.sqrt(c)
            fused = {}
            for t in EDGE_TYPES:
                w_in = self.root[t].weight.shape[1]
                e_in = torch.stack([self.edge[n].view(4, H, c) for n in into[t]])        # (3, 4, H, c)
                d0_in, dd_in = e_in[:, 1] - e_in[:, 0], e_in[:, 3] - e_in[:, 2] - e_in[:, 1] + e_in[:, 0]
                on = torch.tensor([live[n] for n in into[t]], dtype=e_in.dtype)[:, None, None]
                root_a = (d0_in * on).sum(0).reshape(w, 1)                              # a sum_* d_0
                root = torch.cat([self.root[t].weight, root_a], 1), self.root[t].bias
                wq = self.query[t].weight.view(3, H, c, w_in) * scale
                bq = self.query[t].bias.view(3, H, c) * scale
                q_weight = torch.cat([torch.cat([wq, torch.einsum("shc,shci->shi", dd_in, wq)[:, :, None]], 2),
                                      wq.new_zeros(3, H, c + 1, 1)], 3)                 # (3, H, c + 1, w_in + 1)
                q_bias = torch.cat([bq, (dd_in * bq).sum(-1, keepdim=True)], 2)
                e_out = torch.stack([self.edge[n].view(4, H, c) for n in out_of[t]])   # (3, 4, H, c)
                kv_w = self.key_value[t].weight.view(2, 3, H, c, w_in)
                kv_b = self.key_value[t].bias.view(2, 3, H, c) + e_out[:, 0]
                e_a = (e_out[:, 2] - e_out[:, 0])[..., None]
                row = torch.zeros(3, H, 1, w_in + 1, dtype=kv_w.dtype)                 # 0 h + 0 a (+ bias)
                row_a = row.clone()
                row_a[..., -1] = 1.0                                                   # a
                zero, one = kv_w.new_zeros(3, H, 1), kv_w.new_ones(3, H, 1)
                k_weight = torch.cat([torch.cat([kv_w[0], e_a], 3), row_a], 2)       # (3, H, c + 1, w_in + 1)
                k_bias = torch.cat([kv_b[0], zero], 2)
                v_weight = torch.cat([torch.cat([kv_w[1], e_a], 3), row, row_a], 2)  # (3, H, c + 2, w_in + 1)
                v_bias = torch.cat([kv_b[1], one, zero], 2)
                weight = torch.cat([root[0], *(x.reshape(-1, w_in + 1) for x in (q_weight, k_weight, v_weight))])
                bias = torch.cat([root[1], *(x.reshape(-1) for x in (q_bias, k_bias, v_bias))])
                fused[t] = (torch.cat([weight, bias[:, None]], 1), dd_in[:, :, None])
            if not torch.is_grad_enabled():
                self._fused_cache = (key, fused)
            return fused

        def forward(self, x: dict, active: dict, context: dict | None = None) -> dict:
            """``x[t]`` (B, M, K_t, width_in), ``active[t]`` (B, M, K_t) 0/1."""
            context = context if context is not None else prepare(active)
            B, M = x["user"].shape[:2]
            K = {t: v.shape[2] for t, v in x.items()}
            H, c, w = heads, self.head_size, self.width
            live = live_edge_types(K, M)
            fused = self.fused(live)
            root, q, k, v = {}, {}, {}, {}
            nq = 3 * H * (c + 1)
            for t in EDGE_TYPES:
                y = torch.mm(torch.cat([x[t], context["a"][t]], -1).view(-1, x[t].shape[-1] + 2),
                             fused[t][0].t()).view(B, M, K[t], -1)            # the bias is the weight of the 1 column
                root[t] = y[..., :w]
                qt = y[..., w:w + nq].view(B, M, K[t], 3, H, c + 1)
                qt[..., c:].mul_(context["qa"][t])                              # [q, a q (d_1 - d_0)]
                # per slot (B, M, H, K, c + 1 or c + 2)
                q[t] = qt.permute(3, 0, 1, 4, 2, 5).unbind(0)
                k[t] = y[..., w + nq:w + 2 * nq].view(B, M, K[t], 3, H, c + 1).permute(3, 0, 1, 4, 2, 5).unbind(0)
                v[t] = y[..., w + 2 * nq:].view(B, M, K[t], 3, H, c + 2).permute(3, 0, 1, 4, 2, 5).unbind(0)
            out = {}
            for dst in EDGE_TYPES:
                m0 = extra = None
                for name, src, axis, i, j in live_edges_into(dst, live):
                    if axis == "terminal":   # neighbours share the AP: groups = APs, members = terminals
                        o = attend(q[dst][i], k[src][j], v[src][j], without_self(K[dst], x[dst].dtype) if src == dst else None)
                    else:                    # neighbours share the terminal: groups = terminals, members = APs
                        o = attend(q[dst][i].transpose(1, 3), k[src][j].transpose(1, 3), v[src][j].transpose(1, 3),
                                   without_self(M, x[dst].dtype)).transpose(1, 3)
                    dd = fused[dst][1][i]                                            # (H, 1, c)
                    m0 = o[..., :c] if m0 is None else m0 + o[..., :c]
                    extra = o[..., c + 1:] * dd if extra is None else torch.addcmul(extra, o[..., c + 1:], dd)
                h = root[dst]
                if m0 is not None:                                                   # (B, M, H, K, c) -> (B, M, K, width)
                    h = h + torch.addcmul(m0, context["ma"][dst], extra).transpose(2, 3).reshape(h.shape)
                out[dst] = self.norm[dst](torch.relu(h))
            return out

        def feature_major_maps(self, live: dict) -> dict:
            """``fused(live)`` without the rows whose values are known: the keys' entry ``a'``
            and the values' entries ``1`` and ``a'`` (``attend_feature_major`` reads them from the
            activity): per node type the weight ``(width + 3 H (3 c + 1), width_in + 2)`` of
            ``[h, a, 1] -> [root, queries (3, H, c + 1), keys (3, H, c), values (3, H, c)]`` and
            ``d_1 - d_0`` as ``fused``'s (about 5 % fewer rows, and no copy of the queries to set
            their last entry). The map of ``forward_feature_major``, as the network's
            ``feature_major_maps`` completes it."""
            H, c, w = heads, self.head_size, self.width
            nq = 3 * H * (c + 1)
            maps = {}
            for t, (weight, dd) in self.fused(live).items():
                keys = weight[w + nq:w + 2 * nq].view(3, H, c + 1, -1)[:, :, :c]
                values = weight[w + 2 * nq:].view(3, H, c + 2, -1)[:, :, :c]
                maps[t] = (torch.cat([weight[:w + nq], keys.reshape(-1, weight.shape[1]),
                                      values.reshape(-1, weight.shape[1])]), dd)
            return maps

        def forward_feature_major(self, x: dict, active: dict, maps: dict, live: dict) -> dict:
            """``forward`` on feature-major tensors, the layout of the compiled forward
            (``compile_network``): ``x[t]`` (width_in, M, K_t, B), ``active[t]`` (M, K_t, B),
            ``maps`` this layer's ``feature_major_maps()`` as the network's (the layer norm before
            folded in), ``live`` from ``live_edge_types``; returns the layer-normed output without
            its affine part (the next map holds it). The same terms (summed in another order), so
            the same values to float32 rounding (``tests/mmtc/test_mmtc_gnn.py``). The linear map is
            one matrix product over every node and drop (elementwise in the first layer, of three
            columns); with the drops (then the terminals) innermost, each attention, its softmax and
            the layer norm are loops over leading axes of vectors along the drops, which inductor
            vectorises without horizontal sums (``attend_feature_major``). Eagerly it is slower than
            ``forward``."""
            M, B = x["user"].shape[1], x["user"].shape[3]
            K = {t: v.shape[2] for t, v in x.items()}
            H, c, w = heads, self.head_size, self.width
            nq, nk = 3 * H * (c + 1), 3 * H * c
            root, q, k, v = {}, {}, {}, {}
            for t in EDGE_TYPES:
                xa1 = torch.cat([x[t], active[t][None], torch.ones_like(active[t])[None]])     # [h, a, 1]
                if x[t].shape[0] > 1:
                    y = torch.mm(maps[t][0], xa1.view(xa1.shape[0], -1)).view(-1, M, K[t], B)
                else:                          # the first layer's three columns: a GEMM would idle
                    y = (maps[t][0][:, :, None, None, None] * xa1).sum(1)
                root[t] = y[:w]
                q[t] = y[w:w + nq].view(3, H, c + 1, M, K[t], B)
                k[t] = y[w + nq:w + nq + nk].view(3, H, c, M, K[t], B)
                v[t] = y[w + nq + nk:].view(3, H, c, M, K[t], B)
            out = {}
            for dst in EDGE_TYPES:
                m0 = extra = None
                for name, src, axis, i, j in live_edges_into(dst, live):
                    n = K[dst] if axis == "terminal" else M
                    mask = diagonal_mask(n, y.dtype) if src == dst else None
                    o, active_share = attend_feature_major(q[dst][i], k[src][j], v[src][j], active[dst], active[src],
                                                           2 if axis == "terminal" else 3, mask)
                    term = active_share[:, None] * maps[dst][1][i].view(H, c, 1, 1, 1)
                    m0 = o if m0 is None else m0 + o
                    extra = term if extra is None else extra + term
                h = root[dst]
                if m0 is not None:                                   # (H, c, M, K, B) -> (width, M, K, B)
                    h = h + (m0 + active[dst] * extra).view(h.shape)
                h = torch.relu(h)
                centred = h - h.mean(0)
                out[dst] = centred * torch.rsqrt((centred * centred).mean(0) + self.norm[dst].eps)
            return out

    def prepare(active: dict) -> dict:
        """What every layer reads from the activity: ``[a, 1]`` as feature columns, the factor
        ``a`` of the queries' last entry and of the messages."""
        a = {t: v.unsqueeze(-1) for t, v in active.items()}
        a1 = {t: torch.cat([v, torch.ones_like(v)], -1) for t, v in a.items()}
        return {"a": a1, "qa": {t: v[..., None, None] for t, v in a.items()}, "ma": {t: v[:, :, None] for t, v in a.items()}}

    class HeterogeneousGNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = (1, *widths)
            self.layers = nn.ModuleList(Layer(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.out = nn.ModuleDict({t: nn.Linear(sizes[-1], 1) for t in EDGE_TYPES})   # Lambda_out

        def forward(self, features: dict, active: dict) -> dict:
            """``features[t]`` (B, M, K_t) standardised log-LSF, ``active[t]`` (B, M, K_t) 0/1;
            returns the pre-sigmoid logits (B, K_t), averaged over the APs (36). Without
            gradients a large batch runs in chunks of about ``CHUNK_NODES`` line-graph nodes: the
            drops are independent, and a layer's (nodes, about 11 width) intermediate stays in
            the cache (one thread: 1.4x faster per drop at 256 default drops than in one piece)."""
            B, M = features["user"].shape[:2]
            chunk = max(1, CHUNK_NODES // (M * sum(f.shape[2] for f in features.values())))
            if B > chunk and not torch.is_grad_enabled():
                return in_chunks(self, features, active, chunk)            # each piece fits one chunk
            context = prepare(active)
            x = {t: f.unsqueeze(-1) for t, f in features.items()}
            for layer in self.layers:
                x = layer(x, active, context)
            return {t: self.out[t](x[t]).squeeze(-1).mean(dim=1) for t in EDGE_TYPES}

        def feature_major_maps(self, live: dict) -> dict:
            """The maps of ``forward_feature_major``: every layer's ``feature_major_maps`` with
            the preceding layer norm's affine part ``gamma n + beta`` folded into the columns
            that read ``n`` (``W [gamma n + beta, a, 1] = W' [n, a, 1]``), and ``Lambda_out``
            with the last one's folded in, ``(weight (1, width), bias (1,))`` per node type."""
            layers = [layer.feature_major_maps(live) for layer in self.layers]
            for before, maps in zip(self.layers[:-1], layers[1:]):
                for t, (weight, dd) in maps.items():
                    gamma, beta = before.norm[t].weight, before.norm[t].bias
                    width = gamma.shape[0]
                    bias = weight[:, -1:] + weight[:, :width] @ beta[:, None]
                    maps[t] = (torch.cat([weight[:, :width] * gamma, weight[:, width:-1], bias], 1), dd)
            last = self.layers[-1].norm
            out = {t: (self.out[t].weight * last[t].weight, self.out[t].bias + self.out[t].weight @ last[t].bias)
                   for t in EDGE_TYPES}
            return {"layers": layers, "out": out}

        def forward_feature_major(self, features: dict, active: dict, maps: dict) -> dict:
            """``forward`` through the layers' ``forward_feature_major``, with the network's
            ``feature_major_maps()`` given: the compiled forward. Inputs feature-major,
            ``features[t]`` and ``active[t]`` (M, K_t, B) (``feature_major``: contiguous, so that
            the loops that read the activity are vectorised along the drops); logits as
            ``forward``'s, (B, K_t), one piece."""
            M, B = features["user"].shape[0], features["user"].shape[2]
            K = {t: f.shape[1] for t, f in features.items()}
            live = live_edge_types(K, M)
            x = {t: f[None] for t, f in features.items()}                            # (1, M, K_t, B)
            for layer, held in zip(self.layers, maps["layers"]):
                x = layer.forward_feature_major(x, active, held, live)
            return {t: (torch.mm(maps["out"][t][0], x[t].view(x[t].shape[0], -1)).view(M, K[t], B)
                        + maps["out"][t][1]).mean(0).t() for t in EDGE_TYPES}

    return HeterogeneousGNN()


def live_edge_types(n_terminals: dict[str, int], n_aps: int) -> dict[str, bool]:
    """Per edge type whether it has neighbours: one within a node type has none when its
    neighbourhood has one member (K_t = 1 along the terminals, M = 1 along the APs)."""
    return {name: not (src == dst and (n_terminals[dst] if axis == "terminal" else n_aps) == 1)
            for dst, ts in EDGE_TYPES.items() for name, src, axis in ts}


def feature_major(tensors: dict) -> dict:
    """Per node type ``(B, M, K_t)`` -> ``(M, K_t, B)``, contiguous: the input layout of
    ``forward_feature_major``."""
    return {t: v.permute(1, 2, 0).contiguous() for t, v in tensors.items()}


def in_chunks(forward: Callable, features: dict, active: dict, chunk: int) -> dict:
    """``forward`` on the batch in pieces of at most ``chunk`` drops, the logits joined."""
    torch = _torch()
    B = features["user"].shape[0]
    if B <= chunk:
        return forward(features, active)
    parts = [forward(*({t: v[s:s + chunk] for t, v in d.items()} for d in (features, active)))
             for s in range(0, B, chunk)]
    return {t: torch.cat([part[t] for part in parts]) for t in EDGE_TYPES}


def compile_network(network, n_users: int, n_devices: int, n_aps: int, chunk: int) -> Callable:
    """The forward compiled by inductor for drops of ``(K_u, K_d, M)``: the network's
    ``forward_feature_major`` with its ``feature_major_maps()`` taken once (constants of the
    compiled graphs), traced and compiled for one drop and for ``chunk`` drops, with no dynamo
    (``compile_graph``; how it compiles, its disk cache and its one-line failure without a C++
    compiler are there). A batch is made feature-major once (``feature_major``) and runs as whole
    chunks; the drops left over run one at a time when fewer than ``chunk // 2`` (a one-drop call
    costs about as much as two drops of a chunk), else as one chunk padded with copies of its last
    drop, whose outputs are dropped (``chunk_plan``).

    Threads: the kernels are compiled for one torch thread and always run on one (kernels
    compiled for two OpenMP threads took 35 ms for one drop and were slower in batches too). With
    torch's thread count ``n`` above one when called (``cfbench run --threads n``), the pieces of a
    batch run on ``n`` Python threads at once; the compiled code releases the GIL and checks no
    guards, so the threads do not interfere (the dynamo-compiled forward this replaces compiled
    again now and then when called so, its guards not being thread-safe: ``het_gnn_compile.md``).
    Either way the outputs are the same to the bit, and torch's thread count is restored."""
    torch = _torch()
    live = live_edge_types({"user": n_users, "device": n_devices}, n_aps)
    with torch.inference_mode():
        maps = network.feature_major_maps(live)

    def forward(user, device, user_active, device_active) -> tuple:        # feature-major (M, K_t, B)
        logits = network.forward_feature_major({"user": user, "device": device},
                                               {"user": user_active, "device": device_active}, maps)
        return logits["user"], logits["device"]

    def drops(n: int) -> tuple:
        shapes = ((n_aps, n_users, n), (n_aps, n_devices, n))
        return (*(torch.zeros(s) for s in shapes), *(torch.ones(s) for s in shapes))

    with one_torch_thread():
        graphs = {n: compile_graph("het-gnn", forward, drops(n), cpp_wrapper=True) for n in sorted({1, chunk})}
    pools: dict[tuple, ThreadPoolExecutor] = {}

    def run_piece(inputs: tuple, start: int, n: int) -> tuple:
        piece = [x[..., start:start + n] for x in inputs]
        if n in graphs:
            return graphs[n](*piece)
        padded = [torch.cat([x, x[..., -1:].expand(*x.shape[:-1], chunk - n)], -1) for x in piece]
        return tuple(y[:n] for y in graphs[chunk](*padded))

    def in_pool_thread(inputs: tuple, start: int, n: int) -> tuple:     # a pool thread runs nothing else
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        with torch.inference_mode():
            return run_piece(inputs, start, n)

    def batched(features: dict, active: dict) -> dict:
        features, active = feature_major(features), feature_major(active)
        inputs = (features["user"], features["device"], active["user"], active["device"])
        plan = chunk_plan(features["user"].shape[2], chunk)
        threads = torch.get_num_threads()
        with one_torch_thread():
            if threads == 1 or len(plan) == 1:
                parts = [run_piece(inputs, start, n) for start, n in plan]
            else:
                key = (threads, os.getpid())                                 # a forked copy starts its own pool
                if key not in pools:
                    pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="het-gnn")
                parts = list(pools[key].map(lambda piece: in_pool_thread(inputs, *piece), plan))
        return {t: torch.cat([part[i] for part in parts]) for i, t in enumerate(EDGE_TYPES)}

    return batched


def chunk_plan(n_drops: int, chunk: int) -> list[tuple[int, int]]:
    """The pieces ``(start, drops)`` ``compile_network`` runs a batch in: whole chunks, then the
    rest one drop at a time when fewer than ``chunk // 2`` drops, else as one (padded) piece."""
    whole = n_drops - n_drops % chunk
    plan = [(start, chunk) for start in range(0, whole, chunk)]
    rest = n_drops - whole
    if rest >= max(chunk // 2, 2):
        return plan + [(whole, rest)]
    return plan + [(start, 1) for start in range(whole, n_drops)]


@contextmanager
def one_torch_thread():
    """torch on one thread inside (in the calling thread), its thread count restored after."""
    torch = _torch()
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- inputs and outputs -----------------------------------------------------------------------

def input_statistics(user_gain: np.ndarray, device_gain: np.ndarray) -> dict[str, float]:
    """Mean and deviation of ``log10`` LSF per node type (the input standardisation, footnote 8)."""
    lu, ld = np.log10(user_gain), np.log10(device_gain)
    return {"user_log10_gain_mean": float(lu.mean()), "user_log10_gain_std": float(lu.std()),
            "device_log10_gain_mean": float(ld.mean()), "device_log10_gain_std": float(ld.std())}


def network_inputs(instances: Instances, stats: dict[str, float]):
    """Standardised ``log10`` LSF and activity per node type, float32 tensors (B, M, K_t)."""
    torch = _torch()
    features, active = {}, {}
    for t in ("user", "device"):
        x = (np.log10(instances.arrays[f"{t}_gain"]) - stats[f"{t}_log10_gain_mean"]) / stats[f"{t}_log10_gain_std"]
        features[t] = torch.as_tensor(x, dtype=torch.float32)
        active[t] = torch.as_tensor(np.asarray(instances.arrays[f"{t}_serving"]), dtype=torch.float32)
    return features, active


def budgets(params) -> dict[str, float]:
    return {"user": params.user_max_power_w, "device": params.device_max_power_w}


def log_power(logits: dict, params) -> dict:
    """``log theta_hat`` of the readout (36): ``log(budget) + log sigmoid``, stable for tiny powers."""
    torch = _torch()
    return {t: math.log(b) + torch.nn.functional.logsigmoid(logits[t].double()) for t, b in budgets(params).items()}


# --- the solver ------------------------------------------------------------------------------

class HeterogeneousGnn(Solver):
    name = "het-gnn"
    kind = "learned"
    problems = ("mmtc",)
    description = "line-graph heterogeneous attention GNN trained on OPC labels with an augmented Lagrangian (Sec. VI)"
    solves_batches = True
    options_spec = (Option("weights", str, None, "checkpoint file (default: the shipped het-gnn-mmtc.pt)"),
                    Option("compile", bool, False, "true: the network compiled by inductor (C++ kernels that fuse "
                           "the attentions; needs a C++ compiler), compiled in setup: a one-off minute or two, "
                           "seconds once inductor's disk cache holds the graphs"))
    training_options_spec = TRAINING_OPTIONS

    @classmethod
    def artifacts(cls, scenario: str, options) -> dict[str, Path]:
        return {"weights": Path(options["weights"] or WEIGHTS_DIR / SHIPPED_WEIGHTS)}

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        self.checkpoint = load_checkpoint(self.artifacts(scenario, self.options)["weights"])
        self.network = network_from_checkpoint(self.checkpoint)
        self.network.eval()
        self._torch = _torch()
        self.forward = self.network
        if self.options["compile"]:
            p = problem.scenario_params(scenario)
            self.forward = compile_network(self.network, p.n_users, p.n_devices, p.n_aps, COMPILED_CHUNK_DROPS)

    def solve(self, instances: Instances):
        torch = self._torch
        with torch.inference_mode():
            features, active = network_inputs(instances, self.checkpoint["input"])
            logp = log_power(self.forward(features, active), instances.params)
        b = budgets(instances.params)
        return {f"{t}_power_w": np.clip(np.exp(logp[t].numpy()), 0.0, b[t]) for t in ("user", "device")}

    @classmethod
    def check_training(cls, problem, scenarios, cfg) -> None:
        """The constraint term is known; ``samples`` (when given; else the dataset decides) split
        as ``train`` splits it leaves a training and a validation instance."""
        if cfg["constraints"] not in CONSTRAINTS:
            raise CfbenchError(f"constraints must be one of {', '.join(CONSTRAINTS)}, got {cfg['constraints']!r}")
        n = cfg["samples"]
        n_val = n_train = 1
        if n is not None:
            n_test = int(round(float(cfg["test_fraction"]) * n))
            n_val = max(1, int(round(float(cfg["validation_fraction"]) * n)))
            n_train = n - n_val - n_test
        check_training_sizes(cls.name, n_train=n_train, n_validation=n_val,
                             batch_size=int(cfg["batch_size"]), epochs=int(cfg["epochs"]))

    @classmethod
    def train(cls, problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
              report: Callable[[dict], None] | None = None, **options) -> Path:
        return train(problem, scenarios, seed=seed, out=out, report=report, **options)


def network_from_checkpoint(checkpoint: dict):
    config = checkpoint["model"]
    network = build_network(tuple(config["widths"]), int(config["heads"]))
    network.load_state_dict(checkpoint["state_dict"])
    return network


# --- training --------------------------------------------------------------------------------

def loss_terms(network, batch: dict, params, cfg: dict, multiplier: float) -> dict:
    """Eqs. (42)-(44) on one batch (one setting): loss, its parts and the mean violation ``v``."""
    torch = _torch()
    from cfbench.problems import mmtc_torch as mt

    logp = log_power(network(batch["features"], batch["active"]), params)
    l_theta = torch.cat([(logp[t] - batch["label_log_power"][t]) ** 2 for t in ("user", "device")], dim=1).mean()
    perf = mt.performance(params, batch["coefficients"], torch.exp(logp["user"]), torch.exp(logp["device"]))
    ee = perf["device_ee_bit_per_j"]
    l_ee = (((ee - batch["label_device_ee"]) / batch["label_device_ee"]) ** 2).mean()
    shortfall = torch.relu(1.0 - perf["user_rate_bps"].min(dim=1).values / params.user_rate_min_bps)
    if cfg["constraints"] == "c3-c5":
        shortfall = (shortfall
                     + torch.relu(1.0 - perf["device_rate_bps"].min(dim=1).values / params.device_rate_min_bps)
                     + torch.relu(1.0 - perf["device_sinr"].min(dim=1).values / params.sinr_min))
    v = shortfall.mean()
    alpha, beta, rho = float(cfg["alpha"]), float(cfg["beta"]), float(cfg["rho"])
    min_ee = ee.min(dim=1).values
    l_min_ee = (1.0 - min_ee / batch["label_min_ee"]).mean()
    loss = alpha * l_theta + (1 - alpha) * l_ee + beta * (multiplier * v + 0.5 * rho * v ** 2)
    if float(cfg["min_ee_weight"]):
        loss = loss + float(cfg["min_ee_weight"]) * l_min_ee
    return {"loss": loss, "l_theta": l_theta, "l_ee": l_ee, "l_min_ee": l_min_ee, "v": v,
            "violated": (shortfall > 1e-6).double().mean(),   # share of drops with v > 0
            "min_ee_ratio": (min_ee / batch["label_min_ee"]).mean()}


def _tensors(dataset, stats) -> dict:
    """Network inputs, labels and SINR coefficients of a loaded dataset (one setting)."""
    torch = _torch()
    from cfbench.problems import mmtc_torch as mt
    from cfbench.problems.mmtc import coefficients, performance

    inst = dataset.instances
    features, active = network_inputs(inst, stats)
    c = coefficients(inst)
    labels = {t: dataset.labels[f"{t}_power_w"] for t in ("user", "device")}
    label_perf = performance(inst.params, c, labels["user"], labels["device"])
    return {"features": features, "active": active,
            "label_log_power": {t: torch.as_tensor(np.log(np.maximum(v, 1e-300))) for t, v in labels.items()},
            "label_device_ee": torch.as_tensor(label_perf["device_ee_bit_per_j"]),
            "label_min_ee": torch.as_tensor(label_perf["device_ee_bit_per_j"].min(axis=1)),
            "coefficients": mt.coefficient_tensors(c)}


def _take(data: dict, rows) -> dict:
    out = {}
    for k, v in data.items():
        out[k] = _take(v, rows) if isinstance(v, dict) else v[rows]
    return out


def split(n: int, validation_fraction: float, test_fraction: float) -> tuple[range, range, range]:
    """80/10/10 (by default) in stream order: train, validation, held-out test."""
    n_test = int(round(test_fraction * n))
    n_val = max(1, int(round(validation_fraction * n)))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise CfbenchError(f"{n} samples leave no training data after the validation and test split")
    return range(0, n_train), range(n_train, n_train + n_val), range(n_train + n_val, n)


def train(problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
          report: Callable[[dict], None] | None = None, **options) -> Path:
    torch = _torch()
    from cfbench import dataset as ds

    cfg = training_options("het-gnn", TRAINING_OPTIONS, options)
    if cfg["constraints"] not in CONSTRAINTS:
        raise CfbenchError(f"constraints must be one of {', '.join(CONSTRAINTS)}, got {cfg['constraints']!r}")
    seed_everything(seed)
    log = TrainingLog(report)

    loaded = []
    for s in scenarios:
        d = ds.load(problem, Path(cfg["data"]) / s, None if cfg["samples"] is None else int(cfg["samples"]))
        tr, va, _ = split(len(d), float(cfg["validation_fraction"]), float(cfg["test_fraction"]))
        keep_tr = [i for i in tr if d.label_feasible[i]]
        keep_va = [i for i in va if d.label_feasible[i]]
        loaded.append((s, d.subset(keep_tr), d.subset(keep_va)))
    start = load_checkpoint(Path(cfg["init"])) if cfg["init"] else None
    if start is not None:
        stats, network = start["input"], network_from_checkpoint(start)
    else:
        stats = input_statistics(*(np.concatenate([tr.instances.arrays[k].ravel() for _, tr, _ in loaded])
                                   for k in ("user_gain", "device_gain")))
        network = build_network()
        with torch.no_grad():  # start the readout at the labels' typical power (lr 1e-4 would take epochs to get there)
            for t, budget in budgets(loaded[0][1].instances.params).items():
                fraction = np.concatenate([tr.labels[f"{t}_power_w"].ravel() for _, tr, _ in loaded]) / budget
                log_fraction = float(np.mean(np.log(np.clip(fraction, 1e-12, 1 - 1e-6))))
                network.out[t].bias.fill_(log_fraction - math.log1p(-math.exp(log_fraction)))
    data = [(s, tr.instances.params, _tensors(tr, stats), _tensors(va, stats), len(tr), len(va))
            for s, tr, va in loaded]
    optimiser = torch.optim.AdamW(network.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    schedule = None
    if cfg["lr_final"] is not None:
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=int(cfg["epochs"]),
                                                              eta_min=float(cfg["lr_final"]))
    generator = torch.Generator().manual_seed(seed)
    batch_size = int(cfg["batch_size"])
    multiplier = 0.0  # lambda of (44)

    def validate() -> dict:
        network.eval()
        sums, count = {}, 0
        with torch.no_grad():
            for _, params, _, va, _, n_va in data:
                for s0 in range(0, n_va, 256):
                    rows = torch.arange(s0, min(n_va, s0 + 256))
                    t = loss_terms(network, _take(va, rows), params, cfg, multiplier)
                    for k, v in t.items():
                        sums[k] = sums.get(k, 0.0) + v.item() * len(rows)
                    count += len(rows)
        network.train()
        return {f"val_{k}": v / count for k, v in sums.items()}

    out = Path(out) if out is not None else Path("results") / "weights" / f"het-gnn-{'+'.join(scenarios)}-seed{seed}.pt"
    best, best_state, best_epoch, since_best = math.inf, None, 0, 0

    def write_checkpoint() -> Path:
        return save_checkpoint(out, {
            "model": {"name": "heterogeneous line-graph attention GNN", "widths": list(WIDTHS), "heads": HEADS},
            "state_dict": best_state if best_state is not None else network.state_dict(),
            "input": stats,
            "trained_on": {"problem": problem.name, "scenarios": list(scenarios), "dataset": str(cfg["data"]),
                           "n_train": {s: n for s, _, _, _, n, _ in data},
                           "n_validation": {s: n for s, _, _, _, _, n in data}},
            "training": {"seed": seed, **{k: cfg[k] for k in DEFAULTS if k not in ("init", "data")},
                         "init": str(cfg["init"]) if cfg["init"] else "", "best_epoch": best_epoch,
                         "epochs_run": len(log.history) - 1, "train_time_s": log.elapsed_s,
                         "final_multiplier": multiplier, "threads": torch.get_num_threads(),
                         "torch": str(torch.__version__), "history": log.history},
        })

    log.epoch(epoch=0, **validate())
    for epoch in range(1, int(cfg["epochs"]) + 1):
        plan = []
        for i, (_, _, _, _, n_tr, _) in enumerate(data):
            order = torch.randperm(n_tr, generator=generator)
            plan += [(i, order[s0:s0 + batch_size]) for s0 in range(0, n_tr, batch_size)]
        train_loss, skipped = 0.0, 0
        for b in torch.randperm(len(plan), generator=generator).tolist():
            i, rows = plan[b]
            _, params, tr, _, _, _ = data[i]
            t = loss_terms(network, _take(tr, rows), params, cfg, multiplier)
            optimiser.zero_grad()
            if not torch.isfinite(t["loss"]):
                skipped += 1
                continue
            t["loss"].backward()
            optimiser.step()
            if float(cfg["beta"]):
                multiplier = max(0.0, multiplier + float(cfg["rho"]) * t["v"].item())  # projected dual ascent
            train_loss += t["loss"].item() / len(plan)
        if schedule is not None:
            schedule.step()
        values = validate()
        # model selection on the loss without the multiplier's drift: the (42) part plus the violation
        score = values["val_loss"] - float(cfg["beta"]) * multiplier * values["val_v"]
        if score < best:
            best, best_epoch, since_best = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            since_best += 1
        log.epoch(epoch=epoch, train_loss=train_loss, multiplier=multiplier, lr=optimiser.param_groups[0]["lr"],
                  skipped_batches=skipped, **values)
        write_checkpoint()   # after every epoch: an interrupted training keeps its best model so far
        if cfg["patience"] and since_best >= int(cfg["patience"]):
            break
    return write_checkpoint()


@hookimpl
def cfbench_solvers():
    return [HeterogeneousGnn]
