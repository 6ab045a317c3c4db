"""Metric and weighting formulas checked on tiny inputs whose answers are worked out by hand in the comments."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from reprl.evaluation.report import aggregate
from reprl.heads import HeadConfig, Transitions
from reprl.heads.registry import make_learner
from reprl.scoring import Record, ScoreVideo, _near_frame, embed_records, score_records
from reprl.stats import percentile_interval, resampled_means, two_level_ci


def neg_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -(a - b).norm(dim=-1)


class FirstPixelEncoder(torch.nn.Module):
    """A fake encoder: a frame's embedding is its first pixel value (1-d), its similarity -|a - b|."""

    similarity = staticmethod(neg_l2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, :1, 0, 0].float()


def record(task: str, succeeded: bool, *, final: float = 0.0, voc_other: float = 0.5, emb: np.ndarray | None = None,
           state: np.ndarray | None = None) -> Record:
    return Record(task=task, succeeded=succeeded, voc_last=1.0, bump_last=0.0, voc_other=voc_other, bump_other=0.0,
                  final=final, summed=0.0, near_value=None, curve=None,
                  emb=np.zeros((1, 1)) if emb is None else emb, state=state)


def test_percentile_interval_cuts_two_and_a_half_percent_from_each_tail_of_the_finite_values():
    # finite values 0, 1, ..., 100 (the NaN is dropped, n = 101); np.percentile interpolates linearly, so the
    # 2.5th percentile sits at position 0.025 * 100 = 2.5 -> 2.5 and the 97.5th at 97.5 -> 97.5
    # (cutting 5% per tail would give 5 and 95)
    ci = percentile_interval(7.0, [float("nan"), *range(101)])
    assert ci == {"mean": 7.0, "lo": pytest.approx(2.5), "hi": pytest.approx(97.5), "n": 101}


def test_percentile_interval_drops_infinite_values_too():
    # "finite values": inf is dropped like NaN, so the interval is that of [0, 1] (positions 0.025 and 0.975)
    ci = percentile_interval(1.0, [0.0, 1.0, float("inf"), float("-inf")])
    assert ci == {"mean": 1.0, "lo": pytest.approx(0.025), "hi": pytest.approx(0.975), "n": 2}


def test_resampled_means_draw_as_many_items_as_there_are():
    # x = [0, 3]: each mean is over 2 draws with replacement, so it is 0, 1.5 or 3, and 1.5 (one of each) has
    # probability 1/2; a resample of one item would give only 0 or 3
    means = resampled_means([0.0, 3.0], 400, np.random.default_rng(0))
    assert means.shape == (400,) and set(means.tolist()) <= {0.0, 1.5, 3.0}
    assert 150 < (means == 1.5).sum() < 250
    assert resampled_means([2.0], 5, np.random.default_rng(0)).tolist() == [2.0] * 5


def test_two_level_ci_cuts_two_and_a_half_percent_from_each_tail():
    # one unit whose b-th resampled mean is b (b = 0..100): every outer resample picks that unit, so the
    # resampled means are 0..100 and the 95% interval is [2.5, 97.5] (5% tails would give [5, 95])
    ci = two_level_ci([np.arange(101.0)], np.random.default_rng(0))
    assert ci == {"lo": pytest.approx(2.5), "hi": pytest.approx(97.5)}


def test_other_goal_is_the_mean_of_every_other_successful_episode_and_never_the_own_one():
    def video(last: int, succeeded: bool = True) -> ScoreVideo:
        frames = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
        frames[:, 0, 0, 0] = torch.tensor([0, 1, 2, last])
        return ScoreVideo(key=str(last), task="t", succeeded=succeeded, frames=frames, near=None, state=None)

    # successful episodes end at 3, 5 and 9; a failed one ends at 100 and is never part of a goal.
    # video 0: goal = mean(5, 9) = 7 -> values -|x - 7| of frames 0, 1, 2, 3 = -7, -6, -5, -4:
    # final -4, summed -4 - (-7) = 3.  (Own episode included: goal 17/3, final -8/3; first other only: goal 5,
    # final -2.)
    records = embed_records(FirstPixelEncoder(), [video(3), video(5), video(9), video(100, succeeded=False)])
    assert records[0].final == pytest.approx(-4.0) and records[0].summed == pytest.approx(3.0)
    # video 2 (ends at 9): goal = mean(3, 5) = 4 -> final -|9 - 4| = -5
    assert records[2].final == pytest.approx(-5.0)
    # the failed video: goal = mean(3, 5, 9) = 17/3 -> final -|100 - 17/3| = -283/3
    assert records[3].final == pytest.approx(-283 / 3, rel=1e-6)


def test_near_frame_is_the_frame_closest_to_near_times_the_first_success_step():
    steps = np.arange(0, 101, 10)  # frames at simulator steps 0, 10, ..., 100
    video = SimpleNamespace(meta={"succeeded": True, "first_success": 100})
    assert _near_frame(video, steps, 0.9) == 9  # 0.9 * 100 = step 90 = frame 9 (without `near`: step 100, frame 10)
    assert _near_frame(video, steps, 0.5) == 5  # 0.5 * 100 = step 50 = frame 5
    assert _near_frame(SimpleNamespace(meta={"succeeded": False, "first_success": 100}), steps, 0.9) is None


