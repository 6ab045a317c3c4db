import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TRAIN_SHARDS, make_frame_folder

from reprl.cli import main


def run_cli(*args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


def test_shards_command_writes_and_reports(tmp_path, capsys):
    make_frame_folder(tmp_path / "in" / "v0", 5)
    make_frame_folder(tmp_path / "in" / "v1", 2)
    assert run_cli("shards", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--resize", "16") == 0
    out = capsys.readouterr().out
    assert "wrote 1 videos" in out and "1 x too short" in out
    assert json.loads((tmp_path / "out" / "index.json").read_text())["options"]["resize"] == 16


def test_user_errors_exit_2_with_a_message_and_no_traceback(tmp_path, capsys):
    assert run_cli("shards", str(tmp_path / "nope"), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "reprl shards: error: input not found" in err and "Traceback" not in err
    assert run_cli("shards", str(tmp_path), "--out", str(tmp_path / "o"), "--quality", "0") == 2


def test_stream_command_prints_what_it_read(tmp_path, capsys):
    grid = tmp_path / "tuples.png"
    assert run_cli("stream", TRAIN_SHARDS, "--mode", "r3m", "--batches", "2", "--batch-size", "3",
                   "--image-size", "48", "--grid", str(grid)) == 0
    out = capsys.readouterr().out
    assert "roles start, goal, s0, s1, s2" in out and "batch 1:" in out and "read 6 tuples" in out
    assert grid.stat().st_size > 1000
    # a later --grid replaces its own picture; a user's file, a folder, another format, or bad counts: one line,
    # before any shard is read, and the file is kept
    assert run_cli("stream", TRAIN_SHARDS, "--batches", "1", "--batch-size", "2", "--image-size", "32",
                   "--grid", str(grid)) == 0
    (tmp_path / "mine.png").write_bytes(b"mine")
    (tmp_path / "dir.png").mkdir()
    for bad in (["--grid", str(tmp_path / "mine.png")], ["--grid", str(tmp_path / "dir.png")],
                ["--grid", str(tmp_path / "g.xyz")], ["--grid", str(tmp_path / "mine.png" / "x.png")],
                ["--workers", "-1"], ["--seed", "-1"]):
        assert run_cli("stream", str(tmp_path / "no_shards_read"), *bad) == 2, bad
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--" in err and "not found" not in err, err
    assert (tmp_path / "mine.png").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png", "mine.png", "tuples.png"]


def test_stream_grid_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    """A --grid the permission check passes but the file system refuses (a read-only mount, a full disk)."""
    import reprl.commands.stream as stream

    def refused(batch, path, max_rows=8):
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(stream, "save_grid", refused)
    assert run_cli("stream", TRAIN_SHARDS, "--batches", "1", "--batch-size", "2", "--image-size", "32",
                   "--grid", str(tmp_path / "g.png")) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("reprl stream: error: cannot write --grid") and "Traceback" not in err


def test_console_script_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "reprl", "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("shards", "render", "stream"):
        assert name in out


def test_a_reader_that_stops_early_ends_the_command_quietly_and_other_broken_pipes_are_not_hidden(monkeypatch):
    """`reprl pretrain --print-config | head -2`: the closed pipe ends the command without a traceback, with the
    status a shell gives a command killed by SIGPIPE (141), buffered output or not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for unbuffered in ("", "1"):
        proc = subprocess.Popen([sys.executable, "-m", "reprl", "pretrain", "--config",
                                 "configs/pretrain/study_r3m.yaml", "--print-config"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[1]),
                                env={**env, **({"PYTHONUNBUFFERED": unbuffered} if unbuffered else {})})
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the command writes: its first write (or its final flush) meets a closed pipe
        err = proc.stderr.read().decode()
        assert (proc.wait(), err) == (141, ""), unbuffered
    # a broken pipe that is not stdout's (a worker process that died) is a fault: it is not swallowed

    def broken(args, extra):
        raise BrokenPipeError(32, "Broken pipe")

    import reprl.commands.list as list_command
    monkeypatch.setattr(list_command, "run", broken)
    with pytest.raises(BrokenPipeError):
        main(["list"])


def test_importing_reprl_stays_light():
    code = ("import sys, reprl; heavy = ('lightning', 'open_clip', 'metaworld', 'mujoco'); "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_tuple_setting_reaches_the_stream_from_pretrain_and_from_reprl_stream(monkeypatch, capsys):
    """crop_scale, augment, tuples_per_video, shuffle_buffer and other_goal are declared once (TupleSettings):
    pretraining's data section and `reprl stream`'s options both hand every one of them to the stream."""
    from types import SimpleNamespace

    import reprl.data.stream as stream_mod
    from reprl.options import TupleSettings
    from reprl.training.config import load_pretrain_config
    from reprl.training.run import data_module

    wanted = {"crop_scale": (0.5, 0.9), "augment": False, "tuples_per_video": 3, "shuffle_buffer": 7,
              "other_goal": 0.25}
    assert set(wanted) == {f for f in TupleSettings.__dataclass_fields__}
    cfg = load_pretrain_config(None, ["--data.train", TRAIN_SHARDS, "--data.crop_scale", "[0.5, 0.9]",
                                      "--data.augment", "false", "--data.tuples_per_video", "3",
                                      "--data.shuffle_buffer", "7", "--data.other_goal", "0.25"])
    got = data_module(cfg, SimpleNamespace(config=SimpleNamespace(image_size=32))).stream_cfg
    assert {k: getattr(got, k) for k in wanted} == wanted and got.image_size == 32

    seen = []
    real_init = stream_mod.TupleStream.__init__
    monkeypatch.setattr(stream_mod.TupleStream, "__init__",
                        lambda self, urls, cfg, **kw: (seen.append(cfg), real_init(self, urls, cfg, **kw))[1])
    assert run_cli("stream", TRAIN_SHARDS, "--batches", "1", "--batch-size", "2", "--image-size", "16",
                   "--crop-scale", "0.5", "0.9", "--no-augment", "--tuples-per-video", "3",
                   "--shuffle-buffer", "7", "--other-goal", "0.25") == 0
    assert {k: getattr(seen[0], k) for k in wanted} == wanted
    assert run_cli("stream", TRAIN_SHARDS, "--crop-scale", "0", "1") == 2
    assert "--crop-scale must satisfy 0 < min <= max <= 1, got (0.0, 1.0)" in capsys.readouterr().err
    assert run_cli("stream", TRAIN_SHARDS, "--tuples-per-video", "0") == 2
    assert "--tuples-per-video must be at least 1, got 0" in capsys.readouterr().err
    assert run_cli("stream", TRAIN_SHARDS, "--other-goal", "2") == 2
    assert "--other-goal is a share of the tuples: give a value from 0 to 1, got 2.0" in capsys.readouterr().err
    assert run_cli("stream", TRAIN_SHARDS, "--mode", "r3m", "--other-goal", "0.5") == 2
    err = capsys.readouterr().err
    assert "--other-goal needs tuples with a goal frame" in err and "set --other-goal to 0" in err, err
