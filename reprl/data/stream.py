"""Streaming training tuples from shards, per rank and data-loader worker.

Each reader (rank x worker) takes a disjoint slice of the shards, walks it in random order forever, draws
`tuples_per_video` tuples from every video it reads (decoding only the sampled frames), applies one shared
random crop per tuple, shuffles tuples in a small buffer and yields ready batches (`ClipBatch`). With
`batches_per_epoch` set, a rank's epoch has exactly that many batches whatever the number of workers, so no
rank waits on another. Seeds come from (seed, rank, worker, resume), so readers never repeat each other and
a resumed run draws fresh samples while staying reproducible. Each epoch (`set_epoch`) and each new
iteration in a persistent worker also moves the seed on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from reprl.data.augment import center_box, crop_params, crop_resize, decode_eighths
from reprl.data.reader import ShardVideo, SkipCounter, expand_urls, iter_videos
from reprl.data.sampling import MIN_FRAMES, MODES, SAMPLING_MODES, needs_text, other_goal_mode, sample_indices
from reprl.errors import ReprlError
from reprl.options import TupleSettings
from reprl.utils.timing import NullTimer, StageTimer

log = logging.getLogger("reprl.data")


@dataclass
class StreamConfig(TupleSettings):
    """How training tuples are drawn and batched (crop_scale, augment, tuples_per_video, shuffle_buffer and
    other_goal come from TupleSettings)."""

    mode: str = "vip"  # vip | vip_last | liv | liv_last | r3m, or a registered mode (see reprl.data.sampling)
    image_size: int = 224
    batch_size: int = 32
    seed: int = 0
    exclude_tasks: tuple[str, ...] = ()  # videos whose 'task' metadata is one of these are never drawn

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ReprlError(f"unknown data mode {self.mode!r}; choose one of {', '.join(MODES)}")
        for name in ("image_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ReprlError(f"data.{name} must be at least 1, got {getattr(self, name)}")
        self.check_tuple_settings(lambda name: f"data.{name}", self.mode)


@dataclass
class ClipBatch:
    """A batch of training tuples, frames by role (uint8 [B, 3, S, S], channels-last memory format); never a
    positional stack."""

    frames: dict[str, torch.Tensor]
    indices: dict[str, torch.Tensor]  # role -> int64 [B], frame index within its video
    length: torch.Tensor  # int64 [B], frames in the source video
    text: list[str] = field(default_factory=list)  # caption per tuple ('' when the video has none)
    key: list[str] = field(default_factory=list)
    goal_from: list[str] = field(default_factory=list)  # data.other_goal: key of the goal's video ('' = its own)

    def __len__(self) -> int:
        return int(self.length.shape[0])

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.frames)

    def _map(self, fn: Any) -> ClipBatch:
        return ClipBatch(frames={k: fn(v) for k, v in self.frames.items()},
                         indices={k: fn(v) for k, v in self.indices.items()},
                         length=fn(self.length), text=self.text, key=self.key, goal_from=self.goal_from)

    def pin_memory(self) -> ClipBatch:
        return self._map(lambda t: t.pin_memory())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """[3, S, S] images -> [B, 3, S, S] in channels-last memory format: the crops come channels-last from the
    resize, and stacking them as they are is a plain copy (torch.stack would transpose every pixel)."""
    return torch.stack([im.permute(1, 2, 0) for im in images]).permute(0, 3, 1, 2)


def collate_tuples(tuples: list[dict[str, Any]], roles: tuple[str, ...]) -> ClipBatch:
    return ClipBatch(
        frames={r: stack_images([t["frames"][i] for t in tuples]) for i, r in enumerate(roles)},
        indices={r: torch.tensor([t["indices"][r] for t in tuples], dtype=torch.long) for r in roles},
        length=torch.tensor([t["length"] for t in tuples], dtype=torch.long),
        text=[t["text"] for t in tuples],
        key=[t["key"] for t in tuples],
        goal_from=[t.get("goal_from", "") for t in tuples],
    )


def reader_slot(rank: int, world_size: int) -> tuple[int, int, int, int]:
    """(rank, world_size, worker, num_workers) of the calling data-loader worker."""
    info = get_worker_info()
    worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank, world_size, worker, num_workers


def split_shards(urls: list[str], slot: int, num_slots: int) -> list[str]:
    """This reader's shards: a strided slice when there are enough shards, else all of them."""
    if len(urls) >= num_slots:
        return urls[slot::num_slots]
    return list(urls)


