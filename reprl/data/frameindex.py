"""Per-shard frame index: where every member's bytes lie in the tar, so a reader fetches only the frames it
samples instead of walking every 512-byte header of a video.

`shard-000000.tar` gets a sidecar `shard-000000.idx.json`:

    {"format": "reprl-frame-index/1", "tar_bytes": <size of the tar>,
     "samples": [{"key": KEY, "members": {"json": [offset, size], "txt": [...], "actions.npy": [...]},
                  "frames": [offset0, size0, offset1, size1, ...]}, ...]}

Offsets are of the member data (after its header). The shard stays a plain tar: tools that do not know the
index ignore it. A reader trusts an index only when the tar's size matches and the headers in front of the
first and last samples' json members name those members; otherwise it falls back to walking the tar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

FORMAT = "reprl-frame-index/1"
SUFFIX = ".idx.json"


def index_path(tar_path: str) -> str:
    """The sidecar index of a shard: 'x/shard-000000.tar' -> 'x/shard-000000.idx.json'."""
    return (tar_path[:-4] if tar_path.endswith(".tar") else tar_path) + SUFFIX


class IndexBuilder:
    """Collects member positions while a shard is written (the writer calls `add` after each member)."""

    def __init__(self) -> None:
        self.samples: list[dict[str, Any]] = []

    def add(self, key: str, ext: str, offset: int, size: int) -> None:
        if not self.samples or self.samples[-1]["key"] != key:
            self.samples.append({"key": key, "members": {}, "frames": []})
        sample = self.samples[-1]
        if ext.endswith(".jpg") and ext[:-4].isdigit():
            sample["frames"] += [offset, size]
        else:
            sample["members"][ext] = [offset, size]

    def dump(self, tar_bytes: int) -> str:
        return json.dumps({"format": FORMAT, "tar_bytes": tar_bytes, "samples": self.samples},
                          separators=(",", ":"))


@dataclass
class ReadStats:
    """Bytes of shards a reader looked at in this process: tar headers walked, index files loaded and member
    data used (json, caption, decoded frames). `reprl bench data` reports them per training tuple."""

    header_bytes: int = 0
    index_bytes: int = 0
    data_bytes: int = 0

    @property
    def total(self) -> int:
        return self.header_bytes + self.index_bytes + self.data_bytes

    def reset(self) -> None:
        self.header_bytes = self.index_bytes = self.data_bytes = 0


STATS = ReadStats()


class MemberList(Sequence[memoryview]):
    """Frames of a sample as zero-copy slices of the shard's memory map, made only when asked for."""

    def __init__(self, view: memoryview, spans: list[int]) -> None:
        self._view, self._spans = view, spans

    def __len__(self) -> int:
        return len(self._spans) // 2

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        off, size = self._spans[2 * (i % len(self))], self._spans[2 * (i % len(self)) + 1]
        return self._view[off:off + size]


def load_index(tar_path: str, size: int) -> list[dict[str, Any]] | None:
    """The samples of a shard's sidecar index, or None when there is none or it does not match the tar."""
    path = index_path(tar_path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        index = json.loads(raw)
    except (OSError, ValueError):
        return None
    STATS.index_bytes += len(raw)
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("tar_bytes") != size:
        return None
    samples = index.get("samples")
    return samples if isinstance(samples, list) and samples else None


def _names_member(view: memoryview, offset: int, name: str) -> bool:
    """Whether the tar header just before `offset` names `name` (USTAR name field)."""
    if offset < 512:
        return False
    STATS.header_bytes += 512
    return bytes(view[offset - 512:offset - 412]).split(b"\0", 1)[0] == name.encode()


def iter_indexed(path: str, view: memoryview, samples: list[dict[str, Any]]) -> Iterator[dict[str, Any]] | None:
    """Raw samples (as the tar walk yields them, frames as a lazy MemberList) from a verified index; None
    when the index does not describe this tar."""
    try:
        for s in (samples[0], samples[-1]):
            off = s["members"]["json"][0]
            if not _names_member(view, off, f"{s['key']}.json"):
                return None
    except (KeyError, IndexError, TypeError):
        return None

    def gen() -> Iterator[dict[str, Any]]:
        for s in samples:
            raw: dict[str, Any] = {"__key__": s["key"], "__url__": path, "__frames__": MemberList(view, s["frames"])}
            for ext, (off, size) in s["members"].items():
                raw[ext] = view[off:off + size]
            yield raw
    return gen()
