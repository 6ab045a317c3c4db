#!/usr/bin/env bash
# `make demo`: the whole reprl loop on the CPU with MetaWorld data rendered here. Every step is a plain
# `reprl` command you can run yourself. Outputs go to demo_out/ (delete it to start over; finished steps
# are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
REPRL=".venv/bin/reprl"
OUT=demo_out
mkdir -p "$OUT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"

START=$SECONDS
elapsed() { printf '%d min %02d s' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)); }
step() { printf '\n=== %s   [%s since the start]\n' "$*" "$(elapsed)"; }
render() {  # render OUT_DIR ARGS...: skip if already there
  local out="$1"; shift
  if [ -f "$out/index.json" ]; then echo "reusing $out"; else $REPRL render --out "$out" --size 128 --frame-every 4 --workers 2 "$@"; fi
}

step "1. Render the pretraining corpus: MetaWorld experts on the 45 non-evaluation tasks (CPU, EGL)"
render "$OUT/corpus/train" --tasks pretrain --episodes 4 --max-videos-per-shard 12

step "2. Render held-out videos: new episodes of those tasks, and the 5 evaluation tasks (never seen)"
render "$OUT/corpus/heldout" --tasks pretrain --episodes 1 --seed 100
# 24 episodes x 2 cameras per evaluation task, a third of them with heavy action noise (most of those fail):
# 240 videos. With 120, the intervals of step 5 could not tell a trained encoder 0.07 ahead of random init
# from it (docs/results.md, "The demo"); 240 cost about 1.5 minutes more (render and scoring).
render "$OUT/corpus/heldout_eval" --tasks eval --episodes 24 --cameras corner,corner2 --noise 1.0 --noisy-fraction 0.3333 --seed 200

step "3. Stream training tuples (LIV mode: start, goal, t, t+1 and the caption's frame)"
rm -f "$OUT/tuples.png"  # the demo's own picture from an earlier run (older versions did not mark it as stream's)
$REPRL stream "$OUT/corpus/train" --mode liv --batches 2 --batch-size 8 --image-size 112 --grid "$OUT/tuples.png"

step "4. Pretrain VIP (a small CNN, 64 px) on the CPU: configs/pretrain/demo.yaml"
if [ -f "$OUT/run/summary.json" ]; then
  echo "reusing $OUT/run (delete it to train again)"
  .venv/bin/python -c "import json; from reprl.training.run import format_summary; print(format_summary(json.load(open('$OUT/run/summary.json'))))"
else
  resume=()  # an interrupted run resumes from its last checkpoint; one that wrote none starts over
  if [ -f "$OUT/run/checkpoints/last.ckpt" ]; then resume=(--resume last); elif [ -d "$OUT/run" ]; then resume=(--overwrite true); fi
  $REPRL pretrain --config configs/pretrain/demo.yaml --trainer.progress false "${resume[@]}"
fi

step "5. The same check on the evaluation tasks, which pretraining never saw"
$REPRL score "$OUT/corpus/heldout_eval" --encoder "trained=$OUT/run/encoder" --encoder "random=random:$OUT/run/encoder" \
  --report "$OUT/score"

step "6. Values and rewards of held-out evaluation-task videos with the trained encoder (goal = last frame)"
$REPRL embed "$OUT/corpus/heldout_eval" --encoder "$OUT/run/encoder" --out "$OUT/embed" --overwrite --plots 5

step "7. Downstream: behaviour cloning on a held-out task (hammer), trained encoder vs random init"
$REPRL eval --suite eval/suites/demo.yaml --encoder "vip=$OUT/run/encoder" --encoder "random=random:$OUT/run/encoder" \
  --out "$OUT/eval" --cache "$OUT/eval_cache"

printf '\nDemo finished in %s.\n  value curves and rewards: %s/embed/plots/*.png (one figure per video), %s/embed/values.png\n' "$(elapsed)" "$OUT" "$OUT"
printf '  trained vs random init on the unseen tasks, with 95%% intervals: %s/score/table.md and metrics.png\n' "$OUT"
printf '  trained encoder: %s/run/encoder (reprl.load reads it)\n  streamed tuples: %s/tuples.png\n' "$OUT" "$OUT"
printf '  downstream success: %s/eval/demo/table.md and success.png\n' "$OUT"
