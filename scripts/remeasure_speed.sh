#!/usr/bin/env bash
# Every latency and throughput figure the README quotes, remeasured in one go. Run it on an
# otherwise idle machine (nothing else running; the scripts record the load average) after a
# change that moves speed; then copy the new figures into the README's tables.
#   1. results/latency/idle.md and results/latency/<problem>/  every solver, each default scenario
#   2. results/executors/batch.md                              alone vs per instance in batches
#   3. results/executors/evaluator_throughput.md               instances judged per second
#   4. results/latency/estpanet_speed.md                       U-ESTPANet inference paths, precision,
#                                                              narrow CNN, vs 2898fbf
#   5. results/latency/het_gnn_speed_idle.txt                  het-gnn forward and solve, vs f9df16f
#   6. results/latency/urllc_latency.txt                       sca, lbfgs, estpanet at K = 10 and 60
# About 5-8 minutes on the 2-core machine of 2026-12-02 (idle); the same host ran the same code up to
# 2x slower in the afternoon than in the morning of that day, so compare figures of one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
python scripts/idle_latencies.py --instances 16
python scripts/batch_throughput.py --threads 1
python scripts/evaluator_throughput.py --instances 1024 --out results/executors/evaluator_throughput.md
reference=${TMPDIR:-/tmp}/urllc_estpanet_2898fbf.py
git show 2898fbf:plugins/urllc_estpanet.py > "$reference"
python scripts/urllc_estpanet_speed.py --instances 256 --threads 1 --reference "$reference"
rm -f "$reference"
reference=$(mktemp --suffix=.py)
git show f9df16f:plugins/mmtc_gnn.py > "$reference"
{ date -u; uptime; python scripts/mmtc_gnn_speed.py --reference "$reference" --repeats 7; } \
  > results/latency/het_gnn_speed_idle.txt
rm -f "$reference"
{ date -u; uptime; python scripts/urllc_latency.py 20; } > results/latency/urllc_latency.txt
