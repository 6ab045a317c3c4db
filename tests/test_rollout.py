"""Rollouts: slot refill, early stop after success, overlapped groups and worker processes give the same
episodes (success flags, first success, actions) as the plain serial path for the same seeds."""

import numpy as np
import pytest

from reprl.errors import ReprlError
from reprl.evaluation.rollout import rollout, summarize
from reprl.sim.vector import SerialEnvs, open_envs


class DriftEnv:
    """A 1-d hand: the action's first entry moves it; success while it is in [1, 1.5) (so it can leave the
    success region); the frame is filled with its position, so actions depend on frames and proprio."""

    max_steps = 500

    def reset(self, seed=None):
        self.pos = (seed % 7) * 0.1
        return self._obs()

    def _obs(self):
        return np.full(39, self.pos, np.float32)

    def render(self):
        return [np.full((4, 4, 3), int(self.pos * 40) % 256, np.uint8)]

    def step(self, action):
        self.pos += float(action[0])
        return self._obs(), 0.0, 1.0 <= self.pos < 1.5, False

    def close(self):
        pass


def drift_act(frames, proprio):
    """Row by row (no batch effects): a small step that grows with the frame value and the position."""
    return np.stack([[0.02 + 0.001 * f.mean() + 0.01 * p[0], 0, 0, 0] for f, p in zip(frames, proprio)])


def episodes(res):
    return [(r.seed, r.success_any, r.first_success) for r in res]


def test_stop_after_success_keeps_flags_and_actions_of_the_full_horizon():
    seeds = list(range(10, 19))
    full = rollout(SerialEnvs([DriftEnv() for _ in range(3)]), drift_act, seeds, 120, keep_actions=True)
    short = rollout(SerialEnvs([DriftEnv() for _ in range(4)]), drift_act, seeds, 120, stop_after_success=2,
                    groups=2, keep_actions=True)
    assert episodes(full) == episodes(short) and all(r.success_any for r in full)
    for f, s in zip(full, short):
        assert s.steps == min(s.first_success + 2, 120) < f.steps == 120
        assert np.array_equal(f.actions[:s.steps], s.actions)
        assert s.success_final is None and f.success_final is not None
    assert summarize(short)["success_final"] is None and summarize(full)["steps"] == 9 * 120
    assert sum(not f.success_final for f in full) > 0, "some episodes left the success region again"


def test_one_batched_call_per_step_and_slots_refilled():
    calls = []

    def act(frames, proprio):
        calls.append(len(frames))
        return drift_act(frames, proprio)

    res = rollout(SerialEnvs([DriftEnv() for _ in range(3)]), act, [0, 1, 2, 3], 5)
    assert [r.seed for r in res] == [0, 1, 2, 3] and [r.steps for r in res] == [5] * 4
    assert calls == [3] * 5 + [1] * 5  # the 4th seed starts in the first free slot


def test_open_envs_rejects_bad_counts():
    with pytest.raises(ReprlError, match="at least one environment"):
        open_envs("reach", "corner", 32, 0)


@pytest.mark.slow
def test_worker_processes_match_the_serial_path_in_metaworld():
    """Real MetaWorld: 2 processes, 2 overlapped groups, refilled slots vs one process stepping 2 envs
   : the same actions (which depend on the rendered frames) for every seed."""
    def act(frames, proprio):
        return np.stack([np.tanh([f[..., c].mean() / 64 - 2 + p[c] for c in range(3)] + [p[3]])
                         for f, p in zip(frames.astype(np.float64), proprio)])

    seeds = [5, 6, 7]
    serial = open_envs("drawer-open", "corner", 32, 2, workers=0)
    try:
        ref = rollout(serial, act, seeds, 12, keep_actions=True)
    finally:
        serial.close()
    spread = open_envs("drawer-open", "corner", 32, 3, workers=2)
    try:
        got = rollout(spread, act, seeds, 12, groups=2, keep_actions=True)
    finally:
        spread.close()
    assert episodes(ref) == episodes(got)
    for a, b in zip(ref, got):
        assert a.success_final == b.success_final and np.array_equal(a.actions, b.actions)
    assert len({r.actions.tobytes() for r in ref}) == len(seeds), "the seeds gave different episodes"


def test_study_budget_hours():
    from reprl.bench.eval import study_budget_hours

    b = study_budget_hours(1.0)  # 4050 rollouts at one env step per second
    assert b["rollouts"] == 4050
    assert b["hours_no_success"] == pytest.approx(4050 * 500 / 3600)  # 562.5 h
    assert b["hours_half_succeed_at_150"] == pytest.approx(4050 * (0.5 * 160 + 0.5 * 500) / 3600)  # 371.25 h
    assert study_budget_hours(2.0)["hours_no_success"] == pytest.approx(281.25)


def test_a_worker_that_dies_is_a_one_line_error_when_asked_to_step_or_reset():
    envs = open_envs("reach", "corner", 32, 1, workers=1)
    try:
        envs.reset([0], [0])
        envs._procs[0].kill()  # as the kernel's out-of-memory killer would
        envs._procs[0].join()
        for _ in range(2):  # the first send may still fit in the pipe's buffer; then the answer never comes
            with pytest.raises(ReprlError, match=r"worker 0 died \(exit code -9\); rerun with env_workers: 0"):
                envs.step([0], np.zeros((1, 4)))
    finally:
        envs.close()



def test_stop_after_success_keeps_the_final_flag_of_episodes_that_reach_the_horizon():
    # seed 0 starts at 0 and moves about 0.02 a step: no success in 3 steps, so the episode runs to the horizon
    # and its final-step flag is known (False), early stop or not
    (res,) = rollout(SerialEnvs([DriftEnv()]), drift_act, [0], 3, stop_after_success=2)
    assert res.steps == 3 and not res.success_any and res.success_final is False


@pytest.mark.parametrize("cores, envs, workers", [(1, 5, 0), (2, 5, 2), (8, 3, 3), (4, 10, 4)])
def test_default_env_workers_one_process_per_core_and_none_on_one_core(monkeypatch, cores, envs, workers):
    import reprl.evaluation.rollout as rollout_module

    monkeypatch.setattr(rollout_module, "usable_cores", lambda: cores)
    assert rollout_module.default_env_workers(envs) == workers


def test_suite_rollout_options_stop_after_the_settle_steps_unless_the_final_step_counts():
    from types import SimpleNamespace

    from reprl.evaluation.rollout import suite_rollout_options

    envs = SerialEnvs([DriftEnv()])
    spec = SimpleNamespace(final_step_success=False, settle_steps=10)
    assert suite_rollout_options(spec, envs) == {"stop_after_success": 10, "groups": 1}
    spec.final_step_success = True
    assert suite_rollout_options(spec, envs) == {"stop_after_success": None, "groups": 1}
