"""The study's pieces: LIV with a frozen pretrained sentence encoder as text tower, and `make study` in a tiny
configuration (the real figures come from the full run, docs/results.md)."""

from __future__ import annotations

import pytest
import torch
from test_metrics_by_hand import record
from test_training import metrics, tiny

import reprl


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18-minilm", "tiny-minilm"])
def test_liv_trains_an_image_tower_with_frozen_sentence_text_tower(tmp_path, name):
    from reprl.training.run import build_training_encoder, pretrain

    cfg = tiny(tmp_path, "--encoder.name", name, "--encoder.embed_dim", "16", "--objective.name", "liv",
               "--objective.num_negatives", "1", "--data.batch_size", "4", "--trainer.max_steps", "2",
               "--trainer.checkpoint_every", "2")
    enc = build_training_encoder(cfg)
    assert enc.config.similarity == "cosine" and enc.text_parameters()
    assert all(p.requires_grad for p in enc.text_parameters())
    image_tower = "convnet."  # the image tower, then the text head; MiniLM is not saved
    assert {k.split(".")[0] + "." for k in enc.state_dict()} == {image_tower, "text_head."}
    assert not any(k.startswith("model.") or "embeddings" in k for k in enc.state_dict())  # MiniLM is not saved
    summary = pretrain(cfg)
    names = {k for r in metrics(tmp_path / "run") for k, v in r.items() if v}
    assert {"train/clip", "train/vip_i/loss", "train/vip_l/loss"} <= names
    loaded = reprl.load(summary["encoder"])
    again = reprl.load(summary["encoder"])
    a, b = loaded.embed_text(["open the drawer"]), again.embed_text(["open the drawer"])
    assert a.shape == (1, 16) and torch.equal(a, b)
    assert not torch.allclose(a, loaded.embed_text(["close the door"]))  # the sentence encoder tells texts apart


