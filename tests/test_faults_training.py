"""Bad inputs and faults of `reprl pretrain`: reruns, resume, inputs that fail, and the NaN guard (cases in
fault_cases.py). Runs are tiny (a 4-layer CNN at 32 px, a few steps)."""

import csv
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import TRAIN_SHARDS
from fault_cases import case
from test_faults import cli, one_line_error, tree

from reprl.encoders.io import save_encoder
from reprl.encoders.registry import build_from_config, make_config


def tiny_args(run: Path, *extra: str) -> list[str]:
    return ["--run_dir", str(run), "--encoder.name", "tiny", "--encoder.image_size", "32", "--encoder.embed_dim",
            "8", "--data.train", TRAIN_SHARDS, "--data.batch_size", "4", "--data.num_workers", "0",
            "--data.shuffle_buffer", "4", "--trainer.max_steps", "2", "--trainer.checkpoint_every", "2",
            "--trainer.log_every", "1", "--trainer.progress", "false", "--trainer.loggers", "csv",
            "--trainer.accelerator", "cpu", *extra]


def metric_steps(run: Path) -> list[int]:
    with open(run / "logs" / "metrics.csv") as f:
        return sorted({int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    assert cli("pretrain", *tiny_args(run)) == 0
    return run


def batchnorm_encoder(width: int = 4):
    config = make_config("tiny", embed_dim=8, image_size=32)
    config.params.update(width=width, norm="batch")
    return build_from_config(config)


@case("pretrain-rerun")
def test_second_run_into_a_run_dir_is_refused(finished_run, capsys):
    before = tree(finished_run)
    err = one_line_error(capsys, "pretrain", *tiny_args(finished_run))
    assert "--resume last" in err and "--overwrite true" in err and tree(finished_run) == before


@case("pretrain-resume-logs")
def test_resume_appends_to_the_logs(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert metric_steps(run) == [0, 1]
    assert cli("pretrain", *tiny_args(run, "--trainer.max_steps", "4", "--resume", "last")) == 0
    assert metric_steps(run) == [0, 1, 2, 3]


@case("pretrain-bad-inputs")
@pytest.mark.parametrize("bad, message", [
    (["--data.train", "/no/such/shards.tar"], "shard not found"),
    (["--optim.lr", "-1"], "--optim.lr must be > 0"),
    (["--objective.tcn_weight", "5"], "--objective.tcn_weight does not apply to the vip objective"),
    (["--resume", "TORN"], "torn or not a training checkpoint"),
    (["--data.other_goal", "2"], "--data.other_goal is a share of the tuples: give a value from 0 to 1, got 2"),
    (["--objective.name", "r3m", "--data.other_goal", "0.5"], "--data.other_goal needs tuples with a goal frame"),
    (["--resume", "FOREIGN"], "not a reprl pretrain checkpoint"),
    (["--resume", "ZIP"], "not a readable training checkpoint"),
    (["--trainer.num_nodes", "0"], "--trainer.num_nodes and --trainer.devices must be at least 1"),
    (["--trainer.devices", "0"], "--trainer.num_nodes and --trainer.devices must be at least 1"),
    (["--trainer.accelerator", "bogus"], "--trainer.accelerator 'bogus': choose one of"),
    (["--trainer.strategy", "bogus"], "--trainer.strategy 'bogus'"),
    (["--trainer.precision", "bogus"], "--trainer.precision 'bogus': choose one of"),
    (["--trainer.seed", "-1"], "--trainer.seed must lie in [0, 2**32)"),
    (["--encoder.embed_dim", "-3"], "--encoder.embed_dim must be at least 1"),
    (["--encoder.pretrained", "/no/such.pt"], "no such file"),
    (["--data.val_max_frames", "1"], "--data.val_max_frames at least 2"),
    (["--trainer.accelerator", "tpu"], "--trainer.accelerator tpu: this machine has none that torch can use"),
    (["--trainer.devices", "foo"], "--trainer.devices 'foo': give a count"),
])
def test_bad_inputs_leave_no_run_folder(bad, message, finished_run, tmp_path, capsys):
    import zipfile

    torn = tmp_path / "torn.ckpt"
    torn.write_bytes((finished_run / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    torch.save({"a": torch.zeros(2)}, tmp_path / "foreign.ckpt")  # a torch file, but not a training checkpoint
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("x.txt", "not torch")
    paths = {"TORN": torn, "FOREIGN": tmp_path / "foreign.ckpt", "ZIP": tmp_path / "plain.zip"}
    bad = [str(paths.get(b, b)) for b in bad]
    err = one_line_error(capsys, "pretrain", *tiny_args(tmp_path / "run", *bad))
    assert message in err and not (tmp_path / "run").exists()


@case("pretrain-run-dir")
def test_run_dir_of_someone_else_or_holding_the_inputs_is_never_taken(finished_run, tmp_path, capsys):
    """A non-empty run_dir that is not a pretrain run is neither resumed into nor deleted; --overwrite true never
    deletes what the run reads (here its --encoder.init); a checkpoint of another model size is one line."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("mine")
    ckpt = str(finished_run / "checkpoints" / "last.ckpt")
    err = one_line_error(capsys, "pretrain", *tiny_args(mine, "--resume", ckpt))
    assert "not a reprl pretrain run" in err and sorted(p.name for p in mine.iterdir()) == ["config.yaml"]
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = tree(run)
    err = one_line_error(capsys, "pretrain", *tiny_args(run, "--overwrite", "true", "--encoder.init",
                                                         str(run / "encoder"), "--encoder.embed_dim", "null"))
    assert "would delete" in err and "encoder.init" in err and tree(run) == before
    err = one_line_error(capsys, "pretrain", *tiny_args(tmp_path / "other", "--resume", ckpt,
                                                         "--encoder.embed_dim", "16"))
    assert "trained with other settings" in err and "shapes differ" in err


@case("pretrain-overwrite")
def test_overwrite_true_loses_no_run_until_the_new_one_finishes(finished_run, tmp_path, capsys, monkeypatch):
    import reprl.training.run as run_module

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "NOTES.md").write_text("the user's")
    before = tree(run)
    real_fit = run_module._fit

    def stopped_before_a_checkpoint(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_fit", stopped_before_a_checkpoint)
    assert cli("pretrain", *tiny_args(run, "--overwrite", "true")) == 130
    assert "is back in" in capsys.readouterr().err and tree(run) == before and not list(tmp_path.glob(".run.*"))

    def failed_after_a_checkpoint(cfg, run_dir, resume):
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"new")
        raise RuntimeError("boom")

    monkeypatch.setattr(run_module, "_fit", failed_after_a_checkpoint)
    with pytest.raises(RuntimeError):
        cli("pretrain", *tiny_args(run, "--overwrite", "true"))
    kept = list(tmp_path.glob(".run.replaced-*"))
    assert len(kept) == 1 and tree(kept[0]) == before and str(kept[0]) in capsys.readouterr().err
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"new"
    shutil.rmtree(run)
    kept[0].rename(run)  # the user moves the old run back

    monkeypatch.setattr(run_module, "_fit", real_fit)
    assert cli("pretrain", *tiny_args(run, "--overwrite", "true", "--trainer.seed", "3")) == 0
    assert (run / "NOTES.md").read_text() == "the user's" and not list(tmp_path.glob(".run.*"))
    assert (run / "summary.json").read_bytes() != before["summary.json"]
    link = tmp_path / "link"  # a link (or a mount point) cannot be moved aside: refused, nothing touched
    link.symlink_to(run)
    after = tree(run)
    err = one_line_error(capsys, "pretrain", *tiny_args(link, "--overwrite", "true"))
    assert "symbolic link or a mount point" in err and tree(run) == after and link.is_symlink()


def test_device_lists_count_as_lightning_reads_them():
    from reprl.training.config import device_count

    assert [device_count(d) for d in (2, "2", "0,1", "0, 1", "3,", "auto", "-1")] == [2, 2, 2, 2, 1, None, None]


@case("out-unwritable")
def test_unwritable_run_dir_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    err = one_line_error(capsys, "pretrain", *tiny_args(tmp_path / "file" / "run"))
    assert "is a file, not a folder" in err and (tmp_path / "file").read_text() == "x"


@case("nan-guard-batchnorm")
def test_skipped_step_restores_batchnorm_statistics(tmp_path):
    from test_training import tiny

    from reprl.data.stream import ClipBatch
    from reprl.training.module import PretrainModule, norm_buffers

    torch.manual_seed(0)
    module = PretrainModule(tiny(tmp_path), batchnorm_encoder().train())
    module._trainer = SimpleNamespace(world_size=1, global_step=0)
    module.log = module.log_dict = lambda *a, **k: None
    roles = module.objective.roles
    batch = ClipBatch(frames={r: torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8) for r in roles},
                      indices={r: torch.arange(4) for r in roles}, length=torch.full((4,), 10))
    module.training_step(batch, 0)  # a good step moves the statistics
    before = [b.clone() for b in norm_buffers(module.encoder)]
    assert before and not module._skip
    with torch.no_grad():
        module.encoder.convnet[0].weight.mul_(1e30)  # finite weights whose activations overflow
    module.training_step(batch, 1)
    assert module._skip and module.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, norm_buffers(module.encoder)))


@case("pretrain-diverges")
def test_diverging_run_keeps_only_finite_checkpoints(tmp_path, capsys):
    from safetensors.torch import load_file

    from reprl.encoders.io import nonfinite

    init = save_encoder(batchnorm_encoder(), tmp_path / "init")
    run = tmp_path / "run"
    err = one_line_error(capsys, "pretrain", *tiny_args(run, "--encoder.init", str(init), "--optim.lr", "1e4",
                                                        "--trainer.max_steps", "4", "--trainer.checkpoint_every", "1"))
    assert "non-finite" in err and "no encoder was exported" in err
    assert not (run / "encoder").exists()
    ckpts = list((run / "checkpoints").glob("*.ckpt")) if run.exists() else []
    assert ("No checkpoint was written" in err) == (not ckpts)
    for ckpt in ckpts:
        assert not nonfinite(torch.load(ckpt, weights_only=True)["state_dict"]), ckpt.name
    for export in (run / "encoders").glob("step-*") if run.exists() else []:
        assert not nonfinite(load_file(export / "model.safetensors")), export.name


@case("pretrain-interrupted")
def test_ctrl_c_says_interrupted_and_how_to_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C during training (Lightning turns it into exit status 1, silently): exit 130, one line naming the
    checkpoint to resume from, and the run folder kept."""
    from reprl.training.progress import TextProgress

    def ctrl_c(self, trainer, *args):
        if trainer.global_step >= 3:  # after the checkpoint of step 2
            raise KeyboardInterrupt

    monkeypatch.setattr(TextProgress, "on_train_batch_end", ctrl_c)
    assert cli("pretrain", *tiny_args(tmp_path / "run", "--trainer.max_steps", "6")) == 130
    err = capsys.readouterr().err
    assert "pretrain: interrupted at step 3" in err and "last.ckpt (step 2" in err and "--resume last" in err
    assert "reprl pretrain: interrupted" in err
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
