"""Goal-conditioned rewards from a frozen encoder, as a gymnasium wrapper.

    env = GoalReward(env, reprl.load("vip-resnet50"), goal=goal_image)          # r = S(o'; g) - S(o; g)
    env = GoalReward(env, encoder, goal="open the drawer", mode="value")          # r = S(o'; g)  (LIV text goal)
    env = GoalReward(env, encoder, goal=demo_last_frames, weight=0.1, add_to_env=True)  # env reward + 0.1 r

The image is read from the observation (an image observation, or `image_key` of a dict observation) or,
failing that, rendered (render_mode="rgb_array"). Greyscale frames (a uint8 (H, W) observation space, also
under FrameStackObservation) are read as images, one per frame. Float RGB frames are images in [0, 1] or
[0, 255], as their observation space's bounds say (a float frame outside [0, 1] with other bounds is an error).
S is the encoder's own similarity (reprl.rewards.values).
The goal is an image, a list / batch of images (their mean embedding), a text (language-capable encoders) or
an embedding ([D], or [K, D] averaged); set at construction or with reset(options={"goal": ...}). A goal given to
reset() replaces the current one until another reset() gives one (resets without a goal, and a vector env's
autoresets, keep it).
info["goal_value"] carries S(o; g) of the returned observation and info["goal_reward"] the shaped term.
Vector envs (gymnasium.vector, autoreset NEXT_STEP or DISABLED) embed all sub-envs' frames in one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError

try:
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
    from gymnasium.wrappers import FrameStackObservation
except ImportError:  # pragma: no cover - an optional extra
    raise ReprlError("reprl.wrappers needs gymnasium >= 1.0: pip install 'reprl[rl]'") from None
from reprl.rewards import resolve_goal, values

MODES = ("diff", "value")


def goal_embedding(encoder: Encoder, goal: Any) -> torch.Tensor:
    """Goal [D] from text, one image, several images (mean embedding) or embeddings ([D] or [K, D]), chosen by
    the goal's type and made by reprl.rewards.resolve_goal."""
    if goal is None:
        raise ReprlError("GoalReward needs a goal: pass goal=... or reset(options={'goal': ...})")
    if isinstance(goal, str):
        return resolve_goal(encoder, text=goal).float()
    if isinstance(goal, (list, tuple)):
        return resolve_goal(encoder, images=list(goal)).float()
    arr = torch.from_numpy(np.ascontiguousarray(goal)) if isinstance(goal, np.ndarray) else goal
    if isinstance(arr, torch.Tensor) and arr.dim() <= 2 and arr.is_floating_point():  # embeddings
        return resolve_goal(encoder, embedding=arr).float().to(encoder.device)
    if isinstance(arr, torch.Tensor) and arr.dim() == 4:  # a batch of images
        return resolve_goal(encoder, images=arr).float()
    return resolve_goal(encoder, image=arr).float()


def frame_space(env: Any, space: Any, image_key: str | None) -> Any:
    """The observation space of one frame of the env's image observation: `space` (obs[image_key] for dict
    observations), or, under gymnasium's FrameStackObservation, the space of the observations it stacks (a stack
    of greyscale frames is (K, H, W), the same shape as one channels-first RGB frame, so shapes alone cannot tell
    them apart). A vector env's sub-environments are not looked into: `space` is then their single space."""
    inner = env
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, FrameStackObservation):
            if inner.observation_space == space:  # no wrapper above the stack changed what it returns
                space = inner.env.observation_space
            break
        inner = inner.env
    if image_key is not None:
        space = space.spaces.get(image_key) if isinstance(space, gym.spaces.Dict) else None
    return space


def frame_is_greyscale(one: Any) -> bool:
    """Whether the space of one frame (frame_space's result) is a 2-D uint8 (H, W) greyscale image."""
    shape = getattr(one, "shape", None)
    return isinstance(one, gym.spaces.Box) and one.dtype == np.uint8 and shape is not None and len(shape) == 2


