#!/usr/bin/env bash
# Frozen encoders with channels-last weights on the CPU: the code before (BASE) and after, alternated, run alone
# on the 2-core machine. First the layouts alone (layout.py: eager forward, one thread), then reprl bench eval
# (float32, float32 compiled, bf16 compiled) and reprl bench embed at 64 / 128 / 224 px. Logs and JSON land beside
# this script; a finished step is skipped.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
ROOT=$PWD
D=$ROOT/eval/results/bench_machine3/frozen_cl
BASE=${BASE:?the commit before the change}
BEFORE=/tmp/reprl_before_$BASE
[ -d $BEFORE/reprl ] || { mkdir -p $BEFORE && git archive $BASE reprl | tar -x -C $BEFORE; }
export MUJOCO_GL=egl
skip() { [ -s "$1" ] && echo "skip $1"; }
# each tree runs from its own folder, which python puts first on sys.path (the environment workers inherit it)
tree() { local t=$1; shift; (cd "$t" && PYTHONPATH="$t" $ROOT/.venv/bin/python -m reprl "$@"); }
before() { tree $BEFORE "$@"; }
after() { tree ${AFTER:?the tree with the change} "$@"; }
for m in resnet18 tiny; do
  skip $D/layout_$m.txt || OMP_NUM_THREADS=1 .venv/bin/python $D/layout.py $m > $D/layout_$m.txt 2>/dev/null
done
EVAL="bench eval --repeats 5 --horizon 30 --no-serial"
for run in 1 2; do
  for who in before after; do
    skip $D/eval_32_${who}_run$run.json || $who $EVAL --json $D/eval_32_${who}_run$run.json
  done
done
for flags in "--compile" "--precision bf16 --compile"; do
  tag=$(echo "$flags" | tr -d ' -' )
  for who in before after; do
    skip $D/eval_${tag}_$who.json || $who $EVAL $flags --json $D/eval_${tag}_$who.json
  done
done
for s in 64 128 224; do
  for who in before after; do
    skip $D/embed_${s}_$who.json || $who bench embed --image-size $s --repeats 5 --cache $ROOT/runs/bench --json $D/embed_${s}_$who.json
  done
done
# added after the first pass: bf16 without compiling, and a second pair of each compiled setting
for who in before after; do
  skip $D/eval_bf16_$who.json || $who $EVAL --precision bf16 --json $D/eval_bf16_$who.json
done
for flags in "--compile" "--precision bf16 --compile"; do
  tag=$(echo "$flags" | tr -d ' -' )
  for who in after before; do
    skip $D/eval_${tag}_${who}_run2.json || $who $EVAL $flags --json $D/eval_${tag}_${who}_run2.json
  done
done
