#!/usr/bin/env bash
# The urllc runs behind the README's tables and figures: every solver, 256 instances
# (seed 0, disjoint from the training streams), one thread per solver, two scenarios at a time.
# Usage: scripts/urllc_paper_runs.sh [SCENARIO ...]   (default: the list below)
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  scenarios=(stress-k20 stress-k40 stress-k60 k10 k60 k30 alpha0.1 alpha0.4 alpha0.25 k20 k40 alpha0.15 alpha0.2 alpha0.3 alpha0.35)
fi
printf '%s\n' "${scenarios[@]}" | xargs -P 2 -I{} sh -c \
  'cfbench run --problem urllc --scenario {} --solvers all --instances 256 --seed 0 --quiet --overwrite \
     --out results/reference/urllc/{} > results/reference/urllc/{}.txt 2>&1 && echo "done {}"'
