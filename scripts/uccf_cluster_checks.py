"""Reproduce the README's ``uccf`` clustering figures (one thread, about 1.5 min).

    python scripts/uccf_cluster_checks.py
    python scripts/uccf_cluster_checks.py plugins/weights/uccf-elu-cosformer-lsf.pt   # inputs=lsf model

Validation = the 64 held-out instances per K (indices 1024-1087 of the training stream,
seed 70,000,000) of mr-k20/30/40, the model's clusters with closed-form max-min power;
``seed1`` rows = 50 instances of seed 1 (the benchmark tables); ``gauge`` rows = rankings
by distance (position-only) and by the true beta on 40 instances (indices 1024-1063) of
the training stream; ``moves`` rows = how many links (differing links / 2 per instance, seed 1)
separate the model's clusters from the distance prior's and from the true-gap ranking's.
Weights: the shipped checkpoint, or the file given as argument.
"""

from __future__ import annotations

import os
import sys

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cfbench.plugins import uccf_cosformer as cf  # noqa: E402
from cfbench.problems import uccf_model as um  # noqa: E402
from cfbench.problems.uccf import Uccf  # noqa: E402

P = Uccf()


def model(inst, scen, weights, **options) -> float:
    s = cf.EluCosFormerOpt(**options, **({"weights": weights} if weights else {}))
    s.setup(P, scen)
    return float(P.evaluate(inst, s.solve(inst)).objective.mean())


def closed_form(inst, clusters) -> float:
    return float(P.evaluate(inst, um.maxmin_decision(inst, clusters)).objective.mean())


def main() -> int:
    torch.set_num_threads(1)
    weights = sys.argv[1] if len(sys.argv) > 1 else None
    configs = {"top": {"mask": "top"}, "pilot": {"mask": "pilot"},
               "top+refine4": {"mask": "top", "refine_rounds": 4}, "pilot+refine4": {"mask": "pilot", "refine_rounds": 4}}
    val = {name: [] for name in configs}
    for scen in ("mr-k20", "mr-k30", "mr-k40"):
        inst = P.sample(scen, 1088, cf.TRAIN_SEED_OFFSET)[np.arange(1024, 1088)]
        for name, options in configs.items():
            val[name].append(model(inst, scen, weights, **options))
        print(f"val {scen}: " + "  ".join(f"{n} {v[-1]:.4f}" for n, v in val.items())
              + f"  dcc {closed_form(inst, inst.dcc_clusters):.4f}", flush=True)
    print("val mean: " + "  ".join(f"{n} {np.mean(v):.4f}" for n, v in val.items()), flush=True)
    for scen in ("mr-k40", "mr-k50", "mr-k60"):
        inst = P.sample(scen, 50, 1)
        print(f"seed1 {scen}: top {model(inst, scen, weights, mask='top'):.4f}  "
              f"pilot {model(inst, scen, weights, mask='pilot'):.4f}  dcc {closed_form(inst, inst.dcc_clusters):.4f}",
              flush=True)
    for scen in ("mr-k40", "mr-k60"):
        inst = P.sample(scen, 1088, cf.TRAIN_SEED_OFFSET)[np.arange(1024, 1064)]
        pilot, tau_p = np.asarray(inst.pilot), inst.params.tau_p
        geo = cf.link_geometry(np.asarray(inst.ap_xy_m, float), np.asarray(inst.ue_xy_m, float), inst.params)
        log_beta = np.log(inst.beta)
        rows = {f"{mask} gap+{a}*gain": cf.hard_clusters(geo["gap"] + a * geo["gain"], tau_p, -np.inf, mask, pilot)
                for mask in ("top", "pilot") for a in (0.0, 0.25, 1.0)}
        rows["pilot true beta"] = cf.hard_clusters(log_beta, tau_p, -np.inf, "pilot", pilot)
        rows["top true gap"] = cf.hard_clusters(log_beta - log_beta.max(axis=1, keepdims=True), tau_p, -np.inf, "top")
        rows["dcc"] = inst.dcc_clusters
        print(f"gauge {scen}: " + "  ".join(f"{n} {closed_form(inst, c):.4f}" for n, c in rows.items()), flush=True)
    for scen in ("mr-k40", "mr-k60"):                      # how far the model's clusters moved, and where to
        inst = P.sample(scen, 50, 1)
        clusters = {}
        for name, w in (("prior", None), ("model", weights)):
            s = cf.EluCosFormerOpt(**({"weights": w} if w else {}))
            s.setup(P, scen)
            clusters[name] = s.clusters(inst, s.predict(inst)[0])
        log_beta = np.log(inst.beta)
        clusters["true gap"] = cf.hard_clusters(log_beta - log_beta.max(axis=1, keepdims=True), inst.params.tau_p,
                                                -np.inf, "top")
        moves = lambda a, b: float((a != b).sum(axis=(1, 2)).mean() / 2)  # noqa: E731
        print(f"moves seed1 {scen} (differing links / 2 per instance): prior-true gap "
              f"{moves(clusters['prior'], clusters['true gap']):.1f}  model-true gap "
              f"{moves(clusters['model'], clusters['true gap']):.1f}  model-prior "
              f"{moves(clusters['model'], clusters['prior']):.1f}  (prior term a, c = "
              f"{', '.join(f'{v:.3f}' for v in s.network.prior.detach().tolist())})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
