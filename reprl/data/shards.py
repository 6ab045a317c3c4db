"""Write videos as WebDataset tar shards: one sample per video (or clip), frames as JPEG members in order.

Sample layout (readable by plain `webdataset`):

    {key}.json              metadata: num_frames, fps, size, source, task/episode fields, ...
    {key}.txt               caption, when there is one
    {key}.000000.jpg ...    frames in order
    {key}.{name}.npy        per-step arrays (actions, proprio, success, ...) when the source has them

Each shard gets a sidecar frame index (`shard-000000.idx.json`, see reprl.data.frameindex) with the offset
and size of every member, so readers can fetch sampled frames without walking the tar.

Writing is atomic at two levels: each shard is written as `*.tar.partial` and renamed when complete, and the
whole output is built in a hidden staging folder that replaces the output folder only when `index.json` is
written, so an interrupted run never leaves shards that look whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import reprl
from reprl.data.frameindex import SUFFIX as INDEX_SUFFIX
from reprl.data.frameindex import IndexBuilder, index_path
from reprl.data.sources import VIDEO_EXTS, discover
from reprl.data.video import resize_shorter  # noqa: F401 - part of this module's interface
from reprl.errors import ReprlError
from reprl.options import ShardOptions
from reprl.utils.files import StagingDir, check_output, read_json_object, write_json

log = logging.getLogger("reprl.data")
INDEX_NAME = "index.json"
FORMAT = "reprl-shards/1"


@dataclass
class EncodedVideo:
    """A video ready to be written: JPEG bytes per frame (a list, or a spool file read back one frame at a
    time), metadata, optional caption and arrays."""

    frames: Sequence[bytes] | Any
    meta: dict[str, Any]
    caption: str | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Skipped:
    source: str
    reason: str  # a short category
    detail: str  # what exactly, for the report


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def sanitize_key(text: str, index: int) -> str:
    """A WebDataset key: no dots (they separate key and extension), no slashes, unique by index."""
    base = text.rsplit(".", 1)[0] if Path(text).suffix.lower() in VIDEO_EXTS else text
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", base)[-48:].strip("_")
    return f"{index:07d}_{stem}" if stem else f"{index:07d}"


class ShardWriter:
    """Rolls tar shards into a staging folder; `finish()` writes index.json and swaps it into place."""

    def __init__(self, out_dir: str | Path, opts: ShardOptions, prefix: str = "shard",
                 inputs: Iterable[str | Path] = (), command: str = "shards") -> None:
        self.out = Path(out_dir)
        self.opts = opts
        self.prefix = prefix
        # `command`: shards or render (render's index.json records how it rendered): each replaces only its own
        self._stage = StagingDir(self.out, opts.overwrite, command, inputs, opts.force_overwrite,
                                 own=("*.tar", "*.tar.partial", f"*{INDEX_SUFFIX}", INDEX_NAME),
                                 force_flag="--force-overwrite" if command == "shards" else None)
        self.staging = self._stage.dir
        self.shards: list[dict[str, Any]] = []
        self.videos = self.frames = self.captions = 0
        self.skipped: Counter[str] = Counter()
        self.skip_examples: dict[str, list[str]] = defaultdict(list)
        self.warnings: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._cur: dict[str, Any] = {}
        self._members = IndexBuilder()
        self._mtime = int(time.time())

    # -- shards -----------------------------------------------------------------------------------
    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._cur = {"name": name, "videos": 0, "frames": 0, "bytes": 0, "index": index_path(name)}
        self._members = IndexBuilder()
        self._digest = hashlib.sha256()
        self._tar = tarfile.open(self.staging / (name + ".partial"), "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115

    def _close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self._cur["sha256"] = self._digest.hexdigest()
        name = self._cur["name"]
        partial = self.staging / (name + ".partial")
        (self.staging / self._cur["index"]).write_text(self._members.dump(partial.stat().st_size))
        os.replace(partial, self.staging / name)
        self.shards.append(self._cur)
        self._tar = None

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), self._mtime, 0o444
        assert self._tar is not None
        self._digest.update(b"%s\0%d\0" % (name.encode(), len(data)))
        self._digest.update(data)
        self._tar.addfile(info, io.BytesIO(data))
        self._cur["bytes"] += len(data) + 512
        key, ext = name.split(".", 1)
        self._members.add(key, ext, self._tar.offset - (len(data) + 511) // 512 * 512, len(data))

    def add(self, video: EncodedVideo) -> str:
        """Write one video; returns its key."""
        size = getattr(video.frames, "nbytes", None) or sum(len(f) for f in video.frames)
        full = self._cur.get("videos", 0) >= self.opts.max_videos_per_shard or (
            self._cur.get("videos", 0) > 0 and self._cur["bytes"] + size + 4096 > self.opts.max_shard_mb * 2**20
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
        count = 0
        for count, jpg in enumerate(video.frames, 1):
            self._member(f"{key}.{count - 1:06d}.jpg", jpg)
        if hasattr(video.frames, "delete"):  # a spool file: written, no longer needed
            video.frames.delete()
        for name, arr in video.arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(arr), allow_pickle=False)
            self._member(f"{key}.{name}.npy", buf.getvalue())
        self._cur["videos"] += 1
        self._cur["frames"] += count
        self.videos += 1
        self.frames += count
        self.captions += bool(video.caption)
        return key

    def skip(self, item: Skipped) -> None:
        if self.opts.strict:
            raise ReprlError(f"{item.source}: {item.reason}: {item.detail} (--strict stops at the first bad video)")
        self.skipped[item.reason] += 1
        if len(self.skip_examples[item.reason]) < 5:
            self.skip_examples[item.reason].append(f"{item.source}: {item.detail}")

    def warn(self, message: str) -> None:
        """A problem with the inputs that does not stop the run (an error under --strict)."""
        if self.opts.strict:
            raise ReprlError(f"{message} (--strict stops at the first problem)")
        self.warnings.append(message)
        log.warning("%s", message)

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
            "content_sha256": content_digest(self.shards),
            "videos": self.videos,
            "frames": self.frames,
            "captions": self.captions,
            "skipped": dict(self.skipped),
            "skip_examples": dict(self.skip_examples),
            "warnings": self.warnings[:100],
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
        lines = [f"wrote {self.videos} videos ({self.frames} frames) in {len(self.shards)} shards"
                 + (f" (content sha256 {content_digest(self.shards)[:12]})" if self.shards else "")]
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
    from reprl.data.jobs import encode_all

    opts = check_options(opts or ShardOptions())
    inputs = list(inputs)
    check_output(out_dir, "shards", inputs, opts.overwrite, opts.force_overwrite)
    notes: list[str] = []
    sources = discover(inputs, warn=notes.append, cameras=opts.cameras)
    # the videos a manifest lists may lie anywhere, --out included: the writer checks them too, so that replacing
    # --out never deletes a video it reads
    with ShardWriter(out_dir, opts, inputs=[*inputs, *(s.path for s in sources)]) as writer:
        for note in notes:
            writer.warn(note)
        start, decoded, busy = time.perf_counter(), 0, 0.0
        for result in encode_all(sources, opts, writer.staging, progress):
            for warning in result.warnings:
                writer.warn(warning)
            for item in result.items:
                writer.add(item) if isinstance(item, EncodedVideo) else writer.skip(item)
            decoded, busy = decoded + result.decoded, busy + result.seconds
        wall = time.perf_counter() - start
        ingest = {"source_frames_decoded": decoded, "seconds": round(wall, 3), "workers": max(1, opts.workers),
                  "frames_per_s_per_worker": round(decoded / busy, 1) if busy else None}
        index = writer.finish({"inputs": [str(i) for i in inputs], "ingest": ingest})
        print(writer.report())
        print(f"decoded {decoded} source frames in {wall:.1f} s: {decoded / max(wall, 1e-9):.0f} frames/s overall, "
              f"{ingest['frames_per_s_per_worker'] or 0:.0f} frames/s per worker ({ingest['workers']} workers)")
    return index


def check_options(opts: ShardOptions) -> ShardOptions:
    """Reject option values that cannot work, before anything is decoded."""
    if opts.min_frames < 1:
        raise ReprlError("--min-frames must be at least 1")
    if opts.clip_frames is not None and opts.clip_seconds is not None:
        raise ReprlError("give --clip-frames or --clip-seconds, not both")
    if opts.clip_frames is not None and opts.clip_frames < opts.min_frames:
        raise ReprlError(f"--clip-frames must be at least --min-frames ({opts.min_frames})")
    if opts.clip_seconds is not None and opts.clip_seconds <= 0:
        raise ReprlError("--clip-seconds must be positive")
    if opts.every < 1 or (opts.fps is not None and opts.fps <= 0):
        raise ReprlError("--every must be at least 1 and --fps positive")
    return opts


def content_digest(shards: Sequence[dict[str, Any]]) -> str:
    """One sha256 over the shards' own digests (each over its members' names and bytes, in order). Unlike the
    tar files' bytes it ignores their timestamps, so two renders of the same corpus have the same digest."""
    return hashlib.sha256("".join(f"{s['name']}:{s['sha256']}\n" for s in shards).encode()).hexdigest()


