"""One random-resized-crop draw shared by all frames of a training tuple, on uint8 tensors.

The parameters are drawn from a numpy Generator (not torch's global RNG) so streams are reproducible per
(seed, rank, worker). The draw follows torchvision's RandomResizedCrop: up to 10 tries of an area in
`scale` x frame area and a log-uniform aspect ratio in `ratio`, else a central crop.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF


def crop_params(height: int, width: int, rng: np.random.Generator, scale: tuple[float, float] = (0.2, 1.0),
                ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random resized crop of a height x width frame."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


FAST_EIGHTHS = (1, 2, 4, 8)  # libjpeg-turbo's SIMD inverse DCTs; 3/8 and 5/8-7/8 run scalar code


def decode_eighths(min_side: int, size: int) -> int:
    """The JPEG scaled-decoding size n/8 (n in 1, 2, 4, 8; 8 = full size) for a crop whose shorter side is
    `min_side` pixels and is resized to `size`: the smallest such n that leaves the crop at least `size`
    pixels, so the resize never enlarges what a full decode would have shrunk. Only the scales with SIMD
    inverse DCTs are used: decoding a 256 px frame at 5/8-7/8 takes 1.1-2.0x as long as at full size, and
    3/8 no less than 4/8 (docs/benchmarks.md)."""
    needed = -(-8 * size // max(1, min_side))
    return next(n for n in FAST_EIGHTHS if n >= min(8, needed))


def crop_resize(frames: torch.Tensor, box: tuple[int, int, int, int], size: int,
                full_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Crop `box` (top, left, h, w in full-frame pixels) from every frame and resize it to size x size.

    frames: uint8 [F, 3, h, w], possibly decoded at reduced scale from a full_hw (H, W) frame: the box is then
    mapped to the reduced grid (scaled by h / H and w / W, rounded, kept inside). The resize runs on a
    channels-last copy, for which torch's uint8 antialiased resize is several times faster, and the result
    stays channels-last (uint8 [F, 3, size, size] whose storage is [F, size, size, 3]): turning it into the
    default layout would cost as much as the resize at 224 px, and convolutions take channels-last input as
    fast or faster (docs/benchmarks.md).
    """
    top, left, h, w = box
    if full_hw is not None and tuple(full_hw) != tuple(frames.shape[-2:]):
        sy, sx = frames.shape[-2] / full_hw[0], frames.shape[-1] / full_hw[1]
        top, left = int(round(top * sy)), int(round(left * sx))
        h = max(1, min(int(round(h * sy)), frames.shape[-2] - top))
        w = max(1, min(int(round(w * sx)), frames.shape[-1] - left))
    x = frames.contiguous(memory_format=torch.channels_last)
    return TF.resized_crop(x, top, left, h, w, [size, size], antialias=True)


def shared_random_crop(frames: torch.Tensor, size: int, rng: np.random.Generator,
                       scale: tuple[float, float] = (0.2, 1.0)) -> torch.Tensor:
    """Crop the same region from every frame and resize it to size x size.

    frames: uint8 [F, 3, H, W] (one training tuple) -> uint8 [F, 3, size, size].
    """
    return crop_resize(frames, crop_params(frames.shape[-2], frames.shape[-1], rng, scale), size)


def center_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The central square of a height x width frame, as (top, left, h, w)."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def center_square(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` and take the central square (no randomness): for validation."""
    h, w = frames.shape[-2:]
    if (h, w) != (size, size):
        frames = TF.resize(frames, [size], antialias=True)
        frames = TF.center_crop(frames, [size, size])
    return frames
