#!/usr/bin/env bash
# `make study`: does reprl's pretraining pay off on tasks it never saw? Every step is a plain `reprl` command,
# skipped when its output is already there, so the study can be stopped (Ctrl-C, a lost session) and started
# again at any point; it takes several hours on a 2-core CPU, so run it in the background:
#   nohup make study > study.log 2>&1 &
# Data and runs go to $STUDY_OUT (default study_out/); the results worth keeping (JSON, tables, plots, the
# wall time of every step) go to $STUDY_RESULTS (default eval/results/study/). docs/results.md reads them.
#
# STUDY_TINY=1 runs the same steps on a tiny configuration (2 tasks, a few short episodes, 3 training steps):
# a smoke test of the pipeline in seconds, writing only under $STUDY_OUT. STUDY_PRESETS picks the encoders.
set -euo pipefail
cd "$(dirname "$0")/.."
REPRL=${REPRL:-".venv/bin/reprl"}
export MUJOCO_GL="${MUJOCO_GL:-egl}"
OUT=${STUDY_OUT:-study_out}
TINY=${STUDY_TINY:-0}

if [ "$TINY" = 1 ]; then
  RESULTS=${STUDY_RESULTS:-$OUT/results}
  MODELS=${STUDY_MODELS:-$OUT/models}
  PRESETS=${STUDY_PRESETS:-study_vip}
  PRE_TASKS="reach,door-open"; EVAL_TASKS="drawer-open,button-press-topdown"
  RENDER=(--size 32 --cameras corner --max-steps 150 --frame-every 5 --workers 1)
  EP_TRAIN=2; EP_HELD=1; EP_EVAL=5; NOISY=0.4
  TRAIN_ARGS=(--trainer.max_steps 3 --trainer.checkpoint_every 3 --trainer.val_every 3 --trainer.progress false
              --data.batch_size 4 --data.num_workers 0 --data.val_videos 2 --encoder.image_size 32
              --encoder.embed_dim 16 --trainer.loggers csv)
  SCORE_ARGS=(--boot 20 --max-frames 16 --cache "$OUT/score_cache")
else
  RESULTS=${STUDY_RESULTS:-eval/results/study}
  MODELS=${STUDY_MODELS:-eval/models}
  PRESETS=${STUDY_PRESETS:-study_vip study_vip_chi2 study_vip_tv study_r3m study_liv}
  PRE_TASKS=pretrain; EVAL_TASKS=eval
  RENDER=(--size 128 --cameras corner,corner2 --frame-every 2 --workers 2 --max-videos-per-shard 32)
  EP_TRAIN=20; EP_HELD=1; EP_EVAL=30; NOISY=0.3333
  TRAIN_ARGS=(--trainer.progress false)  # plain progress lines: the study runs in the background
  SCORE_ARGS=(--boot 1000 --max-frames 64 --cache "$OUT/score_cache")  # each encoder is scored once
fi
mkdir -p "$OUT/corpus" "$OUT/runs" "$RESULTS"
TIMES="$RESULTS/timing.tsv"
[ -f "$TIMES" ] || printf 'step\tseconds\tfinished\n' > "$TIMES"

step() {  # step NAME DONE_FILE COMMAND...: run COMMAND unless DONE_FILE exists; record its wall time
  local name="$1" done="$2"; shift 2
  if [ -e "$done" ]; then echo "=== $name: done ($done)"; return; fi
  echo "=== $name"
  local t0=$SECONDS
  "$@"
  printf '%s\t%d\t%s\n' "$name" "$((SECONDS - t0))" "$(date -u +%FT%TZ)" >> "$TIMES"
}
continue_run() {  # an interrupted run resumes from its last checkpoint; one that wrote none starts over
  if [ -f "$1/checkpoints/last.ckpt" ]; then echo "--resume last"; elif [ -d "$1" ]; then echo "--overwrite true"; fi
}
render() {  # render NAME ARGS...
  local name="$1"; shift
  step "render $name" "$OUT/corpus/$name/index.json" \
    $REPRL render --out "$OUT/corpus/$name" "${RENDER[@]}" "$@"
}

# 1. Pretraining corpus: the 45 tasks that are not evaluation tasks, several episodes each (MetaWorld
#    randomises object positions per episode), two cameras; plus unseen episodes for validation.
render train --tasks "$PRE_TASKS" --episodes "$EP_TRAIN" --seed 0
render heldout --tasks "$PRE_TASKS" --episodes "$EP_HELD" --seed 100
# 2. The 5 evaluation tasks (never in pretraining): held-out expert episodes, and suboptimal ones (the expert
#    with heavy action noise on a third of the episodes), each labelled by its success flag.
render eval --tasks "$EVAL_TASKS" --episodes "$EP_EVAL" --seed 200 --noise 1.0 --noisy-fraction "$NOISY"
EVAL_SHARDS="$OUT/corpus/eval"

# 3. Encoders: one preset each, the same corpus and budget (configs/pretrain/study_*.yaml).
ENCODERS=()
for p in $PRESETS; do
  run="$OUT/runs/$p"
  step "pretrain $p" "$run/summary.json" \
    $REPRL pretrain --config "configs/pretrain/$p.yaml" --run_dir "$run" --data.train "$OUT/corpus/train" \
      --data.val "$OUT/corpus/heldout" "${TRAIN_ARGS[@]}" $(continue_run "$run")
  cp "$run/summary.json" "$RESULTS/pretrain_$p.json"
  ENCODERS+=(--encoder "${p#study_}=$run/encoder")
done
first=$(set -- $PRESETS; echo "$1")
ENCODERS=(--encoder "random=random:$OUT/runs/$first/encoder" "${ENCODERS[@]}")

# 4. Reward quality without a robot, on the evaluation tasks' held-out videos (docs/results.md).
# Scored again whenever the set of encoders changed (e.g. a preset finished since the last run).
names=$(printf '%s\n' "${ENCODERS[@]}" | sed -n 's/^\([^-][^=]*\)=.*/\1/p' | sort | tr '\n' ' ')
scored=$("${PYTHON:-python3}" -c 'import json,sys
try: print(" ".join(sorted(json.load(open(sys.argv[1]))["scores"])) + " ")
except (OSError, ValueError, KeyError): print("")' "$RESULTS/reward_quality/results.json")
done_file="$RESULTS/reward_quality/results.json"
[ "$names" = "$scored" ] || done_file="$RESULTS/reward_quality/.rescore"
step "score" "$done_file" \
  $REPRL score "$EVAL_SHARDS" "${ENCODERS[@]}" "${SCORE_ARGS[@]}" --title "5 unseen evaluation tasks" \
    --report "$RESULTS/reward_quality"

# 5. The best trained encoder (highest VOC with the other-episodes goal) exported in float16 with its training card
#    (data, steps, metrics) in config.json: eval/models/study-KEY/, loadable as reprl.load("study-KEY").
best=$("${PYTHON:-python3}" tools/study_model.py best "$RESULTS")
best_preset=""
for p in $PRESETS; do [ "${p#study_}" = "$best" ] && best_preset=$p; done
model="$MODELS/study-$best"
export_model() {
  local card="$OUT/study-$best.card.json"
  "${PYTHON:-python3}" tools/study_model.py card "$RESULTS" "$best" "$best_preset" "$OUT/corpus/train" > "$card"
  $REPRL convert "$OUT/runs/$best_preset/encoder" --out "$model" --half --training "$card"
}
step "export study-$best" "$model/config.json" export_model

echo
echo "Study finished: $RESULTS/reward_quality/table.md and metrics.png; step times in $TIMES"
