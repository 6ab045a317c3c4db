#!/bin/bash
# before (42aed7a) / after (6035e0b) on the same idle machine, alternating. As run on the AMD machine on 2026-12-07:
# the paths (/work/main, /tmp/wt_before, /work/s27/bench) are that session's; the outputs were copied beside this file.
set -x
cd /work/main
rm -rf /tmp/wt_before; git worktree add -q /tmp/wt_before 42aed7a
OUT=/work/s27/bench
B="env PYTHONPATH=/tmp/wt_before /work/main/.venv/bin/python -P -m reprl"
A="env PYTHONPATH=/work/main /work/main/.venv/bin/python -m reprl"
for round in 1 2; do
  for size in 64 224; do
    ($B bench data --image-size $size --workers 0 --repeats 5 --batches 10 --json $OUT/data_before_${size}_$round.json) > $OUT/data_before_${size}_$round.log 2>&1
    $A bench data --image-size $size --workers 0 --repeats 5 --batches 10 --json $OUT/data_after_${size}_$round.json > $OUT/data_after_${size}_$round.log 2>&1
  done
done
for round in 1 2; do
  ($B bench train --config /work/main/configs/pretrain/study_tiny.yaml --shards /work/main/study_out/corpus/train --steps 40 --warmup 5 --repeats 3 --json $OUT/train_tiny_before_$round.json) > $OUT/train_tiny_before_$round.log 2>&1
  $A bench train --config configs/pretrain/study_tiny.yaml --shards study_out/corpus/train --steps 40 --warmup 5 --repeats 3 --json $OUT/train_tiny_after_$round.json > $OUT/train_tiny_after_$round.log 2>&1
done
($B bench train --encoder resnet18 --image-size 224 --batch-size 8 --steps 10 --warmup 2 --repeats 3 --json $OUT/train_r18_224_before.json) > $OUT/train_r18_224_before.log 2>&1
$A bench train --encoder resnet18 --image-size 224 --batch-size 8 --steps 10 --warmup 2 --repeats 3 --json $OUT/train_r18_224_after.json > $OUT/train_r18_224_after.log 2>&1
git worktree remove --force /tmp/wt_before
echo DONE
