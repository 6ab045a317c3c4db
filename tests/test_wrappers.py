"""GoalReward on a tiny fake env with a hand-checkable encoder, gymnasium vector envs, and (slow) MetaWorld."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import reprl
from reprl.encoders.base import similarity
from reprl.errors import ReprlError
from reprl.wrappers import GoalReward, goal_embedding


class Brightness(gym.Env):
    """A grey 8x8 frame of brightness p (0..255); action +k brightens by k. Env reward is always 1."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, image_obs=True, start=0):
        self.image_obs, self.start, self.p = image_obs, start, start
        self.render_mode = "rgb_array"
        self.observation_space = (gym.spaces.Box(0, 255, (8, 8, 3), np.uint8) if image_obs
                                  else gym.spaces.Box(0, 255, (1,), np.float32))
        self.action_space = gym.spaces.Discrete(256)

    def _obs(self):
        return self.render() if self.image_obs else np.array([self.p], np.float32)

    def render(self):
        return np.full((8, 8, 3), self.p, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.p = self.start
        return self._obs(), {}

    def step(self, action):
        self.p = min(255, self.p + int(action))
        return self._obs(), 1.0, self.p >= 255, False, {}


class MeanColour:
    """Embeds a frame as its mean colour in [0, 1] (3-d), L2 value: V = -||c - g||. Counts its calls."""

    embed_dim, device, calls = 3, torch.device("cpu"), 0

    def __call__(self, images, layout="BHWC"):
        MeanColour.calls += 1
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, list) else np.stack(images)).float() / 255
        x = x[None] if x.dim() == 3 else x
        return x.mean(dim=(1, 2))  # BHWC -> [B, 3]

    def similarity(self, a, b):
        return similarity(a, b, "l2")

    def embed_text(self, texts):
        return torch.tensor([[1.0, 1.0, 1.0] if "bright" in t else [0.0, 0.0, 0.0] for t in texts])


WHITE = np.ones(3, np.float32)  # goal embedding of a white frame


def test_diff_reward_is_the_value_difference_and_info_carries_the_value():
    env = GoalReward(Brightness(), MeanColour(), goal=WHITE)
    _, info = env.reset()
    assert info["goal_value"] == pytest.approx(-math.sqrt(3))  # black frame: ||0 - 1|| over 3 channels
    _, r, _, _, info = env.step(51)  # brightness 51 = 0.2
    assert info["goal_value"] == pytest.approx(-math.sqrt(3) * 0.8)
    assert r == pytest.approx(math.sqrt(3) * 0.2) and info["goal_reward"] == pytest.approx(r)
    _, r, _, _, _ = env.step(0)
    assert r == pytest.approx(0.0)


def test_value_mode_weight_and_adding_to_the_env_reward():
    env = GoalReward(Brightness(start=102), MeanColour(), goal=WHITE, mode="value", weight=0.5, add_to_env=True)
    env.reset()
    _, r, _, _, info = env.step(51)  # brightness 153 = 0.6: V = -sqrt(3) * 0.4
    assert info["goal_value"] == pytest.approx(-math.sqrt(3) * 0.4)
    assert r == pytest.approx(1.0 + 0.5 * -math.sqrt(3) * 0.4)  # env reward 1 + weight * value
    with pytest.raises(ReprlError, match="mode must be one of"):
        GoalReward(Brightness(), MeanColour(), goal=WHITE, mode="delta")


def test_goal_forms_image_images_text_embedding_and_per_reset_goals():
    enc = MeanColour()
    grey = np.full((8, 8, 3), 102, np.uint8)  # 0.4
    torch.testing.assert_close(goal_embedding(enc, grey), torch.full((3,), 0.4))
    torch.testing.assert_close(goal_embedding(enc, [grey, np.full((8, 8, 3), 204, np.uint8)]), torch.full((3,), 0.6))
    torch.testing.assert_close(goal_embedding(enc, "bright room"), torch.ones(3))
    torch.testing.assert_close(goal_embedding(enc, torch.tensor([[0.0, 0, 0], [1, 1, 1]])), torch.full((3,), 0.5))
    with pytest.raises(ReprlError, match="goal embedding has 2 dims, the encoder embeds to 3"):
        goal_embedding(enc, np.zeros(2, np.float32))
    env = GoalReward(Brightness(), enc)  # no goal yet: reset must bring one
    with pytest.raises(ReprlError, match="needs a goal"):
        env.reset()
    _, info = env.reset(options={"goal": grey})
    assert info["goal_value"] == pytest.approx(-math.sqrt(3) * 0.4)
    _, info = env.reset(options={"goal": "dark"})
    assert info["goal_value"] == pytest.approx(0.0)
    _, info = env.reset()  # a reset without a goal keeps the last one given (as the docstring and README say)
    assert info["goal_value"] == pytest.approx(0.0)


