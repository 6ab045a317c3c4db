"""MetaWorld 3.x on the CPU: scripted-expert episodes rendered offscreen (EGL), several cameras at once.

Needs the `sim` extra (metaworld, mujoco, gymnasium). MUJOCO_GL defaults to egl; it must be set before
mujoco is first imported. Rendering is made fast (no shadows, reflections or multisampling) and the corner
cameras, which MetaWorld renders upside down, are flipped upright.

An episode of T steps has frames o_0..o_T (o_t is what the robot saw before action a_t), actions a_0..a_{T-1},
proprioception and full state for every frame, and success[t] = the success flag on reaching o_t.
"""

from __future__ import annotations

import atexit
import os
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# torchvision pulls in triton, which carries its own LLVM; loading it after Mesa's EGL driver has made a
# context crashes the process (segfault in triton's import). Loading it first is safe, so do it here; the
# environment worker processes of reprl.sim.vector never load torch and skip it (seconds per worker).
if os.environ.get("REPRL_ENV_WORKER") != "1":
    import torchvision  # noqa: F401  isort: skip

from reprl.errors import ReprlError
from reprl.sim.tasks import FLIPPED_CAMERAS, TASK_TEXT, check_camera, task_name

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

PROPRIO_DIM = 4  # hand xyz + gripper opening: the first 4 entries of MetaWorld's 39-d state

# Bumped whenever a change here alters rendered frames or rollouts for the same seeds. Shard folders record it
# (index.json "render_revision") and so do evaluation cells, so results made before a change can be told apart.
# 0: until 2026-12-05; an episode's first frame could show the goal marker of the environment's previous episode.
# 1: reset recomputes positions (mj_forward), see MetaWorldEnv.reset.
RENDER_REVISION = 1
OLDER_RENDER = "until 2026-12-05 an episode's first frame could show the previous episode's goal marker"  # revision 0

_LIVE_ENVS: weakref.WeakSet[MetaWorldEnv] = weakref.WeakSet()


def _close_live_envs() -> None:
    """Free every live rendering context. mujoco registers eglTerminate with atexit when the first context is
    made; freeing a context after that hook ran raises EGL errors at exit, so this closer is (re)registered
    after each first render and therefore runs before mujoco's hook."""
    for env in list(_LIVE_ENVS):
        env.close()


def _import_metaworld() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import gymnasium as gym
            import metaworld  # noqa: F401  (registers the Meta-World/* environments)
    except ImportError as e:
        raise ReprlError(f"MetaWorld is not installed ({e}); install the sim extra: pip install 'reprl[sim]'") from None
    return gym


