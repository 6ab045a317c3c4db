"""Write videos as WebDataset tar shards: one sample per video (or clip), frames as JPEG members in order.

Sample layout (readable by plain `webdataset`):

    {key}.json              metadata: num_frames, fps, size, source, task/episode fields, ...
    {key}.txt               caption, when there is one
    {key}.000000.jpg ...    frames in order
    {key}.{name}.npy        per-step arrays (actions, proprio, success, ...) when the source has them

Writing is atomic at two levels: each shard is written as `*.tar.partial` and renamed when complete, and the
whole output is built in a hidden staging folder that replaces the output folder only when `index.json` is
written, so an interrupted run never leaves shards that look whole.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import reprl
from reprl.data.sources import VIDEO_EXTS, VideoSource, discover
from reprl.data.video import DecodeError, iter_frames
from reprl.errors import ReprlError
from reprl.utils.files import StagingDir, check_output, write_json
from reprl.utils.parallel import ordered_map

INDEX_NAME = "index.json"
FORMAT = "reprl-shards/1"


@dataclass
class ShardOptions:
    """How videos become shards."""

    resize: int = 256  # shorter side in pixels; 0 keeps the original size
    fps: float | None = None  # subsample to at most this frame rate (needs the source fps)
    every: int = 1  # keep every N-th frame (applied after fps subsampling)
    quality: int = 90  # JPEG quality
    max_shard_mb: float = 256.0
    max_videos_per_shard: int = 1000
    workers: int = 1
    min_frames: int = 3  # shorter videos cannot be sampled by VIP and are skipped
    require_caption: bool = False
    strict: bool = False  # fail instead of skipping a bad video
    overwrite: bool = False
    force_overwrite: bool = False  # replace an --out that is not a previous output of reprl shards


@dataclass
class EncodedVideo:
    """A video ready to be written: JPEG bytes per frame, metadata, optional caption and arrays."""

    frames: list[bytes]
    meta: dict[str, Any]
    caption: str | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Skipped:
    source: str
    reason: str  # a short category
    detail: str  # what exactly, for the report


def resize_shorter(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is `size` (antialiased); 0 or equal size returns the frame as is."""
    h, w = frame.shape[:2]
    if size <= 0 or min(h, w) == size:
        return frame
    scale = size / min(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(new, Image.BILINEAR, reducing_gap=None))


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def subsample_indices(n: int, src_fps: float | None, fps: float | None, every: int) -> list[int]:
    """Indices kept by fps subsampling (at most `fps` frames per second) and then every-N-th."""
    keep = list(range(n))
    if fps and src_fps and fps < src_fps:
        ratio = fps / src_fps
        keep = [i for i in keep if i == 0 or int(i * ratio) != int((i - 1) * ratio)]
    return keep[:: max(1, every)]


def encode_source(src: VideoSource, opts: ShardOptions) -> EncodedVideo | Skipped:
    """Decode, cut, subsample, resize and JPEG-encode one source. Never raises for a bad video."""
    if opts.require_caption and not src.caption:
        return Skipped(src.path, "no caption", "captions are required (--require-caption) but none was given")
    try:
        info, frames = iter_frames(src)
        if opts.fps and not info.fps:
            return Skipped(src.path, "fps unknown", "--fps needs the source fps: add an fps column to the manifest")
        raw = list(frames)
    except DecodeError as e:
        return Skipped(src.path, "unreadable", str(e))
    if not raw:
        return Skipped(src.path, "zero frames", "no frames decoded (empty video or cut outside the video)")
    keep = subsample_indices(len(raw), info.fps, opts.fps, opts.every)
    if len(keep) < opts.min_frames:
        return Skipped(src.path, "too short",
                       f"{len(keep)} frames after subsampling; at least {opts.min_frames} needed")
    out_frames = [resize_shorter(raw[i], opts.resize) for i in keep]
    out_fps = info.fps * len(keep) / len(raw) if info.fps else None
    meta: dict[str, Any] = {
        "source": src.path,
        "num_frames": len(out_frames),
        "fps": out_fps,
        "source_fps": info.fps,
        "width": int(out_frames[0].shape[1]),
        "height": int(out_frames[0].shape[0]),
        "source_width": info.width,
        "source_height": info.height,
        "source_frames": len(raw),
    }
    if src.expected_frames is not None and src.expected_frames != len(raw) and src.start_frame is None:
        meta["manifest_frames"] = src.expected_frames
    for name in ("start_frame", "end_frame", "start_sec", "end_sec"):
        if getattr(src, name) is not None:
            meta[name] = getattr(src, name)
    meta.update(src.meta)
    encoded = [encode_jpeg(f, opts.quality) for f in out_frames]
    return EncodedVideo(frames=encoded, meta=meta, caption=src.caption)


def _encode_job(job: tuple[VideoSource, ShardOptions]) -> EncodedVideo | Skipped:
    return encode_source(*job)


def sanitize_key(text: str, index: int) -> str:
    """A WebDataset key: no dots (they separate key and extension), no slashes, unique by index."""
    base = text.rsplit(".", 1)[0] if Path(text).suffix.lower() in VIDEO_EXTS else text
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", base)[-48:].strip("_")
    return f"{index:07d}_{stem}" if stem else f"{index:07d}"