def test_failure_auc_is_the_plain_mean_over_task_groups():
    # tasks a and b: success final 0 beats failure -1 -> AUC 1; task c: success -1 loses to failure 0 -> AUC 0.
    # mean over the three groups = (1 + 1 + 0) / 3 = 2/3 (a median would give 1)
    records = [record("a", True, final=0.0), record("a", False, final=-1.0),
               record("b", True, final=0.0), record("b", False, final=-1.0),
               record("c", True, final=-1.0), record("c", False, final=0.0)]
    s = score_records(records, n_boot=10, metrics=("fail_auc_final",))
    assert s["fail_auc_final"]["mean"] == pytest.approx(2 / 3)


def test_score_records_resamples_within_each_task():
    # one successful video per task with voc_other 0 (task a) and 1 (task b): drawing within each task keeps
    # one of each in every resample, so every resampled mean is (0 + 1) / 2 = 0.5 and lo = hi = 0.5
    # (drawing from all videos at once gives means 0 or 1 in about half the resamples)
    records = [record("a", True, voc_other=0.0), record("b", True, voc_other=1.0)]
    ci = score_records(records, n_boot=200, metrics=("voc_other",))["voc_other"]
    assert (ci["mean"], ci["lo"], ci["hi"]) == (0.5, 0.5, 0.5)


def test_score_records_probe_is_ridge_with_lambda_10_on_z_scored_features():
    # two tasks, each one video of two frames: embedding x = -1, 1 and hand x-coordinate y = -1, 1
    # (hand y and z stay 0). Fitted on the other task: z = x (mean 0, population std 1), z^T z = 2, z^T y = 2,
    # w = 2 / (2 + lambda) = 2 / 12 = 1/6, b = 0. On the held-out task: residuals -1 + 1/6 and 1 - 1/6, so
    # SS_res = 2 * (5/6)^2 = 50/36 and SS_tot = 2 -> R^2 = 1 - 25/36 = 11/36 for each task, mean 11/36
    # (lambda 1 would give w = 2/3 and R^2 = 8/9)
    state = np.zeros((2, 7))
    state[:, 0] = [-1.0, 1.0]
    emb = np.array([[-1.0], [1.0]])
    records = [record(task, True, emb=emb, state=state) for task in ("a", "b")]
    ci = score_records(records, n_boot=5, metrics=("probe_hand",))["probe_hand"]
    assert ci["mean"] == pytest.approx(11 / 36, rel=1e-6)


def test_rwr_chi2_head_weights_transitions_by_the_chi2_formula():
    # rewards 1, -6, 0 with tau 1 and no clip: chi2 weights max(0, 1 + r / 2) = 1.5, 0, 1 (mean 2.5 / 3),
    # normalized to mean 1: 1.8, 0, 1.2.  (exp weights would be e, e^-6, 1 -> 2.19, 0.002, 0.81)
    episode = {"emb": np.zeros((4, 2), np.float32), "proprio": np.zeros((4, 4)), "actions": np.zeros((3, 4)),
               "reward": np.array([1.0, -6.0, 0.0])}
    data = Transitions.from_episodes([episode])
    learner = make_learner("rwr_chi2", data, HeadConfig(hidden=(4,)), {"tau": 1.0, "clip": None})
    assert learner.t["weight"].tolist() == pytest.approx([1.8, 0.0, 1.2], rel=1e-6)


def test_aggregate_reports_the_mean_over_three_seeds():
    # seeds 0, 1, 2 at 0.0, 0.1, 0.8: mean 0.9 / 3 = 0.3 (the median would be 0.1);
    # population std sqrt((0.09 + 0.04 + 0.25) / 3) = sqrt(0.38 / 3)
    cells = [{"demos": 1, "encoder": "e", "head": "bc", "task": "a", "seed": s, "success": v}
             for s, v in enumerate([0.0, 0.1, 0.8])]
    row = aggregate(cells, "success")[(1, "e", "bc", "a")]
    assert row["mean"] == pytest.approx(0.3) and row["std"] == pytest.approx(np.sqrt(0.38 / 3))
    assert row["n"] == 3


def test_failure_auc_compares_successes_and_failures_of_the_same_camera_only():
    # camera A: success -10 vs failure -20 -> AUC 1; camera B: success -1 vs failure -5 -> AUC 1; mean 1.
    # (successes and failures filed under different groups would leave no group with both sides: NaN)
    records = [record("a", True, final=-10.0), record("a", False, final=-20.0),
               record("a", True, final=-1.0), record("a", False, final=-5.0)]
    for r, camera in zip(records, "AABB"):
        r.camera = camera
    assert score_records(records, n_boot=10, metrics=("fail_auc_final",))["fail_auc_final"]["mean"] == 1.0
