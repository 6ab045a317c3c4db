"""Shared fixtures: the committed MetaWorld test corpus and helpers that build small inputs on the fly."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

DATA = Path(__file__).parent / "data"
TRAIN_SHARDS = str(DATA / "metaworld" / "train")
HELDOUT_SHARDS = str(DATA / "metaworld" / "heldout")
VIDEO = str(DATA / "drawer_open.mp4")


@pytest.fixture
def train_shards() -> str:
    return TRAIN_SHARDS


@pytest.fixture
def heldout_shards() -> str:
    return HELDOUT_SHARDS


def frame_with_value(i: int, size: tuple[int, int] = (32, 24)) -> np.ndarray:
    """An RGB frame whose mean brightness encodes i (for order checks)."""
    return np.full((size[1], size[0], 3), min(255, 10 + 20 * i), dtype=np.uint8)


def make_frame_folder(folder: Path, n: int, *, names: str = "{i}.png", size: tuple[int, int] = (32, 24),
                      mode: str = "RGB") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.fromarray(frame_with_value(i, size))
        if mode != "RGB":
            img = img.convert(mode)
        img.save(folder / names.format(i=i))
    return folder


def random_frames(n: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


def reference_resnet(depth: int, fc_dim: int):
    """A torchvision ResNet as the VIP / R3M reference code builds it (fc = Linear or Identity), with
    non-trivial BatchNorm statistics so eval-mode BN matters; seeded by depth."""
    import torch
    import torchvision

    torch.manual_seed(depth)
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    net.fc = torch.nn.Linear(net.fc.in_features, fc_dim) if fc_dim else torch.nn.Identity()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()
