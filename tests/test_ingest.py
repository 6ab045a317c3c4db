"""Bounded-memory ingestion: frame-by-frame subsampling, seeking to cuts, one decode per video, clip samples,
manifest checks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_frame_folder, random_frames

from reprl.bench.ingest import synthetic_video
from reprl.data.ingest import Subsampler
from reprl.data.reader import expand_urls, iter_videos
from reprl.data.shards import ShardOptions, write_shards
from reprl.data.sources import VideoSource
from reprl.data.video import VideoReader, open_reader, write_mp4
from reprl.errors import ReprlError

BITS = 10


def numbered_frame(i: int) -> np.ndarray:
    """A 80x16 frame showing i in binary as 10 black/white 8-pixel blocks (survives H.264)."""
    row = np.repeat([(i >> b & 1) * 255 for b in range(BITS)], 8).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], 16, axis=0), 3, axis=2)


def number_of(frame) -> int:
    """Read back numbered_frame's index from a decoded frame ([H, W, 3] array or [3, H, W] tensor)."""
    arr = np.asarray(frame)
    arr = arr.transpose(1, 2, 0) if arr.shape[0] == 3 else arr
    blocks = arr[:, :, :].mean(axis=(0, 2)).reshape(BITS, -1).mean(axis=1)
    return int(sum(1 << b for b in range(BITS) if blocks[b] > 128))


def numbered_video(path: Path, n: int, fps: int = 30, gop: int = 30) -> Path:
    frames = (numbered_frame(i) for i in range(n))
    return write_mp4(path, frames, fps, options={"preset": "ultrafast", "crf": "10"}, gop=gop)


def videos_of(out):
    return list(iter_videos(expand_urls(str(out))))


@pytest.mark.parametrize("n, src_fps, fps, every, expected", [
    (11, 30, 12, 1, [0, 3, 5, 8, 10]),  # int(r * 0.4) moves on at r = 3, 5, 8, 10
    (20, 30, 7.5, 2, [0, 8, 16]),  # fps keeps 0, 4, 8, 12, 16; every 2nd of those
    (7, 20, 30, 3, [0, 3, 6]),  # fps above the source rate keeps everything
    (5, None, 10, 1, [0, 1, 2, 3, 4]),  # unknown source fps: no fps subsampling
])
def test_subsampling_by_hand(n, src_fps, fps, every, expected):
    sub = Subsampler(src_fps, fps, every)
    assert [r for r in range(n) if sub.keep(r)] == expected


