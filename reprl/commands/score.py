"""Reward quality without a robot, for one or more encoders on the same held-out videos, side by side, each
figure with its 95% bootstrap interval over videos (resampled within each task):

  reprl score shards/heldout --encoder vip=runs/demo/encoder --encoder random=random:runs/demo/encoder

- VOC and bump rate with goal = the video's own last frame, and with goal = the mean last-frame embedding
  of the OTHER successful episodes of its task (what a user has);
- failure AUC: the final value, and the summed reward, separating successful from failed episodes;
- near-miss AUC: final frames of successful episodes vs their frames at 90% of the way to the first success;
- linear probe R^2: embedding -> hand and object position, on tasks the probe was not fitted on;
- a second table: VOC (other-episodes goal) per task and, where renders mark them, for the scripted expert's
  episodes apart from the other behaviours; beside it the same for the shards' own per-step reward read as a
  value curve, where the shards carry one (a privileged reference: a simulator's shaped reward knows the state).
Metrics that need fields the shards do not carry (success flags, state) are shown as '-'. Definitions:
docs/results.md. --encoder takes [LABEL=]SOURCE; `random:SOURCE` is SOURCE's architecture and
preprocessing at random init (seed --seed), the baseline a trained encoder should beat.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from reprl.options import ScoreOptions

HELP = "reward quality (VOC, bump rate, success detection, state probe) of encoders on held-out shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import ScoreOptions, add_options

    add_options(p, ScoreOptions, positional=["shards"], metavars={"encoder": "[LABEL=]SOURCE"})


def _check(opts: ScoreOptions) -> None:
    """Settings and output paths, refused before any encoder is loaded."""
    from reprl.errors import ReprlError
    from reprl.utils.files import check_output, check_output_file, check_writable, json_has
    from reprl.utils.machine import resolve_device

    if opts.videos < 1 or opts.max_frames < 3:
        raise ReprlError("--videos must be >= 1 and --max-frames >= 3")
    if not 0.0 < opts.near < 1.0:
        raise ReprlError(f"--near must lie strictly between 0 and 1, got {opts.near}")
    if opts.boot < 10:
        raise ReprlError(f"--boot must be at least 10 resamples, got {opts.boot}")
    opts.device = resolve_device(opts.device)
    from reprl.data.reader import expand_urls

    expand_urls(opts.shards)  # shards that exist and are shards, before anything is loaded
    shards = [opts.shards] if Path(opts.shards).exists() else []
    if opts.report:  # replaces an earlier report of reprl score, never another folder or the shards
        check_output(opts.report, "score", shards, overwrite=True, flag="--report", force_flag=None)
    if opts.json:
        if opts.report and Path(opts.json).resolve() == Path(opts.report).resolve():
            raise ReprlError("--json and --report name the same path; give the JSON file another name")
        check_output_file(opts.json, "--json", lambda p: json_has(p, "scores", "settings"), "score")
    if opts.cache:
        if Path(opts.cache).exists() and not Path(opts.cache).is_dir():
            raise ReprlError(f"--cache {opts.cache} is a file; give a folder to keep the scores in")
        check_writable(Path(opts.cache) / "x", "--cache")


METRICS_VERSION = 4  # bump when a metric's definition changes, so --cache never reuses stale scores


def _cache_path(opts: ScoreOptions, label: str, enc: Any, size: int) -> Path | None:
    """Where `label`'s scores are kept under --cache: named by the label and a digest of the encoder and of
    every setting that changes its scores. The videos are named by their content digest where the shard
    folder has one (a copied or identically re-rendered folder reuses the scores), else by path and the
    index's modification time."""
    if not opts.cache:
        return None
    from reprl.data.shards import corpus_digest
    from reprl.scoring import fingerprint
    from reprl.utils.files import safe_name

    shards = Path(opts.shards)
    index = shards / "index.json"
    digest = corpus_digest(shards)
    corpus = {"content_sha256": digest} if digest else {
        "shards": str(shards.resolve()), "index_mtime": index.stat().st_mtime_ns if index.exists() else None}
    settings = {"metrics": METRICS_VERSION, **corpus, "size": size, "videos": opts.videos,
                "max_frames": opts.max_frames, "near": opts.near, "boot": opts.boot, "seed": opts.seed}
    return Path(opts.cache) / f"{safe_name(label)}-{fingerprint(enc, settings)[:16]}.json"


