#!/usr/bin/env bash
# Reproduce the shipped U-ESTPANet weights for urllc (plugins/weights/), seed 0, 2 CPU threads.
# Each line is one model; the README gives the time each took and the data size.
set -euo pipefail
cd "$(dirname "$0")/.."
W=plugins/weights
train() { cfbench train --solver estpanet --problem urllc --seed 0 --threads 2 "$@"; }
# K sweep of Figs. 3-4 (alpha = 0.25, M = 64 x L = 16): one model across K = 10 ... 60
train --scenario k10,k20,k30,k40,k50,k60 --epochs 8 --out $W/estpanet-urllc-k-sweep.pt
# the same with a CNN of width 32 instead of the paper's 128 (option cnn=narrow; trained on one thread)
train --scenario k10,k20,k30,k40,k50,k60 --epochs 8 --set d_cnn=32 --threads 1 --out $W/estpanet-urllc-k-sweep-narrow.pt
# alpha sweep of Figs. 5-6 (K = 50): the K-sweep model fine-tuned per alpha (alpha = 0.25 is k50 itself)
for a in 0.1 0.15 0.2 0.3 0.35 0.4; do
  train --scenario alpha$a --epochs 4 --init $W/estpanet-urllc-k-sweep.pt --out $W/estpanet-urllc-alpha$a.pt
done
# stress family (M = 16 x L = 4): one model across K = 20, 40, 60
train --scenario stress-k20,stress-k40,stress-k60 --epochs 15 --out $W/estpanet-urllc-stress.pt
# tiny test scenario (used by the test suite)
train --scenario tiny --samples 300 --epochs 30 --out $W/estpanet-urllc-tiny.pt
