"""Lightning DataModule: the training tuple stream per rank, and whole held-out videos for validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from reprl.data.augment import center_square
from reprl.data.reader import expand_urls, iter_videos
from reprl.data.sampling import MIN_FRAMES
from reprl.data.stream import StreamConfig, TupleStream, video_task
from reprl.errors import ReprlError


def even_indices(n: int, k: int) -> list[int]:
    """At most k indices spread evenly over 0..n-1, first and last included, in order."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def heldout_videos(urls: str | list[str], max_videos: int, tasks: tuple[str, ...] = ()) -> Iterator[Any]:
    """The first `max_videos` videos long enough to score (>= MIN_FRAMES), only those of `tasks` when given
    (by their 'task' metadata). None at all is an error, and so is a named task that no video shows once all
    videos were read."""
    n = 0
    seen: set[str] = set()
    for video in iter_videos(expand_urls(urls)):
        task = video_task(video)
        seen.add(task)
        if (tasks and task not in tasks) or len(video) < MIN_FRAMES:
            continue
        n += 1
        yield video
        if n >= max_videos:
            return
    if missing := [t for t in tasks if t not in seen]:
        there = sorted(seen - {""})
        found = ", ".join(there[:8]) + (", ..." if len(there) > 8 else "") if there else "none named"
        raise ReprlError(f"no video in {urls} shows the task(s) {', '.join(missing)} (tasks there: {found}); name "
                         "tasks of these shards in data.holdout_tasks")
    if not n:
        raise ReprlError(f"no usable held-out videos (>= {MIN_FRAMES} frames) in {urls}")


class HeldoutVideos(Dataset):
    """Whole videos from held-out shards, decoded once and center-cropped: for VOC and bump rate."""

    def __init__(self, urls: str | list[str], image_size: int, max_videos: int = 16, max_frames: int = 64,
                 tasks: tuple[str, ...] = ()) -> None:
        self.videos: list[dict[str, Any]] = []
        for video in heldout_videos(urls, max_videos, tasks):
            frames = center_square(video.decode(even_indices(len(video), max_frames), channels_last=True), image_size)
            self.videos.append({"frames": frames, "key": video.key, "text": video.text or "",
                                "task": video_task(video)})

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.videos[i]


def _single(items: list[Any]) -> Any:
    return items[0]


class VideoDataModule(L.LightningDataModule):
    """Streams `stream.batch_size` tuples per step in total, split evenly over the ranks."""

    def __init__(self, train: str, stream: StreamConfig, *, val: str | None = None, num_workers: int = 2,
                 batches_per_epoch: int = 1000, val_videos: int = 16, val_max_frames: int = 64,
                 val_tasks: tuple[str, ...] = (), resume: int = 0) -> None:
        super().__init__()
        self.train_spec, self.val_spec = train, val
        self.stream_cfg = stream
        self.num_workers = num_workers
        self.batches_per_epoch = batches_per_epoch
        self.val_videos, self.val_max_frames, self.val_tasks = val_videos, val_max_frames, val_tasks
        self.resume = resume
        self.train_set: TupleStream | None = None
        self.val_set: HeldoutVideos | None = None

    def _rank_world(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        _, world = self._rank_world()
        if self.stream_cfg.batch_size % world:
            raise ReprlError(f"data.batch_size {self.stream_cfg.batch_size} is the global batch and must be divisible "
                             f"by the number of processes ({world})")
        if self.val_spec and self.val_set is None:
            self.val_set = HeldoutVideos(self.val_spec, self.stream_cfg.image_size, self.val_videos,
                                         self.val_max_frames, self.val_tasks)

    def train_dataloader(self) -> DataLoader:
        """Built when Lightning asks, after a checkpoint is restored: the stream is re-seeded from the step."""
        rank, world = self._rank_world()
        per_rank = dataclasses.replace(self.stream_cfg, batch_size=self.stream_cfg.batch_size // world)
        resume = self.trainer.global_step if self.trainer else self.resume
        self.train_set = TupleStream(self.train_spec, per_rank, batches_per_epoch=self.batches_per_epoch,
                                     rank=rank, world_size=world, resume=resume)
        workers = self.num_workers
        return DataLoader(self.train_set, batch_size=None, num_workers=workers, pin_memory=torch.cuda.is_available(),
                          persistent_workers=False, prefetch_factor=4 if workers else None)

    def set_epoch(self, epoch: int) -> None:
        """Called by the training module at each epoch start: worker processes get a fresh seed."""
        if self.train_set is not None:
            self.train_set.set_epoch(epoch)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=1, shuffle=False, collate_fn=_single)
