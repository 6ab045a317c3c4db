import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TRAIN_SHARDS
from PIL import Image
from torch.utils.data import DataLoader

import reprl.data.stream as stream_mod
from reprl.data.reader import expand_urls, iter_videos
from reprl.data.sampling import SAMPLING_MODES
from reprl.data.stream import ClipBatch, StreamConfig, TupleStream, collate_tuples, stack_images
from reprl.errors import ReprlError


def small(mode="vip", **kw):
    base = dict(mode=mode, image_size=32, batch_size=4, shuffle_buffer=8)
    base.update(kw)
    return StreamConfig(**base)


def take(stream, n):
    out = []
    for b in stream:
        out.append(b)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("mode", list(SAMPLING_MODES))
def test_batches_are_named_uint8_tuples(mode):
    (batch,) = take(TupleStream(TRAIN_SHARDS, small(mode)), 1)
    assert isinstance(batch, ClipBatch) and batch.roles == SAMPLING_MODES[mode].roles
    for role, frames in batch.frames.items():
        assert frames.shape == (4, 3, 32, 32) and frames.dtype == torch.uint8, role
        # channels-last from the resize to the model: no transposing copy in the loader
        assert frames.is_contiguous(memory_format=torch.channels_last) and not frames.is_contiguous(), role
        assert batch.indices[role].shape == (4,)
    assert all(t for t in batch.text), "the MetaWorld corpus has a caption for every video"
    assert (batch.indices["goal"] < batch.length).all()


def test_fixed_seed_gives_the_same_stream_and_another_seed_does_not():
    a = take(TupleStream(TRAIN_SHARDS, small(seed=3)), 3)
    b = take(TupleStream(TRAIN_SHARDS, small(seed=3)), 3)
    c = take(TupleStream(TRAIN_SHARDS, small(seed=4)), 3)
    for x, y in zip(a, b):
        assert x.key == y.key
        assert all(torch.equal(x.frames[r], y.frames[r]) for r in x.roles)
    assert [x.key for x in a] != [z.key for z in c]


def test_resume_count_changes_the_stream():
    a = take(TupleStream(TRAIN_SHARDS, small(seed=3)), 2)
    b = take(TupleStream(TRAIN_SHARDS, small(seed=3), resume=100), 2)
    assert [x.indices["t"].tolist() for x in a] != [x.indices["t"].tolist() for x in b]


def shard_of_key():
    return {v.key: v.url for v in iter_videos(expand_urls(TRAIN_SHARDS))}


def test_two_ranks_by_two_workers_read_disjoint_shards(monkeypatch):
    urls = expand_urls(TRAIN_SHARDS)
    assert len(urls) == 4
    where = shard_of_key()
    seen = {}
    for rank in range(2):
        for worker in range(2):
            monkeypatch.setattr(stream_mod, "get_worker_info",
                                lambda w=worker: SimpleNamespace(id=w, num_workers=2))
            s = TupleStream(TRAIN_SHARDS, small(batch_size=2, shuffle_buffer=2), rank=rank, world_size=2)
            keys = {k for b in take(s, 12) for k in b.key}
            seen[(rank, worker)] = {where[k] for k in keys}
    sets = list(seen.values())
    assert all(len(s) == 1 for s in sets), seen
    assert set().union(*sets) == set(urls), "every shard is read by exactly one reader"


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_epoch_has_exactly_the_requested_batches_per_rank(workers):
    s = TupleStream(TRAIN_SHARDS, small(), batches_per_epoch=5)
    loader = DataLoader(s, batch_size=None, num_workers=workers)
    assert len(s) == 5
    assert sum(1 for _ in loader) == 5


