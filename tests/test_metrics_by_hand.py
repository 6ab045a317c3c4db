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
           state: np.ndarray | None = None, curve: list[float] | None = None) -> Record:
    return Record(task=task, succeeded=succeeded, voc_last=1.0, bump_last=0.0, voc_other=voc_other, bump_other=0.0,
                  final=final, summed=0.0, near_value=None, curve=None if curve is None else np.array(curve),
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


def _bar_suite(**extra):
    return {"name": "s", "description": "", "demos": [5], "heads": ["bc", "rwr"], "tasks": ["a"], "seeds": [0],
            "rollouts": 30, "horizon": 100, "data": {"camera": "corner", "frame_size": 64},
            "head": {"steps": 10, "batch_size": 4, "lr": 0.001}, **extra}


def test_success_plot_draws_each_cell_at_its_offset_with_its_interval_and_shade():
    import matplotlib
    import matplotlib.pyplot as plt

    from reprl.evaluation.report import success_figure

    def ci(mean, lo, hi):
        return {"mean": mean, "lo": lo, "hi": hi}

    agg = {(5, "e0", "bc", "a"): ci(0.5, 0.4, 0.7), (5, "e0", "rwr", "a"): ci(0.2, 0.1, 0.25),
           (5, "e1", "bc", "a"): ci(1.0, 0.9, 1.0), (5, "e0", "bc", "mean"): ci(0.3, 0.2, 0.4)}
    fig = success_figure(agg, _bar_suite(), ["e0", "e1"])
    ax = fig.axes[0]
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]  # one per (encoder, head), encoder-major
    assert [b.get_label() for b in bars] == ["e0 / bc", "e0 / rwr", "e1 / bc", "e1 / rwr"]
    # 4 bars per group: width 0.8 / 4 = 0.2, centres at x + (i - 1.5) * 0.2 = x - 0.3, x - 0.1, x + 0.1, x + 0.3
    for i, b in enumerate(bars):
        for x, patch in zip((0, 1), b.patches):
            assert patch.get_width() == pytest.approx(0.2)
            assert patch.get_x() + 0.1 == pytest.approx(x + (i - 1.5) * 0.2)
    # heights in percent; a cell with no result (e1 / rwr, and e0 / rwr's mean) is an empty bar
    assert [p.get_height() for p in bars[0].patches] == pytest.approx([50, 30])
    assert bars[1].patches[0].get_height() == pytest.approx(20) and np.isnan(bars[1].patches[1].get_height())
    assert all(np.isnan(p.get_height()) for p in bars[3].patches)
    # error bars from lo to hi, in percent: e0 / bc at task a spans 40..70 at x = -0.3; e1 / bc 90..100 at 0.1
    seg = bars[0].errorbar.lines[2][0].get_segments()[0]
    assert np.asarray(seg).ravel() == pytest.approx([-0.3, 40, -0.3, 70])
    seg = bars[2].errorbar.lines[2][0].get_segments()[0]
    assert np.asarray(seg).ravel() == pytest.approx([0.1, 90, 0.1, 100])
    # shades: two heads -> 0.85 and 0.85 - 0.4 = 0.45 of the encoder's family (Blues, then Oranges)
    blues, oranges = matplotlib.colormaps["Blues"], matplotlib.colormaps["Oranges"]
    assert bars[0].patches[0].get_facecolor() == pytest.approx(blues(0.85))
    assert bars[1].patches[0].get_facecolor() == pytest.approx(blues(0.45))
    assert bars[2].patches[0].get_facecolor() == pytest.approx(oranges(0.85))
    assert bars[1].patches[0].get_hatch() == "//" and not bars[0].patches[0].get_hatch()
    plt.close(fig)
    one = success_figure({(5, "e0", "bc", "a"): ci(0.5, 0.4, 0.7)}, _bar_suite(heads=["bc"]), ["e0"])
    bar = next(c for c in one.axes[0].containers if isinstance(c, BarContainer))
    assert bar.get_label() == "e0"  # one head: the encoder's name alone
    assert bar.patches[0].get_facecolor() == pytest.approx(blues(0.75))  # and the middle shade
    assert bar.patches[0].get_width() == pytest.approx(0.8) and bar.patches[0].get_x() == pytest.approx(-0.4)
    plt.close(one)


def test_report_has_the_final_step_and_best_evaluation_sections_only_when_they_apply(tmp_path):
    from reprl.evaluation.report import write_report

    def cell(final):  # one seed, no per-rollout record: each section's cell is its own rate
        return {"demos": 5, "encoder": "e0", "head": "bc", "task": "a", "seed": 0, "success": 0.5,
                "success_final_step": final, "success_max": 0.8}

    def sections(cells, **extra):
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        out.mkdir()
        write_report({"suite": _bar_suite(heads=["bc"], **extra), "cells": cells, "encoders": {"e0": "random"}}, out)
        text = (out / "table.md").read_text()
        return [line for line in text.splitlines() if line.startswith("## ")], text

    heads, text = sections([cell(0.25)])
    assert heads == ["## success at any step within the horizon, 5 demos", "## success at the final step, 5 demos"]
    assert "| e0 | bc | 50 [50, 50] | 50 [50, 50] |" in text and "| e0 | bc | 25 [25, 25] | 25 [25, 25] |" in text
    # rollouts that stopped after their success have no final-step flag: that section is left out
    assert sections([cell(None)])[0] == ["## success at any step within the horizon, 5 demos"]
    mixed = [cell(0.25), {**cell(None), "seed": 1}]  # one seed with the flag, one without: no section either
    assert sections(mixed)[0] == ["## success at any step within the horizon, 5 demos"]
    heads, text = sections([cell(None)], evaluations=3)
    assert heads[-1] == "## best of 3 evaluations during head training (R3M's protocol), 5 demos"
    assert "| e0 | bc | 80 [80, 80] | 80 [80, 80] |" in text
