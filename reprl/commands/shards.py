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
    p.add_argument("inputs", nargs="+", help="folders, video files, manifests (.csv/.jsonl) or .txt path lists")
    p.add_argument("--out", required=True, help="output folder (shards + index.json)")
    p.add_argument("--resize", type=int, default=256, help="shorter side in pixels; 0 keeps the size (default 256)")
    p.add_argument("--fps", type=float, default=None, help="subsample to at most this frame rate")
    p.add_argument("--every", type=int, default=1, help="keep every N-th frame (after --fps)")
    p.add_argument("--clip-frames", type=int, default=None,
                   help="split videos into clip samples of N frames (counted after --fps/--every)")
    p.add_argument("--clip-seconds", type=float, default=None,
                   help="split videos into clip samples of S seconds of source time")
    p.add_argument("--cameras", default=None,
                   help="LeRobot datasets: comma-separated cameras to write (e.g. top,wrist); default all")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--max-shard-mb", type=float, default=256.0, help="start a new shard past this size")
    p.add_argument("--max-videos-per-shard", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1, help="decode/encode processes")
    p.add_argument("--min-frames", type=int, default=3, help="skip shorter videos (VIP needs 3)")
    p.add_argument("--require-caption", action="store_true", help="skip videos without a caption")
    p.add_argument("--strict", action="store_true", help="stop at the first bad video instead of skipping it")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of reprl shards in --out")
    p.add_argument("--force-overwrite", action="store_true", help="replace --out even when it is not an output of "
                   "reprl shards (it is deleted)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.data.shards import ShardOptions, write_shards
    from reprl.errors import ReprlError

    if not 1 <= args.quality <= 100:
        raise ReprlError("--quality must be between 1 and 100")
    for name in ("resize", "every", "workers", "max_shard_mb", "max_videos_per_shard", "fps"):
        value, least = getattr(args, name), 0 if name == "resize" else 1e-9
        if value is not None and value < least:
            flag = "--" + name.replace("_", "-")
            raise ReprlError(f"{flag} must be {'>= 0 (0 keeps the size)' if name == 'resize' else '> 0'}, got {value}")
    opts = ShardOptions(resize=args.resize, fps=args.fps, every=args.every, clip_frames=args.clip_frames,
                        clip_seconds=args.clip_seconds, cameras=args.cameras, quality=args.quality,
                        max_shard_mb=args.max_shard_mb, max_videos_per_shard=args.max_videos_per_shard,
                        workers=args.workers, min_frames=args.min_frames, require_caption=args.require_caption,
                        strict=args.strict, overwrite=args.overwrite,
                        force_overwrite=args.force_overwrite)
    write_shards(args.inputs, args.out, opts)
    return 0
