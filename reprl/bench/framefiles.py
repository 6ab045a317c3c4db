"""The baseline the data benchmark compares against: videos stored as one JPEG file per frame plus a
manifest (path,len), read the way the reference VIP/R3M loaders do (our own code, same operations).

Per tuple: pick a video uniformly from the manifest, sample indices, read + decode each frame file, stack,
convert to float in [0, 1], one shared RandomResizedCrop(size, scale 0.2-1), then Resize(256) and
CenterCrop(size), output float in [0, 255]. `reference_transforms=False` keeps the same file layout but
uses reprl's uint8 crop only, to separate the storage format from the transforms.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as TF

from reprl.data.augment import crop_params, shared_random_crop
from reprl.data.reader import expand_urls, iter_videos
from reprl.data.sampling import SAMPLING_MODES, sample_indices
from reprl.utils.files import replacing, safe_name


def export_frame_folders(shards: str, out: str | Path) -> Path:
    """Write each shard video as a folder of per-frame JPEG files (the same JPEG bytes) + manifest.csv."""
    out = Path(out)
    manifest = out / "manifest.csv"
    if manifest.exists():
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for video in iter_videos(expand_urls(shards)):
        folder = out / safe_name(video.key)  # keys come from data: never a path
        folder.mkdir(exist_ok=True)
        for i, jpg in enumerate(video.frames):
            (folder / f"{i}.jpg").write_bytes(bytes(jpg))
        rows.append({"path": str(folder), "len": len(video)})
    with replacing(manifest) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "len"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


class FrameFileTuples(IterableDataset):
    """Infinite stream of single training tuples from per-frame JPEG files (batch with a DataLoader)."""

    def __init__(self, manifest: str | Path, mode: str = "vip", image_size: int = 224, seed: int = 0,
                 reference_transforms: bool = True) -> None:
        with open(manifest, newline="") as f:
            self.videos = [(r["path"], int(r["len"])) for r in csv.DictReader(f)]
        self.mode, self.size, self.seed = mode, image_size, seed
        self.reference_transforms = reference_transforms

    def _frame(self, folder: str, i: int) -> torch.Tensor:
        return decode_jpeg(read_file(f"{folder}/{i}.jpg"), mode=ImageReadMode.RGB)

    def __iter__(self) -> Any:
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        roles = SAMPLING_MODES[self.mode].roles
        while True:
            folder, n = self.videos[int(rng.integers(len(self.videos)))]
            idx = sample_indices(self.mode, n, rng)
            frames = torch.stack([self._frame(folder, idx[r]) for r in roles])  # uint8 [F, 3, H, W]
            if not self.reference_transforms:
                yield shared_random_crop(frames, self.size, rng)
                continue
            x = frames.float() / 255.0
            top, left, h, w = crop_params(x.shape[-2], x.shape[-1], rng)
            x = TF.resized_crop(x, top, left, h, w, [self.size, self.size], antialias=True)
            x = TF.center_crop(TF.resize(x, [round(self.size * 256 / 224)], antialias=True), [self.size, self.size])
            yield x * 255.0
