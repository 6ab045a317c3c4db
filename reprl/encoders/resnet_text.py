"""Image towers with a language tower made of a frozen pretrained sentence encoder and a small trained MLP
head: LIV on the CPU with a text tower that already knows language (all-MiniLM-L6-v2 ships offline). Two image
towers carry it: a ResNet (`resnet18-minilm`) and the small CNN (`tiny-minilm`).

Only the image tower and the MLP head are parameters of these modules (and of their saved weights); the
sentence encoder is loaded from its own package when text is first embedded and shared between instances.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reprl.encoders.base import EncoderConfig
from reprl.encoders.resnet import ResNetEncoder
from reprl.encoders.tiny import TinyConvEncoder

_SENTENCES: dict[str, Any] = {}
SENTENCE_DIMS = {"minilm": 384}  # output width of the known sentence encoders (others: read when loaded)


def sentence_encoder(source: str) -> Any:
    """The frozen sentence encoder for `source`, loaded once per process."""
    if source not in _SENTENCES:
        from reprl.encoders.text import SentenceEncoder

        _SENTENCES[source] = SentenceEncoder(source)
    return _SENTENCES[source]


class SentenceTextTower:
    """The text tower shared by the image towers below (a mixin listed before the image tower's class).
    params: text (sentence encoder source, default minilm), text_hidden (width of the MLP head, default 256).
    embed_text: sentence features -> Linear -> ReLU -> Linear -> [N, D]."""

    has_text = True
    config: EncoderConfig
    device: torch.device
    text_head: nn.Sequential

    def _add_text_head(self, config: EncoderConfig) -> None:
        source = str(config.params.get("text", "minilm"))
        dim = SENTENCE_DIMS.get(source) or sentence_encoder(source).dim
        hidden = int(config.params.get("text_hidden", 256))
        self.text_head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, config.embed_dim))

    def text_parameters(self) -> list[nn.Parameter]:
        return list(self.text_head.parameters())

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings [N, D] (float32); gradients flow into the MLP head when the caller allows them."""
        from reprl.errors import ReprlError

        if isinstance(texts, str):
            texts = [texts]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ReprlError("text goals must be non-empty strings")
        features = sentence_encoder(str(self.config.params.get("text", "minilm"))).to(self.device)(list(texts))
        return self.text_head(features.float())


class ResNetTextEncoder(SentenceTextTower, ResNetEncoder):
    """params: depth, proj (as ResNetEncoder), and the text tower's (SentenceTextTower)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self._add_text_head(config)


class TinyTextEncoder(SentenceTextTower, TinyConvEncoder):
    """params: width, norm (as TinyConvEncoder), and the text tower's (SentenceTextTower)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self._add_text_head(config)
