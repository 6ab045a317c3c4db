"""The per-shard frame index: positions match the tar, readers use it, and fall back to walking the tar when
it is missing, stale or broken."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_frame_folder

from reprl.data.frameindex import STATS, index_path
from reprl.data.reader import iter_videos
from reprl.data.shards import EncodedVideo, ShardOptions, ShardWriter, encode_jpeg, write_shards


@pytest.fixture
def shard(tmp_path) -> Path:
    """One shard of three videos (4, 6 and 5 frames), one with a caption and arrays."""
    with ShardWriter(tmp_path / "out", ShardOptions()) as w:
        for n, name in [(4, "a"), (6, "b"), (5, "c")]:
            frames = [encode_jpeg(np.full((16, 24, 3), 20 * i + n, np.uint8), 90) for i in range(n)]
            arrays = {"actions": np.arange(2 * n, dtype=np.float32).reshape(n, 2)} if name == "b" else {}
            w.add(EncodedVideo(frames, {"source": name, "num_frames": n}, caption="open it" if name == "b" else None,
                               arrays=arrays))
        w.finish()
    return tmp_path / "out" / "shard-000000.tar"


def read(path, use_index=True):
    """The shard's videos with their bytes copied out of the memory map (tests rewrite the tar in place)."""
    STATS.reset()
    videos = list(iter_videos([str(path)], use_index=use_index))
    for v in videos:
        v.frames, v.arrays = [bytes(f) for f in v.frames], {k: bytes(a) for k, a in v.arrays.items()}
    return videos, STATS.header_bytes


def same(a, b):
    assert [v.key for v in a] == [v.key for v in b]
    for x, y in zip(a, b):
        assert [bytes(f) for f in x.frames] == [bytes(f) for f in y.frames]
        assert x.meta == y.meta and x.text == y.text and sorted(x.arrays) == sorted(y.arrays)
        assert all(bytes(x.arrays[k]) == bytes(y.arrays[k]) for k in x.arrays)


def test_index_positions_match_the_tar(shard):
    index = json.loads(Path(index_path(str(shard))).read_text())
    assert index["tar_bytes"] == shard.stat().st_size
    with tarfile.open(shard) as tar:
        members = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
    listed = {}
    for s in index["samples"]:
        listed.update({f"{s['key']}.{ext}": tuple(pos) for ext, pos in s["members"].items()})
        spans = s["frames"]
        listed.update({f"{s['key']}.{i:06d}.jpg": (spans[2 * i], spans[2 * i + 1]) for i in range(len(spans) // 2)})
    assert listed == members
    assert [len(s["frames"]) // 2 for s in index["samples"]] == [4, 6, 5]


def test_reading_with_the_index_gives_the_same_videos_without_walking_headers(shard):
    indexed, headers_indexed = read(shard)
    walked, headers_walked = read(shard, use_index=False)
    same(indexed, walked)
    assert headers_walked == 512 * (4 + 6 + 5 + 3 + 2 + 1)  # frames, 3 json, txt, npy, end-of-archive block
    assert headers_indexed == 2 * 512  # only the checks of the first and last sample
    assert torch.equal(indexed[1].decode([5, 0]), walked[1].decode([5, 0]))
    assert indexed[1].array("actions").tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]


def test_decoding_reads_only_the_sampled_frames(shard):
    (_, video, _), _ = read(shard)
    STATS.reset()
    video.decode([1, 4])
    assert STATS.data_bytes == len(video.frames[1]) + len(video.frames[4])


def test_plain_tar_readers_see_only_the_members(shard):
    with tarfile.open(shard) as tar:
        names = tar.getnames()
    assert len(names) == 4 + 6 + 5 + 3 + 2 and not any(n.endswith("idx.json") for n in names)


@pytest.mark.parametrize("damage", ["missing", "garbage", "resized", "reordered"])
def test_a_missing_or_stale_index_falls_back_to_the_walk(shard, damage):
    walked, _ = read(shard, use_index=False)
    idx = Path(index_path(str(shard)))
    if damage == "missing":
        idx.unlink()
    elif damage == "garbage":
        idx.write_text("{not json")
    elif damage == "resized":  # the tar was rewritten with one video less
        with tarfile.open(shard) as tar:
            keep = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if not m.name.startswith(walked[2].key)]
        with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for m, data in keep:
                tar.addfile(m, io.BytesIO(data))
        walked = walked[:2]
    else:  # same size, samples in another order: the header check catches it
        with tarfile.open(shard) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        order = sorted(members, key=lambda md: md[0].name[:7] != walked[2].key[:7])
        with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for m, data in order:
                tar.addfile(m, io.BytesIO(data))
        walked = [walked[2], walked[0], walked[1]]
        assert shard.stat().st_size == json.loads(idx.read_text())["tar_bytes"]
    got, headers = read(shard)
    same(got, walked)
    assert headers > 2 * 512, "the tar was walked"


def test_write_shards_writes_an_index_per_shard(tmp_path):
    for i in range(3):
        make_frame_folder(tmp_path / "in" / f"v{i}", 3 + i)
    index = write_shards([tmp_path / "in"], tmp_path / "out", ShardOptions(resize=0, max_videos_per_shard=2),
                         progress=False)
    assert [s["index"] for s in index["shards"]] == ["shard-000000.idx.json", "shard-000001.idx.json"]
    for s in index["shards"]:
        side = json.loads((tmp_path / "out" / s["index"]).read_text())
        assert side["tar_bytes"] == (tmp_path / "out" / s["name"]).stat().st_size
        assert sum(len(x["frames"]) // 2 for x in side["samples"]) == s["frames"]


def test_bench_compares_walk_and_index_side_by_side(tmp_path):
    from reprl.bench.data import DataBenchConfig, format_data_bench, run_data_bench

    cfg = DataBenchConfig(cache=str(tmp_path), frame_size=32, image_size=16, batch_size=4, batches=2, repeats=1,
                          frame_index=(6, 60))
    result = run_data_bench(cfg)
    short, long = result["frame_index"]
    assert (short["clip_frames"], long["clip_frames"]) == (6, 60)
    # walking reads every header of a clip; the index reads the same frame data plus a share of its file
    assert long["walk"]["bytes_per_tuple"] - long["index"]["bytes_per_tuple"] > 512 * 50
    assert all(r[k]["tuples_per_s"]["median"] > 0 for r in (short, long) for k in ("walk", "index"))
    assert "index tuples/s" in format_data_bench(result)
