"""Tables and PNG plots in the shape of Figs. 3-6 of Yan et al. from stored ``urllc`` runs.

Reads ``results/reference/urllc/<scenario>/results.parquet`` (written by
``scripts/urllc_paper_runs.sh``) and writes ``results/reference/urllc/figures.md``
and ``fig3_gt_vs_k.png``, ``fig4_at_vs_k.png``, ``fig5_gt_vs_alpha.png``,
``fig6_at_vs_alpha.png`` next to it. Every number is a mean over the instances
of a run (all valid decisions, feasible or not, as the paper averages its
curves); feasibility and eps_QoS violations are reported beside them.
``k50`` and ``alpha0.25`` are the same setting (same physics, alpha and
instance stream), so either run serves both sweeps.

Usage: python scripts/urllc_figures.py [RESULTS_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SOLVERS = ("p-max", "best-uniform", "sca", "estpanet")
K_SWEEP = (10, 20, 30, 40, 50, 60)
ALPHA_SWEEP = ("0.1", "0.15", "0.2", "0.25", "0.3", "0.35", "0.4")
STRESS = ("stress-k20", "stress-k40", "stress-k60")
#: one row per setting (``alpha0.25`` is ``k50``) in the quality-bar and README tables
SETTINGS = tuple(f"k{k}" for k in K_SWEEP) + tuple(f"alpha{a}" for a in ALPHA_SWEEP if a != "0.25") + STRESS
COLUMNS = {
    "metric_omega": "Omega",
    "metric_se_g": "SE_g",
    "metric_ee_g_kbit_per_j": "EE_g kbit/J",
    "metric_se_a": "SE_a",
    "metric_ee_a_kbit_per_j": "EE_a kbit/J",
    "metric_n_violating_eps": "viol/inst",
}
#: what the paper states in its text (its figures are not tabulated)
PAPER_POINTS = {
    ("alpha0.4", "EE_g kbit/J"): "about 2715 (U-ESTPANet)",
    ("alpha0.1", "SE_a"): "about 0.44 (U-ESTPANet)",
}


def load(folder: Path, scenario: str) -> pd.DataFrame | None:
    aliases = {"k50": "alpha0.25", "alpha0.25": "k50"}
    for name in (scenario, aliases.get(scenario)):
        if name and (folder / name / "results.parquet").is_file():
            return pd.read_parquet(folder / name / "results.parquet")
    return None


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    ok = rows[rows["status"] == "ok"]
    table = ok.groupby("solver")[list(COLUMNS)].mean().rename(columns=COLUMNS)
    table["feasible %"] = 100 * rows.groupby("solver")["feasible"].mean()
    table["median ms"] = 1e3 * ok.groupby("solver")["latency_s"].median()
    table["n"] = rows.groupby("solver").size()
    return table.reindex([s for s in SOLVERS if s in table.index] + [s for s in table.index if s not in SOLVERS])


def sweep(folder: Path, scenarios: dict[str, object]) -> pd.DataFrame:
    frames = []
    for scenario, x in scenarios.items():
        rows = load(folder, scenario)
        if rows is not None:
            frames.append(summary(rows).assign(x=x, scenario=scenario).reset_index())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot(table: pd.DataFrame, group: str, xlabel: str, title: str, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        sys.exit("urllc_figures.py: error: the plots need matplotlib; install it with pip install -e '.[figures]'")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_se, ax_ee) = plt.subplots(1, 2, figsize=(9, 3.6))
    for solver, g in table.groupby("solver", sort=False):
        if solver not in SOLVERS:
            continue
        g = g.sort_values("x")
        ax_se.plot(g["x"], g[f"SE_{group}"], marker="o", label=solver)
        ax_ee.plot(g["x"], g[f"EE_{group} kbit/J"], marker="o", label=solver)
    ax_se.set(xlabel=xlabel, ylabel="SE (bit/s/Hz)")
    ax_ee.set(xlabel=xlabel, ylabel="EE (kbit/J)")
    ax_se.grid(alpha=0.3)
    ax_ee.grid(alpha=0.3)
    ax_ee.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(table: pd.DataFrame, key: str) -> str:
    shown = table.drop(columns=[c for c in ("scenario",) if c in table]).rename(columns={"x": key})
    cols = [key, "solver"] + [c for c in shown.columns if c not in (key, "solver")]
    return shown[cols].to_markdown(index=False, floatfmt=".4g")


def quality_bars(folder: Path, scenario: str) -> dict | None:
    """Issue-level bars for one run: mean Omega over feasible rows (own and paired with
    each baseline), terminals above eps_QoS per instance, and the share of the
    terminals SCA makes reliable that U-ESTPANet also makes reliable (decisions
    re-judged with the evaluator)."""
    import numpy as np

    from cfbench.problems.urllc import Urllc

    rows = load(folder, scenario)
    if rows is None or not {"sca", "estpanet"} <= set(rows["solver"]):
        return None
    problem = Urllc()
    seed = int(rows["seed"].iloc[0])
    n = int(rows["instance"].max()) + 1
    instances = problem.sample(rows["scenario"].iloc[0], n, seed)
    by = {s: g.set_index("instance").sort_index() for s, g in rows.groupby("solver")}
    out = {"scenario": scenario}
    for s in ("p-max", "best-uniform", "sca", "estpanet"):
        g = by[s]
        out[f"{s} Omega"] = g.loc[g["feasible"], "objective"].mean()
        out[f"{s} viol/inst"] = g["metric_n_violating_eps"].mean()
    for s in ("sca", "estpanet"):
        for base in ("p-max", "best-uniform"):
            both = by[s]["feasible"] & by[base]["feasible"]
            out[f"{s} - {base} paired"] = (by[s].loc[both, "objective"] - by[base].loc[both, "objective"]).mean()
    served = {}
    for s in ("sca", "estpanet"):
        power = np.stack(by[s]["decision_power_w"].to_numpy())
        served[s] = problem.terms(instances, power)["eps"] <= instances.params.eps_qos * (1 + 1e-6)
    out["estpanet reliable on SCA-served %"] = 100 * (served["estpanet"] & served["sca"]).sum() / served["sca"].sum()
    out["estpanet / sca Omega %"] = 100 * out["estpanet Omega"] / out["sca Omega"]
    return out


def readme_row(folder: Path, scenario: str) -> str | None:
    """One row of the README's urllc results table: mean Omega over feasible rows per
    solver, U-ESTPANet relative to SCA, feasible share, terminals above eps_QoS per
    instance and median per-instance latency."""
    rows = load(folder, scenario)
    if rows is None or not {"p-max", "best-uniform", "sca", "estpanet"} <= set(rows["solver"]):
        return None
    by = dict(tuple(rows.groupby("solver")))
    omega = {s: g.loc[g["feasible"], "objective"].mean() for s, g in by.items()}
    feasible = {s: 100 * g["feasible"].mean() for s, g in by.items()}
    violating = {s: g["metric_n_violating_eps"].mean() for s, g in by.items()}
    latency = {s: g.loc[g["status"] == "ok", "latency_s"].median() for s, g in by.items()}
    trio = ("best-uniform", "sca", "estpanet")
    cells = [f"`{scenario}`", str(len(by["sca"]))]
    cells += [f"{omega[s]:.3f}" if pd.notna(omega[s]) else "none feasible"
              for s in ("p-max", "best-uniform", "sca", "estpanet")]
    cells.append(f"{100 * (omega['estpanet'] / omega['sca'] - 1):.1f} %")
    cells.append(" / ".join(f"{feasible[s]:.1f}" for s in trio))
    cells.append(" / ".join(f"{violating[s]:.3g}" for s in trio))
    cells += [f"{latency['sca']:.2f} s", f"{1e3 * latency['estpanet']:.1f} ms"]
    return "| " + " | ".join(cells) + " |"


def readme_table(folder: Path) -> str:
    head = ("| scenario | n | p-max | best-uniform | SCA | U-ESTPANet | U-ESTPANet vs SCA "
            "| feasible % (b-u / SCA / U-E) | terminals above eps_QoS per instance (b-u / SCA / U-E) "
            "| SCA latency | U-ESTPANet latency |\n|" + "---|" * 11)
    return "\n".join([head] + [r for r in (readme_row(folder, s) for s in SETTINGS) if r])


def main(folder: Path) -> None:
    k_table = sweep(folder, {f"k{k}": k for k in K_SWEEP})
    a_table = sweep(folder, {f"alpha{a}": float(a) for a in ALPHA_SWEEP})
    s_table = sweep(folder, {s: int(s.split("k")[-1]) for s in STRESS})
    parts = ["# urllc: Figs. 3-6 of Yan et al. as tables (written by scripts/urllc_figures.py)\n",
             "Means over 256 instances (seed 0) of every valid decision; `viol/inst` = terminals above "
             "eps_QoS per instance; `feasible %` = instances where every terminal meets eps_QoS.\n"]
    if not k_table.empty:
        parts += ["## K sweep (Figs. 3-4, alpha = 0.25, M = 64 x L = 16)\n", markdown(k_table, "K"), ""]
        plot(k_table, "g", "number of terminals K", "GTs vs K (Fig. 3), alpha = 0.25", folder / "fig3_gt_vs_k.png")
        plot(k_table, "a", "number of terminals K", "ATs vs K (Fig. 4), alpha = 0.25", folder / "fig4_at_vs_k.png")
    if not a_table.empty:
        parts += ["## alpha sweep (Figs. 5-6, K = 50)\n", markdown(a_table, "alpha"), ""]
        plot(a_table, "g", "alpha", "GTs vs alpha (Fig. 5), K = 50", folder / "fig5_gt_vs_alpha.png")
        plot(a_table, "a", "alpha", "ATs vs alpha (Fig. 6), K = 50", folder / "fig6_at_vs_alpha.png")
    if not s_table.empty:
        parts += ["## stress family (M = 16 x L = 4, alpha = 0.25)\n", markdown(s_table, "K"), ""]
    bars = [b for b in (quality_bars(folder, s) for s in SETTINGS) if b]
    if bars:
        parts += ["## Quality bars\n",
                  "Mean Omega over each solver's feasible rows; `paired` = mean Omega difference on the "
                  "instances where both are feasible; last columns: share of the terminals SCA makes "
                  "reliable that U-ESTPANet also makes reliable, and U-ESTPANet's mean Omega relative to SCA's.\n",
                  pd.DataFrame(bars).to_markdown(index=False, floatfmt=".4g"), ""]
    parts += ["## README table\n",
              "Mean Omega over feasible rows, one thread per solver, medians of the per-instance latency.\n",
              readme_table(folder), ""]
    parts += ["## The paper's stated values\n"]
    for (scenario, column), text in PAPER_POINTS.items():
        rows = load(folder, scenario)
        ours = summary(rows)[column].to_dict() if rows is not None else {}
        parts.append(f"- {scenario}, {column}: paper {text}; here "
                     + (", ".join(f"{s} {v:.4g}" for s, v in ours.items()) or "(not run)"))
    (folder / "figures.md").write_text("\n".join(parts) + "\n")
    print((folder / "figures.md").read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "reference" / "urllc")
