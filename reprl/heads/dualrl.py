"""Value-based heads on frozen embeddings: IQL, AWR, f-DVL and ReCOIL (docs/heads.md has the math).

Each learns critics on states s = [phi(o), proprio] and exports a PolicyHead actor trained by
advantage-weighted regression of the data's actions, so every head acts like BC does. The loss settings'
defaults are the authors' released ones (IQL and f-DVL for locomotion, ReCOIL's MuJoCo runs, AWR's); steps,
batch and the actor's learning rate come from the suite's HeadConfig, and docs/heads.md lists where training
differs from the released runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from reprl.errors import ReprlError
from reprl.heads import losses as L
from reprl.heads.learner import Learner, polyak_update, standardized_mlp, target_copy
from reprl.heads.policy import HeadConfig, PolicyHead
from reprl.heads.train import Transitions


@dataclass
class CriticConfig:
    """Critic / value networks shared by the value-based heads (the actor is the suite's HeadConfig)."""

    hidden: tuple[int, ...] = (256, 256)  # widths of every critic and value MLP
    lr: float = 3e-4  # Adam learning rate of critics and value
    discount: float = 0.99  # gamma
    polyak: float = 0.005  # target-network update rate per step


@dataclass
class RewardedConfig(CriticConfig):
    """Heads that learn from a reward: the encoder's S(o'; g) - S(o; g) (goal = the demos' mean last frame)
    or the environment's reward, z-scored over the dataset (if standardize_reward) and then scaled."""

    reward: Literal["encoder", "env"] = "encoder"  # where the reward comes from
    standardize_reward: bool = True  # z-score rewards over the dataset (comparable across encoders)
    reward_scale: float = 1.0  # multiply the (standardised) reward by this


@dataclass
class IQLConfig(RewardedConfig):
    expectile: float = 0.7  # tau of V's expectile regression on Q_target - V (0.5: mean, -> 1: max)
    beta: float = 3.0  # inverse temperature of the actor weights exp(beta (Q - V))
    max_weight: float = 100.0  # actor weights are clipped at this


@dataclass
class AWRConfig(RewardedConfig):
    beta: float = 1.0  # temperature: weights exp(A_z / beta) of z-scored advantages A = r + gamma V(s') - V(s)
    max_weight: float = 20.0  # actor weights are clipped at this


@dataclass
class FDVLConfig(RewardedConfig):
    f: Literal["chi2", "tv", "rkl"] = "chi2"  # the f-divergence of the dual value loss
    temperature: float = 1.0  # a: chi2 1 (locomotion), tv 0.8 (antmaze), rkl 8 (kitchen)
    beta: float = 3.0  # inverse temperature of the actor weights
    max_weight: float = 100.0  # actor weights are clipped at this
    max_z: float = 7.0  # rkl: y / a is clipped at this before exp
    huber: float = 20.0  # Huber threshold of the Q regression
    # uniform random actions per state added to the value loss's batch (0: none). The released code's flag
    # sample_random_times (default 0; its README runs chi2 and rkl with 1); drawn within the data's per-dimension
    # action range, where the released code draws in [-1, 1]
    random_actions: int = 0


@dataclass
class ReCOILConfig(CriticConfig):
    temperature: float = 5.0  # Gumbel value-loss temperature (2.5-20: raise it until Q stops diverging)
    beta: float = 3.0  # inverse temperature of the actor weights
    max_weight: float = 100.0  # actor weights are clipped at this
    max_z: float = 7.0  # (Q - V) / temperature is clipped at this before exp
    expert_reward: float = 2.0  # implicit reward of expert pairs: Q(expert) -> expert_reward / (1 - gamma)
    mixture_reward: float = -2.0  # implicit reward of mixture transitions (and of the absorbing state)


class CriticLearner(Learner):
    """Twin Q (+ targets), V, and a PolicyHead actor; subclasses give the value / critic / actor losses."""

    def __init__(self, data: Transitions, head: HeadConfig, cfg: CriticConfig, *, seed: int = 0,
                 device: str = "cpu", use_q: bool = True) -> None:
        super().__init__(data, head, seed=seed, device=device)
        self.cfg = cfg
        s, a = self.t["state"], self.t["actions"]
        self.value = standardized_mlp(s, cfg.hidden, 1).to(device)
        params = list(self.value.parameters())
        if use_q:
            self.q1, self.q2 = (standardized_mlp(torch.cat([s, a], 1), cfg.hidden, 1).to(device) for _ in range(2))
            self.q1_target, self.q2_target = target_copy(self.q1), target_copy(self.q2)
            params += list(self.q1.parameters()) + list(self.q2.parameters())
        else:
            self.value_target = target_copy(self.value)
        self.actor = PolicyHead(data.emb.shape[1], data.proprio.shape[1], data.actions.shape[1], head).to(device)
        self.optimizers = [torch.optim.Adam(params, lr=cfg.lr),
                           torch.optim.Adam(self.actor.parameters(), lr=head.lr, weight_decay=head.weight_decay)]

    def v(self, state: torch.Tensor) -> torch.Tensor:
        return self.value(state).squeeze(-1)

    def q(self, batch: dict[str, torch.Tensor], target: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        sa = torch.cat([batch["state"], batch["actions"]], 1)
        nets = (self.q1_target, self.q2_target) if target else (self.q1, self.q2)
        return nets[0](sa).squeeze(-1), nets[1](sa).squeeze(-1)

    def q_min_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return torch.minimum(*self.q(batch, target=True))

    def after_step(self) -> None:
        if hasattr(self, "q1"):
            polyak_update(self.q1_target, self.q1, self.cfg.polyak)
            polyak_update(self.q2_target, self.q2, self.cfg.polyak)
        else:
            polyak_update(self.value_target, self.value, self.cfg.polyak)


def require_reward(data: Transitions, name: str) -> None:
    if data.reward is None:
        raise ReprlError(f"the {name} head learns from rewards: give the transitions a reward (the encoder's "
                         "S(o'; g) - S(o; g) or the environment's)")


class IQLLearner(CriticLearner):
    """V: expectile of Q_target - V; Q: MSE to r + gamma V(s'); actor: min(exp(beta (Q_target - V)), max) BC."""

    cfg: IQLConfig

    def __init__(self, data: Transitions, head: HeadConfig, cfg: IQLConfig, **kw: Any) -> None:
        require_reward(data, "iql")
        super().__init__(data, head, cfg, **kw)

    def value_loss(self, y: torch.Tensor) -> torch.Tensor:
        return L.expectile_loss(y, self.cfg.expectile)

    def q_loss(self, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((q - target) ** 2).mean()

    def losses(self) -> dict[str, torch.Tensor]:
        b = self.sample()
        qt = self.q_min_target(b)
        v = self.v(b["state"])
        with torch.no_grad():
            target = L.td_target(b["reward"], self.v(b["next_state"]), b["done"], self.cfg.discount)
        q1, q2 = self.q(b)
        w = L.advantage_weights(qt - v, self.cfg.beta, self.cfg.max_weight)
        return {"value": self.batch_value_loss(b, qt, v), "q": self.q_loss(q1, target) + self.q_loss(q2, target),
                "actor": self.actor_loss(b, w)}

    def batch_value_loss(self, batch: dict[str, torch.Tensor], q_target: torch.Tensor,
                         v: torch.Tensor) -> torch.Tensor:
        return self.value_loss(q_target - v)


class FDVLLearner(IQLLearner):
    """IQL with f-DVL's dual value loss (chi2 / tv / rkl at a temperature) and a Huber Q regression."""

    cfg: FDVLConfig  # type: ignore[assignment]  # IQL's loop with f-DVL's own config class

    def __init__(self, data: Transitions, head: HeadConfig, cfg: FDVLConfig, **kw: Any) -> None:
        super().__init__(data, head, cfg, **kw)  # type: ignore[arg-type]  # as cfg above
        a = self.t["actions"]
        self.action_low, self.action_high = a.min(0).values, a.max(0).values

    def draw_random_actions(self, n: int) -> torch.Tensor:
        """n actions drawn uniformly within the data's per-dimension action range."""
        u = torch.rand((n, self.action_low.shape[0]), generator=self.gen).to(self.action_low.device)
        return self.action_low + u * (self.action_high - self.action_low)

    def batch_value_loss(self, batch: dict[str, torch.Tensor], q_target: torch.Tensor,
                         v: torch.Tensor) -> torch.Tensor:
        """The value loss over the batch's (s, a) rows and, with random_actions = k, k rows (s, a~U) per state:
        one mean (and, for rkl, one normaliser) over all of them, as released."""
        k = self.cfg.random_actions
        if not k:
            return self.value_loss(q_target - v)
        state = batch["state"].repeat(k, 1)
        q_random = self.q_min_target({"state": state, "actions": self.draw_random_actions(len(state))})
        return self.value_loss(torch.cat([q_target - v, q_random - v.repeat(k)]))

    def value_loss(self, y: torch.Tensor) -> torch.Tensor:
        return L.fdvl_value_loss(y, self.cfg.f, self.cfg.temperature, self.cfg.max_z)

    def q_loss(self, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(q, target, delta=self.cfg.huber)


class AWRLearner(CriticLearner):
    """V: TD(0) regression on r + gamma V_target(s'); actor: AWR weights of z-scored r + gamma V(s') - V(s)."""

    cfg: AWRConfig

    def __init__(self, data: Transitions, head: HeadConfig, cfg: AWRConfig, **kw: Any) -> None:
        require_reward(data, "awr")
        super().__init__(data, head, cfg, use_q=False, **kw)

    def losses(self) -> dict[str, torch.Tensor]:
        b = self.sample()
        v = self.v(b["state"])
        with torch.no_grad():
            target = L.td_target(b["reward"], self.value_target(b["next_state"]).squeeze(-1), b["done"],
                                 self.cfg.discount)
        w = L.awr_weights(target - v, self.cfg.beta, self.cfg.max_weight)
        return {"value": 0.5 * ((v - target) ** 2).mean(), "actor": self.actor_loss(b, w)}


class ReCOILLearner(CriticLearner):
    """Imitation from expert + mixture data without rewards: each step draws an expert half and a mixture half."""

    cfg: ReCOILConfig

    def __init__(self, data: Transitions, head: HeadConfig, cfg: ReCOILConfig, **kw: Any) -> None:
        super().__init__(data, head, cfg, **kw)
        self.expert_idx = torch.nonzero(self.t["expert"] > 0).flatten().cpu()
        if len(self.expert_idx) == 0:
            raise ReprlError("recoil imitates expert transitions: mark some episodes as expert (none are)")

    def losses(self) -> dict[str, torch.Tensor]:
        c = self.cfg
        mix, exp = self.sample(), self.sample(self.expert_idx)
        qt = self.q_min_target(mix)
        v = self.v(mix["state"])
        with torch.no_grad():
            expert_target, mix_target = L.recoil_q_targets(self.v(mix["next_state"]), mix["done"], c.discount,
                                                           c.expert_reward, c.mixture_reward)
        q_loss = torch.zeros((), device=v.device)
        for q_e, q_m in zip(self.q(exp), self.q(mix)):
            q_loss = q_loss + 0.5 * ((q_e - expert_target) ** 2).mean() + 0.5 * ((q_m - mix_target) ** 2).mean()
        w = L.advantage_weights(qt - v, c.beta, c.max_weight)
        with torch.no_grad():  # the expert half counts in the value loss's normaliser only, as released
            y_exp = self.q_min_target(exp) - self.v(exp["state"])
        value = L.gumbel_loss(qt - v, c.temperature, c.max_z, normaliser_rows=y_exp)
        return {"value": value, "q": q_loss, "actor": self.actor_loss(mix, w)}
