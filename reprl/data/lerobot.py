"""LeRobot datasets as video sources: one sample per (episode, camera), with the episode's actions and robot
state as per-frame arrays and its task text as the caption.

Both layouts are read from `meta/info.json` (`codebase_version`, `fps`, `features`, the `data_path` and
`video_path` templates):
- v2.x: one parquet file and one mp4 per camera for each episode, tasks in `meta/episodes.jsonl`;
- v3.0: many episodes per parquet / mp4 file; `meta/episodes/*/*.parquet` gives each episode's data file
  and, per camera, its video file and [from_timestamp, to_timestamp) inside it.
Cameras are the features of dtype "video" (e.g. `observation.images.top`), chosen by full or short name.
Arrays are loaded by the conversion worker, not here, so listing a large dataset stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprl.data.sources import VideoSource
from reprl.errors import ReprlError

# LeRobot column -> shard array (the names MetaWorld shards use; `actions` drops the last frame's action so
# that a sample of T frames has the T-1 actions between them, as the downstream heads expect)
ARRAY_COLUMNS = {"action": "actions", "observation.state": "state", "next.reward": "reward",
                 "next.success": "success", "next.done": "done"}
FLAGS = ("success", "done")  # stored as uint8, as rendered shards store success
PROPRIO_FROM = "observation.state"


def is_lerobot(path: Path) -> bool:
    return path.is_dir() and (path / "meta" / "info.json").is_file()


@dataclass
class ParquetArrays:
    """Where one episode's per-frame arrays are: a parquet file, the episode's rows, the columns wanted."""

    path: str
    episode: int
    columns: tuple[str, ...]

    def load(self) -> dict[str, np.ndarray]:
        """Shard arrays (actions, state, proprio, ...) of the episode, in frame order."""
        import pyarrow.parquet as pq

        wanted = list(self.columns) + ["episode_index", "frame_index"]
        table = pq.read_table(self.path, columns=wanted, filters=[("episode_index", "=", self.episode)])
        order = np.argsort(np.asarray(table.column("frame_index").to_pylist()), kind="stable")
        out = {}
        for col in self.columns:
            name = ARRAY_COLUMNS[col]
            rows = np.asarray(table.column(col).to_pylist(), dtype=np.float32)[order]
            rows = rows.reshape(len(rows), -1) if name in ("actions", "state") else rows.reshape(len(rows))
            out[name] = rows.astype(np.uint8) if name in FLAGS else rows
            if col == PROPRIO_FROM:
                out["proprio"] = out[ARRAY_COLUMNS[col]]
        return out


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pick_cameras(features: dict[str, Any], wanted: str | None, root: Path) -> list[str]:
    cams = [k for k, f in features.items() if isinstance(f, dict) and f.get("dtype") == "video"]
    if not cams:
        raise ReprlError(f"{root}: the dataset has no video cameras (image features stored in parquet are not "
                         "supported): encode them as videos with LeRobot first")
    if not wanted:
        return cams
    picked = []
    for name in (w.strip() for w in wanted.split(",") if w.strip()):
        match = [c for c in cams if name in (c, c.rsplit(".", 1)[-1])]
        if not match:
            raise ReprlError(f"{root}: no camera {name!r}; the dataset has {', '.join(cams)} (--cameras)")
        picked += [m for m in match if m not in picked]
    return picked


def _v2_episodes(root: Path, info: dict[str, Any], cams: list[str]) -> list[dict[str, Any]]:
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise ReprlError(f"{root}: meta/episodes.jsonl is missing (LeRobot v2 layout)")
    chunk = int(info.get("chunks_size", 1000))
    out = []
    for ep in _read_json_lines(path):
        i = int(ep["episode_index"])
        where = {"episode_chunk": i // chunk, "episode_index": i}
        out.append({"episode": i, "tasks": ep.get("tasks") or [], "length": ep.get("length"),
                    "data": root / info["data_path"].format(**where),
                    "videos": {c: (root / info["video_path"].format(video_key=c, **where), None, None) for c in cams}})
    return out


def _v3_episodes(root: Path, info: dict[str, Any], cams: list[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise ReprlError(f"{root}: no meta/episodes/*/*.parquet (LeRobot v3 layout)")
    out = []
    for f in files:
        for ep in pq.read_table(f).to_pylist():
            videos = {}
            for c in cams:
                v = f"videos/{c}/"
                videos[c] = (root / info["video_path"].format(video_key=c, chunk_index=ep[v + "chunk_index"],
                                                               file_index=ep[v + "file_index"]),
                             float(ep[v + "from_timestamp"]), float(ep[v + "to_timestamp"]))
            out.append({"episode": int(ep["episode_index"]), "tasks": ep.get("tasks") or [], "length": ep.get("length"),
                        "data": root / info["data_path"].format(chunk_index=ep["data/chunk_index"],
                                                                file_index=ep["data/file_index"]),
                        "videos": videos})
    return sorted(out, key=lambda e: e["episode"])


def lerobot_sources(root: Path, cameras: str | None = None) -> list[VideoSource]:
    """One VideoSource per (episode, camera) of the LeRobot dataset at `root`."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ReprlError("reading LeRobot datasets needs pyarrow: pip install 'reprl[parquet]'") from None
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
        version = str(info.get("codebase_version", ""))
        fps, features = float(info["fps"]), info["features"]
        if not isinstance(features, dict):
            raise TypeError(f"features is a {type(features).__name__}, not a mapping")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ReprlError(f"{root}/meta/info.json is not a LeRobot info file ({e!r})") from None
    if not version.startswith(("v2", "v3")):
        raise ReprlError(f"{root}: LeRobot dataset version {version or '?'} is not supported (v2.x and v3.0 are)")
    cams = _pick_cameras(features, cameras, root)
    try:
        episodes = (_v3_episodes if version.startswith("v3") else _v2_episodes)(root, info, cams)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, ZeroDivisionError) as e:
        raise ReprlError(f"{root}: its LeRobot episode metadata is malformed ({type(e).__name__}: {e}); check "
                         "meta/info.json (data_path, video_path, chunks_size) and the episode records") from None
    inside = root.resolve()
    for ep in episodes:  # templates and keys come from the dataset's files: never read outside it
        for path in [ep["data"], *(v[0] for v in ep["videos"].values())]:
            if not Path(path).resolve().is_relative_to(inside):
                raise ReprlError(f"{root}: episode {ep['episode']} points outside the dataset ({path}); check "
                                 "meta/info.json's data_path and video_path")
    columns = tuple(c for c in ARRAY_COLUMNS if c in features)
    sources = []
    for ep in episodes:
        task = " ".join(str(t).strip() for t in ep["tasks"]) or None
        for cam in cams:
            video, start, end = ep["videos"][cam]
            if not video.is_file():
                raise ReprlError(f"{root}: episode {ep['episode']} camera {cam}: {video} is missing")
            short = cam.rsplit(".", 1)[-1]
            meta = {"source": f"{root.name}/episode{ep['episode']}/{short}", "video": str(video), "dataset": root.name,
                    "episode": ep["episode"], "camera": short, "robot_type": info.get("robot_type")}
            if task:
                meta["task"] = task
            sources.append(VideoSource(
                path=str(video), kind="video", caption=task, fps=fps, start_sec=start, end_sec=end,
                expected_frames=None, origin=f"{root} episode {ep['episode']} {cam}", meta=meta,
                arrays_from=ParquetArrays(str(ep["data"]), ep["episode"], columns) if columns else None))
    return sources
