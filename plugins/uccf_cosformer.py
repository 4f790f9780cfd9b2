"""``elu-cosformer``: joint AP clustering and UL/DL max-min power from positions (UC-CF paper, Sects. IV-V).

The paper's Tables I-II (layers, heads, width, threshold, trade-off, dropout, lr,
epochs, batch) and the symbols of its equations were lost in conversion; values
below marked [CHOSEN] are ours, and every departure from the text is listed in
"Deviations" at the end of this docstring.

Input (Sect. IV-A 1, eqs. (11), (28)-(29)). One token per UE; its features are the UE's
coordinates and those of all L APs, min-max scaled by the square's side, plus, per AP,
geometric link features computed from the same coordinates (no channel knowledge):
the wrap-around offset ``(dx, dy) / side``, the distance path gain without shadowing
``g_lk = -3.67 log10(d_lk / 1 m)`` (the model's dB/10 scale, standardised) and its
gap to the UE's best AP ``r_lk = g_lk - max_l' g_l'k``. A linear layer embeds each
token to ``d_model``; the same weights serve any number of UEs. Training adds
Gaussian noise of ``position_noise_m`` to UE positions (eq. (28)).

``inputs=lsf`` (training option, recorded in the checkpoint; NOT the paper's input, which is
positions only): every link's features also carry the large-scale fading the system
knows, ``instances.beta`` (the APs measure it from the pilots; the paper's Sect. V-A allows
"data that include channel modeling and estimation" at training time, but its model sees
positions only): ``(10 log10 beta_lk - LSF_DB_MEAN) / LSF_DB_STD`` and the gap
``log10 beta_lk - max_l' log10 beta_l'k`` (6 link features instead of 4). The prior term
of the cluster score stays on the *position* gap ``r_lk`` and nothing ranks by beta by
hand, so any use of beta in the clusters is learned.

Encoder (eqs. (12)-(14), (21)-(26)). ``layers`` pre-norm layers of multi-head attention
and a GELU feed-forward network (width 2 d_model), residual connections. Attention
``attention=``:

- ``elu`` (ELU-CosFormer): ``phi(x) = ELU(x) + 1`` on queries and keys (the +1 keeps
  the kernel positive, as in linear transformers), linear attention reweighted by the
  cosine of the UEs' *spatial* separation on the torus,
  ``w_ij = 1/2 + (cos(2 pi dx_ij / S) + cos(2 pi dy_ij / S)) / 4`` in [0, 1]; by
  ``cos(a - b) = cos a cos b + sin a sin b`` this is five linear attentions, O(K d^2);
- ``relu`` (CosFormer): the same with ``phi = ReLU``;
- ``softmax`` (Transformer): scaled dot-product softmax attention, O(K^2 d);
- ``performer``: FAVOR+ positive random features ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)``
  (``m = 2 d_head`` fixed Gaussian features, drawn from the training seed), no reweighting.

No token index enters anywhere, so the network is equivariant to permuting UEs
(``tests/uccf/test_uccf_solvers.py`` checks it).

Heads (eqs. (15)-(20)). Cluster scores ``s_lk = sigmoid(MLP([h_k; f_lk]) + a r_lk + c)``,
one small MLP shared by all APs on the UE's encoding and the link's features, plus a
learnable multiple ``a`` (init 2) of the gap ``r_lk`` and bias ``c`` (init 2) as a physics
prior (without training, the scores rank APs by distance relative to the UE's nearest).
The mask (eq. 16), ``mask=`` (the checkpoint's; ``top`` when it records none):

- ``top``: every AP keeps its ``tau_p`` highest-scoring UEs;
- ``pilot`` (the paper's "pilot-related clustering constraint"): every AP keeps, for each
  pilot, the one UE of highest score among the UEs on that pilot
  (:func:`cfbench.plugins.uccf_baselines.top_per_pilot`), so no two copilot UEs share an
  AP and no AP serves more than tau_p. The pilot indices are ``instances.pilot``, which
  the system assigns before any clustering (spec A.3); they are not channel knowledge,
  so the network's input stays "positions only".

then only scores above ``threshold``; a UE left with no AP gets its best AP with room
(:func:`cfbench.plugins.uccf_baselines.serve_every_ue`; under ``pilot``, room means no
copilot UE there, else that copilot UE is swapped out if another AP serves it), so every
cluster respects tau_p and serves every UE.
UL power ``p_k = p_max sigmoid(.)`` (eqs. 17-18). DL: ``rho_k = rho_scale sigmoid(.)``
(``rho_scale`` the training labels' maximum, min-max scaling as Sect. V-A step 3), then
one common factor per instance brings the most loaded AP to its budget ``rho_max``
(eq. (20)'s role: the AP-side power normalisation, which needs the APs' precoder norms
``w_lk``, i.e. the estimates' statistics the APs hold).

Training (Sect. V-B, Algorithm 1, dynamic supervision). Per batch (one K): forward, hard
clusters from the mask, labels = closed-form max-min UL/DL powers for *those* clusters
(:func:`uccf_model.maxmin_decision`, computed on the fly), and the loss (30)::

    L = MSE(p / p_max, p* / p_max) + MSE(rho / rho_scale, rho* / rho_scale) - lambda (F_power + w F_cluster)
    F_power   = (min_k SE^ul_k(p, D) + min_k SE^dl_k(rho, D)) / 2        predicted powers, hard clusters
    F_cluster = (SE^ul(t*_ul(D_st)) + SE^dl(t*_dl(D_st))) / 2            "perron": max-min SE of the clusters
            or  softmin_T over k and link of SE_k(p*, rho*, D_st)      "softmin": label powers, T = 0.02 bit/s/Hz

or, with ``cluster_loss=search``, ``+ w BCE(s, D_search)`` in place of ``- lambda w F_cluster``,
where ``D_search`` are clusters found by :func:`search_clusters` (a local search on the
closed-form max-min objective with the true beta, started from the model's own clusters:
each round the ``n_ues`` UEs needing the most power try their strongest unserved APs,
a full AP drops its lowest-score UE, under ``pilot`` the UE's copilot there; the best
improving move is kept), computed for every training instance once
(``search_every=0``) or every ``search_every`` epochs (about 95 s per pass over the
3 x 1024 instances of mr-k20/30/40, 4 rounds, one thread); ``search_links=changed``
restricts the BCE to the links the search added or dropped.

Batch means, from a torch copy of the MR closed forms (:func:`mr_coefficients_torch`,
tested equal to the evaluator). ``F_cluster`` is the only path to the cluster scores:
the hard mask passes gradients straight through (``D_st = hard + s - stop_grad(s)``),
so a link's score moves with its marginal value to the worst UEs at max-min powers.

Status of the clustering term: from positions (the paper's input) no form trains the clusters;
with ``inputs=lsf`` BCE to searched labels does (below). ``softmin`` (the
soft minimum over UEs of the SEs at the labels' powers) lowered the validation max-min
SE of the model's clusters from 0.452 to 0.18-0.20 bit/s/Hz within two epochs (mean of
mr-k20/30/40): at max-min powers every UE has the same SINR, so it weighs all UEs alike
and rewards links of strong UEs. ``perron`` (the exact max-min SE ``t* = 1 / rho(M + u a_j*^T)``
with its gradient from the Perron vectors, :func:`maxmin_sinr_torch`, tested against the
closed form and a finite difference) fine-tuned from the shipped model for 10 epochs
stayed flat (0.4516 -> 0.4523 after one epoch) and then drifted down (0.425 after 10). So the
default and the shipped positions weights use ``cluster_weight=0``: the cluster scores are the
untrained prior ``sigmoid(2 r_lk + 2)`` (every AP keeps the tau_p UEs for which it is
nearest relative to their nearest AP), and training learns the UL and DL power heads
only: the clustering is not learned.

``search`` (supervised by searched labels, from scratch, 30-epoch recipe, ``cluster_weight=1``,
``search_every=10``): the labels are good (the search raises the training instances'
closed-form max-min SE by 6.9 % on average over mr-k20/30/40 from the prior's clusters),
but the validation max-min SE of the model's clusters went 0.4516 (prior) -> 0.4502
(epoch 1) -> 0.4471-0.4504 (epochs 2-15, stopped there): what the search fixes is mostly
the shadowing, which positions cannot show, and BCE on all links mostly retrains the
ranking the prior already had. ``search_links=changed`` (12 epochs planned,
``search_every=6``) destroyed the ranking: 0.321 after one epoch, 0.266 after two, ~0
after three (stopped). Fine-tuning the shipped model (``--init``, lr 3e-4, labels once):
all-links BCE 0.4510, 0.4509, 0.4494, 0.4485, 0.4483, 0.4477 over six epochs;
``search_links=pairs`` (at each AP, a logistic loss on the added UE's score over the
dropped one's) 0.445, 0.368, 0.312 (stopped): it learns to favour the bottleneck UEs
everywhere, not just where shadowing makes them worth it. The pilot mask does not help the prior either (validation 0.4352
vs 0.4516 with ``top``; seed-1 mr-k60 0.1160 vs 0.1208): in the MR closed forms an AP that
serves two copilot UEs adds no contamination (every AP estimates every UE; the
coherent term of c_kj is there whenever j is strong at k's APs), so the constraint only
removes choice. The gap to DCC at K = 60 is the shadowing: ranking by the true gap
``log beta_lk - max_l' log beta_l'k`` with the ``top`` mask gives 0.192 at mr-k60 (DCC 0.149)
on 40 instances of the training seed's mr-k60 stream (indices 1024-1063), where the
distance prior gives 0.123.

Learned with ``inputs=lsf`` (shipped as ``uccf-elu-cosformer-lsf.pt``): from the lsf model
trained with ``cluster_weight=0`` (15 epochs, 303 s; its clusters are the distance prior,
validation 0.4516, its own decision 0.2926 where the positions model reaches 0.146),
fine-tuned 10 epochs with ``cluster_loss=search``, ``cluster_weight=1``, ``search_rounds=6``,
``search_every=2`` (847 s; about 170 s per label pass): validation 0.4555, 0.4589, 0.4614,
0.4621, 0.4628, 0.4635, 0.4638, 0.4641 (kept, epoch 8), 0.4643, 0.4644, while the
search's gain over the model's own clusters fell from 7.1 % to 1.4 %: the head learned
what the search does. Validation per K 0.6130 / 0.4520 / 0.3273 (prior 0.6069 / 0.4426 /
0.3053, DCC 0.6037 / 0.4256 / 0.3098, ranking by the true beta gap 0.6161 / 0.4565 /
0.3376, i.e. 0.4701). Seed 1, 50 instances, closed-form power on its clusters: mr-k40
0.3192, mr-k50 0.2295, mr-k60 0.1587 (prior 0.3035 / 0.1989 / 0.1208, DCC 0.2720 / 0.1978 /
0.1315); its own powers (``elu-cosformer``) 0.1615 at mr-k40 and 0.0431 at mr-k60 (positions
model 0.0553 / 0.0087; the lsf model before the cluster fine-tuning 0.1407 / 0.0230).
``cluster_loss=perron`` from the same lsf start does not learn (validation 0.446 -> 0.436 over
six epochs, collapse to 0.10 at the eighth): the searched labels are what teach it.

What does beat the prior from positions is not learned: ``elu-cosformer-opt`` with ``refine_rounds=4``
runs :func:`search_clusters` at test time from the model's clusters (it uses the same true
beta as the closed-form powers this solver already computes): validation 0.4653 (0.4674
under ``pilot``), seed-1 mr-k40 0.3219 (prior 0.3035, DCC 0.2720), mr-k60 0.1741 (prior
0.1208, DCC 0.1315), at a median 110 / 205 ms per instance instead of about 13 / 15 ms.
``scripts/uccf_cluster_checks.py`` reproduces the validation, mask and gauge figures.

AdamW; the epoch with the best validation score (mean objective of the model's decision plus that of its clusters with closed-form
power, on held-out instances of each training K) is kept. Training instances come
from the scenarios' generators at seed ``TRAIN_SEED_OFFSET + seed``.

Deviations from the paper (also in the README): the optional ``inputs=lsf`` model sees the
large-scale fading beta (the paper's model sees positions only); hyper-parameter values [CHOSEN]
(lost from Tables I-II); link features and a per-AP shared cluster head in place of
one linear layer to L outputs (same information, AP-symmetric); spatial instead of
token-index cosine reweighting (UEs have no order); the distance-gap prior in the score;
the DL budget by common scaling; the fairness term as written above (the paper's
penalty formula was lost); MR closed forms for labels and penalty (the ``mr``
scenarios; labels for ``mmse`` cost a Monte Carlo per instance); no dropout.

Weights: ``plugins/weights/uccf-elu-cosformer.pt`` (one model, L = 16, trained on
``mr-k20,mr-k30,mr-k40``, 30 epochs of 1024 instances each, about 8.5 min on one thread) and
``plugins/weights/uccf-elu-cosformer-lsf.pt`` (``inputs=lsf``, learned clusters; same scenarios,
15 + 10 epochs as above, about 19 min on one thread of a 2-core machine shared with two other
jobs); ``scripts/train_uccf.py`` retrains everything shipped.
Options: ``weights=PATH``, ``inputs=positions|lsf`` (without ``weights``: which shipped checkpoint,
default ``positions``; with it, must match the checkpoint's), ``threshold=`` and ``mask=`` (default: the checkpoint's),
``position_noise_m=`` (test-time localisation error, seeded per instance);
``elu-cosformer-opt`` also ``refine_rounds=`` (default 0: the model's clusters as they are).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from cfbench import Instances, Option, Solver, hookimpl, instance_rng
from cfbench.api import CfbenchError
from cfbench.learning import (TrainingLog, check_training_sizes, load_checkpoint, save_checkpoint, seed_everything,
                               training_options)
from cfbench.plugins.uccf_baselines import serve_every_ue, top_per_ap, top_per_pilot
from cfbench.problems import uccf_model as um

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: attention -> shipped checkpoint in WEIGHTS_DIR (``scripts/train_uccf.py`` retrains them)
SHIPPED_WEIGHTS = {"elu": "uccf-elu-cosformer.pt"}
#: inputs -> shipped checkpoint (ELU attention)
SHIPPED_INPUTS = {"positions": "uccf-elu-cosformer.pt", "lsf": "uccf-elu-cosformer-lsf.pt"}
ATTENTIONS = ("elu", "relu", "softmax", "performer")
#: ``positions``: the paper's input; ``lsf``: also the large-scale fading beta per link
INPUTS = ("positions", "lsf")
MASKS = ("pilot", "top")
CLUSTER_LOSSES = ("perron", "softmin", "search")
TRAIN_SEED_OFFSET = 70_000_000
#: ``instance_rng`` stream of the test-time position noise
POSITION_NOISE_STREAM = 3101
N_LINK_FEATURES = 4
#: extra link features with ``inputs=lsf``: standardised beta_lk in dB and its gap to the UE's strongest AP
N_LSF_FEATURES = 2
#: fixed standardisation of 10 log10 beta_lk (mean and std over mr-k20..k60 instances of the training stream)
LSF_DB_MEAN, LSF_DB_STD = -18.7, 8.85
#: temperature (bit/s/Hz) of the soft minimum in the clustering term of the loss
SOFTMIN_TEMPERATURE = 0.02

TRAINING_OPTIONS = (
    Option("attention", str, "elu", "attention of the encoder", choices=ATTENTIONS),
    Option("inputs", str, "positions", "network input: positions (the paper's) or lsf (also the large-scale "
           "fading beta of every link)", choices=INPUTS),
    Option("samples", int, 1024, "training instances per scenario (plus validation)"),
    Option("validation", int, 64, "held-out instances per scenario"),
    Option("epochs", int, 30, "training epochs"),
    Option("batch_size", int, 32, "instances per step [CHOSEN]"),
    Option("lr", float, 1e-3, "AdamW learning rate [CHOSEN]"),
    Option("weight_decay", float, 1e-4, "AdamW weight decay"),
    Option("d_model", int, 64, "encoder width [CHOSEN]"),
    Option("heads", int, 4, "attention heads [CHOSEN]"),
    Option("layers", int, 2, "encoder layers [CHOSEN]"),
    Option("threshold", float, 0.0, "clustering threshold delta [CHOSEN; lost]: 0 keeps tau_p UEs at every AP"),
    Option("mask", str, "top", "clustering mask: top (tau_p UEs per AP) or pilot (one UE per pilot per AP)",
           choices=MASKS),
    Option("cluster_loss", str, "perron", "cluster term: perron, softmin (F_cluster) or search (BCE to "
           "local-search labels)", choices=CLUSTER_LOSSES),
    Option("cluster_weight", float, 0.0, "w; 0: the cluster scores keep their prior (docstring: Status)"),
    Option("search_rounds", int, 4, "rounds of the label search (cluster_loss=search)"),
    Option("search_links", str, "all", "search loss on: all links (BCE), only those the search changed (BCE), "
           "or pairs (at each AP, logistic loss on the added UE's score over the dropped one's)",
           choices=("all", "changed", "pairs")),
    Option("search_every", int, 0, "recompute the search labels every this many epochs from the model's "
           "clusters (0: once, from the starting model's)"),
    Option("fairness_weight", float, 1.0, "lambda of (30) [CHOSEN]"),
    Option("position_noise_m", float, 5.0, "std of the position noise of eq. (28), metres [CHOSEN]"),
    Option("grad_clip", float, 1.0, "max gradient norm per step"),
    Option("init", str, None, "checkpoint to start from (fine-tuning)"),
)
DEFAULTS = {o.name: o.default for o in TRAINING_OPTIONS}


def _torch():
    import torch

    return torch


# --- inputs (positions only) -----------------------------------------------------------------

def _wrapped(delta: np.ndarray, side: float | None) -> np.ndarray:
    return delta if side is None else (delta + side / 2.0) % side - side / 2.0


def link_geometry(ap_xy_m: np.ndarray, ue_xy_m: np.ndarray, params) -> dict[str, np.ndarray]:
    """Offsets ``(n, L, K, 2)`` on the torus and the distance gain ``g`` and gap ``r`` (n, L, K)
    in the model's dB/10 scale, from positions only."""
    side = params.side_m if params.wrap_around else None
    offset = _wrapped(ue_xy_m[:, None, :, :] - ap_xy_m[:, :, None, :], side)
    d = np.sqrt(np.sum(offset ** 2, axis=-1) + params.height_difference_m ** 2)
    g = -params.pathloss_exponent * np.log10(d)
    return {"offset": offset, "gain": g, "gap": g - g.max(axis=1, keepdims=True)}