def local_index(path: str | Path) -> dict[str, Any] | None:
    """The index.json of a local shard folder, or None for a URL, a glob or a folder without one."""
    return read_index(path) if (Path(path) / INDEX_NAME).is_file() else None


def corpus_digest(path: str | Path) -> str | None:
    """The content digest of a local shard folder, or None (a URL, a glob, or a folder written before digests).
    A `::`-joined list of folders gives their digests joined the same way (None unless every part has one)."""
    from reprl.data.reader import spec_parts

    parts = spec_parts(path)
    if len(parts) > 1:
        digests = [corpus_digest(p) for p in parts]
        return "::".join(d for d in digests if d) if all(digests) else None
    digest = (local_index(path) or {}).get("content_sha256")
    return digest if isinstance(digest, str) else None


def read_index(path: str | Path) -> dict[str, Any]:
    """The index.json of a shard folder (or the file itself)."""
    p = Path(path)
    p = p / INDEX_NAME if p.is_dir() else p
    if not p.exists() or p.name != INDEX_NAME:
        raise ReprlError(f"no {INDEX_NAME} at {p}: give a reprl shard folder (reprl shards or reprl render writes one)")
    return read_json_object(p, "a shard folder's index.json (reprl shards or reprl render writes one)")


def shard_urls(path: str | Path) -> list[str]:
    """The shard files of a shard folder, from its index."""
    p = Path(path)
    index = read_index(p)
    if not isinstance(index.get("shards"), list):
        raise ReprlError(f"{p / INDEX_NAME} lists no shards: is it a reprl shard folder's index.json?")
    return [str(p / s["name"]) for s in index["shards"]]
