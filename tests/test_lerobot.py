"""LeRobot datasets in: both layouts (v2.x one episode per file, v3.0 many per file) built here with pyarrow
and PyAV, cameras by name, actions and state kept per frame, the task as caption."""

import json
from pathlib import Path

import numpy as np
import pytest
from test_ingest import number_of, numbered_frame

from reprl.data.reader import expand_urls, iter_videos
from reprl.data.shards import ShardOptions, write_shards
from reprl.data.video import write_mp4
from reprl.errors import ReprlError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

FPS = 10
LENGTHS = [12, 9]  # frames of episodes 0 and 1
CAMS = ["observation.images.top", "observation.images.wrist"]
TASKS = ["pick the cube", "open the drawer"]


def frame_id(ep: int, t: int, cam: str) -> int:
    return 100 * ep + t + (50 if cam.endswith("wrist") else 0)


def numbered_mp4(path: Path, ids: list[int]) -> None:
    write_mp4(path, (numbered_frame(i) for i in ids), FPS, options={"preset": "ultrafast", "crf": "10"})


def episode_rows(ep: int, offset: int) -> dict[str, list]:
    n = LENGTHS[ep]
    return {"action": [[float(ep), float(t)] for t in range(n)],
            "observation.state": [[float(t), t + 1.0, float(ep)] for t in range(n)],
            "next.success": [t == n - 1 for t in range(n)],
            "timestamp": [t / FPS for t in range(n)], "frame_index": list(range(n)), "episode_index": [ep] * n,
            "index": list(range(offset, offset + n)), "task_index": [ep] * n}


def write_parquet(path: Path, rows: list[dict[str, list]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: sum((r[k] for r in rows), []) for k in rows[0]}), path)


def info(version: str, data_path: str, video_path: str) -> dict:
    video = {"dtype": "video", "shape": [16, 80, 3], "names": ["height", "width", "channels"]}
    return {"codebase_version": version, "robot_type": "toy", "fps": FPS, "chunks_size": 1000,
            "total_episodes": 2, "data_path": data_path, "video_path": video_path,
            "features": {**{c: video for c in CAMS},
                         "observation.state": {"dtype": "float32", "shape": [3]},
                         "action": {"dtype": "float32", "shape": [2]},
                         "next.success": {"dtype": "bool", "shape": [1]},
                         "timestamp": {"dtype": "float32", "shape": [1]},
                         "frame_index": {"dtype": "int64", "shape": [1]},
                         "episode_index": {"dtype": "int64", "shape": [1]}}}


def make_v2(root: Path) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info(
        "v2.1", "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")))
    (root / "meta" / "episodes.jsonl").write_text("\n".join(
        json.dumps({"episode_index": e, "tasks": [TASKS[e]], "length": n}) for e, n in enumerate(LENGTHS)))
    offset = 0
    for e, n in enumerate(LENGTHS):
        write_parquet(root / f"data/chunk-000/episode_{e:06d}.parquet", [episode_rows(e, offset)])
        offset += n
        for c in CAMS:
            numbered_mp4(root / f"videos/chunk-000/{c}/episode_{e:06d}.mp4", [frame_id(e, t, c) for t in range(n)])
    return root


def make_v3(root: Path) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info(
        "v3.0", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")))
    write_parquet(root / "data/chunk-000/file-000.parquet", [episode_rows(0, 0), episode_rows(1, LENGTHS[0])])
    for c in CAMS:
        numbered_mp4(root / f"videos/{c}/chunk-000/file-000.mp4",
                 [frame_id(e, t, c) for e, n in enumerate(LENGTHS) for t in range(n)])
    starts = [0, LENGTHS[0]]
    episodes = {"episode_index": [0, 1], "tasks": [[TASKS[0]], [TASKS[1]]], "length": LENGTHS,
                "data/chunk_index": [0, 0], "data/file_index": [0, 0],
                "dataset_from_index": starts, "dataset_to_index": [starts[1], sum(LENGTHS)]}
    for c in CAMS:
        episodes.update({f"videos/{c}/chunk_index": [0, 0], f"videos/{c}/file_index": [0, 0],
                         f"videos/{c}/from_timestamp": [s / FPS for s in starts],
                         f"videos/{c}/to_timestamp": [(s + n) / FPS for s, n in zip(starts, LENGTHS)]})
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table(episodes), path)
    return root


def videos_of(out):
    return list(iter_videos(expand_urls(str(out))))


