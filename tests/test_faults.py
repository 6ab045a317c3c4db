"""Bad inputs and faults of the data commands (shards, embed, convert, score, eval) and the encoder API: each
test checks what the user sees and that their data are intact. The cases are listed in fault_cases.py,
which docs/reliability.md's table is generated from (checked here)."""

import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HELDOUT_SHARDS, TRAIN_SHARDS, make_frame_folder
from fault_cases import BY_ID, case, doc_table, render_table
from PIL import Image

import reprl
from reprl.cli import main
from reprl.encoders.io import WEIGHTS, save_encoder
from reprl.errors import ReprlError


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code


def one_line_error(capsys, command: str, *args: str) -> str:
    """Run `reprl command args`; it must exit 2 with one line on stderr and no traceback. Returns the line."""
    assert cli(command, *args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"reprl {command}: error: ") and "Traceback" not in err, err
    return err


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes (or the file itself): for byte-for-byte comparisons."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> str:
    torch.manual_seed(0)
    return str(save_encoder(reprl.load("tiny", image_size=32, embed_dim=8), tmp_path_factory.mktemp("e") / "enc"))


@pytest.fixture(scope="module")
def nan_encoder_dir(encoder_dir, tmp_path_factory) -> str:
    """The same encoder with one NaN weight, written directly (save_encoder refuses to)."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("nan") / "enc"
    out.mkdir()
    (out / "config.json").write_bytes((Path(encoder_dir) / "config.json").read_bytes())
    state = load_file(str(Path(encoder_dir) / WEIGHTS))
    state["convnet.0.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(out / WEIGHTS))
    return str(out)


def shard_with_keys(path: Path, keys: list[str], frames: int = 3) -> Path:
    """A tar shard, one sample per key, as webdataset writes it (KEY.json, KEY.000000.jpg, ...)."""
    with tarfile.open(path, "w") as tar:
        for key in keys:
            members = {f"{key}.json": json.dumps({"fps": 10}).encode()}
            for i in range(frames):
                buf = io.BytesIO()
                Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(buf, format="JPEG")
                members[f"{key}.{i:06d}.jpg"] = buf.getvalue()
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@case("embed-key-traversal")
def test_embed_key_cannot_escape_out(encoder_dir, tmp_path):
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    (tmp_path / "a" / "b" / "x").mkdir()  # where out/embeddings/../../../x/NAME.npy would land
    shard = shard_with_keys(work / "evil.tar", ["../../../x/NAME"])
    before = {p for p in tmp_path.rglob("*")}
    assert cli("embed", shard, "--encoder", encoder_dir, "--out", work / "out", "--no-progress") == 0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == work / "out" or (work / "out") in p.parents for p in new)
    assert not list(tmp_path.rglob("NAME*"))
    [name] = [p.name for p in (work / "out" / "embeddings").iterdir()]
    assert re.fullmatch(r"x_NAME-[0-9a-f]{8}\.npy", name)


@case("embed-key-slash")
def test_embed_key_with_slash_works(encoder_dir, tmp_path):
    shard = shard_with_keys(tmp_path / "s.tar", ["robot/ep 1", "robot/ep 2"])
    assert cli("embed", shard, "--encoder", encoder_dir, "--out", tmp_path / "out", "--no-progress") == 0
    import csv

    with open(tmp_path / "out" / "videos.csv") as f:
        videos = list(csv.DictReader(f))
    assert [v["key"] for v in videos] == ["robot/ep 1", "robot/ep 2"]
    files = [tmp_path / "out" / v["embeddings"] for v in videos]
    assert len(set(files)) == 2 and all(np.load(f).shape == (3, 8) for f in files)
    assert all(f.parent == tmp_path / "out" / "embeddings" for f in files)


@case("shards-out-is-input")
def test_shards_refuse_out_that_is_the_input(tmp_path, capsys):
    frames = tmp_path / "frames"
    make_frame_folder(frames / "v1", 4)
    before = tree(frames)
    err = one_line_error(capsys, "shards", frames, "--out", frames, "--overwrite")
    assert "is the input" in err and tree(frames) == before
    one_line_error(capsys, "shards", frames, "--out", frames / "v1" / "inside", "--overwrite")
    assert tree(frames) == before


@case("embed-out-contains-input")
def test_embed_refuses_out_containing_the_input(encoder_dir, tmp_path, capsys):
    frames = make_frame_folder(tmp_path / "data" / "frames", 4)
    before = tree(tmp_path / "data")
    err = one_line_error(capsys, "embed", frames, "--encoder", encoder_dir, "--out", tmp_path / "data", "--overwrite")
    assert "contains the input" in err and tree(tmp_path / "data") == before


@case("out-is-file")
@pytest.mark.parametrize("command", ["shards", "embed", "convert"])
def test_plain_file_out_is_never_deleted(command, encoder_dir, tmp_path, capsys):
    frames = make_frame_folder(tmp_path / "frames" / "v1", 4)
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    args = {"shards": [tmp_path / "frames"], "embed": [frames, "--encoder", encoder_dir], "convert": [encoder_dir]}
    err = one_line_error(capsys, command, *args[command], "--out", target, "--overwrite")
    assert "is a file" in err and target.read_text() == "my notes"


@case("out-not-own")
@pytest.mark.parametrize("command", ["shards", "embed", "convert"])
def test_overwrite_refuses_a_folder_the_command_did_not_write(command, encoder_dir, tmp_path, capsys):
    frames = make_frame_folder(tmp_path / "frames" / "v1", 4)
    other = tmp_path / "mine"
    make_frame_folder(other, 2)
    before = tree(other)
    args = {"shards": [tmp_path / "frames"], "embed": [frames, "--encoder", encoder_dir], "convert": [encoder_dir]}
    err = one_line_error(capsys, command, *args[command], "--out", other, "--overwrite")
    assert f"not an output of reprl {command}" in err and "--force-overwrite" in err and tree(other) == before
    assert cli(command, *args[command], "--out", other, "--force-overwrite") == 0
    assert "0.png" not in tree(other)


@case("out-own-rerun")
@pytest.mark.parametrize("command", ["shards", "embed", "convert"])
def test_overwrite_replaces_the_commands_own_output_and_keeps_the_users_files(command, encoder_dir, tmp_path):
    frames = make_frame_folder(tmp_path / "frames" / "v1", 4)
    args = {"shards": [tmp_path / "frames"], "embed": [frames, "--encoder", encoder_dir, "--no-progress"],
            "convert": [encoder_dir]}[command]
    own = {"shards": "shard-000000.idx.json", "embed": "values.png", "convert": "model.safetensors"}[command]
    out = tmp_path / "out"
    assert cli(command, *args, "--out", out) == 0
    (out / own).write_text("edited")  # the command's own file: replaced
    (out / "notes.txt").write_text("the user's")  # not a name the command writes: kept
    (out / "mine").mkdir()
    (out / "mine" / "a.txt").write_text("the user's too")
    assert cli(command, *args, "--out", out, "--overwrite") == 0
    assert (out / own).read_bytes() != b"edited" and (out / "notes.txt").read_text() == "the user's"
    assert (out / "mine" / "a.txt").read_text() == "the user's too" and not list(tmp_path.glob(".out.*"))


@case("option-prefix")
def test_options_are_taken_only_as_written(tmp_path, capsys):
    """argparse would read `--force` as `--force-overwrite` (an unambiguous prefix) and delete the folder."""
    make_frame_folder(tmp_path / "frames" / "v1", 4)
    mine = tmp_path / "mine"
    make_frame_folder(mine, 2)
    before = tree(mine)
    err = one_line_error(capsys, "shards", tmp_path / "frames", "--out", mine, "--force")
    assert "unrecognized arguments: --force" in err and "reprl shards --help" in err and tree(mine) == before
    err = one_line_error(capsys, "shards", tmp_path / "frames", "--out", mine, "--quality", "high")
    assert "invalid int value: 'high'" in err and "see reprl shards --help" in err and tree(mine) == before


def test_embed_counts_are_checked_before_anything_is_loaded_or_written(encoder_dir, tmp_path, capsys):
    frames = make_frame_folder(tmp_path / "frames" / "v1", 4)
    for bad in (["--batch-size", "0"], ["--max-videos", "0"], ["--plots", "-1"]):
        err = one_line_error(capsys, "embed", frames, "--encoder", encoder_dir, "--out", tmp_path / "o" / "p", *bad)
        assert "--batch-size and --max-videos must be at least 1" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_common_mistakes_get_a_line_that_says_what_to_do(encoder_dir, tmp_path, capsys, monkeypatch):
    """An encoder given as LABEL=SOURCE where only a source is taken, a checkpoint path that does not exist, a
    video or an index.json where shards are read, a text file named .npz, a --set for a head without settings."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not read")
    (tmp_path / "fake.npz").write_text("not an archive")
    cases = [(["convert", f"vip={encoder_dir}", "--out", tmp_path / "o"], f"give the source alone: {encoder_dir}"),
             (["convert", tmp_path / "nope.pt", "--out", tmp_path / "o"], "not found: give the path of an existing"),
             (["stream", video], "is not a shard: give a shard folder"),
             (["score", Path(HELDOUT_SHARDS) / "index.json", "--encoder", f"e={encoder_dir}"], "is not a shard"),
             (["heads", "train", "--demos", tmp_path / "fake.npz", "--encoder", encoder_dir, "--head", "bc", "--out",
               tmp_path / "o"], "is not an .npz archive"),
             (["heads", "train", "--demos", tmp_path / "fake.npz", "--encoder", encoder_dir, "--head", "bc", "--set",
               "expectile=0.9", "--out", tmp_path / "o"], "in 'bc'; it takes no settings"),
             (["score", HELDOUT_SHARDS, "--encoder", f"={encoder_dir}"], "give LABEL=SOURCE with both parts"),
             (["bench", "train", "--config", "configs/pretrain/demo.yaml", "--encoder", "tiny"],
              "--encoder apply only without --config"),
             (["pretrain", "--config", "configs/pretrain/demo.yaml", "--run_dir", tmp_path / "run", "--data.train",
               TRAIN_SHARDS, "--trainer.devices", "3", "--data.batch_size", "4"],
              "must be divisible by the number of processes (3 devices x 1 nodes)")]
    for args, message in cases:
        err = one_line_error(capsys, *args)
        assert message in err, err
    monkeypatch.chdir(tmp_path)  # outside a clone: bench train's default shards (the test data) are not there
    assert "pass --shards, or run from a clone" in one_line_error(capsys, "bench", "train", "--steps", "1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.npz", "v.mp4"]


