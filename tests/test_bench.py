"""`reprl bench` must keep working: each benchmark runs in a tiny configuration. Figures are not asserted
(the machines are shared and noisy); the structure of what they report is."""

import json

import pytest
from conftest import TRAIN_SHARDS, VIDEO

from reprl.bench.eval import study_budget_hours
from reprl.cli import main

pytestmark = pytest.mark.slow


def bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as e:
        main(["bench", *args, "--json", str(out)])
    assert e.value.code == 0
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and "torch" in result["machine"]["versions"]  # what it was measured on
    return result


def test_bench_data_tiny(tmp_path, capsys):
    r = bench(tmp_path, "data", "--shards", TRAIN_SHARDS, "--cache", str(tmp_path), "--image-size", "32",
              "--batch-size", "4", "--batches", "2", "--repeats", "1", "--workers", "1")
    assert r["in_process"]["reprl"]["median"] > 0 and r["ratio_vs_framefiles"] > 0
    assert set(r["in_process"]["stage_share"]) == {"read", "decode", "augment", "collate", "other"}
    assert r["workers"][0]["workers"] == 1
    assert r["in_process"]["decode_bound"]["tuples_per_s"]["median"] > 0 and r["in_process"]["ratio_vs_decode_bound"]
    assert set(r["in_process"]["read_s_per_video"]) == {"reprl_index", "reprl_walk", "webdataset"}
    # one repeat: each printed ratio is its two figures' quotient, the loader's rate over the bound's
    ip, bound = r["in_process"], r["in_process"]["decode_bound"]
    assert bound["frames_per_tuple"] == 4  # VIP tuples
    assert bound["tuples_per_s"]["median"] == pytest.approx(bound["frames_per_s"]["median"] / 4)
    ours = ip["reprl"]["median"]
    assert ip["ratio_vs_decode_bound"]["median"] == pytest.approx(ours / bound["tuples_per_s"]["median"])
    assert r["ratio_vs_framefiles"] == pytest.approx(ip["reprl"]["median"] / ip["framefiles_reference"]["median"])
    scales = r["in_process"]["decode_time_by_scale"]
    assert sorted(int(n) for n in scales) == list(range(1, 9))
    assert all(v["median"] > 0 for v in scales.values()) and scales.get(8, scales.get("8"))["median"] == 1.0
    out = capsys.readouterr().out
    assert "ratio reprl / frame-file reference loader" in out and "decode CPU time at n/8 scale" in out


def test_bench_train_tiny(tmp_path, capsys):
    r = bench(tmp_path, "train", "--shards", TRAIN_SHARDS, "--encoder", "tiny", "--image-size", "32",
              "--embed-dim", "16", "--batch-size", "4", "--workers", "0", "--steps", "3", "--warmup", "1",
              "--repeats", "1", "--device", "cpu")
    assert r["real"]["steps_per_s"]["median"] > 0 and r["synthetic"]["steps_per_s"]["median"] > 0
    assert 0 <= r["real"]["data_wait_share"]["median"] <= 1
    real, synthetic = r["real"]["steps_per_s"]["median"], r["synthetic"]["steps_per_s"]["median"]
    assert r["ratio"]["median"] == pytest.approx(real / synthetic)
    assert "ratio real / synthetic" in capsys.readouterr().out


