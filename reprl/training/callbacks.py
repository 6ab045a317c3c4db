"""Callbacks and IO for training: atomic checkpoint writes of finite models only, encoder export at every
checkpoint, the best-validated encoder kept, loggers that append to an earlier run's logs when it is resumed."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any, cast

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from reprl.encoders.io import nonfinite, save_encoder
from reprl.errors import ReprlError

log = logging.getLogger("reprl.training")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to '<name>.partial' and renamed, so a killed run never leaves a torn file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class FiniteCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that writes nothing while the run is diverging: not during a streak of skipped
    (non-finite) steps, and never a model with NaN/inf weights or statistics. The last checkpoint on disk
    stays the last good one, and no export of a broken encoder is made."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        module = trainer.lightning_module
        bad = nonfinite(module.state_dict())
        streak = getattr(module, "_bad_in_row", 0)
        if bad or streak:
            why = f"{len(bad)} tensors hold NaN/inf (e.g. {bad[0]})" if bad else f"{streak} non-finite losses in a row"
            log.warning("step %d: not writing %s: %s; the last checkpoint written is kept", trainer.global_step,
                        Path(filepath).name, why)
            return
        super()._save_checkpoint(trainer, filepath)


class ExportEncoder(L.Callback):
    """Whenever a checkpoint is saved, also export the encoder (config.json + model.safetensors), and keep
    only the last `keep` step checkpoints and exports (last.ckpt is always kept)."""

    def __init__(self, out_dir: str | Path, keep: int = 3, checkpoint_dir: str | Path | None = None) -> None:
        self.out_dir, self.keep = Path(out_dir), max(1, keep)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if not trainer.is_global_zero:
            return
        out = self.out_dir / f"step-{trainer.global_step:07d}"
        if not out.exists():
            save_encoder(pl_module.encoder, out)  # type: ignore[arg-type]  # a PretrainModule: .encoder is an Encoder
        exports = sorted(p for p in self.out_dir.glob("step-*") if p.is_dir())
        for old in exports[: max(0, len(exports) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)
        if self.checkpoint_dir is not None:  # this hook runs before the new file is written: keep K-1 others
            current = f"step-{trainer.global_step:07d}.ckpt"
            older = sorted(p for p in self.checkpoint_dir.glob("step-*.ckpt") if p.name != current)
            for old in older[: max(0, len(older) - (self.keep - 1))]:
                old.unlink(missing_ok=True)


SELECTION = "selection.json"  # in an exported best/ folder: the step and held-out scores that chose it


def read_selection(folder: str | Path) -> dict[str, Any] | None:
    """The record of the best-validated encoder kept in `folder`, or None when there is none yet."""
    path = Path(folder) / SELECTION
    return json.loads(path.read_text()) if path.is_file() else None


class KeepBest(L.Callback):
    """After each validation, export the encoder to `out_dir` when its held-out VOC is the highest so far,
    with selection.json (step, VOC, bump rate) inside the same atomic write. A resumed run reads that
    record back, so a new best must beat the one from before the stop."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        record = read_selection(self.out_dir)
        self.best = float(record["voc"]) if record else -math.inf

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if "val/voc" not in metrics:
            return
        voc = float(metrics["val/voc"])
        if not math.isfinite(voc) or voc <= self.best:
            return
        record = {"step": trainer.global_step, "voc": voc, "by": "highest held-out VOC at a validation"}
        if "val/bump_rate" in metrics:
            record["bump_rate"] = float(metrics["val/bump_rate"])
        if nonfinite(pl_module.state_dict()):
            return  # never keep a broken model, whatever it scores
        save_encoder(pl_module.encoder, self.out_dir,  # type: ignore[arg-type]  # a PretrainModule's Encoder
                     extra={SELECTION: json.dumps(record, indent=2) + "\n"})
        self.best = voc


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; this one keeps its rows and adds to them."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class AppendingCSVLogger(CSVLogger):
    """CSV logs that a resumed run appends to (rows of earlier steps are kept)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return cast(ExperimentWriter, self._experiment)  # an _AppendingWriter, set above


def make_loggers(spec: str, run_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers: list[Any] = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        if name == "csv":
            # flush often: a killed run keeps its log up to the last 10 steps
            loggers.append(AppendingCSVLogger(str(run_dir), name="logs", version="", flush_logs_every_n_steps=10))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(str(run_dir), name="tb", version=""))
        elif name == "wandb":
            try:
                from lightning.pytorch.loggers import WandbLogger
            except ImportError:
                raise ReprlError("the wandb logger needs wandb: pip install wandb") from None
            loggers.append(WandbLogger(save_dir=str(run_dir), project="reprl"))
        elif name != "none":
            raise ReprlError(f"unknown logger {name!r}; choose from csv, tensorboard, wandb, none")
    return loggers
