"""`reprl bench` must keep working: each benchmark runs in a tiny configuration. Figures are not asserted
(the machines are shared and noisy); the structure of what they report is."""

import json

import pytest
from conftest import TRAIN_SHARDS, VIDEO

from reprl.cli import main

pytestmark = pytest.mark.slow


def bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as e:
        main(["bench", *args, "--json", str(out)])
    assert e.value.code == 0
    return json.loads(out.read_text())


def test_bench_data_tiny(tmp_path, capsys):
    r = bench(tmp_path, "data", "--shards", TRAIN_SHARDS, "--cache", str(tmp_path), "--image-size", "32",
              "--batch-size", "4", "--batches", "2", "--repeats", "1", "--workers", "1")
    assert r["in_process"]["reprl"]["median"] > 0 and r["ratio_vs_framefiles"] > 0
    assert set(r["in_process"]["stage_share"]) == {"read", "decode", "augment", "collate", "other"}
    assert r["workers"][0]["workers"] == 1
    assert r["in_process"]["decode_bound"]["tuples_per_s"]["median"] > 0 and r["in_process"]["ratio_vs_decode_bound"]
    assert set(r["in_process"]["read_s_per_video"]) == {"reprl_index", "reprl_walk", "webdataset"}
    assert "ratio reprl / frame-file reference loader" in capsys.readouterr().out


def test_bench_train_tiny(tmp_path, capsys):
    r = bench(tmp_path, "train", "--shards", TRAIN_SHARDS, "--encoder", "tiny", "--image-size", "32",
              "--embed-dim", "16", "--batch-size", "4", "--workers", "0", "--steps", "3", "--warmup", "1",
              "--repeats", "1", "--device", "cpu")
    assert r["real"]["steps_per_s"]["median"] > 0 and r["synthetic"]["steps_per_s"]["median"] > 0
    assert 0 <= r["real"]["data_wait_share"]["median"] <= 1
    assert "ratio real / synthetic" in capsys.readouterr().out


def test_bench_embed_tiny(tmp_path, capsys):
    r = bench(tmp_path, "embed", "--video", VIDEO, "--encoder", "tiny", "--image-size", "32", "--batch-size", "8",
              "--repeats", "1")
    assert r["frames"] > 0 and r["ratio"]["median"] > 0
    assert "forward only" in capsys.readouterr().out


def test_bench_eval_tiny(tmp_path, capsys):
    r = bench(tmp_path, "eval", "--task", "reach", "--frame-size", "32", "--encoder", "tiny", "--image-size", "32",
              "--envs", "2", "--env-workers", "1", "--horizon", "3", "--repeats", "1", "--no-serial")
    assert r["harness"]["median"] > 0 and r["bound"]["median"] > 0 and r["workers"] == 1
    assert r["study_budget"]["rollouts"] == 5 * 3 * 3 * 3 * 30
    assert "ratio harness / bound" in capsys.readouterr().out
