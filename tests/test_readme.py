"""The README's code must work as written."""

import re
from pathlib import Path

import numpy as np
import torch

import reprl
from reprl.encoders.io import save_encoder

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_control_code_snippet_runs(tmp_path):
    snippet = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    enc_dir = save_encoder(reprl.load("resnet18", image_size=64, embed_dim=16), tmp_path / "encoder")
    rng = np.random.default_rng(0)
    scope = {"goal_image": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
             "obs": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
             "next_obs": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)}
    exec(snippet.replace('"demo_out/run/encoder"', repr(str(enc_dir))), scope)
    assert scope["goal"].shape == (1, 16)
    assert isinstance(scope["reward"], torch.Tensor) and scope["reward"].shape == (1,)


def test_readme_starts_with_the_two_commands():
    lines = README.splitlines()
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert block[0].startswith("make demo") and block[1].startswith("make test")
