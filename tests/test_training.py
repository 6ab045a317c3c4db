import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import HELDOUT_SHARDS, TRAIN_SHARDS

import reprl
from reprl.errors import ReprlError
from reprl.training.config import PretrainConfig, load_pretrain_config

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs" / "pretrain").glob("*.yaml"))


def tiny(tmp_path, *extra: str) -> PretrainConfig:
    args = ["--run_dir", str(tmp_path / "run"), "--encoder.name", "tiny", "--encoder.image_size", "48",
            "--encoder.embed_dim", "32", "--data.train", TRAIN_SHARDS, "--data.batch_size", "8",
            "--data.num_workers", "0", "--data.batches_per_epoch", "50", "--data.shuffle_buffer", "16",
            "--optim.lr", "0.002", "--trainer.max_steps", "6", "--trainer.checkpoint_every", "3",
            "--trainer.log_every", "1", "--trainer.progress", "false", "--trainer.loggers", "csv",
            "--trainer.accelerator", "cpu", *extra]
    return load_pretrain_config(None, args)


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def losses(run: Path) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["train/loss"])) for r in metrics(run) if r.get("train/loss")]


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_parses(preset):
    cfg = load_pretrain_config(preset)
    assert cfg.data.train and cfg.trainer.max_steps > 0
    # Each preset writes to its own run folder, so two presets never clobber each other's run.
    expected = "run" + preset.stem[len("demo"):] if preset.stem.startswith("demo") else preset.stem
    assert Path(cfg.run_dir).name == expected


def test_preset_typos_list_the_valid_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_stpes: 10\n")
    with pytest.raises(ReprlError, match="unknown config key 'max_stpes' in 'trainer'; valid keys: max_steps"):
        load_pretrain_config(bad)


def test_the_summary_names_the_training_corpus_by_its_content_digest(tmp_path):
    from conftest import random_frames

    from reprl.data.shards import ShardOptions, write_shards
    from reprl.data.video import write_mp4
    from reprl.training.run import pretrain

    for i in range(3):
        write_mp4(tmp_path / "in" / f"v{i}.mp4", random_frames(12, seed=i), 20)
    index = write_shards([tmp_path / "in"], tmp_path / "shards", ShardOptions(), progress=False)
    summary = pretrain(tiny(tmp_path, "--data.train", str(tmp_path / "shards"), "--trainer.max_steps", "2"))
    assert summary["data"] == {"train": str(tmp_path / "shards"), "train_content_sha256": index["content_sha256"]}


def test_short_real_training_run_lowers_the_loss(tmp_path):
    from reprl.training.run import pretrain

    cfg = tiny(tmp_path, "--trainer.max_steps", "80", "--trainer.checkpoint_every", "40", "--data.batch_size", "16",
               "--data.val", HELDOUT_SHARDS, "--trainer.val_every", "40", "--objective.l1_weight", "0.001",
               "--objective.l2_weight", "0.001")
    summary = pretrain(cfg)
    assert summary["steps"] == 80 and summary["skipped_steps"] == 0
    machine = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())["machine"]  # what it ran on
    assert machine["versions"]["torch"] == torch.__version__ and machine["torch_threads"] == torch.get_num_threads()
    assert machine["cpu"] and machine["cores"] >= 1
    assert len(losses(tmp_path / "run")) == 80
    # The per-step loss is too noisy (a new batch each step) to compare two short windows of one run, so the
    # loss is measured on the same 64 fixed tuples, for the encoder at init (same seed) and after training.
    # Batches of 16: with 8, the drop after 80 steps ranged from 0.02 to 0.13 over seeds and float rounding
    # (e.g. channels-last input), too close to the margin; with 16 it was 0.06-0.24 over four seeds.
    from reprl.data.stream import StreamConfig, TupleStream
    from reprl.objectives import vip_loss
    from reprl.training.run import build_training_encoder

    batch = next(iter(TupleStream(TRAIN_SHARDS, StreamConfig(image_size=48, batch_size=64, augment=False, seed=7))))

    def fixed_loss(encoder):
        with torch.no_grad():
            e = {r: encoder(batch.frames[r]) for r in ("start", "goal", "t", "t1")}
            return vip_loss(e["start"], e["goal"], e["t"], e["t1"], l1_weight=0.001, l2_weight=0.001)[0].item()

    init = build_training_encoder(cfg, seed=cfg.trainer.seed).eval()
    assert fixed_loss(reprl.load(summary["encoder"])) < fixed_loss(init) - 0.03
    assert {"random init", "trained"} == set(summary["heldout"])
    vals = [r for r in metrics(tmp_path / "run") if r.get("val/voc")]
    assert len(vals) == 2 and all(-1 <= float(r["val/voc"]) <= 1 for r in vals)


