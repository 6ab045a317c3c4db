"""Read reprl shards: expand URLs, iterate samples tolerantly, decode only the frames asked for.

Used by the training stream, validation, `reprl embed` and evaluation. Any URL webdataset can open works:
local paths, brace patterns (`shards/shard-{000000..000009}.tar`), `pipe:` commands, http(s) and object
stores through `pipe:` (e.g. `pipe:aws s3 cp s3://bucket/shard-000000.tar -`). A shard folder with an
index.json expands to its shards.

Local shards are read by the mmap tar parser below (through the frame index when the shard has one),
webdataset's reader serves pipes and URLs: on the same local shards the parser takes 1.3-1.4 ms per video
walking the headers and 0.07-0.09 ms through the index, against webdataset's 8.4-9.4 ms (`reprl bench data`,
docs/benchmarks.md). Frames are decoded by libjpeg-turbo through simplejpeg, at
reduced scale in the DCT domain when a crop needs fewer pixels.
"""

from __future__ import annotations

import io
import json
import logging
import mmap
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprl.data.frameindex import STATS, iter_indexed, load_index
from reprl.errors import ReprlError

log = logging.getLogger("reprl.data")


def spec_parts(spec: str | os.PathLike[str]) -> list[str]:
    """The pieces of a `::`-joined data spec ('a::b' -> ['a', 'b']), stripped, empty pieces dropped."""
    return [p.strip() for p in str(spec).split("::") if p.strip()]


def expand_urls(spec: str | Iterable[str]) -> list[str]:
    """Shard URLs from a folder with index.json, a brace pattern, a glob, a `::`-joined list, or a list of
    these."""
    import braceexpand

    if not isinstance(spec, str):
        return [u for item in spec for u in expand_urls(item)]
    urls: list[str] = []
    for part in spec_parts(spec):
        if os.path.isdir(part):
            from reprl.data.shards import shard_urls

            urls.extend(shard_urls(part))
        else:
            for url in braceexpand.braceexpand(part):
                urls.extend(_glob_shards(url))
    if not urls:
        raise ReprlError(f"no shards in {spec!r}: give a shard folder, a .tar path, or a brace pattern")
    from reprl.data.sources import VIDEO_EXTS

    for u in urls:
        if not u.startswith(("pipe:", "http://", "https://", "gs://", "s3://")) and not os.path.exists(u):
            raise ReprlError(f"shard not found: {u}")
        if os.path.splitext(u)[1].lower() in VIDEO_EXTS or u.endswith(".json"):
            raise ReprlError(f"{u} is not a shard: give a shard folder or .tar files (reprl shards turns videos into "
                             "shards; reprl embed also reads a video directly)")
    return urls


def _glob_shards(url: str) -> list[str]:
    """A local shell-style glob ('shards/*.tar') expanded in natural order; any other url as is."""
    import glob

    from reprl.data.sources import natural_key

    if url.startswith(("pipe:", "http://", "https://", "gs://", "s3://")) or not any(c in url for c in "*?["):
        return [url]
    found = sorted((f for f in glob.glob(url) if not f.endswith((".idx.json", "/index.json")) or f == url),
                   key=natural_key)  # 'shards/*' matches the index files beside the tars too
    if not found:
        raise ReprlError(f"no shards match {url!r}; shard patterns are globs ('shards/*.tar') or braces "
                         "('shards/shard-{000000..000009}.tar')")
    return found