def test_write_mp4_round_trips_frames_keyframe_interval_and_leaves_no_partial_file(tmp_path):
    path = numbered_video(tmp_path / "n.mp4", 12, fps=10, gop=4)
    with VideoReader(str(path)) as reader:
        assert (reader.info.fps, reader.info.width, reader.info.height) == (10.0, 80, 16)
        assert [number_of(get()) for _, get in reader.read()] == list(range(12))
    import av

    with av.open(str(path)) as c:
        keys = [p.pts for p in c.demux(c.streams.video[0]) if p.is_keyframe]
    assert len(keys) == 3  # frames 0, 4, 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.mp4"]
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "empty.mp4", [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.mp4"]  # no output and no temporary file


def test_the_reused_rgb_converter_gives_pyav_own_pixels_at_full_and_scaled_size(tmp_path):
    import av

    path = write_mp4(tmp_path / "r.mp4", random_frames(6, (48, 40)), 10)
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
        full = [f.to_ndarray(format="rgb24") for f in frames]
        small = [f.to_ndarray(format="rgb24", width=24, height=20, interpolation="AREA") for f in frames]
    with VideoReader(str(path)) as reader:
        got = [(get(), get(20)) for _, get in reader.read()]  # shorter side 20: 24 x 20
    assert len(got) == 6
    for (a, b), want_full, want_small in zip(got, full, small):
        assert a.shape == (40, 48, 3) and np.array_equal(a, want_full)
        assert b.shape == (20, 24, 3) and np.array_equal(b, want_small)


def test_frame_count_from_the_header_or_duration_times_fps(tmp_path):
    from reprl.data.video import FrameInfo

    assert FrameInfo(30.0, 8, 8, source_frames=None, duration_s=2.5).frames_or_estimate() == 75
    assert FrameInfo(30.0, 8, 8, source_frames=10, duration_s=2.5).frames_or_estimate() == 10  # counted wins
    assert FrameInfo(None, 8, 8, source_frames=None, duration_s=2.5).frames_or_estimate() == 0
    assert FrameInfo(30.0, 8, 8, source_frames=None).frames_or_estimate() == 0
    with VideoReader(str(numbered_video(tmp_path / "n.mp4", 12, fps=10))) as reader:
        assert reader.info.source_frames == 12 and reader.info.duration_s == pytest.approx(1.2)


def test_a_far_cut_seeks_instead_of_decoding_from_the_start(tmp_path):
    path = numbered_video(tmp_path / "v.mp4", 400)
    with VideoReader(str(path)) as reader:
        got = [(i, number_of(get())) for i, get in reader.read(300, 310)]
        assert got == [(i, i) for i in range(300, 310)]
        assert reader.decoded < 60, "decoding starts at the keyframe before frame 300, not at frame 0"
    with VideoReader(str(path)) as reader:  # a near cut decodes on from frame 0: exact for any frame rate
        assert [i for i, _ in reader.read(40, 43)] == [40, 41, 42]
        assert reader.decoded == 44  # frame 43 shows where the range ends and is held for the next range
        assert [i for i, _ in reader.read(43, 45)] == [43, 44]


def test_many_cuts_of_one_video_decode_it_once(tmp_path):
    numbered_video(tmp_path / "v.mp4", 400)
    rows = [{"path": "v.mp4", "start_frame": 350, "end_frame": 360, "caption": "late"},
            {"path": "v.mp4", "start_frame": 5, "end_frame": 12, "caption": "early"},
            {"path": "v.mp4", "start_frame": 8, "end_frame": 15, "caption": "overlapping"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    index = write_shards([tmp_path / "m.jsonl"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    late, early, overlap = videos_of(tmp_path / "out")
    assert [number_of(f) for f in late.decode()] == list(range(350, 360)) and late.text == "late"
    assert [number_of(f) for f in early.decode()] == list(range(5, 12))
    assert [number_of(f) for f in overlap.decode()] == list(range(8, 15))
    assert index["ingest"]["source_frames_decoded"] < 100, "one pass for the early cuts, a seek for the late one"


def test_clip_seconds_split_a_video_into_clip_samples(tmp_path):
    numbered_video(tmp_path / "v.mp4", 300)  # 10 s at 30 fps
    index = write_shards([tmp_path / "v.mp4"], tmp_path / "out", ShardOptions(resize=0, fps=10, clip_seconds=4),
                         progress=False)
    clips = videos_of(tmp_path / "out")
    assert [c.meta["clip"] for c in clips] == [0, 1, 2] and index["videos"] == 3
    assert [(c.meta["start_sec"], c.meta["end_sec"]) for c in clips] == [(0, 4), (4, 8), (8, 10)]
    assert [(c.meta["start_frame"], c.meta["end_frame"]) for c in clips] == [(0, 120), (120, 240), (240, 300)]
    assert [len(c) for c in clips] == [40, 40, 20] and clips[0].meta["fps"] == pytest.approx(10)
    assert [number_of(f) for f in clips[1].decode()[:3]] == [120, 123, 126]
    assert all(c.meta["source"].endswith("v.mp4") for c in clips)


def test_clip_frames_count_written_frames_and_a_short_tail_is_skipped(tmp_path):
    numbered_video(tmp_path / "v.mp4", 305)
    index = write_shards([tmp_path / "v.mp4"], tmp_path / "out",
                         ShardOptions(resize=0, every=2, clip_frames=50, min_frames=3), progress=False)
    clips = videos_of(tmp_path / "out")  # 153 kept frames: 50 + 50 + 50 + 3
    assert [len(c) for c in clips] == [50, 50, 50, 3]
    assert [(c.meta["start_frame"], c.meta["end_frame"]) for c in clips] == [(0, 100), (100, 200), (200, 300),
                                                                            (300, 305)]
    write_shards([tmp_path / "v.mp4"], tmp_path / "o2", ShardOptions(resize=0, every=2, clip_frames=50,
                                                                     min_frames=5), progress=False)
    assert json.loads((tmp_path / "o2" / "index.json").read_text())["skipped"] == {"too short": 1}
    assert not list((tmp_path / "out").glob(".spool*")) and index["frames"] == 153


def test_clip_options_are_checked_before_decoding(tmp_path):
    make_frame_folder(tmp_path / "in" / "v", 4)
    with pytest.raises(ReprlError, match="not both"):
        write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(clip_frames=4, clip_seconds=1), progress=False)
    with pytest.raises(ReprlError, match="(?s)no usable videos.*--clip-seconds needs the source fps"):
        write_shards([tmp_path / "in"], tmp_path / "o2", ShardOptions(clip_seconds=1), progress=False)


def test_manifest_len_that_disagrees_warns_or_fails_under_strict(tmp_path, caplog):
    write_mp4(tmp_path / "v.mp4", random_frames(20), 20)
    (tmp_path / "m.csv").write_text("path,len\nv.mp4,25\n")
    index = write_shards([tmp_path / "m.csv"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    (warning,) = index["warnings"]
    assert "m.csv:2" in warning and "25 frames" in warning and "20 were decoded" in warning
    assert warning in caplog.text
    with pytest.raises(ReprlError, match="m.csv:2.*25 frames.*20 were decoded"):
        write_shards([tmp_path / "m.csv"], tmp_path / "o2", ShardOptions(strict=True), progress=False)
    assert not (tmp_path / "o2").exists()


def test_ragged_csv_rows_warn_or_fail_under_strict(tmp_path):
    make_frame_folder(tmp_path / "frames" / "v0", 5)
    make_frame_folder(tmp_path / "frames" / "v1", 5)
    (tmp_path / "m.csv").write_text("path,len,txt\nframes/v0,5,open, the drawer\nframes/v1\n")
    index = write_shards([tmp_path / "m.csv"], tmp_path / "out", ShardOptions(resize=0), progress=False)
    assert index["videos"] == 2
    assert [w.split(": ", 1)[1][:45] for w in index["warnings"]] == [
        "4 fields but the header has 3 (path,len,txt);", "1 fields but the header has 3 (path,len,txt);"]
    assert "m.csv:2" in index["warnings"][0] and "m.csv:3" in index["warnings"][1]
    with pytest.raises(ReprlError, match="m.csv:2: 4 fields but the header has 3"):
        write_shards([tmp_path / "m.csv"], tmp_path / "o2", ShardOptions(strict=True), progress=False)


def test_frame_folder_reader_loads_only_what_is_asked(tmp_path):
    make_frame_folder(tmp_path / "v", 6)
    with open_reader(VideoSource(path=str(tmp_path / "v"), kind="frames")) as reader:
        got = [(i, int(get().mean())) for i, get in reader.read(2, 4)]
    assert got == [(2, 50), (3, 70)]  # frame_with_value: 10 + 20 i


# The child's own peak: VmHWM is per address space, while getrusage's ru_maxrss survives exec on Linux and
# so reports at least the RSS of the forking pytest process.
CHILD = """
import sys
from reprl.data.shards import ShardOptions, write_shards
write_shards([sys.argv[1]], sys.argv[2], ShardOptions(resize=64), progress=False)
print([ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1])
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_video_length(tmp_path):
    peaks = {}
    for n in (300, 3000):
        video = synthetic_video(tmp_path / f"v{n}.mp4", n)
        out = subprocess.run([sys.executable, "-c", CHILD, str(video), str(tmp_path / f"out{n}")],
                             capture_output=True, text=True, check=True)
        peaks[n] = int(out.stdout.split()[-1]) / 1024  # KiB -> MiB
        assert json.loads((tmp_path / f"out{n}" / "index.json").read_text())["frames"] == n
    # holding decoded frames would add 2700 x 0.92 MB = 2.5 GB; a streaming converter adds nothing
    assert peaks[3000] - peaks[300] < 30, peaks


@pytest.mark.slow
def test_ingest_bench_reports_rate_and_peak_memory_per_length(tmp_path):
    from reprl.bench.data import DataBenchConfig, format_data_bench, run_data_bench

    result = run_data_bench(DataBenchConfig(cache=str(tmp_path), repeats=1, ingest=(20, 40)))
    rows = result["ingest"]["lengths"]
    assert [r["frames"] for r in rows] == [20, 40]
    assert all(r["frames_per_s"]["median"] > 0 and 20 < r["peak_mb"]["median"] < 2000 for r in rows)
    assert [w["workers"] for w in result["ingest"]["workers"]] == [1, 2]
    assert "source frames/s" in format_data_bench(result)
