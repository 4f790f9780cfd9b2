#!/usr/bin/env bash
# The runs behind the README's sum-ee Table II at the issue's scale: 1024 held-out instances
# (seed 1; training uses seeds from 80,000,000) per configuration, one thread per solve:
#   equal, nearest-ap, sca (converged), multistart-pg (best known) and gnn (shipped weights), with
#   gnn also timed on one call for all 1024 instances (--batch 1024);
#   the two ablations (kappa = 0, deterministic b = a) on the same instances.
# Usage: WORKERS=2 scripts/sum_ee_table2_runs.sh [CONFIGURATION ...]   then: python scripts/sum_ee_gnn_table.py --runs results/reference/sum-ee/table2-1024
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference/sum-ee/table2-1024
mkdir -p "$out"
configurations=("$@")
if [ ${#configurations[@]} -eq 0 ]; then
  configurations=(5ap-10ue 10ap-10ue 15ap-15ue)
fi
for s in "${configurations[@]}"; do
  cfbench run --problem sum-ee --scenario "$s" --solvers equal,nearest-ap,sca,multistart-pg,gnn --instances 1024 \
    --seed 1 --workers "${WORKERS:-2}" --threads 1 --batch 1024 --quiet --overwrite --out "$out/$s" > "$out/$s.txt" 2>&1
  for variant in no-kappa deterministic; do
    cfbench run --problem sum-ee --scenario "$s" --solvers gnn --set "gnn:weights=plugins/weights/gnn-sum-ee-$variant.pt" \
      --instances 1024 --seed 1 --workers 1 --threads 1 --batch 1024 --quiet --overwrite --out "$out/$s-$variant" \
      > "$out/$s-$variant.txt" 2>&1
  done
  echo "done $s"
done