@case("shards-manifest-in-out")
def test_shards_never_replace_an_out_that_holds_videos_a_manifest_lists(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli("shards", make_frame_folder(tmp_path / "frames" / "v1", 4).parent, "--out", out) == 0
    capsys.readouterr()
    video = make_frame_folder(out / "v2", 4)  # a video the user keeps inside an earlier output
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,caption\n{video},open the drawer\n")
    before = tree(out)
    for flag in ("--overwrite", "--force-overwrite"):
        err = one_line_error(capsys, "shards", manifest, "--out", out, flag)
        assert "contains the input" in err and str(video) in err and tree(out) == before


@case("terminated")
def test_a_failed_or_terminated_command_leaves_nothing_behind(tmp_path, capsys):
    """A command that fails after it made its staging folder removes it and the folders it made above --out; a
    SIGTERM (kill, a job scheduler) unwinds like Ctrl-C: exit 143, one line, no staging folder left."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert cli("shards", tmp_path / "bad.mp4", "--out", tmp_path / "a" / "b" / "out") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
    capsys.readouterr()

    make_frame_folder(tmp_path / "frames" / "v1", 1200, size=(64, 48))
    proc = subprocess.Popen([sys.executable, "-m", "reprl", "shards", str(tmp_path / "frames"), "--out",
                             str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.partial-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(0.2)  # into the work (a signal inside a progress bar's constructor makes tqdm's destructor complain)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "reprl shards: terminated" in err.splitlines(), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "frames"]


@case("stale-staging")
def test_stale_staging_of_dead_processes_is_removed(tmp_path, caplog):
    make_frame_folder(tmp_path / "frames" / "v1", 4)
    dead, alive = tmp_path / ".out.partial-4194999", tmp_path / f".out.partial-{os.getppid()}"
    for d in (dead, alive):
        d.mkdir()
        (d / "shard-000000.tar.partial").write_bytes(b"x" * 1000)
    with caplog.at_level("WARNING", logger="reprl.files"):
        assert cli("shards", tmp_path / "frames", "--out", tmp_path / "out") == 0
    assert not dead.exists() and alive.exists()
    assert f"removed {dead}" in caplog.text and "process 4194999 is gone" in caplog.text
    # a run stopped between commit's two renames left the previous output as .out.old-PID and no out: restored
    shutil.rmtree(alive)
    (tmp_path / "out").rename(tmp_path / ".out.old-4194999")
    before = tree(tmp_path / ".out.old-4194999")
    with caplog.at_level("WARNING", logger="reprl.files"):
        assert cli("shards", tmp_path / "frames", "--out", tmp_path / "out") == 2  # restored, then not replaced
    assert tree(tmp_path / "out") == before and not list(tmp_path.glob(".out.*")) and "restored" in caplog.text


@case("out-unwritable")
def test_unwritable_out_is_one_line(encoder_dir, tmp_path, capsys):
    frames = make_frame_folder(tmp_path / "frames" / "v1", 4)
    (tmp_path / "file").write_text("x")
    err = one_line_error(capsys, "shards", tmp_path / "frames", "--out", tmp_path / "file" / "out")
    assert "is a file, not a folder" in err
    one_line_error(capsys, "embed", frames, "--encoder", encoder_dir, "--out", tmp_path / "file" / "o")
    assert (tmp_path / "file").read_text() == "x"


@case("nonfinite-weights")
def test_every_consumer_refuses_nonfinite_weights(nan_encoder_dir, tmp_path, capsys):
    from conftest import VIDEO

    msg = "non-finite weights"
    assert msg in one_line_error(capsys, "embed", VIDEO, "--encoder", nan_encoder_dir, "--out", tmp_path / "o")
    assert msg in one_line_error(capsys, "score", HELDOUT_SHARDS, "--encoder", nan_encoder_dir, "--boot", "10")
    assert msg in one_line_error(capsys, "eval", "--suite", "eval/suites/demo.yaml", "--encoder", nan_encoder_dir,
                                 "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert msg in one_line_error(capsys, "convert", nan_encoder_dir, "--out", tmp_path / "c2")
    with pytest.raises(ReprlError, match=msg):
        reprl.load(nan_encoder_dir)
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


@case("nonfinite-embeddings")
def test_nonfinite_embeddings_are_an_error_not_a_metric(encoder_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "config.json").write_bytes((Path(encoder_dir) / "config.json").read_bytes())
    state = load_file(str(Path(encoder_dir) / WEIGHTS))
    state = {k: v * 1e30 if v.is_floating_point() else v for k, v in state.items()}  # finite, overflows
    save_file(state, str(huge / WEIGHTS))
    frames = make_frame_folder(tmp_path / "frames", 4)
    err = one_line_error(capsys, "embed", frames, "--encoder", huge, "--out", tmp_path / "o")
    assert "non-finite embeddings" in err and "VOC" not in err and not (tmp_path / "o").exists()


@case("shards-bad-options")
@pytest.mark.parametrize("option", [["--resize", "-5"], ["--every", "0"], ["--workers", "0"], ["--clip-seconds", "inf"],
                                    ["--fps", "nan"], ["--max-shard-mb", "nan"], ["--resize", "100000"]])
def test_shards_bad_options(option, tmp_path, capsys):
    make_frame_folder(tmp_path / "frames" / "v1", 4)
    err = one_line_error(capsys, "shards", tmp_path / "frames", "--out", tmp_path / "o", *option)
    assert option[0] in err and not (tmp_path / "o").exists()


@case("shard-globs")
def test_shard_globs_are_read_and_a_miss_names_the_syntax(encoder_dir, tmp_path, capsys):
    from reprl.data.reader import expand_urls

    assert [Path(u).name for u in expand_urls(f"{TRAIN_SHARDS}/*.tar")] == [f"shard-00000{i}.tar" for i in range(4)]
    assert cli("embed", f"{HELDOUT_SHARDS}/*.tar", "--encoder", encoder_dir, "--out", tmp_path / "o",
               "--max-videos", "1", "--no-progress") == 0
    err = one_line_error(capsys, "embed", f"{tmp_path}/*.tar", "--encoder", encoder_dir, "--out", tmp_path / "o2")
    assert "no shards match" in err and "braces" in err


@case("eval-bad-encoder")
def test_eval_checks_encoders_before_rendering(tmp_path, capsys):
    err = one_line_error(capsys, "eval", "--suite", "eval/suites/demo.yaml", "--encoder", f"x={tmp_path}/nothing",
                         "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert "unknown encoder source" in err and not (tmp_path / "c").exists()


@case("similarity-sizes")
def test_similarity_of_different_sizes(encoder_dir):
    enc = reprl.load(encoder_dir)
    with pytest.raises(ReprlError, match="embeddings of size 8 and 16"):
        enc.similarity(torch.zeros(2, 8), torch.zeros(1, 16))


@case("convert-bad-card")
def test_a_training_card_that_is_not_a_json_object_is_refused_before_writing(tmp_path, capsys):
    (tmp_path / "card.json").write_text("[1, 2]")
    card = one_line_error(capsys, "convert", "tiny", "--out", tmp_path / "o", "--training", tmp_path / "card.json")
    assert "--training" in card and "JSON object" in card and not (tmp_path / "o").exists()
    missing = one_line_error(capsys, "convert", "tiny", "--out", tmp_path / "o", "--training", tmp_path / "no.json")
    assert "cannot read it" in missing and not (tmp_path / "o").exists()


@case("unsafe-checkpoint")
def test_unsafe_checkpoint_is_refused_in_reprls_words(tmp_path, capsys):
    torch.save({"model": Path("x")}, tmp_path / "unsafe.pt")  # a pickled Python object
    err = one_line_error(capsys, "convert", tmp_path / "unsafe.pt", "--out", tmp_path / "o")
    assert "refusing to load" in err and "weights_only" not in err


@case("export-file-modes")
def test_exported_weights_have_normal_modes(tmp_path, capsys):
    from reprl.heads.policy import HeadConfig, PolicyHead, save_head

    old = os.umask(0o022)
    try:
        assert cli("convert", "tiny", "--out", tmp_path / "o") == 0
        save_head(PolicyHead(4, 2, 3, HeadConfig(hidden=(8,))), tmp_path / "p", "random:tiny")
    finally:
        os.umask(old)
    assert (tmp_path / "o" / WEIGHTS).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "p" / WEIGHTS).stat().st_mode & 0o777 == 0o644  # a policy's weights too


def test_every_fault_case_has_a_test():
    here = Path(__file__).parent
    marks = re.findall(r'@case\("([^"]+)"\)', "".join(p.read_text() for p in here.glob("test_faults*.py")))
    assert set(marks) == set(BY_ID)


def test_reliability_doc_shows_the_tested_cases():
    assert doc_table() == render_table(), "docs/reliability.md is stale: run python tests/fault_cases.py"