def test_bench_train_runs_what_reprl_pretrain_runs_from_the_same_preset(tmp_path, monkeypatch, capsys):
    """`reprl bench train --config PRESET` builds its real loop from the same config as `reprl pretrain --config
    PRESET`: the same data stream (sampling mode, crop, augmentation, tuples per video, shuffle, seed), data
    settings, encoder, objective, optimiser and Trainer (precision, gradient clipping, compile); only the run's
    mechanics (folder, step count, validation, checkpoints) differ."""
    from dataclasses import replace

    import lightning
    import yaml

    import reprl.training.module as module
    from reprl.data.datamodule import VideoDataModule
    from reprl.encoders.base import Encoder

    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({
        "encoder": {"name": "tiny", "image_size": 32, "embed_dim": 8},
        "objective": {"name": "vip", "num_negatives": 2, "l1_weight": 0.01},
        "data": {"train": TRAIN_SHARDS, "batch_size": 4, "num_workers": 0, "crop_scale": [0.5, 0.9],
                 "augment": False, "tuples_per_video": 2, "shuffle_buffer": 8, "goal_last": True},
        "optim": {"lr": 0.002, "schedule": "cosine", "warmup_steps": 1, "grad_clip": 0.25},
        "trainer": {"seed": 7, "max_steps": 2, "checkpoint_every": 2, "progress": False, "loggers": "csv",
                    "accelerator": "cpu", "compile": True}}))
    seen = {"bench": [], "pretrain": []}
    where = ["bench"]
    real_init, real_module = VideoDataModule.__init__, module.PretrainModule.__init__

    def spy_data(self, train, stream, **kwargs):
        seen[where[0]].append(("data", train, stream, kwargs))
        real_init(self, train, stream, **kwargs)

    def spy_module(self, cfg, encoder):
        seen[where[0]].append(("module", cfg))
        real_module(self, cfg, encoder)

    real_trainer = lightning.Trainer.__init__

    def spy_trainer(self, *args, **kwargs):
        seen[where[0]].append(("trainer", kwargs))
        real_trainer(self, *args, **kwargs)

    monkeypatch.setattr(lightning.Trainer, "__init__", spy_trainer)
    monkeypatch.setattr(Encoder, "compile_encode", lambda self: seen[where[0]].append(("compile",)))
    monkeypatch.setattr(VideoDataModule, "__init__", spy_data)
    monkeypatch.setattr(module.PretrainModule, "__init__", spy_module)
    r = bench(tmp_path, "train", "--config", str(preset), "--steps", "2", "--warmup", "1", "--repeats", "1",
              "--device", "cpu")
    assert r["trained"] == {"encoder": "tiny", "image_size": 32, "embed_dim": 8, "objective": "vip", "batch_size": 4,
                            "num_workers": 0}  # the preset's, not the bench's own defaults (resnet18, 64 px, 32)
    assert "train: vip on tiny at 32 px, batch 4, 0 data worker(s)" in capsys.readouterr().out
    where[0] = "pretrain"
    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--config", str(preset), "--run_dir", str(tmp_path / "run")])
    assert e.value.code == 0
    (_, b_train, b_stream, b_kw), = [s for s in seen["bench"] if s[0] == "data"][:1]
    (_, p_train, p_stream, p_kw), = [s for s in seen["pretrain"] if s[0] == "data"]
    assert b_stream == p_stream and b_stream.mode == "vip_last" and b_stream.tuples_per_video == 2
    assert b_train == p_train == TRAIN_SHARDS
    mechanics = {"val", "batches_per_epoch", "val_videos", "val_max_frames"}
    kept = lambda kw: {k: v for k, v in kw.items() if k not in mechanics}  # noqa: E731
    assert kept(b_kw) == kept(p_kw)
    b_cfg = [s[1] for s in seen["bench"] if s[0] == "module"][0]
    p_cfg = [s[1] for s in seen["pretrain"] if s[0] == "module"][0]
    assert (b_cfg.encoder, b_cfg.objective, b_cfg.optim) == (p_cfg.encoder, p_cfg.objective, p_cfg.optim)
    same_data = replace(b_cfg.data, val=p_cfg.data.val, batches_per_epoch=p_cfg.data.batches_per_epoch)
    assert same_data == p_cfg.data and b_cfg.trainer.seed == p_cfg.trainer.seed == 7
    (b_trainer,), (p_trainer,) = ([s[1] for s in seen[k] if s[0] == "trainer"][:1] for k in ("bench", "pretrain"))
    how = {"accelerator", "precision", "gradient_clip_val", "sync_batchnorm"}  # how a step trains, not how long
    assert {k: b_trainer[k] for k in how} == {k: p_trainer[k] for k in how}
    assert p_trainer["gradient_clip_val"] == 0.25 and p_trainer["precision"] == "32-true"
    assert ("compile",) in seen["bench"] and ("compile",) in seen["pretrain"]


