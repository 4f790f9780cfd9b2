#!/usr/bin/env bash
# Rebuild the mmtc GNN's training data and shipped weights (README, "GNN (Section VI)").
#   1. labels: the fast OPC on 512 drops of each Table II setting (~1 min of one core today)
#   2. results/weights/het-gnn-512.pt: one model on the five settings, loss (43) with beta = 1,
#      40 epochs (49 min of one thread before the fused forward)
#   3. labels at the paper's scale: 10^4 drops per setting (about 5 min of one core)
#   4. results/weights/het-gnn-10k-3ep.pt: model 2 fine-tuned on the 10^4-drop sets, 3 epochs
#      (42 min of one thread)
#   5. plugins/weights/het-gnn-mmtc.pt: model 4 fine-tuned 4 more epochs with the max-min term
#      (min_ee_weight = 3; 31 min of one thread while other jobs shared the cores)
#   6. results/weights/het-gnn-beta0.pt: the same as 2 without the augmented Lagrangian
#      (beta = 0) and 15 epochs, only for the C4 comparison of Table II's runs (not shipped)
set -euo pipefail
cd "$(dirname "$0")/.."
settings=ku2-kd10-m10-ms5,ku2-kd10-m10-ms1,ku2-kd10-m5-ms5,ku1-kd10-m10-ms5,ku1-kd5-m10-ms5
epochs=${EPOCHS:-40}
cfbench dataset --problem mmtc --scenario "$settings" --labels opc-fast --samples 512 --out data/mmtc-gnn
cfbench train --solver het-gnn --problem mmtc --scenario "$settings" --epochs "$epochs" \
  --set lr=1e-3 --set lr_final=1e-5 --out results/weights/het-gnn-512.pt
cfbench dataset --problem mmtc --scenario "$settings" --labels opc-fast --samples 10000 --workers 1 \
  --out data/mmtc-gnn-10k
cfbench train --solver het-gnn --problem mmtc --scenario "$settings" --epochs 3 --set data=data/mmtc-gnn-10k \
  --set init=results/weights/het-gnn-512.pt --set lr=3e-4 --set lr_final=1e-5 --threads 1 \
  --out results/weights/het-gnn-10k-3ep.pt
cfbench train --solver het-gnn --problem mmtc --scenario "$settings" --epochs 4 --set data=data/mmtc-gnn-10k \
  --set init=results/weights/het-gnn-10k-3ep.pt --set lr=3e-4 --set lr_final=1e-5 --set min_ee_weight=3 \
  --threads 1 --out plugins/weights/het-gnn-mmtc.pt
cfbench train --solver het-gnn --problem mmtc --scenario "$settings" --epochs 15 \
  --set lr=1e-3 --set lr_final=1e-5 --set beta=0 --out results/weights/het-gnn-beta0.pt
