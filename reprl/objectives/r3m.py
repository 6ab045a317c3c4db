"""R3M's objective (Nair et al., 2022), the baseline: time-contrastive + language progress + L1/L2.

Frames per tuple: start, goal, s0 < s1 < s2. With similarity S (negative L2 distance by default):

- TCN: s1 is nearer to s2 than s0 is, and s1 nearer to s0 than s2 is, against `num_negatives` frames of
  other videos (random permutations of the batch, drawn separately for s0 and s2 as R3M's code does):
      t_a = logsumexp(S(s2,s1), S(s2,s0), S(s2, s2[pi2_j])) - S(s2,s1)
      t_b = logsumexp(S(s1,s0), S(s2,s0), S(s0, s0[pi0_j])) - S(s1,s0);   L_tcn = mean((t_a + t_b) / 2)
- Language: an MLP R([e_0, e_t, sentence]) scores progress towards the instruction; three InfoNCE terms
  ask R(e0, goal) > R(e0, e0), R(e0, s1) > R(e0, s0), R(e0, s2) > R(e0, s1), each also against the same
  pair from other videos scored with this video's sentence. Rows without a caption are masked.
- L1 / L2 penalties on all 5B embeddings (1e-5 each by default).
The reference writes each term as -log(eps + e^pos / (eps + sum e^...)); we use the equal, stable logsumexp
form (the eps terms change nothing measurable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from reprl.encoders.base import Encoder
from reprl.objectives.base import Objective, ObjectiveConfig
from reprl.objectives.common import Gather, Similarity, embedding_penalties, identity, permutation
from reprl.objectives.vip import neg_l2


class LanguageReward(nn.Module):
    """R([e0, et, l]) -> scalar: 5 linear layers with ReLU between them, as R3M's `lang_rew`."""

    def __init__(self, embed_dim: int, text_dim: int, hidden: int = 1024) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(2 * embed_dim + text_dim, hidden)]
        for _ in range(3):
            layers += [nn.ReLU(inplace=True), nn.Linear(hidden, hidden)]
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden, 1)]
        self.pred = nn.Sequential(*layers)

    def forward(self, e0: torch.Tensor, et: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        return self.pred(torch.cat([e0, et, lang], dim=-1)).squeeze(-1)


def _nce(pos: torch.Tensor, negs: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample -log softmax of `pos` among [pos, *negs]."""
    return torch.logsumexp(torch.stack([pos, *negs], dim=0), dim=0) - pos


def tcn_loss(s0: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, *, sim: Similarity, num_negatives: int,
             generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    s02, s12, s01 = sim(s2, s0), sim(s2, s1), sim(s1, s0)
    # Per negative, one permutation for s0 and then another for s2, in the order R3M's code draws them.
    perms = [(permutation(len(s0), generator, s0.device), permutation(len(s0), generator, s0.device))
             for _ in range(num_negatives)]
    t_a = _nce(s12, [s02] + [sim(s2, s2[p2]) for _, p2 in perms])
    t_b = _nce(s01, [s02] + [sim(s0, s0[p0]) for p0, _ in perms])
    loss = ((t_a + t_b) / 2).mean()
    aligned = ((s02 < s12) & (s01 > s02)).float().mean()
    return loss, {"tcn": loss.detach(), "tcn_aligned": aligned.detach()}


def language_loss(start: torch.Tensor, goal: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor,
                  lang: torch.Tensor, mask: torch.Tensor, reward: LanguageReward, *, num_negatives: int,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    terms, accs = [], []
    for pos_frame, neg_frame in ((goal, start), (s1, s0), (s2, s1)):
        pos = reward(start, pos_frame, lang)
        negs = [reward(start, neg_frame, lang)]
        for _ in range(num_negatives):
            p = permutation(len(start), generator, start.device)
            negs.append(reward(start[p], pos_frame[p], lang))
        terms.append(_nce(pos, negs))
        accs.append((pos > torch.stack(negs).amax(0)).float().mean())
    per_sample = (terms[0] + terms[1] + terms[2]) / 3 * mask
    loss = per_sample.mean()
    return loss, {"lang": loss.detach(), "lang_acc": torch.stack(accs).mean().detach()}


def r3m_loss(start: torch.Tensor, goal: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, *,
             lang: torch.Tensor | None = None, lang_mask: torch.Tensor | None = None,
             lang_reward: LanguageReward | None = None, tcn_weight: float = 1.0, lang_weight: float = 1.0,
             l1_weight: float = 1e-5, l2_weight: float = 1e-5, num_negatives: int = 3,
             similarity: Similarity | None = None, generator: torch.Generator | None = None,
             gather: Gather | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """R3M loss for embeddings [B, D] of (start, goal, s0, s1, s2) and sentence embeddings [B, L]."""
    gather = gather or identity
    sim = similarity or neg_l2
    start, goal, s0, s1, s2 = (gather(x) for x in (start, goal, s0, s1, s2))
    loss, metrics = embedding_penalties([start, goal, s0, s1, s2], l1_weight, l2_weight)
    if tcn_weight:
        tcn, m = tcn_loss(s0, s1, s2, sim=sim, num_negatives=num_negatives, generator=generator)
        loss, metrics = loss + tcn_weight * tcn, {**metrics, **m}
    if lang_weight:
        if lang is None or lang_reward is None:
            raise ValueError("the language term needs sentence embeddings and a LanguageReward module")
        lang = gather(lang)
        mask = gather(lang_mask) if lang_mask is not None else torch.ones(len(lang), device=lang.device)
        lg, m = language_loss(start, goal, s0, s1, s2, lang, mask.to(lang.dtype), lang_reward,
                              num_negatives=num_negatives, generator=generator)
        loss, metrics = loss + lang_weight * lg, {**metrics, **m}
    metrics["loss"] = loss.detach()
    return loss, metrics


@dataclass
class R3MConfig(ObjectiveConfig):
    """R3M's settings."""

    name: str = "r3m"  # the objective
    num_negatives: int = 0  # negatives per sample: other videos' frames in the batch
    tcn_weight: float = 1.0  # weight of the time-contrastive term
    lang_weight: float = 1.0  # weight of the language-progress term
    l1_weight: float = 0.0  # penalty on the embeddings' L1 norm
    l2_weight: float = 0.0  # penalty on the embeddings' L2 norm
    text_encoder: str = "minilm"  # sentence encoder: minilm (offline), distilbert, or a local folder
    text_pooling: Literal["masked_mean", "mean"] = "masked_mean"  # token pooling of the sentence encoder
    lang_hidden: int = 1024  # width of the language-reward MLP


class R3MObjective(Objective):
    name, mode, goal_last_mode = "r3m", "r3m", "r3m"  # R3M draws its goal from the clip's end either way
    roles = ("start", "goal", "s0", "s1", "s2")
    Config = R3MConfig

    @classmethod
    def build(cls, cfg: Any, encoder: Encoder) -> Objective:
        return cls(cfg, encoder.embed_dim)

    def __init__(self, cfg: R3MConfig, embed_dim: int) -> None:
        super().__init__(cfg)
        # The sentence encoder is frozen and not part of the objective's state: held in a tuple, it is not
        # registered as a submodule (no parameters for the optimiser, nothing in checkpoints).
        self._frozen: tuple[Any, ...] = ()
        self.lang_reward: LanguageReward | None = None
        if cfg.lang_weight:
            from reprl.encoders.text import SentenceEncoder

            sentences = SentenceEncoder(cfg.text_encoder, pooling=cfg.text_pooling)
            self._frozen = (sentences,)
            self.lang_reward = LanguageReward(embed_dim, sentences.dim, cfg.lang_hidden)

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        lang = mask = None
        if self._frozen:
            sentences, device = self._frozen[0], emb["start"].device
            sentences.to(device)
            lang = sentences([t or " " for t in text])
            mask = torch.tensor([bool(t.strip()) for t in text], dtype=torch.float32, device=device)
        return r3m_loss(emb["start"], emb["goal"], emb["s0"], emb["s1"], emb["s2"], lang=lang, lang_mask=mask,
                        lang_reward=self.lang_reward, tcn_weight=c.tcn_weight, lang_weight=c.lang_weight,
                        l1_weight=c.l1_weight, l2_weight=c.l2_weight, num_negatives=c.num_negatives,
                        similarity=encoder.similarity, generator=generator, gather=gather)
