import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_frame_folder, random_frames
from PIL import Image

from reprl.data.reader import expand_urls, iter_videos
from reprl.data.shards import ShardOptions, ShardWriter, corpus_digest, write_shards
from reprl.data.video import write_mp4
from reprl.errors import ReprlError


def videos_of(out):
    return list(iter_videos(expand_urls(str(out))))


def brightness(video):
    return [float(f.float().mean()) for f in video.decode()]


def test_frame_folders_are_sorted_naturally_and_written_in_order(tmp_path):
    make_frame_folder(tmp_path / "in" / "clip_a", 12, names="frame{i}.png")
    make_frame_folder(tmp_path / "in" / "clip_b", 4, names="{i}.jpg")
    index = write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    assert index["videos"] == 2 and index["frames"] == 16 and index["captions"] == 0
    a, b = videos_of(tmp_path / "out")
    assert len(a) == 12 and len(b) == 4
    values = brightness(a)
    assert values == sorted(values), "frame10 must come after frame9, not after frame1"
    assert a.meta["num_frames"] == 12 and a.meta["source"].endswith("clip_a")
    assert (a.meta["width"], a.meta["height"]) == (32, 24)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK"])
def test_other_colour_modes_become_rgb(tmp_path, mode):
    make_frame_folder(tmp_path / "in" / "v", 3, mode=mode, names="{i}.png" if mode != "CMYK" else "{i}.jpg")
    write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    (video,) = videos_of(tmp_path / "out")
    frames = video.decode()
    assert frames.shape == (3, 3, 24, 32) and str(frames.dtype) == "torch.uint8"


def test_16_bit_frames_are_scaled_not_clipped(tmp_path):
    folder = tmp_path / "in" / "v16"
    folder.mkdir(parents=True)
    for i, value in enumerate([0, 32768, 65535]):
        Image.fromarray(np.full((16, 16), value, dtype=np.uint16)).save(folder / f"{i}.png")
    write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(resize=0, quality=100), progress=False)
    means = brightness(videos_of(tmp_path / "out")[0])
    assert means[0] < 3 and 120 < means[1] < 135 and means[2] > 252


def test_video_files_resize_and_fps_subsampling(tmp_path):
    write_mp4(tmp_path / "a.mp4", random_frames(20, (96, 64)), 20)
    index = write_shards([tmp_path / "a.mp4"], tmp_path / "out", ShardOptions(resize=32, fps=10), progress=False)
    (video,) = videos_of(tmp_path / "out")
    assert len(video) == 10 and index["frames"] == 10
    assert video.meta["source_fps"] == 20 and video.meta["fps"] == pytest.approx(10)
    assert (video.meta["width"], video.meta["height"]) == (48, 32)  # shorter side 32, aspect kept


def test_reference_manifest_layouts(tmp_path):
    make_frame_folder(tmp_path / "frames" / "v0", 5)
    make_frame_folder(tmp_path / "frames" / "v1", 6)
    (tmp_path / "vip.csv").write_text("path,len\nframes/v0,5\nframes/v1,6\n")
    (tmp_path / "liv.csv").write_text("directory,num_frames,text\nframes/v0,5,open the drawer\n"
                                      "frames/v1,6,close the door\n")
    vip = write_shards([tmp_path / "vip.csv"], tmp_path / "o1", ShardOptions(resize=0), progress=False)
    liv = write_shards([tmp_path / "liv.csv"], tmp_path / "o2", ShardOptions(resize=0), progress=False)
    assert vip["videos"] == 2 and vip["captions"] == 0
    assert liv["captions"] == 2
    assert [v.text for v in videos_of(tmp_path / "o2")] == ["open the drawer", "close the door"]


