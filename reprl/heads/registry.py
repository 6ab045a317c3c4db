"""Every head by name: its config class, whether it needs a reward or expert flags, and one way to train it.

    learner = make_learner("recoil", transitions, HeadConfig(steps=2000), ReCOILConfig(temperature=10))
    learner.train(2000); actor = learner.actor          # a module: (emb, proprio) -> action
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from reprl.errors import ReprlError
from reprl.heads.dualrl import (
    AWRConfig,
    AWRLearner,
    FDVLConfig,
    FDVLLearner,
    IQLConfig,
    IQLLearner,
    ReCOILConfig,
    ReCOILLearner,
)
from reprl.heads.learner import Learner
from reprl.heads.policy import HeadConfig
from reprl.heads.trail import TRAILConfig, TRAILLearner
from reprl.heads.train import HeadTrainer, Transitions, mean_goal, rwr_weights, transition_rewards
from reprl.typed_config import from_dict


@dataclass
class RWRConfig:
    """Reward-weighted regression with the encoder's reward R = S(o'; g) - S(o; g)."""

    tau: float = 0.1  # weights exp(tau R) (rwr) or max(0, 1 + tau R / 2) (rwr_chi2)
    clip: float | None = 20.0  # weights are clipped at this (None: no clipping)
    standardize: bool = False  # z-score rewards before weighting (comparable tau across encoders)
    goal: Literal["demo_last_frames"] = "demo_last_frames"  # goal embedding: mean of the demos' last frames


@dataclass
class BCConfig:
    """Behaviour cloning has no settings beyond the HeadConfig (architecture, steps, batch, lr)."""


CONFIGS: dict[str, type] = {"bc": BCConfig, "rwr": RWRConfig, "rwr_chi2": RWRConfig, "awr": AWRConfig,
                            "iql": IQLConfig, "fdvl": FDVLConfig, "recoil": ReCOILConfig, "trail": TRAILConfig}
HEADS = tuple(CONFIGS)
NEEDS_EXPERT = ("recoil", "trail")
# A head's revision goes up when a change to its training changes what it learns. Evaluation cells key on it (for
# revisions above 0), so `reprl eval` retrains the cells an older revision wrote instead of reusing them.
#   recoil 1: the value loss's Gumbel normaliser is taken over both halves of the batch (expert and mixture).
REVISIONS: dict[str, int] = {"recoil": 1}


def settings_section(kind: str) -> str:
    """The settings (and revision) head `kind` shares: rwr_chi2 is rwr with another weight function."""
    return "rwr" if kind == "rwr_chi2" else kind


def head_revision(kind: str) -> int:
    return REVISIONS.get(settings_section(kind), 0)


def check_head(kind: str) -> str:
    if kind not in CONFIGS:
        raise ReprlError(f"unknown head {kind!r}; choose from {', '.join(HEADS)}")
    return kind


def head_config(kind: str, values: dict[str, Any] | Any | None = None) -> Any:
    """The config of head `kind`: defaults, updated from a mapping (checked keys) or given as the dataclass."""
    cls = CONFIGS[check_head(kind)]
    if values is None:
        return cls()
    cfg = values if isinstance(values, cls) else from_dict(cls, dict(values), kind)
    return check_ranges(kind, cfg)


POSITIVE = ("temperature", "beta", "max_weight", "lr", "tau", "reward_scale", "huber", "embed_dim")
NON_NEGATIVE = ("random_actions",)
UNIT = {"expectile": (0.0, 1.0), "discount": (0.0, 1.0), "polyak": (0.0, 1.0), "shuffle": (0.0, 1.0),
        "pretrain_fraction": (0.0, 1.0)}


def check_ranges(kind: str, cfg: Any) -> Any:
    """Settings that would make a head diverge or divide by zero fail here, before any work."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.name in POSITIVE and not v > 0:
            raise ReprlError(f"{kind}.{f.name} must be > 0, got {v}")
        if f.name in NON_NEGATIVE and not v >= 0:
            raise ReprlError(f"{kind}.{f.name} must be >= 0, got {v}")
        lo, hi = UNIT.get(f.name, (None, None))
        if lo is not None and not (lo <= v <= hi and (f.name == "shuffle" or lo < v)):
            raise ReprlError(f"{kind}.{f.name} must be in ({lo}, {hi}], got {v}")
    return cfg


def reward_source(kind: str, cfg: Any) -> str | None:
    """'encoder', 'env' or None (the head uses no reward)."""
    if kind in ("rwr", "rwr_chi2"):
        return "encoder"
    return getattr(cfg, "reward", None)


def prepare_rewards(rewards: torch.Tensor, cfg: Any) -> torch.Tensor:
    """Z-score (if cfg.standardize_reward) and scale rewards for the value-based heads."""
    r = rewards.float()
    if getattr(cfg, "standardize_reward", False) and r.numel() > 1:
        r = (r - r.mean()) / r.std().clamp_min(1e-8)
    return r * getattr(cfg, "reward_scale", 1.0)


def with_reward(kind: str, cfg: Any, data: Transitions, goal_embeddings: Any, similarity: Any) -> Transitions:
    """The transitions with the reward head `kind` learns from: the encoder's S(o'; g) - S(o; g) with g the mean of
    `goal_embeddings` (e.g. the expert demos' last frames), the data's own (environment) reward, or none."""
    source = reward_source(kind, head_config(kind, cfg))
    if source == "encoder":
        return dataclasses.replace(data, reward=transition_rewards(data, mean_goal(goal_embeddings), similarity))
    if source == "env" and data.reward is None:
        raise ReprlError(f"the {kind} head is set to the environment's reward, but the data has none: add reward "
                         "arrays or use reward=encoder")
    return data if source else dataclasses.replace(data, reward=None)


def make_learner(kind: str, data: Transitions, head: HeadConfig, cfg: Any = None, *, seed: int = 0,
                 device: str = "cpu") -> Learner:
    """A ready-to-train learner for head `kind` on `data` (data.reward / data.expert set as the head needs)."""
    cfg = head_config(kind, cfg)
    if kind in NEEDS_EXPERT and (data.expert is None or not bool(data.expert.any())):
        raise ReprlError(f"the {kind} head needs expert transitions: mark the expert episodes (expert: true)")
    if kind == "bc":
        return HeadTrainer(data, head, seed=seed, device=device)
    if kind in ("rwr", "rwr_chi2"):
        if data.reward is None:
            raise ReprlError(f"the {kind} head weights transitions by reward: give the transitions a reward")
        w = rwr_weights(data.reward, cfg.tau, "chi2" if kind == "rwr_chi2" else "exp", clip=cfg.clip,
                        standardize=cfg.standardize)
        return HeadTrainer(data, head, weights=w, seed=seed, device=device)
    if kind == "trail":
        return TRAILLearner(data, head, cfg, seed=seed, device=device)
    if data.reward is not None and reward_source(kind, cfg):
        data = dataclasses.replace(data, reward=prepare_rewards(data.reward, cfg))
    learner = {"awr": AWRLearner, "iql": IQLLearner, "fdvl": FDVLLearner, "recoil": ReCOILLearner}[kind]
    return learner(data, head, cfg, seed=seed, device=device)


def train_policy(kind: str, data: Transitions, head: HeadConfig, cfg: Any = None, *, seed: int = 0,
                 device: str = "cpu") -> tuple[torch.nn.Module, dict[str, float]]:
    """Train head `kind` for head.steps; returns its actor (eval mode) and the loss summary."""
    learner = make_learner(kind, data, head, cfg, seed=seed, device=device)
    losses = learner.train(head.steps)
    return learner.actor, losses
