"""Find the videos a user points at: frame folders, video files, or a manifest (CSV / JSONL).

Each input becomes a `VideoSource`: where the frames are, which part to keep, an optional caption and any
extra fields (task, episode, ...) that travel into the shard's metadata. Nothing is decoded here.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reprl.errors import ReprlError

VIDEO_EXTS = frozenset({".mp4", ".webm", ".avi", ".mov", ".mkv"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MANIFEST_EXTS = frozenset({".csv", ".jsonl", ".txt"})

# Column names understood in manifests, first match wins. The reference repos use path,len[,txt] (VIP/R3M)
# and directory,num_frames,text (LIV); EPIC-KITCHENS-style files use start_frame/stop_frame.
PATH_COLS = ("path", "directory", "video", "video_path", "file", "filepath")
LEN_COLS = ("len", "num_frames", "length", "n_frames")
TEXT_COLS = ("txt", "text", "caption", "narration", "language", "instruction")
START_FRAME_COLS = ("start_frame",)
END_FRAME_COLS = ("end_frame", "stop_frame")
START_SEC_COLS = ("start", "start_sec", "start_time")
END_SEC_COLS = ("end", "end_sec", "stop", "end_time")
KNOWN_COLS = (PATH_COLS + LEN_COLS + TEXT_COLS + START_FRAME_COLS + END_FRAME_COLS + START_SEC_COLS
              + END_SEC_COLS + ("fps",))


@dataclass
class VideoSource:
    """One video to write: a frame folder or a video file, optionally cut to a clip."""

    path: str
    kind: Literal["frames", "video"]
    caption: str | None = None
    fps: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None  # exclusive
    start_sec: float | None = None
    end_sec: float | None = None
    expected_frames: int | None = None  # a manifest's len / num_frames, checked against what is found
    origin: str | None = None  # 'manifest.csv:LINE' for a manifest row, for messages
    arrays_from: Any = None  # loads per-frame arrays (row r = frame r of the cut), e.g. lerobot.ParquetArrays
    meta: dict[str, Any] = field(default_factory=dict)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders 'frame2' before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    return sorted(files, key=lambda p: natural_key(p.name))


def _print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def discover(inputs: Iterable[str | Path], warn: Callable[[str], None] = _print_warning,
             cameras: str | None = None) -> list[VideoSource]:
    """Expand the user's inputs (folders, video files, manifests, list files, LeRobot datasets with the
    `cameras` named) into video sources; problems that do not stop the run (ragged manifest rows) go to
    `warn`, which may raise."""
    from reprl.data.lerobot import is_lerobot, lerobot_sources

    sources: list[VideoSource] = []
    inputs = list(inputs)
    if not inputs:
        raise ReprlError("no inputs given: pass a folder of frame folders, video files, or a manifest (.csv/.jsonl)")
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise ReprlError(f"input not found: {path}")
        if is_lerobot(path):
            sources.extend(lerobot_sources(path, cameras))
        elif path.is_dir():
            sources.extend(_discover_folder(path))
        elif path.suffix.lower() in VIDEO_EXTS:
            sources.append(VideoSource(path=str(path), kind="video"))
        elif path.suffix.lower() in MANIFEST_EXTS:
            sources.extend(read_manifest(path, warn))
        else:
            raise ReprlError(
                f"unsupported input {path}: expected a folder, a video ({', '.join(sorted(VIDEO_EXTS))}) "
                "or a manifest (.csv, .jsonl, or .txt with one path per line)"
            )
    return sources


def _discover_folder(folder: Path) -> list[VideoSource]:
    entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    subdirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTS]
    frame_dirs = [d for d in subdirs if list_frames(d)]
    if frame_dirs or videos:
        return [VideoSource(path=str(d), kind="frames") for d in frame_dirs] + [
            VideoSource(path=str(v), kind="video") for v in videos
        ]
    if list_frames(folder):  # the folder itself holds the frames of one video
        return [VideoSource(path=str(folder), kind="frames")]
    raise ReprlError(
        f"no videos found in {folder}: expected sub-folders of frames "
        f"({', '.join(sorted(IMAGE_EXTS))}) or video files ({', '.join(sorted(VIDEO_EXTS))})"
    )


def read_manifest(path: Path, warn: Callable[[str], None] = _print_warning) -> list[VideoSource]:
    """Read a CSV / JSONL manifest (or a .txt list of paths) into sources; relative paths are resolved
    against the manifest's folder first, then the working directory."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        rows = [{"path": line.strip()} for line in path.read_text().splitlines() if line.strip()]
    elif suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ReprlError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    else:
        rows = _read_csv(path, warn)
    if not rows:
        raise ReprlError(f"manifest {path} lists no videos")
    return [_row_to_source(row, path, n) for n, row in enumerate(rows, 2 if suffix == ".csv" else 1)]


def _read_csv(path: Path, warn: Callable[[str], None]) -> list[dict[str, Any]]:
    """CSV rows as dicts by header name; a row with more or fewer fields than the header is a warning
    (missing fields read as empty, extra fields are dropped)."""
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return []
    header = [h.strip() for h in lines[0]]
    rows = []
    for n, fields in enumerate(lines[1:], 2):
        if not any(v.strip() for v in fields):
            continue
        if len(fields) != len(header):
            warn(f"{path}:{n}: {len(fields)} fields but the header has {len(header)} ({','.join(header)}); "
                 "quote fields that contain commas")
        rows.append(dict(zip(header, fields + [""] * (len(header) - len(fields)))))
    return rows


def _first(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return value
    return None


def _number(value: Any, kind: type, where: str, column: str) -> Any:
    if value is None:
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ReprlError(f"{where}: column '{column}' should be a number, got {value!r}") from None


def _row_to_source(row: dict[str, Any], manifest: Path, line: int) -> VideoSource:
    where = f"{manifest}:{line}"
    raw = _first(row, PATH_COLS)
    if raw is None:
        raise ReprlError(f"{where}: no path column; expected one of {', '.join(PATH_COLS)} (columns: {list(row)})")
    path = Path(str(raw))
    if not path.is_absolute():
        beside = manifest.parent / path
        path = beside if beside.exists() else Path.cwd() / path
    if not path.exists():
        raise ReprlError(f"{where}: {raw} does not exist (looked in {manifest.parent} and {Path.cwd()})")
    if path.is_dir():
        kind: Literal["frames", "video"] = "frames"
    elif path.suffix.lower() in VIDEO_EXTS:
        kind = "video"
    else:
        raise ReprlError(f"{where}: {raw} is neither a frame folder nor a video file")
    caption = _first(row, TEXT_COLS)
    meta = {k: v for k, v in row.items() if k and k not in KNOWN_COLS and v not in (None, "")}
    return VideoSource(
        path=str(path),
        kind=kind,
        caption=str(caption).strip() if caption is not None else None,
        fps=_number(_first(row, ("fps",)), float, where, "fps"),
        start_frame=_number(_first(row, START_FRAME_COLS), int, where, "start_frame"),
        end_frame=_number(_first(row, END_FRAME_COLS), int, where, "end_frame"),
        start_sec=_number(_first(row, START_SEC_COLS), float, where, "start"),
        end_sec=_number(_first(row, END_SEC_COLS), float, where, "end"),
        expected_frames=_number(_first(row, LEN_COLS), int, where, "len"),
        origin=where,
        meta=meta,
    )
