#!/usr/bin/env bash
# Train one results model (conf/experiment/results_<MODEL>.yaml) as a Hydra sweep, choose its job on
# validation (benchmarks/omniglot_report.py --best), and test the chosen checkpoint with src/eval.py on
# the split's settings. Then `python benchmarks/omniglot_report.py` writes results/omniglot.md.
#
#   OMP_NUM_THREADS=1 bash benchmarks/omniglot_results.sh vinyals_fce [extra train overrides, e.g. data.augment=0.0,1.0]
#
# Interrupted? Run the same command again: each job resumes from its last.ckpt (ckpt_path=auto).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
MODEL="${1:?usage: omniglot_results.sh MODEL [train overrides...] (MODEL: a conf/experiment/results_MODEL.yaml)}"
shift
if [ ! -f "conf/experiment/results_${MODEL}.yaml" ]; then
  echo "error: conf/experiment/results_${MODEL}.yaml does not exist; MODEL is one of:" \
    "$(ls conf/experiment | sed -n 's/^results_\(.*\)\.yaml$/\1/p' | tr '\n' ' ')" >&2
  exit 2
fi
RUNS="${RUNS:-multirun/results}"
TEST_EPISODES="${TEST_EPISODES:-1000}"
SWEEP="$RUNS/$MODEL"

"$PY" src/train.py -m "experiment=results_${MODEL}" ckpt_path=auto "hydra.sweep.dir=$SWEEP" "$@"
CKPT="$("$PY" benchmarks/omniglot_report.py --best "$SWEEP")"
echo "chosen on validation: $CKPT"
# One evaluation process per query size: way:shots:query, the shots swept by Hydra (multirun).
if grep -q "split: lake" "conf/experiment/results_${MODEL}.yaml"; then
  SETTINGS="20:1:5"
else
  SETTINGS="5:1,5:15 20:1,5:5"
fi
for setting in $SETTINGS; do
  IFS=: read -r way shots query <<<"$setting"
  "$PY" src/eval.py -m "ckpt_path=$CKPT" "data.way=$way" "data.shot=$shots" "data.query=$query" \
    "data.test_episodes=$TEST_EPISODES" "hydra.sweep.dir=$SWEEP/test" 'hydra.sweep.subdir=${data.way}w${data.shot}s'
done
