"""Import checkpoints of the original VIP, R3M and LIV projects into reprl encoders.

Layouts (top-level key -> state dict):
- VIP: 'vip' -> 'module.convnet.*' (torchvision ResNet, fc = Linear(2048, hidden_dim)); the model takes
  [0, 255] input and normalises with ImageNet statistics inside.
- R3M: 'r3m' -> 'module.convnet.*' (fc = Identity, so no fc weights), plus language-module weights we drop.
- LIV: 'liv' -> 'module.model.*' or 'model.*' (OpenAI CLIP RN50 image and text towers, possibly fp16).

Preprocessing reproduces what the reference code does to a raw frame, so embeddings match it:
- VIP: its examples apply Resize(256) + CenterCrop(224) to a raw frame and pass the 224x224 result to the
  model, whose forward then only normalises (it resizes only inputs that are not 3x224x224, so a raw frame
  given to it directly gets the same single Resize(256) + CenterCrop(224)). One zoom, antialiased.
- R3M: Resize(256) + CenterCrop(224) in its examples; the model only normalises.
- LIV: the model resizes the shorter side to 224 WITHOUT antialiasing (its tensor transform passes
  antialias=None, which torchvision treats as False), center-crops 224 and normalises with CLIP
  statistics; cosine similarity.
"""

from __future__ import annotations

from typing import Any

import torch

from reprl.encoders.base import CLIP_MEAN, CLIP_STD, Encoder, EncoderConfig
from reprl.errors import ReprlError

RESIZE_CROP = [{"op": "resize", "size": 256}, {"op": "center_crop", "size": 224}]
VIP_PREPROCESS = RESIZE_CROP
R3M_PREPROCESS = RESIZE_CROP
LIV_PREPROCESS = [{"op": "resize", "size": 224, "antialias": False}, {"op": "center_crop", "size": 224}]


def _sub_state(state: dict[str, Any], prefixes: tuple[str, ...], where: str) -> dict[str, torch.Tensor]:
    for prefix in prefixes:
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return {k: v.float() if v.is_floating_point() else v for k, v in sub.items()}
    raise ReprlError(f"{where}: no weights under {' or '.join(prefixes)} (keys start with "
                     f"{sorted({k.split('.')[0] for k in state})[:5]})")


def resnet_depth(state: dict[str, torch.Tensor], where: str) -> int:
    """18/34/50/101 from a torchvision ResNet state dict: bottleneck blocks and the number of layer3 blocks."""
    bottleneck = "layer1.0.conv3.weight" in state
    blocks = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("layer3.")), default=-1)
    depth = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101}.get((bottleneck, blocks))
    if depth is None:
        raise ReprlError(f"{where}: not a torchvision ResNet-18/34/50/101 (layer3 has {blocks} blocks)")
    return depth


def _resnet(state: dict[str, torch.Tensor], name: str, preprocess: list[dict[str, Any]], where: str) -> Encoder:
    from reprl.encoders.resnet import FEATURES, ResNetEncoder

    depth = resnet_depth(state, where)
    proj = "fc.weight" in state
    dim = int(state["fc.weight"].shape[0]) if proj else FEATURES[depth]
    cfg = EncoderConfig(arch="resnet", name=f"{name}-resnet{depth}", embed_dim=dim, image_size=224,
                        preprocess=preprocess, similarity="l2", params={"depth": depth, "proj": proj},
                        source=f"imported {name.upper()} checkpoint {where}")
    enc = ResNetEncoder(cfg)
    try:
        enc.convnet.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ReprlError(f"{where}: weights do not fit ResNet-{depth}: {str(e).splitlines()[0]}") from None
    return enc


def import_vip(state: dict[str, Any], where: str) -> Encoder:
    return _resnet(_sub_state(state, ("module.convnet.", "convnet."), where), "vip", VIP_PREPROCESS, where)


def import_r3m(state: dict[str, Any], where: str) -> Encoder:
    sub = _sub_state(state, ("module.convnet.", "convnet."), where)
    return _resnet(sub, "r3m", R3M_PREPROCESS, where)


def import_liv(state: dict[str, Any], where: str) -> Encoder:
    from reprl.encoders.clip import ClipEncoder

    sub = _sub_state(state, ("module.model.", "model."), where)
    if "visual.layer1.0.conv1.weight" not in sub or "visual.layer3.5.conv1.weight" not in sub:
        raise ReprlError(f"{where}: LIV checkpoints hold CLIP RN50 weights; these are not RN50")
    cfg = EncoderConfig(arch="clip", name="liv-clip-rn50", embed_dim=int(sub["text_projection"].shape[1]),
                        image_size=224, mean=CLIP_MEAN, std=CLIP_STD, preprocess=LIV_PREPROCESS,
                        interpolation="bilinear", similarity="cosine", gamma=0.98, params={"model": "RN50"},
                        source=f"imported LIV checkpoint {where}")
    enc = ClipEncoder(cfg)
    enc.load_openai_state(sub, where)
    return enc


IMPORTERS = {"vip": import_vip, "r3m": import_r3m, "liv": import_liv}


def import_reference(obj: dict[str, Any], where: str) -> Encoder | None:
    """An encoder if `obj` (a loaded checkpoint) is a VIP / R3M / LIV checkpoint, else None."""
    for key, importer in IMPORTERS.items():
        if isinstance(obj.get(key), dict):
            return importer(obj[key], where)
    return None
