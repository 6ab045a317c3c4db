"""Outputs of the reporting commands (score, eval, convert, heads train) and the inputs they read: each test checks
what the user sees and that nothing of theirs is lost, replaced or written outside the output they named. The
cases are listed in fault_cases.py (docs/reliability.md's table)."""

import json
from pathlib import Path

import pytest
from conftest import HELDOUT_SHARDS
from fault_cases import case
from test_faults import cli


def _score(args, capsys):
    code = cli("score", HELDOUT_SHARDS, "--encoder", "a=random:tiny", "--boot", "10", "--max-frames", "8", *args)
    return code, capsys.readouterr().err.strip()


@case("score-outputs")
def test_score_outputs_never_replace_what_score_did_not_write(tmp_path, capsys, monkeypatch):
    """--report replaces only an earlier report of reprl score (a rerun keeps the folder's other files), --json only
    an earlier score result; a file, a foreign folder, the shards, a folder for --json or a file for --cache are
    refused in one line before any encoder is loaded; an interrupted report leaves the earlier one whole."""
    import reprl.evaluation.score_report as score_report
    from reprl.encoders import io

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"mine": 1}')
    (mine / "table.md").write_text("my notes")
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "jsondir").mkdir()
    monkeypatch.setattr(io, "random_like", lambda *a, **k: pytest.fail("loaded an encoder before the checks"))
    refused = {"--report mine": ["--report", str(mine)], "--report file": ["--report", str(tmp_path / "file.txt")],
               "--report shards": ["--report", f"{HELDOUT_SHARDS}/sub"],
               "--json folder": ["--json", str(tmp_path / "jsondir")],
               "--json file": ["--json", str(tmp_path / "file.txt")],
               "--json = --report": ["--report", str(tmp_path / "r"), "--json", str(tmp_path / "r")],
               "--cache file": ["--cache", str(tmp_path / "file.txt")]}
    for what, args in refused.items():
        code, err = _score(args, capsys)
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, what
    assert (mine / "results.json").read_text() == '{"mine": 1}' and (mine / "table.md").read_text() == "my notes"
    assert (tmp_path / "file.txt").read_text() == "mine" and not (tmp_path / "r").exists()
    monkeypatch.undo()

    report, cache = tmp_path / "report", tmp_path / "cache"
    assert _score(["--report", str(report), "--json", str(tmp_path / "s.json"), "--cache", str(cache)], capsys)[0] == 0
    (report / "notes.md").write_text("my notes")
    first = (report / "results.json").read_text()
    entry = next(cache.iterdir())
    entry.write_text("")  # a torn cache entry is scored again, with a warning
    code, err = _score(["--report", str(report), "--json", str(tmp_path / "s.json"), "--cache", str(cache),
                        "--title", "again"], capsys)
    assert code == 0 and "cannot be read" in err and json.loads(entry.read_text())["scores"]
    assert json.loads((report / "results.json").read_text())["title"] == "again"
    assert (report / "notes.md").read_text() == "my notes"  # kept across the rerun

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_report, "plot", interrupted)
    assert _score(["--report", str(report), "--title", "cut"], capsys)[0] == 130
    assert json.loads((report / "results.json").read_text())["title"] == "again"  # the earlier report, whole
    assert (report / "notes.md").read_text() == "my notes" and (report / "curves.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "file.txt", "jsondir", "mine", "report", "s.json"]
    assert first  # the first report was written


@case("device-names")
def test_device_is_checked_first_and_auto_is_made_concrete(tmp_path, capsys):
    """`--device` is checked before any work in every command that takes it: a name torch does not know, or a GPU
    the machine does not have, is one line; `auto` (documented) picks what the machine has."""
    import torch

    import reprl
    from reprl.errors import ReprlError
    from reprl.utils.machine import resolve_device

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ntasks: [drawer-open]\n")
    commands = {"score": ["score", HELDOUT_SHARDS, "--encoder", "random:tiny"],
                "embed": ["embed", str(tmp_path / "missing.mp4"), "--encoder", "tiny", "--out", str(tmp_path / "o")],
                "eval": ["eval", "--suite", str(suite), "--encoder", "random:tiny", "--out", str(tmp_path / "e"),
                         "--cache", str(tmp_path / "c")],
                "heads train": ["heads", "train", "--demos", str(tmp_path / "missing.npz"), "--encoder", "tiny",
                                "--out", str(tmp_path / "h")]}
    for name, args in commands.items():
        for bad in ("bogus", "cuda:7" if not torch.cuda.is_available() else "cuda:4096"):
            assert cli(*args, "--device", bad) == 2, name
            err = capsys.readouterr().err.strip()
            assert err.startswith(f"reprl {name.split()[0]}: error: --device ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]  # nothing was written or rendered
    auto = resolve_device("auto")
    assert auto == ("cuda" if torch.cuda.is_available() else auto) and resolve_device("cpu") == "cpu"
    assert reprl.load("random:tiny", device="auto")(torch.zeros(1, 3, 64, 64)).shape[0] == 1
    with pytest.raises(ReprlError, match="not a device"):
        reprl.load("random:tiny", device="gpu0")


@case("out-is-encoder")
def test_out_never_replaces_the_encoder_or_data_read_however_it_is_named(tmp_path, capsys, monkeypatch):
    """An encoder given by name (a folder under $REPRL_MODELS) or as random:PATH is as much an input as a path:
    convert, embed and heads train refuse an --out that is it, even with --overwrite; heads train also refuses its
    demos as --out, and a folder that is not one of its policies."""
    import numpy as np
    from test_faults import tree

    import reprl
    from reprl.encoders.io import save_encoder

    models = tmp_path / "models"
    enc = save_encoder(reprl.load("tiny", image_size=32, embed_dim=8), models / "mine", command="convert")
    monkeypatch.setenv("REPRL_MODELS", str(models))
    before = tree(enc)
    demos = tmp_path / "demos"
    demos.mkdir()
    n = 8
    np.savez(demos / "eps.npz", images=np.zeros((n, 24, 24, 3), np.uint8), actions=np.zeros((n, 4), np.float32),
             proprio=np.zeros((n, 4), np.float32), episode=np.repeat([0, 1], 4), expert=np.ones(n, bool))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    runs = [("convert", "mine", "--out", enc, "--overwrite", "--half"),
            ("convert", f"random:{enc}", "--out", enc, "--overwrite"),
            ("convert", "random:mine", "--out", enc / "inner"),
            ("embed", HELDOUT_SHARDS, "--encoder", "mine", "--out", enc, "--overwrite", "--force-overwrite"),
            ("heads", "train", "--demos", demos / "eps.npz", "--encoder", "mine", "--out", enc, "--overwrite"),
            ("heads", "train", "--demos", demos / "eps.npz", "--encoder", "mine", "--out", demos, "--overwrite"),
            ("heads", "train", "--demos", demos / "eps.npz", "--encoder", "mine", "--out", tmp_path / "notes",
             "--overwrite")]
    for args in runs:
        assert cli(*args) == 2, args
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and ("the input" in err or "not an output of reprl heads train" in err), err
    assert tree(enc) == before and (tmp_path / "notes" / "a.txt").read_text() == "mine"
    assert sorted(p.name for p in demos.iterdir()) == ["eps.npz"]


@case("config-not-object")
def test_a_config_json_that_is_not_an_object_is_one_line(tmp_path, capsys):
    """An encoder or policy folder whose config.json is torn, not JSON, or another kind of JSON value (a list) is a
    one-line error from every command that loads it, and from reprl.load / load_policy."""
    import reprl
    from reprl.errors import ReprlError
    from reprl.heads import load_policy

    for i, text in enumerate(["[]", "{torn", '"text"']):
        folder = tmp_path / f"bad{i}"
        folder.mkdir()
        (folder / "config.json").write_text(text)
        (folder / "model.safetensors").write_bytes(b"")
        assert cli("convert", folder, "--out", tmp_path / f"o{i}") == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "config.json" in err and "Traceback" not in err, err
        with pytest.raises(ReprlError, match="config.json"):
            reprl.load(str(folder))
        with pytest.raises(ReprlError, match="config.json"):
            load_policy(folder)
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir())


@case("eval-outputs")
def test_eval_checks_its_outputs_before_rendering_and_reruns_what_it_cannot_read(tmp_path, capsys, monkeypatch):
    """reprl eval: a suite name that would leave --out, an --out that is a file or holds the user's files, a
    --cache that is a file: one line each, before anything is rendered, and the user's files intact. A torn cell
    or embedding cache is computed again (with a warning), not a traceback."""
    from test_eval import tiny_suite

    import reprl.evaluation.harness as harness
    import reprl.evaluation.report as report

    monkeypatch.setattr(harness, "ensure_task_data", lambda *a, **k: pytest.fail("rendered before the checks"))
    suite = tmp_path / "s.yaml"
    (tmp_path / "file.txt").write_text("mine")
    mine = tmp_path / "mine" / "s"
    mine.mkdir(parents=True)
    (mine / "results.json").write_text('{"mine": 1}')
    legacy = tmp_path / "legacy" / "s"  # eval's results from before it marked its own: taken as eval's
    (legacy / "cells").mkdir(parents=True)
    cases = [("../escaped", ["--out", tmp_path / "o"]), ("s", ["--out", tmp_path / "file.txt"]),
             ("s", ["--out", tmp_path / "mine"]), ("s", ["--out", tmp_path / "o", "--cache", tmp_path / "file.txt"]),
             ("s", ["--out", tmp_path / "legacy", "--cache", tmp_path / "file.txt"])]
    for name, args in cases:
        suite.write_text(f"name: '{name}'\ntasks: [drawer-open]\n")
        assert cli("eval", "--suite", suite, "--encoder", "random:tiny", *args) == 2, name
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
    assert "--cache" in err  # the flag the user gave, not --out
    assert (mine / "results.json").read_text() == '{"mine": 1}' and sorted(p.name for p in mine.iterdir()) == [
        "results.json"]
    assert [p.name for p in legacy.iterdir()] == ["cells"]  # no marker written by a run that failed its checks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "legacy", "mine", "s.yaml"]
    monkeypatch.undo()

    spec, cache = tiny_suite(tmp_path)
    spec.heads, spec.seeds = ["bc"], [0]
    calls = []
    done = {"demos_used": [], "noisy_episodes": 1, "suboptimal": {}, "transitions": 1, "success": 0.5,
            "success_final_step": None, "success_max": 0.5, "evaluations": [], "head_loss": {}, "seconds": 0.0}
    monkeypatch.setattr(harness, "open_suite_envs", lambda *a: None)
    monkeypatch.setattr(harness, "run_cell", lambda *a, **k: calls.append(1) or done)
    monkeypatch.setattr(report, "write_report", lambda result, out: None)
    out = tmp_path / "out"
    harness.run_suite(spec, {"a": "random:tiny"}, out=out, cache=cache, progress=False)
    harness.run_suite(spec, {"a": "random:tiny"}, out=out, cache=cache, progress=False)
    assert len(calls) == 1  # the finished cell is reused
    next((out / "t" / "cells").iterdir()).write_text('{"success": ')
    next((cache / "embeddings").rglob("*.npz")).write_bytes(b"")
    harness.run_suite(spec, {"a": "random:tiny"}, out=out, cache=cache, progress=False)
    assert len(calls) == 2 and json.loads(next((out / "t" / "cells").iterdir()).read_text())["success"] == 0.5


@case("bench-outputs")
def test_bench_checks_counts_and_json_before_running(tmp_path, capsys, monkeypatch):
    """reprl bench: zero counts, an unknown mode, a --cache file, a --json folder or a --json file it did not write
    are one line each before anything is rendered or timed; the user's file is kept. Two corpora with the same
    folder name get their own frame copies."""
    import reprl.bench.data as bench_data

    monkeypatch.setattr(bench_data, "ensure_corpus", lambda cfg: pytest.fail("ran before the checks"))
    (tmp_path / "mine.json").write_text('{"mine": 1}')
    (tmp_path / "jdir").mkdir()
    base = ["bench", "data", "--shards", HELDOUT_SHARDS, "--cache", str(tmp_path / "c")]
    for bad in (["--repeats", "0"], ["--batches", "0"], ["--mode", "bogus"], ["--cache", str(tmp_path / "mine.json")],
                ["--json", str(tmp_path / "jdir")], ["--json", str(tmp_path / "mine.json")],
                ["--json", str(tmp_path / "mine.json" / "x.json")]):
        assert cli(*base, *bad) == 2, bad
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for bad in (["train", "--warmup", "0"], ["train", "--steps", "0"], ["eval", "--env-workers", "-1"],
                ["eval", "--task", "foo"], ["eval", "--camera", "cornr"]):
        assert cli("bench", *bad) == 2, bad
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert (tmp_path / "mine.json").read_text() == '{"mine": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jdir", "mine.json"]
    assert bench_data.frames_dir("c", "a/shards") != bench_data.frames_dir("c", "b/shards")
    monkeypatch.undo()
    for shards in (tmp_path / "missing", tmp_path / "mine.json", Path(HELDOUT_SHARDS) / "index.json"):
        assert cli("bench", "data", "--shards", shards, "--cache", tmp_path / "c") == 2, shards
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "shard folder" in err, err
    for bad in (["--ingest", "0"], ["--frame-index", "1,40"]):
        assert cli("bench", "data", "--cache", tmp_path / "c", *bad) == 2, bad
        assert "lengths of at least 2 frames" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing was written into the cache


@case("render-vs-shards")
def test_render_and_shards_replace_only_their_own_outputs_and_render_checks_its_numbers(tmp_path, capsys):
    """`reprl render --overwrite` never replaces a `reprl shards` output (and the other way round), and render's
    numbers (seed, horizon, quality, noise) are one line each before any environment is built."""
    import shutil

    from conftest import TRAIN_SHARDS, VIDEO
    from test_faults import tree

    rendered = tmp_path / "rendered"
    shutil.copytree(TRAIN_SHARDS, rendered)  # a reprl render output
    assert cli("shards", VIDEO, "--out", tmp_path / "ingested") == 0
    before = {p: tree(p) for p in (rendered, tmp_path / "ingested")}
    capsys.readouterr()
    assert cli("shards", VIDEO, "--out", rendered, "--overwrite") == 2
    assert "not an output of reprl shards" in capsys.readouterr().err
    render = ["render", "--tasks", "reach", "--episodes", "1", "--size", "16", "--max-steps", "3"]
    assert cli(*render, "--out", tmp_path / "ingested", "--overwrite") == 2
    assert "not an output of reprl render" in capsys.readouterr().err
    assert {p: tree(p) for p in before} == before
    for bad in (["--seed", "-1"], ["--max-steps", "0"], ["--quality", "500"], ["--noise", "nan"]):
        assert cli(*render, "--out", tmp_path / "new", *bad) == 2, bad
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "new").exists()


