"""Embed videos with a frozen encoder and compute values and goal-conditioned rewards.

Inputs: a video file (mp4, webm, avi, mov, mkv), a folder of frames, an image glob ('frames/*.png', quoted),
shards (a folder with index.json, a .tar, a brace pattern) or a folder of videos (video files or frame
sub-folders, as `reprl shards` takes); for shards and folders of videos, one result set per video.
Goal (one of): --goal IMAGE, --goal-frame last|INDEX (default: last), --goal-text "open the drawer"
(language-capable encoders such as LIV's), --goal-caption (shards: each video's own caption).

Writes to --out: embeddings.npy, frames.csv (frame, time_s, value, reward), values.png, summary.json
(for shards also videos.csv with VOC and bump rate per video).

Examples:
  reprl embed episode.mp4 --encoder demo_out/run/encoder --out demo_out/embed
  reprl embed episode.mp4 --encoder liv/model.pt --goal-text "open the drawer" --out embed_text
  reprl embed shards/heldout --encoder demo_out/run/encoder --out embed_heldout
"""

from __future__ import annotations

import argparse

from reprl.cli import precision

HELP = "embeddings, values and rewards of videos under an image or text goal"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import EmbedOptions, add_options

    add_options(p, EmbedOptions, positional=["input"], flags={"goal_image": "goal"},
                converters={"precision": precision})


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.embed.run import run_embed
    from reprl.options import EmbedOptions, from_args

    opts = from_args(EmbedOptions, args)
    s = run_embed(opts)
    t = s["timing"]
    what = f"{s['videos']} videos, {s['frames']} frames" if s["kind"] in ("shards", "videos") else \
        f"{s['frames']} frames"
    print(f"embedded {what} with {s['encoder']['label']} ({t['images_per_s']:.0f} images/s); goal: "
          f"{s['goal']['description']}")
    if s.get("voc") is not None:
        label = "mean " if s["kind"] in ("shards", "videos") else ""
        print(f"{label}VOC {s['voc']:+.3f} (higher is better), {label}bump rate {s['bump_rate']:.3f} (lower is better)")
    print(f"wrote {args.out}/: {', '.join(s['outputs'])}  <- look at {args.out}/values.png")
    return 0
