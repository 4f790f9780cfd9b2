"""Summary of the sum-ee gnn harness runs (README, "Learned solver: gnn"): mean EE, share of SCA,
mean per-instance gap to the best value, feasibility, links on (> 0), UEs served, latencies.

    python scripts/sum_ee_gnn_table.py no-kappa deterministic 48ep            # the 64-instance runs (seed1/)
    python scripts/sum_ee_gnn_table.py --runs results/reference/sum-ee/table2-1024 no-kappa deterministic
    python scripts/sum_ee_gnn_table.py --runs results/reference/sum-ee/table2-1024 --markdown 24ep no-kappa deterministic

``--markdown`` prints the README's tables instead: mean EE with its share of SCA, the mean gap to
the best value, feasibility, and the median time per instance solved one at a time (with, for the
learned rows, the time of one call on the whole batch).

A variant ``V`` is the run folder ``S-V`` next to ``S`` (its gnn rows are shown as ``gnn[V]``); the
best value per instance is the best of every method shown. ``batch`` is the median of the rows'
``batch_latency_s`` (one call's time / its size); times the size, the time of the one call.
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd

#: the seed-1 runs of the README (copies of the /tmp/sumee-* folders written by cfbench run)
ROOT = Path(__file__).resolve().parents[1] / "results" / "reference" / "sum-ee" / "gnn" / "seed1"
CONFIGURATIONS = ["5ap-10ue", "10ap-10ue", "15ap-15ue"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("variants", nargs="*", default=["no-kappa", "deterministic"])
parser.add_argument("--runs", type=Path, default=ROOT, help="folder of the runs (one subfolder per configuration)")
parser.add_argument("--markdown", action="store_true", help="print the README's markdown tables")
args = parser.parse_args()
ORDER = ["equal", "nearest-ap", "gnn", *[f"gnn[{v}]" for v in args.variants], "sca", "multistart-pg"]
cells: dict[str, dict[str, dict[str, str]]] = {}    # solver -> configuration -> column -> text
for S in CONFIGURATIONS:
    df = pd.read_parquet(args.runs / S / "results.parquet")
    frames = [df]
    for v in args.variants:
        try:
            d = pd.read_parquet(args.runs / f"{S}-{v}" / "results.parquet"); d["solver"] = f"gnn[{v}]"; frames.append(d)
        except FileNotFoundError:
            pass
    df = pd.concat(frames)
    obj = df.pivot(index="instance", columns="solver", values="objective")
    best = obj.max(axis=1)
    sca = obj["sca"].mean()
    if not args.markdown:
        print(f"{S} ({len(obj)} instances)")
    for s in obj.columns:
        sub = df[df.solver == s]
        links = np.mean([(np.asarray(list(p)) > 0).mean() for p in sub.decision_power_w])
        gap = ((best - obj[s]) / best * 100).mean()
        batch = sub.batch_latency_s.median() if "batch_latency_s" in sub and sub.batch_latency_s.notna().any() else np.nan
        lat = sub.latency_s.median() * 1e3
        cells.setdefault(s, {})[S] = {
            "ee": f"{obj[s].mean():.2f} ({obj[s].mean() / sca * 100:.1f} %)", "gap": f"{gap:.1f}",
            "feasible": f"{sub.feasible.mean() * 100:.0f}",
            "time": (f"{lat:,.0f} ms" if lat >= 100 else f"{lat:.1f} ms" if lat >= 1 else f"{lat:.2f} ms")
                    + (f" ({batch * len(sub):.1f} s)" if np.isfinite(batch) else "")}
        if args.markdown:
            continue
        print(f"  {s:22s} EE {obj[s].mean():7.3f}  of SCA {obj[s].mean()/sca*100:5.1f}%  gap-to-best {gap:5.2f}%  "
              f"feasible {sub.feasible.mean()*100:5.1f}%  links-on {links*100:5.1f}%  served {sub.metric_n_served.mean():5.2f}  "
              f"median lat {sub.latency_s.median()*1e3:8.3f} ms  batch/inst {batch*1e3:7.3f} ms"
              + (f" (one call for all {len(sub)}: {batch*len(sub):.2f} s)" if np.isfinite(batch) else ""))

if args.markdown:
    rows = [s for s in ORDER if s in cells] + sorted(set(cells) - set(ORDER))
    for columns, title in ((("ee", "gap"), "mean EE in bit/s/Hz/J (share of SCA's) / mean gap to the best value, %"),
                           (("time",), "median time per instance, one at a time (one call for all)")):
        print(f"\n{title}\n\n| method | " + " | ".join(CONFIGURATIONS) + " |\n|---|" + "---|" * len(CONFIGURATIONS))
        for s in rows:
            print(f"| {s} | " + " | ".join(" / ".join(cells[s][S][c] for c in columns) if S in cells[s] else "-"
                                           for S in CONFIGURATIONS) + " |")
    feasible = sorted({cells[s][S]["feasible"] for s in rows for S in cells[s]})
    print(f"\nfeasible, % of instances: {' to '.join(dict.fromkeys([feasible[0], feasible[-1]]))} for every method shown")
