"""`reprl embed`: embeddings, values and goal-conditioned rewards of videos, with a plot and a summary.

One video (file, frame folder or image glob) -> OUT/
    embeddings.npy     float32 [T, D]
    frames.csv         frame, time_s, value, reward   (reward on row t = V(o_{t+1}; g) - V(o_t; g))
    values.png         frames, value curve and rewards
    summary.json       encoder, goal, frames, VOC, bump rate, timing
Shards -> OUT/ with embeddings/KEY.npy, frames.csv (with a key column), videos.csv (one row per video:
VOC, bump rate, its embeddings file, ...), values.png (a grid of curves), plots/KEY.png (the full figure for
the first videos). KEY is the sample key made safe as a file name (reprl.utils.files.safe_name).
and summary.json (means over videos).
VOC and bump rate are computed against the chosen goal (by default the last frame).
Everything is written to a staging folder that replaces OUT only when complete.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import reprl
from reprl.embed.frame_sources import FrameSource, open_sources
from reprl.embed.pipeline import EmbedStats, check_precision, embed_source
from reprl.embed.plot import plot_many, plot_video
from reprl.encoders.base import Encoder
from reprl.encoders.io import source_paths
from reprl.errors import ReprlError
from reprl.options import EmbedOptions
from reprl.rewards import bump_rate, check_one_goal, nonfinite_frames, resolve_goal, values, voc
from reprl.utils.files import StagingDir, check_output, safe_name
from reprl.utils.machine import resolve_device


@dataclass
class Goal:
    kind: str  # last_frame | frame | image | text | caption
    description: str
    embedding: torch.Tensor | None = None  # fixed goals (image, text); per-video goals are None
    frame: int = -1
    thumb: Any = None


def parse_goal(opts: EmbedOptions, encoder: Encoder) -> Goal:
    """Check the goal options against the encoder before any heavy work; embed fixed goals."""
    check_one_goal({"--goal": opts.goal_image, "--goal-frame": opts.goal_frame, "--goal-text": opts.goal_text,
                    "--goal-caption": opts.goal_caption})
    if opts.goal_text is not None or opts.goal_caption:
        if not encoder.has_text:
            encoder.embed_text(["x"])  # raises the encoder's own message: no text tower
        if opts.goal_caption:
            return Goal("caption", "each video's caption")
        assert opts.goal_text is not None, "no caption goal, so the text goal was given"
        if not opts.goal_text.strip():
            raise ReprlError("--goal-text is empty")
        emb = resolve_goal(encoder, text=opts.goal_text).float().cpu()
        return Goal("text", opts.goal_text, emb)
    if opts.goal_image is not None:
        from reprl.data.video import DecodeError, load_image

        if not Path(opts.goal_image).exists():
            raise ReprlError(f"goal image not found: {opts.goal_image}")
        try:
            img = load_image(opts.goal_image)
        except DecodeError as e:
            raise ReprlError(str(e)) from None
        emb = resolve_goal(encoder, image=img).float().cpu()
        thumb = torch.from_numpy(img.copy()).permute(2, 0, 1)
        return Goal("image", opts.goal_image, emb, thumb=thumb)
    if opts.goal_frame not in (None, "last"):
        try:
            index = int(opts.goal_frame)
        except ValueError:
            raise ReprlError(f"--goal-frame takes 'last' or a frame index, got {opts.goal_frame!r}") from None
        return Goal("frame", f"frame {index}", frame=index)
    return Goal("last_frame", "last frame")


def _goal_for(goal: Goal, encoder: Encoder, emb: torch.Tensor, source: FrameSource) -> torch.Tensor:
    if goal.embedding is not None:
        return goal.embedding
    if goal.kind == "caption":
        if not source.caption:
            raise ReprlError(f"video {source.name} has no caption to use as goal")
        return resolve_goal(encoder, text=source.caption).float().cpu()
    return resolve_goal(encoder, frame=goal.frame, video=emb)


def _write_csv(path: Path, rows: list[dict[str, Any]], parquet: bool) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if parquet:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ReprlError("--parquet needs pyarrow: pip install pyarrow") from None
        pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"))


def frame_rows(vals: np.ndarray, fps: float | None, key: str | None = None) -> list[dict[str, Any]]:
    rews = np.diff(vals)
    rows = []
    for t, v in enumerate(vals):
        row: dict[str, Any] = {"key": key} if key is not None else {}
        row.update({"frame": t, "time_s": round(t / fps, 6) if fps else None, "value": float(v),
                    "reward": float(rews[t]) if t < len(rews) else None})
        rows.append(row)
    return rows


def _embed_one(encoder: Encoder, source: FrameSource, opts: EmbedOptions) -> tuple[torch.Tensor, EmbedStats]:
    """Embed one video; non-finite embeddings are an error (broken weights or inputs), never a metric."""
    from tqdm import tqdm

    show = opts.progress and (source.count is None or source.count >= 4 * opts.batch_size)
    with tqdm(total=source.count, desc=f"embed {source.name[-30:]}", unit="frame", disable=not show) as bar:
        emb, stats = embed_source(encoder, source, batch_size=opts.batch_size, precision=opts.precision, progress=bar)
    bad = nonfinite_frames(emb)
    if bad:
        raise ReprlError(f"{opts.encoder} gave non-finite embeddings (NaN/inf) for {bad} of {len(emb)} frames of "
                         f"{source.name}; its weights are broken (a diverged run?) or --precision {opts.precision} "
                         "overflows: use another encoder or --precision 32")
    return emb, stats


def input_paths(spec: str) -> list[str]:
    """The files or folders an input spec names (globs and brace patterns expanded), for output safety checks."""
    import glob

    import braceexpand

    if Path(spec).exists():
        return [spec]
    return [f for part in braceexpand.braceexpand(spec) for f in glob.glob(part)]


def _summary_base(opts: EmbedOptions, encoder: Encoder, goal: Goal, kind: str) -> dict[str, Any]:
    c = encoder.config
    return {"input": opts.input, "kind": kind, "reprl_version": reprl.__version__,
            "encoder": {"source": opts.encoder, "name": c.name, "label": c.label, "embed_dim": c.embed_dim,
                        "similarity": c.similarity, "image_size": c.image_size, "provenance": c.source},
            "goal": {"kind": goal.kind, "description": goal.description},
            "device": opts.device, "precision": opts.precision, "batch_size": opts.batch_size}


# what embed writes into --out (one video, or one result per video of shards / a folder); other names in an
# output that --overwrite replaces are the user's and are kept
EMBED_FILES = ("summary.json", "embeddings.npy", "embeddings", "plots", "frames.csv", "frames.parquet", "videos.csv",
               "videos.parquet", "values.png")


def run_embed(opts: EmbedOptions) -> dict[str, Any]:
    """Embed the input and write the outputs; returns the summary."""
    t0 = time.perf_counter()
    opts.device = resolve_device(opts.device)
    if opts.batch_size < 1 or (opts.max_videos is not None and opts.max_videos < 1) or opts.plots < 0:
        raise ReprlError(f"--batch-size and --max-videos must be at least 1 and --plots at least 0, got "
                         f"{opts.batch_size}, {opts.max_videos} and {opts.plots}")
    inputs: list[str | Path] = [*input_paths(opts.input), *source_paths(opts.encoder)]  # --out replaces neither
    check_output(opts.out, "embed", inputs, opts.overwrite, opts.force_overwrite)
    kind, sources = open_sources(opts.input)
    encoder = reprl.load(opts.encoder, device=opts.device)
    check_precision(torch.device(opts.device), opts.precision)  # before any work
    goal = parse_goal(opts, encoder)
    single = None if kind in ("shards", "videos") else next(sources)
    if single is not None and goal.kind == "frame" and single.count is not None \
            and not -single.count <= goal.frame < single.count:  # known up front: refused before embedding
        raise ReprlError(f"--goal-frame {goal.frame} is outside the input's {single.count} frames (0 to "
                         f"{single.count - 1}, or -1 to -{single.count} from the end)")
    with StagingDir(opts.out, opts.overwrite, "embed", inputs, opts.force_overwrite, own=EMBED_FILES) as out:
        summary = _summary_base(opts, encoder, goal, kind)
        if single is None:  # one result per video
            summary.update(_run_shards(encoder, sources, goal, opts, out))
        else:
            summary.update(_run_single(encoder, single, goal, opts, out))
        summary["timing"]["total_s"] = round(time.perf_counter() - t0, 3)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _timing(stats: EmbedStats) -> dict[str, float]:
    return {"embed_s": round(stats.wall_s, 3), "images_per_s": round(stats.images_per_s, 2),
            "decode_preprocess_s": round(stats.produce_s, 3), "model_s": round(stats.compute_s, 3)}


def _run_single(encoder: Encoder, source: FrameSource, goal: Goal, opts: EmbedOptions, out: Path) -> dict[str, Any]:
    emb, stats = _embed_one(encoder, source, opts)
    g = _goal_for(goal, encoder, emb, source)
    vals = values(emb, g, encoder.similarity).numpy()
    np.save(out / "embeddings.npy", emb.numpy())
    _write_csv(out / "frames.csv", frame_rows(vals, source.fps), opts.parquet)
    metrics = {"voc": voc(vals), "bump_rate": bump_rate(vals)} if len(vals) > 1 else {"voc": None, "bump_rate": None}
    title = (f"{source.name}: {encoder.config.label}, goal = {goal.description[:40]}"
             + (f"\nVOC {metrics['voc']:+.2f}, bump rate {metrics['bump_rate']:.2f}" if len(vals) > 1 else ""))
    goal_thumb = goal.thumb if goal.kind == "image" else None
    plot_video(out / "values.png", vals, np.diff(vals), stats.thumbnails.pick(7), title=title, fps=source.fps,
               goal_thumb=goal_thumb)
    return {"frames": len(vals), "fps": source.fps, **metrics, "value_first": float(vals[0]),
            "value_last": float(vals[-1]), "timing": _timing(stats),
            "outputs": ["embeddings.npy", "frames.csv", "values.png", "summary.json"]
            + (["frames.parquet"] if opts.parquet else [])}


def _run_shards(encoder: Encoder, sources: Any, goal: Goal, opts: EmbedOptions, out: Path) -> dict[str, Any]:
    (out / "embeddings").mkdir()
    (out / "plots").mkdir()
    rows: list[dict[str, Any]] = []
    videos: list[dict[str, Any]] = []
    curves = []
    total = EmbedStats()
    for i, source in enumerate(sources):
        if opts.max_videos is not None and i >= opts.max_videos:
            break
        emb, stats = _embed_one(encoder, source, opts)
        total.frames += stats.frames
        total.wall_s += stats.wall_s
        total.produce_s += stats.produce_s
        total.compute_s += stats.compute_s
        vals = values(emb, _goal_for(goal, encoder, emb, source), encoder.similarity).numpy()
        name = safe_name(source.name)  # keys come from data: never a path
        np.save(out / "embeddings" / f"{name}.npy", emb.numpy())
        rows.extend(frame_rows(vals, source.fps, source.name))
        v = {"key": source.name, "embeddings": f"embeddings/{name}.npy",
             **{k: source.meta.get(k, "") for k in ("task", "camera", "episode")},
             "caption": source.caption or "", "frames": len(vals), "voc": voc(vals) if len(vals) > 1 else None,
             "bump_rate": bump_rate(vals) if len(vals) > 1 else None, "value_first": float(vals[0]),
             "value_last": float(vals[-1])}
        videos.append(v)
        curves.append((source.name, vals, v["voc"] if v["voc"] is not None else 0.0))
        if i < opts.plots and len(vals) > 1:
            title = (f"{source.name}: {encoder.config.label}, goal = {goal.description[:40]}\n"
                     f"VOC {v['voc']:+.2f}, bump rate {v['bump_rate']:.2f}")
            plot_video(out / "plots" / f"{name}.png", vals, np.diff(vals), stats.thumbnails.pick(7),
                       title=title, fps=source.fps, goal_thumb=goal.thumb if goal.kind == "image" else None)
    if not videos:
        raise ReprlError(f"no videos in {opts.input}")
    _write_csv(out / "frames.csv", rows, opts.parquet)
    _write_csv(out / "videos.csv", videos, opts.parquet)
    scored = [v for v in videos if v["voc"] is not None]
    mean_voc = float(np.mean([v["voc"] for v in scored])) if scored else None
    mean_br = float(np.mean([v["bump_rate"] for v in scored])) if scored else None
    where = Path(opts.input).name or opts.input  # no absolute paths in titles
    title = f"{where}: {encoder.config.label}, goal = {goal.description}; mean VOC {mean_voc:+.2f}" if scored \
        else where
    plot_many(out / "values.png", curves, title)
    return {"videos": len(videos), "frames": sum(v["frames"] for v in videos), "voc": mean_voc, "bump_rate": mean_br,
            "timing": _timing(total),
            "outputs": ["embeddings/", "frames.csv", "videos.csv", "values.png", "plots/", "summary.json"]}
