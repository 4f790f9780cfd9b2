"""Summary of the sum-ee gnn seed-1 harness runs (README, "Learned solver: gnn"): mean EE, share of SCA,
mean per-instance gap to the best value, feasibility, links on (> 0), UEs served, latencies.

    python scripts/sum_ee_gnn_table.py no-kappa deterministic 48ep
"""
import sys
from pathlib import Path

#: the seed-1 runs of the README (copies of the /tmp/sumee-* folders written by cfbench run)
ROOT = Path(__file__).resolve().parents[1] / "results" / "reference" / "sum-ee" / "gnn" / "seed1"
import numpy as np, pandas as pd
variants = sys.argv[1:] or ["no-kappa", "deterministic"]
for S in ["5ap-10ue", "10ap-10ue", "15ap-15ue"]:
    df = pd.read_parquet(f"{ROOT}/{S}/results.parquet")
    frames = [df]
    for v in variants:
        try:
            d = pd.read_parquet(f"{ROOT}/{S}-{v}/results.parquet"); d["solver"] = f"gnn[{v}]"; frames.append(d)
        except FileNotFoundError:
            pass
    df = pd.concat(frames)
    obj = df.pivot(index="instance", columns="solver", values="objective")
    best = obj.max(axis=1)
    sca = obj["sca"].mean()
    print(S)
    for s in obj.columns:
        sub = df[df.solver == s]
        links = np.mean([(np.asarray(list(p)) > 0).mean() for p in sub.decision_power_w])
        gap = ((best - obj[s]) / best * 100).mean()
        print(f"  {s:22s} EE {obj[s].mean():7.3f}  of SCA {obj[s].mean()/sca*100:5.1f}%  gap-to-best {gap:5.2f}%  "
              f"feasible {sub.feasible.mean()*100:5.1f}%  links-on {links*100:5.1f}%  served {sub.metric_n_served.mean():5.2f}  "
              f"median lat {sub.latency_s.median()*1e3:8.3f} ms  batch/inst {sub.batch_latency_s.median()*1e3 if sub.batch_latency_s.notna().any() else float('nan'):7.3f} ms")
