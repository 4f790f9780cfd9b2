"""Runs, tables and PNG plots in the shape of the ELU-CosFormer paper's Figs. 4, 5, 6, 8 and 9 and
Table IV (``uccf``), plus a latency-versus-K curve with fitted exponents.

    python scripts/uccf_figures.py [--instances 32] [--workers 2] [--out results/reference/uccf]
        [--tables-only] [--latency-loads 10,20,40,80,160,320,400] [--latency-repeats 15]

1. Runs (resumable: a complete run with the same settings is kept) on held-out seed 1:
   ``cfbench run --problem uccf --scenario mr-k{10..60} --solvers all --instances N --seed 1
   --workers W --out OUT/mr-kK``, and for Fig. 9 ``mr-k40`` with ``elu-cosformer``,
   ``elu-cosformer-opt`` and ``dcc-maxmin`` at test-time position errors of 0, 5, 10, 20 and
   50 m (``--set elu-cosformer:position_noise_m=X``, the same for ``-opt``; folder
   ``OUT/mr-k40-noise-X``); and the learned solvers with ``inputs=lsf`` (positions plus
   large-scale fading, the shipped ``uccf-elu-cosformer-lsf.pt``) on every ``mr-kK``
   (``OUT/mr-kK-lsf``), shown as "(lsf)" beside the paper's positions-only model.
2. ``OUT/figures.md`` and PNGs:
   - Fig. 5: per-UE UL and DL SE against K for every solver (mean over UEs and instances;
     the worst UE's, i.e. the objective's ingredients, beside it); ``cf-maxmin`` serves
     every UE from every AP, so it breaks tau_p for K > 10 and is drawn dashed;
   - Fig. 6: total AP-UE connections against K;
   - Fig. 8: CDFs of the UL and DL powers the network predicts (``elu-cosformer``) against
     the closed-form max-min powers on the same clusters (``elu-cosformer-opt``) at K = 40;
   - Fig. 9: mean min SE against the position error;
   - Fig. 4: validation score per epoch of the shipped ELU-CosFormer and of the attention
     ablations (``cfbench train ... --set attention=A --epochs 10 --out results/weights/uccf-A-cosformer.pt``,
     the command in ``figures.md``; ``python scripts/train_uccf.py --ablations`` trains them for 30);
     their histories are copied to ``OUT/fig4_histories.json``, so the plot redraws without them);
   - Table IV: parameters, FLOPs of one forward pass (``torch.utils.flop_counter``) and CPU
     latency per instance (medians of the K = 40 run's rows) of the network and of the
     closed form;
   - latency against K up to ``--latency-loads``' largest, on the paper-scale geometry
     (``mr-paper``: L = 100, so tau_p admits up to 1000 UEs; the K values are built here, not
     registered scenarios): one thread, median of ``--latency-repeats`` calls after a warm-up,
     ``torch.inference_mode()``, for the ELU-CosFormer forward pass and the same network with
     softmax attention (inputs built from positions included; untrained weights of the shipped
     architecture for L = 100, since the cost does not depend on them), and the closed-form
     max-min power on all-AP (``cf-maxmin``) and DCC (``dcc-maxmin``) clusters; exponents by
     least squares on log-log over K >= 40.
Needs ``pip install -e '.[figures]'`` for the PNGs. Run on an idle machine for the latencies.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.problems.uccf import LOADS, Uccf
from cfbench.runner import limit_threads

ROOT = Path(__file__).resolve().parent.parent
SEED = 1
NOISE_M = (0, 5, 10, 20, 50)
NOISE_SOLVERS = "elu-cosformer,elu-cosformer-opt,dcc-maxmin"
#: the variant that also sees the large-scale fading (``inputs=lsf``), labelled "(lsf)" in Figs. 5-6
LSF_SOLVERS = "elu-cosformer,elu-cosformer-opt"


def ensure_run(folder: Path, scenario: str, solvers: str, instances: int, workers: int, extra=()) -> None:
    command = [sys.executable, "-m", "cfbench.cli", "run", "--problem", "uccf", "--scenario", scenario,
               "--solvers", solvers, "--instances", str(instances), "--seed", str(SEED), "--workers", str(workers),
               "--quiet", "--out", str(folder), *extra]
    manifest = folder / "manifest.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("complete") and int(old.get("n_instances", 0)) == instances:
            return
        command.append("--resume")
    print("+", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _mean_of_lists(series: pd.Series) -> float:
    return float(np.mean(np.concatenate([np.asarray(v, float) for v in series])))


def fig5_6(out: Path) -> pd.DataFrame:
    rows = []
    for k in LOADS:
        frame = pd.concat([pd.read_parquet(out / f"mr-k{k}" / "results.parquet"),
                           pd.read_parquet(out / f"mr-k{k}-lsf" / "results.parquet").assign(
                               solver=lambda f: f["solver"] + " (lsf)")], ignore_index=True)
        for solver, g in frame.groupby("solver", sort=False):
            rows.append({"K": k, "solver": solver, "feasible %": 100 * g["feasible"].mean(),
                         "mean UL SE per UE": _mean_of_lists(g["metric_ul_ue_se_bit_per_hz"]),
                         "mean DL SE per UE": _mean_of_lists(g["metric_dl_ue_se_bit_per_hz"]),
                         "worst UE UL SE": g["metric_ul_min_se_bit_per_hz"].mean(),
                         "worst UE DL SE": g["metric_dl_min_se_bit_per_hz"].mean(),
                         "links": g["metric_n_links"].mean(), "n": len(g)})
    return pd.DataFrame(rows)


def fig8(out: Path) -> dict[str, np.ndarray]:
    frame = pd.read_parquet(out / "mr-k40" / "results.parquet")
    powers = {}
    for solver, label in (("elu-cosformer", "predicted"), ("elu-cosformer-opt", "closed form")):
        g = frame[frame["solver"] == solver]
        for link in ("ul", "dl"):
            powers[f"{link} {label}"] = np.concatenate([np.asarray(v, float) for v in g[f"decision_{link}_power_mw"]])
    return powers


def fig9(out: Path) -> pd.DataFrame:
    rows = []
    for x in NOISE_M:
        frame = pd.read_parquet(out / f"mr-k40-noise-{x}" / "results.parquet")
        for solver, g in frame.groupby("solver", sort=False):
            rows.append({"position error std, m": x, "solver": solver, "mean min SE": g["objective"].mean(),
                         "feasible %": 100 * g["feasible"].mean()})
    return pd.DataFrame(rows)


ATTENTIONS = {"elu": "ELU-CosFormer (shipped)", "relu": "ReLU CosFormer", "softmax": "softmax Transformer",
              "performer": "Performer (FAVOR+)"}


def fig4(out: Path, epochs: int = 10) -> pd.DataFrame:
    """Fig. 4 (activation ablation): validation score per epoch of the shipped ELU model and of the
    ablations trained with ``python scripts/train_uccf.py --ablations`` (``results/weights/``, not
    shipped). The histories are kept in ``OUT/fig4_histories.json`` so the figure redraws without
    the checkpoints; the first ``epochs`` epochs of each are compared (the ablations' budget)."""
    import torch

    from cfbench.plugins import uccf_cosformer as cf

    store = out / "fig4_histories.json"
    histories = json.loads(store.read_text()) if store.is_file() else {}
    paths = {"elu": ROOT / "plugins/weights/uccf-elu-cosformer.pt",
             **{a: ROOT / f"results/weights/uccf-{a}-cosformer.pt" for a in ("relu", "softmax", "performer")}}
    for attention, path in paths.items():
        if path.is_file():
            ck = torch.load(path, weights_only=True)
            histories[attention] = {"parameters": sum(p.numel() for p in cf.network_from_checkpoint(ck).parameters()),
                                    "history": [{k: h[k] for k in ("epoch", "val_predicted", "val_optimal")}
                                                for h in ck["training"]["history"]]}
    store.write_text(json.dumps(histories, indent=1) + "\n")
    rows = []
    for attention, entry in histories.items():
        hist = [h for h in entry["history"] if 1 <= h["epoch"] <= epochs]
        if hist:
            rows.append({"attention": ATTENTIONS.get(attention, attention), "key": attention,
                         "best val_predicted, epochs 1-%d" % epochs: max(h["val_predicted"] for h in hist),
                         "val_optimal (clusters)": hist[-1]["val_optimal"], "parameters": entry["parameters"],
                         "epochs": len(hist)})
    return pd.DataFrame(rows)


def _median_s(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def complexity(out: Path, loads: list[int], repeats: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table IV at K = 40 and latency against K."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cfbench.plugins import uccf_baselines as bl
    from cfbench.plugins import uccf_cosformer as cf
    from cfbench.problems import uccf_model as um

    limit_threads(1)
    torch.set_num_threads(1)
    problem = Uccf()
    problem.scenarios = dict(problem.scenarios)
    solver = cf.EluCosFormer()
    solver.setup(problem, "mr-k40")
    trained = solver.network
    softmax = cf.build_network(problem.scenarios["mr-k40"].n_aps, attention="softmax").eval()
    n_params = sum(p.numel() for p in trained.parameters())
    # the curve needs K up to 400 > L tau_p = 160 of the L = 16 scenarios: it uses the paper-scale
    # geometry (L = 100, tau_p = 10, so up to 1000 UEs) and untrained networks of the shipped
    # architecture for L = 100 (the cost of a forward pass does not depend on the weights)
    base = problem.scenarios["mr-paper"]
    networks = {a: cf.build_network(base.n_aps, attention=a).eval() for a in ("elu", "softmax")}
    latency = []
    for k in loads:
        name = f"mr-paper-k{k}"
        problem.scenarios[name] = dataclasses.replace(base, n_ues=k, description=f"mr-paper with K = {k}")
        inst = problem.sample(name, 1, seed=SEED)
        timed = {}
        with torch.inference_mode():
            timed["ELU-CosFormer forward (inputs included)"] = _median_s(
                lambda: networks["elu"](*cf.network_inputs(np.asarray(inst.ap_xy_m, float),
                                                           np.asarray(inst.ue_xy_m, float), inst.params)), repeats)
            timed["softmax Transformer forward (inputs included)"] = _median_s(
                lambda: networks["softmax"](*cf.network_inputs(np.asarray(inst.ap_xy_m, float),
                                                               np.asarray(inst.ue_xy_m, float), inst.params)), repeats)
        timed["cf-maxmin (closed form, all APs)"] = _median_s(
            lambda: um.maxmin_decision(inst, um.all_ap_clusters(inst)), repeats)
        timed["dcc-maxmin (closed form, DCC)"] = _median_s(lambda: bl.DccMaxMin().solve(inst), repeats)
        for what, seconds in timed.items():
            latency.append({"K": k, "method": what, "ms": 1e3 * seconds})
    latency = pd.DataFrame(latency)
    inst = problem.sample("mr-k40", 1, seed=SEED)
    inputs = cf.network_inputs(np.asarray(inst.ap_xy_m, float), np.asarray(inst.ue_xy_m, float), inst.params)
    flops = {}
    for label, net in (("ELU-CosFormer", trained), ("softmax Transformer", softmax)):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            net(*inputs)
        flops[label] = counter.get_total_flops()
    run = pd.read_parquet(out / "mr-k40" / "results.parquet")
    med = run.groupby("solver")["latency_s"].median()
    table = pd.DataFrame([
        {"method": "ELU-CosFormer (`elu-cosformer`)", "parameters": n_params,
         "forward FLOPs at K = 40": flops["ELU-CosFormer"], "CPU ms per instance (run, K = 40)": 1e3 * med["elu-cosformer"]},
        {"method": "softmax Transformer (same network)", "parameters": sum(p.numel() for p in softmax.parameters()),
         "forward FLOPs at K = 40": flops["softmax Transformer"], "CPU ms per instance (run, K = 40)": float("nan")},
        {"method": "DCC + closed-form max-min (`dcc-maxmin`)", "parameters": 0, "forward FLOPs at K = 40": float("nan"),
         "CPU ms per instance (run, K = 40)": 1e3 * med["dcc-maxmin"]},
        {"method": "all APs + closed-form max-min (`cf-maxmin`)", "parameters": 0,
         "forward FLOPs at K = 40": float("nan"), "CPU ms per instance (run, K = 40)": 1e3 * med["cf-maxmin"]},
    ])
    return table, latency


def exponents(latency: pd.DataFrame, k_min: int = 40) -> dict[str, float]:
    fit = {}
    for method, g in latency[latency["K"] >= k_min].groupby("method", sort=False):
        fit[method] = float(np.polyfit(np.log(g["K"]), np.log(g["ms"]), 1)[0]) if len(g) > 1 else float("nan")
    return fit


def plots(out: Path, t56: pd.DataFrame, powers: dict, t9: pd.DataFrame, latency: pd.DataFrame) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install -e '.[figures]'): no PNG written", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, link in zip(axes, ("UL", "DL")):
        for solver, g in t56.groupby("solver", sort=False):
            ax.plot(g["K"], g[f"mean {link} SE per UE"], marker="o", label=solver,
                    linestyle="--" if solver == "cf-maxmin" else "-")
        ax.set_xlabel("K (UEs)")
        ax.set_ylabel(f"mean {link} SE per UE (bit/s/Hz)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Fig. 5 shape: per-UE SE against K (mr scenarios, seed 1)")
    fig.tight_layout()
    fig.savefig(out / "fig5.png", dpi=120)
    plt.close(fig)
    def curves(frame, by, x, y, path, title, xlabel, ylabel, log=""):
        """One line per ``by`` group of ``frame``, y against x, written to ``path``."""
        ax = plt.figure(figsize=(5.5, 3.8)).gca()
        for name, g in frame.groupby(by, sort=False):
            ax.plot(g[x], g[y], marker="o", label=name, linestyle="--" if name == "cf-maxmin" else "-")
        ax.set_xscale("log" if "x" in log else "linear")
        ax.set_yscale("log" if "y" in log else "linear")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
        plt.tight_layout()
        plt.savefig(path, dpi=120)
        plt.close()

    curves(t56, "solver", "K", "links", out / "fig6.png", "Fig. 6 shape: total connections", "K (UEs)",
           "AP-UE connections", log="y")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, link in zip(axes, ("ul", "dl")):
        for label in ("predicted", "closed form"):
            x = np.sort(powers[f"{link} {label}"])
            ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=label)
        ax.set_xscale("log")
        ax.set_xlabel(f"{link.upper()} power per UE (mW)")
        ax.set_ylabel("CDF")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 8 shape: powers of the network against the closed form, same clusters, K = 40")
    fig.tight_layout()
    fig.savefig(out / "fig8.png", dpi=120)
    plt.close(fig)
    curves(t9, "solver", "position error std, m", "mean min SE", out / "fig9.png",
           "Fig. 9 shape: robustness to position error, K = 40", "std of the UE position error (m)",
           "mean min SE (bit/s/Hz)")
    curves(latency, "method", "K", "ms", out / "latency_vs_k.png", "Latency against K", "K (UEs)",
           "ms per instance, one thread", log="xy")


def plot_fig4(out: Path, epochs: int = 10) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    store = out / "fig4_histories.json"
    if not store.is_file():
        return
    ax = plt.figure(figsize=(5.5, 3.8)).gca()
    for attention, entry in json.loads(store.read_text()).items():
        hist = [h for h in entry["history"] if h["epoch"] <= epochs]
        ax.plot([h["epoch"] for h in hist], [h["val_predicted"] for h in hist], marker="o",
                label=ATTENTIONS.get(attention, attention))
    ax.set(xlabel="epoch", ylabel="validation min SE of the model's decision",
           title="Fig. 4 shape: attention ablation (clusters at the prior)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(out / "fig4.png", dpi=120)
    plt.close()

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results/reference/uccf")
    parser.add_argument("--tables-only", action="store_true")
    parser.add_argument("--latency-loads", default="10,20,40,80,160,320,400")
    parser.add_argument("--latency-repeats", type=int, default=15)
    args = parser.parse_args()
    if args.instances < 1 or args.workers < 1 or args.latency_repeats < 1:
        parser.error("--instances, --workers and --latency-repeats must be at least 1")
    try:
        loads = [int(k) for k in args.latency_loads.split(",") if k.strip()]
    except ValueError:
        parser.error(f"--latency-loads must be comma-separated integers, got {args.latency_loads!r}")
    if not loads or min(loads) < 1:
        parser.error(f"--latency-loads must be positive, got {args.latency_loads!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.tables_only:
        for k in LOADS:
            ensure_run(args.out / f"mr-k{k}", f"mr-k{k}", "all", args.instances, args.workers)
            ensure_run(args.out / f"mr-k{k}-lsf", f"mr-k{k}", LSF_SOLVERS, args.instances, args.workers,
                       ["--set", "elu-cosformer:inputs=lsf", "--set", "elu-cosformer-opt:inputs=lsf"])
        for x in NOISE_M:
            ensure_run(args.out / f"mr-k40-noise-{x}", "mr-k40", NOISE_SOLVERS, args.instances, args.workers,
                       ["--set", f"elu-cosformer:position_noise_m={x}", "--set", f"elu-cosformer-opt:position_noise_m={x}"])
    t56, powers, t9 = fig5_6(args.out), fig8(args.out), fig9(args.out)
    t4 = fig4(args.out)
    table4, latency = complexity(args.out, loads, args.latency_repeats)
    fit = exponents(latency)
    quantiles = pd.DataFrame([{"powers": name, "median mW": np.median(v), "10 %": np.quantile(v, 0.1),
                               "90 %": np.quantile(v, 0.9)} for name, v in powers.items()])
    lines = ["# `uccf`: Figs. 5, 6, 8, 9, Table IV and latency against K", "",
             f"`python scripts/uccf_figures.py --instances {args.instances} --workers {args.workers}`; seed {SEED} "
             f"(held out from training); {os.cpu_count()} cores, load average before the latency "
             f"measurements {os.getloadavg()[0]:.2f}. SE in bit/s/Hz.", "",
             "## Figs. 5-6: SE per UE and connections against K", "", t56.to_markdown(index=False, floatfmt=".4g"), "",
             "`cf-maxmin` (Optimal CF) serves every UE from every AP and breaks tau_p = 10 for K > 10.", "",
             "## Fig. 4: attention ablation (validation objective of the model's own decision, mean of "
             "mr-k20/30/40; each ablation trained by `cfbench train --solver elu-cosformer --problem uccf "
             "--scenario mr-k20,mr-k30,mr-k40 --seed 0 --threads 1 --epochs 10 --samples 1024 --set attention=A "
             "--out results/weights/uccf-A-cosformer.pt`; the shipped ELU model's first 10 of 30 epochs)", "",
             t4.drop(columns=["key"]).to_markdown(index=False, floatfmt=".4g") if len(t4) else "(no histories)", "",
             "## Fig. 8: predicted against closed-form powers (same clusters, K = 40)", "",
             quantiles.to_markdown(index=False, floatfmt=".4g"), "",
             "## Fig. 9: test-time position error (K = 40)", "", t9.to_markdown(index=False, floatfmt=".4g"), "",
             "## Table IV: complexity", "", table4.to_markdown(index=False, floatfmt=".4g"), "",
             "## Latency against K (one thread, median of "
             f"{args.latency_repeats} after a warm-up)", "",
             latency.pivot(index="K", columns="method", values="ms").to_markdown(floatfmt=".3g"), "",
             "Fitted exponents (ms ~ K^a, K >= 40): " + "; ".join(f"{m}: {a:.2f}" for m, a in fit.items()), ""]
    (args.out / "figures.md").write_text("\n".join(lines) + "\n")
    plots(args.out, t56, powers, t9, latency)
    plot_fig4(args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
