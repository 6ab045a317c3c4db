"""Sources -> encoded samples, frame by frame, in memory that does not grow with the video's length.

One job is one file or frame folder with every cut of it the inputs asked for (a manifest may list many
clips of one video): the file is opened once, cuts close together are decoded in one pass and cuts far
apart are reached by seeking (`VideoReader`). Each decoded frame goes through cut -> fps/every
subsampling -> resize -> JPEG, and the JPEG bytes are appended to a spool file in the output's staging
folder; frames that subsampling drops are never converted to RGB. A job holds at most the decoder's own
buffers, one RGB frame at source size, its resized copy and one JPEG, whatever the video's length. Long
cuts can be split into clip samples (`clip_frames` / `clip_seconds`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reprl.data.shards import EncodedVideo, ShardOptions, Skipped
from reprl.data.sources import VideoSource
from reprl.data.video import FrameInfo, cut_range

report: Callable[[int], Any] | None = None  # progress sink: source frames decoded (set per process)


def set_progress(sink: Callable[[int], Any] | None) -> None:
    """Where this process reports decoded-frame counts (a tqdm update or a queue's put); None for nowhere."""
    global report
    report = sink


class FrameSpool:
    """JPEG frames appended to a file instead of held in memory; iterating reads them back one at a time.
    Picklable (path and sizes), so worker processes hand finished spools to the writing process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.sizes: list[int] = []
        self._f: Any = open(self.path, "wb")  # noqa: SIM115

    def append(self, data: bytes) -> None:
        self._f.write(data)
        self.sizes.append(len(data))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    @property
    def nbytes(self) -> int:
        return sum(self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            for n in self.sizes:
                yield f.read(n)

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def __getstate__(self) -> dict[str, Any]:
        self.close()
        return {"path": self.path, "sizes": self.sizes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.sizes, self._f = state["path"], state["sizes"], None


class Subsampler:
    """Frame-by-frame fps/every subsampling: with r the index from the cut's start, fed in increasing order,
    keep r when int(r * fps / source_fps) moves on (at most `fps` frames per second, the first frame always),
    then every `every`-th of those."""

    def __init__(self, source_fps: float | None, fps: float | None, every: int) -> None:
        self.ratio = fps / source_fps if fps and source_fps and fps < source_fps else None
        self.every = max(1, every)
        self.passed = 0

    def keep(self, r: int) -> bool:
        if self.ratio is not None and r > 0 and int(r * self.ratio) == int((r - 1) * self.ratio):
            return False
        self.passed += 1
        return (self.passed - 1) % self.every == 0


@dataclass
class _Clip:
    start: int  # first source frame index of the clip
    spool: FrameSpool | None = None  # created with the first kept frame
    seen: int = 0  # source frames inside the clip
    shape: tuple[int, int] = (0, 0)  # (width, height) of the written frames
    rows: list[int] = field(default_factory=list)  # kept frames, from the cut's start (only with arrays)

    @property
    def frames(self) -> int:
        return len(self.spool) if self.spool is not None else 0


class CutSink:
    """One cut of a source: subsamples the frames it is fed, spools their JPEGs and rolls clip samples."""

    def __init__(self, src: VideoSource, info: FrameInfo, opts: ShardOptions, spool: Callable[[], Path]) -> None:
        self.src, self.info, self.opts, self._spool_path = src, info, opts, spool
        self.arrays: dict[str, np.ndarray] = src.arrays_from.load() if src.arrays_from is not None else {}
        self.start, self.end = cut_range(src, info.fps)
        self.sub = Subsampler(info.fps, opts.fps, opts.every)
        self.clip_len = round(opts.clip_seconds * info.fps) if opts.clip_seconds and info.fps else None
        self.seen = 0
        self.last = -1
        self.clip: _Clip | None = None
        self.done: list[EncodedVideo | Skipped] = []

    def covers(self, idx: int) -> bool:
        return self.start <= idx and (self.end is None or idx < self.end)

    def wants(self, idx: int) -> bool:
        """Count source frame `idx` (in order) and say whether it is kept; closes a clip at its boundary."""
        self.seen += 1
        self.last = idx
        keep = self.sub.keep(idx - self.start)
        c = self.clip
        if c is not None and (self._crossed(c, idx) or (keep and self.opts.clip_frames
                                                         and c.frames >= self.opts.clip_frames)):
            self._close(idx)
        if self.clip is None:
            self.clip = _Clip(start=idx)
        self.clip.seen += 1
        return keep

    def _crossed(self, c: _Clip, idx: int) -> bool:
        """Whether `idx` lies past the clip_seconds window that clip `c` started in."""
        n = self.clip_len or 0
        return n > 0 and (idx - self.start) // n != (c.start - self.start) // n

    def add(self, idx: int, jpeg: bytes, shape: tuple[int, int]) -> None:
        assert self.clip is not None
        if self.clip.spool is None:
            self.clip.spool, self.clip.shape = FrameSpool(self._spool_path()), shape
        self.clip.spool.append(jpeg)
        if self.arrays:
            self.clip.rows.append(idx - self.start)

    def _close(self, end: int) -> None:
        c, self.clip = self.clip, None
        assert c is not None
        n, part = c.frames, len(self.done)
        if n < self.opts.min_frames:
            if c.spool is not None:
                c.spool.delete()
            what = f"clip {part} (frames {c.start}-{end})" if self.splits else "the cut"
            self.done.append(Skipped(self.src.path, "too short", f"{what}: {n} frames after subsampling; "
                                     f"at least {self.opts.min_frames} needed"))
            return
        assert c.spool is not None
        c.spool.close()
        self.done.append(EncodedVideo(frames=c.spool, meta=self._meta(c, end, part), caption=self.src.caption,
                                      arrays=self._arrays(c.rows)))

    def _arrays(self, rows: list[int]) -> dict[str, np.ndarray]:
        """The per-frame arrays at a clip's kept frames; `actions` lose the last row (T frames, T-1 actions)."""
        out = {}
        for name, arr in self.arrays.items():
            picked = arr[[r for r in rows if r < len(arr)]]
            out[name] = picked[:-1] if name == "actions" else picked
        return out

    @property
    def splits(self) -> bool:
        return bool(self.opts.clip_frames or self.opts.clip_seconds)

    def _meta(self, c: _Clip, end: int, part: int) -> dict[str, Any]:
        info, fps = self.info, self.info.fps
        meta: dict[str, Any] = {
            "source": self.src.path, "num_frames": c.frames, "fps": fps * c.frames / c.seen if fps else None,
            "source_fps": fps,
            "width": c.shape[0], "height": c.shape[1], "source_width": info.width, "source_height": info.height,
            "source_frames": c.seen,
        }
        if self.splits:
            meta.update(clip=part, start_frame=c.start, end_frame=end)
            if fps:
                meta.update(start_sec=round(c.start / fps, 6), end_sec=round(end / fps, 6))
        else:
            meta.update({k: getattr(self.src, k) for k in ("start_frame", "end_frame", "start_sec", "end_sec")
                         if getattr(self.src, k) is not None})
        return {**meta, **self.src.meta}

    def finish(self) -> tuple[list[EncodedVideo | Skipped], str | None]:
        """The samples of this cut, and a warning when a manifest's frame count disagrees with the video."""
        if self.clip is not None:
            self._close(self.last + 1)
        if self.seen == 0:
            self.done.append(Skipped(self.src.path, "zero frames",
                                     "no frames decoded (empty video or cut outside the video)"))
        warn = None
        s = self.src
        rows = {len(a) for a in self.arrays.values()}
        if rows and rows != {self.seen}:
            warn = f"{s.origin or s.path}: {sorted(rows)} rows of per-frame data but {self.seen} video frames"
        if s.expected_frames is not None and s.start_frame is None and s.start_sec is None \
                and s.expected_frames != self.seen:
            warn = (f"{s.origin or s.path}: the manifest says {s.expected_frames} frames but {self.seen} were "
                    f"decoded from {s.path}")
        return self.done, warn

    def abort(self) -> None:
        if self.clip is not None and self.clip.spool is not None:
            self.clip.spool.delete()
        for item in self.done:
            if isinstance(item, EncodedVideo) and isinstance(item.frames, FrameSpool):
                item.frames.delete()
