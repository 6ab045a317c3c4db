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

from reprl.cli import PRECISION_HELP, add_device, precision

HELP = "embeddings, values and rewards of videos under an image or text goal"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="video file, frame folder, image glob, or shards")
    p.add_argument("--encoder", required=True, help="exported encoder folder, checkpoint, registered name, hf://")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--goal", dest="goal_image", default=None, help="goal image file")
    p.add_argument("--goal-frame", default=None, help="'last' (default) or a frame index; negative counts from the end")
    p.add_argument("--goal-text", default=None, help="text goal (needs an encoder with a text tower)")
    p.add_argument("--goal-caption", action="store_true", help="shards: use each video's caption as its goal")
    add_device(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", type=precision, default="32", help=PRECISION_HELP)
    p.add_argument("--parquet", action="store_true", help="also write the tables as parquet (needs pyarrow)")
    p.add_argument("--max-videos", type=int, default=None, help="shards: stop after this many videos")
    p.add_argument("--plots", type=int, default=8, help="shards: full figures for the first N videos (plots/)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of reprl embed in --out")
    p.add_argument("--force-overwrite", action="store_true", help="replace --out even when it is not an output of "
                   "reprl embed (it is deleted)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.embed.run import EmbedOptions, run_embed

    opts = EmbedOptions(input=args.input, encoder=args.encoder, out=args.out, goal_image=args.goal_image,
                        goal_frame=args.goal_frame, goal_text=args.goal_text, goal_caption=args.goal_caption,
                        device=args.device, batch_size=args.batch_size, precision=args.precision,
                        parquet=args.parquet, overwrite=args.overwrite,
                        force_overwrite=args.force_overwrite, max_videos=args.max_videos, plots=args.plots,
                        progress=not args.no_progress)
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
