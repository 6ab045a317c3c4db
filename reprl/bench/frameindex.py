"""`reprl bench data --frame-index 40,400`: training tuples/s and shard bytes read per tuple with and without
the per-shard frame index, on synthetic clips of each length, side by side in one process.

The corpus per length holds the same number of frames (`frames_per_length`) as clips of that many frames,
256 px JPEGs of smooth noise written once into `cache`. Bytes read counts what the reader looks at: tar
headers walked, index files loaded and member data used (json, caption, decoded frames).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reprl.data.frameindex import STATS
from reprl.utils.machine import torch_threads
from reprl.utils.timing import median_spread


def synthetic_clips(out: Path, length: int, total_frames: int, size: int) -> str:
    """A shard folder of total_frames // length clips of `length` frames (written once, then reused)."""
    from reprl.data.shards import EncodedVideo, ShardOptions, ShardWriter, encode_jpeg

    if (out / "index.json").exists():
        return str(out)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    pool = [encode_jpeg(np.kron(np.roll(base, i, axis=1), np.ones((8, 8, 1), np.uint8)), 90) for i in range(16)]
    clips = max(1, total_frames // length)
    with ShardWriter(out, ShardOptions(overwrite=True, max_videos_per_shard=max(1, clips // 4))) as w:
        for c in range(clips):
            frames = [pool[(c + i) % len(pool)] for i in range(length)]
            w.add(EncodedVideo(frames, {"source": f"synthetic/clip{c}", "num_frames": length}, caption="a clip"))
        w.finish()
    return str(out)


def _measure(shards: str, cfg: Any, use_index: bool, seed: int) -> tuple[float, float]:
    """(tuples/s, bytes read per tuple) with the data bench's stream and timing, one thread. Bytes are
    counted from after a first warm-up batch over the timed batches and the timer's own warm-up batch."""
    from reprl.bench.data import _stream, _time_batches

    stream = _stream(shards, cfg, seed)
    stream.use_index = use_index
    it = iter(stream)
    next(it)
    STATS.reset()
    rate = _time_batches(it, cfg.batches, cfg.batch_size)
    return rate, STATS.total / ((cfg.batches + 1) * cfg.batch_size)


def bench_frame_index(cfg: Any, frames_per_length: int = 12000) -> list[dict[str, Any]]:
    """One row per clip length: tuples/s and bytes/tuple, walking the tar vs through the index."""
    rows = []
    with torch_threads(1):
        for length in cfg.frame_index:
            shards = synthetic_clips(Path(cfg.cache) / f"clips_{length}_{cfg.frame_size}", length,
                                     frames_per_length, cfg.frame_size)
            row: dict[str, Any] = {"clip_frames": length}
            for name, flag in (("walk", False), ("index", True)):
                runs = [_measure(shards, cfg, flag, r) for r in range(cfg.repeats)]
                row[name] = {"tuples_per_s": median_spread([r[0] for r in runs]),
                             "bytes_per_tuple": float(np.median([r[1] for r in runs]))}
            rows.append(row)
    return rows


def format_frame_index(rows: list[dict[str, Any]], cfg: dict[str, Any]) -> str:
    lines = [f"frame index: {cfg['mode']} tuples at {cfg['image_size']} px, batch {cfg['batch_size']}, "
             f"1 thread, median of {cfg['repeats']} runs",
             f"{'clip frames':>11s}  {'walk tuples/s':>13s}  {'index tuples/s':>14s}  {'speed-up':>8s}  "
             f"{'walk KB/tuple':>13s}  {'index KB/tuple':>14s}"]
    for r in rows:
        w, i = r["walk"], r["index"]
        lines.append(f"{r['clip_frames']:>11d}  {w['tuples_per_s']['median']:>13.1f}  "
                     f"{i['tuples_per_s']['median']:>14.1f}  "
                     f"{i['tuples_per_s']['median'] / w['tuples_per_s']['median']:>7.2f}x  "
                     f"{w['bytes_per_tuple'] / 1024:>13.1f}  {i['bytes_per_tuple'] / 1024:>14.1f}")
    return "\n".join(lines)


def bench_sections(cfg: Any) -> dict[str, Any]:
    """The shard-format sections of `bench data` the config asks for (frame index and/or ingestion)."""
    out: dict[str, Any] = {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    if cfg.ingest:
        from reprl.bench.ingest import bench_ingest

        out["ingest"] = bench_ingest(cfg)
    if cfg.frame_index:
        out["frame_index"] = bench_frame_index(cfg)
    return out


def format_sections(r: dict[str, Any]) -> str:
    from reprl.bench.ingest import format_ingest

    parts = [format_ingest(r["ingest"], r["config"])] if "ingest" in r else []
    if "frame_index" in r:
        parts.append(format_frame_index(r["frame_index"], r["config"]))
    return "\n\n".join(parts)
