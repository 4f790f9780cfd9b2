"""Runs, tables and PNG plots in the shape of Figs. 2-9 of Khan, Karthik and Agnihotri (``dmimo``).

    python scripts/dmimo_figures.py --instances 10 --workers 2 [--figs 2,3,4,5,6,7,8,9]
        [--variant corrected|paper|both] [--solvers ao,local-search,full-power]
        [--out results/reference/dmimo/sweeps] [--tables-only]

1. For every point of the chosen figures (the named scenarios of
   :mod:`cfbench.problems.dmimo`: Fig. 2 EE against SE^QoS and M, Fig. 3 against
   SE^QoS and T, Fig. 4 against SE^QoS and p_u, Figs. 5-6 against M and T at
   SE^QoS = 70 and 100; Fig. 7 the convergence of ``ao`` (its per-iteration EE
   trace) at Fig. 5's point M = 60, T = 30, SE^QoS = 70; Figs. 8-9 ``ao`` from each of the five association and
   power initialisations at M = 40 and 50, and at M = 60, T = 30, each with the
   variant's default target), and for each interference variant, runs
   ``cfbench run --problem dmimo --scenario S --solvers ... --instances N --seed 0
   --workers W --out OUT/S`` (Figs. 8-9: ``--solvers ao --set ao:association=X``
   or ``ao:power=X``, folder ``OUT/S-association-X``); a folder that already holds a complete run with the
   same settings is kept, an interrupted one is resumed (``--resume``), so the
   command can be stopped and rerun at will.
2. Writes ``OUT/figures.md``: per point and solver the mean EE with infeasible
   setups counted as 0 (the paper draws an infeasible point as EE = 0), the mean
   over feasible setups only and the feasible share, side by side, with the
   values the paper's text states beside them; for Figs. 5-6 the EE-maximising M
   per T; for Fig. 7 per setup the outer iterations and the EE of the first and last
   relaxed iterate and of the rounded answer; for Figs. 8-9 the mean final EE per
   initialisation and the spread of the means; per figure the total solve time (sum of the
   per-setup latencies, so it survives resumed runs). And ``OUT/fig<k>_<variant>.png``
   (needs ``pip install -e '.[figures]'``).

The paper's numbers use its printed eq. (8): compare them with ``--variant paper``
(scenario suffix ``-paper``); the corrected interference is the benchmark's default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cfbench.plugins.dmimo_ao import ASSOCIATION_INITS, POWER_INITS
from cfbench.problems.dmimo import (
    FIG2_APS, FIG2_SE, FIG3_SE, FIG3_UES, FIG4_PU_MW, FIG4_SE, FIG56_APS, FIG56_UES, scenario_name,
)

ROOT = Path(__file__).resolve().parent.parent
FIGS = ("2", "3", "4", "5", "6", "7", "8", "9")
#: Figs. 8-9: the ``ao`` option each varies, its values, and the (M, T) settings
INITIALISATION_FIGS = {"8": ("association", ASSOCIATION_INITS, ((40, 30), (50, 30))),
                       "9": ("power", POWER_INITS, ((60, 30),))}
VARIANTS = ("corrected", "paper", "both")
#: what the paper's text states (Section V-A), with eq. (8); "x at SE" pairs per curve
PAPER_TEXT = {
    "2": {"M = 30": "3.6 at 55, 0.2 at 75, 0 beyond 80", "M = 60": "4.22 at 55, 0.3 at 95",
          "M = 110": "3.8 at 55, 0.5 at 110"},
    "3": {"T = 20": "2.9 at 55, 0.3 at 65, 0 beyond 70", "T = 40": "3.9 at 55, 0.16 at 100",
          "T = 80": "2.6 at 55, 0.2 at 110"},
    "4": {"p_u = 10 mW": "3.3 at 40, 0.04 at 70", "p_u = 50 mW": "3.9 at 40, 0.08 at 80",
          "p_u = 200 mW": "4.1 at 40, 0.09 at 90"},
    "5": {"T = 30": "peak 4.216 at M = 60", "T = 50": "peak 3.949 at M = 90", "T = 70": "peak 3.679 at M = 100"},
    "6": {"T = 30": "peak 3.633 at M = 120", "T = 50": "peak 3.949 at M = 90", "T = 70": "peak 3.679 at M = 100"},
    "7": {"(setting not stated)": "from about 0.6 to about 2.7 Mbit/J within 3-5 iterations"},
    "8": {"M = 40": "4.02-4.06 over the five schemes", "M = 50": "4.11-4.17 over the five schemes"},
    "9": {"(setting not stated)": "4.00-4.03 over the five power initialisations"},
}


def points(fig: str, paper: bool) -> list[tuple[str, str, float | str, str]]:
    """(run folder name, curve label, x value, x name) of one figure; for Figs. 8-9 the folder
    name is ``<scenario>-<option>-<value>`` (:func:`run_settings` splits it)."""
    out = []
    if fig in INITIALISATION_FIGS:
        option, values, sizes = INITIALISATION_FIGS[fig]
        for m, t in sizes:
            out += [(f"{scenario_name(m, t, paper=paper)}-{option}-{v}", f"M = {m}", v, option) for v in values]
    elif fig == "7":
        out.append((scenario_name(60, 30, 70, paper=paper), "M = 60, T = 30", 70, "SE^QoS"))
    elif fig == "2":
        for m in FIG2_APS:
            out += [(scenario_name(m, 30, se, paper=paper), f"M = {m}", se, "SE^QoS") for se in FIG2_SE]
    elif fig == "3":
        for t in FIG3_UES:
            out += [(scenario_name(60, t, se, paper=paper), f"T = {t}", se, "SE^QoS") for se in FIG3_SE]
    elif fig == "4":
        for pu in FIG4_PU_MW:
            out += [(scenario_name(60, 30, se, p_u_mw=pu, paper=paper), f"p_u = {pu} mW", se, "SE^QoS")
                    for se in FIG4_SE]
    else:
        se = 70 if fig == "5" else 100
        for t in FIG56_UES:
            out += [(scenario_name(m, t, se, paper=paper), f"T = {t}", m, "M") for m in FIG56_APS]
    return out


def run_settings(folder_name: str, solvers: str) -> tuple[str, str, list[str]]:
    """(scenario, solvers, extra ``cfbench run`` arguments) of a run folder of :func:`points`."""
    for option in ("association", "power"):
        scenario, sep, value = folder_name.partition(f"-{option}-")
        if sep:
            return scenario, "ao", ["--set", f"ao:{option}={value}"]
    return folder_name, solvers, []


def ensure_run(out: Path, folder_name: str, solvers: str, instances: int, workers: int) -> float:
    """Run (or resume) one point; wall seconds spent (0 when already complete)."""
    folder = out / folder_name
    manifest = folder / "manifest.json"
    scenario, solvers, extra = run_settings(folder_name, solvers)
    command = [sys.executable, "-m", "cfbench.cli", "run", "--problem", "dmimo", "--scenario", scenario,
               "--solvers", solvers, "--instances", str(instances), "--seed", "0", "--workers", str(workers),
               "--quiet", "--out", str(folder), *extra]
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("complete") and int(old.get("n_instances", 0)) == instances and \
                sorted(old.get("solvers", {})) == sorted(solvers.split(",")):
            return 0.0
        if int(old.get("n_instances", 0)) != instances or sorted(old.get("solvers", {})) != sorted(solvers.split(",")):
            raise SystemExit(f"error: {folder} holds a run with other settings; move it away or pick another --out")
        command.append("--resume")
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def convergence(out: Path, paper: bool) -> pd.DataFrame:
    """Fig. 7: per setup, ``ao``'s outer iterations and its EE trace (relaxed iterates)."""
    rows = []
    for scenario, *_ in points("7", paper):
        frame = pd.read_parquet(out / scenario / "results.parquet")
        for _, r in frame[frame["solver"] == "ao"].iterrows():
            trace = list(r["trace"])
            rows.append({"setup": int(r["instance"]), "iterations": int(r["iterations"]),
                         "first EE": trace[0], "last relaxed EE": trace[-1],
                         "EE after 3 iterations, % of last": 100 * trace[min(3, len(trace) - 1)] / trace[-1],
                         "rounded EE": r["objective"], "feasible": bool(r["feasible"]), "trace": trace})
    return pd.DataFrame(rows)


