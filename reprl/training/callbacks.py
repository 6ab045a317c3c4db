"""Callbacks and IO for training: atomic checkpoint writes of finite models only, encoder export at every
checkpoint, loggers that append to an earlier run's logs when it is resumed."""

from __future__ import annotations

import csv
import logging
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