@pytest.mark.parametrize("make", [make_v2, make_v3], ids=["v2.1", "v3.0"])
def test_episodes_become_samples_with_actions_state_and_task(tmp_path, make):
    root = make(tmp_path / "ds")
    index = write_shards([root], tmp_path / "out", ShardOptions(resize=0, cameras="top"), progress=False)
    assert index["videos"] == 2 and not index["warnings"]
    for ep, video in enumerate(videos_of(tmp_path / "out")):
        n = LENGTHS[ep]
        assert [number_of(f) for f in video.decode()] == [frame_id(ep, t, CAMS[0]) for t in range(n)]
        assert video.text == TASKS[ep] and video.meta["task"] == TASKS[ep]
        assert (video.meta["episode"], video.meta["camera"], video.meta["dataset"]) == (ep, "top", "ds")
        assert video.array("state").tolist() == [[t, t + 1, ep] for t in range(n)]
        assert np.array_equal(video.array("proprio"), video.array("state"))
        assert video.array("actions").tolist() == [[ep, t] for t in range(n - 1)]  # T frames, T-1 actions
        assert video.array("success").tolist() == [0] * (n - 1) + [1] and video.array("success").dtype == np.uint8


def test_cameras_by_name_and_subsampled_clips_keep_their_rows(tmp_path):
    root = make_v3(tmp_path / "ds")
    write_shards([root], tmp_path / "out", ShardOptions(resize=0, every=2, clip_frames=3, min_frames=2),
                 progress=False)
    clips = [v for v in videos_of(tmp_path / "out") if v.meta["episode"] == 0]
    assert {v.meta["camera"] for v in videos_of(tmp_path / "out")} == {"top", "wrist"}
    top = [v for v in clips if v.meta["camera"] == "top"]  # kept frames 0 2 4 | 6 8 10
    assert [[number_of(f) for f in v.decode()] for v in top] == [[0, 2, 4], [6, 8, 10]]
    assert [v.array("state")[:, 0].tolist() for v in top] == [[0, 2, 4], [6, 8, 10]]
    assert [v.array("actions")[:, 1].tolist() for v in top] == [[0, 2], [6, 8]]
    assert [v.meta["clip"] for v in top] == [0, 1]


def test_unknown_camera_names_the_ones_there_are(tmp_path):
    root = make_v2(tmp_path / "ds")
    with pytest.raises(ReprlError, match="no camera 'side'.*observation.images.top, observation.images.wrist"):
        write_shards([root], tmp_path / "out", ShardOptions(cameras="side"), progress=False)


@pytest.mark.parametrize("damage", ["no data_path", "bad template", "bad line", "no index", "features list",
                                    "chunks 0", "outside"])
def test_malformed_metadata_is_one_line_naming_the_dataset(tmp_path, damage):
    root = make_v2(tmp_path / "ds")
    info_path, episodes = root / "meta" / "info.json", root / "meta" / "episodes.jsonl"
    meta = json.loads(info_path.read_text())
    if damage == "no data_path":
        del meta["data_path"]
    elif damage == "bad template":
        meta["video_path"] = "{nope}"
    elif damage == "features list":
        meta["features"] = list(meta["features"])
    elif damage == "chunks 0":
        meta["chunks_size"] = 0
    elif damage == "outside":
        meta["video_path"] = "../../elsewhere/{video_key}_{episode_index}.mp4"
    elif damage == "bad line":
        episodes.write_text(episodes.read_text() + "\n{torn")
    elif damage == "no index":
        episodes.write_text(json.dumps({"tasks": ["x"], "length": 3}))
    info_path.write_text(json.dumps(meta))
    with pytest.raises(ReprlError, match=str(root)) as e:
        write_shards([root], tmp_path / "out", ShardOptions(), progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_reading_a_dataset_written_by_lerobot_itself():
    pytest.skip("lerobot is not installed: its package pins torch<2.11 and installing it would replace the "
                "project's torch 2.14 (`pip install --dry-run lerobot`); the layouts are built by hand above")


def test_shards_command_takes_cameras_and_clips_and_shows_progress_in_frames(tmp_path, capsys):
    from reprl.cli import main

    root = make_v2(tmp_path / "ds")
    with pytest.raises(SystemExit) as e:
        main(["shards", str(root), "--out", str(tmp_path / "out"), "--cameras", "wrist", "--clip-frames", "4",
              "--workers", "2"])
    assert e.value.code == 0
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["videos"] == 5 and index["skipped"] == {"too short": 1}  # 12 -> 4+4+4, 9 -> 4+4+(1)
    captured = capsys.readouterr()
    assert "21/21" in captured.err and "frame" in captured.err  # the bar counts source frames of the corpus
    assert "frames/s per worker (2 workers)" in captured.out
