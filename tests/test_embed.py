import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HELDOUT_SHARDS, VIDEO
from PIL import Image

import reprl
from reprl.cli import main
from reprl.encoders.io import save_encoder


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_encoder(reprl.load("resnet18", image_size=64, embed_dim=32), tmp_path_factory.mktemp("e") / "enc"))


def cli(*args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def video_frames():
    from reprl.data.sources import VideoSource
    from reprl.data.video import open_reader

    with open_reader(VideoSource(path=str(VIDEO), kind="video")) as reader:
        return [get() for _, get in reader.read()]


def test_video_with_last_frame_goal_writes_every_output(encoder_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli("embed", VIDEO, "--encoder", encoder_dir, "--out", str(out), "--batch-size", "16") == 0
    assert "look at" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "frames.csv", "summary.json", "values.png"]
    emb = np.load(out / "embeddings.npy")
    n = len(video_frames())
    assert emb.shape == (n, 32) and emb.dtype == np.float32
    table = rows(out / "frames.csv")
    assert list(table[0]) == ["frame", "time_s", "value", "reward"] and len(table) == n
    vals = np.array([float(r["value"]) for r in table])
    assert vals[-1] == pytest.approx(0.0, abs=1e-5)  # V(goal; goal) = 0 for -L2
    assert [float(r["reward"]) for r in table[:-1]] == pytest.approx(np.diff(vals).tolist(), abs=1e-5)
    assert table[-1]["reward"] == "" and float(table[1]["time_s"]) == pytest.approx(0.05)
    s = json.loads((out / "summary.json").read_text())
    from reprl.rewards import bump_rate, voc

    assert s["frames"] == n and s["voc"] == pytest.approx(voc(vals), abs=1e-4)
    assert s["bump_rate"] == pytest.approx(bump_rate(vals)) and s["goal"]["kind"] == "last_frame"
    assert s["encoder"]["similarity"] == "l2" and s["timing"]["images_per_s"] > 0
    assert Image.open(out / "values.png").size[0] > 600
    # the embeddings are the encoder's, frame for frame
    enc = reprl.load(encoder_dir)
    np.testing.assert_allclose(emb, enc(np.stack(video_frames())).numpy(), atol=1e-5)


def test_frame_folder_image_glob_and_video_agree(encoder_dir, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(video_frames()):
        Image.fromarray(f).save(folder / f"img{i}.png")  # lossless copies of the decoded video frames
    for name, src in (("video", VIDEO), ("folder", str(folder)), ("glob", str(folder / "img*.png"))):
        assert cli("embed", src, "--encoder", encoder_dir, "--out", str(tmp_path / name), "--no-progress") == 0
    ref = np.load(tmp_path / "video" / "embeddings.npy")
    np.testing.assert_allclose(np.load(tmp_path / "folder" / "embeddings.npy"), ref, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "glob" / "embeddings.npy"), ref, atol=1e-5)


def test_image_goal_of_another_size_and_channel_count_and_frame_goal(encoder_dir, tmp_path):
    frames = video_frames()
    goal = Image.fromarray(frames[-1]).resize((100, 100)).convert("L")  # other size, one channel
    goal.save(tmp_path / "goal.png")
    assert cli("embed", VIDEO, "--encoder", encoder_dir, "--goal", str(tmp_path / "goal.png"), "--out",
               str(tmp_path / "img")) == 0
    s = json.loads((tmp_path / "img" / "summary.json").read_text())
    assert s["goal"] == {"kind": "image", "description": str(tmp_path / "goal.png")}
    assert cli("embed", VIDEO, "--encoder", encoder_dir, "--goal-frame", "10", "--out", str(tmp_path / "f")) == 0
    vals = [float(r["value"]) for r in rows(tmp_path / "f" / "frames.csv")]
    assert vals[10] == pytest.approx(0.0, abs=1e-5) and max(vals) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.slow
def test_text_goal_with_a_language_encoder(tmp_path):
    out = tmp_path / "text"
    assert cli("embed", VIDEO, "--encoder", "clip-rn50", "--goal-text", "open the drawer", "--out", str(out),
               "--batch-size", "32") == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["goal"] == {"kind": "text", "description": "open the drawer"} and s["encoder"]["similarity"] == "cosine"
    vals = np.array([float(r["value"]) for r in rows(out / "frames.csv")])
    assert np.all(np.abs(vals) <= 1 / 0.02 + 1e-3)  # cosine / (1 - gamma)


def test_shards_give_one_row_set_per_video_and_an_aggregate(encoder_dir, tmp_path):
    out = tmp_path / "sh"
    assert cli("embed", HELDOUT_SHARDS, "--encoder", encoder_dir, "--out", str(out), "--parquet") == 0
    videos = rows(out / "videos.csv")
    assert len(videos) == 3 and {v["task"] for v in videos} == {"drawer-open"}
    frames = rows(out / "frames.csv")
    assert sum(int(v["frames"]) for v in videos) == len(frames) and set(frames[0]) >= {"key", "frame", "value"}
    assert len(list((out / "embeddings").glob("*.npy"))) == 3 and len(list((out / "plots").glob("*.png"))) == 3
    s = json.loads((out / "summary.json").read_text())
    assert s["videos"] == 3 and s["voc"] == pytest.approx(np.mean([float(v["voc"]) for v in videos]))
    import pyarrow.parquet as pq

    assert pq.read_table(out / "videos.parquet").num_rows == 3


@pytest.mark.parametrize("args, message", [
    (["/no/such.mp4"], "input not found"),
    (["README.md"], "unsupported input"),
    (["'*.nothing.png'"], "no images"),
])
def test_bad_inputs_exit_2_and_leave_no_output(encoder_dir, tmp_path, capsys, args, message):
    spec = args[0].strip("'")
    assert cli("embed", spec, "--encoder", encoder_dir, "--out", str(tmp_path / "o")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_videos_goals_and_checkpoints(encoder_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00 ftypisom broken")
    checks = [
        ([str(tmp_path / "empty")], "holds no frames"),
        ([str(tmp_path / "broken.mp4")], "cannot open video"),
        ([VIDEO, "--goal-text", "open the drawer"], "no text tower"),
        ([VIDEO, "--goal", str(tmp_path / "nope.png")], "goal image not found"),
        ([VIDEO, "--goal-frame", "first"], "--goal-frame takes"),
        ([VIDEO, "--goal-frame", "1000"], "outside the input's 97 frames"),
        ([VIDEO, "--goal-frame", "3", "--goal-text", "x"], "give one goal"),
        ([VIDEO, "--precision", "16"], "needs a CUDA device"),
    ]
    for args, message in checks:
        assert cli("embed", *args, "--encoder", encoder_dir, "--out", str(tmp_path / "o")) == 2, args
        assert message in capsys.readouterr().err, message
        assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad_enc"
    save_encoder(reprl.load(encoder_dir), bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["params"]["depth"] = 34
    (bad / "config.json").write_text(json.dumps(cfg))
    assert cli("embed", VIDEO, "--encoder", str(bad), "--out", str(tmp_path / "o")) == 2
    assert "disagree" in capsys.readouterr().err
    (bad / "model.safetensors").write_bytes(b"xx")
    assert cli("embed", VIDEO, "--encoder", str(bad), "--out", str(tmp_path / "o")) == 2
    assert "corrupt" in capsys.readouterr().err


def test_a_goal_frame_outside_a_video_of_known_length_is_refused_before_embedding(encoder_dir, tmp_path, monkeypatch,
                                                                                   capsys):
    import reprl.embed.run as run_mod

    monkeypatch.setattr(run_mod, "_embed_one", lambda *a: pytest.fail("embedded before the goal frame was checked"))
    for frame in ("97", "-98"):
        assert cli("embed", VIDEO, "--encoder", encoder_dir, "--goal-frame", frame, "--out", str(tmp_path / "o")) == 2
        assert "outside the input's 97 frames" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_existing_output_is_kept_and_a_failure_leaves_it_intact(encoder_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    assert cli("embed", VIDEO, "--encoder", encoder_dir, "--out", str(out)) == 0
    before = (out / "summary.json").read_text()
    assert cli("embed", VIDEO, "--encoder", encoder_dir, "--out", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    import reprl.embed.run as run_mod

    monkeypatch.setattr(run_mod, "plot_video", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        main(["embed", VIDEO, "--encoder", encoder_dir, "--out", str(out), "--overwrite"])
    assert (out / "summary.json").read_text() == before
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".o.")]


def test_embed_video_decodes_in_batches_and_matches_embedding_the_whole_video(encoder_dir):
    from reprl.data.reader import expand_urls, iter_videos
    from reprl.embed.pipeline import embed_video

    enc = reprl.load(encoder_dir).eval()
    video = next(iter_videos(expand_urls(HELDOUT_SHARDS)))
    assert len(video) % 8 != 0  # so batches of 8 end with a short one
    got = embed_video(enc, video, batch_size=8)
    with torch.inference_mode():
        want = enc(video.decode())
    assert got.shape == (len(video), 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


class _RowMeans:
    """A stand-in encoder: each frame's embedding is its pixel mean and its position in its batch, so outputs
    put back out of order or with another batching are caught."""

    device = torch.device("cpu")

    def __init__(self, fail_at=None):
        self.fail_at, self.calls, self.threads = fail_at, 0, set()

    def preprocess(self, x):
        return x.float()

    def encode(self, x):
        import threading

        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("encoder broke")
        return torch.stack([x.mean(dim=(1, 2, 3)), torch.arange(len(x), dtype=torch.float32)], 1)


def _frames_source(frames, count=True):
    from reprl.embed.frame_sources import FrameSource, array_batches

    return FrameSource(name="v", kind="frames", count=len(frames) if count else None, _open=array_batches(frames))


@pytest.mark.parametrize("callers", [1, 2, 4])
@pytest.mark.parametrize("count_known", [True, False])
def test_several_encoder_callers_keep_frame_order_and_restore_threads(monkeypatch, callers, count_known):
    import reprl.embed.pipeline as pipeline

    monkeypatch.setattr(pipeline, "encoder_callers", lambda device: (callers, 1))
    frames = torch.arange(23, dtype=torch.uint8).view(23, 1, 1, 1).expand(23, 3, 4, 4).contiguous()
    enc, before = _RowMeans(), torch.get_num_threads()
    emb, stats = pipeline.embed_source(enc, _frames_source(frames, count_known), batch_size=8)
    assert torch.get_num_threads() == before
    assert emb[:, 0].tolist() == [float(i) for i in range(23)]  # every frame once, in frame order
    # with the count known, batches shrink so that every caller gets one: 23 frames, 4 callers -> 6 + 6 + 6 + 5;
    # 2 callers already get 8 + 8 + 7, the batch size asked for
    size = 6 if callers == 4 and count_known else 8
    assert emb[:, 1].tolist() == [float(i % size) for i in range(23)]
    assert stats.frames == 23 and enc.calls == -(-23 // size)
    assert len(enc.threads) <= callers


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_an_encoder_error_on_any_caller_reaches_the_caller_without_hanging(monkeypatch, fail_at):
    import reprl.embed.pipeline as pipeline

    monkeypatch.setattr(pipeline, "encoder_callers", lambda device: (2, 1))
    frames = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="encoder broke"):
        pipeline.embed_source(_RowMeans(fail_at=fail_at), _frames_source(frames), batch_size=4)


def test_a_source_error_reaches_the_caller(monkeypatch):
    import reprl.embed.pipeline as pipeline
    from reprl.embed.frame_sources import FrameSource
    from reprl.errors import ReprlError

    def broken(size):
        yield torch.zeros(size, 3, 4, 4, dtype=torch.uint8)
        raise ReprlError("v: video stopped decoding")

    monkeypatch.setattr(pipeline, "encoder_callers", lambda device: (2, 1))
    with pytest.raises(ReprlError, match="stopped decoding"):
        pipeline.embed_source(_RowMeans(), FrameSource(name="v", kind="video", _open=broken), batch_size=4)


def test_a_compiled_encoder_is_called_from_one_thread(monkeypatch):
    import reprl.embed.pipeline as pipeline

    monkeypatch.setattr(pipeline, "encoder_callers", lambda device: (2, 1))
    enc = _RowMeans()
    enc.encode = enc.encode  # what compile_encode() does: an instance attribute replaces the method
    frames = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    emb, _ = pipeline.embed_source(enc, _frames_source(frames), batch_size=4)
    assert len(emb) == 40 and len(enc.threads) == 1 and enc.calls == 10


@pytest.mark.parametrize("cores, threads, expected", [(2, 1, (1, 1)), (2, 2, (2, 1)), (16, 16, (4, 4)),
                                                      (2, 8, (2, 4)), (1, 4, (1, 4)), (8, 3, (3, 1))])
def test_encoder_callers_on_the_cpu(monkeypatch, cores, threads, expected):
    import reprl.embed.pipeline as pipeline
    from reprl.utils.machine import torch_threads

    monkeypatch.setattr(pipeline, "usable_cores", lambda: cores)
    with torch_threads(threads):
        assert pipeline.encoder_callers(torch.device("cpu")) == expected
        assert pipeline.encoder_callers(torch.device("cuda")) == (1, threads)


@pytest.mark.parametrize("count", [1, 7, 48, 49, 300, 1001])
def test_thumbnails_with_the_count_known_keep_the_same_frames_resizing_only_those(count):
    from reprl.embed.pipeline import Thumbnails

    frames = torch.randint(0, 255, (count, 3, 16, 16), dtype=torch.uint8)
    known, unknown = Thumbnails(count=count), Thumbnails()
    for start in range(0, count, 32):
        known.add(start, frames[start:start + 32])
        unknown.add(start, frames[start:start + 32])
    assert sorted(known.frames) == sorted(unknown.frames) and len(known.frames) <= 48
    assert known.stride == unknown.stride and all(i % known.stride == 0 for i in known.frames)
    assert [i for i, _ in known.pick(7)] == [i for i, _ in unknown.pick(7)]
    assert known.pick(7)[-1][0] == count - 1  # the last frame is always there to pick
    for (_, a), (_, b) in zip(known.pick(7), unknown.pick(7)):
        torch.testing.assert_close(a, b, atol=1, rtol=0)  # a batch resize and a one-frame resize, within 1 level


# -- hand-computed checks of the numbers `reprl embed` writes and draws ---------------------------------------

class _Brightness:
    """A stand-in encoder for run_embed: a frame's embedding is its mean pixel level (one dimension) and the
    value is -L2, so V(o_t; g) = -|b_t - b_g| can be worked out by hand."""

    device = torch.device("cpu")
    has_text = False

    def __init__(self):
        from types import SimpleNamespace

        self.config = SimpleNamespace(name="brightness", label="brightness", embed_dim=1, similarity="l2",
                                      image_size=8, source="test")

    def preprocess(self, x):
        return x.float()

    def encode(self, x):
        return x.float().mean(dim=(1, 2, 3))[:, None]

    def similarity(self, a, b):
        return -(a - b).norm(dim=-1)


def _gray_frames(folder, levels):
    """A frame folder whose frame t is a flat image of level levels[t] (lossless PNG)."""
    folder.mkdir(parents=True)
    for i, level in enumerate(levels):
        Image.fromarray(np.full((8, 8, 3), level, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _embed_with_brightness(monkeypatch, **opts):
    """run_embed with the stand-in encoder; every video's timing is fixed (wall 0.5 s, decode 0.25 s, model
    0.125 s), so the summary's timing is hand-computable too."""
    import reprl.embed.run as run_mod
    from reprl.options import EmbedOptions

    real = run_mod.embed_source

    def timed(*args, **kwargs):
        emb, stats = real(*args, **kwargs)
        stats.wall_s, stats.produce_s, stats.compute_s = 0.5, 0.25, 0.125
        return emb, stats

    monkeypatch.setattr(run_mod, "embed_source", timed)
    monkeypatch.setattr(reprl, "load", lambda *a, **k: _Brightness())
    return run_mod.run_embed(EmbedOptions(encoder="brightness", progress=False, **opts))


def test_one_video_summary_and_rows_are_the_hand_computed_values(tmp_path, monkeypatch):
    # levels 10, 50, 30, 70; goal = last frame (70): V = -|b - 70| = -60, -20, -40, 0; rewards 40, -20, 40.
    # VOC: ranks of V are 0, 2, 1, 3 against 0, 1, 2, 3; centred (-1.5, .5, -.5, 1.5) . (-1.5, -.5, .5, 1.5) = 4,
    # each norm^2 = 5, so VOC = 4 / 5 = 0.8. Bump rate: 1 negative reward of 3 = 1/3.
    out = tmp_path / "out"
    s = _embed_with_brightness(monkeypatch, input=str(_gray_frames(tmp_path / "v", [10, 50, 30, 70])), out=str(out))
    assert s["frames"] == 4 and s["voc"] == pytest.approx(0.8) and s["bump_rate"] == pytest.approx(1 / 3)
    assert s["value_first"] == pytest.approx(-60.0) and s["value_last"] == pytest.approx(0.0)
    # timing: 4 frames in the fixed 0.5 s -> 8 images/s
    assert {k: v for k, v in s["timing"].items() if k != "total_s"} == {"embed_s": 0.5, "images_per_s": 8.0,
                                                                        "decode_preprocess_s": 0.25, "model_s": 0.125}
    table = rows(out / "frames.csv")
    assert [float(r["value"]) for r in table] == pytest.approx([-60, -20, -40, 0])
    assert [r["reward"] for r in table[-1:]] == [""]
    assert [float(r["reward"]) for r in table[:-1]] == pytest.approx([40, -20, 40])
    # two frames are enough for both scores: V = -60, 0 -> VOC 1, bump rate 0
    s = _embed_with_brightness(monkeypatch, input=str(_gray_frames(tmp_path / "two", [10, 70])),
                               out=str(tmp_path / "out2"))
    assert (s["frames"], s["voc"], s["bump_rate"]) == (2, pytest.approx(1.0), pytest.approx(0.0))


def test_a_folder_of_videos_summary_means_over_videos_by_hand(tmp_path, monkeypatch):
    # a: levels 10, 50, 30, 70 -> V -60, -20, -40, 0: VOC 0.8, bump rate 1/3 (as in the one-video test)
    # b: levels 10, 30, 50, 70 -> V -60, -40, -20, 0: VOC 1, bump rate 0
    # c: levels 10, 40, 70     -> V -60, -30, 0:      VOC 1, bump rate 0
    # means: VOC 2.8 / 3 = 0.9333, bump rate (1/3) / 3 = 1/9 (the medians would be 1 and 0); 4 + 4 + 3 = 11 frames;
    # timing: 3 videos of 0.5 s wall -> 1.5 s, 11 / 1.5 = 7.33 images/s, decode 0.75 s, model 0.375 s
    videos = tmp_path / "videos"
    for name, levels in (("a", [10, 50, 30, 70]), ("b", [10, 30, 50, 70]), ("c", [10, 40, 70])):
        _gray_frames(videos / name, levels)
    out = tmp_path / "out"
    s = _embed_with_brightness(monkeypatch, input=str(videos), out=str(out))
    assert s["kind"] == "videos" and s["videos"] == 3 and s["frames"] == 11
    assert s["voc"] == pytest.approx(2.8 / 3) and s["bump_rate"] == pytest.approx(1 / 9)
    assert {k: v for k, v in s["timing"].items() if k != "total_s"} == {"embed_s": 1.5, "images_per_s": 7.33,
                                                                        "decode_preprocess_s": 0.75, "model_s": 0.375}
    table = rows(out / "videos.csv")
    assert [r["frames"] for r in table] == ["4", "4", "3"]
    assert [float(r["voc"]) for r in table] == pytest.approx([0.8, 1.0, 1.0])
    assert [float(r["bump_rate"]) for r in table] == pytest.approx([1 / 3, 0.0, 0.0])
    assert [(float(r["value_first"]), float(r["value_last"])) for r in table] == [(-60.0, 0.0)] * 3
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["0000000_a.png", "0000001_b.png", "0000002_c.png"]
    # --max-videos 2 --plots 1: the first two videos only, a full figure for the first one only
    s = _embed_with_brightness(monkeypatch, input=str(videos), out=str(tmp_path / "two"), max_videos=2, plots=1)
    assert (s["videos"], s["frames"]) == (2, 8)
    assert s["voc"] == pytest.approx(0.9) and s["bump_rate"] == pytest.approx(1 / 6)
    assert [p.name for p in (tmp_path / "two" / "plots").iterdir()] == ["0000000_a.png"]


def test_thumbnails_by_hand_keep_the_last_frame_and_pick_evenly():
    from reprl.embed.pipeline import Thumbnails

    frames = torch.stack([torch.full((3, 8, 8), 10 * i, dtype=torch.uint8) for i in range(12)])  # frame i: level 10 i
    thumbs = Thumbnails(keep=4, size=2)
    thumbs.add(0, frames[0:4])  # stride 1: frames 0-3 held, at most keep (4) of them
    assert sorted(thumbs.frames) == [0, 1, 2, 3] and thumbs.stride == 1
    thumbs.add(4, frames[4:8])  # 0-7 is 8 > 4: stride 2 -> 0, 2, 4, 6
    assert sorted(thumbs.frames) == [0, 2, 4, 6] and thumbs.stride == 2
    thumbs.add(8, frames[8:12])  # + 8, 10 is 6 > 4: stride 4 -> 0, 4, 8; the last frame 11 is held apart
    assert sorted(thumbs.frames) == [0, 4, 8] and thumbs.stride == 4
    assert {i: int(img.float().mean()) for i, img in thumbs.frames.items()} == {0: 0, 4: 40, 8: 80}
    assert thumbs.last is not None and thumbs.last[0] == 11 and thumbs.last[1].shape == (3, 2, 2)
    assert thumbs.last[1].unique().tolist() == [110]  # the image of frame 11, not of another row of its batch
    # pick(4) takes all four (0, 4, 8, 11); pick(3): step (4 - 1) / (3 - 1) = 1.5 -> items round(0, 1.5, 3) = 0, 2, 3
    assert [i for i, _ in thumbs.pick(4)] == [0, 4, 8, 11]
    assert [(i, int(img.float().mean())) for i, img in thumbs.pick(3)] == [(0, 0), (8, 80), (11, 110)]


def test_embed_stats_images_per_second_and_thumbnails_of_the_pipeline(monkeypatch):
    import reprl.embed.pipeline as pipeline
    from reprl.embed.pipeline import EmbedStats

    assert EmbedStats(frames=30, wall_s=2.0).images_per_s == 15.0  # 30 frames / 2 s
    assert EmbedStats(frames=5).images_per_s == 0.0  # no time measured: no rate
    monkeypatch.setattr(pipeline, "encoder_callers", lambda device: (1, 1))
    frames = torch.arange(23, dtype=torch.uint8).view(23, 1, 1, 1).expand(23, 3, 4, 4).contiguous()
    _, stats = pipeline.embed_source(_RowMeans(), _frames_source(frames), batch_size=8)
    # 23 frames <= 48 kept: every frame is a thumbnail under its own index (batches of 8 start at 0, 8, 16)
    assert stats.thumbnails.stride == 1 and sorted(stats.thumbnails.frames) == list(range(23))
    assert all(img.unique().tolist() == [i] for i, img in stats.thumbnails.frames.items())


def test_autocast_uses_the_precision_asked_for():
    import contextlib

    from reprl.embed.pipeline import autocast

    assert autocast(torch.device("cpu"), "bf16").fast_dtype == torch.bfloat16
    assert autocast(torch.device("cpu"), "bf16-mixed").fast_dtype == torch.bfloat16
    assert isinstance(autocast(torch.device("cpu"), "32"), contextlib.nullcontext)


def test_spans_and_video_batches_cover_every_frame_once(monkeypatch):
    import reprl.embed.pipeline as pipeline
    from reprl.data.reader import expand_urls, iter_videos
    from reprl.embed.frame_sources import _video_batches, spans

    assert list(spans(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(spans(1, 4)) == [(0, 1)] and list(spans(0, 4)) == []
    # the 97 frames of the test video in batches of 16: 6 full batches and one of 97 - 96 = 1
    assert [len(b) for b in _video_batches(VIDEO)(16)] == [16] * 6 + [1]
    # a shard video of 105 frames in batches of 8: 13 full batches and a last one of 105 - 104 = 1 frame
    monkeypatch.setattr(pipeline, "encoder_callers", lambda device: (1, 1))
    video = next(iter_videos(expand_urls(HELDOUT_SHARDS)))
    assert len(video) == 105
    emb = pipeline.embed_video(_RowMeans(), video, batch_size=8)
    assert emb[:, 1].tolist() == [float(i % 8) for i in range(105)]  # each frame's position in its batch


def _captured_figures(monkeypatch):
    """The figures reprl.embed.plot draws, kept open (it closes each once saved) so their contents can be read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: list = []
    monkeypatch.setattr(plt, "close", figs.append)
    return figs


def test_plot_video_draws_values_against_time_and_rewards_as_coloured_bars(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from reprl.embed.plot import plot_video

    figs = _captured_figures(monkeypatch)
    thumbs = [(0, torch.zeros(3, 4, 4, dtype=torch.uint8)), (3, torch.zeros(3, 4, 4, dtype=torch.uint8))]
    values = np.array([0.0, 1.0, 3.0, 2.0])
    plot_video(tmp_path / "v.png", values, np.diff(values), thumbs, title="t", fps=2.0)
    (fig,) = figs
    ax_v, ax_r = fig.axes[-2:]
    # 2 fps: frame t at t / 2 s -> 0, 0.5, 1, 1.5; thumbnails of frames 0 and 3 are marked at 0 s and 1.5 s
    assert ax_v.lines[0].get_xdata().tolist() == [0.0, 0.5, 1.0, 1.5]
    assert [line.get_xdata()[0] for line in ax_v.lines[1:]] == [0.0, 1.5]
    # rewards 1, 2, -1 start at frames 0, 1, 2 (0, 0.5, 1 s), one frame (0.5 s) wide: up green, down red
    bars = ax_r.patches
    assert [(b.get_x(), b.get_width(), b.get_height()) for b in bars] == [(0.0, 0.5, 1.0), (0.5, 0.5, 2.0),
                                                                         (1.0, 0.5, -1.0)]
    green, red = to_rgba("tab:green"), to_rgba("tab:red")
    assert [tuple(b.get_facecolor()) for b in bars] == [green, green, red]
    plt.close(fig)


def test_plot_many_gives_every_video_a_panel_up_to_the_limit(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from reprl.embed.plot import plot_many, short_name

    figs = _captured_figures(monkeypatch)
    curves = [(f"video{i}", np.arange(3.0), 0.5) for i in range(7)]
    plot_many(tmp_path / "m.png", curves, "title", max_panels=6)
    (fig,) = figs
    # 6 of the 7 videos, 4 columns -> 2 rows of 4 panels, 6 of them drawn
    drawn = [ax for ax in fig.axes if ax.lines]
    assert len(fig.axes) == 8 and [ax.get_title() for ax in drawn] == [f"video{i}\nVOC +0.50" for i in range(6)]
    plt.close(fig)
    # 16 characters in 10: head (10 - 1) // 2 = 4, the ellipsis, tail 10 - 1 - 4 = 5
    assert short_name("abcdefghijklmnop", 10) == "abcd\u2026lmnop"


def test_the_value_plots_get_each_videos_values_and_rewards(tmp_path, monkeypatch):
    """What run_embed hands plot_video, one video and a folder: levels 10, 50, 30, 70 (goal 70) -> values -60,
    -20, -40, 0 and rewards V_{t+1} - V_t = 40, -20, 40; levels 10, 40, 70 -> -60, -30, 0 and 30, 30."""
    import reprl.embed.run as run_mod

    drawn = []
    monkeypatch.setattr(run_mod, "plot_video", lambda path, values, rewards, thumbs, **kw: drawn.append(
        (path.name, np.asarray(values).tolist(), np.asarray(rewards).tolist())))
    _embed_with_brightness(monkeypatch, input=str(_gray_frames(tmp_path / "v", [10, 50, 30, 70])),
                           out=str(tmp_path / "one"))
    assert drawn == [("values.png", [-60.0, -20.0, -40.0, 0.0], [40.0, -20.0, 40.0])]
    drawn.clear()
    videos = tmp_path / "videos"
    _gray_frames(videos / "a", [10, 50, 30, 70])
    _gray_frames(videos / "c", [10, 40, 70])
    _embed_with_brightness(monkeypatch, input=str(videos), out=str(tmp_path / "many"))
    assert sorted((v, r) for _, v, r in drawn) == [([-60.0, -30.0, 0.0], [30.0, 30.0]),
                                                  ([-60.0, -20.0, -40.0, 0.0], [40.0, -20.0, 40.0])]
