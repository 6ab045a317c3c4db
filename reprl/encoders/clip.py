"""open_clip models (RN50 for LIV, ViT-B-32, ...) with image and text towers. open_clip is imported only
when a CLIP encoder is built. Random init works offline; pretrained weights come from a local file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reprl.encoders.base import Encoder, EncoderConfig
from reprl.errors import ReprlError

# keys in OpenAI-format CLIP checkpoints that are not parameters of open_clip's model
_NON_PARAM_KEYS = ("input_resolution", "context_length", "vocab_size")


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as e:  # pragma: no cover - it is a core dependency
        raise ReprlError(f"open_clip is needed for CLIP encoders: pip install open_clip_torch ({e})") from None
    return open_clip


def _custom_clip(config: EncoderConfig) -> Any:
    """An open_clip CLIP built from explicit tower sizes (params: vision, text), e.g. clip-small."""
    from open_clip.model import CLIP

    p = config.params
    if config.image_size % 32:
        raise ReprlError(f"custom CLIP image towers need an image size divisible by 32, got {config.image_size}")
    vision = {**p.get("vision", {}), "image_size": config.image_size}
    vision["layers"] = tuple(vision.get("layers", (2, 2, 2, 2)))
    text = {"vocab_size": 49408, **p.get("text", {})}
    return CLIP(embed_dim=config.embed_dim, vision_cfg=vision, text_cfg=text)


class ClipEncoder(Encoder):
    """params: model (an open_clip model name, e.g. RN50, or 'custom' with vision / text tower sizes)."""

    has_text = True

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        open_clip = _open_clip()
        name = config.params.get("model", "RN50")
        if name != "custom" and name not in open_clip.list_models():
            raise ReprlError(f"unknown open_clip model {name!r}")
        import logging

        quiet = logging.getLogger("root")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded: we know
        try:
            self.model = _custom_clip(config) if name == "custom" else open_clip.create_model(name, pretrained=None)
        finally:
            quiet.setLevel(level)
        self._tokenizer_name = name
        self._tokenizer: Any = None
        # reprl's similarities never use CLIP's logit scale; a trainable parameter outside the loss would stall
        # DDP's gradient reduction, so it is frozen
        self.model.logit_scale.requires_grad_(False)

    def text_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the text tower (everything outside the image tower)."""
        return [p for n, p in self.model.named_parameters() if not n.startswith("visual.")]

    def fixed_parameters(self) -> list[torch.nn.Parameter]:
        return [self.model.logit_scale]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            if self._tokenizer_name == "custom":
                from open_clip.tokenizer import SimpleTokenizer

                length = int(self.config.params.get("text", {}).get("context_length", 77))
                self._tokenizer = SimpleTokenizer(context_length=length)
            else:
                self._tokenizer = _open_clip().get_tokenizer(self._tokenizer_name)
        return self._tokenizer(list(texts))

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings [N, D] (float32) from the text tower; gradients flow when the caller allows them."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ReprlError("text goals must be non-empty strings")
        return self.model.encode_text(self.tokenize(texts).to(self.device)).float()

    def load_openai_state(self, state: dict[str, torch.Tensor], where: str) -> None:
        """Weights in OpenAI CLIP's key layout (which open_clip's CLIP shares)."""
        state = {k: v for k, v in state.items() if k not in _NON_PARAM_KEYS}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ReprlError(f"{where} does not fit open_clip {self._tokenizer_name}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")

    def load_pretrained(self, path: str | Path) -> None:
        """A local CLIP checkpoint (open_clip format, an OpenAI JIT/state-dict file, or {'state_dict': ...}), or
        an open_clip pretrained tag such as 'openai', downloaded only when asked for and a hub is reachable."""
        p = Path(path)
        if not p.is_file():
            custom = self._tokenizer_name == "custom"
            tags = [] if custom else _open_clip().list_pretrained_tags_by_model(self._tokenizer_name)
            if str(path) not in tags:
                raise ReprlError(f"pretrained weights not found: {p} (not a file, nor an open_clip tag of "
                                 f"{self._tokenizer_name}: {', '.join(tags) or 'none'})")
            try:
                model = _open_clip().create_model(self._tokenizer_name, pretrained=str(path))
            except Exception as e:  # noqa: BLE001 - offline, missing file: all end here
                raise ReprlError(f"could not fetch open_clip weights {self._tokenizer_name}/{path}: {e}; download "
                                 "the checkpoint yourself and pass its local path") from None
            self.model.load_state_dict(model.state_dict())
            return
        try:
            obj: Any = torch.jit.load(str(p), map_location="cpu").state_dict()
        except (RuntimeError, ValueError):
            obj = torch.load(p, map_location="cpu", weights_only=True)
        state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
        state = {k.removeprefix("module."): v for k, v in state.items()}
        self.load_openai_state(state, str(p))
