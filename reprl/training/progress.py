"""Plain-text training progress for logs and scripts (`trainer.progress: false`): a line every few percent
with the step, the loss, the rate and the time left, instead of a progress bar that redraws."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class TextProgress(L.Callback):
    """Prints 'step 100/500 (20%)  loss 1.234  1.3 steps/s  ETA 5m07s' every `every` steps (default: 5% of
    the run, at least 10 steps). Rank 0 only."""

    def __init__(self, every: int | None = None) -> None:
        self.every = every
        self._t0 = 0.0
        self._start_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._start_step = time.monotonic(), trainer.global_step
        if self.every is None:
            self.every = max(10, trainer.max_steps // 20)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step, total = trainer.global_step, trainer.max_steps
        if not trainer.is_global_zero or not self.every or (step % self.every and step != total):
            return
        done = step - self._start_step
        rate = done / max(time.monotonic() - self._t0, 1e-9)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss_text = f"  loss {float(loss):.3f}" if loss is not None else ""
        eta = format_eta((total - step) / rate) if rate > 0 else "?"
        print(f"step {step}/{total} ({100 * step // max(total, 1)}%){loss_text}  {rate:.2f} steps/s  ETA {eta}",
              flush=True)