def n_link_features(inputs: str = "positions") -> int:
    if inputs not in INPUTS:
        raise CfbenchError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
    return N_LINK_FEATURES + (N_LSF_FEATURES if inputs == "lsf" else 0)


def network_inputs(ap_xy_m: np.ndarray, ue_xy_m: np.ndarray, params, beta: np.ndarray | None = None):
    """Tokens (n, K, 2 + 2L + FL), link features (n, L, K, F), UE angles (n, K, 2) and the
    position gap r (n, L, K), float32 tensors; F = 4 from positions, 6 when the large-scale
    fading ``beta`` (n, L, K) is given (``inputs=lsf``): also ``(10 log10 beta - mean) / std``
    and ``log10 beta_lk - max_l' log10 beta_l'k`` (the dB/10 scale of r)."""
    torch = _torch()
    side = params.side_m
    geo = link_geometry(ap_xy_m, ue_xy_m, params)
    n, L, K = geo["gain"].shape
    gain = (geo["gain"] + 8.0) / 1.0                       # g ~ -3.67 log10(50..350 m): centre near 0
    parts = [geo["offset"] / side, gain[..., None], geo["gap"][..., None]]
    if beta is not None:
        beta = np.asarray(beta, dtype=float)
        if beta.shape != (n, L, K):
            raise CfbenchError(f"lsf inputs need beta of shape {(n, L, K)} (instances, APs, UEs); got {beta.shape}")
        log_beta = np.log10(np.maximum(beta, 1e-300))
        parts += [((10.0 * log_beta - LSF_DB_MEAN) / LSF_DB_STD)[..., None],
                  (log_beta - log_beta.max(axis=1, keepdims=True))[..., None]]
    links = np.concatenate(parts, axis=-1)
    F = links.shape[-1]
    ue = (ue_xy_m % side) / side                            # (n, K, 2) in [0, 1)
    ap = np.broadcast_to(((ap_xy_m % side) / side).reshape(n, 1, 2 * L), (n, K, 2 * L))
    per_ap = np.transpose(links, (0, 2, 1, 3)).reshape(n, K, L * F)
    tokens = np.concatenate([ue, ap, per_ap], axis=-1)
    angles = 2.0 * np.pi * ue
    f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    return f(tokens), f(links), f(angles), f(geo["gap"])


