"""What every objective is built from: the Objective base class and the settings classes (ObjectiveConfig, and
ValueConfig shared by the dual value objectives VIP and LIV). Each objective lives in its own module (vip.py,
liv.py, r3m.py, or a plugin's) and is made trainable by name in registry.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.objectives.common import Gather


@dataclass
class ObjectiveConfig:
    """The `objective` section: `name` picks the objective; its Config class (a subclass) adds its own settings
    (docs/objectives.md)."""

    name: str = "vip"  # vip | liv | r3m, or an objective registered with register_objective


@dataclass
class ValueConfig(ObjectiveConfig):
    """Settings of the dual value objectives (VIP and LIV)."""

    gamma: float = 0.98  # discount of the value objective
    num_negatives: int = 0  # negatives per sample: other videos' frames in the batch
    negatives: Literal["separate", "joint"] = "separate"  # one extra term (as the released code) or in the main term
    f: Literal["kl", "chi2", "tv"] = "kl"  # dual f-divergence: kl is VIP
    alpha: float = 1.0  # temperature of the dual term (kl: VIP uses 1)


class Objective(nn.Module):
    """Base class. A subclass sets `name` and `roles`, and either names a built-in sampling `mode` or defines
    `sample(length, rng) -> {role: index}` (registered as a sampling mode of the same name)."""

    name: str = ""
    roles: tuple[str, ...] = ()  # the frames of one training tuple it needs (data/sampling.py)
    mode: str | None = None  # built-in sampling mode (vip, liv, r3m); None: the class's own `sample`
    goal_last_mode: str | None = None  # the mode used with data.goal_last (None: goal_last is refused)
    needs_text: bool = False  # tuples carry the video's caption (videos without one are skipped)
    Config: type[ObjectiveConfig] = ObjectiveConfig  # its settings: a subclass with its own fields, nothing else
    similarity: str = "l2"  # the value function a new encoder is built with when encoder.similarity is unset

    @classmethod
    def trains_text(cls, cfg: Any) -> bool:
        """Whether this configuration (an instance of cls.Config) trains the encoder's text tower (otherwise it
        is frozen)."""
        return False

    def __init__(self, cfg: ObjectiveConfig) -> None:
        super().__init__()
        self.cfg: Any = cfg  # an instance of its Config

    @classmethod
    def build(cls, cfg: ObjectiveConfig, encoder: Encoder) -> Objective:
        """The objective for this encoder; refuse encoders it cannot train (e.g. LIV without a text tower)."""
        return cls(cfg)

    @classmethod
    def data_mode(cls, goal_last: bool = False) -> str:
        """The sampling mode the stream draws this objective's tuples with."""
        if goal_last:
            if cls.goal_last_mode is None:
                raise ReprlError(f"data.goal_last does not apply to the {cls.name} objective; remove it")
            return cls.goal_last_mode
        return cls.mode or cls.name

    def forward(self, emb: dict[str, torch.Tensor], text: list[str], encoder: Encoder, *,
                generator: torch.Generator | None = None, gather: Gather | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError
