"""GoalReward as a torchrl Transform (optional: needs torchrl, `pip install 'reprl[torchrl]'`).

    env = TransformedEnv(GymEnv(..., from_pixels=True), GoalRewardTransform(encoder, goal, in_key="pixels"))

Same reward as reprl.wrappers.GoalReward: weight * (S(o'; g) - S(o; g)) (mode "diff", what torchrl's
VIPRewardTransform computes, here with the encoder's own similarity) or weight * S(o'; g) (mode "value"),
replacing the env reward or added to it. The value rides along in the "goal_value" entry. The goal is fixed
when the transform is made (an image, images, a text or an embedding).
"""

from __future__ import annotations

from typing import Any

import torch

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.wrappers import _Scorer

try:
    from torchrl.data import Unbounded
    from torchrl.envs.transforms import Transform
except ImportError:  # pragma: no cover - an optional extra
    raise ReprlError("reprl.wrappers_torchrl needs torchrl: pip install 'reprl[torchrl]'") from None

VALUE_KEY = "goal_value"


class GoalRewardTransform(Transform):
    """Frozen-encoder goal reward on the image entry `in_key` (channels-last, as gymnasium renders)."""

    def __init__(self, encoder: Encoder, goal: Any, in_key: str = "pixels", mode: str = "diff",
                 weight: float = 1.0, add_to_env: bool = False, layout: str = "BHWC") -> None:
        super().__init__(in_keys=[in_key], out_keys=[VALUE_KEY])
        self.scorer = _Scorer(encoder, goal, mode, weight, add_to_env, None)
        self.layout = layout

    def _values(self, td: Any) -> torch.Tensor:
        images = td.get(self.in_keys[0])
        batch = images.shape[: images.dim() - 3]
        flat = images.reshape(-1, *images.shape[-3:]).cpu()
        v = torch.as_tensor(self.scorer.values(flat, self.layout), dtype=torch.float32)
        return v.reshape(*batch, 1).to(images.device)

    def _reset(self, tensordict: Any, tensordict_reset: Any) -> Any:
        tensordict_reset.set(VALUE_KEY, self._values(tensordict_reset))
        return tensordict_reset

    def _step(self, tensordict: Any, next_tensordict: Any) -> Any:
        value = self._values(next_tensordict)
        shaped = value - tensordict.get(VALUE_KEY) if self.scorer.mode == "diff" else value
        reward = next_tensordict.get("reward")
        base = reward if self.scorer.add_to_env else torch.zeros_like(reward)
        next_tensordict.set("reward", (base + self.scorer.weight * shaped.to(reward.device)).to(reward.dtype))
        next_tensordict.set(VALUE_KEY, value)
        return next_tensordict

    def transform_observation_spec(self, observation_spec: Any) -> Any:
        observation_spec[VALUE_KEY] = Unbounded(shape=(*observation_spec.shape, 1), dtype=torch.float32,
                                                device=observation_spec.device)
        return observation_spec