def float_frame_scale(one: Any) -> float | None:
    """For float RGB frames, what to divide them by to get [0, 1] images, read from the bounds of one frame's
    space (frame_space's result): 1 for a Box bounded by [0, 1], 255 for one bounded by [0, 255]; None for
    anything else (uint8 frames, unbounded or non-image spaces). A frame is (H, W, 3) or (3, H, W)."""
    if not isinstance(one, gym.spaces.Box) or not np.issubdtype(one.dtype, np.floating) or len(one.shape) != 3:
        return None
    if 3 not in (one.shape[0], one.shape[-1]) or not (np.all(np.isfinite(one.low)) and np.all(one.low >= 0)):
        return None
    top = float(np.max(one.high))
    return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else None


def _without_goal(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reset options the wrapped env sees: ours ('goal') removed."""
    return None if options is None else {k: v for k, v in options.items() if k != "goal"} or None


class _Scorer:
    """What single and vector wrappers share: the goal, the frame source and one batched value call."""

    def __init__(self, encoder: Encoder, goal: Any, mode: str, weight: float, add_to_env: bool,
                 image_key: str | None, frame: Any = None) -> None:
        """frame: the observation space of one frame (frame_space), which says how frames are laid out."""
        if mode not in MODES:
            raise ReprlError(f"mode must be one of {MODES}, got {mode!r}")
        self.encoder, self.mode, self.weight, self.add_to_env = encoder, mode, float(weight), bool(add_to_env)
        self.image_key = image_key
        self.greyscale = frame_is_greyscale(frame)  # one frame is (H, W)
        self.float_scale = float_frame_scale(frame)  # float frames / this are [0, 1] images
        self.goal = None if goal is None else goal_embedding(encoder, goal)

    def set_goal(self, options: dict[str, Any] | None) -> None:
        if options and options.get("goal") is not None:
            self.goal = goal_embedding(self.encoder, options["goal"])
        if self.goal is None:
            goal_embedding(self.encoder, None)  # raises the "needs a goal" error

    def frames(self, obs: Any, render: Any) -> Any:
        """Images of the observation: obs[image_key], the observation itself if it is an image, or a render.
        Greyscale frames (a single frame of shape (H, W), possibly stacked or batched before it) get a channel
        axis, so a stack of K greyscale frames is read as K images, not as one K-channel image. Float frames are
        scaled to [0, 1] as their space's bounds say; float frames of another space must already be in [0, 1]."""
        if self.image_key is not None:
            if not isinstance(obs, dict) or self.image_key not in obs:
                raise ReprlError(f"image_key {self.image_key!r} is not a key of the observation")
            frames = obs[self.image_key]
        elif self._is_image(obs):
            frames = obs
        else:
            return self.rendered(render)
        if isinstance(frames, np.ndarray) and np.issubdtype(frames.dtype, np.floating):
            frames = (frames / self.float_scale).astype(np.float32) if self.float_scale else frames
            if frames.size and (float(frames.max()) > 1.0 or float(frames.min()) < 0.0):
                raise ReprlError(f"float image frames must be in [0, 1] (these span {float(frames.min()):g} to "
                                 f"{float(frames.max()):g}): give the observation space bounds of [0, 1] or "
                                 "[0, 255], or uint8 frames")
        return frames[..., None] if self.greyscale and isinstance(frames, np.ndarray) else frames

    def _is_image(self, obs: Any) -> bool:
        """Whether the observation itself is the frames: uint8 with a channel axis (or greyscale), or float
        frames whose space marks them as images (float_scale)."""
        if not isinstance(obs, np.ndarray):
            return False
        if obs.dtype == np.uint8:
            return obs.ndim >= 3 or self.greyscale
        return self.float_scale is not None and obs.ndim >= 3

    @staticmethod
    def rendered(render: Any) -> Any:
        """The env's render, when the observation holds no image."""
        hint = "make the env with render_mode='rgb_array' or pass image_key"
        try:
            frames = render()
        except Exception as e:  # noqa: BLE001 - envs raise anything for a render mode they lack
            raise ReprlError(f"the observation is not an image and env.render() failed ({type(e).__name__}: "
                             f"{str(e)[:80]}): {hint}") from None
        if frames is None or (isinstance(frames, (list, tuple)) and any(f is None for f in frames)):
            raise ReprlError(f"the observation is not an image and env.render() returned None: {hint}")
        return np.stack(frames) if isinstance(frames, (list, tuple)) else frames

    def values(self, images: Any, layout: str = "auto") -> np.ndarray:
        """Values of env frames: gymnasium gives them channels-last (H, W, 3), some envs channels-first; one image
        or a batch (or a stack of recent frames)."""
        if self.goal is None:
            raise ReprlError("no goal yet: call reset() first (it sets the goal from goal= or options={'goal': ...})")
        with torch.inference_mode():
            emb = self.encoder(images, layout=layout)
            return values(emb, self.goal.to(emb.device), self.encoder.similarity).double().cpu().numpy()

    def reward(self, env_reward: Any, shaped: np.ndarray | float) -> Any:
        return (env_reward if self.add_to_env else 0.0) + self.weight * shaped


class GoalReward(gym.Wrapper):
    """Reward S(o'; g) - S(o; g) (mode "diff", VIP's reward) or S(o'; g) (mode "value") from a frozen encoder,
    times `weight`, replacing the env reward or added to it (add_to_env=True). Vector envs get GoalRewardVector."""

    def __new__(cls, env: Any = None, *args: Any, **kwargs: Any) -> Any:  # env optional: copy / pickle call cls()
        if cls is GoalReward and isinstance(env, VectorEnv):
            return GoalRewardVector(env, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, env: gym.Env, encoder: Encoder, goal: Any = None, mode: str = "diff", weight: float = 1.0,
                 add_to_env: bool = False, image_key: str | None = None) -> None:
        super().__init__(env)
        self.scorer = _Scorer(encoder, goal, mode, weight, add_to_env, image_key,
                              frame_space(env, env.observation_space, image_key))
        self._value = 0.0

    def _value_of(self, obs: Any) -> float:
        # one image, or a stack of recent frames (FrameStackObservation): the newest frame is the one scored
        return float(self.scorer.values(self.scorer.frames(obs, self.env.render))[-1])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.scorer.set_goal(options)
        obs, info = self.env.reset(seed=seed, options=_without_goal(options))
        self._value = self._value_of(obs)
        return obs, {**info, "goal_value": self._value}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        value = self._value_of(obs)
        shaped = value - self._value if self.scorer.mode == "diff" else value
        self._value = value
        info = {**info, "goal_value": value, "goal_reward": shaped}
        return obs, float(self.scorer.reward(env_reward, np.float64(shaped))), terminated, truncated, info


class GoalRewardVector(VectorWrapper):
    """GoalReward for gymnasium vector envs: one encoder call per step for all sub-envs. A sub-env that was
    auto-reset (NEXT_STEP) gets shaped reward 0 on its reset step, and its value restarts from the new frame."""

    def __init__(self, env: VectorEnv, encoder: Encoder, goal: Any = None, mode: str = "diff", weight: float = 1.0,
                 add_to_env: bool = False, image_key: str | None = None) -> None:
        super().__init__(env)
        autoreset = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if autoreset not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
            raise ReprlError(f"GoalReward supports vector envs with autoreset NEXT_STEP or DISABLED, not {autoreset}")
        self.scorer = _Scorer(encoder, goal, mode, weight, add_to_env, image_key,
                              frame_space(env, env.single_observation_space, image_key))
        self._values = np.zeros(env.num_envs)
        self._restarted = np.zeros(env.num_envs, dtype=bool)

    def _values_of(self, obs: Any) -> np.ndarray:
        v = self.scorer.values(self.scorer.frames(obs, self.env.render))
        if v.shape != (self.num_envs,):
            raise ReprlError(f"got {v.shape[0]} frames for {self.num_envs} sub-environments")
        return v

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.scorer.set_goal(options)
        obs, info = self.env.reset(seed=seed, options=_without_goal(options))
        mask = (options or {}).get("reset_mask")
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self._values = np.where(mask, self._values_of(obs), self._values)
        self._restarted[mask] = False
        return obs, {**info, "goal_value": self._values.copy()}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        obs, env_reward, terminated, truncated, info = self.env.step(actions)
        value = self._values_of(obs)
        shaped = value - self._values if self.scorer.mode == "diff" else value.copy()
        if self.scorer.mode == "diff":
            shaped[self._restarted] = 0.0  # a NEXT_STEP reset step: no transition to reward
        self._values = value
        self._restarted = np.logical_or(terminated, truncated) & (
            self.env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.NEXT_STEP)
        info = {**info, "goal_value": value, "goal_reward": shaped}
        reward = self.scorer.reward(np.asarray(env_reward, dtype=np.float64), shaped)
        return obs, reward, terminated, truncated, info
