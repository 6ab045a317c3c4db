"""Reward quality without a robot, for one or more encoders on the same held-out videos, side by side, each
figure with its 95% bootstrap interval over videos (resampled within each task):

  reprl score shards/heldout --encoder vip=runs/demo/encoder --encoder random=random:runs/demo/encoder

- VOC and bump rate with goal = the video's own last frame, and with goal = the mean last-frame embedding
  of the OTHER successful episodes of its task (what a user has);
- failure AUC: the final value, and the summed reward, separating successful from failed episodes;
- near-miss AUC: final frames of successful episodes vs their frames at 90% of the way to the first success;
- linear probe R^2: embedding -> hand and object position, on tasks the probe was not fitted on.
Metrics that need fields the shards do not carry (success flags, state) are shown as '-'. Definitions:
docs/results.md. --encoder takes [LABEL=]SOURCE; `random:SOURCE` is SOURCE's architecture and
preprocessing at random init (seed --seed), the baseline a trained encoder should beat.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from reprl.cli import add_device

HELP = "reward quality (VOC, bump rate, success detection, state probe) of encoders on held-out shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", help="held-out shards (folder, .tar, pattern)")
    p.add_argument("--encoder", action="append", required=True, help="[LABEL=]SOURCE; repeat to compare")
    p.add_argument("--videos", type=int, default=1000, help="at most this many videos (default 1000)")
    p.add_argument("--max-frames", type=int, default=64, help="frames per video, evenly spaced (default 64)")
    p.add_argument("--near", type=float, default=0.9, help="near-miss frame: this share of the way to the first "
                   "success (default 0.9)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of random: baselines and of the bootstrap (default 0)")
    p.add_argument("--title", default=None, help="report title (default: the shards' folder name)")
    p.add_argument("--report", default=None, help="write results.json, table.md, metrics.png and curves.png to this "
                   "folder")
    p.add_argument("--cache", default=None, help="keep each encoder's scores in this folder, keyed by a digest of its "
                   "weights and of these settings, and reuse them on the next run (adding one encoder to a "
                   "comparison then scores only that one)")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    add_device(p)


def _check(args: argparse.Namespace) -> None:
    from reprl.errors import ReprlError

    if args.videos < 1 or args.max_frames < 3:
        raise ReprlError("--videos must be >= 1 and --max-frames >= 3")
    if not 0.0 < args.near < 1.0:
        raise ReprlError(f"--near must lie strictly between 0 and 1, got {args.near}")
    if args.boot < 10:
        raise ReprlError(f"--boot must be at least 10 resamples, got {args.boot}")


METRICS_VERSION = 2  # bump when a metric's definition changes, so --cache never reuses stale scores


def _cache_path(args: argparse.Namespace, label: str, enc: Any, size: int) -> Path | None:
    """Where `label`'s scores are kept under --cache: named by the label and a digest of the encoder and of
    every setting that changes its scores."""
    if not args.cache:
        return None
    from reprl.scoring import fingerprint
    from reprl.utils.files import safe_name

    shards = Path(args.shards)
    index = shards / "index.json"
    settings = {"metrics": METRICS_VERSION, "shards": str(shards.resolve()),
                "index_mtime": index.stat().st_mtime_ns if index.exists() else None,
                "size": size, "videos": args.videos, "max_frames": args.max_frames, "near": args.near,
                "boot": args.boot, "seed": args.seed}
    return Path(args.cache) / f"{safe_name(label)}-{fingerprint(enc, settings)[:16]}.json"


def _cached(args: argparse.Namespace, label: str, enc: Any, size: int) -> dict[str, Any] | None:
    path = _cache_path(args, label, enc, size)
    if path is None or not path.exists():
        return None
    saved = json.loads(path.read_text())
    saved["curves"] = [(name, np.asarray(c, dtype=float)) for name, c in saved["curves"]]
    saved["path"] = str(path)
    return saved


def _store(args: argparse.Namespace, label: str, enc: Any, size: int, saved: dict[str, Any]) -> None:
    from reprl.utils.files import write_json

    path = _cache_path(args, label, enc, size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**saved, "curves": [(n, np.asarray(c).tolist()) for n, c in saved["curves"]]})


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import reprl
    from reprl.encoders.io import random_like
    from reprl.evaluation.harness import parse_encoders
    from reprl.evaluation.score_report import table_lines, write_score_report
    from reprl.scoring import dataset_summary, embed_records, example_curves, load_videos, score_records
    from reprl.utils.files import write_json

    _check(args)
    sources = parse_encoders(args.encoder)
    encoders = {label: (random_like(src[len("random:"):], args.seed).freeze() if src.startswith("random:")
                        else reprl.load(src)).to(args.device) for label, src in sources.items()}
    title = args.title or Path(args.shards.rstrip("/")).name
    scores, data, cache, curves = {}, None, {}, {}
    for label, enc in encoders.items():
        size = enc.config.image_size
        saved = _cached(args, label, enc, size)
        if saved is not None:
            print(f"{label}: scores reused from {saved['path']}", file=sys.stderr)
        else:
            if size not in cache:
                print(f"loading up to {args.videos} videos at {size} px ...", file=sys.stderr)
                cache[size] = load_videos(args.shards, size, args.videos, args.max_frames, args.near)
            print(f"{label}: embedding {len(cache[size])} videos, then {args.boot} bootstrap resamples ...",
                  file=sys.stderr)
            records = embed_records(enc, cache[size])
            saved = {"data": dataset_summary(cache[size]), "curves": example_curves(cache[size], records),
                     "scores": score_records(records, n_boot=args.boot, seed=args.seed)}
            _store(args, label, enc, size, saved)
        data, scores[label], curves[label] = saved["data"], saved["scores"], saved["curves"]
    names = {k: f"{k} (random init)" if encoders[k].config.random_init and not sources[k].startswith("random:")
             else k for k in scores}  # random init is never silent
    result = {"title": title, "shards": args.shards, "scores": scores, "names": names,
              "sources": sources, "data": data,
              "settings": {"n_boot": args.boot, "max_frames": args.max_frames, "near": args.near, "seed": args.seed}}
    assert data is not None
    print(f"{args.shards}: {data['videos']} videos; mean [95% bootstrap interval over videos]")
    print("\n".join(table_lines(scores, result["names"])))
    if args.report:
        write_score_report(args.report, result, curves)
        print(f"report: {args.report}/table.md, metrics.png (metrics), curves.png (value curves)")
    if args.json:
        write_json(args.json, result)
    return 0