@case("api-inputs")
def test_python_api_refuses_what_it_would_get_wrong(tmp_path, monkeypatch):
    """reprl.load, the rewards, the GoalReward wrapper and load_policy: inputs that gave a silent wrong answer (NaN
    images, a [K, D] goal paired row by row, settings ignored for a trained encoder, the oldest of stacked frames
    scored) or a raw torch error now give a ReprlError or the right answer."""
    import gymnasium as gym
    import numpy as np
    import torch
    from PIL import Image

    import reprl
    from reprl.errors import ReprlError
    from reprl.heads import load_policy
    from reprl.heads.policy import HeadConfig, Policy, PolicyHead
    from reprl.rewards import bump_rate, goal_from_frame, resolve_goal, values, voc
    from reprl.wrappers import GoalReward

    enc = reprl.load("tiny", image_size=32, embed_dim=8)
    bad_inputs = [lambda: enc(torch.full((3, 32, 32), float("nan"))), lambda: enc(np.zeros((0, 0, 3), np.uint8)),
                  lambda: enc(Image.fromarray(np.zeros((32, 32), np.float32))),
                  lambda: values(torch.zeros(5, 8), torch.zeros(5, 8), enc.similarity),
                  lambda: voc([1.0, float("nan"), 3.0]), lambda: bump_rate([1.0, float("nan"), 3.0]),
                  lambda: goal_from_frame(torch.zeros(4, 8), 1.5),
                  lambda: resolve_goal(enc, embedding=np.full(8, np.nan, np.float32))]
    for bad in bad_inputs:
        with pytest.raises(ReprlError):
            bad()
    assert resolve_goal(enc, embedding=np.zeros(8, np.float32)).shape == (8,)  # numpy is taken as is
    saved = tmp_path / "enc"
    from reprl.encoders.io import save_encoder

    save_encoder(enc, saved)
    with pytest.raises(ReprlError, match="load it without them"):
        reprl.load(str(saved), embed_dim=4)
    with pytest.raises(ReprlError, match="unexpected keyword"):
        reprl.load("tiny", foo=1)

    class Frames(gym.Env):  # observations are images; the newest of a stack must be the one scored
        observation_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
        action_space = gym.spaces.Discrete(2)
        t = 0

        def reset(self, *, seed=None, options=None):
            self.t = 0
            return np.zeros((32, 32, 3), np.uint8), {}

        def step(self, action):
            self.t += 1
            return np.full((32, 32, 3), 60 * self.t, np.uint8), 0.0, False, False, {}

    goal = np.full((32, 32, 3), 255, np.uint8)
    stacked = GoalReward(gym.wrappers.FrameStackObservation(Frames(), 3), enc, goal=goal)
    single = GoalReward(Frames(), enc, goal=goal)
    stacked.reset(seed=0)
    single.reset(seed=0)
    for _ in range(3):
        assert stacked.step(0)[1] == pytest.approx(single.step(0)[1], abs=1e-5)
    with pytest.raises(ReprlError, match="call reset"):
        GoalReward(Frames(), enc).step(0)

    head = PolicyHead(8, 4, 4, HeadConfig(hidden=(8,)))
    Policy(enc, head, "tiny").save(tmp_path / "pol", copy_encoder=True)
    pol = load_policy(tmp_path / "pol", device="auto")
    img = np.zeros((32, 32, 3), np.uint8)
    assert pol.act(img, np.zeros(4)).shape == (4,) and pol.act(img[..., 0], np.zeros(4)).shape == (4,)
    for bad in (lambda: pol.act(img, np.zeros(3)), lambda: pol.act(img, np.full(4, np.nan)),
                lambda: pol.select_action(img)):
        with pytest.raises(ReprlError):
            bad()
    (tmp_path / "pol" / "model.safetensors").write_bytes(b"torn")
    with pytest.raises(ReprlError, match="does not hold this policy's weights"):
        load_policy(tmp_path / "pol")
    monkeypatch.chdir(tmp_path)  # a policy saved with a relative encoder path loads from any folder
    Policy(enc, head, "enc").save(tmp_path / "pol2")
    monkeypatch.chdir("/")
    assert load_policy(tmp_path / "pol2").encoder_source == str(saved)


