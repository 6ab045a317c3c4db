"""One generic LightningModule: an encoder, an objective, the optimiser and schedule, held-out VOC / bump rate.

Non-finite losses: the step still runs backward on a zero loss that touches every parameter (so DDP's
gradient reduction stays in step on all ranks, which all see the same gathered loss), the optimiser step is
skipped, the normalisation layers' running statistics are restored to what they were before the step's
forward pass (a NaN batch would otherwise poison them for good), and the skip is counted. `max_bad_steps`
skips in a row stop the run with a `DivergedError`.
"""

from __future__ import annotations

import math
import time
import zlib
from typing import Any

import lightning as L
import torch

from reprl.data.stream import ClipBatch
from reprl.encoders.base import Encoder
from reprl.encoders.io import CKPT_CONFIG_KEY
from reprl.errors import ReprlError
from reprl.objectives.common import gather_with_grad
from reprl.objectives.registry import build_objective
from reprl.rewards import video_metrics
from reprl.training.config import OptimSection, PretrainConfig
from reprl.typed_config import to_dict


class DivergedError(ReprlError):
    """The loss stayed non-finite for `max_bad_steps` steps in a row."""


def norm_buffers(module: torch.nn.Module) -> list[torch.Tensor]:
    """The running statistics of every batch-norm layer: updated by forward passes in train mode."""
    return [b for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for b in m.buffers(recurse=False)]


def lr_lambda(opt: OptimSection, max_steps: int) -> Any:
    """Linear warm-up, then constant or cosine decay to min_lr_ratio."""
    def factor(step: int) -> float:
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        span = max(1, max_steps - opt.warmup_steps)
        progress = min(1.0, (step - opt.warmup_steps) / span)
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


class PretrainModule(L.LightningModule):
    def __init__(self, cfg: PretrainConfig, encoder: Encoder) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.objective = build_objective(cfg.objective, encoder)
        self.skipped_steps = 0
        self._bad_in_row = 0
        self._skip = False
        self._t0: float | None = None
        self._val: list[dict[str, float]] = []
        self.save_hyperparameters({"config": to_dict(cfg)})

    # -- training ------------------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Training batches (pinned by the data loader on CUDA machines) are copied without blocking the
        host; Lightning's default passes non_blocking only to bare tensors, not to a ClipBatch."""
        if isinstance(batch, ClipBatch):
            return batch.to(device, non_blocking=device.type == "cuda")
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def embed_roles(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        """One encoder pass over all roles of the batch (as the reference does) -> {role: [B, D]}."""
        roles = self.objective.roles
        missing = [r for r in roles if r not in batch.frames]
        if missing:
            raise ReprlError(f"the {self.cfg.objective.name} objective needs frames {missing} that this batch "
                             f"lacks (roles: {list(batch.frames)})")
        images = torch.cat([batch.frames[r] for r in roles])
        emb = self.encoder(images)
        return dict(zip(roles, emb.split(len(batch))))

    def step_generator(self) -> torch.Generator:
        """The same seed on every rank for this step, so negatives are drawn identically everywhere."""
        seed = zlib.crc32(f"{self.cfg.trainer.seed}:{self.global_step}".encode())
        return torch.Generator().manual_seed(seed)

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        stats = norm_buffers(self.encoder)
        saved = [b.clone() for b in stats]
        emb = self.embed_roles(batch)
        gather = gather_with_grad if self.trainer.world_size > 1 else None
        loss, metrics = self.objective(emb, batch.text, self.encoder, generator=self.step_generator(), gather=gather)
        checks = [torch.isfinite(loss).all()] + [torch.isfinite(b).all() for b in stats if b.is_floating_point()]
        bad = (~torch.stack(checks).all()).float()
        if self.trainer.world_size > 1:  # running statistics are per rank: skip everywhere if any rank is bad
            bad = self.trainer.strategy.reduce(bad, reduce_op="max")
        self._skip = bool(bad > 0)  # one host sync for the loss and the running statistics
        if self._skip:
            with torch.no_grad():
                for b, old in zip(stats, saved):
                    b.copy_(old)
            self.skipped_steps += 1
            self._bad_in_row += 1
            self.log("train/skipped_steps", float(self.skipped_steps), rank_zero_only=True)
            if self._bad_in_row >= self.cfg.trainer.max_bad_steps:
                raise DivergedError(f"the loss was not finite for {self._bad_in_row} steps in a row (step "
                                    f"{self.global_step}); stopping. Lower the learning rate, add l1/l2 penalties, "
                                    "or check the data.")
            zero = sum((p * 0.0).sum() for p in self.parameters() if p.requires_grad)
            return zero  # type: ignore[return-value]  # a Tensor: some parameter is trainable
        self._bad_in_row = 0
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in metrics.items() if k != "loss"})
        return loss

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        optimizer_closure()  # forward + backward (+ gradient all-reduce under DDP)
        if self._skip:
            optimizer.zero_grad(set_to_none=True)
            return
        optimizer.step()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._t0 is None:
            return
        images = len(batch) * len(self.objective.roles) * self.trainer.world_size
        self.log("train/images_per_s", images / max(1e-9, time.perf_counter() - self._t0), prog_bar=True)
        self.log("global_step", float(self.global_step))

    def configure_optimizers(self) -> Any:
        opt_cfg = self.cfg.optim
        params = [p for p in self.parameters() if p.requires_grad]
        cls = torch.optim.AdamW if opt_cfg.name == "adamw" else torch.optim.Adam
        optimizer = cls(params, lr=opt_cfg.lr, betas=opt_cfg.betas, eps=opt_cfg.eps, weight_decay=opt_cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(opt_cfg, self.cfg.trainer.max_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- validation: VOC and bump rate on whole held-out videos ------------------------------------------
    def validation_step(self, video: dict[str, Any], batch_idx: int) -> None:
        emb = self.encoder(video["frames"])
        self._val.append(video_metrics(emb, self.encoder.similarity))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        for key in ("voc", "bump_rate"):
            value = torch.tensor(sum(m[key] for m in self._val) / len(self._val), device=self.device)
            self.log(f"val/{key}", value, sync_dist=True, prog_bar=key == "voc")
        self._val.clear()

    # -- checkpoints -----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_CONFIG_KEY] = self.encoder.config.to_dict()
        checkpoint["reprl_skipped_steps"] = self.skipped_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_steps = int(checkpoint.get("reprl_skipped_steps", 0))