def write_tar(path: Path, samples: list[dict[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample.pop("__key__")
            for ext, data in sample.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def static_video(key: str, n: int = 8, seed: int = 0, caption: bytes | None = b"stay still") -> dict[str, bytes]:
    frame = jpeg(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    sample = {"__key__": key, "json": b'{"num_frames": %d}' % n}
    if caption:
        sample["txt"] = caption
    sample.update({f"{i:06d}.jpg": frame for i in range(n)})
    return sample


def test_one_crop_is_shared_by_all_frames_of_a_tuple(tmp_path):
    write_tar(tmp_path / "s.tar", [static_video("still", n=10)])
    batches = take(TupleStream(str(tmp_path / "s.tar"), small("liv", batch_size=8)), 2)
    for b in batches:
        ref = b.frames["start"]
        for role in b.roles:
            assert torch.equal(b.frames[role], ref), f"{role} was cropped differently from start"
    crops = torch.cat([b.frames["start"] for b in batches])
    assert len({hash(c.numpy().tobytes()) for c in crops}) > 1, "different tuples get different crops"


def test_corrupt_members_and_tars_are_skipped_and_counted(tmp_path):
    bad_jpeg = static_video("badjpeg")
    bad_jpeg.update({k: b"\xff\xd8 not really a jpeg" for k in bad_jpeg if k.endswith(".jpg")})
    write_tar(tmp_path / "a.tar", [static_video("ok1"), bad_jpeg, static_video("short", n=2),
                                   static_video("badjson") | {"json": b"{oops"}])
    good = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(good[: len(good) // 3])  # truncated download
    (tmp_path / "c.tar").write_bytes(b"\x00garbage" * 200)  # not a tar at all
    s = TupleStream(f"{tmp_path}/{{a,b,c}}.tar", small(batch_size=4, shuffle_buffer=4))
    batches = take(s, 5)
    assert len(batches) == 5
    assert {k for b in batches for k in b.key} == {"ok1"}
    counts = s.skips.counts
    assert counts["too short"] >= 1 and counts["malformed sample"] >= 1 and counts["corrupt shard data"] >= 2
    assert counts["undecodable frames"] >= 1


def test_a_tar_cut_at_a_block_boundary_is_named_truncated(tmp_path, caplog):
    """A copy cut between two tar blocks parses as a shorter tar: without the end-of-archive check its last
    sample came out with no frames (a misleading 'no frames' skip) and the missing samples went unnoticed."""
    from reprl.data.reader import SkipCounter

    write_tar(tmp_path / "a.tar", [static_video("v1"), static_video("v2"), static_video("v3")])
    whole = (tmp_path / "a.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:  # cut where v2's second member starts: between two headers
        cut = [m.offset for m in tar.getmembers() if m.name.startswith("v2.")][1]
    (tmp_path / "cut.tar").write_bytes(whole[:cut])
    skips = SkipCounter("shard members")
    with caplog.at_level("WARNING"):
        keys = [v.key for v in iter_videos([str(tmp_path / "cut.tar")], skips, use_index=False)]
    assert keys == ["v1"] and dict(skips.counts) == {"corrupt shard data": 1}
    assert "truncated tar" in caplog.text and "end-of-archive" in caplog.text
    assert [v.key for v in iter_videos([str(tmp_path / "a.tar")], use_index=False)] == ["v1", "v2", "v3"]
    assert "1 video(s) read;" in caplog.text  # no index.json: what was read, without a total
    caplog.clear()  # with the writer's index.json beside it, the warning says how many videos the shard lost
    (tmp_path / "index.json").write_text(json.dumps({"shards": [{"name": "cut.tar", "videos": 3}]}))
    with caplog.at_level("WARNING"):
        assert [v.key for v in iter_videos([str(tmp_path / "cut.tar")], use_index=False)] == ["v1"]
    assert "1 video(s) read of the 3 that index.json lists" in caplog.text


def test_a_glob_over_a_shard_folder_skips_its_index_files():
    """'folder/*' matches index.json and the tars' .idx.json sidecars too: they are not shards."""
    tars = expand_urls(f"{TRAIN_SHARDS}/*")
    assert tars and all(u.endswith(".tar") for u in tars) and tars == expand_urls(f"{TRAIN_SHARDS}/*.tar")


def test_only_unusable_shards_raise_instead_of_hanging(tmp_path):
    write_tar(tmp_path / "a.tar", [static_video("short", n=2)])
    with pytest.raises(ReprlError, match="no usable videos"):
        take(TupleStream(str(tmp_path / "a.tar"), small()), 1)


def test_liv_mode_skips_videos_without_caption(tmp_path):
    write_tar(tmp_path / "a.tar", [static_video("with"), static_video("without", caption=None)])
    s = TupleStream(str(tmp_path / "a.tar"), small("liv"))
    keys = {k for b in take(s, 3) for k in b.key}
    assert keys == {"with"} and s.skips.counts["no caption"] >= 1


def test_url_forms_brace_pipe_and_folder():
    urls = expand_urls(TRAIN_SHARDS)
    assert expand_urls(f"{TRAIN_SHARDS}/shard-{{000000..000003}}.tar") == urls
    assert expand_urls("::".join(urls[:2])) == urls[:2]
    (b,) = take(TupleStream(f"pipe:cat {urls[0]}", small()), 1)
    assert len(b) == 4
    with pytest.raises(ReprlError, match="shard not found"):
        expand_urls(f"{TRAIN_SHARDS}/shard-{{000000..000009}}.tar")


def test_bad_stream_settings_are_rejected():
    with pytest.raises(ReprlError, match="unknown data mode"):
        StreamConfig(mode="vipp")
    with pytest.raises(ReprlError, match=r"data.crop_scale must satisfy 0 < min <= max <= 1, got \(0.5, 0.2\)"):
        StreamConfig(crop_scale=(0.5, 0.2))
    with pytest.raises(ReprlError, match="data.tuples_per_video must be at least 1, got 0"):
        StreamConfig(tuples_per_video=0)


def test_excluded_tasks_are_never_drawn_and_excluding_every_task_says_so():
    by_task: dict[str, set[str]] = {}
    for v in iter_videos(expand_urls(TRAIN_SHARDS)):  # 5 tasks x 2 episodes
        by_task.setdefault(str(v.meta["task"]), set()).add(v.key)
    held = ("reach", "door-open")
    drawn = {k for b in take(TupleStream(TRAIN_SHARDS, small(exclude_tasks=held, shuffle_buffer=1)), 40)
             for k in b.key}
    kept = set().union(*(keys for task, keys in by_task.items() if task not in held))
    assert drawn == kept  # 160 draws from 6 videos: each kept one is drawn, no held-out one ever
    with pytest.raises(ReprlError, match=r"no usable videos .*, 10 of held-out tasks \(data.holdout_tasks\)"):
        take(TupleStream(TRAIN_SHARDS, small(exclude_tasks=tuple(by_task))), 1)


def flat_video(key: str, task: str, value: int, n: int = 6, succeeded: bool = True,
               camera: str = "corner") -> dict[str, bytes]:
    """Frames of one grey level, the last frame `value + 100`: a goal's origin can be read off its pixels."""
    frame, last = (jpeg(np.full((32, 32, 3), v, dtype=np.uint8)) for v in (value, value + 100))
    meta = f'{{"num_frames": {n}, "task": "{task}", "camera": "{camera}", "succeeded": {str(succeeded).lower()}}}'
    sample = {"__key__": key, "json": meta.encode()}
    sample.update({f"{i:06d}.jpg": (last if i == n - 1 else frame) for i in range(n)})
    return sample


def test_other_goal_takes_the_last_frame_of_an_earlier_successful_video_of_the_same_task_and_camera(tmp_path):
    videos = [flat_video("a0", "a", 10), flat_video("b0", "b", 20), flat_video("a0side", "a", 30, camera="side"),
              flat_video("a1", "a", 40), flat_video("a2fail", "a", 50, succeeded=False), flat_video("a3", "a", 60)]
    write_tar(tmp_path / "s.tar", videos)
    cfg = small("vip", batch_size=1, shuffle_buffer=1, augment=False, other_goal=1.0)
    batches = take(TupleStream(str(tmp_path / "s.tar"), cfg), len(videos))
    goal_level = {b.key[0]: round(float(b.frames["goal"].float().mean())) for b in batches}
    start_level = {b.key[0]: round(float(b.frames["start"].float().mean())) for b in batches}
    # the first video of each (task, camera) keeps its own goal (a frame of its own: 10 / 110, 20 / 120, ...)
    for key, own in (("a0", 10), ("b0", 20), ("a0side", 30)):
        assert goal_level[key] in (own, own + 100), key
    # later successful ones take the last frame of the latest successful one before them; a failed video is never
    # a goal and keeps its own goals (it never reaches a borrowed one)
    assert [goal_level[k] for k in ("a1", "a3")] == [110, 140]
    assert goal_level["a2fail"] in (50, 150)
    assert [b.goal_from[0] for b in batches] == ["", "", "", "a0", "", "a1"]
    assert start_level == {"a0": 10, "b0": 20, "a0side": 30, "a1": 40, "a2fail": 50, "a3": 60}
    for b in (batches[3], batches[5]):  # the swapped tuples run to their own video's end
        assert int(b.indices["goal"][0]) == 5 and int(b.indices["t1"][0]) <= 5


def test_other_goal_needs_a_task_name_and_never_lends_a_video_its_own_last_frame(tmp_path):
    # no task in the metadata: nothing says two videos share a goal, so none lends or borrows
    write_tar(tmp_path / "untitled.tar", [flat_video(f"v{i}", "", 10 * i) for i in range(4)])
    batches = take(TupleStream(str(tmp_path / "untitled.tar"), small("vip", batch_size=1, shuffle_buffer=1,
                                                                       other_goal=1.0)), 8)
    assert [b.goal_from[0] for b in batches] == [""] * 8
    # one video per task: on the second pass over the shards the only goal of its task is its own last frame
    write_tar(tmp_path / "single.tar", [flat_video("a0", "a", 10), flat_video("b0", "b", 20)])
    batches = take(TupleStream(str(tmp_path / "single.tar"), small("vip", batch_size=1, shuffle_buffer=1,
                                                                     other_goal=1.0)), 6)
    assert [b.key[0] for b in batches] == ["a0", "b0"] * 3
    assert [b.goal_from[0] for b in batches] == [""] * 6


def test_other_goal_is_the_share_of_tuples_that_borrow_when_a_goal_is_there_to_borrow(tmp_path):
    write_tar(tmp_path / "s.tar", [flat_video("a0", "a", 10), flat_video("a1", "a", 20)])
    for share in (0.25, 0.75):
        batches = take(TupleStream(str(tmp_path / "s.tar"), small("vip", batch_size=1, shuffle_buffer=1,
                                                                  other_goal=share)), 401)
        # from the second tuple on, the other video's last frame is always there to borrow
        borrowed = [b.goal_from[0] != "" for b in batches[1:]]
        assert abs(sum(borrowed) / len(borrowed) - share) < 0.07, (share, sum(borrowed))
        assert all(b.goal_from[0] in ("", {"a0": "a1", "a1": "a0"}[b.key[0]]) for b in batches)


def test_other_goal_is_a_share_and_needs_a_goal_frame():
    with pytest.raises(ReprlError, match=r"data.other_goal is a share of the tuples: .* from 0 to 1, got 1.5"):
        small("vip", other_goal=1.5)
    with pytest.raises(ReprlError, match=r"data.other_goal needs tuples with a goal frame .* set data.other_goal to 0"):
        small("r3m", other_goal=0.5)
    small("liv", other_goal=0.5)  # liv draws a goal frame too (liv_last)


def test_collated_frames_keep_each_tuple_in_role_order_in_either_layout():
    """stack_images gives the same values as torch.stack for channels-last and default-layout images, in
    channels-last memory; collate_tuples puts frame i of every tuple under role i."""
    rng = np.random.default_rng(0)
    ims = [torch.from_numpy(rng.integers(0, 255, (4, 5, 3), dtype=np.uint8)).permute(2, 0, 1) for _ in range(3)]
    for images in (ims, [im.contiguous() for im in ims]):
        out = stack_images(images)
        assert torch.equal(out, torch.stack(images)) and out.is_contiguous(memory_format=torch.channels_last)
    tuples = [{"frames": torch.stack([ims[k], ims[(k + 1) % 3]]), "indices": {"a": k, "b": k + 1}, "length": 9,
               "text": "", "key": f"v{k}"} for k in range(3)]
    batch = collate_tuples(tuples, ("a", "b"))
    assert torch.equal(batch.frames["a"], torch.stack(ims))
    assert torch.equal(batch.frames["b"], torch.stack(ims[1:] + ims[:1]))
    assert batch.indices["b"].tolist() == [1, 2, 3] and batch.goal_from == ["", "", ""]


def test_other_goal_counts_a_video_without_a_success_flag_as_successful(tmp_path):
    """Plain expert videos carry no 'succeeded' field: they lend and borrow goals like successful ones."""
    videos = [flat_video("a0", "a", 10), flat_video("a1", "a", 40)]
    for v in videos:
        v["json"] = json.dumps({k: w for k, w in json.loads(v["json"]).items() if k != "succeeded"}).encode()
    write_tar(tmp_path / "s.tar", videos)
    batches = take(TupleStream(str(tmp_path / "s.tar"), small("vip", batch_size=1, shuffle_buffer=1, augment=False,
                                                              other_goal=1.0)), 2)
    assert [b.goal_from[0] for b in batches] == ["", "a0"]
    assert round(float(batches[1].frames["goal"].float().mean())) == 110  # a0's last frame


def test_other_goal_forgets_the_goals_of_an_earlier_iteration(tmp_path):
    """Each iteration starts with no goal to borrow: its first video keeps its own goal even though the
    previous iteration ended on another successful video of the same task."""
    write_tar(tmp_path / "s.tar", [flat_video("a0", "a", 10), flat_video("a1", "a", 40)])
    stream = TupleStream(str(tmp_path / "s.tar"), small("vip", batch_size=1, shuffle_buffer=1, other_goal=1.0))
    assert [b.goal_from[0] for b in take(stream, 2)] == ["", "a0"]
    assert [b.goal_from[0] for b in take(stream, 2)] == ["", "a0"]


def test_other_goal_zero_draws_exactly_what_a_stream_without_task_names_draws(tmp_path):
    """With other_goal 0 no random draw is spent on goals: videos with task names give the very same tuples
    (indices and crops) as the same videos without them."""
    def videos(task: str) -> list[dict[str, bytes]]:
        return [flat_video(f"v{i}", task, 10 * i, n=8) for i in range(4)]

    write_tar(tmp_path / "named.tar", videos("a"))
    write_tar(tmp_path / "unnamed.tar", videos(""))
    cfg = small("vip", batch_size=2, shuffle_buffer=3, other_goal=0.0, tuples_per_video=2)
    named, unnamed = (take(TupleStream(str(tmp_path / f"{k}.tar"), cfg), 8) for k in ("named", "unnamed"))
    for a, b in zip(named, unnamed):
        assert a.key == b.key and all(torch.equal(a.indices[r], b.indices[r]) for r in a.roles)
        assert all(torch.equal(a.frames[r], b.frames[r]) for r in a.roles)