def test_bench_data_renders_another_corpus_for_other_render_settings(tmp_path, monkeypatch):
    """reprl bench data: --render-tasks or --render-episodes changed between runs renders a new corpus instead of
    reusing the one rendered for the earlier settings."""
    import reprl.bench.data as bench_data
    import reprl.sim.corpus as corpus
    from reprl.options import DataBenchConfig

    rendered = []

    def fake_render(cfg, out, progress):
        rendered.append((cfg.tasks, cfg.episodes))
        out.mkdir(parents=True)
        (out / "index.json").write_text("{}")

    monkeypatch.setattr(corpus, "render_corpus", fake_render)
    base = DataBenchConfig(cache=str(tmp_path), render_tasks="drawer-open", render_episodes=2)
    first = bench_data.ensure_corpus(base)
    assert bench_data.ensure_corpus(base) == first and len(rendered) == 1  # the same settings reuse it
    more = bench_data.ensure_corpus(DataBenchConfig(cache=str(tmp_path), render_tasks="drawer-open",
                                                    render_episodes=3))
    other = bench_data.ensure_corpus(DataBenchConfig(cache=str(tmp_path), render_tasks="button-press-topdown",
                                                     render_episodes=2))
    assert len({first, more, other}) == 3 and rendered[1:] == [("drawer-open", 3), ("button-press-topdown", 2)]
