import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reprl.data.sampling import MODES, SAMPLING_MODES, sample_indices

lengths = st.integers(min_value=3, max_value=3000)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def draw(mode, length, seed):
    return sample_indices(mode, length, np.random.default_rng(seed))


@settings(max_examples=300)
@given(lengths, seeds)
def test_vip_reference_sampling(length, seed):
    d = draw("vip", length, seed)
    assert 0 <= d["start"] <= length - 3
    assert d["start"] < d["goal"] <= length - 1
    assert d["start"] <= d["t"] < d["goal"]
    assert d["t1"] == d["t"] + 1 <= d["goal"]


@settings(max_examples=300)
@given(lengths, seeds)
def test_vip_paper_sampling_goal_is_last(length, seed):
    d = draw("vip_last", length, seed)
    assert d["goal"] == length - 1
    assert 0 <= d["start"] <= d["t"] < d["t1"] == d["t"] + 1 <= length - 1


@settings(max_examples=300)
@given(lengths, seeds, st.sampled_from(["liv", "liv_last"]))
def test_liv_adds_text_goal_from_clip_end(length, seed, mode):
    d = draw(mode, length, seed)
    assert set(d) == set(SAMPLING_MODES[mode].roles)
    assert max(0, int(0.95 * length) - 1) <= d["text_goal"] <= length - 1
    assert d["start"] <= d["t"] < d["t1"] <= d["goal"] <= length - 1


@pytest.mark.parametrize(("length", "window"), [(3, {1, 2}), (30, {27, 28, 29}), (50, {46, 47, 48, 49}),
                                                (40, {37, 38, 39})])
def test_liv_text_goal_window_is_the_released_loaders(length, window):
    # LIV's loader: randint(int(0.95 * L) - 1, L), i.e. floor(0.95 L) - 1 .. L - 1; every frame of it is drawn
    rng = np.random.default_rng(0)
    assert {sample_indices("liv", length, rng)["text_goal"] for _ in range(400)} == window


@settings(max_examples=300)
@given(lengths, seeds)
def test_r3m_sampling(length, seed):
    d = draw("r3m", length, seed)
    assert 0 <= d["start"] <= int(0.2 * length)
    assert max(0, math.ceil(0.8 * length) - 1) <= d["goal"] <= length - 1
    assert 0 <= d["s0"] < d["s1"] < d["s2"] <= length - 1


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_rejects_videos_shorter_than_three_frames(mode):
    for n in (0, 1, 2):
        with pytest.raises(ValueError, match="at least 3 frames"):
            draw(mode, n, 0)
    assert set(draw(mode, 3, 0)) == set(SAMPLING_MODES[mode].roles)


def test_reference_sampling_covers_its_whole_range():
    rng = np.random.default_rng(0)
    draws = [sample_indices("vip", 6, rng) for _ in range(4000)]
    assert {d["start"] for d in draws} == {0, 1, 2, 3}
    assert {d["goal"] for d in draws} == {1, 2, 3, 4, 5}
    assert {d["t"] for d in draws} == {0, 1, 2, 3, 4}
    # goal is a random later frame, not always the last: the code's rule, not the paper's
    assert 0.2 < np.mean([d["goal"] == 5 for d in draws]) < 0.8


def test_unknown_mode():
    with pytest.raises(ValueError, match="choose one of"):
        draw("tcn", 10, 0)


def test_built_in_and_registered_modes_share_one_table(monkeypatch):
    """Built-in modes are registered like a plugin's (one table, one sampling path) but cannot be replaced; a
    registered mode's draws are checked against its roles and the video's length."""
    from reprl.data import sampling

    monkeypatch.setattr(sampling, "SAMPLING_MODES", dict(sampling.SAMPLING_MODES))
    assert sampling.SAMPLING_MODES["liv"].needs_text and not sampling.SAMPLING_MODES["vip"].needs_text
    with pytest.raises(ValueError, match="built in and cannot be replaced"):
        sampling.register_mode("vip", ("a", "b"), lambda n, rng: {"a": 0, "b": 1})
    sampling.register_mode("pair", ("a", "b"), lambda n, rng: {"a": 0, "b": n - 1})
    assert sampling.sample_indices("pair", 7, np.random.default_rng(0)) == {"a": 0, "b": 6}
    sampling.register_mode("pair", ("a", "b"), lambda n, rng: {"a": 0, "b": n})  # a plugin may re-register
    with pytest.raises(ValueError, match="must give each of"):
        sampling.sample_indices("pair", 7, np.random.default_rng(0))


def test_last_goal_and_r3m_windows_are_drawn_whole():
    from reprl.data.sampling import other_goal_mode

    rng = np.random.default_rng(0)
    # vip_last: goal the last frame, start anywhere in 0 .. L - 2
    assert {sample_indices("vip_last", 3, rng)["start"] for _ in range(400)} == {0, 1}
    # liv_last keeps vip_last's goal (liv draws a random later frame)
    assert {sample_indices("liv_last", 7, rng)["goal"] for _ in range(100)} == {6}
    # r3m, alpha 0.2 on 10 frames: start in 0 .. int(2), goal in ceil(8) - 1 .. 9
    draws = [sample_indices("r3m", 10, rng) for _ in range(400)]
    assert {d["start"] for d in draws} == {0, 1, 2}
    assert {d["goal"] for d in draws} == {7, 8, 9}
    # other_goal draws in the mode's last-frame form, which a _last mode already is
    assert [other_goal_mode(m) for m in ("vip", "vip_last", "liv", "liv_last", "r3m")] == ["vip_last", "vip_last",
                                                                                         "liv_last", "liv_last", None]
