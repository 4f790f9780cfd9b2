"""``estpanet``: U-ESTPANet, the unsupervised power allocation network of Yan et al. (Section III).

Architecture (Fig. 2, eqs. 13-18), for a batch of instances with K terminals:

- Preprocessing (eqs. 13-14). Terminal k's channel estimate across the APs,
  ``H_hat_k`` (M x L complex, the instance's ``channel_estimate``), becomes
  the real M x 2L matrix ``[Re H_hat_k, Im H_hat_k]``; InstanceNorm with the M
  APs as channels normalises each AP's 2L entries to zero mean and unit
  variance, which removes the path-loss magnitude of every link and keeps
  the small-scale "waveform" (the paper's stated purpose). The column
  ``e_k = log10 beta_k`` (M values) is appended, standardised with the
  training set's mean and standard deviation (stored in the checkpoint):
  ``X_k`` is M x (2L + 1).
- Independent spatial feature extraction (eqs. 15-16). Two streams with
  independent weights, one for GTs and one for ATs: a CNN of two 1x1
  convolutions along the AP axis (2L + 1 -> d_cnn -> d_cnn, ReLU) gives
  ``Z_k`` (d_cnn x M), and attention pooling over the APs (a learned score
  per AP, softmax over APs, weighted sum) gives ``v_k`` (d_cnn). Kernel size
  1 because the APs of an instance have no order (they are dropped at
  random): a wider kernel would mix unrelated APs and make the output depend
  on their indexing; with size 1 the stream is invariant to AP permutations.
- Global interference modelling (eq. 17). ``V`` (K x d_cnn) goes through a
  2-layer Transformer encoder (single-head attention scaled by sqrt(d_cnn)
  as in eq. 17, feed-forward 2 d_cnn, post-norm, no positional encoding, so
  the network is permutation-equivariant over terminals).
- Output (eq. 18): one affine layer and a sigmoid,
  ``p = p_min + (p_max - p_min) sigmoid(MLP(V))``. The affine bias starts at
  the logit of 2 % (tens of mW, where the EE peak sits) so that training
  starts in the useful range instead of at 0.5 W.

Loss (eq. 19): ``5 loss_1 + 1 loss_2`` with ``loss_1`` the mean of ``eps_k -
eps_QoS`` over the terminals above ``eps_QoS`` and ``loss_2 = 1 / (1 + Omega)``,
both through the differentiable objective :mod:`cfbench.problems.urllc_torch`
(same formulas as the evaluator, tested equal), averaged over the batch.
Training (Section IV-B): Adam, lr 1e-3, batch 8, 1500 instances split 9:1,
up to 200 epochs; the epoch with the best validation loss is kept. One
addition: the gradient norm is clipped at 1 per step. Without it the first
K-sweep run stopped learning after one epoch (validation loss flat to four
digits for three epochs, the signature of Adam's step size collapsing after
a gradient spike, which batches with eps_k on the steep part of Q(.) can
produce); with it the same run reached a validation Omega of 0.832 after one
epoch instead of 0.765. Per-epoch maximum gradient norms are in the
checkpoint's history. Training
instances come from the scenario's own generator at seed
``TRAIN_SEED_OFFSET + seed`` (benchmark runs use small seeds, so training and
test instances are disjoint streams). One model can be trained on several
scenarios with the same M and L at once (e.g. the K sweep): batches never mix
scenarios, so each batch has one K and one set of normalisation bounds.

Inference. ``solve`` feeds the network ``INFERENCE_CHUNK`` instances at a time and
runs the streams through ``TerminalStream.pooled``: the same arithmetic as ``forward``
(equal to 1e-6, tested), with the (terminal, AP) rows taken in blocks of
``INFERENCE_BLOCK_ROWS`` and each linear layer and its ReLU fused in one oneDNN call.
On a whole batch of 64 instances at K = 50 the CNN's activations are 200,000 x 128
floats; streamed through memory, the ReLUs and copies cost more than the products,
and a batch was slower per instance than one instance alone. Option
``precision=bfloat16`` computes the streams' products (96 % of the arithmetic) in
bfloat16, with float32 accumulation, softmax, Transformer and head: on CPUs with
bfloat16 matrix units (AMX, AVX512-BF16) the products run about 5x faster; mean
Omega moves by at most 0.003 % on every shipped scenario
(``scripts/urllc_estpanet_speed.py``, the README's table). float32 stays the default
so that a run's numbers do not depend on the CPU.

Narrow CNN. The paper sets d_cnn = 128; at K = 50 its two 1x1 convolutions are about
66 M multiply-adds per instance (3,200 (terminal, AP) rows x (33 x 128 + 128 x 128)),
which take 1.4 ms per instance even at 16 float32 multiply-adds per cycle and 3 GHz. The same network with
d_cnn = 32 (6.7 M multiply-adds, 10x fewer; Transformer width 32), trained on the K sweep
exactly as the shipped K-sweep model (8 epochs, seed 0, ``--set d_cnn=32``), reaches the
same validation Omega (0.8332 against 0.8331) and a mean Omega 0.003-0.12 % *higher* on
every K of the sweep (256 instances of seed 0 per K; the README's table): the validation
loss of the wide model stops improving after 1-3 epochs, so its width is not what limits
it. Option ``cnn=narrow`` selects those weights (``NARROW_WEIGHTS``, K-sweep scenarios
only); the default stays the paper's width.

Weights: ``SHIPPED_WEIGHTS`` maps each scenario to a file in
``plugins/weights/``; ``cfbench train --solver estpanet --problem urllc
--scenario S`` retrains (the README lists the exact commands). Option
``weights=PATH`` uses another checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from cfbench import Instances, Option, Solver, hookimpl
from cfbench.api import CfbenchError
from cfbench.learning import (TrainingLog, check_training_sizes, load_checkpoint, save_checkpoint, seed_everything,
                               training_options)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: scenario -> shipped checkpoint (file in WEIGHTS_DIR); ``scripts/train_urllc_estpanet.sh`` retrains them
SHIPPED_WEIGHTS: dict[str, str] = {
    "tiny": "estpanet-urllc-tiny.pt",
    **{f"stress-k{k}": "estpanet-urllc-stress.pt" for k in (20, 40, 60)},
    **{f"k{k}": "estpanet-urllc-k-sweep.pt" for k in (10, 20, 30, 40, 50, 60)},
    "alpha0.25": "estpanet-urllc-k-sweep.pt",  # the same setting as k50
    **{f"alpha{a}": f"estpanet-urllc-alpha{a}.pt" for a in ("0.1", "0.15", "0.2", "0.3", "0.35", "0.4")},
}
#: the narrow variant (option ``cnn=narrow``): the K-sweep model retrained with a narrower CNN
#: (module docstring, "Narrow CNN"); shipped for the Table I scenarios of the K sweep only
NARROW_WEIGHTS: dict[str, str] = {s: "estpanet-urllc-k-sweep-narrow.pt"
                                  for s in ("k10", "k20", "k30", "k40", "k50", "k60", "alpha0.25")}
TRAIN_SEED_OFFSET = 50_000_000
#: initial output power as a fraction of (p_max - p_min) (module docstring)
INITIAL_POWER_FRACTION = 0.02
#: (terminal, AP) rows per block of the streams at inference (``TerminalStream.pooled``)
INFERENCE_BLOCK_ROWS = 4096
#: instances per call of the network at inference: the input tensors of one chunk stay in cache
INFERENCE_CHUNK = 8
#: epsilon of the InstanceNorm (eq. 13), torch's default
INSTANCE_NORM_EPS = 1e-5

TRAINING_OPTIONS = (
    Option("epochs", int, 200, "training epochs"),
    Option("samples", int, 1500, "instances per scenario, split 9:1 (Section IV-B)"),
    Option("validation_fraction", float, 0.1, "share of the samples held out for validation"),
    Option("batch_size", int, 8, "instances per step"),
    Option("lr", float, 1e-3, "Adam learning rate"),
    Option("violation_weight", float, 5.0, "gamma_1 of eq. (19)"),
    Option("omega_weight", float, 1.0, "gamma_2 of eq. (19)"),
    Option("d_cnn", int, 128, "CNN width"),
    Option("transformer_layers", int, 2, "Transformer layers"),
    Option("grad_clip", float, 1.0, "max gradient norm per step (0: off); see the module docstring"),
    Option("patience", int, 0, "stop after this many epochs without a better validation loss (0: never)"),
    Option("init", str, None, "checkpoint to start from (fine-tuning, e.g. one alpha from the K-sweep model)"),
)
DEFAULTS = {o.name: o.default for o in TRAINING_OPTIONS}


def _torch():
    import torch

    return torch


# --- inputs ---------------------------------------------------------------------------------

def network_inputs(instances: Instances, log10_beta_mean: float, log10_beta_std: float, interleaved: bool = False):
    """``X`` (n, K, M, 2L + 1) float32 (eqs. 13-14) and the aerial mask (n, K) as tensors.

    The features of a (terminal, AP) row are ``[Re h_1 .. Re h_L, Im h_1 .. Im h_L, e]``, the
    order the first layer's weights were trained on; with ``interleaved=True`` they are
    ``[Re h_1, Im h_1, .., Re h_L, Im h_L, e]``, the complex array's own memory order (one block
    copy per row instead of an element-wise reordering; ``predict(..., interleaved=True)``
    permutes the weights' columns to match). The InstanceNorm statistics are taken per row of
    the contiguous complex64 array (the mean by a matrix-vector product, then the norm of the
    centred row): about twice as fast, on a loaded machine, as the former transpose,
    real/imaginary concatenation and ``instance_norm`` over rows of 2L = 32 values."""
    torch = _torch()
    ce = np.ascontiguousarray(instances.channel_estimate, dtype=np.complex64)  # n M K L
    n, M, K, L = ce.shape
    raw = torch.from_numpy(ce.view(np.float32)).reshape(n * M * K, 2 * L)     # rows (Re, Im) interleaved
    average = raw.new_full((2 * L, 1), 1.0 / (2 * L))
    centred = raw - raw @ average
    variance = torch.linalg.vector_norm(centred, dim=1, keepdim=True).square_().div_(2 * L)
    normalised = centred.mul_(variance.add_(INSTANCE_NORM_EPS).rsqrt_()).view(n, M, K, L, 2)
    x = torch.empty((n, K, M, 2 * L + 1), dtype=torch.float32)
    if interleaved:
        x[..., :2 * L] = normalised.view(n, M, K, 2 * L).transpose(1, 2)
    else:
        x[..., :2 * L].unflatten(-1, (2, L)).copy_(normalised.permute(0, 2, 1, 4, 3))
    e = torch.from_numpy(np.log10(np.asarray(instances.beta, dtype=float))).transpose(1, 2)  # n K M
    x[..., 2 * L] = e.sub_(log10_beta_mean).div_(log10_beta_std)
    return x, torch.as_tensor(np.asarray(instances.aerial, dtype=bool))


def interleaved_columns(n_antennas: int) -> list[int]:
    """Column ``j`` of the interleaved features is column ``interleaved_columns(L)[j]`` of the
    trained order (``network_inputs``)."""
    L = n_antennas
    return [c for l in range(L) for c in (l, L + l)] + [2 * L]


# --- the network ----------------------------------------------------------------------------

def linear_relu(x, weight, bias):
    """``relu(x weight^T + bias)`` in one fused oneDNN call (``torch.ops.mkldnn._linear_pointwise``,
    about twice as fast in bfloat16: the ReLU is applied while the product is in cache), or
    ``addmm`` then ``relu_`` where this build of torch lacks that operator."""
    torch = _torch()
    global _FUSED_LINEAR_RELU
    if _FUSED_LINEAR_RELU:
        try:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [], "")
        except (AttributeError, RuntimeError, NotImplementedError):
            _FUSED_LINEAR_RELU = False
    return torch.addmm(bias, x, weight.t()).relu_()


#: whether ``linear_relu`` uses the fused operator (switched off at its first failure)
_FUSED_LINEAR_RELU = True


def build_network(in_features: int, d_cnn: int = 128, transformer_layers: int = 2):
    torch = _torch()
    nn = torch.nn

    class TerminalStream(nn.Module):
        """Phi_CNN (eq. 15) and attention pooling over APs (eq. 16) for one terminal type."""

        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(nn.Linear(in_features, d_cnn), nn.ReLU(), nn.Linear(d_cnn, d_cnn), nn.ReLU())
            self.score = nn.Linear(d_cnn, 1)

        def forward(self, x):  # (N, M, 2L+1) -> (N, d_cnn)
            z = self.cnn(x)
            weights = torch.softmax(self.score(z), dim=-2)
            return (weights * z).sum(dim=-2)

        def pooled(self, x, rows, dtype, block_rows: int, columns=None):
            """``forward`` of the (terminal) rows ``rows`` of ``x`` (N, M, F), for inference: the
            matrix products in ``dtype``, the terminals gathered in blocks of about ``block_rows``
            (terminal, AP) rows, so that the (rows, d_cnn) activations stay in the core's cache
            instead of streaming through memory (with the whole batch at once, the ReLUs and
            copies cost as much as the products), and no copy of the whole input is made.
            ``columns``: the first layer's weight columns in the order of ``x``'s features."""
            l1, l2 = self.cnn[0], self.cnn[2]
            w1 = l1.weight if columns is None else l1.weight[:, columns]
            w1, b1, w2, b2 = (t.to(dtype) for t in (w1, l1.bias, l2.weight, l2.bias))
            w_score = self.score.weight.t().to(dtype)
            _, M, F = x.shape
            out = x.new_empty(len(rows), d_cnn)
            step = max(1, block_rows // M)
            for s in range(0, len(rows), step):
                xb = x.index_select(0, rows[s:s + step]).to(dtype)
                N = len(xb)
                z = linear_relu(linear_relu(xb.reshape(N * M, F), w1, b1), w2, b2)
                score = (z @ w_score).to(x.dtype).reshape(N, M) + self.score.bias
                weights = torch.softmax(score, dim=1).to(dtype)
                out[s:s + N] = torch.bmm(weights.unsqueeze(1), z.reshape(N, M, d_cnn)).squeeze(1).to(x.dtype)
            return out

    class UESTPANet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ground = TerminalStream()
            self.aerial = TerminalStream()
            layer = nn.TransformerEncoderLayer(d_cnn, nhead=1, dim_feedforward=2 * d_cnn, dropout=0.0,
                                               batch_first=True)
            self.transformer = nn.TransformerEncoder(layer, transformer_layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_cnn, 1)
            nn.init.constant_(self.head.bias, math.log(INITIAL_POWER_FRACTION / (1 - INITIAL_POWER_FRACTION)))

        def forward(self, x, aerial):
            """``x`` (n, K, M, 2L+1), ``aerial`` (n, K) bool -> sigmoid output in (0, 1), (n, K)."""
            n, K = aerial.shape
            v = x.new_empty(n, K, d_cnn)
            v[~aerial] = self.ground(x[~aerial])
            v[aerial] = self.aerial(x[aerial])
            return torch.sigmoid(self.head(self.transformer(v)).squeeze(-1))

        def predict(self, x, aerial, dtype=None, block_rows: int = INFERENCE_BLOCK_ROWS, interleaved: bool = False):
            """``forward`` without autograd, for inference: the streams through
            :meth:`TerminalStream.pooled` (matrix products in ``dtype``, default float32), the
            Transformer and head in float32. Equal to ``forward`` to float32 rounding
            (1e-6) with float32, the shipped setting; ``torch.bfloat16`` is the fast option
            (module docstring, "Inference"). ``interleaved``: ``x`` from
            ``network_inputs(..., interleaved=True)``."""
            dtype = dtype or x.dtype
            n, K = aerial.shape
            rows = x.reshape(n * K, *x.shape[2:])
            columns = interleaved_columns((x.shape[-1] - 1) // 2) if interleaved else None
            v = x.new_empty(n * K, d_cnn)
            flat = aerial.reshape(-1)
            for stream, mask in ((self.ground, ~flat), (self.aerial, flat)):
                index = mask.nonzero().squeeze(1)
                if len(index):
                    v[index] = stream.pooled(rows, index, dtype, block_rows, columns)
            return torch.sigmoid(self.head(self.transformer(v.view(n, K, d_cnn))).squeeze(-1))

    return UESTPANet()


def power_from_output(fraction, p_min_w: float, p_max_w: float):
    """Eq. (18): ``p = p_min + (p_max - p_min) sigma``."""
    return p_min_w + (p_max_w - p_min_w) * fraction


# --- the solver ------------------------------------------------------------------------------

class EstpaNet(Solver):
    name = "estpanet"
    kind = "learned"
    problems = ("urllc",)
    description = "U-ESTPANet: dual-stream CNN + attention pooling + Transformer, unsupervised (Yan et al., Sec. III)"
    solves_batches = True
    options_spec = (
        Option("weights", str, None, "checkpoint file (default: the shipped one of the scenario)"),
        Option("precision", str, "float32", "matrix products of the CNN streams at inference (module docstring, "
               "'Inference')", choices=("float32", "bfloat16")),
        Option("cnn", str, "paper", "shipped weights: the paper's d_cnn = 128, or the narrow retrained CNN "
               "(module docstring, 'Narrow CNN'; K-sweep scenarios)", choices=("paper", "narrow")),
    )
    training_options_spec = TRAINING_OPTIONS

    @classmethod
    def artifacts(cls, scenario: str, options) -> dict[str, Path]:
        path = options["weights"]
        if path is None and options["cnn"] == "narrow":
            if scenario not in NARROW_WEIGHTS:
                raise CfbenchError(
                    f"no narrow estpanet weights for scenario {scenario!r}; shipped for: {', '.join(NARROW_WEIGHTS)}; "
                    f"use cnn=paper, or train one with --set d_cnn=... and pass weights=PATH")
            path = WEIGHTS_DIR / NARROW_WEIGHTS[scenario]
        if path is None:
            if scenario not in SHIPPED_WEIGHTS:
                raise CfbenchError(
                    f"no shipped estpanet weights for scenario {scenario!r}; shipped: "
                    f"{', '.join(SHIPPED_WEIGHTS) or '(none)'}; train with 'cfbench train --solver estpanet "
                    f"--problem urllc --scenario {scenario}' and pass weights=PATH")
            path = WEIGHTS_DIR / SHIPPED_WEIGHTS[scenario]
        return {"weights": Path(path)}

    def setup(self, problem, scenario: str) -> None:
        super().setup(problem, scenario)
        torch = _torch()
        self.checkpoint = load_checkpoint(self.artifacts(scenario, self.options)["weights"])
        params = problem.scenario_params(scenario)
        self.network = network_from_checkpoint(self.checkpoint, params)
        self.network.eval()
        self._torch = torch

    def solve(self, instances: Instances):
        torch = self._torch
        p = instances.params
        stats = self.checkpoint["input"]
        dtype = torch.bfloat16 if self.options["precision"] == "bfloat16" else torch.float32
        fraction = np.empty((len(instances), p.n_terminals))
        with torch.inference_mode():
            for start in range(0, len(instances), INFERENCE_CHUNK):
                chunk = instances[start:start + INFERENCE_CHUNK]
                x, aerial = network_inputs(chunk, stats["log10_beta_mean"], stats["log10_beta_std"], interleaved=True)
                fraction[start:start + len(chunk)] = self.network.predict(x, aerial, dtype,
                                                                          interleaved=True).double().numpy()
        return {"power_w": np.clip(power_from_output(fraction, p.p_min_w, p.p_max_w), p.p_min_w, p.p_max_w)}

    @classmethod
    def check_training(cls, problem, scenarios, cfg) -> None:
        """``samples`` split as ``train`` splits it: at least one validation and one training instance."""
        n_total = int(cfg["samples"])
        n_val = max(1, int(round(cfg["validation_fraction"] * n_total)))
        check_training_sizes(cls.name, n_train=n_total - n_val, n_validation=n_val,
                             batch_size=int(cfg["batch_size"]), epochs=int(cfg["epochs"]))

    @classmethod
    def train(cls, problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
              report: Callable[[dict], None] | None = None, **options) -> Path:
        """Train on ``scenarios`` (same M and L) and write the checkpoint; returns its path."""
        return train(problem, scenarios, seed=seed, out=out, report=report, **options)


def network_from_checkpoint(checkpoint: dict, params=None):
    config = checkpoint["model"]
    if params is not None:
        want = 2 * params.n_antennas + 1
        if config["in_features"] != want or checkpoint["trained_on"]["n_aps"] != params.n_aps:
            raise CfbenchError(
                f"checkpoint trained for M = {checkpoint['trained_on']['n_aps']} APs x "
                f"L = {(config['in_features'] - 1) // 2} antennas; scenario has M = {params.n_aps} x L = {params.n_antennas}")
    network = build_network(config["in_features"], config["d_cnn"], config["transformer_layers"])
    network.load_state_dict(checkpoint["state_dict"])
    return network


# --- training --------------------------------------------------------------------------------

def loss_terms(network, batch: dict, params, violation_weight: float, omega_weight: float) -> dict:
    """Eq. (19) on one batch (one scenario): loss and its parts, per-batch means."""
    from cfbench.problems import urllc_torch as ut

    fraction = network(batch["x"], batch["aerial"])
    power = power_from_output(fraction.double(), params.p_min_w, params.p_max_w)
    sinr = ut.sinr(batch["coefficients"], power, params.n_pilot)
    terms = ut.tradeoff_terms(params, sinr, power, batch["aerial"])
    loss_1 = ut.violation_mean(terms["eps"], params.eps_qos).mean()
    loss_2 = (1.0 / (1.0 + terms["omega"])).mean()
    return {
        "loss": violation_weight * loss_1 + omega_weight * loss_2,
        "loss_1": loss_1, "loss_2": loss_2,
        "omega": terms["omega"].mean(),
        "violating_share": (terms["eps"] > params.eps_qos * (1 + 1e-6)).double().mean(),
    }


def _dataset(problem, scenario: str, n: int, seed: int, stats=None):
    """Instances of ``scenario`` with their network inputs and SINR coefficients."""
    from cfbench.problems.urllc import SinrCoefficients
    from cfbench.problems import urllc_torch as ut

    instances = problem.sample(scenario, n, seed)
    log10_beta = np.log10(instances.beta)
    if stats is None:
        stats = {"log10_beta_mean": float(log10_beta.mean()), "log10_beta_std": float(log10_beta.std())}
    x, aerial = network_inputs(instances, stats["log10_beta_mean"], stats["log10_beta_std"])
    coefficients = ut.coefficient_tensors(SinrCoefficients.from_instances(instances))
    return {"scenario": scenario, "params": instances.params, "x": x, "aerial": aerial,
            "coefficients": coefficients}, stats


def _batches(data: dict, index, batch_size: int):
    for start in range(0, len(index), batch_size):
        j = index[start:start + batch_size]
        yield {"x": data["x"][j], "aerial": data["aerial"][j],
               "coefficients": {k: v[j] for k, v in data["coefficients"].items()}}


def train(problem, scenarios: list[str], *, seed: int = 0, out: Path | None = None,
          report: Callable[[dict], None] | None = None, **options) -> Path:
    torch = _torch()
    cfg = training_options("estpanet", TRAINING_OPTIONS, options)
    params = [problem.scenario_params(s) for s in scenarios]
    shapes = {(p.n_aps, p.n_antennas, p.p_min_w, p.p_max_w) for p in params}
    if len(shapes) != 1:
        raise CfbenchError(f"scenarios {', '.join(scenarios)} differ in M, L or the power range; train one model each")
    seed_everything(seed)
    log = TrainingLog(report)

    n_total = int(cfg["samples"])
    n_val = max(1, int(round(cfg["validation_fraction"] * n_total)))
    start = load_checkpoint(Path(cfg["init"])) if cfg["init"] else None
    if start is not None:
        network = network_from_checkpoint(start, params[0])
        cfg["d_cnn"], cfg["transformer_layers"] = start["model"]["d_cnn"], start["model"]["transformer_layers"]
    else:
        network = build_network(2 * params[0].n_antennas + 1, int(cfg["d_cnn"]), int(cfg["transformer_layers"]))
    data, stats = [], (start["input"] if start is not None else None)
    for s in scenarios:
        d, stats = _dataset(problem, s, n_total, TRAIN_SEED_OFFSET + seed, stats)
        data.append(d)
    optimiser = torch.optim.Adam(network.parameters(), lr=float(cfg["lr"]))
    generator = torch.Generator().manual_seed(seed)
    weights = (float(cfg["violation_weight"]), float(cfg["omega_weight"]))

    def validate() -> dict:
        network.eval()
        sums, count = {}, 0
        with torch.no_grad():
            for d in data:
                val = torch.arange(n_total - n_val, n_total)
                for batch in _batches(d, val, 64):
                    t = loss_terms(network, batch, d["params"], *weights)
                    m = len(batch["aerial"])
                    for k, v in t.items():
                        sums[k] = sums.get(k, 0.0) + v.item() * m
                    count += m
        network.train()
        return {f"val_{k}": v / count for k, v in sums.items()}

    best, best_state, best_epoch, since_best = math.inf, None, 0, 0
    initial = validate()
    log.epoch(epoch=0, **initial)
    for epoch in range(1, int(cfg["epochs"]) + 1):
        plan = []
        for i, d in enumerate(data):
            order = torch.randperm(n_total - n_val, generator=generator)
            plan += [(i, order[s:s + int(cfg["batch_size"])]) for s in range(0, len(order), int(cfg["batch_size"]))]
        train_loss, max_grad_norm, skipped = 0.0, 0.0, 0
        for b in torch.randperm(len(plan), generator=generator).tolist():
            i, j = plan[b]
            (batch,) = _batches(data[i], j, len(j))
            t = loss_terms(network, batch, data[i]["params"], *weights)
            optimiser.zero_grad()
            if not torch.isfinite(t["loss"]):
                skipped += 1
                continue  # never let one bad batch poison the weights
            t["loss"].backward()
            norm = torch.nn.utils.clip_grad_norm_(network.parameters(),
                                                  float(cfg["grad_clip"]) if cfg["grad_clip"] else math.inf)
            max_grad_norm = max(max_grad_norm, norm.item())
            optimiser.step()
            train_loss += t["loss"].item() / len(plan)
        values = validate()
        if values["val_loss"] < best:
            best, best_epoch, since_best = values["val_loss"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            since_best += 1
        log.epoch(epoch=epoch, train_loss=train_loss, max_grad_norm=max_grad_norm, skipped_batches=skipped, **values)
        if cfg["patience"] and since_best >= cfg["patience"]:
            break

    p0 = params[0]
    checkpoint = {
        "model": {"name": "U-ESTPANet", "in_features": 2 * p0.n_antennas + 1, "d_cnn": int(cfg["d_cnn"]),
                  "transformer_layers": int(cfg["transformer_layers"])},
        "state_dict": best_state if best_state is not None else network.state_dict(),
        "input": stats,
        "trained_on": {"problem": problem.name, "scenarios": list(scenarios), "n_aps": p0.n_aps,
                       "n_antennas": p0.n_antennas, "p_min_w": p0.p_min_w, "p_max_w": p0.p_max_w},
        "training": {"seed": seed, **{k: cfg[k] for k in DEFAULTS if k != "init"},
                     "init": str(cfg["init"]) if cfg["init"] else "", "best_epoch": best_epoch,
                     "epochs_run": len(log.history) - 1, "train_time_s": log.elapsed_s,
                     "threads": torch.get_num_threads(), "torch": str(torch.__version__),
                     "instance_seed": TRAIN_SEED_OFFSET + seed, "n_train_per_scenario": n_total - n_val,
                     "n_validation_per_scenario": n_val, "history": log.history},
    }
    out = Path(out) if out is not None else Path("results") / "weights" / f"estpanet-{'+'.join(scenarios)}-seed{seed}.pt"
    return save_checkpoint(out, checkpoint)


@hookimpl
def cfbench_solvers():
    return [EstpaNet]
