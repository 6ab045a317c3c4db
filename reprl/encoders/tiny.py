"""A small convolutional encoder with no normalisation layers: fast on a CPU, and its gradients do not
depend on how a batch is split across processes (no batch statistics), which the DDP tests rely on.
`params: {"norm": "batch"}` adds BatchNorm after each convolution (tests of running statistics)."""

from __future__ import annotations

import torch
from torch import nn

from reprl.encoders.base import Encoder, EncoderConfig


class TinyConvEncoder(Encoder):
    """params: width (channels of the first layer; doubles twice), norm (None or "batch")."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        w = int(config.params.get("width", 32))
        bn = config.params.get("norm") == "batch"
        layers: list[nn.Module] = []
        for c_in, c_out, k in ((3, w, 5), (w, 2 * w, 3), (2 * w, 4 * w, 3), (4 * w, 4 * w, 3)):
            layers += [nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2)]
            layers += [nn.BatchNorm2d(c_out)] if bn else []
            layers += [nn.ReLU(inplace=True)]
        self.convnet = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, config.embed_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.convnet(x)
