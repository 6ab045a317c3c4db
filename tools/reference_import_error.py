"""Relative embedding error of reprl's VIP and LIV checkpoint imports against their reference pipelines
(rebuilt in tests/test_reference_import.py), on real frames, before and after the preprocessing fix.

  PYTHONPATH=. MUJOCO_GL=egl OMP_NUM_THREADS=1 python tools/reference_import_error.py

Weights are random (no released weights offline); the error comes from preprocessing alone. "before" is the
old preprocessing: VIP resized and cropped twice, LIV resized with antialiasing.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import HELDOUT_SHARDS, reference_resnet  # noqa: E402
from test_reference_import import CLIP, center_crop, rel_error, resize_shorter, vip_reference  # noqa: E402

import reprl  # noqa: E402
from reprl.data.reader import decode_frames, iter_videos  # noqa: E402
from reprl.data.shards import shard_urls  # noqa: E402
from reprl.encoders.reference import RESIZE_CROP  # noqa: E402


def shard_frames(n: int = 8) -> torch.Tensor:
    v = next(iter_videos(shard_urls(HELDOUT_SHARDS)))
    return decode_frames(v.frames[:: max(1, len(v.frames) // n)][:n])


def rendered(size: int, n: int = 8) -> torch.Tensor:
    from reprl.sim.metaworld import MetaWorldEnv, expert_policy, run_episode

    env = MetaWorldEnv("drawer-open", size=size)
    ep = run_episode(env, expert_policy("drawer-open"), seed=0, max_steps=80, frame_every=10)
    env.close()
    return torch.from_numpy(np.stack(ep.frames["corner"][:n])).permute(0, 3, 1, 2).contiguous()


def imported(state: dict, tmp: Path, old_preprocess: list) -> tuple:
    torch.save(state, tmp)
    before = reprl.load(tmp)
    before.config.preprocess = old_preprocess
    return before, reprl.load(tmp)


def main(folder: Path) -> None:
    tmp = folder / "checkpoint.pt"
    net = reference_resnet(50, 1024)
    before, after = imported({"vip": {f"module.convnet.{k}": v for k, v in net.state_dict().items()}}, tmp,
                             RESIZE_CROP + RESIZE_CROP)
    for name, x in [("heldout shard frames 64x64", shard_frames()), ("rendered 224x224", rendered(224))]:
        ref = vip_reference(net, x)
        print(f"VIP {name}: {len(x)} frames, max relative error before {rel_error(before(x), ref):.2e}, "
              f"after {rel_error(after(x), ref):.2e}")
    import open_clip

    torch.manual_seed(1)
    clip = open_clip.create_model("RN50", pretrained=None).eval()
    before, after = imported({"liv": {f"module.model.{k}": v for k, v in clip.state_dict().items()}}, tmp,
                             [{"op": "resize", "size": 224}, {"op": "center_crop", "size": 224}])
    x = rendered(256)
    with torch.no_grad():
        ref = clip.encode_image((center_crop(resize_shorter(x.float() / 255, 224, False), 224) - CLIP[0]) / CLIP[1])
    print(f"LIV rendered 256x256: {len(x)} frames, max relative error before {rel_error(before(x), ref):.2e}, "
          f"after {rel_error(after(x), ref):.2e}")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        main(Path(folder))
