"""Embed a video with decoding and preprocessing overlapped with the model: a producer thread decodes
frames (and, on the CPU, preprocesses them) while the encoder runs on earlier batches (on the CPU, in one
calling thread per core, each with its own batch).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.transforms.v2 import functional as TF

from reprl.embed.frame_sources import FrameSource, shard_batches
from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.utils.machine import torch_threads, usable_cores
from reprl.utils.precision import normalize_precision


class Thumbnails:
    """Small copies of evenly spaced frames (at most `keep`, plus the last) for plots, in bounded memory.

    Frames whose index is a multiple of the stride are kept; the stride doubles whenever more than `keep` are
    held. When the frame count is known up front, the stride starts where the doubling would end, so only the
    frames that are kept get resized."""

    def __init__(self, keep: int = 48, size: int = 96, count: int | None = None) -> None:
        self.keep, self.size, self.stride = keep, size, 1
        while count and -(-count // self.stride) > keep:
            self.stride *= 2
        self.frames: dict[int, torch.Tensor] = {}
        self.last: tuple[int, torch.Tensor] | None = None

    def add(self, start: int, batch: torch.Tensor) -> None:
        n = batch.shape[0]
        rows = [i for i in range(n) if (start + i) % self.stride == 0 or i == n - 1]
        small = TF.resize(batch[rows], [self.size], antialias=True)
        for row, img in zip(rows, small):
            if (start + row) % self.stride == 0:
                self.frames[start + row] = img
        self.last = (start + n - 1, small[-1])
        while len(self.frames) > self.keep:
            self.stride *= 2
            self.frames = {k: v for k, v in self.frames.items() if k % self.stride == 0}

    def pick(self, n: int) -> list[tuple[int, torch.Tensor]]:
        items = sorted(self.frames.items())
        if self.last is not None and self.last[0] not in self.frames:
            items.append(self.last)
        if len(items) <= n:
            return items
        step = (len(items) - 1) / (n - 1)
        return [items[round(i * step)] for i in range(n)]


@dataclass
class EmbedStats:
    frames: int = 0
    produce_s: float = 0.0  # decode + preprocess, in the producer thread
    compute_s: float = 0.0  # encoder forward, in the main thread
    wall_s: float = 0.0
    thumbnails: Thumbnails = field(default_factory=Thumbnails)

    @property
    def images_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


def check_precision(device: torch.device, precision: str) -> str:
    """`precision` in reprl.utils.precision's vocabulary, normalised; float16 off CUDA is a one-line error. Commands
    call it before any work, so a bad setting is refused before rendering or embedding starts."""
    precision = normalize_precision(precision)
    if precision == "16" and device.type != "cuda":
        raise ReprlError("precision 16 (float16) needs a CUDA device; use bf16 on the CPU")
    return precision


def autocast(device: torch.device, precision: str) -> Any:
    """The context the encoder's forward runs in for `precision` (checked by check_precision)."""
    precision = check_precision(device, precision)
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def encoder_callers(device: torch.device) -> tuple[int, int]:
    """(threads calling the encoder at once, torch threads each) for embedding on `device`.

    On the CPU, each of the torch threads calls the encoder on its own batch with one intra-op thread (at most
    one caller per usable core and 4 in all, sharing the threads between them). With one caller and every
    thread, the decoding thread stalls the whole intra-op pool whenever it takes a core; independent callers
    do not wait for each other.
    On 2 cores this made `reprl embed` 1.39x / 1.14x / 1.10x faster with ResNet-18 at 64 / 128 / 224 px
    (docs/benchmarks.md, "Embedding with one caller per core").
    Elsewhere: one caller, threads as they are."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2:
        return 1, threads
    callers = max(1, min(threads, usable_cores(), 4))  # more callers than cores would wait on each other
    return callers, threads // callers


def embed_source(encoder: Encoder, source: FrameSource, *, batch_size: int = 64, precision: str = "32",
                 progress: Any = None) -> tuple[torch.Tensor, EmbedStats]:
    """All frames of `source` -> float32 embeddings [T, D] on the CPU, and timing.

    One producer thread decodes (and on the CPU preprocesses) batches in order; `encoder_callers` threads
    encode them as they come, and the outputs are put back in frame order."""
    if batch_size < 1:
        raise ReprlError("--batch-size must be at least 1")
    device = encoder.device
    stats = EmbedStats(thumbnails=Thumbnails(count=source.count))
    callers, threads = encoder_callers(device)
    if "encode" in vars(encoder):  # compile_encode(): a compiled function is not called from several threads
        callers, threads = 1, torch.get_num_threads()
    if callers > 1 and source.count:  # enough batches to keep every caller busy on a short video
        batch_size = min(batch_size, -(-source.count // callers))
    items: queue.Queue = queue.Queue(maxsize=2 + 2 * callers)
    stop = threading.Event()
    lock = threading.Lock()
    outs: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def fail(e: BaseException) -> None:  # the first error stops every thread; the main thread raises it
        with lock:
            errors.append(e)
        stop.set()

    def put(item: tuple[int, torch.Tensor] | None) -> None:  # (batch index, batch); None: no more batches
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.1)
                return

    def produce() -> None:
        start, index = 0, 0
        try:
            for batch in source.batches(batch_size):
                if stop.is_set():
                    return
                t0 = time.perf_counter()
                stats.thumbnails.add(start, batch)
                x = encoder.preprocess(batch) if device.type == "cpu" else batch.pin_memory()
                stats.produce_s += time.perf_counter() - t0
                start += batch.shape[0]
                put((index, x))
                index += 1
            put(None)
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            fail(e)

    def consume() -> None:
        while not stop.is_set():
            try:
                item = items.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                put(None)  # the next caller sees it too
                return
            index, x = item
            t0 = time.perf_counter()
            try:
                if device.type != "cpu":
                    x = encoder.preprocess(x.to(device, non_blocking=True))
                with torch.inference_mode(), autocast(device, precision):
                    out = encoder.encode(x).float().cpu()
            except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
                fail(e)
                return
            with lock:
                outs[index] = out
                stats.compute_s += time.perf_counter() - t0
                stats.frames += x.shape[0]
                if progress is not None:
                    progress.update(x.shape[0])

    t_start = time.perf_counter()
    producer = threading.Thread(target=produce, name="reprl-embed-decode", daemon=True)
    helpers = [threading.Thread(target=consume, name=f"reprl-embed-encode-{i}", daemon=True)
               for i in range(1, callers)]
    try:
        with torch_threads(threads):
            producer.start()
            for h in helpers:
                h.start()
            consume()
            for h in helpers:
                h.join()
    finally:
        stop.set()  # the producer and any caller still running stop within 0.1 s
    stats.wall_s = time.perf_counter() - t_start
    if errors:
        raise errors[0]
    if not outs:
        raise ReprlError(f"{source.name}: no frames could be read (empty video or folder)")
    return torch.cat([outs[i] for i in range(len(outs))]), stats


def embed_video(encoder: Encoder, video: Any, batch_size: int = 64, precision: str = "32") -> torch.Tensor:
    """All frames of one shard video -> float32 embeddings [T, D] on the CPU, decoded batch by batch."""
    source = FrameSource(name=video.key, kind="shard", count=len(video), _open=shard_batches(video))
    return embed_source(encoder, source, batch_size=batch_size, precision=precision)[0]
