"""Encoders: images (and text) -> embeddings, with the preprocessing and similarity they were trained with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from reprl.encoders.base import Encoder


def from_pretrained(source: str | Path, device: str = "cpu", revision: str | None = None) -> Encoder:
    """A frozen encoder from a folder saved with `save_pretrained` or a hub repo 'org/name'."""
    from reprl.encoders.hub import from_pretrained as load

    return load(source, device=device, revision=revision)