def test_jsonl_manifest_clips_and_extra_fields(tmp_path):
    write_mp4(tmp_path / "long.mp4", random_frames(30), 10)
    rows = [{"path": "long.mp4", "caption": "first part", "start": 0.0, "end": 1.0, "task": "pour"},
            {"path": "long.mp4", "caption": "second part", "start_frame": 10, "end_frame": 25, "episode": 3}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    write_shards([tmp_path / "m.jsonl"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    first, second = videos_of(tmp_path / "out")
    assert len(first) == 10 and first.meta["task"] == "pour" and first.text == "first part"
    assert len(second) == 15 and second.meta["episode"] == 3 and second.meta["start_frame"] == 10


def test_shards_roll_over_by_count(tmp_path):
    for i in range(5):
        make_frame_folder(tmp_path / "in" / f"v{i}", 3)
    index = write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(resize=0, max_videos_per_shard=2),
                         progress=False)
    assert [s["videos"] for s in index["shards"]] == [2, 2, 1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.json"] + [
        f"shard-00000{i}.{ext}" for i in range(3) for ext in ("idx.json", "tar")]


def test_bad_videos_are_skipped_counted_and_reported(tmp_path, capsys):
    make_frame_folder(tmp_path / "in" / "good", 4)
    make_frame_folder(tmp_path / "in" / "short", 2)
    mixed = make_frame_folder(tmp_path / "in" / "mixed", 3)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(mixed / "3.png")
    (tmp_path / "in" / "broken.mp4").write_bytes(b"definitely not a video")
    index = write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    assert index["videos"] == 1
    assert index["skipped"] == {"too short": 1, "unreadable": 2}
    assert any("mixed frame sizes" in e for e in index["skip_examples"]["unreadable"])
    report = capsys.readouterr().out
    assert "skipped 3 videos" in report and "too short" in report


def test_missing_captions_when_required(tmp_path):
    make_frame_folder(tmp_path / "frames" / "v0", 4)
    make_frame_folder(tmp_path / "frames" / "v1", 4)
    (tmp_path / "m.csv").write_text("path,txt\nframes/v0,pick up the cup\nframes/v1,\n")
    index = write_shards([tmp_path / "m.csv"], tmp_path / "out", ShardOptions(resize=0, require_caption=True),
                         progress=False)
    assert index["videos"] == 1 and index["skipped"] == {"no caption": 1}
    with pytest.raises(ReprlError, match="no caption"):
        write_shards([tmp_path / "m.csv"], tmp_path / "o2", ShardOptions(require_caption=True, strict=True),
                     progress=False)


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "input not found"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no videos found"),
    (lambda p: (p / "x.gif").write_bytes(b"GIF") and p / "x.gif", "unsupported input"),
    (lambda p: (p / "m.csv").write_text("name\nfoo\n") and p / "m.csv", "no path column"),
    (lambda p: (p / "m.csv").write_text("path\nnowhere/v0\n") and p / "m.csv", "does not exist"),
    (lambda p: (p / "m.jsonl").write_text("{bad json") and p / "m.jsonl", "not valid JSON"),
])
def test_bad_inputs_fail_clearly(tmp_path, setup, message):
    with pytest.raises(ReprlError, match=message):
        write_shards([setup(tmp_path)], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_all_videos_unusable_is_an_error_and_leaves_nothing(tmp_path):
    make_frame_folder(tmp_path / "in" / "short", 2)
    with pytest.raises(ReprlError, match="(?s)no usable videos.*too short"):
        write_shards([tmp_path / "in"], tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "in"]


def test_interrupted_run_leaves_no_shard_that_looks_whole(tmp_path, monkeypatch):
    for i in range(4):
        make_frame_folder(tmp_path / "in" / f"v{i}", 3)
    real_add = ShardWriter.add

    def flaky_add(self, video):
        if self.videos == 3:
            raise KeyboardInterrupt
        return real_add(self, video)

    monkeypatch.setattr(ShardWriter, "add", flaky_add)
    with pytest.raises(KeyboardInterrupt):
        write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(max_videos_per_shard=1), progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob("*.tar")) and not list(tmp_path.glob(".out*"))


