#!/usr/bin/env bash
# Generalisation of the sum-ee gnn: each one-configuration model (scripts/train_sum_ee_gnn.py --single)
# on the same 1024 held-out instances (seed 1) of every Table II configuration, next to the runs of
# scripts/sum_ee_table2_runs.sh (which hold SCA, the best known and the shipped model trained on all three).
# The shipped fine-tunes (plugins/weights/gnn-sum-ee-S.pt, the default at S) likewise on the two other
# configurations, as the variants "tuned-S" (at S itself they are the gnn rows).
# Usage: scripts/sum_ee_gnn_generalisation.sh   then: python scripts/sum_ee_gnn_table.py --runs results/reference/sum-ee/table2-1024 only-5ap-10ue only-10ap-10ue only-15ap-15ue
#        (and ... joint tuned-5ap-10ue tuned-10ap-10ue tuned-15ap-15ue for the fine-tunes)
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference/sum-ee/table2-1024
models=results/reference/sum-ee/gnn/single
for s in 5ap-10ue 10ap-10ue 15ap-15ue; do
  for trained in 5ap-10ue 10ap-10ue 15ap-15ue; do
    cfbench run --problem sum-ee --scenario "$s" --solvers gnn --set "gnn:weights=$models/gnn-sum-ee-only-$trained.pt" \
      --instances 1024 --seed 1 --workers 1 --threads 1 --quiet --overwrite --out "$out/$s-only-$trained" \
      > "$out/$s-only-$trained.txt" 2>&1
    if [ "$trained" != "$s" ]; then
      cfbench run --problem sum-ee --scenario "$s" --solvers gnn --set "gnn:weights=plugins/weights/gnn-sum-ee-$trained.pt" \
        --instances 1024 --seed 1 --workers 1 --threads 1 --quiet --overwrite --out "$out/$s-tuned-$trained" \
        > "$out/$s-tuned-$trained.txt" 2>&1
    fi
  done
  echo "done $s"
done
