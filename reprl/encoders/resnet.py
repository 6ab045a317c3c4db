"""torchvision ResNet-18/34/50 with an optional linear projection (VIP: 2048 -> 1024 for ResNet-50)."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from reprl.encoders.base import Encoder, EncoderConfig
from reprl.errors import ReprlError

FEATURES = {18: 512, 34: 512, 50: 2048, 101: 2048}


class ResNetEncoder(Encoder):
    """params: depth (18/34/50/101), proj (bool: Linear(features, embed_dim) as `fc`, else the pooled features)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        depth = int(config.params.get("depth", 50))
        if depth not in FEATURES:
            raise ReprlError(f"ResNet depth must be one of {sorted(FEATURES)}, got {depth}")
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if config.params.get("proj", True):
            net.fc = nn.Linear(FEATURES[depth], config.embed_dim)
        else:
            if config.embed_dim != FEATURES[depth]:
                raise ReprlError(f"without a projection ResNet-{depth} embeds to {FEATURES[depth]}, "
                                 f"not {config.embed_dim}")
            net.fc = nn.Identity()
        self.convnet = net

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.convnet(x)

    def load_pretrained(self, path: str | Path) -> None:
        """Backbone weights from a local torchvision-style state dict (e.g. ImageNet); `fc` is kept as is."""
        p = Path(path)
        if not p.is_file():
            raise ReprlError(f"pretrained weights not found: {p}")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types; its text may suggest weights_only=False
            raise ReprlError(f"cannot read pretrained weights {p}: not a state dict of tensors saved by torch "
                             f"({type(e).__name__}); save the backbone's state_dict and pass that file") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ReprlError(f"pretrained weights {p} hold a {type(state).__name__}, not a state dict")
        state = {k.removeprefix("module.").removeprefix("convnet."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.convnet.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ReprlError(f"{p} does not fit ResNet-{self.config.params.get('depth')}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
