"""Retrain every shipped ``sum-ee`` GNN checkpoint and plot its training curves.

One model across the three Table II configurations (the nodes and the SINRnet
are size-agnostic), fine-tuned on each of them for the default there, plus the
two ablations of the same data and budget::

    python scripts/train_sum_ee_gnn.py            # train (about 4 x 10 min, then about 2 h 20 min for the
                                                  # joint default's eight runs and 1 h 10 min for its three
                                                  # fine-tunes, on one core), then plot
    python scripts/train_sum_ee_gnn.py --plots    # only redraw the PNGs from the checkpoints' histories
    python scripts/train_sum_ee_gnn.py --single   # generalisation: the same recipe on each configuration
                                                  # alone (about 10 min in all), not shipped

The ``--single`` models (``results/reference/sum-ee/gnn/single/gnn-sum-ee-only-S.pt``) are the
24-epoch width-8 recipe (``gnn-sum-ee-24ep.pt``'s) restricted to one configuration; the README
evaluates each on all three beside ``gnn-sum-ee-24ep.pt``, trained on all three.

Each run is a plain ``cfbench train`` command (printed before it runs). The
curves (validation EE per configuration, kappa, support width per epoch) go to
``results/reference/sum-ee/gnn/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = "5ap-10ue,10ap-10ue,15ap-15ue"
#: shared by every run: one thread; training instances of seed 0
COMMON = ["--threads", "1"]
W = "plugins/weights/"
R = "results/weights/"


#: the paper's recipe at width 8 for 24 epochs (``gnn-sum-ee-24ep.pt``; the ``--single`` models too)
RECIPE_24EP = ("--epochs", "24")


def on(scenarios: str, *extra: str) -> list[str]:
    """A run on ``scenarios`` (comma-separated), 1,024 training instances each."""
    return ["--scenario", scenarios, "--samples", "1024", *extra]


def joint(*extra: str) -> list[str]:
    """A run on all three configurations."""
    return on(SCENARIOS, *extra)


def fine_tune(scenario: str) -> list[str]:
    """96 epochs of the joint default on one configuration alone, 3,072 instances (lr 3e-4 -> 1e-7)."""
    return ["--scenario", scenario, "--samples", "3072", "--epochs", "96", "--set", "width=16", "--set", "lr=3e-4",
            "--init", W + "gnn-sum-ee.pt"]


#: the joint default's runs after its first 24 epochs: (total epochs after the run, epochs in it)
JOINT_CONTINUATIONS = ((48, 24), (96, 48), (192, 96), (288, 96), (384, 96), (480, 96), (576, 96))


def joint_continued() -> dict[str, list[str]]:
    """Each run 'epochs' more from the previous checkpoint (lr 3e-4 -> 1e-7); the last is the default."""
    runs, previous = {}, R + "gnn-sum-ee-w16-24ep.pt"
    for total, epochs in JOINT_CONTINUATIONS:
        name = W + "gnn-sum-ee.pt" if total == JOINT_CONTINUATIONS[-1][0] else R + f"gnn-sum-ee-w16-{total}ep.pt"
        runs[name] = joint("--epochs", str(epochs), "--set", "width=16", "--set", "lr=3e-4", "--init", previous)
        previous = name
    return runs


#: checkpoint (relative to the repository) -> its arguments, in order (a run may start from an earlier one)
RUNS = {
    # the paper's recipe at width 8 for 24 epochs, and the two ablations on the same data and steps
    W + "gnn-sum-ee-24ep.pt": joint(*RECIPE_24EP),
    W + "gnn-sum-ee-no-kappa.pt": joint("--epochs", "24", "--set", "mode=no-kappa"),           # kappa = 0
    W + "gnn-sum-ee-deterministic.pt": joint("--epochs", "24", "--set", "mode=deterministic"),  # b = a, no sampling
    # the same recipe for twice the steps: 24 more epochs from the 24-epoch model (lr 3e-4 -> 1e-7)
    W + "gnn-sum-ee-48ep.pt": joint("--epochs", "24", "--init", W + "gnn-sum-ee-24ep.pt", "--set", "lr=3e-4"),
    # the joint default: the paper's recipe at width 16, 24 epochs, then 24, 48, 96, 96, 96, 96 and 96
    # more, each started from the previous one with lr 3e-4 -> 1e-7 (576 epochs, 27,648 steps; the steps
    # between are written under results/weights/; the 192-, 288-, 384- and 480-epoch ones are also kept
    # in results/reference/sum-ee/gnn/candidates/; each checkpoint records as init the file its run
    # actually started from, the default of its day for some: README, "Weights")
    R + "gnn-sum-ee-w16-24ep.pt": joint("--epochs", "24", "--set", "width=16"),
    **joint_continued(),
    # the default at each Table II configuration: the joint default fine-tuned there
    **{W + f"gnn-sum-ee-{s}.pt": fine_tune(s) for s in SCENARIOS.split(",")},
}
PLOTS = ROOT / "results" / "reference" / "sum-ee" / "gnn"
SINGLE = PLOTS / "single"


def train() -> None:
    (ROOT / "results" / "weights").mkdir(parents=True, exist_ok=True)
    for name, extra in RUNS.items():
        cmd = ["cfbench", "train", "--solver", "gnn", "--problem", "sum-ee", *COMMON, *extra, "--out", name]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)


def train_single() -> None:
    SINGLE.mkdir(parents=True, exist_ok=True)
    for scenario in SCENARIOS.split(","):
        cmd = ["cfbench", "train", "--solver", "gnn", "--problem", "sum-ee", *COMMON, *on(scenario, *RECIPE_24EP),
               "--out", str((SINGLE / f"gnn-sum-ee-only-{scenario}.pt").relative_to(ROOT))]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cfbench.learning import load_checkpoint

    PLOTS.mkdir(parents=True, exist_ok=True)
    for name in (n for n in RUNS if n.startswith(W)):
        ck = load_checkpoint(ROOT / name)
        hist = ck["training"]["history"]
        epochs = [h["epoch"] for h in hist]
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
        for s in ck["trained_on"]["scenarios"]:
            ax[0].plot(epochs, [h[f"val_ee_{s}"] for h in hist], label=f"{s} (validation, output a)")
        ax[0].plot(epochs[1:], [h["train_objective"] for h in hist[1:]], "k--", label="E_u J (training, sampled)")
        ax[0].set(xlabel="epoch", ylabel="EE [bit/s/Hz/J]", title="objective")
        ax[0].legend(fontsize=7)
        ax[1].plot(epochs[1:], [h["kappa"] for h in hist[1:]], label="kappa (end of epoch)")
        ax[1].plot(epochs[1:], [h["kappa_mean"] for h in hist[1:]], label="kappa (epoch mean)")
        ax[1].set(xlabel="epoch", title="kappa, eq. (8)")
        ax[1].legend(fontsize=7)
        ax[2].semilogy(epochs[1:], [max(h["support"], 1e-12) for h in hist[1:]])
        ax[2].set(xlabel="epoch", ylabel="psi = 1^T (b - a) [W]", title="support width (epoch mean)")
        fig.suptitle(f"{name}: mode={ck['training']['mode']}, {ck['training']['steps']} steps, "
                     f"{ck['training']['train_time_s'] / 60:.1f} min on {ck['training']['threads']} thread")
        fig.tight_layout()
        out = PLOTS / (Path(name).stem + ".png")
        fig.savefig(out, dpi=90)
        plt.close(fig)
        print(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", action="store_true", help="only redraw the PNGs")
    parser.add_argument("--single", action="store_true", help="only train the one-configuration models")
    options = parser.parse_args()
    if options.single:
        train_single()
        sys.exit(0)
    if not options.plots:
        train()
    plot()
    sys.exit(0)
