"""Quality checks that need no robot: mean VOC (value-order correlation, goal = last frame) and bump rate
of one or more encoders on the same held-out videos, side by side.

  reprl score shards/heldout --encoder runs/demo/encoder --encoder random:runs/demo/encoder

`random:SOURCE` is SOURCE's architecture and preprocessing at random init (seed --seed), the baseline a
trained encoder should beat.
"""

from __future__ import annotations

import argparse

HELP = "VOC and bump rate of encoders on held-out video shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", help="held-out shards (folder, .tar, pattern)")
    p.add_argument("--encoder", action="append", required=True, help="encoder source; repeat to compare")
    p.add_argument("--videos", type=int, default=64, help="at most this many videos")
    p.add_argument("--max-frames", type=int, default=64, help="frames per video (evenly spaced)")
    p.add_argument("--seed", type=int, default=0, help="seed of random: baselines")
    p.add_argument("--json", default=None, help="also write the scores here")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    import reprl
    from reprl.encoders.io import random_like
    from reprl.training.run import heldout_scores

    encoders = {}
    for src in args.encoder:
        is_random = src.startswith("random:")
        encoders[src] = random_like(src[len("random:"):], args.seed).freeze() if is_random else reprl.load(src)
    sizes = {e.config.image_size for e in encoders.values()}
    scores = {}
    for size in sorted(sizes):
        group = {k: e for k, e in encoders.items() if e.config.image_size == size}
        scores.update(heldout_scores(group, args.shards, size, args.videos, args.max_frames))
    n = next(iter(scores.values()))["videos"]
    print(f"{args.shards}: {n} videos, goal = last frame")
    print(f"  {'encoder':50s} {'VOC (higher better)':>20s} {'bump rate (lower better)':>26s}")
    for name in args.encoder:
        print(f"  {name[-50:]:50s} {scores[name]['voc']:+20.3f} {scores[name]['bump_rate']:26.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=2)
    return 0
