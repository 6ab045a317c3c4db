"""Conversion jobs: one per file or frame folder, with all its cuts, run in worker processes in order.

`encode_all` groups the sources, shows one progress bar over the corpus in source frames (frames/s and an
ETA; totals come from the video headers), runs the jobs over `workers` processes and yields their results
in order for the shard writer. Workers report decoded frames through a queue while they work, so the bar
moves inside a long video too.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprl.data import ingest
from reprl.data.ingest import CutSink
from reprl.data.shards import EncodedVideo, ShardOptions, Skipped, encode_jpeg
from reprl.data.sources import VideoSource, list_frames
from reprl.data.video import SEEK_GAP, DecodeError, FrameInfo, FrameReader, VideoReader, cut_range, open_reader
from reprl.utils.parallel import ordered_map

REPORT_EVERY = 64  # frames between progress reports from a worker


@dataclass
class Job:
    """Every requested cut of one file or folder, decoded together."""

    sources: list[VideoSource]
    opts: ShardOptions
    spool_dir: str
    number: int


@dataclass
class JobResult:
    items: list[EncodedVideo | Skipped] = field(default_factory=list)  # in source order, clips in order
    warnings: list[str] = field(default_factory=list)
    decoded: int = 0  # source frames the decoder produced
    seconds: float = 0.0  # wall time of the job in its worker


def group_jobs(sources: list[VideoSource], opts: ShardOptions, spool_dir: str | Path) -> list[Job]:
    """One job per distinct file/folder, in order of first appearance."""
    groups: dict[tuple[str, str], list[VideoSource]] = {}
    for s in sources:
        groups.setdefault((s.kind, s.path), []).append(s)
    return [Job(g, opts, str(spool_dir), n) for n, g in enumerate(groups.values())]


def run_job(job: Job) -> JobResult:
    """Decode one file once for all its cuts. Never raises for a bad video: problems become Skipped items."""
    t0, opts, out = time.perf_counter(), job.opts, JobResult()
    spools = iter(range(10**9))

    def spool_path() -> Path:
        return Path(job.spool_dir) / f".spool-{job.number:07d}-{next(spools):05d}.jpgs"

    try:
        reader = open_reader(job.sources[0])
    except DecodeError as e:
        out.items = [Skipped(s.path, "unreadable", str(e)) for s in job.sources]
        return out
    with reader:
        slots: list[CutSink | Skipped] = [_sink(s, reader.info, opts, spool_path) for s in job.sources]
        sinks = [s for s in slots if isinstance(s, CutSink)]
        try:
            _decode(reader, sinks, opts)
        except DecodeError as e:
            for s in sinks:
                s.abort()
            slots = [Skipped(s.src.path, "unreadable", str(e)) if isinstance(s, CutSink) else s for s in slots]
        out.decoded = reader.decoded
    for slot in slots:
        if isinstance(slot, Skipped):
            out.items.append(slot)
            continue
        items, warn = slot.finish()
        out.items.extend(items)
        out.warnings += [warn] if warn else []
    out.seconds = time.perf_counter() - t0
    return out


def _sink(src: VideoSource, info: FrameInfo, opts: ShardOptions, spool: Callable[[], Path]) -> CutSink | Skipped:
    if opts.require_caption and not src.caption:
        return Skipped(src.path, "no caption", "captions are required (--require-caption) but none was given")
    if (opts.fps or opts.clip_seconds) and not info.fps:
        flag = "--fps" if opts.fps else "--clip-seconds"
        return Skipped(src.path, "fps unknown", f"{flag} needs the source fps: add an fps column to the manifest")
    try:
        return CutSink(src, info, opts, spool)
    except DecodeError as e:
        return Skipped(src.path, "unreadable", str(e))
    except (OSError, ValueError, KeyError) as e:  # its per-frame data (a parquet file) cannot be read
        return Skipped(src.path, "unreadable", f"{src.origin or src.path}: cannot read its per-frame data: {e}")


def _spans(sinks: list[CutSink]) -> list[tuple[int, int | None, list[CutSink]]]:
    """Cuts merged into decoding passes: a cut starting within SEEK_GAP frames of the previous pass joins it."""
    spans: list[tuple[int, int | None, list[CutSink]]] = []
    for s in sorted(sinks, key=lambda s: s.start):
        if spans and (spans[-1][1] is None or s.start <= spans[-1][1] + SEEK_GAP):
            start, end, members = spans[-1]
            spans[-1] = (start, None if end is None or s.end is None else max(end, s.end), members + [s])
        else:
            spans.append((s.start, s.end, [s]))
    return spans


def _decode(reader: FrameReader, sinks: list[CutSink], opts: ShardOptions) -> None:
    unreported = 0
    for start, end, members in _spans(sinks):
        for idx, get in reader.read(start, end):
            jpeg, shape = None, (0, 0)
            for sink in members:
                if sink.covers(idx) and sink.wants(idx):
                    if jpeg is None:
                        frame = get(opts.resize)
                        jpeg, shape = encode_jpeg(frame, opts.quality), (int(frame.shape[1]), int(frame.shape[0]))
                    sink.add(idx, jpeg, shape)
            unreported += 1
            if unreported >= REPORT_EVERY and ingest.report is not None:
                ingest.report(unreported)
                unreported = 0
    if unreported and ingest.report is not None:
        ingest.report(unreported)


def probe_frames(job: Job) -> int:
    """Source frames a job will decode, from the video header or the folder listing (0 when unknown)."""
    src = job.sources[0]
    try:
        if src.kind == "frames":
            n, fps = len(list_frames(Path(src.path))), src.fps
        else:
            with VideoReader(src.path) as reader:
                fps, n = reader.info.fps, reader.info.frames_or_estimate()
    except Exception:  # noqa: BLE001 - an unreadable video is reported by its job; here it only counts 0
        return 0
    total = 0
    for part in job.sources:
        try:
            start, end = cut_range(part, fps)
        except DecodeError:
            continue
        total += max(0, min(n, end if end is not None else n) - start)
    return total


def _init_worker(queue: Any) -> None:
    ingest.set_progress(queue.put)


def encode_all(sources: list[VideoSource], opts: ShardOptions, spool_dir: str | Path,
               progress: bool = True) -> Iterator[JobResult]:
    """Run every job (over `opts.workers` processes), yielding results in order, with a progress bar."""
    from tqdm import tqdm

    jobs = group_jobs(sources, opts, spool_dir)
    total = sum(probe_frames(j) for j in jobs) if progress else None
    with tqdm(total=total, desc="shards", unit="frame", disable=not progress, smoothing=0.05) as bar:
        if opts.workers <= 1:
            ingest.set_progress(bar.update)
            try:
                yield from map(run_job, jobs)
            finally:
                ingest.set_progress(None)
            return
        queue = mp.get_context("spawn").Queue()
        drain = threading.Thread(target=_drain, args=(queue, bar.update), daemon=True)
        drain.start()
        try:
            yield from ordered_map(run_job, jobs, opts.workers, initializer=_init_worker, initargs=(queue,))
        finally:
            queue.put(None)
            drain.join(timeout=5)


def _drain(queue: Any, update: Callable[[int], Any]) -> None:
    while (n := queue.get()) is not None:
        update(n)