class SkipCounter:
    """Counts skipped items by reason; warns for the first few of each reason, then at powers of ten."""

    def __init__(self, what: str = "samples") -> None:
        self.what = what
        self.counts: Counter[str] = Counter()

    def note(self, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        n = self.counts[reason]
        if n <= 3 or (n >= 10 and str(n).strip("0") == "1"):
            log.warning("skipped %s (%s, %d so far): %s", self.what, reason, n, detail)

    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class ShardVideo:
    """One video sample from a shard, frames still JPEG-encoded."""

    key: str
    frames: Sequence[bytes | memoryview]
    meta: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    arrays: dict[str, bytes] = field(default_factory=dict)
    url: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    def decode(self, indices: Iterable[int] | None = None, eighths: int = 8,
               channels_last: bool = False) -> torch.Tensor:
        """Decode frames (all, or `indices` in the order given) -> uint8 [N, 3, H, W]; eighths < 8 decodes at
        that many eighths of the stored size in the DCT domain (see decode_frames)."""
        idx = list(range(len(self.frames))) if indices is None else list(indices)
        jpegs = [self.frames[i] for i in idx]
        STATS.data_bytes += sum(len(b) for b in jpegs)
        return decode_frames(jpegs, eighths, channels_last)

    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the stored frames, read from the first frame's JPEG header."""
        return jpeg_size(self.frames[0])

    def array(self, name: str) -> np.ndarray:
        """A per-step array stored beside the frames (actions, proprio, success, ...)."""
        if name not in self.arrays:
            raise KeyError(f"video {self.key} has no '{name}' array (has: {', '.join(sorted(self.arrays)) or 'none'})")
        return np.load(io.BytesIO(self.arrays[name]), allow_pickle=False)


def jpeg_size(jpeg: bytes | memoryview) -> tuple[int, int]:
    """(height, width) from a JPEG header. Raises ValueError for an undecodable header."""
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    except ValueError as e:
        raise ValueError(f"undecodable JPEG: {e}") from None
    return height, width


def scaled_min_size(size: tuple[int, int], eighths: int) -> tuple[int, int]:
    """(min_height, min_width) that make simplejpeg decode a JPEG of `size` (height, width, from jpeg_size)
    at eighths/8 of its size; (0, 0) = full."""
    if eighths >= 8:
        return 0, 0
    height, width = size
    return -(-height * eighths // 8), -(-width * eighths // 8)


def decode_frames(jpegs: Sequence[bytes | memoryview], eighths: int = 8, channels_last: bool = False) -> torch.Tensor:
    """JPEG bytes -> uint8 [N, 3, H, W] through libjpeg-turbo (simplejpeg: the same pixels as torchvision's
    decoder, with less overhead per frame). eighths < 8 decodes at ceil(eighths / 8 x size) in the DCT
    domain (libjpeg's scaled decoding): the inverse DCT and colour conversion then run at the smaller size.
    channels_last keeps the decoder's pixel-interleaved layout (no transposing copy); else the result is
    contiguous. Raises ValueError for an undecodable frame or frames of different sizes."""
    import simplejpeg

    if not jpegs:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    size = jpeg_size(jpegs[0])
    min_h, min_w = scaled_min_size(size, eighths)
    try:
        first = simplejpeg.decode_jpeg(jpegs[0], colorspace="RGB", min_height=min_h, min_width=min_w)
    except ValueError as e:
        raise ValueError(f"undecodable JPEG: {e}") from None
    pixels = np.empty((len(jpegs), *first.shape), dtype=np.uint8)
    pixels[0] = first
    for i in range(1, len(jpegs)):  # each frame decoded straight into its place (no stacking copy)
        if jpeg_size(jpegs[i]) != size:
            raise ValueError(f"frames of different sizes in one video: {size} and {jpeg_size(jpegs[i])}")
        try:
            simplejpeg.decode_jpeg(jpegs[i], colorspace="RGB", min_height=min_h, min_width=min_w, buffer=pixels[i])
        except ValueError as e:
            raise ValueError(f"undecodable JPEG: {e}") from None
    out = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    return out if channels_last else out.contiguous()


def parse_sample(raw: dict[str, Any]) -> ShardVideo:
    """A raw sample (bytes-like per extension) -> ShardVideo. Raises ValueError on a malformed sample."""
    if "__frames__" in raw:  # from a frame index: already in order, sliced lazily
        frames = raw["__frames__"]
    else:
        frames = [raw[k] for k in sorted(k for k in raw if k.endswith(".jpg") or k == "jpg")]
    STATS.data_bytes += sum(len(raw[k]) for k in ("json", "txt") if raw.get(k) is not None)
    meta: dict[str, Any] = {}
    if raw.get("json") is not None and len(raw["json"]):
        try:
            meta = json.loads(bytes(raw["json"]))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"bad json member: {e}") from None
    text = bytes(raw["txt"]).decode("utf-8", errors="replace").strip() if raw.get("txt") is not None else None
    arrays = {k[: -len(".npy")]: v for k, v in raw.items() if k.endswith(".npy")}
    return ShardVideo(key=raw.get("__key__", ""), frames=frames, meta=meta, text=text or None,
                      arrays=arrays, url=raw.get("__url__", ""))


_ZERO_BLOCK = bytes(512)


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _split_key(name: str) -> tuple[str, str]:
    """'dir/abc.000001.jpg' -> ('dir/abc', '000001.jpg'), as webdataset groups members."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:])


def iter_local_tar(path: str, use_index: bool = True) -> Iterator[dict[str, Any]]:
    """Samples of a local tar via mmap: member data are zero-copy memoryviews, so frames that are never
    decoded are never read. With a matching frame index (see reprl.data.frameindex) member positions come
    from it; otherwise headers are parsed one by one. Raises ValueError on corruption."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mm)
    samples = load_index(path, size) if use_index else None
    indexed = iter_indexed(path, view, samples) if samples else None
    if indexed is not None:
        yield from indexed
        return
    yield from _walk_tar(path, mm, view, size)


def _walk_tar(path: str, mm: mmap.mmap, view: memoryview, size: int) -> Iterator[dict[str, Any]]:
    """Samples of a tar by parsing every header."""
    pos, long_name = 0, None
    sample: dict[str, Any] = {}
    while True:
        if pos + 512 > size:  # a whole tar ends with zero blocks: this one was cut (at a block boundary)
            raise ValueError(f"truncated tar {path}: it ends at byte {size} without the end-of-archive blocks (an "
                             "interrupted copy or download?); the samples after that point are missing")
        hdr = mm[pos:pos + 512]
        STATS.header_bytes += 512
        if hdr == _ZERO_BLOCK:
            break
        stored = _octal(hdr[148:156])
        if stored != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            raise ValueError(f"corrupt tar header at byte {pos} of {path}")
        length, kind = _octal(hdr[124:136]), hdr[156:157]
        start = pos + 512
        if start + length > size:
            raise ValueError(f"truncated tar {path}: member at byte {pos} runs past the end")
        pos = start + (length + 511) // 512 * 512
        if kind == b"L":
            long_name = bytes(view[start:start + length]).rstrip(b"\0").decode()
            continue
        if kind in (b"x", b"g"):
            for rec in bytes(view[start:start + length]).decode("utf-8", "replace").split("\n"):
                if " path=" in rec:
                    long_name = rec.split(" path=", 1)[1]
            continue
        if kind not in (b"0", b"\0", b"7"):
            continue
        name = long_name or hdr[:100].split(b"\0", 1)[0].decode()
        prefix = hdr[345:500].split(b"\0", 1)[0]
        if not long_name and hdr[257:262] == b"ustar" and prefix:
            name = prefix.decode() + "/" + name
        long_name = None
        key, ext = _split_key(name)
        if sample and sample["__key__"] != key:
            yield sample
            sample = {}
        if not sample:
            sample = {"__key__": key, "__url__": path}
        sample[ext] = view[start:start + length]
    if sample:
        yield sample


def listed_videos(url: str) -> int | None:
    """How many videos the index.json beside a local shard lists for it (None: no index, or not listed)."""
    from reprl.data.shards import read_index

    try:
        return next(int(s["videos"]) for s in read_index(Path(url).parent)["shards"] if s["name"] == Path(url).name)
    except (ReprlError, ValueError, KeyError, TypeError, StopIteration):
        return None


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:") and os.path.isfile(url)


def iter_raw_samples(url: str, skips: SkipCounter, use_index: bool = True) -> Iterator[dict[str, Any]]:
    """Raw samples of one shard: mmap for local files (with the frame index when there is a valid one),
    webdataset's streaming reader for pipes and URLs."""
    if _is_local(url):
        read = 0
        try:
            for raw in iter_local_tar(url, use_index):
                read += 1
                yield raw
        except (ValueError, OSError, UnicodeDecodeError) as e:
            listed = listed_videos(url)
            of = f" of the {listed} that index.json lists" if listed is not None else ""
            skips.note("corrupt shard data", f"{url}: {e} ({read} video(s) read{of}; copy the shard again)")
        return
    from webdataset.tariterators import tarfile_samples

    def handler(exn: Exception) -> bool:
        skips.note("corrupt shard data", f"{url}: {exn!r}")
        return True

    yield from tarfile_samples(iter([{"url": url}]), handler=handler)


def iter_videos(urls: Iterable[str], skips: SkipCounter | None = None, use_index: bool = True) -> Iterator[ShardVideo]:
    """Every video of the given shards in order. Corrupt tars/members are counted in `skips` and skipped.
    `use_index=False` ignores frame indexes (for comparisons)."""
    skips = skips if skips is not None else SkipCounter("shard members")
    for url in urls:
        for raw in iter_raw_samples(url, skips, use_index):
            try:
                video = parse_sample(raw)
            except ValueError as e:
                skips.note("malformed sample", f"{url} {raw.get('__key__')}: {e}")
                continue
            if not video.frames:
                skips.note("no frames", f"{url} {video.key}")
                continue
            yield video
