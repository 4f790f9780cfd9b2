#!/usr/bin/env bash
# The runs behind the README's Table II reproduction (seed 0 test drops, disjoint from the
# training streams; one thread per solver):
#   each Table II setting: UPC, FPC, G-FPC, fast OPC (the labels' solver) and het-gnn   (256 drops)
#   each Table II setting: het-gnn with the weights trained without the augmented Lagrangian
#                          (beta = 0, results/weights/het-gnn-beta0.pt, see the README)   (256 drops)
#   each Table II setting: fast OPC on seed 1, the KL estimator's own noise (256 drops)
# Usage: scripts/mmtc_gnn_runs.sh [SETTING ...]   then: python scripts/mmtc_table2.py
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference/mmtc-gnn
mkdir -p "$out"
settings=("$@")
if [ ${#settings[@]} -eq 0 ]; then
  settings=(ku2-kd10-m10-ms5 ku2-kd10-m10-ms1 ku2-kd10-m5-ms5 ku1-kd10-m10-ms5 ku1-kd5-m10-ms5)
fi
for s in "${settings[@]}"; do
  cfbench run --problem mmtc --scenario "$s" --solvers upc,fpc,g-fpc,opc-fast,het-gnn --instances 256 --seed 0 \
    --quiet --overwrite --out "$out/$s" > "$out/$s.txt" 2>&1
  if [ -f results/weights/het-gnn-beta0.pt ]; then
    cfbench run --problem mmtc --scenario "$s" --solvers het-gnn --set het-gnn:weights=results/weights/het-gnn-beta0.pt \
      --instances 256 --seed 0 --quiet --overwrite --out "$out/$s-beta0" > "$out/$s-beta0.txt" 2>&1
  fi
  cfbench run --problem mmtc --scenario "$s" --solvers opc-fast --instances 256 --seed 1 \
    --quiet --overwrite --out "$out/$s-opc-seed1" > "$out/$s-opc-seed1.txt" 2>&1
  echo "done $s"
done
