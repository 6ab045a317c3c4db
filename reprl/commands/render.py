"""Render MetaWorld scripted-expert episodes on the CPU into shards (frames, task text, actions,
proprioception, per-step success), from one or more cameras. Needs the sim extra.

Task groups: 'pretrain' = the 45 tasks that are not evaluation tasks, 'eval' = R3M's five
(assembly, bin-picking, button-press-topdown, drawer-open, hammer), 'all' = 50.

Examples:
  reprl render --tasks pretrain --episodes 4 --out shards/mw_pretrain
  reprl render --tasks drawer-open --episodes 25 --cameras corner,corner2,corner3 \
      --stop-after-success -1 --out shards/mw_drawer
"""

from __future__ import annotations

import argparse

HELP = "render MetaWorld expert videos into shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", default="pretrain", help="comma-separated tasks and/or groups (default: pretrain)")
    p.add_argument("--episodes", type=int, default=4, help="episodes per task")
    p.add_argument("--cameras", default="corner", help="comma-separated cameras (corner, corner2, corner3, corner4, "
                   "topview, behindGripper, gripperPOV)")
    p.add_argument("--size", type=int, default=128, help="frame width and height")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian action noise for noisy episodes")
    p.add_argument("--noisy-fraction", type=float, default=0.0, help="share of each task's episodes that are noisy")
    p.add_argument("--random-fraction", type=float, default=0.0,
                   help="share of each task's episodes with uniformly random actions (after the noisy ones)")
    p.add_argument("--early-fraction", type=float, default=0.0,
                   help="share of each task's episodes where the expert stops after --early-stop-steps steps")
    p.add_argument("--early-stop-steps", type=int, default=30, help="length of early-stopped episodes (default 30)")
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--stop-after-success", type=int, default=10,
                   help="end an episode this many steps after its first success; -1 runs the full horizon")
    p.add_argument("--frame-every", type=int, default=1, help="render every N-th step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--max-videos-per-shard", type=int, default=16)
    p.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.sim.corpus import CorpusConfig, render_corpus

    cfg = CorpusConfig(tasks=args.tasks, episodes=args.episodes, cameras=args.cameras, size=args.size,
                       noise=args.noise, noisy_fraction=args.noisy_fraction, max_steps=args.max_steps,
                       random_fraction=args.random_fraction, early_fraction=args.early_fraction,
                       early_stop_steps=args.early_stop_steps,
                       stop_after_success=None if args.stop_after_success < 0 else args.stop_after_success,
                       frame_every=args.frame_every, seed=args.seed, workers=args.workers, quality=args.quality,
                       max_videos_per_shard=args.max_videos_per_shard, overwrite=args.overwrite)
    render_corpus(cfg, args.out)
    return 0
