#!/usr/bin/env bash
# The mmtc runs behind the README's tables and figures (seed 0, one thread per solver):
#   Fig. 4     UPC on the spreading sweep spread-n1 ... spread-n511        (256 drops each)
#   Figs. 5-6  UPC on NOMA (the default) and the OMA variants              (256 drops each)
#   Figs. 7-8  every solver on the default setting                         (128 drops; OPC ~3 s per drop)
#   also       every solver on the Shannon regime and on Algorithm 2's EE  (64 drops)
# Usage: scripts/mmtc_paper_runs.sh [upc|solvers|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference/mmtc
what=${1:-all}
run() {  # scenario solvers instances
  cfbench run --problem mmtc --scenario "$1" --solvers "$2" --instances "$3" --seed 0 --quiet --overwrite \
    --out "$out/$1" > "$out/$1.txt" 2>&1 && echo "done $1"
}
if [ "$what" = upc ] || [ "$what" = all ]; then
  for n in 1 3 7 15 31 63 127 255 511; do run "spread-n$n" upc,fpc,g-fpc 256; done
  for s in oma-u25-d75 oma-u50-d50 oma-u75-d25 oma-u90-d10; do run "$s" upc,fpc,g-fpc 256; done
fi
if [ "$what" = solvers ] || [ "$what" = all ]; then
  run ku2-kd10-m10-ms5 all 128
  run shannon all 64
  run algorithm2-ee all 64
fi
