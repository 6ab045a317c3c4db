"""Benchmarks that print figures and ratios measured side by side in one run (medians of repeats).

  reprl bench data    training tuples/s from shards vs a per-frame-JPEG-file loader, time split, memory

Add --json FILE to also write the figures for machines.
"""

from __future__ import annotations

import argparse
import json

HELP = "measure data / training / embedding throughput"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    d = sub.add_parser("data", help="training tuples/s from shards vs per-frame JPEG files")
    d.add_argument("--shards", default=None, help="shard folder (default: render a MetaWorld corpus once)")
    d.add_argument("--cache", default="runs/bench", help="where the rendered corpus and frame folders go")
    d.add_argument("--frame-size", type=int, default=256)
    d.add_argument("--image-size", type=int, default=224)
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--mode", default="vip")
    d.add_argument("--tuples-per-video", type=int, default=1)
    d.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure (0 = none)")
    d.add_argument("--batches", type=int, default=20)
    d.add_argument("--repeats", type=int, default=3)
    d.add_argument("--render-episodes", type=int, default=2)
    for q in (d,):
        q.add_argument("--json", default=None, help="also write the figures as JSON here")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    if args.what == "data":
        from reprl.bench.data import DataBenchConfig, format_data_bench, run_data_bench

        cfg = DataBenchConfig(shards=args.shards, cache=args.cache, frame_size=args.frame_size,
                              image_size=args.image_size, batch_size=args.batch_size, mode=args.mode,
                              tuples_per_video=args.tuples_per_video,
                              workers=tuple(int(w) for w in args.workers.split(",") if w.strip()),
                              batches=args.batches, repeats=args.repeats, render_episodes=args.render_episodes)
        result = run_data_bench(cfg)
        print(format_data_bench(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
