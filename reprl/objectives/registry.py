"""The objective registry: the Objective base class, the settings classes (ObjectiveConfig, one per objective),
the built-in VIP, LIV and R3M objectives, register_objective and the factory training calls. An objective picks
the frames it needs from a ClipBatch, adds what its loss needs beyond image embeddings (text embeddings, sentence
features) and calls the pure loss functions.

Each objective class declares what training needs from it: the frame roles of a tuple and how they are drawn
(its sampling mode), its settings (`Config`: a dataclass of its own fields, so a VIP run refuses R3M's
tcn_weight) and how it is built. The registry (OBJECTIVES, register_objective) is the only place that maps
a name to a class: the stream, the module and the config checks ask the class. docs/extending.md adds one."""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
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


@dataclass
class VIPConfig(ValueConfig):
    """VIP's settings."""

    l1_weight: float = 0.0  # penalty on the embeddings' L1 norm
    l2_weight: float = 0.0  # penalty on the embeddings' L2 norm


@dataclass
class LIVConfig(ValueConfig):
    """LIV's settings."""

    name: str = "liv"  # the objective
    clip_weight: float = 1.0  # weight of the symmetric image-text contrastive term
    vision_weight: float = 1.0  # weight of VIP on image goals (VIP-I)
    lang_weight: float = 1.0  # weight of VIP on text goals (VIP-L); 0 when fine-tuning
    mask_repeated_captions: bool = True  # identical captions are not each other's negatives


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


class VIPObjective(Objective):
    name, mode, goal_last_mode = "vip", "vip", "vip_last"
    roles = ("start", "goal", "t", "t1")
    Config = VIPConfig

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        return vip_loss(emb["start"], emb["goal"], emb["t"], emb["t1"], gamma=c.gamma, num_negatives=c.num_negatives,
                        l1_weight=c.l1_weight, l2_weight=c.l2_weight, f=c.f, alpha=c.alpha,
                        similarity=encoder.similarity, negatives=c.negatives, generator=generator, gather=gather)


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


OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Make `cls` trainable by name (`--objective.name NAME`); usable as a class decorator. An objective with
    its own `sample` gets a sampling mode of the same name."""
    from reprl.data.sampling import ROLES, register_mode

    if not cls.name or not cls.roles:
        raise ReprlError(f"{cls.__name__}: an objective needs a name and the roles of its training tuples")
    config = cls.Config
    if not (isinstance(config, type) and issubclass(config, ObjectiveConfig) and is_dataclass(config)):
        raise ReprlError(f"{cls.__name__}: Config must be a dataclass subclassing ObjectiveConfig (its settings)")
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls and cls.name in BUILT_IN:
        raise ReprlError(f"objective {cls.name!r} is built in; register yours under another name")
    if cls.mode is None:
        sample = getattr(cls, "sample", None)
        if sample is None:
            raise ReprlError(f"{cls.__name__}: name a built-in sampling mode or define sample(length, rng)")
        try:
            register_mode(cls.name, cls.roles, sample, needs_text=cls.needs_text)
        except ValueError as e:
            raise ReprlError(f"{cls.__name__}: {e}") from None
    else:
        for mode in (cls.mode, cls.goal_last_mode):
            if mode is not None and not set(cls.roles) <= set(ROLES.get(mode, ())):
                raise ReprlError(f"{cls.__name__}: sampling mode {mode!r} does not draw its roles {cls.roles} "
                                 f"(modes: {', '.join(ROLES)})")
    OBJECTIVES[cls.name] = cls
    return cls


BUILT_IN = ("vip", "liv", "r3m")
for _cls in (VIPObjective, LIVObjective, R3MObjective):
    register_objective(_cls)


def objective_class(name: str) -> type[Objective]:
    cls = OBJECTIVES.get(name)
    if cls is None:
        raise ReprlError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)} (or register yours: "
                         "docs/extending.md)")
    return cls


def objective_config(section: dict[str, Any]) -> ObjectiveConfig:
    """The `objective` section as the chosen objective's Config. A key that objective does not have is refused,
    naming the keys it has (objectives from plugins must be registered first)."""
    from reprl.typed_config import from_dict

    if not isinstance(section, dict):
        raise ReprlError(f"objective: expected a mapping of objective settings, got {section!r}")
    name = str(section.get("name", ObjectiveConfig.name))
    cls = objective_class(name)
    own = [f.name for f in fields(cls.Config)]
    foreign = [k for k in section if k not in own]
    if foreign:
        raise ReprlError(f"--objective.{foreign[0]} does not apply to the {name} objective (its settings: "
                         f"{', '.join(own)}): remove it or choose another --objective.name")
    return from_dict(cls.Config, {**section, "name": name}, "objective")


def data_mode(cfg: ObjectiveConfig, goal_last: bool = False) -> str:
    """The sampling mode an objective trains on (its class says)."""
    return objective_class(cfg.name).data_mode(goal_last)


def build_objective(cfg: ObjectiveConfig, encoder: Encoder) -> Objective:
    return objective_class(cfg.name).build(cfg, encoder)
