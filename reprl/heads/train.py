"""Train BC and reward-weighted-regression heads on cached embeddings (each frame embedded once).

Transitions (o_t, proprio_t, a_t, o_{t+1}) come from episodes with frames o_0..o_T and actions a_0..a_{T-1}.

- BC: minimise the per-sample loss (MSE on actions, or Gaussian NLL).
- RWR (VIP's offline RL protocol): weight each sample by w = exp(tau * R), R = S(o_{t+1}; g) - S(o_t; g)
  with the encoder's own similarity S and goal embedding g (the mean of the demos' last-frame embeddings,
  or a given goal). `weighting="chi2"` uses the Pearson chi^2 dual's weights max(0, 1 + tau * R / 2) instead
  of KL's exp(tau * R). Rewards can be standardised first; weights can be clipped (`clip`) and are
  normalised to mean 1 over the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from reprl.errors import ReprlError
from reprl.heads.learner import Learner
from reprl.heads.policy import HeadConfig, PolicyHead
from reprl.objectives.common import chi2_weights


@dataclass
class Transitions:
    """Cached training data for a head: embeddings of o_t and o_{t+1}, proprioception, actions, and what the
    dual-RL heads add: an expert flag, a reward (filled in by the caller when a head uses one) and `done`
    (o_{t+1} is terminal: the episode ended for good, not by a time limit)."""

    emb: torch.Tensor  # [N, D]
    next_emb: torch.Tensor  # [N, D]
    proprio: torch.Tensor  # [N, P]
    actions: torch.Tensor  # [N, A]
    episode: torch.Tensor  # [N] episode id of each transition
    next_proprio: torch.Tensor | None = None  # [N, P]; None: the same as proprio
    expert: torch.Tensor | None = None  # [N] bool: transition of an expert demonstration
    reward: torch.Tensor | None = None  # [N]
    done: torch.Tensor | None = None  # [N] bool

    def __len__(self) -> int:
        return int(self.emb.shape[0])

    def tensors(self, proprio: bool = True) -> dict[str, torch.Tensor]:
        """Every field as a float tensor, with states s = [emb, proprio] and s' (emb only if not proprio)."""
        n = len(self)
        p = self.proprio if proprio else self.proprio[:, :0]
        p2 = (self.next_proprio if self.next_proprio is not None else self.proprio) if proprio else p
        zeros = torch.zeros(n)
        out = {"emb": self.emb, "proprio": p, "actions": self.actions, "state": torch.cat([self.emb, p], 1),
               "next_state": torch.cat([self.next_emb, p2], 1),
               "expert": self.expert.float() if self.expert is not None else zeros,
               "reward": self.reward.float() if self.reward is not None else zeros,
               "done": self.done.float() if self.done is not None else zeros}
        return {k: v.float() for k, v in out.items()}

    @staticmethod
    def from_episodes(episodes: list[dict[str, Any]]) -> Transitions:
        """episodes: dicts with emb [T+1, D], proprio [T+1, P], actions [T, A] (frames of every step), and
        optionally expert (bool), reward [T] and terminal (bool: the last frame ends the episode for good)."""
        if not episodes:
            raise ReprlError("no episodes to train a head on")
        keys = ("emb", "next_emb", "proprio", "next_proprio", "actions", "episode", "expert", "reward", "done")
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for i, ep in enumerate(episodes):
            emb = torch.as_tensor(ep["emb"], dtype=torch.float32)
            actions = torch.as_tensor(np.asarray(ep["actions"]), dtype=torch.float32)
            t = actions.shape[0]
            if emb.shape[0] != t + 1:
                raise ReprlError(f"episode {i}: {emb.shape[0]} frame embeddings for {t} actions (need T+1 frames; "
                                 "render demos with --frame-every 1)")
            proprio = torch.as_tensor(np.asarray(ep["proprio"]), dtype=torch.float32)
            reward = ep.get("reward")
            parts["emb"].append(emb[:-1])
            parts["next_emb"].append(emb[1:])
            parts["proprio"].append(proprio[:t])
            parts["next_proprio"].append(proprio[1:t + 1] if len(proprio) > t else proprio[:t])
            parts["actions"].append(actions)
            parts["episode"].append(torch.full((t,), i, dtype=torch.long))
            parts["expert"].append(torch.full((t,), bool(ep.get("expert", False))))
            parts["reward"].append(torch.as_tensor(np.asarray(reward, dtype=np.float32)[:t]) if reward is not None
                                   else torch.full((t,), float("nan")))
            done = torch.zeros(t, dtype=torch.bool)
            done[-1:] = bool(ep.get("terminal", False))
            parts["done"].append(done)
        out = {k: torch.cat(v) for k, v in parts.items()}
        if bool(torch.isnan(out["reward"]).any()):
            out["reward"] = None  # type: ignore[assignment]  # Transitions.reward is optional
        return Transitions(**out)


