#!/usr/bin/env bash
# `make demo`: the whole reprl loop on the CPU with MetaWorld data rendered here. Every step is a plain
# `reprl` command you can run yourself. Outputs go to demo_out/ (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
REPRL=".venv/bin/reprl"
OUT=demo_out
mkdir -p "$OUT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"

step() { printf '\n=== %s\n' "$*"; }

step "1. Render the pretraining corpus: MetaWorld experts on the 45 non-evaluation tasks (CPU, EGL)"
if [ ! -f "$OUT/corpus/train/index.json" ]; then
  $REPRL render --tasks pretrain --episodes 2 --size 128 --workers 2 --max-videos-per-shard 6 --out "$OUT/corpus/train"
else
  echo "reusing $OUT/corpus/train"
fi

step "2. Render held-out videos of the evaluation tasks (never seen in pretraining)"
if [ ! -f "$OUT/corpus/heldout/index.json" ]; then
  $REPRL render --tasks eval --episodes 2 --size 128 --workers 2 --seed 100 --out "$OUT/corpus/heldout"
else
  echo "reusing $OUT/corpus/heldout"
fi

step "3. Stream training tuples (LIV mode: start, goal, t, t+1 and the caption's frame)"
$REPRL stream "$OUT/corpus/train" --mode liv --batches 2 --batch-size 8 --image-size 112 --grid "$OUT/tuples.png"

printf '\nDemo finished. Look at %s/tuples.png for the streamed tuples.\n' "$OUT"
