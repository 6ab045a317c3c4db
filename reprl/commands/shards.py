"""Turn videos into WebDataset shards: one sample per video (or clip), frames as JPEG members in order.

Inputs: a folder with one sub-folder of frames per video, a folder or list of video files (mp4, webm,
avi, mov, mkv), a manifest (CSV or JSONL) with a path column and optional caption, fps and start/end, or
a LeRobot dataset folder (v2.x or v3.0: one sample per episode and camera, with actions and state).
The manifest layouts of the VIP / R3M (path,len[,txt]) and LIV (directory,num_frames,text) repos work as is.

Examples:
  reprl shards my_videos/ --out shards/mine
  reprl shards manifest.csv --out shards/ego --resize 256 --fps 10 --workers 8
  reprl shards long_videos/ --out shards/clips --fps 10 --clip-seconds 20

Videos are decoded frame by frame (memory does not grow with their length); a manifest listing many clips
of one video decodes it once, seeking to clips far apart.
"""

from __future__ import annotations

import argparse

HELP = "write videos / frame folders / manifests as WebDataset shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import ShardOptions, add_options

    p.add_argument("inputs", nargs="+", help="folders, video files, manifests (.csv/.jsonl) or .txt path lists")
    p.add_argument("--out", required=True, help="output folder (shards + index.json)")
    add_options(p, ShardOptions)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.data.shards import write_shards
    from reprl.errors import ReprlError
    from reprl.options import ShardOptions, from_args

    if not 1 <= args.quality <= 100:
        raise ReprlError("--quality must be between 1 and 100")
    import math

    for name in ("resize", "every", "workers", "max_shard_mb", "max_videos_per_shard", "fps", "clip_seconds"):
        value, least = getattr(args, name, None), 0 if name == "resize" else 1e-9
        if value is not None and not (math.isfinite(value) and value >= least):  # NaN and inf fail here too
            flag = "--" + name.replace("_", "-")
            bound = ">= 0 (0 keeps the size)" if name == "resize" else "> 0"
            raise ReprlError(f"{flag} must be a finite number {bound}, got {value}")
    if args.resize and args.resize > 8192:
        raise ReprlError(f"--resize {args.resize}: frames of more than 8192 pixels a side are not supported; give a "
                         "smaller size (0 keeps the source size)")
    write_shards(args.inputs, args.out, from_args(ShardOptions, args))
    return 0
