"""Retrain every shipped ``uccf`` weight file (plugins/weights/uccf-*.pt), seed 0, one thread.

    python scripts/train_uccf.py            # the shipped ELU-CosFormer (positions) and its lsf variant
    python scripts/train_uccf.py --ablations  # also ReLU CosFormer, softmax Transformer, Performer
                                              # (written to results/weights/, not shipped)

Each model is one ``cfbench train`` command, printed before it runs; the README gives the
time each took. The ``inputs=lsf`` model (also sees the large-scale fading beta; a departure
from the paper's positions-only input) is two commands: the power heads with the cluster
head left at its prior (15 epochs, written to results/weights/), then the cluster head (and
powers) fine-tuned from it by BCE to local-search labels (10 epochs, labels every 2).
Training draws its instances from the scenarios' generators at seed 70_000_000 + seed,
disjoint from benchmark seeds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = "mr-k20,mr-k30,mr-k40"
COMMON = ["--problem", "uccf", "--scenario", SCENARIOS, "--seed", "0", "--threads", "1", "--samples", "1024"]
LSF_POWERS = "results/weights/uccf-elu-cosformer-lsf-powers.pt"
SHIPPED = [["--solver", "elu-cosformer", "--epochs", "30", "--out", "plugins/weights/uccf-elu-cosformer.pt"],
           ["--solver", "elu-cosformer", "--epochs", "15", "--set", "inputs=lsf", "--out", LSF_POWERS],
           ["--solver", "elu-cosformer", "--epochs", "10", "--init", LSF_POWERS, "--set", "cluster_loss=search",
            "--set", "cluster_weight=1", "--set", "search_rounds=6", "--set", "search_every=2",
            "--out", "plugins/weights/uccf-elu-cosformer-lsf.pt"]]
ABLATIONS = [["--solver", "elu-cosformer", "--epochs", "30", "--set", f"attention={a}",
              "--out", f"results/weights/uccf-{a}-cosformer.pt"]
             for a in ("relu", "softmax", "performer")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablations", action="store_true", help="also train the attention ablations")
    args = parser.parse_args()
    for extra in SHIPPED + (ABLATIONS if args.ablations else []):
        command = ["cfbench", "train", *extra, *COMMON]
        print("+", shlex.join(command), flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(command, cwd=ROOT, check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
