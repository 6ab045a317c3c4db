"""Encoder base: images -> embeddings, with the preprocessing and the similarity the weights were trained with.

An encoder's `EncoderConfig` (saved as config.json beside model.safetensors) records its architecture,
embedding size, preprocessing (a list of resize / center-crop ops on float images in [0, 1], then mean/std)
and its similarity / value function, so rewards are computed the way the encoder was trained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from reprl.encoders.inputs import as_image_list
from reprl.errors import ReprlError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIMILARITIES = ("l2", "cosine")


def default_preprocess(image_size: int) -> list[dict[str, Any]]:
    """Resize the shorter side to image_size, then take the central square."""
    return [{"op": "resize", "size": image_size}, {"op": "center_crop", "size": image_size}]


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an encoder and use it as trained (saved as config.json)."""

    arch: str  # resnet | clip | tiny | resnet-text | tiny-text (registry.ARCHS)
    name: str  # registry name it was built from (e.g. resnet50, clip-rn50)
    embed_dim: int
    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    preprocess: list[dict[str, Any]] = field(default_factory=list)  # ops on float images in [0, 1]
    interpolation: str = "bilinear"  # bilinear | bicubic
    similarity: str = "l2"  # l2: V = -||a - b||;  cosine: V = cos(a, b) / (1 - gamma)
    gamma: float = 0.98
    # resize in 8 bits before converting to float (float input is quantised to 8 bits first when a resize is
    # needed): ~6x cheaper, and how reprl's training crops are made; off for imported reference checkpoints,
    # which resize floats as their reference code does
    resize_uint8: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # architecture parameters
    source: str = ""  # provenance, e.g. "random init", "reprl pretrain", "imported VIP checkpoint"
    training: dict[str, Any] = field(default_factory=dict)  # what the weights were trained on and how they score
    format_version: int = 1

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ReprlError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if not self.preprocess:
            self.preprocess = default_preprocess(self.image_size)
        self.mean, self.std = tuple(self.mean), tuple(self.std)  # type: ignore[assignment]  # JSON lists -> tuples

    @property
    def random_init(self) -> bool:
        """True when the weights are untrained (a registered architecture, or random:SOURCE)."""
        return self.source.startswith("random init")

    @property
    def label(self) -> str:
        """The name to show users: says "random init" when the weights are untrained."""
        return f"{self.name} (random init)" if self.random_init else self.name

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        from reprl.typed_config import from_dict

        return from_dict(cls, data, "encoder config")


def apply_op(x: torch.Tensor, op: dict[str, Any], interpolation: InterpolationMode) -> torch.Tensor:
    """One preprocessing op on float images [B, 3, H, W]. A resize antialiases unless the op says
    "antialias": false (LIV's reference transform does not)."""
    kind, size = op.get("op"), int(op.get("size", 0))
    if kind == "resize":
        if min(x.shape[-2:]) == size:
            return x
        return TF.resize(x, [size], interpolation=interpolation, antialias=bool(op.get("antialias", True)))
    if kind == "center_crop":
        return x if tuple(x.shape[-2:]) == (size, size) else TF.center_crop(x, [size, size])
    raise ReprlError(f"unknown preprocessing op {op!r}: use resize or center_crop")


def similarity(a: torch.Tensor, b: torch.Tensor, kind: str = "l2", gamma: float = 0.98) -> torch.Tensor:
    """Value-style similarity of embedding pairs along the last axis (broadcasting): -||a-b|| or cos/(1-gamma)."""
    if a.shape[-1] != b.shape[-1]:
        raise ReprlError(f"cannot compare embeddings of size {a.shape[-1]} and {b.shape[-1]}: they come from "
                         "different encoders; embed both with the same encoder")
    if kind == "l2":
        return -torch.linalg.vector_norm(a - b, dim=-1)
    if kind == "cosine":
        return F.cosine_similarity(a, b, dim=-1, eps=1e-8) / (1.0 - gamma)
    raise ReprlError(f"unknown similarity {kind!r}; choose one of {SIMILARITIES}")