def _cached(path: Path | None) -> dict[str, Any] | None:
    """The scores kept at `path`, or None when there are none; an entry that cannot be read (a torn or edited
    file) is scored again and replaced, with a warning."""
    if path is None or not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        saved["curves"] = [(name, np.asarray(c, dtype=float)) for name, c in saved["curves"]]
        if not all(isinstance(saved[k], dict) for k in ("scores", "data", "breakdown")):
            raise TypeError("scores, data or breakdown is not a mapping")
        if saved["reference"] is not None and not isinstance(saved["reference"], dict):
            raise TypeError("reference is not a mapping")
    except (OSError, ValueError, TypeError, KeyError) as e:
        print(f"warning: --cache entry {path} cannot be read ({type(e).__name__}); scoring again", file=sys.stderr)
        return None
    saved["path"] = str(path)
    return saved


def _store(path: Path | None, saved: dict[str, Any]) -> None:
    from reprl.utils.files import write_json

    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**saved, "curves": [(n, np.asarray(c).tolist()) for n, c in saved["curves"]]})


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import reprl
    from reprl.encoders.io import random_like
    from reprl.evaluation.harness import parse_encoders
    from reprl.evaluation.score_report import breakdown_lines, table_lines, write_score_report
    from reprl.options import ScoreOptions, from_args
    from reprl.scoring import (
        dataset_summary,
        embed_records,
        example_curves,
        load_videos,
        record_breakdown,
        reward_breakdown,
        score_records,
    )
    from reprl.sim.corpus import older_render
    from reprl.utils.files import write_json
    from reprl.utils.machine import machine_info

    opts = from_args(ScoreOptions, args)

    _check(opts)
    if note := older_render(opts.shards):
        print(f"note: {note}", flush=True)
    sources = parse_encoders(opts.encoder)
    encoders = {label: (random_like(src[len("random:"):], opts.seed).freeze() if src.startswith("random:")
                        else reprl.load(src)).to(opts.device) for label, src in sources.items()}
    title = opts.title or Path(opts.shards.rstrip("/")).name
    scores, data, cache, curves, breakdown = {}, None, {}, {}, {}
    reference = None
    for label, enc in encoders.items():
        size = enc.config.image_size
        path = _cache_path(opts, label, enc, size)  # hashes the weights and reads the index: once per encoder
        saved = _cached(path)
        if saved is not None:
            print(f"{label}: scores reused from {saved['path']}", file=sys.stderr)
        else:
            if size not in cache:
                print(f"loading up to {opts.videos} videos at {size} px ...", file=sys.stderr)
                cache[size] = load_videos(opts.shards, size, opts.videos, opts.max_frames, opts.near)
            print(f"{label}: embedding {len(cache[size])} videos, then {opts.boot} bootstrap resamples ...",
                  file=sys.stderr)
            records = embed_records(enc, cache[size])
            if reference is None:  # the same for every encoder (the shards' reward): computed once per run
                reference = reward_breakdown(cache[size], n_boot=opts.boot, seed=opts.seed)
            saved = {"data": dataset_summary(cache[size]), "curves": example_curves(cache[size], records),
                     "scores": score_records(records, n_boot=opts.boot, seed=opts.seed),
                     "breakdown": record_breakdown(records, n_boot=opts.boot, seed=opts.seed),
                     "reference": reference}
            text_missing = getattr(enc, "has_text", False) and any(v.text for v in cache[size]) and all(
                r.voc_text is None for r in records)
            if not text_missing:  # caption goals that could not be made (a missing package) are not kept
                _store(path, saved)
        data, scores[label], curves[label] = saved["data"], saved["scores"], saved["curves"]
        breakdown[label], reference = saved["breakdown"], saved["reference"]  # the reference: same for every encoder
    names = {k: f"{k} (random init)" if encoders[k].config.random_init and not sources[k].startswith("random:")
             else k for k in scores}  # random init is never silent
    result = {"title": title, "shards": opts.shards, "scores": scores, "names": names,
              "sources": sources, "data": data, "breakdown": breakdown, "reward_reference": reference,
              "settings": {"n_boot": opts.boot, "max_frames": opts.max_frames, "near": opts.near, "seed": opts.seed},
              "machine": machine_info()}  # the machine this report was made on
    assert data is not None
    print(f"{opts.shards}: {data['videos']} videos; mean [95% bootstrap interval over videos]")
    print("\n".join(table_lines(scores, names)))
    print("\nVOC, goal = other episodes, by group (successful videos):")
    print("\n".join(breakdown_lines(breakdown, names, reference)))
    if opts.report:
        write_score_report(opts.report, result, curves, inputs=[opts.shards] if Path(opts.shards).exists() else [])
        print(f"report: {opts.report}/table.md, metrics.png (metrics), curves.png (value curves)")
    if opts.json:
        write_json(opts.json, result)
    return 0