def test_existing_output_is_kept_unless_overwrite_and_survives_a_failed_overwrite(tmp_path, monkeypatch):
    make_frame_folder(tmp_path / "in" / "v0", 3)
    write_shards([tmp_path / "in"], tmp_path / "out", progress=False)
    before = (tmp_path / "out" / "index.json").read_text()
    with pytest.raises(ReprlError, match="--overwrite"):
        write_shards([tmp_path / "in"], tmp_path / "out", progress=False)
    monkeypatch.setattr(ShardWriter, "add", lambda self, v: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(overwrite=True), progress=False)
    assert (tmp_path / "out" / "index.json").read_text() == before


def test_overwrite_replaces_output(tmp_path):
    make_frame_folder(tmp_path / "in" / "v0", 3)
    write_shards([tmp_path / "in"], tmp_path / "out", progress=False)
    make_frame_folder(tmp_path / "in" / "v1", 5)
    index = write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(overwrite=True), progress=False)
    assert index["videos"] == 2 and json.loads((tmp_path / "out" / "index.json").read_text())["frames"] == 8


def test_parallel_workers_give_the_same_shards(tmp_path):
    for i in range(3):
        write_mp4(tmp_path / "in" / f"v{i}.mp4", random_frames(6, seed=i), 20)  # creates the folder
    a = write_shards([tmp_path / "in"], tmp_path / "a", ShardOptions(workers=1), progress=False)
    b = write_shards([tmp_path / "in"], tmp_path / "b", ShardOptions(workers=2), progress=False)
    assert a["frames"] == b["frames"] == 18
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes()[512:] != b""  # non-empty
    va, vb = videos_of(tmp_path / "a"), videos_of(tmp_path / "b")
    assert [bytes(f) for v in va for f in v.frames] == [bytes(f) for v in vb for f in v.frames]


def test_content_digest_ignores_write_time_and_sees_one_changed_frame(tmp_path, monkeypatch):
    import reprl.data.shards as shards

    for i in range(2):
        write_mp4(tmp_path / "in" / f"v{i}.mp4", random_frames(4, seed=i), 20)
    a = write_shards([tmp_path / "in"], tmp_path / "a", ShardOptions(), progress=False)
    monkeypatch.setattr(shards.time, "time", lambda: 2_000_000_000.0)  # written "later": other tar timestamps
    b = write_shards([tmp_path / "in"], tmp_path / "b", ShardOptions(), progress=False)
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() != (tmp_path / "b" / "shard-000000.tar").read_bytes()
    assert a["content_sha256"] == b["content_sha256"] == corpus_digest(tmp_path / "b")
    assert len(a["content_sha256"]) == 64 and a["shards"][0]["sha256"] == b["shards"][0]["sha256"]
    frames = random_frames(4, seed=1)
    frames[2] = 255 - frames[2]
    write_mp4(tmp_path / "in" / "v1.mp4", frames, 20)
    c = write_shards([tmp_path / "in"], tmp_path / "c", ShardOptions(), progress=False)
    assert c["content_sha256"] != a["content_sha256"]
    assert corpus_digest(tmp_path / "in") is None and corpus_digest("https://example.com/{0..3}.tar") is None
    # a ::-joined list of folders (one training set from several renders): every part's digest, in order
    assert corpus_digest(f"{tmp_path / 'a'}::{tmp_path / 'c'}") == f"{a['content_sha256']}::{c['content_sha256']}"
    assert corpus_digest(f"{tmp_path / 'a'}::{tmp_path / 'in'}") is None  # one part without a digest


def test_shards_are_readable_by_plain_webdataset(train_shards):
    import webdataset as wds

    urls = sorted(str(p) for p in Path(train_shards).glob("*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb"))
    index = json.loads((Path(train_shards) / "index.json").read_text())
    assert len(samples) == index["videos"]
    s = samples[0]
    frames = sorted(k for k in s if k.endswith(".jpg"))
    assert frames[0] == "000000.jpg" and len(frames) == s["json"]["num_frames"]
    assert s[frames[0]].shape == (64, 64, 3) and s[frames[0]].dtype == np.float32
    assert s["txt"] == s["json"]["caption"] and s["json"]["task"] in s["__key__"]
    assert s["actions.npy"].shape == (s["json"]["steps"], 4)