def test_frames_are_rendered_when_the_observation_is_not_an_image():
    env = GoalReward(Brightness(image_obs=False, start=255), MeanColour(), goal=WHITE)
    _, info = env.reset()
    assert info["goal_value"] == pytest.approx(0.0)
    with pytest.raises(ReprlError, match="image_key 'pixels' is not a key"):
        GoalReward(Brightness(), MeanColour(), goal=WHITE, image_key="pixels").reset()


def test_vector_env_one_encoder_call_per_step_and_autoreset():
    venv = gym.vector.SyncVectorEnv([lambda: Brightness(start=0), lambda: Brightness(start=204)])
    env = GoalReward(venv, MeanColour(), goal=WHITE)
    assert type(env).__name__ == "GoalRewardVector"
    _, info = env.reset()
    np.testing.assert_allclose(info["goal_value"], [-math.sqrt(3), -math.sqrt(3) * 0.2], rtol=1e-6)
    before = MeanColour.calls
    _, r, term, _, info = env.step(np.array([51, 51]))  # second env reaches 255: done
    assert MeanColour.calls == before + 1, "all sub-envs' frames go through one encoder call"
    np.testing.assert_allclose(r, [math.sqrt(3) * 0.2, math.sqrt(3) * 0.2], rtol=1e-6)
    assert term.tolist() == [False, True]
    _, r, _, _, info = env.step(np.array([0, 0]))  # NEXT_STEP autoreset of env 1: no shaped reward there
    np.testing.assert_allclose(r, [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(info["goal_value"], [-math.sqrt(3) * 0.8, -math.sqrt(3) * 0.2], rtol=1e-6)
    _, r, _, _, _ = env.step(np.array([0, 51]))  # env 1 restarted from 204: rewards continue from there
    np.testing.assert_allclose(r, [0.0, math.sqrt(3) * 0.2], atol=1e-6)


def test_wrapper_works_with_a_real_reprl_encoder():
    enc = reprl.load("tiny", image_size=32)
    env = GoalReward(Brightness(), enc, goal=np.full((8, 8, 3), 255, np.uint8))
    _, info = env.reset()
    _, r, _, _, step_info = env.step(255)
    assert r == pytest.approx(step_info["goal_value"] - info["goal_value"]) and step_info["goal_value"] == 0.0
    twin = copy.deepcopy(env)  # what vector envs and checkpointing tools do with wrappers
    assert type(twin) is GoalReward and twin.reset()[1]["goal_value"] == pytest.approx(info["goal_value"])


class GreyBrightness(Brightness):
    """Brightness with greyscale (8, 8) frames and no renderer (or a dict observation holding them)."""

    def __init__(self, start=0, as_dict=False):
        super().__init__(start=start)
        self.render_mode, self.as_dict = None, as_dict
        frame = gym.spaces.Box(0, 255, (8, 8), np.uint8)
        self.observation_space = gym.spaces.Dict({"pixels": frame}) if as_dict else frame

    def _obs(self):
        frame = np.full((8, 8), self.p, np.uint8)
        return {"pixels": frame} if self.as_dict else frame

    def render(self):
        raise RuntimeError("no render mode")


def test_greyscale_frames_single_stacked_batched_and_in_a_dict_score_as_their_rgb_twins():
    """A greyscale frame is one image (it was sent to env.render()); a stack of 4 greyscale frames is 4 images
    whose newest is scored (it was read as one RGBA image of the 3 oldest); a vector env's greyscale frames are
    one image per sub-env (they were read as one multi-channel image). Each matches the RGB env's values."""
    torch.manual_seed(0)  # the random init must order brightness (not every init does), whatever ran before
    enc = reprl.load("tiny", image_size=16)
    goal = np.full((8, 8, 3), 255, np.uint8)
    rgb = GoalReward(Brightness(start=0), enc, goal=goal)
    cases = {"single": GoalReward(GreyBrightness(start=0), enc, goal=goal),
             "dict": GoalReward(GreyBrightness(start=0, as_dict=True), enc, goal=goal, image_key="pixels"),
             "stack": GoalReward(gym.wrappers.FrameStackObservation(GreyBrightness(start=0), 4), enc, goal=goal),
             "stack, another wrapper above": GoalReward(
                 gym.wrappers.TimeLimit(gym.wrappers.FrameStackObservation(GreyBrightness(start=0), 4), 50), enc,
                 goal=goal)}
    want = [rgb.reset()[1]["goal_value"]] + [rgb.step(a)[1] for a in (51, 102)]
    assert want[1] > 0 and want[2] > 0, "brighter frames are closer to the white goal"
    for name, env in cases.items():
        got = [env.reset()[1]["goal_value"]] + [env.step(a)[1] for a in (51, 102)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    grey = GoalReward(gym.vector.SyncVectorEnv([lambda: GreyBrightness(start=0), lambda: GreyBrightness(start=204)]),
                      enc, goal=goal)
    colour = GoalReward(gym.vector.SyncVectorEnv([lambda: Brightness(start=0), lambda: Brightness(start=204)]),
                        enc, goal=goal)
    np.testing.assert_allclose(grey.reset()[1]["goal_value"], colour.reset()[1]["goal_value"], rtol=1e-5)
    np.testing.assert_allclose(grey.step(np.array([51, 0]))[1], colour.step(np.array([51, 0]))[1], rtol=1e-5,
                               atol=1e-6)


class FloatBrightness(Brightness):
    """Brightness with float frames, in [0, 1] or in [0, 255] (`top`), as its observation space's bounds say
    (bounds None: an unbounded float space), and no renderer."""

    def __init__(self, start=0, top=1.0, bounds=True, channels_first=False):
        super().__init__(start=start)
        self.render_mode, self.top, self.channels_first = None, top, channels_first
        shape = (3, 8, 8) if channels_first else (8, 8, 3)
        self.observation_space = gym.spaces.Box(0.0 if bounds else -np.inf, top if bounds else np.inf, shape,
                                                np.float32)

    def _obs(self):
        return np.full(self.observation_space.shape, self.p * self.top / 255.0, np.float32)

    def render(self):
        raise RuntimeError("no render mode")


def test_float_frames_score_as_their_uint8_twins_as_their_space_bounds_say():
    """Float frames in [0, 1] and in [0, 255] (channels last or first, single or stacked) are images scaled by
    their space's bounds (they fell back to env.render(), which these envs lack); float frames above 1 under an
    unbounded space are refused, not read as [0, 1] images."""
    torch.manual_seed(0)
    enc = reprl.load("tiny", image_size=16)
    goal = np.full((8, 8, 3), 255, np.uint8)
    rgb = GoalReward(Brightness(start=0), enc, goal=goal)
    want = [rgb.reset()[1]["goal_value"]] + [rgb.step(a)[1] for a in (51, 102)]
    cases = {"[0, 1]": GoalReward(FloatBrightness(), enc, goal=goal),
             "[0, 255]": GoalReward(FloatBrightness(top=255.0), enc, goal=goal),
             "[0, 255], channels first": GoalReward(FloatBrightness(top=255.0, channels_first=True), enc, goal=goal),
             "[0, 255], stacked": GoalReward(gym.wrappers.FrameStackObservation(FloatBrightness(top=255.0), 3), enc,
                                             goal=goal)}
    for name, env in cases.items():
        got = [env.reset()[1]["goal_value"]] + [env.step(a)[1] for a in (51, 102)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    unbounded = GoalReward(FloatBrightness(start=10, top=255.0, bounds=False), enc, goal=goal)
    with pytest.raises(ReprlError, match="render"):  # not known to be an image: rendered, and it has no renderer
        unbounded.reset()
    keyed = GoalReward(gym.wrappers.TransformObservation(FloatBrightness(start=10, top=255.0, bounds=False),
                                                         lambda o: {"pixels": o},
                                                         gym.spaces.Dict({"pixels": gym.spaces.Box(
                                                             -np.inf, np.inf, (8, 8, 3), np.float32)})),
                       enc, goal=goal, image_key="pixels")
    with pytest.raises(ReprlError, match=r"must be in \[0, 1\]"):
        keyed.reset()


@pytest.mark.slow
def test_rewards_rise_along_a_metaworld_expert_episode():
    """Goal = the last frame of a scripted expert's episode; replaying it, the values climb to that goal."""
    from reprl.rewards import spearman
    from reprl.sim.metaworld import MetaWorldEnv, expert_policy

    mw = MetaWorldEnv("drawer-open", size=64)
    mw.render()  # switches on the fast offscreen settings, which the gymnasium env's render() shares
    policy = expert_policy("drawer-open")

    def expert(env, options=None, steps=60):
        mw.unwrapped.seed(3)  # MetaWorld takes its layout seed here, not from reset()
        obs, info = env.reset(options=options)
        vals, total = [info.get("goal_value")], 0.0
        for _ in range(steps):
            obs, r, *_, info = env.step(np.clip(policy.get_action(obs), -1, 1))
            vals.append(info.get("goal_value"))
            total += r
        return vals, total

    expert(mw.env)
    goal = mw.env.render()
    torch.manual_seed(0)
    vals, total = expert(GoalReward(mw.env, reprl.load("resnet18", image_size=64)), options={"goal": goal})
    mw.close()
    assert vals[-1] == pytest.approx(0.0, abs=1e-4), "the replay ends on the goal frame"
    assert total == pytest.approx(vals[-1] - vals[0], abs=1e-4) and total > 0
    assert spearman(vals, np.arange(len(vals))) > 0.5


def test_torchrl_transform_gives_the_same_rewards():
    pytest.importorskip("torchrl")
    from torchrl.envs import GymWrapper, TransformedEnv

    from reprl.wrappers_torchrl import GoalRewardTransform

    env = TransformedEnv(GymWrapper(Brightness()), GoalRewardTransform(MeanColour(), WHITE, in_key="pixels"))
    td = env.reset()
    assert float(td["goal_value"]) == pytest.approx(-math.sqrt(3))
    td["action"] = torch.nn.functional.one_hot(torch.tensor(51), 256)
    td = env.step(td)
    assert float(td["next", "reward"]) == pytest.approx(math.sqrt(3) * 0.2, rel=1e-5)
    assert float(td["next", "goal_value"]) == pytest.approx(-math.sqrt(3) * 0.8, rel=1e-5)
    env = TransformedEnv(GymWrapper(Brightness()), GoalRewardTransform(
        MeanColour(), WHITE, in_key="pixels", mode="value", weight=2.0, add_to_env=True))
    td = env.rollout(3, policy=lambda td: td.set("action", torch.nn.functional.one_hot(torch.tensor(51), 256)))
    expected = [1.0 + 2.0 * -math.sqrt(3) * (1 - 0.2 * k) for k in (1, 2, 3)]
    assert td["next", "reward"].flatten().tolist() == pytest.approx(expected, rel=1e-5)


def test_vector_env_skips_the_reward_of_a_truncated_sub_env_restart_and_a_full_reset_clears_it():
    step = math.sqrt(3) * 0.2  # one step of 51 brightness levels towards WHITE
    limited = gym.vector.SyncVectorEnv([lambda: Brightness(start=0),
                                        lambda: gym.wrappers.TimeLimit(Brightness(start=0), 1)])
    env = GoalReward(limited, MeanColour(), goal=WHITE)
    env.reset()
    _, r, term, trunc, _ = env.step(np.array([51, 51]))  # env 1 truncated by its time limit
    np.testing.assert_allclose(r, [step, step], rtol=1e-6)
    assert term.tolist() == [False, False] and trunc.tolist() == [False, True]
    _, r, _, _, _ = env.step(np.array([51, 51]))  # env 1's restart step: no transition to reward
    np.testing.assert_allclose(r, [step, 0.0], rtol=1e-6, atol=1e-9)

    venv = gym.vector.SyncVectorEnv([lambda: Brightness(start=0), lambda: Brightness(start=204)])
    env = GoalReward(venv, MeanColour(), goal=WHITE)
    env.reset()
    env.step(np.array([51, 51]))  # env 1 terminates
    env.reset()  # every sub-env starts again here, so the next step is a real transition for all of them
    _, r, _, _, _ = env.step(np.array([51, 51]))
    np.testing.assert_allclose(r, [step, step], rtol=1e-6)


class StrictOptions(Brightness):
    """Rejects reset options it does not know (as many envs do) and records the ones it got."""

    def reset(self, *, seed=None, options=None):
        self.got = options
        if options and set(options) - {"reset_mask", "level"}:
            raise ValueError(f"unknown reset options {sorted(options)}")
        return super().reset(seed=seed, options=options)


def test_the_wrapped_env_never_sees_the_goal_option_and_keeps_its_own():
    env = GoalReward(StrictOptions(), MeanColour())
    env.reset(options={"goal": WHITE})
    assert env.unwrapped.got is None  # the goal alone: no options left for the env
    env.reset(options={"goal": WHITE, "level": 2})
    assert env.unwrapped.got == {"level": 2}
    env.reset(options={"level": 3})  # no goal given: everything passes through, the last goal stays
    assert env.unwrapped.got == {"level": 3}
    env.reset()
    assert env.unwrapped.got is None
    venv = gym.vector.SyncVectorEnv([StrictOptions, StrictOptions])
    vec = GoalReward(venv, MeanColour())
    vec.reset(options={"goal": WHITE, "level": 1})
    assert [e.unwrapped.got for e in venv.envs] == [{"level": 1}, {"level": 1}]