class MetaWorldEnv:
    """One MetaWorld task rendered from one or more cameras, with fast offscreen rendering."""

    def __init__(self, task: str, cameras: list[str] | tuple[str, ...] = ("corner",), size: int = 128,
                 seed: int = 0) -> None:
        gym = _import_metaworld()
        import mujoco

        self.task = task_name(task)
        self.cameras = [check_camera(c) for c in cameras]
        if not self.cameras:
            raise ReprlError("give at least one camera")
        self.size = size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.env = gym.make("Meta-World/MT1", env_name=f"{self.task}-v3", seed=seed, render_mode="rgb_array",
                                camera_name=self.cameras[0], width=size, height=size)
        self.unwrapped = self.env.unwrapped
        self.unwrapped.model.vis.quality.offsamples = 0
        self._camera_ids = [mujoco.mj_name2id(self.unwrapped.model, mujoco.mjtObj.mjOBJ_CAMERA, c)
                            for c in self.cameras]
        self._fast = False
        self.max_steps = int(self.unwrapped.max_path_length)
        self.fps = 1.0 / float(self.unwrapped.dt)

    def _make_fast(self) -> None:
        import mujoco

        viewer = self.unwrapped.mujoco_renderer._get_viewer("rgb_array")
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._fast = True
        _LIVE_ENVS.add(self)
        atexit.unregister(_close_live_envs)
        atexit.register(_close_live_envs)

    def render(self) -> list[np.ndarray]:
        """One RGB uint8 [size, size, 3] frame per camera, upright."""
        renderer = self.unwrapped.mujoco_renderer
        frames = []
        for name, cam_id in zip(self.cameras, self._camera_ids):
            renderer.camera_id = cam_id
            img = renderer.render("rgb_array")
            if not self._fast:
                self._make_fast()
                img = renderer.render("rgb_array")
            if name in FLIPPED_CAMERAS:
                img = img[::-1, ::-1]
            frames.append(np.ascontiguousarray(img))
        return frames

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode. MetaWorld ignores reset's seed: its RNG (which also picks one of MT1's 50
        object/goal layouts) is seeded through the environment's own seed(), so that is what we call."""
        import mujoco

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if seed is not None:
                self.unwrapped.seed(int(seed))
            obs, _ = self.env.reset()
        # MetaWorld's reset places the object and the goal marker without recomputing the positions the renderer
        # draws, so the first frame showed the goal marker where the environment's previous episode had left it,
        # and a corpus rendered by a pool of workers depended on which worker got which job. mj_forward
        # recomputes them. The state and the observation returned here are unchanged, but the first step starts
        # from other solver data (probably the constraint solver's warm start; not traced), so a few contact-rich
        # episodes follow a slightly different path than before this line existed (4 of the study's 900 training
        # episodes changed length). Both paths are valid simulations and neither depends on what the environment
        # did before; mj_kinematics + mj_camlight would fix the frame and keep the old paths, but every render
        # since the fix (the demo's figures among them) was made with mj_forward.
        mujoco.mj_forward(self.unwrapped.model, self.unwrapped.data)
        return np.asarray(obs, dtype=np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """-> (obs, reward, success, truncated)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, reward, _, truncated, info = self.env.step(np.asarray(action, dtype=np.float32))
        return np.asarray(obs, dtype=np.float32), float(reward), bool(info["success"] >= 1.0), bool(truncated)

    def close(self) -> None:
        if not getattr(self, "_closed", False):
            self._closed = True
            _LIVE_ENVS.discard(self)
            self.env.close()


def expert_policy(task: str) -> Any:
    """MetaWorld's scripted expert for `task`: an object with get_action(obs) -> action."""
    _import_metaworld()
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[f"{task_name(task)}-v3"]()  # type: ignore[abstract]  # map values are typed as the ABC


class RandomPolicy:
    """Uniformly random actions in [-1, 1]^4 (seeded): the 'play' / failure data of mixed-quality suites."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def get_action(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=4).astype(np.float32)


@dataclass
class Episode:
    task: str
    frames: dict[str, list[np.ndarray]]  # camera -> [T+1] frames (or every frame_every-th step)
    actions: np.ndarray  # [T, 4]
    proprio: np.ndarray  # [T+1, 4]
    state: np.ndarray  # [T+1, 39]
    success: np.ndarray  # [T+1] bool
    reward: np.ndarray  # [T]
    frame_step: np.ndarray  # [F] step index of each frame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])


def run_episode(env: MetaWorldEnv, policy: Any, *, seed: int, noise: float = 0.0, max_steps: int | None = None,
                stop_after_success: int | None = None, frame_every: int = 1) -> Episode:
    """Roll out `policy` (an expert, plus Gaussian action noise of std `noise`) and record everything.

    stop_after_success: end the episode this many steps after the first success (None: run the full horizon).
    """
    rng = np.random.default_rng(seed)
    horizon = min(max_steps or env.max_steps, env.max_steps)
    obs = env.reset(seed=seed)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in env.cameras}
    states, actions, success, rewards, frame_step = [obs], [], [False], [], []

    def record(step: int) -> None:
        if step % frame_every == 0:
            for cam, img in zip(env.cameras, env.render()):
                frames[cam].append(img)
            frame_step.append(step)

    record(0)
    first_success: int | None = None
    for t in range(horizon):
        with warnings.catch_warnings():  # MetaWorld's experts warn on every call that their gains are high
            warnings.simplefilter("ignore")
            action = np.asarray(policy.get_action(obs), dtype=np.float32)
        if noise > 0:
            action = action + rng.normal(0.0, noise, size=action.shape).astype(np.float32)
        action = np.clip(action, -1.0, 1.0)
        obs, reward, ok, truncated = env.step(action)
        states.append(obs)
        actions.append(action)
        success.append(ok)
        rewards.append(reward)
        if ok and first_success is None:
            first_success = t + 1
        settled = first_success is not None and stop_after_success is not None and (
            t + 1 - first_success >= stop_after_success)
        done = truncated or t + 1 == horizon or settled
        if done and (t + 1) % frame_every != 0:
            for cam, img in zip(env.cameras, env.render()):
                frames[cam].append(img)
            frame_step.append(t + 1)
        else:
            record(t + 1)
        if done:
            break
    state = np.stack(states).astype(np.float32)
    return Episode(
        task=env.task, frames=frames, actions=np.stack(actions).astype(np.float32), proprio=state[:, :PROPRIO_DIM],
        state=state, success=np.asarray(success, dtype=bool), reward=np.asarray(rewards, dtype=np.float32),
        frame_step=np.asarray(frame_step, dtype=np.int64),
        info={"seed": seed, "noise": noise, "first_success": first_success, "succeeded": first_success is not None,
              "fps": env.fps / frame_every, "text": TASK_TEXT[env.task]},
    )
