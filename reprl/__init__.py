"""reprl: pretrain and use value-based visual and language-image representations for robots.

Importing reprl is light: no Lightning, no open_clip, no MetaWorld. Heavy parts load when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from reprl.encoders.base import Encoder


def load(source: str, device: str = "cpu", **kwargs: Any) -> Encoder:
    """Load a frozen encoder in eval mode.

    `source` is an exported encoder directory (config.json + model.safetensors), a registered name
    (random init, see `list_encoders()`), a reference checkpoint file (VIP / R3M / LIV), or `hf://org/repo`.
    """
    from reprl.encoders.io import load_encoder

    return load_encoder(source, device=device, **kwargs)


def list_encoders() -> list[dict[str, str]]:
    """Registered encoder names, with what each is and what it needs."""
    from reprl.encoders.registry import describe_encoders

    return describe_encoders()


__all__ = ["__version__", "load", "list_encoders"]