def test_checkpoints_export_an_encoder_that_reprl_load_reads(tmp_path):
    from reprl.training.run import pretrain

    pretrain(tiny(tmp_path, "--trainer.keep_checkpoints", "1"))
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt", "step-0000006.ckpt"]
    assert [p.name for p in (run / "encoders").iterdir()] == ["step-0000006"]
    final = reprl.load(run / "encoder")
    exported = reprl.load(run / "encoders" / "step-0000006")
    from_ckpt = reprl.load(run / "checkpoints" / "last.ckpt")
    x = torch.randint(0, 255, (2, 3, 48, 48), dtype=torch.uint8)
    assert torch.equal(final(x), exported(x)) and torch.equal(final(x), from_ckpt(x))
    assert final.config.source == "reprl pretrain"


def test_fine_tuning_starts_from_any_loadable_encoder(tmp_path):
    from reprl.training.run import pretrain

    pretrain(tiny(tmp_path / "a"))
    start = reprl.load(tmp_path / "a" / "run" / "encoder")
    cfg = tiny(tmp_path / "b", "--encoder.init", str(tmp_path / "a" / "run" / "encoder"), "--trainer.max_steps", "2")
    summary = pretrain(cfg)
    tuned = reprl.load(summary["encoder"])
    assert tuned.config.source.startswith("fine-tuned from") and tuned.config.embed_dim == start.config.embed_dim
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), tuned.state_dict().values()))