def test_bench_embed_tiny(tmp_path, capsys):
    r = bench(tmp_path, "embed", "--video", VIDEO, "--encoder", "tiny", "--image-size", "32", "--batch-size", "8",
              "--repeats", "1")
    assert r["frames"] > 0 and r["ratio"]["median"] > 0 and r["ratio_callers"]["median"] > 0
    pipeline = r["embed_pipeline"]["median"]
    assert r["ratio"]["median"] == pytest.approx(pipeline / r["forward_only"]["median"])
    assert r["ratio_callers"]["median"] == pytest.approx(pipeline / r["forward_callers"]["median"])
    assert r["callers"] * r["threads_per_caller"] <= max(r["threads"], r["callers"])
    out = capsys.readouterr().out
    assert "forward only" in out and "as the pipeline calls it" in out


def test_benches_build_architecture_names_at_random_init_without_the_untrained_warning(tmp_path, caplog):
    """The benches mean random init when they name an architecture (speed does not depend on weights), so the
    warning reprl.load gives a user who asked for an untrained encoder is not logged; --image-size shapes it;
    an exported encoder loads with its own size."""
    import logging

    from reprl.bench import bench_encoder

    with caplog.at_level(logging.WARNING):
        encoder = bench_encoder("tiny", 40)
    assert encoder.config.image_size == 40 and not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not [r for r in caplog.records if "architecture name" in r.getMessage()]
    encoder.save_pretrained(tmp_path / "enc")
    assert bench_encoder(str(tmp_path / "enc"), 64).config.image_size == 40


def test_bench_eval_tiny(tmp_path, capsys, monkeypatch):
    from reprl.heads import policy

    made = []
    real = policy.Policy.__init__
    monkeypatch.setattr(policy.Policy, "__init__", lambda self, *a, **k: real(self, *a, **k) or made.append(
        (self.precision, self._compiled is not None)))
    r = bench(tmp_path, "eval", "--task", "reach", "--frame-size", "32", "--encoder", "tiny", "--image-size", "32",
              "--envs", "2", "--env-workers", "1", "--horizon", "3", "--repeats", "1", "--no-serial",
              "--precision", "bf16-mixed", "--compile")
    assert r["harness"]["median"] > 0 and r["bound"]["median"] > 0 and r["workers"] == 1
    assert r["study_budget"]["rollouts"] == 5 * 3 * 3 * 3 * 30 and r["config"]["precision"] == "bf16"
    assert r["ratio"]["median"] == pytest.approx(r["harness"]["median"] / r["bound"]["median"])
    assert r["study_budget"] == study_budget_hours(r["harness"]["median"])  # the harness's rate, not the bound's
    out = capsys.readouterr().out
    assert "ratio harness / bound" in out and "under bf16 autocast compiled" in out and made == [("bf16", True)]
    assert "warm-up with compiling" in out and r["warmup_s"] > 0 and r["config"]["compile"] is True


def test_study_budget_hours_by_hand():
    # 4,050 rollouts at 2 env steps/s: all 500 steps -> 4050 * 500 / 2 / 3600 = 281.25 h; half ending at step
    # 150 + 10 settling steps -> 4050 * (0.5 * 160 + 0.5 * 500) / 2 / 3600 = 185.625 h
    assert study_budget_hours(2.0) == {"rollouts": 4050, "hours_no_success": pytest.approx(281.25),
                                       "hours_half_succeed_at_150": pytest.approx(185.625)}


def test_step_timer_counts_steps_after_the_warmup_and_the_waits_between_them():
    from reprl.bench.train import StepTimer

    t = StepTimer(warmup=1)
    t.starts, t.ends = [0.0, 1.0, 3.0], [0.5, 2.0, 4.0]
    # after the first step (ending at 0.5): 2 steps in 4.0 - 0.5 = 3.5 s, waiting 0.5 + 1.0 s of it
    assert t.figures() == {"steps_per_s": pytest.approx(2 / 3.5), "data_wait_share": pytest.approx(1.5 / 3.5)}
