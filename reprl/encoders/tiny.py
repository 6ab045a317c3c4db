"""A small convolutional encoder with no normalisation layers: fast on a CPU, and its gradients do not
depend on how a batch is split across processes (no batch statistics), which the DDP tests rely on."""

from __future__ import annotations

import torch
from torch import nn

from reprl.encoders.base import Encoder, EncoderConfig


class TinyConvEncoder(Encoder):
    """params: width (channels of the first layer; doubles twice)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        w = int(config.params.get("width", 32))
        self.convnet = nn.Sequential(
            nn.Conv2d(3, w, 5, stride=2, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, config.embed_dim),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.convnet(x)