# --- the network ----------------------------------------------------------------------------

def build_network(n_aps: int, d_model: int = 64, heads: int = 4, layers: int = 2, attention: str = "elu",
                  feature_seed: int = 0, inputs: str = "positions"):
    torch = _torch()
    n_links = n_link_features(inputs)
    nn = torch.nn
    if attention not in ATTENTIONS:
        raise CfbenchError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
    if d_model % heads:
        raise CfbenchError(f"d_model = {d_model} is not a multiple of heads = {heads}")
    d_head = d_model // heads

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(d_model, 3 * d_model)            # eq. (21)
            self.out = nn.Linear(d_model, d_model)                # eq. (26)
            if attention == "performer":
                g = torch.Generator().manual_seed(feature_seed)
                self.register_buffer("omega", torch.randn(d_head, 2 * d_head, generator=g))

        def forward(self, x, angles):
            n, K, _ = x.shape
            q, k, v = self.qkv(x).view(n, K, 3, heads, d_head).permute(2, 0, 3, 1, 4)   # (n, H, K, d)
            if attention == "softmax":
                y = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d_head), dim=-1) @ v
                return self.out(y.transpose(1, 2).reshape(n, K, d_model))
            if attention == "performer":
                scale = d_head ** -0.25
                q, k = q * scale, k * scale
                fq = torch.exp(q @ self.omega - 0.5 * (q ** 2).sum(-1, keepdim=True)) / math.sqrt(self.omega.shape[1])
                fk = torch.exp(k @ self.omega - 0.5 * (k ** 2).sum(-1, keepdim=True)) / math.sqrt(self.omega.shape[1])
                kv = fk.transpose(-1, -2) @ v                                            # (n, H, m, d)
                y = (fq @ kv) / (fq @ fk.sum(-2, keepdim=True).transpose(-1, -2) + 1e-6)
                return self.out(y.transpose(1, 2).reshape(n, K, d_model))
            phi = (lambda t: torch.nn.functional.elu(t) + 1.0) if attention == "elu" else torch.relu
            fq, fk = phi(q), phi(k)                                                       # eqs. (23)-(24)
            # spatial cosine reweighting w_ij = 1/2 + (cos dx + cos dy) / 4 as five linear terms (eq. 25)
            c, s = torch.cos(angles), torch.sin(angles)                                  # (n, K, 2)
            key_w = torch.cat([torch.ones_like(c[..., :1]), c, s], dim=-1)               # (n, K, 5)
            query_w = key_w * torch.tensor([0.5, 0.25, 0.25, 0.25, 0.25])
            kw = fk.unsqueeze(2) * key_w.transpose(1, 2)[:, None, :, :, None]           # (n, H, 5, K, d)
            kv = kw.transpose(-1, -2) @ v.unsqueeze(2)                                   # (n, H, 5, d, d)
            ksum = kw.sum(-2)                                                            # (n, H, 5, d)
            qw = fq.unsqueeze(2) * query_w.transpose(1, 2)[:, None, :, :, None]         # (n, H, 5, K, d)
            num = (qw @ kv).sum(2)                                                       # (n, H, K, d)
            den = (qw * ksum.unsqueeze(-2)).sum(-1).sum(2)                               # (n, H, K)
            y = num / (den.unsqueeze(-1) + 1e-6)
            return self.out(y.transpose(1, 2).reshape(n, K, d_model))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
            self.attention = Attention()
            self.ffn = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

        def forward(self, x, angles):                                                    # eqs. (12)-(14)
            x = x + self.attention(self.norm1(x), angles)
            return x + self.ffn(self.norm2(x))

    class CosFormerUccf(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(2 + (2 + n_links) * n_aps, d_model)                   # eq. (11)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
            self.norm = nn.LayerNorm(d_model)
            self.cluster = nn.Sequential(nn.Linear(d_model + n_links, 32), nn.GELU(), nn.Linear(32, 1))
            self.prior = nn.Parameter(torch.tensor([2.0, 2.0]))                         # a, c of the docstring
            self.ul = nn.Linear(d_model, 1)
            self.dl = nn.Linear(d_model, 1)
            nn.init.zeros_(self.cluster[2].weight)
            nn.init.zeros_(self.cluster[2].bias)

        def forward(self, tokens, links, angles, gap):
            """-> cluster scores (n, L, K) in (0, 1), UL and DL power fractions (n, K)."""
            h = self.embed(tokens)
            for layer in self.layers:
                h = layer(h, angles)
            h = self.norm(h)
            n, L, K, _ = links.shape
            joint = torch.cat([h.unsqueeze(1).expand(n, L, K, d_model), links], dim=-1)
            logit = self.cluster(joint).squeeze(-1) + self.prior[0] * gap + self.prior[1]
            return (torch.sigmoid(logit), torch.sigmoid(self.ul(h).squeeze(-1)),
                    torch.sigmoid(self.dl(h).squeeze(-1)))

    return CosFormerUccf()


def hard_clusters(score: np.ndarray, tau_p: int, threshold: float, mask: str = "top",
                  pilot: np.ndarray | None = None) -> np.ndarray:
    """Eq. (16): ``mask="top"``: every AP keeps its tau_p UEs of largest score; ``"pilot"``:
    every AP keeps, for each pilot, the UE of largest score among those on it (``pilot``
    (n, K) needed), so no two copilot UEs share an AP; then scores above ``threshold``;
    every UE kept served (pilot-aware under ``"pilot"``)."""
    if mask not in MASKS:
        raise CfbenchError(f"mask must be one of {', '.join(MASKS)}, got {mask!r}")
    if mask == "pilot":
        if pilot is None:
            raise CfbenchError("the pilot mask needs the instances' pilot indices")
        kept = top_per_pilot(score, pilot) * (score > threshold)
        return serve_every_ue(kept, score, tau_p, pilot=pilot)
    kept = top_per_ap(score, tau_p) * (score > threshold)
    return serve_every_ue(kept, score, tau_p)


def maxmin_objective(beta: np.ndarray, gamma: np.ndarray, pilot: np.ndarray, clusters: np.ndarray,
                     params) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The judge's objective ``min(SE^ul, SE^dl)`` (n,) of ``clusters`` (n, L, K) with closed-form
    max-min powers (MR, A.7-A.8), and those powers."""
    coeffs = um.mr_coefficients(beta, gamma, pilot, clusters, params.n_antennas)
    powers = um.maxmin_powers(coeffs, params.p_max_mw, params.rho_max_mw)
    value = np.minimum(params.ul_pre_log * np.log2(1.0 + powers["ul_sinr"]),
                       params.dl_pre_log * np.log2(1.0 + powers["dl_sinr"]))
    served = clusters.sum(axis=1).min(axis=1) > 0
    return np.where(served, value, -np.inf), powers


def search_clusters(instances: Instances, clusters: np.ndarray, score: np.ndarray, mask: str = "top",
                    rounds: int = 4, n_ues: int = 3, n_aps: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local search on the closed-form max-min objective (true beta, with shadowing), from
    ``clusters`` (n, L, K). Each round, per instance: the ``n_ues`` UEs that need the most
    power at max-min (``p_k / p_max + rho_k / max rho``: the bottleneck) each try their
    ``n_aps`` strongest unserved APs; if the AP is full (``top``) it drops its UE of lowest
    ``score`` that another AP also serves, under ``pilot`` it drops the UE's copilot there
    (if another AP serves it) so the pilot rule holds; the best move that raises the
    objective is kept. Every move keeps tau_p per AP and every UE served, so the result is
    never worse than the start. Returns the clusters, their objective and the start's (n,)."""
    p = instances.params
    beta, gamma = np.asarray(instances.beta, float), np.asarray(instances.gamma, float)
    pilot = np.asarray(instances.pilot)
    current = np.array(clusters, dtype=float, copy=True)
    value, powers = maxmin_objective(beta, gamma, pilot, current, p)
    start = value.copy()
    n, L, K = current.shape
    active = np.ones(n, dtype=bool)
    for _ in range(int(rounds)):
        cand, owner = [], []
        need = powers["ul_power_mw"] / p.p_max_mw + powers["dl_power_mw"] / np.maximum(
            powers["dl_power_mw"].max(axis=1, keepdims=True), 1e-300)
        for i in np.nonzero(active)[0]:
            c = current[i]
            for k in np.argsort(-need[i], kind="stable")[:n_ues]:
                unserved = np.nonzero(c[:, k] == 0)[0]
                for l in unserved[np.argsort(-beta[i, unserved, k], kind="stable")][:n_aps]:
                    new = c.copy()
                    if mask == "pilot":
                        held = np.nonzero(c[l] * (pilot[i] == pilot[i, k]))[0]
                        if held.size:
                            j = held[0]
                            if c[:, j].sum() <= 1:
                                continue
                            new[l, j] = 0.0
                    if new[l].sum() >= p.tau_p:
                        movable = [j for j in np.nonzero(new[l])[0] if new[:, j].sum() > 1]
                        if not movable:
                            continue
                        new[l, min(movable, key=lambda j: score[i, l, j])] = 0.0
                    new[l, k] = 1.0
                    cand.append(new)
                    owner.append(i)
        if not cand:
            break
        owner = np.asarray(owner)
        cand = np.stack(cand)
        v, pw = maxmin_objective(beta[owner], gamma[owner], pilot[owner], cand, p)
        improved = np.zeros(n, dtype=bool)
        for i in np.unique(owner):
            rows = np.nonzero(owner == i)[0]
            best = rows[np.argmax(v[rows])]
            if v[best] > value[i] * (1.0 + 1e-9):
                current[i], value[i] = cand[best], v[best]
                for key in ("ul_power_mw", "dl_power_mw"):
                    powers[key][i] = pw[key][best]
                improved[i] = True
        active &= improved
        if not active.any():
            break
    return current, value, start


def mr_coefficients_torch(beta, gamma, same_pilot_offdiag, clusters, n_antennas: int):
    """Torch copy of :func:`uccf_model.mr_coefficients` (A.7): signal, interference, noise, share."""
    torch = _torch()
    N = float(n_antennas)
    g = clusters * gamma
    total = g.sum(-2)
    noncoherent = N * g.transpose(-1, -2) @ beta
    coherent = (g / beta).transpose(-1, -2) @ beta
    interference = noncoherent + N ** 2 * same_pilot_offdiag * coherent ** 2
    share = g / torch.clamp(total.unsqueeze(-2), min=1e-30)
    return N ** 2 * total ** 2, interference, N * total, share


def se_per_ue_torch(coeffs, ul_mw, dl_mw, params):
    """UL and DL SE of every UE (n, K) for powers ``ul_mw``, ``dl_mw`` (n, K) (A.5-A.6 with MR)."""
    torch = _torch()
    signal, interference, noise, _ = coeffs
    ul = ul_mw * signal / ((interference @ ul_mw.unsqueeze(-1)).squeeze(-1) + noise)
    per_unit = dl_mw / torch.clamp(noise, min=1e-30)
    dl = per_unit * signal / ((interference.transpose(-1, -2) @ per_unit.unsqueeze(-1)).squeeze(-1) + 1.0)
    return params.ul_pre_log * torch.log2(1 + ul), params.dl_pre_log * torch.log2(1 + dl)


def _perron_root(a):
    """Spectral radius of non-negative ``a`` (n, K, K) as ``y^T a x / y^T x`` with the right and
    left Perron vectors x, y computed without gradient: its value, and its gradient by the
    eigenvalue perturbation formula ``d rho = y^T da x / y^T x``."""
    torch = _torch()
    m = a.detach().numpy()
    def vector(mat):
        w, v = np.linalg.eig(mat)
        top = np.argmax(np.abs(w), axis=-1)
        return np.abs(np.take_along_axis(v, top[:, None, None], axis=-1)[..., 0].real)
    x, y = torch.as_tensor(vector(m)), torch.as_tensor(vector(np.swapaxes(m, -1, -2)))
    return torch.einsum("nk,nki,ni->n", y, a, x) / torch.einsum("nk,nk->n", y, x)


def maxmin_sinr_torch(coeffs, label: dict, params):
    """Max-min UL and DL SINR ``t* = 1 / rho(M + u a_j*^T)`` (A.8) of the clusters ``coeffs`` were
    built from (differentiable in them), with the binding row j* taken from the closed-form
    labels (UL: the UE at p_max; DL: the AP at its budget); every UE must be served."""
    torch = _torch()
    signal, interference, noise, share = coeffs
    n, K = signal.shape
    rows = torch.arange(n)
    m_ul = interference / signal.unsqueeze(-1)
    u = noise / signal
    j = torch.as_tensor(np.argmax(label["ul_power_mw"], axis=1))
    a_ul = m_ul.clone()
    a_ul[rows, :, j] = a_ul[rows, :, j] + u / params.p_max_mw
    m_dl = interference.transpose(-1, -2) * (noise.unsqueeze(-1) / (noise.unsqueeze(-2) * signal.unsqueeze(-1)))
    ap = np.argmax(np.einsum("nlk,nk->nl", share.detach().numpy(), label["dl_power_mw"]), axis=1)
    a_dl = m_dl + u.unsqueeze(-1) * share[rows, torch.as_tensor(ap)].unsqueeze(-2) / params.rho_max_mw
    return 1.0 / _perron_root(a_ul), 1.0 / _perron_root(a_dl)


def min_se_torch(coeffs, ul_mw, dl_mw, params):
    """Worst UE's UL and DL SE (n,)."""
    ul, dl = se_per_ue_torch(coeffs, ul_mw, dl_mw, params)
    return ul.min(-1).values, dl.min(-1).values


# --- the solvers ----------------------------------------------------------------------------

def network_from_checkpoint(checkpoint: dict, params=None):
    config = checkpoint["model"]
    if params is not None and config["n_aps"] != params.n_aps:
        raise CfbenchError(f"checkpoint trained for L = {config['n_aps']} APs; scenario has L = {params.n_aps}")
    network = build_network(config["n_aps"], config["d_model"], config["heads"], config["layers"],
                            config["attention"], config.get("feature_seed", 0), config.get("inputs", "positions"))
    network.load_state_dict(checkpoint["state_dict"])
    network.eval()
    return network


class EluCosFormer(Solver):
    name = "elu-cosformer"
    kind = "learned"
    problems = ("uccf",)
    solves_batches = True
    description = ("Predicted UC-CF: ELU-CosFormer on UE/AP positions (inputs=lsf: also beta) -> clusters "
                   "(top-tau_p per AP, threshold) and UL/DL powers")
    options_spec = (
        Option("weights", str, None, "checkpoint file (default: the shipped one of the attention)"),
        Option("attention", str, "elu", "attention whose shipped checkpoint is used when weights is not set",
               choices=ATTENTIONS),
        Option("inputs", str, None, "positions (the paper's input) or lsf (also the large-scale fading): picks the "
               "shipped checkpoint when weights is not set (default positions), else must match the checkpoint's",
               choices=INPUTS),
        Option("threshold", float, None, "clustering threshold delta (default: the checkpoint's)"),
        Option("mask", str, None, "clustering mask, top or pilot (default: the checkpoint's; top if it has none)"),
        Option("position_noise_m", float, 0.0, "std of the noise added to the UE positions at test time, metres"),
    )
    training_options_spec = TRAINING_OPTIONS

    @classmethod
    def artifacts(cls, scenario: str, options) -> dict[str, Path]:
        path = options["weights"]
        inputs = options["inputs"]
        if inputs is not None and inputs not in INPUTS:
            raise CfbenchError(f"{cls.name}: inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        if path is None and inputs not in (None, "positions"):
            if options["attention"] != "elu":
                raise CfbenchError(f"{cls.name}: inputs={inputs} is shipped for attention elu only")
            path = WEIGHTS_DIR / SHIPPED_INPUTS[inputs]
        if path is None:
            attention = options["attention"]
            if attention not in SHIPPED_WEIGHTS:
                raise CfbenchError(f"no shipped uccf weights for attention {attention!r} (shipped: "
                                   f"{', '.join(SHIPPED_WEIGHTS)}); train with 'cfbench train --solver elu-cosformer "
                                   f"--problem uccf --scenario mr-k20,mr-k30,mr-k40 --set attention={attention}' "
                                   "and pass weights=PATH")
            path = WEIGHTS_DIR / SHIPPED_WEIGHTS[attention]
        return {"weights": Path(path)}

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        torch = _torch()
        path = self.artifacts(scenario, self.options)["weights"]
        inputs = self.options["inputs"]
        self.checkpoint = load_checkpoint(path)
        self.network = network_from_checkpoint(self.checkpoint, problem.scenario_params(scenario))
        self.inputs = str(self.checkpoint["model"].get("inputs", "positions"))
        if inputs is not None and inputs != self.inputs:
            raise CfbenchError(f"{self.name}: inputs={inputs} but the checkpoint {path} was trained on "
                               f"inputs={self.inputs}")
        threshold = self.options["threshold"]
        self.threshold = float(self.checkpoint["model"]["threshold"] if threshold is None else threshold)
        mask = self.options["mask"]
        self.mask = str(self.checkpoint["model"].get("mask", "top") if mask is None else mask)
        if self.mask not in MASKS:
            raise CfbenchError(f"{self.name}: mask must be one of {', '.join(MASKS)}, got {self.mask!r}")
        self.noise_m = self.options["position_noise_m"]
        self._torch = torch

    def predict(self, instances: Instances):
        """Cluster scores (n, L, K), UL and DL power fractions (n, K) as numpy arrays."""
        torch = self._torch
        ue_xy = np.asarray(instances.ue_xy_m, dtype=float)
        if self.noise_m > 0:
            ue_xy = ue_xy + np.stack([instance_rng(instances, i, POSITION_NOISE_STREAM).normal(0, self.noise_m, ue_xy.shape[1:])
                                      for i in range(len(instances))])
        with torch.inference_mode():
            inputs = network_inputs(np.asarray(instances.ap_xy_m, dtype=float), ue_xy, instances.params,
                                    _lsf(instances, self.inputs))
            score, ul, dl = (t.double().numpy() for t in self.network(*inputs))
        return score, ul, dl

    def clusters(self, instances: Instances, score: np.ndarray) -> np.ndarray:
        return hard_clusters(score, instances.params.tau_p, self.threshold, self.mask, np.asarray(instances.pilot))

    def solve(self, instances: Instances):
        from cfbench.plugins.uccf_baselines import fit_dl_budget

        p = instances.params
        score, ul, dl = self.predict(instances)
        clusters = self.clusters(instances, score)
        rho = dl * float(self.checkpoint["output"]["rho_scale_mw"])
        return {"clusters": clusters, "ul_power_mw": np.clip(ul * p.p_max_mw, 0.0, p.p_max_mw),
                "dl_power_mw": fit_dl_budget(instances, clusters, rho)}

    @classmethod
    def check_training(cls, problem, scenarios, cfg) -> None:
        """``samples`` training and ``validation`` held-out instances, at least one of each."""
        check_training_sizes(cls.name, n_train=int(cfg["samples"]), n_validation=int(cfg["validation"]),
                             batch_size=int(cfg["batch_size"]), epochs=int(cfg["epochs"]),
                             validation_flag="validation")

    @classmethod
    def train(cls, problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
              report: Callable[[dict], None] | None = None, **options) -> Path:
        """Train on ``scenarios`` (same L) by dynamic supervision and write the checkpoint."""
        return train(problem, scenarios, seed=seed, out=out, report=report, **options)


class EluCosFormerOpt(EluCosFormer):
    name = "elu-cosformer-opt"
    description = "Optimal UC-CF: the ELU-CosFormer's clusters with closed-form max-min UL/DL power [M22]"

    options_spec = EluCosFormer.options_spec + (
        Option("refine_rounds", int, 0, "rounds of local search on the closed-form objective from the model's "
               "clusters (search_clusters; 0: none, the model's clusters as they are)"),
    )

    def solve(self, instances: Instances):
        score, _, _ = self.predict(instances)
        clusters = self.clusters(instances, score)
        rounds = int(self.options["refine_rounds"])
        if rounds > 0 and instances.params.combiner == "mr":
            clusters = search_clusters(instances, clusters, score, self.mask, rounds=rounds)[0]
        return um.maxmin_decision(instances, clusters)



# --- training --------------------------------------------------------------------------------

def _tensors(instances: Instances):
    torch = _torch()
    pilot = np.asarray(instances.pilot)
    copilot = um.same_pilot(pilot) * (1.0 - np.eye(pilot.shape[1]))
    f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    return f(instances.beta), f(instances.gamma), f(copilot)


def _lsf(instances: Instances, inputs: str) -> np.ndarray | None:
    """The large-scale fading the network sees with ``inputs=lsf`` (the APs measure it from
    pilots), else None."""
    return np.asarray(instances.beta, dtype=float) if inputs == "lsf" else None


def _noisy(instances: Instances, sigma_m: float, rng: np.random.Generator) -> np.ndarray:
    ue = np.asarray(instances.ue_xy_m, dtype=float)
    return ue + rng.normal(0.0, sigma_m, ue.shape) if sigma_m > 0 else ue


def train(problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
          report: Callable[[dict], None] | None = None, **options) -> Path:
    torch = _torch()
    cfg = training_options("elu-cosformer", TRAINING_OPTIONS, options)
    params = [problem.scenario_params(s) for s in scenarios]
    if len({(p.n_aps, p.combiner) for p in params}) != 1 or params[0].combiner != "mr":
        raise CfbenchError(f"train on mr scenarios with one L; got {', '.join(scenarios)}")
    seed_everything(seed)
    log = TrainingLog(report)
    rng = np.random.default_rng(seed)
    n_train, n_val = int(cfg["samples"]), int(cfg["validation"])
    data = [problem.sample(s, n_train + n_val, TRAIN_SEED_OFFSET + seed) for s in scenarios]
    start = load_checkpoint(Path(cfg["init"])) if cfg["init"] else None
    if start is not None:
        network = network_from_checkpoint(start, params[0])
        for key in ("d_model", "heads", "layers", "attention"):
            cfg[key] = start["model"][key]
        cfg["inputs"] = start["model"].get("inputs", "positions")
    else:
        network = build_network(params[0].n_aps, int(cfg["d_model"]), int(cfg["heads"]), int(cfg["layers"]),
                                cfg["attention"], feature_seed=seed, inputs=cfg["inputs"])
    inputs = str(cfg["inputs"])
    threshold, mask = float(cfg["threshold"]), str(cfg["mask"])
    search = cfg["cluster_loss"] == "search" and float(cfg["cluster_weight"]) > 0
    # rho_scale: the largest DL label of DCC-clustered training instances (min-max scaling, Sect. V-A)
    if start is not None:
        rho_scale = float(start["output"]["rho_scale_mw"])
    else:
        rho_scale = max(float(um.maxmin_decision(d[:64], d.dcc_clusters[:64])["dl_power_mw"].max()) for d in data)
    optimiser = torch.optim.AdamW(network.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    bs = int(cfg["batch_size"])
    lam = float(cfg["fairness_weight"])

    labels: list[np.ndarray] = []

    def refresh_labels() -> dict:
        """Search labels of every training instance, from the model's noise-free clusters."""
        network.eval()
        labels.clear()
        gains = []
        with torch.no_grad():
            for d, p in zip(data, params):
                out = []
                for j in np.array_split(np.arange(n_train), max(1, n_train // 64)):
                    part = d[j]
                    score = network(*network_inputs(np.asarray(part.ap_xy_m, float), np.asarray(part.ue_xy_m, float),
                                                    p, _lsf(part, inputs)))[0].double().numpy()
                    start_clusters = hard_clusters(score, p.tau_p, threshold, mask, np.asarray(part.pilot))
                    found, value, start_value = search_clusters(part, start_clusters, score, mask,
                                                                rounds=int(cfg["search_rounds"]))
                    out.append(np.stack([found, start_clusters], axis=-1))
                    gains.append(value / start_value - 1.0)
                labels.append(np.concatenate(out))
        network.train()
        return {"search_gain": float(np.mean(np.concatenate(gains)))}

    def step(instances: Instances, p, target: np.ndarray | None) -> dict:
        tokens, links, angles, gap = network_inputs(np.asarray(instances.ap_xy_m, float),
                                                    _noisy(instances, float(cfg["position_noise_m"]), rng), p,
                                                    _lsf(instances, inputs))
        score, ul, dl = network(tokens, links, angles, gap)
        hard = hard_clusters(score.detach().double().numpy(), p.tau_p, threshold, mask, np.asarray(instances.pilot))
        label = um.maxmin_decision(instances, hard)                                      # dynamic supervision
        mse_ul = torch.mean((ul.double() - torch.as_tensor(label["ul_power_mw"] / p.p_max_mw)) ** 2)
        mse_dl = torch.mean((dl.double() - torch.as_tensor(label["dl_power_mw"] / rho_scale)) ** 2)
        beta, gamma, copilot = _tensors(instances)
        # powers: the worst UE's SE under the predicted powers on the (fixed) hard clusters
        coeffs = mr_coefficients_torch(beta, gamma, copilot, torch.as_tensor(hard), p.n_antennas)
        rho = dl.double() * rho_scale
        peak = (coeffs[3] * rho.unsqueeze(-2)).sum(-1).max(-1).values
        rho = rho * torch.clamp(p.rho_max_mw / peak, max=1.0).unsqueeze(-1)
        se_ul, se_dl = min_se_torch(coeffs, ul.double() * p.p_max_mw, rho, p)
        fair_powers = 0.5 * (se_ul + se_dl).mean()
        # clusters straight through (D_st = hard + s - stop_grad(s)) into the max-min SE of the clusters
        clusters = torch.as_tensor(hard) + score.double() - score.double().detach()
        coeffs = mr_coefficients_torch(beta, gamma, copilot, clusters, p.n_antennas)
        if search:
            weight = None
            if cfg["search_links"] == "pairs":                   # added over dropped, at the same AP
                added = torch.as_tensor((target[..., 0] > target[..., 1]).astype(float))
                dropped = torch.as_tensor((target[..., 0] < target[..., 1]).astype(float))
                logit = torch.logit(score.double().clamp(1e-7, 1 - 1e-7))
                pair = added.unsqueeze(-1) * dropped.unsqueeze(-2)                         # (n, L, k added, j dropped)
                margin = logit.unsqueeze(-2) - logit.unsqueeze(-1)                          # logit_j - logit_k
                bce = (torch.nn.functional.softplus(margin) * pair).sum() / torch.clamp(pair.sum(), min=1.0)
                return {"loss": mse_ul + mse_dl - lam * fair_powers + float(cfg["cluster_weight"]) * bce,
                        "mse_ul": mse_ul, "mse_dl": mse_dl, "fair_powers": fair_powers, "pair_clusters": bce}
            if cfg["search_links"] == "changed":                 # only the links the search added or dropped
                changed = target[..., 0] != target[..., 1]
                weight = torch.as_tensor(changed * (changed.size / max(1, changed.sum())))
            bce = torch.nn.functional.binary_cross_entropy(score.double().clamp(1e-7, 1 - 1e-7),
                                                           torch.as_tensor(target[..., 0]), weight=weight)
            return {"loss": mse_ul + mse_dl - lam * fair_powers + float(cfg["cluster_weight"]) * bce,
                    "mse_ul": mse_ul, "mse_dl": mse_dl, "fair_powers": fair_powers, "bce_clusters": bce}
        if not float(cfg["cluster_weight"]):
            fair_clusters = torch.zeros((), dtype=torch.float64)
        elif cfg["cluster_loss"] == "perron":
            t_ul, t_dl = maxmin_sinr_torch(coeffs, label, p)
            fair_clusters = 0.5 * (p.ul_pre_log * torch.log2(1 + t_ul) + p.dl_pre_log * torch.log2(1 + t_dl)).mean()
        else:
            se = torch.cat(se_per_ue_torch(coeffs, torch.as_tensor(label["ul_power_mw"]),
                                           torch.as_tensor(label["dl_power_mw"]), p), dim=-1)
            fair_clusters = (-SOFTMIN_TEMPERATURE * torch.logsumexp(-se / SOFTMIN_TEMPERATURE, dim=-1)).mean()
        return {"loss": mse_ul + mse_dl - lam * (fair_powers + float(cfg["cluster_weight"]) * fair_clusters), "mse_ul": mse_ul, "mse_dl": mse_dl,
                "fair_powers": fair_powers, "fair_clusters": fair_clusters}

    def validate() -> dict:
        network.eval()
        solver = EluCosFormer()
        solver.network, solver.threshold, solver.noise_m, solver._torch = network, threshold, 0.0, torch
        solver.mask, solver.inputs = mask, inputs
        solver.checkpoint = {"output": {"rho_scale_mw": rho_scale}}
        predicted, optimal = [], []
        for d in data:
            val = d[np.arange(n_train, n_train + n_val)]
            decision = solver.solve(val)
            predicted.append(problem.evaluate(val, decision).objective.mean())
            optimal.append(problem.evaluate(val, um.maxmin_decision(val, decision["clusters"])).objective.mean())
        network.train()
        return {"val_predicted": float(np.mean(predicted)), "val_optimal": float(np.mean(optimal))}

    best, best_state, best_epoch = -math.inf, None, 0
    log.epoch(epoch=0, **validate())
    every = int(cfg["search_every"])
    for epoch in range(1, int(cfg["epochs"]) + 1):
        extra = refresh_labels() if search and (not labels or (every > 0 and (epoch - 1) % every == 0)) else {}
        plan = [(i, j) for i in range(len(data)) for j in np.array_split(rng.permutation(n_train), max(1, n_train // bs))]
        sums: dict[str, float] = {}
        for b in rng.permutation(len(plan)):
            i, j = plan[b]
            t = step(data[i][j], params[i], labels[i][j] if search else None)
            optimiser.zero_grad()
            if not torch.isfinite(t["loss"]):
                continue
            t["loss"].backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), float(cfg["grad_clip"]))
            optimiser.step()
            for k, v in t.items():
                sums[k] = sums.get(k, 0.0) + v.item() / len(plan)
        values = validate()
        if values["val_predicted"] + values["val_optimal"] > best:
            best, best_epoch = values["val_predicted"] + values["val_optimal"], epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        log.epoch(epoch=epoch, **sums, **extra, **values)

    p0 = params[0]
    checkpoint = {
        "model": {"name": "ELU-CosFormer" if cfg["attention"] == "elu" else f"CosFormer-{cfg['attention']}",
                  "n_aps": p0.n_aps, "d_model": int(cfg["d_model"]), "heads": int(cfg["heads"]),
                  "layers": int(cfg["layers"]), "attention": cfg["attention"], "feature_seed": seed,
                  "threshold": threshold, "mask": mask, "inputs": inputs},
        "state_dict": best_state if best_state is not None else network.state_dict(),
        "output": {"rho_scale_mw": rho_scale},
        "trained_on": {"problem": problem.name, "scenarios": list(scenarios), "n_aps": p0.n_aps},
        "training": {"seed": seed, **{k: cfg[k] for k in DEFAULTS if k != "init"},
                     "init": str(cfg["init"]) if cfg["init"] else "", "best_epoch": best_epoch,
                     "train_time_s": log.elapsed_s, "threads": torch.get_num_threads(),
                     "torch": str(torch.__version__), "instance_seed": TRAIN_SEED_OFFSET + seed,
                     "history": log.history},
    }
    out = Path(out) if out is not None else Path("results") / "weights" / f"uccf-{cfg['attention']}-cosformer-seed{seed}.pt"
    return save_checkpoint(out, checkpoint)


@hookimpl
def cfbench_solvers():
    return [EluCosFormer, EluCosFormerOpt]