@pytest.mark.slow
def test_make_study_runs_end_to_end_in_a_tiny_configuration(tmp_path):
    """tools/study.sh with STUDY_TINY=1: every step runs once, a second run skips them all."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "STUDY_TINY": "1", "STUDY_OUT": str(tmp_path / "out"), "REPRL": f"{sys.executable} -m reprl"}
    run = subprocess.run(["bash", str(repo / "tools" / "study.sh")], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    results = tmp_path / "out" / "results"
    scores = json.loads((results / "reward_quality" / "results.json").read_text())["scores"]
    assert set(scores) == {"random", "vip"} and "near_auc" in scores["vip"]
    steps = [line.split("\t")[0] for line in (results / "timing.tsv").read_text().splitlines()[1:]]
    assert steps == ["render train", "render heldout", "render eval", "pretrain study_vip", "score", "export study-vip"]
    model = json.loads((tmp_path / "out" / "models" / "study-vip" / "config.json").read_text())
    assert model["training"]["steps"] == 3 and "voc_other" in model["training"]["reward_quality"]["metrics"]
    again = subprocess.run(["bash", str(repo / "tools" / "study.sh")], cwd=repo, env=env, capture_output=True,
                           text=True)
    assert again.returncode == 0 and again.stdout.count(": done (") == 6


def test_pretrain_without_a_bar_prints_plain_progress_lines(tmp_path, capsys):
    from reprl.training.progress import TextProgress, format_eta
    from reprl.training.run import pretrain

    assert (format_eta(59.6), format_eta(307), format_eta(-3)) == ("1m00s", "5m07s", "0s")
    pretrain(tiny(tmp_path, "--trainer.max_steps", "4"))  # progress false: lines instead of a bar
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("step ")]
    assert lines and lines[-1].startswith("step 4/4 (100%)  loss ") and "steps/s  ETA 0s" in lines[-1]
    # the default, a bar, is drawn only on a terminal: with stderr redirected (here, captured) the lines come instead
    pretrain(tiny(tmp_path, "--trainer.max_steps", "4", "--trainer.progress", "true", "--run_dir",
                  str(tmp_path / "run2")))
    assert any(x.startswith("step 4/4 (100%)") for x in capsys.readouterr().out.splitlines())
    assert TextProgress(every=2).every == 2


def test_study_model_picks_the_best_finite_score_and_refuses_bad_input_in_one_line(tmp_path):
    """tools/study_model.py (the study's export step): an encoder whose VOC is NaN is never picked as the best; a
    missing or malformed results file, and an unknown encoder key, end in one line, not a traceback."""
    import json
    import subprocess
    import sys

    def run(*args):
        p = subprocess.run([sys.executable, "tools/study_model.py", *map(str, args)], capture_output=True, text=True)
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    results = tmp_path / "results"
    (results / "reward_quality").mkdir(parents=True)
    scores = {"random": {"voc_other": {"mean": 0.9}}, "liv": {"voc_other": {"mean": float("nan")}},
              "vip": {"voc_other": {"mean": 0.8, "lo": 0.7, "hi": 0.9}}, "r3m": {"voc_other": {"mean": 0.5}}}
    (results / "reward_quality" / "results.json").write_text(json.dumps({"scores": scores}))
    assert run("best", results) == (0, "vip", "")
    bad = [("best", tmp_path / "nosuch"), ("card", results, "vipp", "study_vip", tmp_path),
           ("card", results, "vip", "study_vip", tmp_path / "nosuch")]
    for args in bad:
        code, _, err = run(*args)
        assert code == 1 and len(err.splitlines()) == 1 and err.startswith("study_model: "), err
    (results / "reward_quality" / "results.json").write_text("[1]")
    code, _, err = run("best", results)
    assert code == 1 and "not an object" in err and len(err.splitlines()) == 1


def test_rwr_diagnosis_without_a_render_says_what_to_run(tmp_path):
    """tools/rwr_diagnosis.py before `reprl eval` rendered the suite: one line naming the command, no table."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "tools/rwr_diagnosis.py", "--suite", "eval/suites/study_downstream.yaml",
                        "--cache", str(tmp_path), "--encoder", "tiny", "--tau", "1"], capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == "" and "run reprl eval --suite" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def _ensemble_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ensemble_score", "tools/ensemble_score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ensemble_value_is_the_mean_of_each_members_value():
    """tools/ensemble_score.py: members of 2 and 1 dims with L2 values; o = 0, g = (3, 4, 2): member values -5 and
    -2, mean -3.5 (an L2 distance over the concatenation would give -sqrt(29)); with scales 1 and 2: (-5 - 1) / 2;
    a cosine member keeps its own similarity."""
    from reprl.encoders.base import similarity

    tool = _ensemble_tool()
    l2 = lambda a, b: similarity(a, b, "l2")  # noqa: E731
    cos = lambda a, b: similarity(a, b, "cosine", gamma=0.5)  # noqa: E731
    o, g = torch.zeros(3), torch.tensor([3.0, 4.0, 2.0])
    assert tool.mean_of_values([l2, l2], [2, 1])(o, g).item() == pytest.approx(-3.5)
    assert tool.mean_of_values([l2, l2], [2, 1], [1.0, 2.0])(o, g).item() == pytest.approx(-3.0)
    a, b = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 3.0])  # cos on (1, 0) vs (0, 1) is 0: 0 / 0.5
    assert tool.mean_of_values([cos, l2], [2, 1])(a, b).item() == pytest.approx((0.0 - 2.0) / 2)
    batch = tool.mean_of_values([l2, l2], [2, 1])(torch.zeros(4, 3), g)  # broadcasts over frames like similarity
    assert batch.shape == (4,) and torch.allclose(batch, torch.full((4,), -3.5))


