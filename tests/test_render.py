"""Real MetaWorld rendering on the CPU (EGL): slow, so marked; CI runs it."""

import numpy as np
import pytest

from reprl.errors import ReprlError

pytestmark = pytest.mark.slow


def test_expert_episode_is_recorded_consistently():
    from reprl.sim.metaworld import MetaWorldEnv, expert_policy, run_episode

    env = MetaWorldEnv("drawer-close", ["corner", "topview"], size=48)
    try:
        ep = run_episode(env, expert_policy("drawer-close"), seed=5, max_steps=400, stop_after_success=3)
        again = run_episode(env, expert_policy("drawer-close"), seed=5, max_steps=400, stop_after_success=3)
    finally:
        env.close()
    t = ep.steps
    assert ep.actions.shape == (t, 4) and ep.proprio.shape == (t + 1, 4) and ep.state.shape == (t + 1, 39)
    assert ep.success.shape == (t + 1,) and not ep.success[0]
    assert ep.info["succeeded"] and ep.success[ep.info["first_success"]]
    assert t == ep.info["first_success"] + 3, "stops 3 steps after the first success"
    for cam in ("corner", "topview"):
        assert len(ep.frames[cam]) == t + 1 and ep.frames[cam][0].shape == (48, 48, 3)
    assert np.abs(ep.actions).max() <= 1.0
    np.testing.assert_array_equal(ep.state, again.state)  # same seed, same episode


def test_an_episode_renders_the_same_whatever_the_environment_rendered_before():
    """Frame 0 once showed the previous episode's goal marker, so a corpus rendered by a pool of workers
    depended on which worker got which job (found as one differing JPEG between two renders of the demo)."""
    from reprl.sim.metaworld import MetaWorldEnv, expert_policy, run_episode

    fresh, used = MetaWorldEnv("push", ["corner"], size=48), MetaWorldEnv("push", ["corner"], size=48)
    try:
        run_episode(used, expert_policy("push"), seed=11, max_steps=100, frame_every=50)  # another episode first
        a = run_episode(fresh, expert_policy("push"), seed=12, max_steps=2)
        b = run_episode(used, expert_policy("push"), seed=12, max_steps=2)
    finally:
        fresh.close()
        used.close()
    for x, y in zip(a.frames["corner"], b.frames["corner"], strict=True):
        np.testing.assert_array_equal(x, y)


def test_corner_camera_is_flipped_upright():
    from reprl.sim.metaworld import MetaWorldEnv

    env = MetaWorldEnv("reach", ["corner"], size=32)
    try:
        env.reset(seed=0)
        (ours,) = env.render()
        raw = env.unwrapped.mujoco_renderer.render("rgb_array")
    finally:
        env.close()
    np.testing.assert_array_equal(ours, raw[::-1, ::-1])


def test_render_command_writes_shards_with_actions_and_split(tmp_path):
    from reprl.cli import main
    from reprl.data.reader import expand_urls, iter_videos
    from reprl.data.shards import read_index

    with pytest.raises(SystemExit) as e:
        main(["render", "--tasks", "reach", "--episodes", "1", "--size", "32", "--noise", "0.3",
              "--noisy-fraction", "1", "--max-steps", "40", "--out", str(tmp_path / "mw")])
    assert e.value.code == 0
    index = read_index(tmp_path / "mw")
    assert index["split"]["contains_eval_tasks"] == [] and index["source"] == "metaworld"
    from reprl.sim.corpus import older_render
    from reprl.sim.metaworld import RENDER_REVISION

    assert index["render_revision"] == RENDER_REVISION and older_render(tmp_path / "mw") is None
    (video,) = list(iter_videos(expand_urls(str(tmp_path / "mw"))))
    assert video.text == "reach for the target" and video.meta["noise"] == 0.3 and not video.meta["expert"]
    assert video.array("actions").shape[0] == len(video) - 1 == video.meta["steps"]
    assert video.array("success").shape == (len(video),)


def test_render_gives_the_same_corpus_whatever_the_number_of_workers(tmp_path):
    from reprl.data.shards import read_index
    from reprl.options import CorpusConfig
    from reprl.sim.corpus import render_corpus

    digests = []
    for workers in (1, 2):
        cfg = CorpusConfig(tasks="push", episodes=3, size=48, max_steps=60, frame_every=20, workers=workers)
        render_corpus(cfg, tmp_path / f"w{workers}", progress=False)
        digests.append(read_index(tmp_path / f"w{workers}")["content_sha256"])
    assert digests[0] == digests[1]


def test_unknown_task_and_camera():
    from reprl.sim.tasks import check_camera, resolve_tasks

    with pytest.raises(ReprlError, match="unknown MetaWorld task 'drawer-opn'"):
        resolve_tasks("drawer-opn")
    with pytest.raises(ReprlError, match="unknown camera"):
        check_camera("front")
    assert len(resolve_tasks("pretrain")) == 45 and "drawer-open" not in resolve_tasks("pretrain")