def solve_time_s(out: Path, fig: str, paper: bool) -> float:
    """Sum of the per-setup solve latencies of a figure's runs (seconds)."""
    return float(sum(pd.read_parquet(out / scenario / "results.parquet")["latency_s"].sum()
                     for scenario, *_ in points(fig, paper)))


def summarise(out: Path, fig: str, paper: bool) -> pd.DataFrame:
    rows = []
    for scenario, curve, x, x_name in points(fig, paper):
        frame = pd.read_parquet(out / scenario / "results.parquet")
        for solver, g in frame.groupby("solver"):
            ok = g["feasible"].to_numpy(bool)
            ee = g["objective"].where(ok, 0.0)
            rows.append({"curve": curve, x_name: x, "solver": solver,
                         "EE, infeasible as 0": ee.mean(),
                         "EE over feasible": g.loc[ok, "objective"].mean() if ok.any() else float("nan"),
                         "feasible %": 100 * ok.mean(),
                         "sum SE": g["metric_sum_se_bit_per_hz"].mean(),
                         "links": g["metric_n_links"].mean(), "n": len(g)})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, fig: str, variant: str, path: Path, solver: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install -e '.[figures]'): no PNG written", file=sys.stderr)
        return
    ax = plt.figure(figsize=(5.5, 3.8)).gca()
    if fig == "7":
        for _, r in table.iterrows():
            ax.plot(range(len(r["trace"])), r["trace"], marker="o", label=f"setup {r['setup']}")
        ax.set_xlabel("outer iteration of `ao` (0: the start)")
        ax.set_ylabel("EE of the relaxed iterate (Mbit/J)")
        solver = "ao"
    elif fig in INITIALISATION_FIGS:
        option = INITIALISATION_FIGS[fig][0]
        curves = list(table.groupby("curve", sort=False))
        width = 0.8 / len(curves)
        for j, (curve, g) in enumerate(curves):
            ax.bar([i + j * width for i in range(len(g))], g["EE, infeasible as 0"], width, label=curve)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(curves[0][1]))], list(curves[0][1][option]), fontsize=8)
        ax.set_xlabel(f"`ao` {option} initialisation")
        solver = "ao"
    else:
        x_name = "M" if fig in ("5", "6") else "SE^QoS"
        for curve, g in table[table["solver"] == solver].groupby("curve", sort=False):
            ax.plot(g[x_name], g["EE, infeasible as 0"], marker="o", label=curve)
        ax.set_xlabel(x_name + (" (APs)" if x_name == "M" else " (bit/s/Hz)"))
    if fig != "7":
        ax.set_ylabel("EE (Mbit/J), infeasible = 0")
    ax.set_title(f"Fig. {fig} shape, `{solver}`, {variant} interference")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(path, dpi=120)
    plt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figs", default=",".join(FIGS))
    parser.add_argument("--variant", choices=VARIANTS, default="both")
    parser.add_argument("--solvers", default="ao,local-search,full-power")
    parser.add_argument("--out", type=Path, default=ROOT / "results/reference/dmimo/sweeps")
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    figs = [f.strip() for f in args.figs.split(",") if f.strip()]
    bad = [f for f in figs if f not in FIGS]
    if bad:
        parser.error(f"unknown figure {bad[0]!r}; valid: {', '.join(FIGS)}")
    if args.instances < 1 or args.workers < 1:
        parser.error("--instances and --workers must be at least 1")
    variants = ("corrected", "paper") if args.variant == "both" else (args.variant,)
    reference = args.solvers.split(",")[0]
    lines = ["# `dmimo`: Figs. 2-9 reproduced", "",
             f"`python scripts/dmimo_figures.py --instances {args.instances} --workers {args.workers} "
             f"--figs {','.join(figs)} --variant {args.variant} --solvers {args.solvers}`; seed 0. "
             "EE in Mbit/J; an infeasible setup counts as EE = 0 in the first column (as the paper "
             "draws it) and is left out of the second.", ""]
    spent = 0.0
    for variant in variants:
        paper = variant == "paper"
        for fig in figs:
            if not args.tables_only:
                for scenario, *_ in points(fig, paper):
                    seconds = ensure_run(args.out, scenario, args.solvers, args.instances, args.workers)
                    spent += seconds
                    if seconds:
                        print(f"{scenario}: {seconds:.0f} s", flush=True)
            table = convergence(args.out, paper) if fig == "7" else summarise(args.out, fig, paper)
            shown = table.drop(columns=["trace"]) if fig == "7" else table
            lines += [f"## Fig. {fig}, {variant} interference", "",
                      shown.to_markdown(index=False, floatfmt=".3g"), "",
                      f"Total solve time of this figure's runs: {solve_time_s(args.out, fig, paper) / 60:.1f} min "
                      "(sum of per-setup latencies).", ""]
            if fig in ("5", "6"):
                best = table[table["solver"] == reference]
                best = best.loc[best.groupby("curve", sort=False)["EE, infeasible as 0"].idxmax()]
                lines += [f"EE-maximising M (`{reference}`, infeasible as 0): " + "; ".join(
                    f"{r.curve}: M = {r.M:g}, {r['EE, infeasible as 0']:.3f}" for _, r in best.iterrows()), ""]
            if fig in INITIALISATION_FIGS:
                spread = table.groupby("curve", sort=False)["EE, infeasible as 0"].agg(["min", "max"])
                lines += ["Range of the mean final EE over the initialisations (infeasible as 0): " + "; ".join(
                    f"{curve}: {r['min']:.3f}-{r['max']:.3f}" for curve, r in spread.iterrows()), ""]
            lines += ["Paper (text of Section V, printed eq. (8)): "
                      + "; ".join(f"{k}: {v}" for k, v in PAPER_TEXT[fig].items()), ""]
            plot(table, fig, variant, args.out / f"fig{fig}_{variant}.png", reference)
    lines.append(f"Wall time of the runs made by this command: {spent / 60:.1f} min.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "figures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
