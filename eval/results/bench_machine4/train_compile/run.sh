#!/usr/bin/env bash
# reprl bench train with trainer.compile off and on (the presets beside this file), the small CNN and ResNet-18 on the
# study corpus; run alone on the 2-core machine. The small CNN's pair was run a second time in the other order
# (study_tiny_compile_run2.json, then study_tiny_eager_run2.json).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
D=eval/results/bench_machine4/train_compile
for p in study_tiny study_vip_nocrop; do
  .venv/bin/reprl bench train --config configs/pretrain/$p.yaml --shards study_out/corpus/train --steps 40 --warmup 5 --repeats 3 --json $D/${p}_eager.json
  .venv/bin/reprl bench train --config $D/${p}_compile.yaml --shards study_out/corpus/train --steps 40 --warmup 5 --repeats 3 --json $D/${p}_compile.json
done
