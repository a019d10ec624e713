#!/usr/bin/env bash
# Train one results model (conf/experiment/results_<MODEL>.yaml) as a Hydra sweep, choose its job on
# validation (benchmarks/omniglot_report.py --best), and test the chosen checkpoint with src/eval.py on
# the split's settings. Then `python benchmarks/omniglot_report.py` writes results/omniglot.md.
#
#   OMP_NUM_THREADS=1 bash benchmarks/omniglot_results.sh vinyals_fce [extra train overrides, e.g. data.augment=0.0,1.0]
#   bash benchmarks/omniglot_results.sh pixels     # the parameter-free pixel baseline: evaluation only
#
# Interrupted? Run the same command again: each job resumes from its last.ckpt (ckpt_path=auto).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
MODEL="${1:?usage: omniglot_results.sh MODEL [train overrides...] (MODEL: a conf/experiment/results_MODEL.yaml, or pixels)}"
shift
RUNS="${RUNS:-multirun/results}"
TEST_EPISODES="${TEST_EPISODES:-1000}"
# NAME: the folder under $RUNS (default MODEL), for a variant, e.g. NAME=pixels_inverted ... pixels model.encoder.invert=true
SWEEP="$RUNS/${NAME:-$MODEL}"

# evaluate MODEL_ARGS...: src/eval.py on the Vinyals split's four settings, one process per query size
# (way:shots:query, the shots swept by Hydra), into $SWEEP/test/<way>w<shot>s.
evaluate() {
  local settings="5:1,5:15 20:1,5:5"
  if [ "$MODEL" != pixels ] && grep -q "split: lake" "conf/experiment/results_${MODEL}.yaml"; then
    settings="20:1:5"
  fi
  for setting in $settings; do
    IFS=: read -r way shots query <<<"$setting"
    "$PY" src/eval.py -m "$@" "data.way=$way" "data.shot=$shots" "data.query=$query" \
      "data.test_episodes=$TEST_EPISODES" "hydra.sweep.dir=$SWEEP/test" 'hydra.sweep.subdir=${data.way}w${data.shot}s'
  done
}

# The pixel baseline has nothing to train: it is only evaluated, on the same episodes.
if [ "$MODEL" = pixels ]; then
  evaluate model=pixels "$@"
  exit 0
fi
if [ ! -f "conf/experiment/results_${MODEL}.yaml" ]; then
  echo "error: conf/experiment/results_${MODEL}.yaml does not exist; MODEL is one of: pixels" \
    "$(ls conf/experiment | sed -n 's/^results_\(.*\)\.yaml$/\1/p' | tr '\n' ' ')" >&2
  exit 2
fi
"$PY" src/train.py -m "experiment=results_${MODEL}" ckpt_path=auto "hydra.sweep.dir=$SWEEP" "$@"
CKPT="$("$PY" benchmarks/omniglot_report.py --best "$SWEEP")"
echo "chosen on validation: $CKPT"
evaluate "ckpt_path=$CKPT"
