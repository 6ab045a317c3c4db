"""What `reprl embed` reads: a video file, a folder of frames, an image glob, or shards (one video each).

Each source yields uint8 frame batches lazily, so long videos are never held decoded in memory at once.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprl.data.sources import IMAGE_EXTS, VIDEO_EXTS, list_frames, natural_key
from reprl.data.video import DecodeError, VideoReader, load_image
from reprl.errors import ReprlError


@dataclass
class FrameSource:
    """One video to embed. `batches(n)` yields lists of uint8 [b, 3, H, W] tensors (sizes may differ)."""

    name: str
    kind: str  # video | frames | images | shard
    fps: float | None = None
    count: int | None = None  # frames, when known up front
    caption: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _open: Any = None

    def batches(self, size: int) -> Iterator[torch.Tensor]:
        return self._open(size)


def spans(n: int, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) of consecutive batches of `size` over n items (the last may be shorter): how every source
    whose length is known splits its frames."""
    return ((i, min(i + size, n)) for i in range(0, n, size))


def array_batches(frames: Any) -> Any:
    """Batches of frames already in memory (an array or tensor [T, ...])."""
    def gen(size: int) -> Iterator[Any]:
        return (frames[lo:hi] for lo, hi in spans(len(frames), size))
    return gen


def _image_files_batches(files: list[Path]) -> Any:
    def gen(size: int) -> Iterator[torch.Tensor]:
        for lo, hi in spans(len(files), size):
            try:
                arrays = [load_image(f) for f in files[lo:hi]]
            except DecodeError as e:
                raise ReprlError(str(e)) from None
            shapes = {a.shape for a in arrays}
            if len(shapes) == 1:
                yield torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            else:  # mixed sizes: one tensor per image, the encoder resizes each
                for a in arrays:
                    yield torch.from_numpy(a).permute(2, 0, 1)[None]
    return gen


def _video_batches(path: str, start: int = 0, end: int | None = None) -> Any:
    """Batches of a video's frames [start, end), decoded by the shards' reader (seeks to a far start)."""
    def gen(size: int) -> Iterator[torch.Tensor]:
        try:
            with VideoReader(path) as reader:
                buf: list[np.ndarray] = []
                for _, get in reader.read(start, end):
                    buf.append(get())
                    if len(buf) == size:
                        yield torch.from_numpy(np.stack(buf)).permute(0, 3, 1, 2)
                        buf = []
                if buf:
                    yield torch.from_numpy(np.stack(buf)).permute(0, 3, 1, 2)
        except DecodeError as e:
            raise ReprlError(f"{path}: {e}") from None
    return gen


def _video_info(path: str) -> tuple[float | None, int | None]:
    try:
        with VideoReader(path) as reader:
            return reader.info.fps, reader.info.source_frames
    except DecodeError as e:
        raise ReprlError(f"{path}: {e}") from None


def shard_batches(video: Any) -> Any:
    """Batches of a shard video's frames, decoded as they are asked for."""
    def gen(size: int) -> Iterator[torch.Tensor]:
        for lo, hi in spans(len(video), size):
            try:
                yield video.decode(range(lo, hi), channels_last=True)  # as the resize and convolutions like it
            except ValueError as e:
                raise ReprlError(f"video {video.key}: {e}") from None
    return gen


def is_shards(spec: str) -> bool:
    p = Path(spec)
    return (p.is_dir() and (p / "index.json").exists()) or spec.endswith(".tar") or (
        ".tar" in spec and "{" in spec) or spec.startswith("pipe:")


def _folder_sources(folder: Path) -> Iterator[FrameSource]:
    """Each video file and frame sub-folder of `folder`, named by a file-system-safe key."""
    from reprl.data.shards import sanitize_key
    from reprl.data.sources import discover

    try:
        videos = discover([folder])  # up front, so a wrong folder fails before the encoder loads
    except ReprlError:
        raise ReprlError(f"{folder} holds no frames (jpg/png), no videos ({', '.join(sorted(VIDEO_EXTS))}) and no "
                         "index.json (not shards)") from None

    def gen() -> Iterator[FrameSource]:
        for i, v in enumerate(videos):
            name = sanitize_key(Path(v.path).name, i)
            if v.kind == "video":
                fps, count = _video_info(v.path)
                yield FrameSource(name=name, kind="video", fps=fps, count=count, _open=_video_batches(v.path))
            else:
                files = list_frames(Path(v.path))
                yield FrameSource(name=name, kind="frames", count=len(files), _open=_image_files_batches(files))
    return gen()


def open_sources(spec: str) -> tuple[str, Iterator[FrameSource]]:
    """('video' | 'frames' | 'images' | 'shards' | 'videos', lazily opened sources) for a user's input spec."""
    if is_shards(spec):
        from reprl.data.reader import expand_urls, iter_videos

        urls = expand_urls(spec)

        def shard_sources() -> Iterator[FrameSource]:
            for v in iter_videos(urls):
                yield FrameSource(name=v.key, kind="shard", fps=v.meta.get("fps"), count=len(v), caption=v.text,
                                  meta={k: v.meta[k] for k in ("task", "camera", "episode", "source") if k in v.meta},
                                  _open=shard_batches(v))
        return "shards", shard_sources()
    if any(ch in spec for ch in "*?[") and not os.path.exists(spec):
        files = sorted((Path(f) for f in glob.glob(spec) if Path(f).suffix.lower() in IMAGE_EXTS),
                       key=lambda p: natural_key(str(p)))
        if not files:
            raise ReprlError(f"no images (jpg/png/...) match {spec!r}")
        return "images", iter([FrameSource(name=spec, kind="images", count=len(files),
                                           _open=_image_files_batches(files))])
    p = Path(spec)
    if not p.exists():
        raise ReprlError(f"input not found: {spec}")
    if p.is_dir():
        files = list_frames(p)
        if not files:  # a folder of videos (files or frame sub-folders), as `reprl shards` takes: one result each
            return "videos", _folder_sources(p)
        return "frames", iter([FrameSource(name=p.name, kind="frames", count=len(files),
                                           _open=_image_files_batches(files))])
    if p.suffix.lower() in VIDEO_EXTS:
        fps, count = _video_info(str(p))
        return "video", iter([FrameSource(name=p.stem, kind="video", fps=fps, count=count,
                                          _open=_video_batches(str(p)))])
    raise ReprlError(f"unsupported input {spec}: give a video ({', '.join(sorted(VIDEO_EXTS))}), a folder of frames, "
                     "an image glob like 'frames/*.png', or shards")
