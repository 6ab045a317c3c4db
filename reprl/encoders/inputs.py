"""The encoder input contract: what images may look like, turned into one tensor layout.

Accepted: uint8 images ([B,3,H,W] or [B,H,W,3], torch or numpy; a single image without the batch axis),
float images in [0, 1] (stated, never guessed from pixel values: a float batch outside [0, 1] is an
error, not rescaled), PIL images, or a list of any of these (sizes may differ). 1-channel images are
repeated to RGB and a 4th (alpha) channel is dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reprl.errors import ReprlError

CHANNELS = (1, 3, 4)


def _layout(shape: tuple[int, ...], layout: str) -> str:
    if layout in ("BCHW", "BHWC"):
        return layout
    if layout != "auto":
        raise ReprlError(f"layout must be 'auto', 'BCHW' or 'BHWC', got {layout!r}")
    first, last = shape[1] in CHANNELS, shape[-1] in CHANNELS
    if first and not last:
        return "BCHW"
    if last and not first:
        return "BHWC"
    if first and last:
        raise ReprlError(f"cannot tell the channel axis of images shaped {tuple(shape)}; pass layout='BCHW' or 'BHWC'")
    raise ReprlError(f"images shaped {tuple(shape)} have no channel axis of size 1, 3 or 4 (first or last)")


def _fix_channels(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    if c == 1:
        return x.expand(-1, 3, -1, -1)
    if c == 4:
        return x[:, :3]
    return x


def _pil_to_tensor(img: Any) -> torch.Tensor:
    from reprl.data.video import DecodeError, to_rgb8

    try:
        rgb = to_rgb8(img)
    except DecodeError as e:
        raise ReprlError(f"PIL image of mode {img.mode!r}: {e}") from None
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)  # a writable copy


def _one(item: Any, layout: str) -> torch.Tensor:
    """One array-like (with or without batch axis) -> [B, 3, H, W] uint8 or float tensor."""
    if hasattr(item, "mode") and hasattr(item, "size") and hasattr(item, "convert"):  # PIL image
        return _pil_to_tensor(item)[None]
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(np.ascontiguousarray(item) if item.flags.writeable else item.copy())
    if not isinstance(item, torch.Tensor):
        raise ReprlError(f"unsupported image type {type(item).__name__}: pass uint8/float tensors or arrays, "
                         "or PIL images")
    if item.dim() == 2:  # one grayscale image
        item = item[None, None]
    elif item.dim() == 3:
        item = item[None]
    if item.dim() != 4:
        raise ReprlError(f"expected images with 3 or 4 dimensions, got shape {tuple(item.shape)}")
    if _layout(tuple(item.shape), layout) == "BHWC":
        item = item.permute(0, 3, 1, 2)
    if item.shape[1] not in (1, 3, 4) or item.shape[2] < 1 or item.shape[3] < 1:
        raise ReprlError(f"images must have 1, 3 or 4 channels and a height and width of at least 1 pixel, got "
                         f"[B, C, H, W] = {list(item.shape)}")
    return _fix_channels(item)


def check_dtype(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ReprlError(f"images of dtype {x.dtype} are not supported: pass uint8 in [0, 255] or float in [0, 1]")
    if x.numel():
        if bool(torch.isnan(x).any()):
            raise ReprlError("the images hold NaN values; pass finite pixels (uint8 in [0, 255] or float in [0, 1])")
        lo, hi = float(x.amin()), float(x.amax())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ReprlError(f"float images must be in [0, 1] (these span [{lo:.3g}, {hi:.3g}]); pass uint8 images "
                             "in [0, 255], or divide by 255")
    return x


def as_image_list(images: Any, layout: str = "auto") -> list[torch.Tensor]:
    """Normalise any accepted input to a list of [B_i, 3, H_i, W_i] tensors (uint8 or float in [0, 1])."""
    items = images if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ReprlError("no images given")
    return [check_dtype(_one(item, layout)) for item in items]