class ShardWriter:
    """Rolls tar shards into a staging folder; `finish()` writes index.json and swaps it into place."""

    def __init__(self, out_dir: str | Path, opts: ShardOptions, prefix: str = "shard",
                 inputs: Iterable[str | Path] = ()) -> None:
        self.out = Path(out_dir)
        self.opts = opts
        self.prefix = prefix
        self._stage = StagingDir(self.out, opts.overwrite, "shards", inputs, opts.force_overwrite)
        self.staging = self._stage.dir
        self.shards: list[dict[str, Any]] = []
        self.videos = self.frames = self.captions = 0
        self.skipped: Counter[str] = Counter()
        self.skip_examples: dict[str, list[str]] = defaultdict(list)
        self._tar: tarfile.TarFile | None = None
        self._cur: dict[str, Any] = {}
        self._mtime = int(time.time())

    # -- shards -----------------------------------------------------------------------------------
    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._cur = {"name": name, "videos": 0, "frames": 0, "bytes": 0}
        self._tar = tarfile.open(self.staging / (name + ".partial"), "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115

    def _close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        name = self._cur["name"]
        os.replace(self.staging / (name + ".partial"), self.staging / name)
        self.shards.append(self._cur)
        self._tar = None

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), self._mtime, 0o444
        assert self._tar is not None
        self._tar.addfile(info, io.BytesIO(data))
        self._cur["bytes"] += len(data) + 512

    def add(self, video: EncodedVideo) -> str:
        """Write one video; returns its key."""
        size = sum(len(f) for f in video.frames) + 4096
        full = self._cur.get("videos", 0) >= self.opts.max_videos_per_shard or (
            self._cur.get("videos", 0) > 0 and self._cur["bytes"] + size > self.opts.max_shard_mb * 2**20
        )
        if self._tar is not None and full:
            self._close()
        if self._tar is None:
            self._open()
        key = sanitize_key(str(video.meta.get("source", "")), self.videos)
        meta = {"key": key, **video.meta}
        if video.caption:
            meta["caption"] = video.caption
        self._member(f"{key}.json", json.dumps(meta).encode())
        if video.caption:
            self._member(f"{key}.txt", video.caption.encode())
        for i, jpg in enumerate(video.frames):
            self._member(f"{key}.{i:06d}.jpg", jpg)
        for name, arr in video.arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(arr), allow_pickle=False)
            self._member(f"{key}.{name}.npy", buf.getvalue())
        self._cur["videos"] += 1
        self._cur["frames"] += len(video.frames)
        self.videos += 1
        self.frames += len(video.frames)
        self.captions += bool(video.caption)
        return key

    def skip(self, item: Skipped) -> None:
        if self.opts.strict:
            raise ReprlError(f"{item.source}: {item.reason}: {item.detail} (--strict stops at the first bad video)")
        self.skipped[item.reason] += 1
        if len(self.skip_examples[item.reason]) < 5:
            self.skip_examples[item.reason].append(f"{item.source}: {item.detail}")

    # -- finishing --------------------------------------------------------------------------------
    def finish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close the last shard, write index.json, and move the result to the output folder."""
        self._close()
        if self.videos == 0:
            self.abort()
            raise ReprlError("no usable videos were written. " + self.report())
        index = {
            "format": FORMAT,
            "reprl_version": reprl.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shards": self.shards,
            "videos": self.videos,
            "frames": self.frames,
            "captions": self.captions,
            "skipped": dict(self.skipped),
            "skip_examples": dict(self.skip_examples),
            "options": asdict(self.opts),
            **(extra or {}),
        }
        write_json(self.staging / INDEX_NAME, index)
        self._stage.commit()
        return index

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        self._stage.abort()

    def report(self) -> str:
        lines = [f"wrote {self.videos} videos ({self.frames} frames) in {len(self.shards)} shards"]
        if self.skipped:
            lines.append(f"skipped {sum(self.skipped.values())} videos:")
            for reason, count in self.skipped.most_common():
                lines.append(f"  {count} x {reason}, e.g. {self.skip_examples[reason][0]}")
        return "\n".join(lines)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.abort()


def write_shards(inputs: Iterable[str | Path], out_dir: str | Path, opts: ShardOptions | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Turn frame folders / video files / manifests into shards under `out_dir`; returns the index."""
    from tqdm import tqdm

    opts = opts or ShardOptions()
    if opts.min_frames < 1:
        raise ReprlError("--min-frames must be at least 1")
    inputs = list(inputs)
    check_output(out_dir, "shards", inputs, opts.overwrite, opts.force_overwrite)
    sources = discover(inputs)
    with ShardWriter(out_dir, opts, inputs=inputs + [s.path for s in sources]) as writer:
        encoded = ordered_map(_encode_job, [(s, opts) for s in sources], opts.workers)
        for item in tqdm(encoded, total=len(sources), desc="shards", unit="video", disable=not progress):
            writer.add(item) if isinstance(item, EncodedVideo) else writer.skip(item)
        index = writer.finish({"inputs": [str(i) for i in inputs]})
        print(writer.report())
    return index


def read_index(path: str | Path) -> dict[str, Any]:
    """The index.json of a shard folder (or the file itself)."""
    p = Path(path)
    p = p / INDEX_NAME if p.is_dir() else p
    if not p.exists():
        raise ReprlError(f"no {INDEX_NAME} at {p}: is this a reprl shard folder?")
    return json.loads(p.read_text())


def shard_urls(path: str | Path) -> list[str]:
    """The shard files of a shard folder, from its index."""
    p = Path(path)
    index = read_index(p)
    return [str(p / s["name"]) for s in index["shards"]]