def rwr_weights(rewards: torch.Tensor, tau: float = 0.1, weighting: Literal["exp", "chi2"] = "exp",
                clip: float | None = 20.0, normalize: bool = True, standardize: bool = False) -> torch.Tensor:
    """Per-sample weights from rewards: exp(tau R) (KL dual / RWR) or max(0, 1 + tau R / 2) (chi^2 dual).

    standardize: z-score the rewards first (as AWR does with advantages), so tau means the same thing for
    encoders whose similarities have different scales (L2 distances vs cosine / (1 - gamma)).
    """
    if standardize:
        rewards = (rewards - rewards.mean()) / rewards.std().clamp_min(1e-8)
    x = tau * rewards
    if weighting == "exp":
        w = torch.exp(x.clamp(max=80.0))  # exp(80) still fits float32
    elif weighting == "chi2":
        w = chi2_weights(x)
    else:
        raise ReprlError(f"weighting must be 'exp' or 'chi2', got {weighting!r}")
    if clip is not None:
        w = w.clamp(max=clip)
    if normalize:
        if float(w.sum()) <= 0:
            raise ReprlError("every RWR weight is 0 (chi2 weights of very negative rewards): raise tau or use exp")
        w = w / w.mean()
    return w


def mean_goal(goal_embeddings: Any) -> torch.Tensor:
    """The goal embedding [D] of several (e.g. the expert demos' last frames): their mean."""
    return torch.as_tensor(np.stack([np.asarray(g) for g in goal_embeddings])).float().mean(0)


def transition_rewards(data: Transitions, goal: torch.Tensor, similarity: Any, steps: int = 1) -> torch.Tensor:
    """R_t = S(o_{t+k}; g) - S(o_t; g) for every transition, k = `steps` (1: the one-step reward heads learn
    from). o_{t+k} stops at the episode's last observation; episodes are the runs of equal `data.episode`."""
    if steps < 1:
        raise ReprlError(f"steps must be >= 1, got {steps}")
    g = goal[None] if goal.dim() == 1 else goal
    now, after = similarity(data.emb, g), similarity(data.next_emb, g)
    if steps == 1:
        return after - now
    n = len(now)
    index = torch.arange(n)
    ends = torch.ones(n, dtype=torch.bool)  # the last transition of each episode
    ends[:-1] = data.episode[1:] != data.episode[:-1]
    last = torch.flip(torch.cummin(torch.flip(torch.where(ends, index, n), [0]), 0).values, [0])
    target = index + steps  # o_{t+k} is transition t+k's observation, or past the end the episode's last one
    return torch.where(target <= last, now[target.clamp(max=n - 1)], after[last]) - now


class HeadTrainer(Learner):
    """BC / RWR: a PolicyHead fitted by (weighted) regression of the actions."""

    def __init__(self, data: Transitions, cfg: HeadConfig, *, weights: torch.Tensor | None = None, seed: int = 0,
                 device: str = "cpu") -> None:
        super().__init__(data, cfg, seed=seed, device=device)
        w = weights if weights is not None else torch.ones(len(data))
        if w.shape != (len(data),):
            raise ReprlError(f"weights must have one entry per transition ({len(data)}), got {tuple(w.shape)}")
        self.t["weight"] = w.float().to(device)
        self.head = self.actor = PolicyHead(data.emb.shape[1], data.proprio.shape[1], data.actions.shape[1],
                                            cfg).to(device)
        self.optimizers = [torch.optim.Adam(self.head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)]

    def losses(self) -> dict[str, torch.Tensor]:
        batch = self.sample()
        return {"actor": self.actor_loss(batch, batch["weight"])}


def train_head(data: Transitions, cfg: HeadConfig, *, weights: torch.Tensor | None = None, seed: int = 0,
               device: str = "cpu") -> tuple[PolicyHead, dict[str, float]]:
    """Fit a PolicyHead by (weighted) regression for cfg.steps; returns it in eval mode and the losses."""
    trainer = HeadTrainer(data, cfg, weights=weights, seed=seed, device=device)
    losses = trainer.train(cfg.steps)
    return trainer.head, losses
