"""`reprl bench data`: training tuples/s of reprl's shard stream next to a per-frame-JPEG-file loader on
the same videos and cores; the time split into read / decode / augment / collate; peak memory per worker.

Every figure is the median of `repeats` runs taken in this one process, so ratios compare like with like.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from reprl.bench.decode import corpus_frames, decode_rate, decode_time_by_scale, read_seconds_per_video
from reprl.bench.framefiles import FrameFileTuples, export_frame_folders
from reprl.data.sampling import SAMPLING_MODES
from reprl.data.stream import StreamConfig, TupleStream
from reprl.errors import ReprlError
from reprl.options import DataBenchConfig
from reprl.utils.machine import torch_threads
from reprl.utils.timing import StageTimer, median_spread


def ensure_corpus(cfg: DataBenchConfig) -> str:
    if cfg.shards:
        return cfg.shards
    key = f"{cfg.render_tasks}|{cfg.render_episodes}"  # another task list or episode count is another corpus
    out = Path(cfg.cache) / f"data_corpus_{cfg.frame_size}-{zlib.crc32(key.encode()):08x}"
    if not (out / "index.json").exists():
        from reprl.sim.corpus import CorpusConfig, default_workers, render_corpus

        render_corpus(CorpusConfig(tasks=cfg.render_tasks, episodes=cfg.render_episodes, size=cfg.frame_size,
                                   workers=default_workers(), overwrite=True,
                                   max_videos_per_shard=2), out, progress=False)
    return str(out)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _time_batches(it: Any, batches: int, batch_size: int) -> float:
    """Tuples/s over `batches` batches after one warm-up batch."""
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def _stream(shards: str, cfg: DataBenchConfig, repeat: int) -> TupleStream:
    scfg = StreamConfig(mode=cfg.mode, image_size=cfg.image_size, batch_size=cfg.batch_size,
                        tuples_per_video=cfg.tuples_per_video, seed=repeat, shuffle_buffer=cfg.batch_size)
    return TupleStream(shards, scfg)


def _time_stream(shards: str, cfg: DataBenchConfig, repeat: int) -> tuple[float, float, dict[str, float]]:
    """(tuples/s of wall time, tuples/s of this thread's CPU time, share of wall time per stage) of the
    stream in this thread, over cfg.batches batches after one warm-up batch."""
    stream = _stream(shards, cfg, repeat)
    stream.timer = timer = StageTimer()
    it = iter(stream)
    next(it)
    timer.reset()
    start, cpu = time.perf_counter(), time.thread_time()
    for _ in range(cfg.batches):
        next(it)
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    stage = {k: v / elapsed for k, v in timer.seconds.items()}
    stage["other"] = max(0.0, 1.0 - sum(stage.values()))
    tuples = cfg.batches * cfg.batch_size
    return tuples / elapsed, tuples / cpu, stage


def _baseline_batches(ds: FrameFileTuples, batch_size: int) -> Any:
    it = iter(ds)
    while True:
        yield torch.stack([next(it) for _ in range(batch_size)])


def bench_in_process(shards: str, manifest: Path, cfg: DataBenchConfig) -> dict[str, Any]:
    """One process, one thread: what a single data-loader worker delivers, with reprl's stage split."""
    jpegs = corpus_frames(shards)
    per_tuple = len(SAMPLING_MODES[cfg.mode].roles)
    with torch_threads(1):
        ours, ours_cpu, shares, ref, ref_uint8, decode, decode_cpu, reads = [], [], [], [], [], [], [], []
        scales = []
        for r in range(cfg.repeats):
            scales.append(decode_time_by_scale(jpegs))
            wall, cpu = decode_rate(jpegs)
            decode.append(wall)
            decode_cpu.append(cpu)
            reads.append(read_seconds_per_video(shards))
            wall, cpu, stage = _time_stream(shards, cfg, r)
            ours.append(wall)
            ours_cpu.append(cpu)
            shares.append(stage)
            ref.append(_time_batches(_baseline_batches(FrameFileTuples(manifest, cfg.mode, cfg.image_size, r),
                                                       cfg.batch_size), cfg.batches, cfg.batch_size))
            ref_uint8.append(_time_batches(_baseline_batches(
                FrameFileTuples(manifest, cfg.mode, cfg.image_size, r, reference_transforms=False),
                cfg.batch_size), cfg.batches, cfg.batch_size))
    split = {k: median_spread([s.get(k, 0.0) for s in shares])["median"] for k in
             ("read", "decode", "augment", "collate", "other")}
    bound = median_spread([f / per_tuple for f in decode])
    return {"reprl": median_spread(ours), "framefiles_reference": median_spread(ref),
            "framefiles_uint8": median_spread(ref_uint8), "stage_share": split,
            "decode_bound": {"frames_per_s": median_spread(decode), "frames_per_tuple": per_tuple,
                             "tuples_per_s": bound},
            "ratio_vs_decode_bound": median_spread([o / (f / per_tuple) for o, f in zip(ours, decode)]),
            "ratio_vs_decode_bound_cpu": median_spread([o / (f / per_tuple) for o, f in zip(ours_cpu, decode_cpu)]),
            "read_s_per_video": {k: median_spread([x[k] for x in reads]) for k in reads[0]},
            "decode_time_by_scale": {n: median_spread([x[n] for x in scales]) for n in scales[0]}}


def bench_workers(shards: str, manifest: Path, cfg: DataBenchConfig, workers: int) -> dict[str, Any]:
    """N data-loader worker processes feeding this process: total tuples/s and peak memory per worker."""
    ours, ref = [], []
    mem: list[float] = []
    for r in range(cfg.repeats):
        loader = DataLoader(_stream(shards, cfg, r), batch_size=None, num_workers=workers, prefetch_factor=4)
        it = iter(loader)
        ours.append(_time_batches(it, cfg.batches, cfg.batch_size))
        mem.extend(m for w in getattr(it, "_workers", []) if (m := _peak_rss_mb(w.pid)) is not None)
        del it
        base = DataLoader(FrameFileTuples(manifest, cfg.mode, cfg.image_size, r), batch_size=cfg.batch_size,
                          num_workers=workers, prefetch_factor=4)
        bit = iter(base)
        ref.append(_time_batches(bit, cfg.batches, cfg.batch_size))
        del bit
    return {"workers": workers, "reprl": median_spread(ours), "framefiles_reference": median_spread(ref),
            "peak_rss_mb_per_worker": max(mem) if mem else None}


def frames_dir(cache: str | Path, shards: str) -> Path:
    """Where the per-frame JPEG copy of `shards` goes: named by the shards' content digest (or, without one, their
    absolute path), so two corpora with the same folder name never share frames."""
    from reprl.data.shards import corpus_digest

    key = corpus_digest(shards) or str(Path(shards).resolve())
    return Path(cache) / f"frames_{Path(shards).name}-{zlib.crc32(key.encode()):08x}"


def run_data_bench(cfg: DataBenchConfig) -> dict[str, Any]:
    if cfg.frame_index or cfg.ingest:
        from reprl.bench.frameindex import bench_sections

        return bench_sections(cfg)
    shards = ensure_corpus(cfg)
    from reprl.data.shards import read_index
    from reprl.utils.machine import usable_cores

    if not Path(shards).is_dir():  # checked before anything is written into the cache
        raise ReprlError(f"--shards {shards} is not a folder: give a reprl shard folder (reprl shards or reprl "
                         "render writes one)")
    index = read_index(shards)
    manifest = export_frame_folders(shards, frames_dir(cfg.cache, shards))
    result: dict[str, Any] = {
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "corpus": {"shards": shards, "videos": index["videos"], "frames": index["frames"]},
        "cpu_count": usable_cores(),  # the cores this process may use, not all the machine has
        "in_process": bench_in_process(shards, manifest, cfg),
        "workers": [bench_workers(shards, manifest, cfg, n) for n in cfg.workers if n > 0],
    }
    ip = result["in_process"]
    result["ratio_vs_framefiles"] = ip["reprl"]["median"] / ip["framefiles_reference"]["median"]
    return result


def format_data_bench(r: dict[str, Any]) -> str:
    if "frame_index" in r or "ingest" in r:
        from reprl.bench.frameindex import format_sections

        return format_sections(r)

    def fig(d: dict[str, Any]) -> str:
        return f"{d['median']:7.1f}  [{d['min']:.0f}-{d['max']:.0f}]"

    c = r["config"]
    ip = r["in_process"]
    lines = [
        f"data: {c['mode']} tuples at {c['image_size']} px, batch {c['batch_size']}, tuples/video "
        f"{c['tuples_per_video']}, corpus {r['corpus']['videos']} videos / {r['corpus']['frames']} frames, "
        f"median [min-max] of {c['repeats']} runs, {r['cpu_count']} cores",
        f"{'loader':44s} {'tuples/s':>22s}",
        f"{'reprl shards, 1 process 1 thread (= 1 worker)':44s} {fig(ip['reprl'])}",
        f"{'frame files, reference transforms, 1 thread':44s} {fig(ip['framefiles_reference'])}",
        f"{'frame files, reprl uint8 crop, 1 thread':44s} {fig(ip['framefiles_uint8'])}",
        f"ratio reprl / frame-file reference loader (1 worker): {r['ratio_vs_framefiles']:.2f}x",
        "reprl time split: " + ", ".join(f"{k} {v:.0%}" for k, v in ip["stage_share"].items()),
        f"{'JPEG-decode bound (full scale, 1 thread)':44s} {fig(ip['decode_bound']['tuples_per_s'])}  "
        f"(= {ip['decode_bound']['frames_per_s']['median']:.0f} frames/s / {ip['decode_bound']['frames_per_tuple']} "
        "frames per tuple)",
        f"ratio reprl / decode bound (1 thread): {ip['ratio_vs_decode_bound']['median']:.2f} "
        f"[{ip['ratio_vs_decode_bound']['min']:.2f}-{ip['ratio_vs_decode_bound']['max']:.2f}] of wall time, "
        f"{ip['ratio_vs_decode_bound_cpu']['median']:.2f} [{ip['ratio_vs_decode_bound_cpu']['min']:.2f}-"
        f"{ip['ratio_vs_decode_bound_cpu']['max']:.2f}] of CPU time",
        "JPEG decode CPU time at n/8 scale, relative to full scale (n: time): " + ", ".join(
            f"{n}: {v['median']:.2f}" for n, v in ip["decode_time_by_scale"].items()),
        "read, ms per video (every sample, frames taken, no decode): " + ", ".join(
            f"{k} {1000 * v['median']:.2f} [{1000 * v['min']:.2f}-{1000 * v['max']:.2f}]"
            for k, v in ip["read_s_per_video"].items()),
    ]
    for w in r["workers"]:
        mem = f", peak RSS/worker {w['peak_rss_mb_per_worker']:.0f} MB" if w["peak_rss_mb_per_worker"] else ""
        ratio = w["reprl"]["median"] / w["framefiles_reference"]["median"]
        lines.append(f"{w['workers']} workers: reprl {fig(w['reprl'])}, frame files {fig(w['framefiles_reference'])}"
                     f" -> {ratio:.2f}x{mem}")
    return "\n".join(lines)
