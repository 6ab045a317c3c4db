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


def python_block_after(heading: str) -> str:
    """The first ```python block after `heading` in the README."""
    return re.search(r"```python\n(.*?)```", README[README.index(heading):], re.S).group(1)


def test_pretrained_wrapper_and_hub_snippets_run(tmp_path, monkeypatch):
    """Released name (from a cache filled by hand, as the offline instructions say), the env wrapper on a
    small rendering env, and the hub snippet against a fake hub."""
    import gymnasium as gym
    import huggingface_hub
    import torchvision

    monkeypatch.setenv("REPRL_CACHE", str(tmp_path / "cache"))
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Linear(512, 16)
    cached = tmp_path / "cache" / "pretrained" / "vip-resnet50"
    cached.mkdir(parents=True)
    torch.save({"vip": {f"module.convnet.{k}": v for k, v in net.state_dict().items()}}, cached / "model.pt")
    (cached / "config.yaml").write_text("agent: {}\n")

    class Pixels(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (24, 32, 3), np.uint8)
        action_space = gym.spaces.Discrete(2)
        render_mode = "rgb_array"

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 1.0, False, False, {}

    pushed = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            pushed.append(repo_id)

        def upload_folder(self, repo_id, folder_path, **kwargs):
            pushed.append(sorted(p.name for p in Path(folder_path).iterdir()))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.chdir(tmp_path)
    scope = {"goal_image": np.zeros((24, 32, 3), np.uint8), "env": Pixels(), "make_env": Pixels}
    for heading in ("### Released VIP, R3M and LIV weights by name", "### Rewards inside an environment",
                    "### Share encoders"):
        exec(python_block_after(heading), scope)
    assert scope["vip"].config.embed_dim == 16 and "pretrained vip-resnet50" in scope["vip"].config.source
    assert isinstance(scope["reward"], float) and "goal_value" in scope["info"]
    assert (tmp_path / "my_encoder" / "README.md").is_file()
    assert pushed == ["your-org/vip-metaworld", ["README.md", "config.json", "model.safetensors"]]


def test_policy_snippet_runs(tmp_path):
    from reprl.heads import HeadConfig, Transitions, train_policy
    from reprl.heads.policy import Policy

    snippet = python_block_after("## Policies you can keep")
    encoder = reprl.load("tiny", image_size=32, embed_dim=8)
    rng = np.random.default_rng(0)
    data = Transitions.from_episodes([{"emb": rng.normal(size=(5, 8)), "proprio": rng.normal(size=(5, 3)),
                                       "actions": rng.uniform(-1, 1, (4, 2)), "expert": True}])
    actor, _ = train_policy("trail", data, HeadConfig(hidden=(8,), steps=4, batch_size=4), {"hidden": [8]})
    Policy(encoder, actor, "tiny", "trail").save(tmp_path / "my_policy", copy_encoder=True)
    scope = {"image": rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), "proprio": np.zeros(3, np.float32)}
    exec(snippet.replace('"my_policy"', repr(str(tmp_path / "my_policy"))), scope)
    assert scope["action"].shape == (2,) and np.all(np.abs(scope["action"]) <= 1)