def test_ensemble_scores_match_values_averaged_by_hand(tmp_path, capsys):
    """Two different encoders: the ensemble's VOC (goal = other episodes) is that of each member's values (own goal:
    mean last frame of the same task and camera's other successful videos), divided by the member's spread and
    averaged, computed here without the tool; the gain is against the better member on the same videos. An encoder
    ensembled with a copy of itself scores as the encoder. Bad input is one line, before any encoder loads."""
    import json

    from reprl.rewards import voc
    from reprl.scoring import embed_videos, load_videos

    tool = _ensemble_tool()
    out = tmp_path / "ens.json"
    shards, sources = "tests/data/metaworld/heldout", {"a": "random:tiny", "b": "random:resnet18", "c": "random:tiny"}
    tool.main([shards, *[f"--encoder={k}={v}" for k, v in sources.items()], "--ensemble", "a+b", "--ensemble", "a+c",
               "--boot", "50", "--max-frames", "16", "--json", str(out)])
    result = json.loads(out.read_text())
    scores, gain = result["scores"], result["voc_gain"]
    assert scores["a+c"] == scores["a"] and "| a+b | " in capsys.readouterr().out
    encoders = {k: reprl.load(v) for k, v in sources.items() if k != "c"}
    videos = load_videos(shards, encoders["a"].config.image_size, max_frames=16)
    curves: dict[str, list[torch.Tensor]] = {}
    for k, enc in encoders.items():
        embs = embed_videos(enc, videos)
        curves[k] = []
        for i, (v, e) in enumerate(zip(videos, embs)):
            others = [embs[j][-1] for j, w in enumerate(videos)
                      if j != i and w.succeeded and (w.task, w.camera) == (v.task, v.camera)]
            curves[k].append(enc.similarity(e, torch.stack(others).mean(0)))
        spread = torch.cat(curves[k]).double().std(unbiased=False).item()
        assert result["value_scales"][k] == pytest.approx(spread, rel=1e-4)
        curves[k] = [c / spread for c in curves[k]]
    ok = [i for i, v in enumerate(videos) if v.succeeded]
    by_hand = [voc(((curves["a"][i] + curves["b"][i]) / 2).numpy()) for i in ok]
    assert scores["a+b"]["voc_other"]["mean"] == pytest.approx(sum(by_hand) / len(by_hand), abs=1e-6)
    best = gain["a+b"]["best_member"]
    assert gain["a+b"]["mean"] == pytest.approx(scores["a+b"]["voc_other"]["mean"] - scores[best]["voc_other"]["mean"],
                                                abs=1e-6)
    for bad, says in ((["--ensemble", "a+z"], "(unknown: z)"), (["--ensemble", "a+a"], "two or more different"),
                      (["--boot", "0"], "--boot must be at least 10"), (["--json", str(tmp_path)], "give a file"),
                      (["--encoder", "x+y=random:tiny"], "use letters, digits")):
        with pytest.raises(SystemExit):
            tool.main([shards, "--encoder", "a=random:tiny", *bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert says in err[-1] and not any("Traceback" in line for line in err)


def test_the_committed_liv_encoder_loads_by_name_takes_text_goals_and_carries_its_scores():
    """study-liv_tiny_g0995 (eval/models/): the small CNN with its text tower, cosine values at its own gamma; its
    training card holds the figures of the committed scoring run, and different task captions embed apart."""
    import json
    from pathlib import Path

    enc = reprl.load("study-liv_tiny_g0995")
    assert type(enc).__name__ == "TinyTextEncoder" and enc.has_text
    assert (enc.config.similarity, enc.config.gamma, enc.config.image_size) == ("cosine", 0.995, 64)
    card = enc.config.training
    scored = json.loads(Path("eval/results/study_machine4/reward_quality_liv_g0995_tiny_long/results.json").read_text())
    ref = scored["scores"]["liv_g0995_15000"]
    for metric in ("voc_other", "bump_other", "near_auc"):
        assert card["reward_quality"]["metrics"][metric]["mean"] == round(ref[metric]["mean"], 4)
    assert card["steps"] == 15000 and card["preset"] == "configs/pretrain/study_tiny_long_liv.yaml"
    text = enc.embed_text(["open the drawer", "open the drawer", "press the button from above"])
    assert text.shape == (3, 512) and torch.equal(text[0], text[1])
    assert torch.cosine_similarity(text[0], text[2], dim=0) < 0.99  # 0.958 for these two
    frames = torch.rand(2, 3, 64, 64)
    assert enc(frames).shape == (2, 512)


def test_ensemble_gain_pairs_successful_videos_within_tasks_and_scales_are_population_stds():
    """Ensemble VOCs 0.9 (a), -0.5 (a, failed), 0.4 (b) against the best member's 0.7, 0.5, 0.6: the failed video
    is left out, gains 0.2 and -0.2, mean 0; with one video per task every resample within tasks is the same pair,
    so the interval is [0, 0]. A member's scale is the population std of all its values: 0, 2, 1 -> sqrt(2/3);
    values that never vary cannot be weighed."""
    import math

    from reprl.errors import ReprlError

    tool = _ensemble_tool()
    ensemble = [record("a", True, voc_other=0.9), record("a", False, voc_other=-0.5), record("b", True, voc_other=0.4)]
    best = [record("a", True, voc_other=0.7), record("a", False, voc_other=0.5), record("b", True, voc_other=0.6)]
    gain = tool.paired_voc_gain(ensemble, best, n_boot=50)
    assert [gain[k] for k in ("mean", "lo", "hi")] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    scale = tool.value_scale([record("a", True, curve=[0.0, 2.0]), record("a", True, curve=[1.0]), record("a", True)])
    assert scale == pytest.approx(math.sqrt(2 / 3))
    with pytest.raises(ReprlError, match="do not vary"):
        tool.value_scale([record("a", True, curve=[3.0, 3.0]), record("a", True, curve=[3.0])])


def test_ensemble_gain_is_measured_against_the_member_with_the_higher_voc(tmp_path, monkeypatch, capsys):
    """Three successful videos of one task, 1-d embeddings, values = -|e - goal| with goal = the mean last frame
    of the other two videos. Member 'up' walks 0, 1, 2 (goal 2: values -2, -1, 0, VOC 1); member 'zig' walks
    0, 3, 1 (goal 1: values -1, -2, 0, ranks 1, 0, 2: VOC 0.5). The ensemble's gain is taken against 'up'."""
    import json
    from types import SimpleNamespace

    from reprl.scoring import ScoreVideo

    tool = _ensemble_tool()
    walks = {"up": [0.0, 1.0, 2.0], "zig": [0.0, 3.0, 1.0]}
    neg_l2 = lambda a, b: -(a - b).norm(dim=-1)  # noqa: E731
    encoders = {f"fake:{k}": SimpleNamespace(config=SimpleNamespace(image_size=8), similarity=neg_l2, walk=w)
                for k, w in walks.items()}
    videos = [ScoreVideo(key=f"v{i}", task="a", succeeded=True, frames=torch.zeros(3, 3, 8, 8, dtype=torch.uint8),
                         near=None, state=None) for i in range(3)]
    monkeypatch.setattr(tool.reprl, "load", lambda source: encoders[source])
    monkeypatch.setattr(tool, "load_videos", lambda shards, size, max_frames: videos)
    monkeypatch.setattr(tool, "embed_videos", lambda enc, vids: [torch.tensor(enc.walk)[:, None] for _ in vids])
    out = tmp_path / "e.json"
    tool.main(["unused", "--encoder", "zig=fake:zig", "--encoder", "up=fake:up", "--ensemble", "zig+up",
               "--boot", "20", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["scores"]["up"]["voc_other"]["mean"] == pytest.approx(1.0)
    assert result["scores"]["zig"]["voc_other"]["mean"] == pytest.approx(0.5)
    gain = result["voc_gain"]["zig+up"]
    assert gain["best_member"] == "up"
    assert gain["mean"] == pytest.approx(result["scores"]["zig+up"]["voc_other"]["mean"] - 1.0)
    assert "vs up |" in capsys.readouterr().out