def test_non_finite_losses_skip_the_step_and_too_many_in_a_row_stop_the_run(tmp_path, monkeypatch):
    from reprl.objectives import registry
    from reprl.training.run import pretrain

    real = registry.VIPObjective.forward
    calls = {"n": 0}

    def sometimes_nan(self, *args, **kwargs):
        loss, m = real(self, *args, **kwargs)
        calls["n"] += 1
        bad = calls["n"] == 3 or calls["n"] >= plan["always_from"]
        return (loss * float("nan") if bad else loss), m

    monkeypatch.setattr(registry.VIPObjective, "forward", sometimes_nan)
    plan = {"always_from": 10**9}
    summary = pretrain(tiny(tmp_path))
    assert summary["steps"] == 6 and summary["skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in reprl.load(summary["encoder"]).parameters())

    calls["n"], plan["always_from"] = 0, 8  # step 3 is skipped, so its checkpoint is not written; 6 is good
    with pytest.raises(ReprlError, match="not finite for 3 steps in a row.*last good checkpoint is .*last.ckpt "
                       r"\(step 6, finite weights\)"):
        pretrain(tiny(tmp_path / "b", "--trainer.max_steps", "20", "--trainer.max_bad_steps", "3"))
    ckpts = tmp_path / "b" / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step-0000006.ckpt"], "the last good one is kept"


@pytest.mark.slow
def test_kill_and_resume_continues_the_step_count(tmp_path):
    run = tmp_path / "run"
    args = ["--run_dir", str(run), "--encoder.name", "tiny", "--encoder.image_size", "48", "--encoder.embed_dim", "32",
            "--data.train", TRAIN_SHARDS, "--data.batch_size", "8", "--data.num_workers", "0",
            "--data.shuffle_buffer", "16", "--trainer.checkpoint_every", "5", "--trainer.progress", "false",
            "--trainer.loggers", "csv", "--trainer.accelerator", "cpu", "--trainer.log_every", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "reprl", "pretrain", *args, "--trainer.max_steps", "100000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    last = run / "checkpoints" / "last.ckpt"
    # last.ckpt is replaced (atomically) just after each step checkpoint: wait until it holds step 10 or later,
    # so the kill cannot fall between the two writes of step 10
    while not (last.exists() and torch.load(last, weights_only=False)["global_step"] >= 10):
        assert proc.poll() is None and time.time() < deadline, "training did not reach step 10"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    steps = sorted(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.ckpt"))
    for ckpt in (run / "checkpoints").glob("*.ckpt"):  # a write cut by the kill keeps its .partial name
        assert torch.load(ckpt, weights_only=False)["global_step"] > 0
    resumed_from = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert resumed_from in steps and resumed_from >= 10  # the kill may land between a step file and last.ckpt
    out = subprocess.run([sys.executable, "-m", "reprl", "pretrain", *args, "--trainer.max_steps",
                          str(resumed_from + 5), "--resume", "last"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"trained {resumed_from + 5} steps" in out.stdout and f"resuming from {run}" in out.stdout
    logged = {int(r["step"]) for r in metrics(run) if r.get("train/loss")}
    assert set(range(resumed_from, resumed_from + 5)) <= logged


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    from reprl.training.run import pretrain

    with pytest.raises(ReprlError, match="cannot resume"):
        pretrain(tiny(tmp_path, "--resume", "last"))
    with pytest.raises(ReprlError, match="data.train is empty"):
        pretrain(tiny(tmp_path, "--data.train", ""))


@pytest.mark.slow
def test_r3m_objective_trains_with_the_offline_sentence_encoder(tmp_path):
    from reprl.training.run import pretrain

    summary = pretrain(tiny(tmp_path, "--objective.name", "r3m", "--objective.num_negatives", "2",
                            "--objective.lang_hidden", "64", "--trainer.max_steps", "3"))
    assert summary["steps"] == 3
    names = {k for r in metrics(tmp_path / "run") for k, v in r.items() if v}
    assert {"train/tcn", "train/lang", "train/lang_acc"} <= names


@pytest.mark.slow
def test_liv_objective_trains_clip_image_and_text_towers(tmp_path):
    from reprl.training.run import pretrain

    cfg = tiny(tmp_path, "--encoder.name", "clip-rn50", "--encoder.image_size", "224", "--encoder.embed_dim",
               "null", "--objective.name", "liv", "--objective.num_negatives", "1", "--data.batch_size", "2",
               "--trainer.max_steps", "2", "--trainer.checkpoint_every", "2", "--optim.lr", "1e-5")
    summary = pretrain(cfg)
    assert summary["steps"] == 2
    names = {k for r in metrics(tmp_path / "run") for k, v in r.items() if v}
    assert {"train/clip", "train/vip_i/loss", "train/vip_l/loss"} <= names
    enc = reprl.load(summary["encoder"])
    assert enc.has_text and enc.config.similarity == "cosine"


def test_liv_needs_a_text_tower(tmp_path):
    from reprl.training.run import pretrain

    with pytest.raises(ReprlError, match="needs an encoder with a text tower"):
        pretrain(tiny(tmp_path, "--objective.name", "liv"))


def test_clip_parameters_outside_the_loss_are_frozen_for_ddp(tmp_path):
    from reprl.training.run import build_training_encoder

    vip = build_training_encoder(tiny(tmp_path, "--encoder.name", "clip-rn50", "--encoder.image_size", "224",
                                      "--encoder.embed_dim", "null"))
    assert not vip.model.logit_scale.requires_grad
    assert not any(p.requires_grad for p in vip.text_parameters())
    assert all(p.requires_grad for p in vip.model.visual.parameters())
    liv = build_training_encoder(tiny(tmp_path, "--encoder.name", "clip-rn50", "--encoder.image_size", "224",
                                      "--encoder.embed_dim", "null", "--objective.name", "liv"))
    assert all(p.requires_grad for p in liv.text_parameters() if p is not liv.model.logit_scale)


def test_batches_move_to_cuda_without_blocking_and_to_cpu_as_they_are(tmp_path, monkeypatch):
    from reprl.data.stream import ClipBatch
    from reprl.training.module import PretrainModule
    from reprl.training.run import build_training_encoder

    cfg = tiny(tmp_path)
    module = PretrainModule(cfg, build_training_encoder(cfg))
    batch = ClipBatch(frames={"t": torch.zeros(2, 3, 4, 4, dtype=torch.uint8)}, indices={"t": torch.zeros(2)},
                      length=torch.ones(2, dtype=torch.long))
    calls = []
    monkeypatch.setattr(ClipBatch, "to", lambda self, device, non_blocking=False: calls.append(
        (torch.device(device).type, non_blocking)) or self)
    module.transfer_batch_to_device(batch, torch.device("cuda", 0), 0)
    module.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert calls == [("cuda", True), ("cpu", False)]


@pytest.mark.parametrize("precision, accelerator, cuda, expected", [
    ("auto", "auto", True, "bf16-mixed"),  # a GPU is there and the run may use it
    ("auto", "gpu", True, "bf16-mixed"),
    ("auto", "cpu", True, "32-true"),  # a GPU is there but the run is pinned to the CPU
    ("auto", "auto", False, "32-true"),  # no GPU
    ("16-mixed", "cpu", True, "16-mixed"),  # an explicit choice passes through
])
def test_auto_precision_follows_the_device_the_trainer_lands_on(monkeypatch, precision, accelerator, cuda, expected):
    from reprl.training.run import lightning_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert lightning_precision(precision, accelerator) == expected


def test_objective_settings_belong_to_their_objective(tmp_path):
    """Each objective's settings are its own Config class: a VIP run refuses R3M's tcn_weight even at R3M's
    default, and naming another objective than the preset's drops the preset's objective section only."""
    from reprl.objectives.registry import R3MConfig, VIPConfig

    with pytest.raises(ReprlError, match=r"--objective.tcn_weight does not apply to the vip objective \(its "
                                         r"settings: name, gamma, num_negatives, negatives, f, alpha, l1_weight"):
        tiny(tmp_path, "--objective.tcn_weight", "1.0")
    demo = REPO / "configs" / "pretrain" / "demo.yaml"
    vip = load_pretrain_config(demo)
    assert type(vip.objective) is VIPConfig and vip.objective.l1_weight == 0.001
    r3m = load_pretrain_config(demo, ["--objective.name", "r3m", "--objective.lang_hidden", "64"])
    assert r3m.objective == R3MConfig(lang_hidden=64)  # nothing of the preset's VIP section is carried over
    assert (r3m.encoder, r3m.data, r3m.optim) == (vip.encoder, vip.data, vip.optim)


def test_lightning_chatter_stays_out_of_a_fresh_process():
    """Importing Lightning sets its loggers to INFO (device banners, a tip to install a cloud logger, each
    printed twice beside reprl's own handler): quiet_lightning lowers them after that import, in a process
    where Lightning was not imported yet, as at the start of `reprl pretrain`."""
    code = ("import logging, sys; from reprl.training.run import quiet_lightning; quiet_lightning(); "
            "print('lightning.pytorch' in sys.modules, "
            "[logging.getLogger(n).getEffectiveLevel() for n in ('lightning.pytorch.utilities.rank_zero', "
            "'lightning.fabric.utilities.rank_zero', 'lightning')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == "True" and out[1].strip() == "[30, 30, 30]"


def test_a_task_split_validates_on_tasks_training_never_saw_and_select_best_exports_the_best_step(tmp_path):
    from reprl.training.callbacks import read_selection
    from reprl.training.run import format_summary, pretrain

    summary = pretrain(tiny(tmp_path, "--data.holdout_tasks", "reach, door-open", "--trainer.select", "best",
                            "--trainer.max_steps", "12", "--trainer.val_every", "3", "--trainer.checkpoint_every", "3",
                            "--trainer.keep_checkpoints", "4", "--data.val_max_frames", "16"))
    run = tmp_path / "run"
    vocs = {int(r["step"]) + 1: float(r["val/voc"]) for r in metrics(run) if r.get("val/voc")}
    assert sorted(vocs) == [3, 6, 9, 12]  # logged at the last step of each 3-step stretch
    best_step = max(vocs, key=lambda s: vocs[s])
    record = read_selection(run / "best")
    assert record is not None and record["step"] == best_step and record["voc"] == pytest.approx(vocs[best_step])
    assert summary["selected"]["step"] == best_step and summary["data"]["holdout_tasks"] == ["reach", "door-open"]
    x = torch.randint(0, 255, (2, 3, 48, 48), dtype=torch.uint8)
    final, kept = reprl.load(run / "encoder"), reprl.load(run / "encoders" / f"step-{best_step:07d}")
    assert torch.equal(final(x), kept(x)) and torch.equal(final(x), reprl.load(run / "best")(x))
    assert final.config.source == f"reprl pretrain, step {best_step} of 12 (highest held-out VOC)"
    assert summary["heldout"]["trained"]["videos"] == 4  # data.train's videos of the two held-out tasks
    assert f"selected: step {best_step}" in format_summary(summary)


def test_keep_best_only_exports_a_better_finite_voc_and_resumes_from_the_earlier_record(tmp_path):
    from types import SimpleNamespace

    from reprl.encoders.registry import build_encoder
    from reprl.training.callbacks import KeepBest, read_selection

    module = SimpleNamespace(encoder=build_encoder("tiny", embed_dim=8, image_size=32))
    module.state_dict = module.encoder.state_dict

    def validate(keep, step, voc):
        trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, global_step=step,
                                  callback_metrics={"val/voc": torch.tensor(voc), "val/bump_rate": torch.tensor(0.25)})
        keep.on_validation_end(trainer, module)
        return read_selection(tmp_path / "best")

    keep = KeepBest(tmp_path / "best")
    assert validate(keep, 10, 0.5) == {"step": 10, "voc": 0.5, "bump_rate": 0.25,
                                       "by": "highest held-out VOC at a validation"}
    assert validate(keep, 20, 0.4)["step"] == 10 and validate(keep, 30, float("nan"))["step"] == 10
    assert validate(keep, 40, 0.5)["step"] == 10  # a tie keeps the earlier step
    resumed = KeepBest(tmp_path / "best")  # a resumed run must beat the record from before the stop
    assert resumed.best == 0.5 and validate(resumed, 50, 0.45)["step"] == 10
    assert validate(resumed, 60, 0.75)["step"] == 60


def test_select_best_needs_a_validation(tmp_path):
    from reprl.training.config import check_config

    with pytest.raises(ReprlError, match="--trainer.select best picks the weights by held-out VOC, and this run "
                                         "validates on nothing: give --data.val"):
        check_config(tiny(tmp_path, "--trainer.select", "best"))
    with pytest.raises(ReprlError, match="--trainer.val_every 10 is past --trainer.max_steps 6"):
        check_config(tiny(tmp_path, "--trainer.select", "best", "--data.val", HELDOUT_SHARDS,
                          "--trainer.val_every", "10"))
    check_config(tiny(tmp_path, "--trainer.select", "best", "--data.holdout_tasks", "reach",
                      "--trainer.val_every", "3"))


def test_encoder_params_change_a_registered_architecture_and_unknown_ones_are_refused(tmp_path):
    from reprl.training.config import check_config
    from reprl.training.run import build_training_encoder

    wide = build_training_encoder(tiny(tmp_path, "--encoder.params", "{width: 8}"))
    assert wide.config.params == {"width": 8}
    first = next(m for m in wide.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.out_channels == 8 and first.weight.shape == (8, 3, 5, 5)
    assert build_training_encoder(tiny(tmp_path)).config.params == {"width": 32}  # the registered default
    with pytest.raises(ReprlError, match="tiny has no architecture parameter 'widht'; its parameters: width"):
        check_config(tiny(tmp_path, "--encoder.params", "{widht: 8}"))
    with pytest.raises(ReprlError, match="--encoder.params sets a new encoder's architecture, and --encoder.init"):
        check_config(tiny(tmp_path, "--encoder.params", "{width: 8}", "--encoder.init", "tiny"))


# -- hand-computed checks of the schedule, the validation figures and the step bookkeeping ---------------------

def test_learning_rate_factor_by_hand():
    import math

    from reprl.training.config import OptimSection
    from reprl.training.module import lr_lambda

    cosine = lr_lambda(OptimSection(warmup_steps=2, schedule="cosine", min_lr_ratio=0.1), max_steps=6)
    # warm-up (step + 1) / 2: 0.5, 1; then progress (step - 2) / (6 - 2) and 0.1 + 0.9 * (1 + cos(pi p)) / 2:
    # p = 0 -> 1, 0.25 -> 0.1 + 0.45 (1 + 0.70711) = 0.86820, 0.5 -> 0.55, 0.75 -> 0.1 + 0.45 (1 - 0.70711) = 0.23180,
    # 1 -> 0.1; past the end it stays at the floor 0.1
    half = math.sqrt(0.5)
    expected = [0.5, 1.0, 1.0, 0.1 + 0.45 * (1 + half), 0.55, 0.1 + 0.45 * (1 - half), 0.1, 0.1]
    assert [cosine(s) for s in (0, 1, 2, 3, 4, 5, 6, 8)] == pytest.approx(expected)
    assert cosine(3) == pytest.approx(0.868198, abs=1e-6) and cosine(5) == pytest.approx(0.231802, abs=1e-6)
    constant = lr_lambda(OptimSection(warmup_steps=4), max_steps=6)
    assert [constant(s) for s in (0, 1, 2, 3, 4, 10)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    no_warmup = lr_lambda(OptimSection(schedule="cosine"), max_steps=4)  # p = step / 4: 1, 0.5 (1 + cos(pi/2)) = 0.5
    assert [no_warmup(s) for s in (0, 2, 4)] == pytest.approx([1.0, 0.5, 0.0])


def _module(tmp_path, *extra):
    from reprl.training.module import PretrainModule
    from reprl.training.run import build_training_encoder

    cfg = tiny(tmp_path, *extra)
    return PretrainModule(cfg, build_training_encoder(cfg))


def test_optimiser_and_scheduler_follow_the_config(tmp_path):
    module = _module(tmp_path, "--optim.name", "adamw", "--optim.weight_decay", "0.05", "--optim.warmup_steps", "2",
                     "--optim.betas", "[0.8, 0.9]", "--optim.eps", "1e-6")
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert type(opt) is torch.optim.AdamW and conf["lr_scheduler"]["interval"] == "step"  # warm-up moves per step
    group = opt.param_groups[0]
    # 0.05, not AdamW's own default of 0.01
    assert (group["weight_decay"], group["betas"], group["eps"]) == (0.05, (0.8, 0.9), 1e-6)
    # lr 0.002 with warm-up over 2 steps: 0.002 * 1/2 = 0.001 at step 0, then 0.002 * 2/2 = 0.002
    assert group["lr"] == pytest.approx(0.001)
    opt.step()  # no gradients yet: moves nothing, but keeps the optimiser-then-scheduler order
    sched["scheduler"].step()
    assert group["lr"] == pytest.approx(0.002)
    assert type(_module(tmp_path).configure_optimizers()["optimizer"]) is torch.optim.Adam  # the default


def test_validation_logs_the_mean_over_videos_of_this_validation_only(tmp_path):
    module = _module(tmp_path)
    logged: dict[str, float] = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    module._val.extend([{"voc": 0.5, "bump_rate": 0.25}, {"voc": -0.1, "bump_rate": 0.75}])
    module.on_validation_epoch_end()
    # means of two videos: VOC (0.5 - 0.1) / 2 = 0.2, bump rate (0.25 + 0.75) / 2 = 0.5
    assert logged == {"val/voc": pytest.approx(0.2), "val/bump_rate": pytest.approx(0.5)}
    module._val.append({"voc": 1.0, "bump_rate": 0.0})  # the next validation scores one video: its own scores
    module.on_validation_epoch_end()
    assert logged == {"val/voc": pytest.approx(1.0), "val/bump_rate": pytest.approx(0.0)}


def test_images_per_second_counts_every_role_on_every_process(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import reprl.training.module as module_mod

    module = _module(tmp_path)
    module._trainer = SimpleNamespace(world_size=2, global_step=7)
    logged: dict[str, float] = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    module._t0 = 10.0
    monkeypatch.setattr(module_mod.time, "perf_counter", lambda: 12.0)
    module.on_train_batch_end(None, [0] * 4, 0)
    # VIP tuples have 4 frames (start, goal, t, t1): 4 tuples x 4 frames x 2 processes = 32 images in 2 s
    assert logged == {"train/images_per_s": 16.0, "global_step": 7.0}


def test_negatives_are_drawn_the_same_within_a_step_and_differently_across_steps(tmp_path):
    from types import SimpleNamespace

    module = _module(tmp_path)

    def draw(step):
        module._trainer = SimpleNamespace(world_size=1, global_step=step)
        return torch.randint(0, 1000, (8,), generator=module.step_generator())

    assert torch.equal(draw(5), draw(5)) and not torch.equal(draw(5), draw(6))


def test_a_skipped_step_never_reaches_the_optimiser(tmp_path):
    module = _module(tmp_path)
    calls: list[str] = []

    class Optimizer:
        def step(self):
            calls.append("step")

        def zero_grad(self, set_to_none=True):
            calls.append("zero_grad")

    for skip in (True, False):
        module._skip = skip
        module.optimizer_step(0, 0, Optimizer(), lambda: calls.append("closure"))
    assert calls == ["closure", "zero_grad", "closure", "step"]


def test_keep_best_keeps_a_first_negative_voc(tmp_path):
    from types import SimpleNamespace

    from reprl.encoders.registry import build_encoder
    from reprl.training.callbacks import KeepBest, read_selection

    module = SimpleNamespace(encoder=build_encoder("tiny", embed_dim=8, image_size=32))
    module.state_dict = module.encoder.state_dict
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, global_step=5,
                              callback_metrics={"val/voc": torch.tensor(-0.25)})
    KeepBest(tmp_path / "best").on_validation_end(trainer, module)  # an untrained encoder can score below 0
    assert read_selection(tmp_path / "best") == {"step": 5, "voc": -0.25, "by": "highest held-out VOC at a validation"}


def test_heldout_scores_are_means_over_the_videos_by_hand(monkeypatch):
    import reprl.data.datamodule as datamodule
    from reprl.training.run import heldout_scores

    opened = []

    class Videos:  # frames are 1-dim embeddings already: the stand-in encoder passes them through
        def __init__(self, *args):
            opened.append(args)
            self.videos = [torch.tensor([[0.0], [2.0], [1.0], [3.0]]), torch.tensor([[0.0], [1.0], [2.0], [3.0]])]

        def __len__(self):
            return len(self.videos)

        def __getitem__(self, i):
            return {"frames": self.videos[i]}

    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

        def similarity(self, a, b):
            return -(a - b).norm(dim=-1)

    monkeypatch.setattr(datamodule, "HeldoutVideos", Videos)
    out = heldout_scores({"enc": Identity()}, "shards", 48, max_videos=5, max_frames=9, tasks=("reach",))
    # video 1: V = -|e - 3| = -3, -1, -2, 0: ranks 0, 2, 1, 3 -> VOC 4 / 5 = 0.8; rewards 2, -1, 2 -> bump rate 1/3
    # video 2: V = -3, -2, -1, 0 -> VOC 1, bump rate 0. Means: VOC 0.9, bump rate 1/6, over 2 videos
    assert out == {"enc": {"voc": pytest.approx(0.9), "bump_rate": pytest.approx(1 / 6), "videos": 2}}
    assert opened == [("shards", 48, 5, 9, ("reach",))]


def test_format_summary_reports_the_held_out_video_count_and_the_selection():
    from reprl.training.run import format_summary

    summary = {"steps": 12, "skipped_steps": 1, "run_dir": "r", "encoder": "r/encoder",
               "selected": {"step": 9, "voc": 0.5, "by": "highest held-out VOC at a validation"},
               "heldout": {"random init": {"voc": 0.1, "bump_rate": 0.5, "videos": 4},
                           "trained": {"voc": 0.5, "bump_rate": 0.25, "videos": 4}}}
    text = format_summary(summary)
    assert text.startswith("trained 12 steps (1 skipped) in r\n")
    assert "selected: step 9, highest held-out VOC at a validation, held-out VOC 0.500 at that validation" in text
    assert "held-out videos (4), goal = last frame" in text  # 4 videos, not the 2 encoders
    assert [line.split() for line in text.splitlines()[-2:]] == [["random", "init", "+0.100", "0.500"],
                                                                 ["trained", "+0.500", "0.250"]]


def test_select_best_accepts_a_validation_at_the_last_step(tmp_path):
    from reprl.training.config import check_config

    # val_every 6 = max_steps 6: the one validation lands on the last step, which select best can use
    check_config(tiny(tmp_path, "--trainer.select", "best", "--data.val", HELDOUT_SHARDS, "--trainer.val_every", "6"))


def test_skipped_steps_survive_a_checkpoint_round_trip(tmp_path):
    module = _module(tmp_path)
    module.skipped_steps = 3
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["reprl_skipped_steps"] == 3
    resumed = _module(tmp_path)
    resumed.on_load_checkpoint(checkpoint)  # a resumed run goes on counting from 3
    assert resumed.skipped_steps == 3
    resumed.on_load_checkpoint({})  # a checkpoint from before the count was kept: 0
    assert resumed.skipped_steps == 0


def test_keep_best_exports_nothing_during_a_sanity_check_or_for_a_broken_model(tmp_path):
    from types import SimpleNamespace

    from reprl.encoders.registry import build_encoder
    from reprl.training.callbacks import KeepBest

    module = SimpleNamespace(encoder=build_encoder("tiny", embed_dim=8, image_size=32))
    module.state_dict = module.encoder.state_dict
    keep = KeepBest(tmp_path / "best")

    def validate(sanity=False):
        trainer = SimpleNamespace(is_global_zero=True, sanity_checking=sanity, global_step=1,
                                  callback_metrics={"val/voc": torch.tensor(0.5)})
        keep.on_validation_end(trainer, module)

    validate(sanity=True)
    assert not (tmp_path / "best").exists() and keep.best == float("-inf")
    with torch.no_grad():
        next(module.encoder.parameters()).fill_(float("nan"))
    validate()
    assert not (tmp_path / "best").exists() and keep.best == float("-inf")


def test_the_summary_scores_the_trained_encoder_against_its_own_random_init(tmp_path, monkeypatch):
    import reprl.training.run as run_mod
    from reprl.training.run import build_training_encoder, pretrain

    seen = {}

    def scores(encoders, *args, **kwargs):
        seen.update(encoders)
        return {name: {"voc": 0.0, "bump_rate": 0.0, "videos": 1} for name in encoders}

    monkeypatch.setattr(run_mod, "heldout_scores", scores)
    cfg = tiny(tmp_path, "--data.val", HELDOUT_SHARDS, "--trainer.max_steps", "2", "--trainer.val_every", "2")
    summary = pretrain(cfg)
    init = build_training_encoder(cfg, seed=cfg.trainer.seed)  # the weights the run started from
    trained = reprl.load(summary["encoder"])
    for name, want in (("random init", init), ("trained", trained)):
        got = seen[name].state_dict()
        assert all(torch.equal(got[k].cpu(), v.cpu()) for k, v in want.state_dict().items()), name


def test_trainer_settings_carry_the_gradient_clip_and_step_count(tmp_path):
    from reprl.training.run import trainer_settings

    settings = trainer_settings(tiny(tmp_path, "--optim.grad_clip", "0.25"))
    assert (settings["gradient_clip_val"], settings["max_steps"], settings["precision"]) == (0.25, 6, "32-true")
    assert trainer_settings(tiny(tmp_path))["gradient_clip_val"] is None  # no clipping unless asked


def test_the_global_batch_must_split_over_every_process_of_every_node(tmp_path):
    from reprl.training.config import check_config

    # 6 splits over 2 devices (3 each) but not over 2 devices x 2 nodes = 4 processes: 6 % 4 = 2
    with pytest.raises(ReprlError, match=r"data.batch_size 6 is the global batch .* \(2 devices x 2 nodes\)"):
        check_config(tiny(tmp_path, "--data.batch_size", "6", "--trainer.devices", "2", "--trainer.num_nodes", "2"))
    check_config(tiny(tmp_path, "--data.batch_size", "8", "--trainer.devices", "2", "--trainer.num_nodes", "2"))


def test_adam_betas_of_one_are_refused(tmp_path):
    from reprl.training.config import check_config

    with pytest.raises(ReprlError, match=r"--optim.betas must lie in \[0, 1\), got \[0.9, 1.0\]"):
        check_config(tiny(tmp_path, "--optim.betas", "[0.9, 1.0]"))


def test_training_defaults_are_the_papers_and_the_documented_ones():
    from reprl.training.config import DataSection, OptimSection

    # Adam at lr 1e-4, as VIP and R3M trained (docs/objectives.md); 64 frames per held-out video, as the demo preset
    assert (OptimSection().name, OptimSection().lr, OptimSection().warmup_steps) == ("adam", 1e-4, 0)
    assert (DataSection().val_videos, DataSection().val_max_frames) == (16, 64)