def video_task(video: ShardVideo) -> str:
    """The task a video shows, from its metadata ('' when it names none)."""
    return str(video.meta.get("task", ""))


class TupleStream(IterableDataset):
    """Infinite (or exactly `batches_per_epoch`-long per rank) stream of ClipBatch from shards."""

    def __init__(self, urls: str | list[str], cfg: StreamConfig, *, batches_per_epoch: int | None = None,
                 rank: int = 0, world_size: int = 1, resume: int = 0) -> None:
        super().__init__()
        self.urls = expand_urls(urls)
        self.cfg = cfg
        self.batches_per_epoch = batches_per_epoch
        self.rank, self.world_size, self.resume = rank, world_size, resume
        self.epoch = 0
        self._passes = 0  # iterations started in this process: advances the seed under persistent workers
        self.roles = SAMPLING_MODES[cfg.mode].roles
        self.skips = SkipCounter("video")
        self.timer: StageTimer = NullTimer()  # benchmarks swap in a StageTimer: read/decode/augment/collate
        self.use_index = True  # read frames through shards' frame indexes when present (benchmarks compare)
        # data.other_goal: (task, camera) -> (key, last frame cropped, uint8 [3, S, S]) of the latest successful
        # video of that task and camera this reader has read; emptied when an iteration starts
        self._goals: dict[tuple[str, str], tuple[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        if self.batches_per_epoch is None:
            raise TypeError("this stream is infinite: set batches_per_epoch for a length")
        return self.batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches_for_worker(self, worker: int, num_workers: int) -> int | None:
        if self.batches_per_epoch is None:
            return None
        base, extra = divmod(self.batches_per_epoch, num_workers)
        return base + (worker < extra)

    def __iter__(self) -> Iterator[ClipBatch]:
        rank, world, worker, num_workers = reader_slot(self.rank, self.world_size)
        slot, num_slots = rank * num_workers + worker, world * num_workers
        mine = split_shards(self.urls, slot, num_slots)
        if len(self.urls) < num_slots and slot == 0:
            log.warning("only %d shards for %d readers (ranks x workers): readers share shards with different "
                        "random streams; write more, smaller shards for disjoint reading", len(self.urls), num_slots)
        rng = np.random.default_rng([self.cfg.seed, rank, worker, self.resume, self.epoch, self._passes])
        self._passes += 1
        self._goals = {}
        limit = self._batches_for_worker(worker, num_workers)
        emitted = 0
        buffer: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for tup in self._tuples(mine, rng):
            buffer.append(tup)
            if len(buffer) < self.cfg.shuffle_buffer:
                continue
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            batch.append(buffer.pop())
            if len(batch) == self.cfg.batch_size:
                with self.timer("collate"):
                    out = collate_tuples(batch, self.roles)
                yield out
                batch = []
                emitted += 1
                if limit is not None and emitted >= limit:
                    return

    def _tuples(self, shards: list[str], rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        while True:
            usable = held_out = 0
            for url in rng.permutation(shards):
                for video in self.timer.timed_iter("read", iter_videos([str(url)], self.skips, self.use_index)):
                    if self.cfg.exclude_tasks and video_task(video) in self.cfg.exclude_tasks:
                        held_out += 1
                        continue
                    for tup in self.tuples_from_video(video, rng):
                        usable += 1
                        yield tup
            if usable == 0:
                raise ReprlError(f"no usable videos in shards {shards[:3]}{'...' if len(shards) > 3 else ''}: "
                                 f"skipped {dict(self.skips.counts)}"
                                 + (f", {held_out} of held-out tasks (data.holdout_tasks)" if held_out else ""))

    def tuples_from_video(self, video: ShardVideo, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Draw tuples_per_video tuples, decoding each needed frame once. Bad videos give [] (counted)."""
        n = len(video)
        if n < MIN_FRAMES:
            self.skips.note("too short", f"{video.key}: {n} frames")
            return []
        if needs_text(self.cfg.mode) and not video.text:
            self.skips.note("no caption", f"{video.key} (the {self.cfg.mode} objective needs a caption per video)")
            return []
        # data.other_goal: a tuple of a successful video may take as its goal the last frame of an earlier successful
        # video of the same task and camera (the goal image a user has, which this video never shows); its own
        # frames then run to the video's end. Videos that name no task neither lend nor borrow (nothing says two of
        # them share a goal), a failed video keeps its own goals (it never reaches the borrowed one), and a video
        # never borrows its own last frame (a later pass over the same shards). The random draws for it are made
        # only when other_goal > 0, so other streams are unchanged.
        other, task = self.cfg.other_goal, video_task(video)
        group = (task, str(video.meta.get("camera", ""))) if other > 0 and task else None
        succeeded = video.meta.get("succeeded", True) is not False
        cached = self._goals.get(group) if group is not None and succeeded else None
        if cached is not None and cached[0] == video.key:
            cached = None
        swap = [cached is not None and bool(rng.random() < other) for _ in range(self.cfg.tuples_per_video)]
        last_mode = other_goal_mode(self.cfg.mode) if group is not None else None
        keep_last = last_mode is not None and succeeded
        draws = [sample_indices(last_mode if s and last_mode else self.cfg.mode, n, rng) for s in swap]
        needed = sorted({i for d in draws for i in d.values()} | ({n - 1} if keep_last else set()))
        try:
            with self.timer("decode"):
                full_hw = video.frame_size()
                # crop boxes are drawn before decoding (same draws, same order as cropping after it), so the
                # frames are decoded only as finely as the smallest crop needs
                boxes = [crop_params(*full_hw, rng, self.cfg.crop_scale) if self.cfg.augment
                         else center_box(*full_hw) for _ in draws]
                eighths = decode_eighths(min(min(b[2:]) for b in boxes), self.cfg.image_size)
                decoded = video.decode(needed, eighths, channels_last=True)  # [K, 3, h, w], K = len(needed)
        except ValueError as e:
            self.skips.note("undecodable frames", f"{video.key}: {e}")
            return []
        out = []
        for d, box, s in zip(draws, boxes, swap):
            with self.timer("augment"):
                stack = self._crop_tuple(decoded, needed, d, box, full_hw)
                if s and cached is not None:
                    stack[self.roles.index("goal")] = cached[1]
            out.append({"frames": stack, "indices": d, "length": n, "text": video.text or "", "key": video.key,
                        "goal_from": cached[0] if s and cached is not None else ""})
        if keep_last and group is not None:
            with self.timer("augment"):
                k = needed.index(n - 1)  # a slice keeps the decoder's channels-last view
                self._goals[group] = (video.key, crop_resize(decoded[k:k + 1], boxes[0], self.cfg.image_size,
                                                             full_hw)[0])
        return out


    def _crop_tuple(self, decoded: torch.Tensor, needed: list[int], draw: dict[str, int],
                    box: tuple[int, int, int, int], full_hw: tuple[int, int]) -> torch.Tensor:
        """The draw's frames by role, cropped and resized: uint8 [F, 3, S, S]. Crops the decoded frames the
        draw uses (all of them, without a copy, when it uses every decoded frame) and orders the small
        results by role, instead of gathering the large decoded frames first."""
        pos = {i: k for k, i in enumerate(needed)}
        used = sorted({pos[draw[r]] for r in self.roles})
        frames = decoded if len(used) == len(needed) else decoded.permute(0, 2, 3, 1)[used].permute(0, 3, 1, 2)
        small = crop_resize(frames, box, self.cfg.image_size, full_hw)
        rank = {k: j for j, k in enumerate(used)}
        order = [rank[pos[draw[r]]] for r in self.roles]
        if order == list(range(small.shape[0])):
            return small
        # reordered on the channels-last storage, where a frame is one block (indexing the [F, 3, S, S] view
        # gathers pixel by pixel, 15-30x slower at 224 px)
        return small.permute(0, 2, 3, 1).index_select(0, torch.tensor(order)).permute(0, 3, 1, 2)
