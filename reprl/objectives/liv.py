"""LIV (Ma et al., ICML 2023): VIP on CLIP embeddings with image and text goals, plus a CLIP term.

    L = clip_weight * L_CLIP + vision_weight * L_VIP-I + lang_weight * L_VIP-L,   S(x, y) = cos(x, y) / (1 - gamma)

- L_VIP-I: vip_loss with similarity S and the goal frame as goal.
- L_VIP-L: vip_loss with similarity S and the caption's text embedding as goal (pretraining only).
- L_CLIP: symmetric cross-entropy of L2-normalised image . text logits at temperature 1 (no logit scale),
  the image side being the caption's frame (`text_goal`). Identical captions in a batch are false negatives;
  with `mask_repeated_captions` they are removed from each other's negatives.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from reprl.encoders.base import Encoder
from reprl.encoders.base import similarity as value_similarity
from reprl.errors import ReprlError
from reprl.objectives.base import Objective, ObjectiveConfig, ValueConfig
from reprl.objectives.common import EPS, Gather, identity
from reprl.objectives.vip import vip_loss


def caption_ids(texts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """Stable integer ids of captions (equal text -> equal id), gatherable across ranks."""
    return torch.tensor([zlib.crc32(t.strip().lower().encode()) for t in texts], dtype=torch.long, device=device)


def clip_loss(image: torch.Tensor, text: torch.Tensor, *, ids: torch.Tensor | None = None,
              mask_repeated: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Symmetric InfoNCE at temperature 1 between images [B, D] and texts [B, D] (pairs on the diagonal)."""
    logits = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T  # [B, B]
    n = logits.shape[0]
    target = torch.arange(n, device=logits.device)
    if mask_repeated and ids is not None:
        same = (ids[:, None] == ids[None, :]) & ~torch.eye(n, dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same, float("-inf"))
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    acc = 0.5 * ((logits.argmax(1) == target).float().mean() + (logits.argmax(0) == target).float().mean())
    return loss, {"clip": loss.detach(), "clip_acc": acc.detach()}


def liv_loss(start: torch.Tensor, goal: torch.Tensor, t: torch.Tensor, t1: torch.Tensor,
             text_goal_image: torch.Tensor, text: torch.Tensor, *, gamma: float = 0.98, clip_weight: float = 1.0,
             vision_weight: float = 1.0, lang_weight: float = 1.0, num_negatives: int = 0, f: str = "kl",
             alpha: float = 1.0, negatives: str = "separate", ids: torch.Tensor | None = None,
             mask_repeated_captions: bool = True, eps: float = EPS, generator: torch.Generator | None = None,
             gather: Gather | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """LIV loss for image embeddings [B, D] of (start, goal, t, t+1, caption frame) and text embeddings [B, D]."""
    gather = gather or identity
    start, goal, t, t1, text_goal_image, text = (gather(x) for x in (start, goal, t, t1, text_goal_image, text))
    ids = gather(ids) if ids is not None else None

    def sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return value_similarity(a, b, "cosine", gamma)

    common: dict[str, Any] = dict(gamma=gamma, num_negatives=num_negatives, f=f, alpha=alpha, similarity=sim,
                  negatives=negatives, eps=eps, generator=generator)
    metrics: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=start.device)
    if vision_weight:
        vip_i, m = vip_loss(start, goal, t, t1, **common)
        loss = loss + vision_weight * vip_i
        metrics.update({f"vip_i/{k}": v for k, v in m.items()})
    if lang_weight:
        vip_l, m = vip_loss(start, text, t, t1, **common)
        loss = loss + lang_weight * vip_l
        metrics.update({f"vip_l/{k}": v for k, v in m.items()})
    if clip_weight:
        c, m = clip_loss(text_goal_image, text, ids=ids, mask_repeated=mask_repeated_captions)
        loss = loss + clip_weight * c
        metrics.update(m)
    metrics["loss"] = loss.detach()
    return loss, metrics


@dataclass
class LIVConfig(ValueConfig):
    """LIV's settings."""

    name: str = "liv"  # the objective
    clip_weight: float = 1.0  # weight of the symmetric image-text contrastive term
    vision_weight: float = 1.0  # weight of VIP on image goals (VIP-I)
    lang_weight: float = 1.0  # weight of VIP on text goals (VIP-L); 0 when fine-tuning
    mask_repeated_captions: bool = True  # identical captions are not each other's negatives


class LIVObjective(Objective):
    name, mode, goal_last_mode, needs_text, similarity = "liv", "liv", "liv_last", True, "cosine"
    roles = ("start", "goal", "t", "t1", "text_goal")
    Config = LIVConfig

    @classmethod
    def trains_text(cls, cfg: LIVConfig) -> bool:
        return bool(cfg.clip_weight or cfg.lang_weight)

    @classmethod
    def build(cls, cfg: ObjectiveConfig, encoder: Encoder) -> Objective:
        if not encoder.has_text:
            raise ReprlError(f"the LIV objective needs an encoder with a text tower (e.g. clip-rn50); "
                             f"'{encoder.config.name}' has none")
        return cls(cfg)

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        text_emb = encoder.embed_text(text)
        ids = caption_ids(text, text_emb.device)
        return liv_loss(emb["start"], emb["goal"], emb["t"], emb["t1"], emb["text_goal"], text_emb, gamma=c.gamma,
                        clip_weight=c.clip_weight, vision_weight=c.vision_weight, lang_weight=c.lang_weight,
                        num_negatives=c.num_negatives, f=c.f, alpha=c.alpha, negatives=c.negatives, ids=ids,
                        mask_repeated_captions=c.mask_repeated_captions, generator=generator, gather=gather)
