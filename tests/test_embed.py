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
    got = embed_video(enc, video, batch_size=7)  # batches of 7 do not divide the video's length
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
