"""Objective modules used by training: they pick the frames they need from a ClipBatch, add what the loss
needs beyond image embeddings (text embeddings, sentence features) and call the pure loss functions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
from torch import nn

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.objectives.common import Gather
from reprl.objectives.liv import caption_ids, liv_loss
from reprl.objectives.r3m import LanguageReward, r3m_loss
from reprl.objectives.vip import vip_loss


@dataclass
class ObjectiveConfig:
    """The training objective and its weights (docs/objectives.md)."""

    name: Literal["vip", "liv", "r3m"] = "vip"
    gamma: float = 0.98
    num_negatives: int = 0
    negatives: Literal["separate", "joint"] = "separate"  # VIP negatives: one extra term (code) or in the main term
    f: Literal["kl", "chi2", "tv"] = "kl"  # dual f-divergence: kl is VIP
    alpha: float = 1.0
    l1_weight: float = 0.0
    l2_weight: float = 0.0
    clip_weight: float = 1.0  # LIV
    vision_weight: float = 1.0  # LIV: VIP-I
    lang_weight: float = 1.0  # LIV: VIP-L (0 when fine-tuning); R3M: the language term
    mask_repeated_captions: bool = True  # LIV: identical captions are not each other's negatives
    tcn_weight: float = 1.0  # R3M
    text_encoder: str = "minilm"  # R3M sentence encoder: minilm (offline), distilbert, or a local folder
    text_pooling: Literal["masked_mean", "mean"] = "masked_mean"
    lang_hidden: int = 1024  # R3M language-reward MLP width


class Objective(nn.Module):
    roles: tuple[str, ...] = ()  # the frames of one training tuple it needs (data/sampling.py)
    settings: frozenset[str] = frozenset()  # the ObjectiveConfig fields it reads: setting any other is an error

    def __init__(self, cfg: ObjectiveConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, emb: dict[str, torch.Tensor], text: list[str], encoder: Encoder, *,
                generator: torch.Generator | None = None, gather: Gather | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError


class VIPObjective(Objective):
    roles = ("start", "goal", "t", "t1")
    settings = frozenset({"gamma", "num_negatives", "negatives", "f", "alpha", "l1_weight", "l2_weight"})

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        return vip_loss(emb["start"], emb["goal"], emb["t"], emb["t1"], gamma=c.gamma, num_negatives=c.num_negatives,
                        l1_weight=c.l1_weight, l2_weight=c.l2_weight, f=c.f, alpha=c.alpha,
                        similarity=encoder.similarity, negatives=c.negatives, generator=generator, gather=gather)


class LIVObjective(Objective):
    roles = ("start", "goal", "t", "t1", "text_goal")
    settings = frozenset({"gamma", "clip_weight", "vision_weight", "lang_weight", "num_negatives", "f", "alpha",
                          "negatives", "mask_repeated_captions"})

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        text_emb = encoder.embed_text(text)
        ids = caption_ids(text, text_emb.device)
        return liv_loss(emb["start"], emb["goal"], emb["t"], emb["t1"], emb["text_goal"], text_emb, gamma=c.gamma,
                        clip_weight=c.clip_weight, vision_weight=c.vision_weight, lang_weight=c.lang_weight,
                        num_negatives=c.num_negatives, f=c.f, alpha=c.alpha, negatives=c.negatives, ids=ids,
                        mask_repeated_captions=c.mask_repeated_captions, generator=generator, gather=gather)


class R3MObjective(Objective):
    roles = ("start", "goal", "s0", "s1", "s2")
    settings = frozenset({"tcn_weight", "lang_weight", "l1_weight", "l2_weight", "num_negatives", "text_encoder",
                          "text_pooling", "lang_hidden"})

    def __init__(self, cfg: ObjectiveConfig, embed_dim: int) -> None:
        super().__init__(cfg)
        self._sentences: Any = None
        self.lang_reward: LanguageReward | None = None
        if cfg.lang_weight:
            from reprl.encoders.text import SentenceEncoder

            sentences = SentenceEncoder(cfg.text_encoder, pooling=cfg.text_pooling)
            object.__setattr__(self, "_sentences", sentences)  # frozen and not saved with the objective
            self.lang_reward = LanguageReward(embed_dim, sentences.dim, cfg.lang_hidden)

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        lang = mask = None
        if self._sentences is not None:
            device = emb["start"].device
            self._sentences.to(device)
            lang = self._sentences([t or " " for t in text])
            mask = torch.tensor([bool(t.strip()) for t in text], dtype=torch.float32, device=device)
        return r3m_loss(emb["start"], emb["goal"], emb["s0"], emb["s1"], emb["s2"], lang=lang, lang_mask=mask,
                        lang_reward=self.lang_reward, tcn_weight=c.tcn_weight, lang_weight=c.lang_weight,
                        l1_weight=c.l1_weight, l2_weight=c.l2_weight, num_negatives=c.num_negatives,
                        similarity=encoder.similarity, generator=generator, gather=gather)


OBJECTIVES: dict[str, type[Objective]] = {"vip": VIPObjective, "liv": LIVObjective, "r3m": R3MObjective}


def check_objective_settings(cfg: ObjectiveConfig) -> None:
    """Refuse a setting the chosen objective does not read (e.g. --objective.tcn_weight on a VIP run), which
    would otherwise be accepted and silently ignored. A field counts as set when it differs from its default."""
    cls = OBJECTIVES.get(cfg.name)
    if cls is None:
        raise ReprlError(f"unknown objective {cfg.name!r}; choose one of {', '.join(OBJECTIVES)}")
    foreign = [f.name for f in fields(cfg)
               if f.name != "name" and f.name not in cls.settings and getattr(cfg, f.name) != f.default]
    if foreign:
        raise ReprlError(f"--objective.{foreign[0]} does not apply to the {cfg.name} objective (it reads "
                         f"{', '.join(sorted(cls.settings))}): remove it or choose another --objective.name")


def data_mode(cfg: ObjectiveConfig, goal_last: bool = False) -> str:
    """The sampling mode an objective trains on."""
    if cfg.name == "r3m":
        return "r3m"
    return f"{cfg.name}_last" if goal_last else cfg.name


def build_objective(cfg: ObjectiveConfig, encoder: Encoder) -> Objective:
    if cfg.name == "vip":
        return VIPObjective(cfg)
    if cfg.name == "liv":
        if not encoder.has_text:
            raise ReprlError(f"the LIV objective needs an encoder with a text tower (e.g. clip-rn50); "
                             f"'{encoder.config.name}' has none")
        return LIVObjective(cfg)
    if cfg.name == "r3m":
        return R3MObjective(cfg, encoder.embed_dim)
    raise ReprlError(f"unknown objective {cfg.name!r}; choose vip, liv or r3m")
