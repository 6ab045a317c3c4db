"""What every head's training shares: states from cached data, batch sampling, MLPs with fixed input
standardisation, target networks, and one optimisation loop that skips non-finite steps.

A head is a `Learner` subclass that builds its networks and optimisers and implements `losses()`: a dict of
batch losses, each with gradients only into its own networks (cross terms are detached), one of them named
"actor" (what the exported policy minimises). The loop sums them, runs one backward, and steps every
optimiser, or, if any loss is not finite, skips the step as pretraining does (counted; `max_bad_steps`
skips in a row stop training with a clear error).
"""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from reprl.errors import ReprlError
from reprl.heads.policy import HeadConfig, PolicyHead

MAX_BAD_STEPS = 10


class Standardize(nn.Module):
    """(x - mean) / std with statistics fixed from the training data (std floored, so constant features map to 0)."""

    mean: torch.Tensor  # buffers registered in __init__
    std: torch.Tensor

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", x.mean(0) if len(x) else torch.zeros(x.shape[1]))
        std = x.std(0, unbiased=False) if len(x) > 1 else torch.ones(x.shape[1])
        self.register_buffer("std", std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def mlp(inp: int, hidden: tuple[int, ...], out: int, activation: str = "relu") -> nn.Sequential:
    """Linear -> act -> ... -> Linear."""
    act: type[nn.Module] = nn.ReLU if activation == "relu" else nn.Tanh
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inp, width), act()]
        inp = width
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


def standardized_mlp(x: torch.Tensor, hidden: tuple[int, ...], out: int) -> nn.Sequential:
    """An MLP over inputs like x (standardised with x's statistics)."""
    return nn.Sequential(Standardize(x), mlp(x.shape[1], hidden, out))


def target_copy(net: nn.Module) -> nn.Module:
    """A frozen copy for bootstrapped targets, updated only by polyak_update."""
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """target <- (1 - rate) * target + rate * source, parameter by parameter."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, rate)


class Learner:
    """Base of every head's trainer; `train(steps)` may be called repeatedly (evaluations in between)."""

    actor: nn.Module

    def __init__(self, data: Any, head: HeadConfig, *, seed: int = 0, device: str = "cpu") -> None:
        if len(data) < 2:
            raise ReprlError(f"need at least 2 transitions to train a head, got {len(data)}")
        self.gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.head_cfg, self.device, self.n = head, device, len(data)
        self.batch = min(head.batch_size, self.n)
        self.t = {k: v.to(device) for k, v in data.tensors(head.proprio).items()}
        self.optimizers: list[torch.optim.Optimizer] = []
        self.steps_done = self.skipped_steps = self._bad_in_row = 0

    def sample(self, pool: torch.Tensor | None = None, size: int | None = None) -> dict[str, torch.Tensor]:
        """A batch drawn with replacement from all transitions or from the indices in `pool`."""
        size = size or self.batch
        if pool is None:
            idx = torch.randint(self.n, (size,), generator=self.gen)
        else:
            idx = pool[torch.randint(len(pool), (size,), generator=self.gen)]
        idx = idx.to(self.device)
        return {k: v[idx] for k, v in self.t.items()}

    def actor_loss(self, batch: dict[str, torch.Tensor], weights: torch.Tensor | None = None) -> torch.Tensor:
        """(Weighted) mean of the policy head's per-sample loss on the batch's actions."""
        actor = cast(PolicyHead, self.actor)  # actor_loss is only called by learners whose actor is a PolicyHead
        per = actor.per_sample_loss(batch["emb"], batch["proprio"], batch["actions"])
        return per.mean() if weights is None else (weights * per).mean()

    def losses(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every applied optimiser step (target-network updates)."""

    def modules(self) -> list[nn.Module]:
        return [m for m in vars(self).values() if isinstance(m, nn.Module)]

    def train(self, steps: int) -> dict[str, float]:
        """Run `steps` steps; returns the actor loss over the first and last tenth, and every loss's last tenth."""
        for m in self.modules():
            m.train()
        history: dict[str, list[float]] = {}
        for _ in range(steps):
            losses = self.losses()
            total = sum(losses.values())
            assert isinstance(total, torch.Tensor), "losses() returns at least one loss"
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            if not bool(torch.isfinite(total)):
                self._skip()
                continue
            self._bad_in_row = 0
            total.backward()
            for opt in self.optimizers:
                opt.step()
            self.after_step()
            for k, v in losses.items():
                history.setdefault(k, []).append(float(v.detach()))
        self.steps_done += steps
        for m in self.modules():
            m.eval()
        return summarize_losses(history, self.skipped_steps)

    def _skip(self) -> None:
        self.skipped_steps += 1
        self._bad_in_row += 1
        if self._bad_in_row >= MAX_BAD_STEPS:
            raise ReprlError(f"a head's loss was not finite for {self._bad_in_row} steps in a row (step "
                             f"{self.steps_done}); lower the learning rate or raise the temperature")


def summarize_losses(history: dict[str, list[float]], skipped: int) -> dict[str, float]:
    out: dict[str, float] = {"skipped_steps": float(skipped)}
    for name, values in history.items():
        k = max(1, min(100, len(values) // 10))
        key = "loss" if name == "actor" else name
        if key == "loss":
            out["loss_first"] = float(np.mean(values[:k]))
        out[f"{key}_last"] = float(np.mean(values[-k:]))
    return out
