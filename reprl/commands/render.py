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


def steps_or_full(text: str) -> int | None:
    """--stop-after-success: a number of steps, or -1 (any negative) for the full horizon."""
    value = int(text)
    return None if value < 0 else value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import CorpusConfig, add_options

    p.add_argument("--out", required=True, help="output folder")
    add_options(p, CorpusConfig, converters={"stop_after_success": steps_or_full})


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.options import CorpusConfig, from_args
    from reprl.sim.corpus import render_corpus

    render_corpus(from_args(CorpusConfig, args), args.out)
    return 0
