#!/usr/bin/env bash
# The runs behind the README's sum-ee Table II at the issue's scale: 1024 held-out instances
# (seed 1; training uses seeds from 80,000,000) per configuration, one thread per solve:
#   equal, nearest-ap, sca (converged), multistart-pg (best known) and gnn (the shipped default there:
#   the joint model fine-tuned on that configuration), with gnn also timed on one call for all 1024
#   instances (--batch 1024); the joint model itself (trained on all three) as the variant "joint";
#   the width-8 24-epoch model and its two ablations (kappa = 0, deterministic b = a, same data and
#   steps) on the same instances, the shipped model followed by the greedy UE switch-off
#   (gnn:prune=ues, not in the paper) as the variant "prune", and the shipped model with its network
#   in float32 (gnn:precision=float32) as the variant "float32", and the shipped model through
#   torch.compile (gnn:compile=true, compiled in setup) in float64 and float32 as "compile" and
#   "float32-compile";
#   with THREADS2=1, only the one-call time of gnn and its float32, compile and float32-compile variants
#   on two threads (--threads 2), in results/reference/sum-ee/gnn/threads2/.
# Usage: WORKERS=2 scripts/sum_ee_table2_runs.sh [CONFIGURATION ...]
#        GNN_ONLY=1 scripts/sum_ee_table2_runs.sh [CONFIGURATION ...]   # rerun only the learned rows (--append),
#                                                                      # e.g. after new weights or a faster forward
#        [GNN_ONLY=1] VARIANTS="float32 compile" scripts/sum_ee_table2_runs.sh    # only those variants' runs
#                                                                      # (and the gnn rows with GNN_ONLY)
# then:  python scripts/sum_ee_gnn_table.py --runs results/reference/sum-ee/table2-1024 [--markdown] joint 24ep no-kappa deterministic prune float32 compile float32-compile
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference/sum-ee/table2-1024
mkdir -p "$out"
configurations=("$@")
if [ ${#configurations[@]} -eq 0 ]; then
  configurations=(5ap-10ue 10ap-10ue 15ap-15ue)
fi
# the gnn options of a variant, in the array "option"
variant_options() {
  case "$1" in
    base) option=(--set gnn:precision=float64) ;;
    prune) option=(--set gnn:prune=ues) ;;
    float32) option=(--set gnn:precision=float32) ;;
    compile) option=(--set gnn:compile=true) ;;
    float32-compile) option=(--set gnn:precision=float32 --set gnn:compile=true) ;;
    joint) option=(--set gnn:weights=plugins/weights/gnn-sum-ee.pt) ;;
    *) option=(--set "gnn:weights=plugins/weights/gnn-sum-ee-$1.pt") ;;
  esac
}
if [ -n "${THREADS2:-}" ]; then
  for s in "${configurations[@]}"; do
    for variant in base float32 compile float32-compile; do
      variant_options "$variant"
      name="$s-$variant"; [ "$variant" = base ] && name="$s"
      cfbench run --problem sum-ee --scenario "$s" --solvers gnn "${option[@]}" --instances 1024 --seed 1 \
        --workers 1 --threads 2 --batch 1024 --quiet --overwrite --out "results/reference/sum-ee/gnn/threads2/$name" \
        > "results/reference/sum-ee/gnn/threads2/$name.txt" 2>&1
    done
  done
  exit 0
fi
for s in "${configurations[@]}"; do
  if [ -n "${GNN_ONLY:-}" ]; then
    cfbench run --problem sum-ee --scenario "$s" --solvers gnn --instances 1024 --seed 1 --workers 1 --threads 1 \
      --batch 1024 --quiet --append --out "$out/$s" > "$out/$s-gnn-append.txt" 2>&1
  elif [ -n "${VARIANTS:-}" ]; then
    :
  else
    cfbench run --problem sum-ee --scenario "$s" --solvers equal,nearest-ap,sca,multistart-pg,gnn --instances 1024 \
      --seed 1 --workers "${WORKERS:-2}" --threads 1 --batch 1024 --quiet --overwrite --out "$out/$s" > "$out/$s.txt" 2>&1
  fi
  for variant in ${VARIANTS:-joint 24ep no-kappa deterministic prune float32 compile float32-compile}; do
    variant_options "$variant"
    cfbench run --problem sum-ee --scenario "$s" --solvers gnn "${option[@]}" \
      --instances 1024 --seed 1 --workers 1 --threads 1 --batch 1024 --quiet --overwrite --out "$out/$s-$variant" \
      > "$out/$s-$variant.txt" 2>&1
  done
  echo "done $s"
done