class Encoder(nn.Module):
    """Base class: `encoder(images)` -> float32 [B, D]. Subclasses implement `encode` on normalised input."""

    has_text = False
    pixel_mean: torch.Tensor  # buffers registered in __init__
    pixel_std: torch.Tensor

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("pixel_mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.chunk_size = 64  # images per forward pass in eval mode
        self.channels_last = False
        self._interp = InterpolationMode(config.interpolation)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Normalised float images [B, 3, S, S] -> embeddings [B, D]."""
        raise NotImplementedError

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images [B, 3, H, W] -> normalised float [B, 3, S, S] on this device."""
        x = x.to(self.device, non_blocking=True)
        ops = list(self.config.preprocess)
        size = self.config.image_size
        if self.config.resize_uint8 and tuple(x.shape[-2:]) != (size, size):
            if x.dtype != torch.uint8:  # float input in [0, 1]: to 8 bits first, so every layout resizes alike
                x = x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
            while ops and ops[0].get("op") in ("resize", "center_crop"):
                x = apply_op(x, ops.pop(0), self._interp)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        for op in ops:
            x = apply_op(x, op, self._interp)
        if tuple(x.shape[-2:]) != (size, size):
            raise ReprlError(f"preprocessing produced {tuple(x.shape[-2:])} images, expected {size}x{size}: "
                             "check the encoder config's preprocess ops")
        x = (x - self.pixel_mean) / self.pixel_std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, images: Any, layout: str = "auto") -> torch.Tensor:
        """Any accepted images (see reprl.encoders.inputs) -> float32 embeddings [B, D].

        In training mode one pass over the whole batch (batch statistics stay as given); in eval mode the
        input is processed in chunks of `chunk_size`, so long videos fit in memory.
        """
        parts = as_image_list(images, layout)
        if self.training:
            return self.encode(torch.cat([self.preprocess(p) for p in parts])).float()
        outs = [self.encode(self.preprocess(chunk)).float() for p in parts for chunk in p.split(self.chunk_size)]
        return torch.cat(outs)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The value function this encoder was trained with, for embedding pairs (broadcasting)."""
        return similarity(a, b, self.config.similarity, self.config.gamma)

    def text_parameters(self) -> list[nn.Parameter]:
        """Parameters of the text tower (none without one): frozen when the objective does not use text."""
        return []

    def fixed_parameters(self) -> list[nn.Parameter]:
        """Parameters that training keeps fixed even when everything else trains (CLIP's logit scale)."""
        return []

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        raise ReprlError(f"encoder '{self.config.name}' has no text tower, so it cannot embed text goals; "
                         "use a language-capable encoder such as clip-rn50 (LIV), or give an image goal")

    def save_pretrained(self, out: str | Path, run_dir: str | Path | None = None,
                        info: dict[str, Any] | None = None) -> Path:
        """Save as a shareable folder: config.json + model.safetensors + a README model card (see hub.py)."""
        from reprl.encoders.hub import save_pretrained

        return save_pretrained(self, out, run_dir=run_dir, info=info)

    def push_to_hub(self, repo: str, **kwargs: Any) -> str:
        """Upload to the Hugging Face hub repo 'org/name' with a model card (needs huggingface_hub)."""
        from reprl.encoders.hub import push_to_hub

        return push_to_hub(self, repo, **kwargs)

    def set_channels_last(self, enabled: bool = True) -> Encoder:
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last) if enabled else self

    def compile_encode(self, **options: Any) -> Encoder:
        """torch.compile the image tower (`encode`) for training; preprocessing and the weights are untouched, so
        checkpoints and exports stay the same. `options` go to torch.compile (e.g. backend, mode)."""
        self.encode = torch.compile(self.encode, **options)  # type: ignore[method-assign]  # per instance, on purpose
        return self

    def freeze(self) -> Encoder:
        """Eval mode, no gradients: what control code wants. On the CPU the convolution weights are also stored
        channels-last, the layout that decoded frames and rendered observations arrive in: with weights in the
        default layout, every call on a channels-last batch first reorders all of them (about 45 MB for
        ResNet-18), which at small batches costs about as much as the convolutions themselves (docs/benchmarks.md,
        "Frozen encoders store their weights channels-last")."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        if self.device.type == "cpu":
            self.set_channels_last(True)
        return self

    def extra_repr(self) -> str:
        c = self.config
        return f"name={c.name}, embed_dim={c.embed_dim}, image_size={c.image_size}, similarity={c.similarity}"
