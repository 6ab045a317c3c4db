"""Benchmarks that print figures and ratios measured side by side in one run (medians of repeats).

  reprl bench data    training tuples/s from shards vs a per-frame-JPEG-file loader, time split, memory
  reprl bench embed   images/s of reprl embed on a video vs the encoder's forward-only rate

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
    e = sub.add_parser("embed", help="reprl embed images/s vs forward-only")
    e.add_argument("--encoder", default="resnet18", help="any reprl.load source (registered names: random init)")
    e.add_argument("--image-size", type=int, default=None, help="for registered names")
    e.add_argument("--video", default=None, help="video to embed (default: render a MetaWorld episode once)")
    e.add_argument("--frame-size", type=int, default=256)
    e.add_argument("--cache", default="runs/bench")
    e.add_argument("--device", default="cpu")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--precision", default="32")
    e.add_argument("--repeats", type=int, default=3)
    e.add_argument("--max-frames", type=int, default=300, help="frames of the rendered video")
    for q in (d, e):
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
    elif args.what == "embed":
        from reprl.bench.embed import EmbedBenchConfig, format_embed_bench, run_embed_bench

        ecfg = EmbedBenchConfig(encoder=args.encoder, image_size=args.image_size, video=args.video,
                                frame_size=args.frame_size, cache=args.cache, device=args.device,
                                batch_size=args.batch_size, precision=args.precision, repeats=args.repeats,
                                max_frames=args.max_frames)
        result = run_embed_bench(ecfg)
        print(format_embed_bench(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
