"""Embed a video with decoding and preprocessing overlapped with the model: a producer thread decodes
frames (and, on the CPU, preprocesses them) while the main thread runs the encoder on the previous batch.
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

PRECISIONS = ("32", "bf16", "16")


class Thumbnails:
    """Small copies of evenly spaced frames (at most `keep`, plus the last) for plots, in bounded memory."""

    def __init__(self, keep: int = 48, size: int = 96) -> None:
        self.keep, self.size, self.stride = keep, size, 1
        self.frames: dict[int, torch.Tensor] = {}
        self.last: tuple[int, torch.Tensor] | None = None

    def add(self, start: int, batch: torch.Tensor) -> None:
        for i in range(batch.shape[0]):
            idx = start + i
            if idx % self.stride == 0 or i == batch.shape[0] - 1:
                small = TF.resize(batch[i:i + 1], [self.size], antialias=True)[0]
                if idx % self.stride == 0:
                    self.frames[idx] = small
                self.last = (idx, small)
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


def autocast(device: torch.device, precision: str) -> Any:
    if precision not in PRECISIONS:
        raise ReprlError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "32":
        return contextlib.nullcontext()
    if precision == "16" and device.type != "cuda":
        raise ReprlError("precision 16 (float16) needs a CUDA device; use bf16 on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def embed_source(encoder: Encoder, source: FrameSource, *, batch_size: int = 64, precision: str = "32",
                 progress: Any = None) -> tuple[torch.Tensor, EmbedStats]:
    """All frames of `source` -> float32 embeddings [T, D] on the CPU, and timing."""
    if batch_size < 1:
        raise ReprlError("--batch-size must be at least 1")
    device = encoder.device
    stats = EmbedStats()
    items: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()

    def produce() -> None:
        start = 0
        try:
            for batch in source.batches(batch_size):
                if stop.is_set():
                    return
                t0 = time.perf_counter()
                stats.thumbnails.add(start, batch)
                x = encoder.preprocess(batch) if device.type == "cpu" else batch.pin_memory()
                stats.produce_s += time.perf_counter() - t0
                start += batch.shape[0]
                items.put(("batch", x))
            items.put(("done", None))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            items.put(("error", e))

    t_start = time.perf_counter()
    worker = threading.Thread(target=produce, name="reprl-embed-decode", daemon=True)
    worker.start()
    outs: list[torch.Tensor] = []
    try:
        while True:
            kind, x = items.get()
            if kind == "error":
                raise x
            if kind == "done":
                break
            t0 = time.perf_counter()
            if device.type != "cpu":
                x = encoder.preprocess(x.to(device, non_blocking=True))
            with torch.inference_mode(), autocast(device, precision):
                outs.append(encoder.encode(x).float().cpu())
            stats.compute_s += time.perf_counter() - t0
            stats.frames += x.shape[0]
            if progress is not None:
                progress.update(x.shape[0])
    finally:
        stop.set()
    stats.wall_s = time.perf_counter() - t_start
    if not outs:
        raise ReprlError(f"{source.name}: no frames could be read (empty video or folder)")
    return torch.cat(outs), stats


def embed_video(encoder: Encoder, video: Any, batch_size: int = 64) -> torch.Tensor:
    """All frames of one shard video -> float32 embeddings [T, D] on the CPU, decoded batch by batch."""
    source = FrameSource(name=video.key, kind="shard", count=len(video), _open=shard_batches(video))
    return embed_source(encoder, source, batch_size=batch_size)[0]
