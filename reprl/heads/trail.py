"""TRAIL: action representations learned from all (suboptimal) data, then latent BC on the expert data.

Phase 1 (the first `pretrain_fraction` of the steps, all transitions): z = phi(s, a) and psi(s') are trained
with an energy-based transition loss, E_ij = -||phi(s_i, a_i) - psi(s'_j)||^2, loss -E_ii + logsumexp_j E_ij
(a `shuffle` fraction of the s' rows swapped among themselves), together with an action decoder
pi_alpha(a | s, z), a diagonal Gaussian. Phase 2 (expert transitions only): a latent policy pi_Z(s) regresses
phi(s, a) of expert pairs (phi frozen); the decoder is fine-tuned on them too if `finetune_decoder` (default).
The exported actor acts with the decoder's mean at z = pi_Z(s). This is a simpler form of the authors' released
TRAIL (docs/heads.md lists the differences: their shuffle, tanh-squashed decoder with an entropy term,
stochastic latent policy and phase lengths).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reprl.errors import ReprlError
from reprl.heads import losses as L
from reprl.heads.learner import Learner, Standardize, mlp, standardized_mlp
from reprl.heads.policy import HeadConfig
from reprl.heads.train import Transitions


@dataclass
class TRAILConfig:
    embed_dim: int = 256  # size of the action representation z
    hidden: tuple[int, ...] = (256, 256)  # widths of phi, psi, decoder and latent-policy MLPs
    lr: float = 3e-4  # Adam learning rate of every TRAIL network
    shuffle: float = 0.1  # fraction of next-state embeddings swapped among themselves in the contrastive loss
    pretrain_fraction: float = 0.5  # share of the head's steps spent on phase 1 (representation + decoder)
    finetune_decoder: bool = True  # also train the decoder on expert pairs in phase 2 (the released default)
    min_log_std: float = -5.0  # decoder log-std is clamped to [min_log_std, max_log_std]
    max_log_std: float = 2.0


class TrailActor(nn.Module):
    """pi_Z(s) -> z and the decoder (s, z) -> Gaussian over actions; forward gives the mean action."""

    def __init__(self, embed_dim: int, proprio_dim: int, action_dim: int, cfg: TRAILConfig,
                 state: torch.Tensor | None = None) -> None:
        super().__init__()
        self.dims = {"embed_dim": embed_dim, "proprio_dim": proprio_dim, "action_dim": action_dim}
        self.cfg = cfg
        s_dim = embed_dim + proprio_dim
        self.norm = Standardize(state if state is not None else torch.zeros(2, s_dim))
        self.latent = mlp(s_dim, cfg.hidden, cfg.embed_dim)
        self.decoder = mlp(s_dim + cfg.embed_dim, cfg.hidden, 2 * action_dim)

    def state(self, emb: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        if self.dims["proprio_dim"]:
            if proprio is None:
                raise ReprlError("this head was trained with proprioception: pass proprio")
            return torch.cat([emb, proprio.to(emb.dtype)], -1)
        return emb

    def decode(self, s: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of pi_alpha(a | s, z)."""
        mean, log_std = self.decoder(torch.cat([self.norm(s), z], -1)).chunk(2, -1)
        return mean, log_std.clamp(self.cfg.min_log_std, self.cfg.max_log_std)

    def forward(self, emb: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        s = self.state(emb, proprio)
        return self.decode(s, self.latent(self.norm(s)))[0]


class TRAILLearner(Learner):
    actor: TrailActor

    def __init__(self, data: Transitions, head: HeadConfig, cfg: TRAILConfig, *, seed: int = 0,
                 device: str = "cpu") -> None:
        super().__init__(data, head, seed=seed, device=device)
        if not 0 <= cfg.shuffle < 1 or not 0 < cfg.pretrain_fraction < 1:
            raise ReprlError("trail: shuffle must be in [0, 1) and pretrain_fraction in (0, 1)")
        self.cfg = cfg
        self.expert_idx = torch.nonzero(self.t["expert"] > 0).flatten().cpu()
        if len(self.expert_idx) == 0:
            raise ReprlError("trail clones expert transitions: mark some episodes as expert (none are)")
        s, a, s2 = self.t["state"], self.t["actions"], self.t["next_state"]
        self.phi = standardized_mlp(torch.cat([s, a], 1), cfg.hidden, cfg.embed_dim).to(device)
        self.psi = standardized_mlp(s2, cfg.hidden, cfg.embed_dim).to(device)
        self.actor = TrailActor(data.emb.shape[1], s.shape[1] - data.emb.shape[1], a.shape[1], cfg, s).to(device)
        self.pretrain_steps = max(1, int(cfg.pretrain_fraction * head.steps))
        repr_params = [*self.phi.parameters(), *self.psi.parameters(), *self.actor.decoder.parameters()]
        self.opt_repr = torch.optim.Adam(repr_params, lr=cfg.lr)
        latent = [*self.actor.latent.parameters()] + ([*self.actor.decoder.parameters()] if cfg.finetune_decoder
                                                       else [])
        self.opt_latent = torch.optim.Adam(latent, lr=cfg.lr)

    def losses(self) -> dict[str, torch.Tensor]:
        phase1 = self.steps_done + self._step_in_call < self.pretrain_steps
        self._step_in_call += 1
        self.optimizers = [self.opt_repr] if phase1 else [self.opt_latent]
        if phase1:
            b = self.sample()
            z = self.phi(torch.cat([b["state"], b["actions"]], 1))
            perm = L.shuffle_rows(len(z), self.cfg.shuffle, self.gen).to(z.device)
            contrastive = L.contrastive_energy_loss(z, self.psi(b["next_state"]), perm)
            mean, log_std = self.actor.decode(b["state"], z)
            return {"contrastive": contrastive, "decoder": L.gaussian_nll(mean, log_std, b["actions"]).mean()}
        b = self.sample(self.expert_idx)
        with torch.no_grad():
            target = self.phi(torch.cat([b["state"], b["actions"]], 1))
        z = self.actor.latent(self.actor.norm(b["state"]))
        out = {"actor": ((z - target) ** 2).sum(-1).mean()}
        if self.cfg.finetune_decoder:
            mean, log_std = self.actor.decode(b["state"], target)
            out["decoder"] = L.gaussian_nll(mean, log_std, b["actions"]).mean()
        return out

    def train(self, steps: int) -> dict[str, float]:
        self._step_in_call = 0
        return super().train(steps)
