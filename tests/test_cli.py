import json
import subprocess
import sys

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


def test_console_script_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "reprl", "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("shards", "render", "stream"):
        assert name in out


def test_importing_reprl_stays_light():
    code = ("import sys, reprl; heavy = ('lightning', 'open_clip', 'metaworld', 'mujoco'); "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
