import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import HELDOUT_SHARDS

from reprl.errors import ReprlError
from reprl.evaluation import harness
from reprl.evaluation import suite as suite_mod
from reprl.evaluation.data import task_dir, task_episodes
from reprl.evaluation.report import aggregate
from reprl.evaluation.rollout import open_suite_envs, rollout, summarize
from reprl.evaluation.suite import SuiteSpec, load_suite
from reprl.heads import load_policy, registry
from reprl.heads.registry import head_revision
from reprl.sim.vector import SerialEnvs
from reprl.typed_config import from_dict, to_dict

SUITES = sorted((Path(__file__).resolve().parents[1] / "eval" / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_suite_specs_parse(path):
    spec = load_suite(path)
    assert spec.name == path.stem and spec.tasks and spec.rollouts >= 1


def test_bad_suite_specs(tmp_path):
    with pytest.raises(ReprlError, match="unknown MetaWorld task"):
        SuiteSpec(tasks=["drawer-opn"])
    with pytest.raises(ReprlError, match="unknown head"):
        SuiteSpec(heads=["sac"])
    with pytest.raises(ReprlError, match="expert episodes"):
        SuiteSpec(demos=[50])
    (tmp_path / "s.yaml").write_text("tasks: [hammer]\nrollout: 3\n")
    with pytest.raises(ReprlError, match="unknown config key 'rollout'.*rollouts"):
        load_suite(tmp_path / "s.yaml")


def test_parallel_envs_default_follows_free_memory_and_a_suite_value_wins(monkeypatch):
    import reprl.evaluation.rollout as rollout

    opened = []
    monkeypatch.setattr(rollout, "open_envs", lambda task, camera, size, n, workers: opened.append(n))
    for free, expected in ((16e9, 20), (8e9, 20), (7.9e9, 10), (None, 10)):  # None: not known (not Linux)
        monkeypatch.setattr(rollout, "available_memory", lambda free=free: free)
        rollout.open_suite_envs(SuiteSpec(rollouts=50), "hammer")
        assert opened[-1] == expected
    rollout.open_suite_envs(SuiteSpec(rollouts=50, parallel_envs=4), "hammer")  # the suite's own value
    rollout.open_suite_envs(SuiteSpec(rollouts=5), "hammer")  # never more environments than rollouts
    assert opened[-2:] == [4, 5]
    with pytest.raises(ReprlError, match="parallel_envs and demos must be at least 1"):
        SuiteSpec(parallel_envs=0)


class FakeEnv:
    """Succeeds at step `hit`, and (if `leave`) leaves the success region two steps later."""

    max_steps = 500

    def __init__(self, hit, leave):
        self.hit, self.leave, self.t = hit, leave, 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(39, np.float32)

    def render(self):
        return [np.zeros((8, 8, 3), np.uint8)]

    def step(self, action):
        self.t += 1
        ok = self.t >= self.hit and not (self.leave and self.t >= self.hit + 2)
        return np.zeros(39, np.float32), 0.0, ok, False

    def close(self):
        pass


def test_rollout_counts_success_at_any_step_and_records_the_final_step():
    pool = SerialEnvs([FakeEnv(3, leave=True), FakeEnv(4, leave=False), FakeEnv(99, leave=False)])
    calls = []
    res = rollout(pool, lambda f, p: calls.append(f.shape) or np.zeros((len(f), 4)), [7, 8, 9], horizon=10)
    assert [(r.success_any, r.success_final, r.first_success) for r in res] == [
        (True, False, 3), (True, True, 4), (False, False, None)]
    assert calls[0] == (3, 8, 8, 3) and len(calls) == 10  # one batched call per step for all envs
    s = summarize(res)
    assert s["success"] == pytest.approx(2 / 3) and s["success_final"] == pytest.approx(1 / 3)


def test_bootstrap_intervals_over_seeds_and_rollouts():
    def cell(seed, hits, task="a"):
        ev = {"first_success": [3 if h else None for h in hits], "final": list(hits)}
        return {"demos": 1, "encoder": "e", "head": "h", "task": task, "seed": seed, "success": float(np.mean(hits)),
                "success_final_step": float(np.mean(hits)), "evaluations": [ev]}

    sure = aggregate([cell(0, [1] * 10), cell(1, [1] * 10)], "success")[(1, "e", "h", "a")]
    assert sure["lo"] == sure["hi"] == sure["mean"] == 1.0
    few = aggregate([cell(0, [1, 0] * 2), cell(1, [1, 0, 0, 0])], "success")[(1, "e", "h", "a")]
    many = aggregate([cell(0, [1, 0] * 50), cell(1, [1, 0, 0, 0] * 25)], "success")[(1, "e", "h", "a")]
    assert few["mean"] == many["mean"] == pytest.approx(0.375)
    assert few["lo"] < many["lo"] < 0.375 < many["hi"] < few["hi"]  # more rollouts: a narrower interval
    # seeds that disagree widen the interval even with many rollouts each
    split = aggregate([cell(0, [1] * 100), cell(1, [0] * 100)], "success_final_step")[(1, "e", "h", "a")]
    assert split["lo"] == 0.0 and split["hi"] == 1.0
    # 'mean' over tasks: per seed, then resampled; a cell without per-rollout records counts as its rate
    cells = [cell(0, [1] * 4), cell(0, [0] * 4, "b"), {**cell(1, [1] * 4), "evaluations": []}, cell(1, [0] * 4, "b")]
    mean = aggregate(cells, "success")[(1, "e", "h", "mean")]
    assert mean["mean"] == mean["lo"] == mean["hi"] == 0.5
    # a row's interval is the same whatever else is in the table (and in whatever order the cells come)
    mixed = [cell(0, [1, 0, 0] * 10), cell(1, [1, 1, 0] * 10), cell(2, [0, 0, 0, 1] * 5)]
    alone = aggregate(mixed, "success")[(1, "e", "h", "a")]
    other = [{**c, "head": "g"} for c in [cell(0, [1] * 30), cell(1, [0] * 30)]]
    crowded = aggregate(other + mixed[::-1] + [cell(0, [0] * 8, "b")], "success")[(1, "e", "h", "a")]
    assert alone == crowded and alone["lo"] < alone["mean"] < alone["hi"]


def test_plot_pairs_each_encoders_heads():
    from reprl.evaluation.report import bar_style

    a, b, c = bar_style(0, 0, 3), bar_style(0, 2, 3), bar_style(1, 0, 3)
    assert a["hatch"] != b["hatch"] and a["hatch"] == c["hatch"]
    assert a["color"][2] > a["color"][0] and b["color"][2] > b["color"][0]  # one (blue) family per encoder
    assert c["color"][0] > c["color"][2]  # the next encoder: oranges


def test_aggregate_means_over_seeds_and_tasks():
    cells = [{"demos": 5, "encoder": "e", "head": "bc", "task": t, "seed": s, "success": v}
             for t, s, v in [("a", 0, 0.2), ("a", 1, 0.4), ("b", 0, 1.0), ("b", 1, 0.6)]]
    agg = aggregate(cells, "success")
    assert agg[(5, "e", "bc", "a")]["mean"] == pytest.approx(0.3)
    assert agg[(5, "e", "bc", "mean")]["mean"] == pytest.approx(0.55)
    assert agg[(5, "e", "bc", "mean")]["std"] == pytest.approx(0.05)


def test_results_from_an_older_renderer_are_pointed_out(tmp_path):
    from reprl.sim.corpus import older_render
    from reprl.sim.metaworld import RENDER_REVISION

    assert RENDER_REVISION >= 1
    folder = tmp_path / "mw"
    folder.mkdir()
    for index, older in [({"source": "metaworld"}, True),  # written before index.json recorded the revision
                         ({"source": "metaworld", "content_sha256": "ab"}, RENDER_REVISION > 1),  # digests: rev. 1
                         ({"source": "metaworld", "render_revision": RENDER_REVISION - 1}, True),
                         ({"source": "metaworld", "render_revision": RENDER_REVISION}, False),
                         ({"source": "ingest"}, False)]:  # not rendered by reprl: no revision to compare
        (folder / "index.json").write_text(json.dumps(index))
        note = older_render(folder)
        assert (note is not None) == older, index
        assert note is None or (str(folder) in note and f"render revision {RENDER_REVISION}" in note)
    assert older_render(tmp_path / "missing") is None and older_render("https://host/shard-{0..3}.tar") is None
    current = tmp_path / "current"  # a ::-joined list: each folder is checked, the note names the older one
    current.mkdir()
    (current / "index.json").write_text(json.dumps({"source": "metaworld", "render_revision": RENDER_REVISION}))
    (folder / "index.json").write_text(json.dumps({"source": "metaworld", "render_revision": RENDER_REVISION - 1}))
    note = older_render(f"{current}::{folder}")
    assert note is not None and str(folder) in note and str(current) not in note.replace(str(folder), "")
    assert older_render(f"{current}::{current}") is None
    cells = [{"render_revision": RENDER_REVISION}, {}, {"render_revision": RENDER_REVISION - 1}, {"machine": {}}]
    assert harness.older_cells(cells) == 2 + (RENDER_REVISION > 1) and harness.older_cells(cells[:1]) == 0


def tiny_suite(tmp_path) -> tuple[SuiteSpec, Path]:
    spec = from_dict(SuiteSpec, {"name": "t", "tasks": ["drawer-open"], "demos": [2], "seeds": [0, 1],
                                 "heads": ["bc", "recoil"], "rollouts": 2, "horizon": 3, "parallel_envs": 2,
                                 "env_workers": 0,
                                 "data": {"expert_episodes": 2, "noisy_episodes": 1, "frame_size": 64},
                                 "head": {"steps": 20, "hidden": [16]}})
    cache = tmp_path / "cache"
    # the committed test corpus: drawer-open, 2 expert + 1 noisy episode with every step's frame
    shutil.copytree(HELDOUT_SHARDS, task_dir(spec, cache, "drawer-open"))
    return spec, cache


@pytest.mark.slow
def test_eval_resumes_an_interrupted_run_and_reuses_finished_cells(tmp_path, monkeypatch):
    spec, cache = tiny_suite(tmp_path)
    encoders = {"tiny": "random:tiny"}
    real = harness.run_cell
    calls = []

    def interrupted(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[5:])
        return real(*args, **kwargs)

    monkeypatch.setattr(harness, "run_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        harness.run_suite(spec, encoders, out=tmp_path / "out", cache=cache)
    assert len(list((tmp_path / "out" / "t" / "cells").glob("*.json"))) == 2
    monkeypatch.setattr(harness, "run_cell", lambda *a, **k: calls.append(a[5:]) or real(*a, **k))
    result = harness.run_suite(spec, encoders, out=tmp_path / "out", cache=cache)
    assert len(calls) == 4, "the two finished cells were reused, the other two computed"
    assert len(result["cells"]) == 4 and {c["head"] for c in result["cells"]} == {"bc", "recoil"}
    assert result["data"] == {"drawer-open": str(task_dir(spec, cache, "drawer-open"))}  # what `reprl score` reads
    cell = json.loads((tmp_path / "out" / "t" / "cells" / "tiny__drawer-open__d2__s0__bc.json").read_text())
    assert cell["noisy_episodes"] == 1 and len(cell["demos_used"]) == 2 and cell["evaluations"][0]["rollouts"] == 2
    assert cell["machine"]["cores"] >= 1 and cell["machine"]["versions"]["torch"]  # what the cell was measured on
    assert cell["render_revision"] == harness.RENDER_REVISION
    table = (tmp_path / "out" / "t" / "table.md").read_text()
    assert "| tiny | bc |" in table and "| tiny | recoil |" in table
    # every trained head is a policy folder that loads with its encoder and acts like the harness did
    policy = load_policy(tmp_path / "out" / "t" / "policies" / "tiny__drawer-open__d2__s1__recoil")
    assert policy.kind == "recoil" and policy.encoder_source == "random:tiny"
    frame = np.zeros((64, 64, 3), np.uint8)
    assert policy.select_action({"observation.image": frame, "observation.state": np.zeros(4)}).shape == (4,)
    assert (tmp_path / "out" / "t" / "success.png").stat().st_size > 1000
    # a changed suite setting invalidates cells instead of silently reusing them
    spec.horizon = 4
    calls.clear()
    harness.run_suite(spec, encoders, out=tmp_path / "out", cache=cache)
    assert len(calls) == 4
    # a head added to the suite runs only its own cells; a cell keyed the way cells were before keys were per
    # head is still reused while the suite is unchanged
    calls.clear()
    spec.heads = ["bc", "recoil", "trail"]
    harness.run_suite(spec, encoders, out=tmp_path / "out", cache=cache)
    assert sorted(c[-1] for c in calls) == ["trail", "trail"]
    bc = tmp_path / "out" / "t" / "cells" / "tiny__drawer-open__d2__s0__bc.json"
    bc.write_text(json.dumps({**json.loads(bc.read_text()), "suite_key": spec.cell_key()}))
    calls.clear()
    harness.run_suite(spec, encoders, out=tmp_path / "out", cache=cache)
    assert calls == [] and json.loads(bc.read_text())["suite_key"] == spec.cell_key("bc")  # and re-keyed per head
    # a head whose training changed (its revision went up) retrains its cells, even those keyed the old way
    rc = tmp_path / "out" / "t" / "cells" / "tiny__drawer-open__d2__s0__recoil.json"
    assert json.loads(rc.read_text())["head_revision"] == head_revision("recoil") == 1
    rc.write_text(json.dumps({**json.loads(rc.read_text()), "suite_key": spec.cell_key()}))
    calls.clear()
    harness.run_suite(spec, encoders, out=tmp_path / "out", cache=cache)
    assert sorted(c[-1] for c in calls) == ["recoil"]


def test_cell_keys_follow_only_their_own_heads_settings():
    base = {"tasks": ["drawer-open"], "heads": ["bc", "trail"]}
    spec = from_dict(SuiteSpec, base)
    more = from_dict(SuiteSpec, {**base, "heads": ["bc", "trail", "iql"]})
    assert more.cell_key("bc") == spec.cell_key("bc") and more.cell_key("trail") == spec.cell_key("trail")
    assert more.cell_key() != spec.cell_key()  # the key of older cells covered every head the suite ran
    tuned = from_dict(SuiteSpec, {**base, "trail": {"shuffle": 0.2}})
    assert tuned.cell_key("trail") != spec.cell_key("trail") and tuned.cell_key("bc") == spec.cell_key("bc")
    rwr = from_dict(SuiteSpec, {**base, "heads": ["rwr_chi2"], "rwr": {"tau": 0.5}})
    assert rwr.cell_key("rwr_chi2") != spec.cell_key("rwr_chi2") and rwr.cell_key("bc") == spec.cell_key("bc")
    assert from_dict(SuiteSpec, {**base, "horizon": 7}).cell_key("bc") != spec.cell_key("bc")
    assert from_dict(SuiteSpec, {**base, "env_workers": 0}).cell_key("bc") == spec.cell_key("bc")


def test_a_later_head_setting_keeps_older_cells_keys_at_its_earlier_value(monkeypatch):
    """fdvl.random_actions came after fdvl's results: at 0 (how those cells trained) it is not in the key, so they
    stay current (the committed-results test below checks them); any other value gives new cells."""
    base = {"tasks": ["drawer-open"], "heads": ["bc", "fdvl"]}
    spec = from_dict(SuiteSpec, base)
    assert from_dict(SuiteSpec, {**base, "fdvl": {"random_actions": 0}}).cell_key("fdvl") == spec.cell_key("fdvl")
    changed = from_dict(SuiteSpec, {**base, "fdvl": {"random_actions": 1}})
    assert changed.cell_key("fdvl") != spec.cell_key("fdvl") and changed.cell_key("bc") == spec.cell_key("bc")
    monkeypatch.setitem(suite_mod.LATER_HEAD_SETTINGS, "fdvl", {})  # without the entry, the setting is keyed
    unkeyed = spec.cell_key("fdvl")
    monkeypatch.setitem(suite_mod.LATER_HEAD_SETTINGS, "fdvl", {"random_actions": 0})
    assert unkeyed != spec.cell_key("fdvl")


def test_a_heads_revision_changes_only_its_own_cell_keys(monkeypatch):
    spec = from_dict(SuiteSpec, {"tasks": ["drawer-open"], "heads": ["bc", "recoil", "trail"]})
    before = {h: spec.cell_key(h) for h in ("bc", "recoil", "trail")}
    monkeypatch.setitem(registry.REVISIONS, "trail", 1)
    after = {h: spec.cell_key(h) for h in ("bc", "recoil", "trail")}
    assert after["trail"] != before["trail"] and after["bc"] == before["bc"] and after["recoil"] == before["recoil"]
    monkeypatch.setitem(registry.REVISIONS, "trail", 0)  # revision 0 is the key heads had before revisions
    assert spec.cell_key("trail") == before["trail"]
    monkeypatch.setitem(registry.REVISIONS, "recoil", 0)
    assert spec.cell_key("recoil") != before["recoil"]


def test_encoder_labels():
    assert harness.parse_encoders(["vip=a/b", "random:a/b"]) == {"vip": "a/b", "random:a/b": "random:a/b"}
    with pytest.raises(ReprlError, match="given twice"):
        harness.parse_encoders(["x=a", "x=b"])
    assert yaml  # the suites are YAML


def test_eval_command_names_the_rendered_data_and_how_to_score_its_reward(tmp_path, monkeypatch, capsys):
    from reprl.cli import main

    def fake_run(spec, encoders, *, out, **kwargs):
        (Path(out) / spec.name).mkdir(parents=True)
        (Path(out) / spec.name / "table.md").write_text("# t\n\n## 3 demos\n\n| encoder | head |\n")
        return {"cells": [], "data": {"hammer": "c/data/hammer-k1", "drawer-open": "c/data/drawer-open-k1"}}

    monkeypatch.setattr(harness, "run_suite", fake_run)
    with pytest.raises(SystemExit) as e:
        main(["eval", "--suite", "eval/suites/demo.yaml", "--encoder", "vip=random:tiny", "--out", str(tmp_path)])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "rendered data: c/data/drawer-open-k1, c/data/hammer-k1" in out
    assert "reprl score c/data/drawer-open-k1 --encoder vip=random:tiny\n" in out  # random init: no second copy
    # a trained encoder is scored beside its random init, under a label the command does not refuse as repeated
    cases = ((["random=random:tiny", "trained=tiny"], "--encoder trained=tiny --encoder random=random:tiny"),
             (["random=tiny"], "--encoder random=tiny --encoder random_init=random:tiny"))
    for i, (labels, expected) in enumerate(cases):
        main_args = ["eval", "--suite", "eval/suites/demo.yaml", "--out", str(tmp_path / f"run{i}")]
        with pytest.raises(SystemExit):
            main(main_args + [arg for lab in labels for arg in ("--encoder", lab)])
        assert expected + "\n" in capsys.readouterr().out


def test_committed_results_stay_current_unless_their_heads_training_changed():
    """Every result cell under eval/results is reused by its suite as committed (a change to cell keys would make
    `reprl eval` silently retrain them all), except cells an older revision of their head trained."""
    root = Path(__file__).resolve().parents[1] / "eval"
    checked = 0
    for suite_file in sorted((root / "suites").glob("*.yaml")):
        spec = load_suite(suite_file)
        for path in sorted((root / "results" / spec.name / "cells").glob("*.json")):
            cell = json.loads(path.read_text())
            if cell["head"] not in spec.heads:
                continue
            reused = cell["suite_key"] == spec.cell_key(cell["head"]) or (
                cell["suite_key"] == spec.cell_key() and not head_revision(cell["head"]))
            stale = cell.get("head_revision", 0) < head_revision(cell["head"])
            assert reused != stale, f"{path.relative_to(root)}: {'stale but reused' if reused else 'not reused'}"
            checked += 1
    assert checked > 300


def test_a_suite_extends_another_and_keeps_its_own_name(tmp_path):
    base = Path(__file__).resolve().parents[1] / "eval" / "suites" / "demo.yaml"
    (tmp_path / "more.yaml").write_text(f"extends: {base}\nrollouts: 30\n")
    spec, parent = load_suite(tmp_path / "more.yaml"), load_suite(base)
    assert (spec.name, spec.rollouts, spec.tasks, spec.head) == ("more", 30, parent.tasks, parent.head)
    (tmp_path / "named.yaml").write_text(f"extends: {base}\nname: mine\n")
    assert load_suite(tmp_path / "named.yaml").name == "mine"


def test_a_bf16_suite_keeps_its_cells_and_embeddings_apart_from_float32s(tmp_path, monkeypatch):
    """precision: bf16 embeds the demos under bfloat16 autocast into a file of its own and keys its cells apart;
    float32 (the default) keeps the names and keys it had before the setting existed."""
    spec, cache = tiny_suite(tmp_path)
    spec.heads, spec.seeds = ["bc"], [0]
    # float32's keys staying as they were is what test_committed_results_stay_current_... checks on 300 cells
    half = from_dict(SuiteSpec, {**to_dict(spec), "precision": "bf16-mixed"})
    assert half.precision == "bf16" and half.cell_key("bc") != spec.cell_key("bc")
    with pytest.raises(ReprlError, match="precision must be 32, bf16 or 16"):
        from_dict(SuiteSpec, {**to_dict(spec), "precision": "8"})
    done = {"demos_used": [], "noisy_episodes": 1, "suboptimal": {}, "transitions": 1, "success": 0.5,
            "success_final_step": None, "success_max": 0.5, "evaluations": [], "head_loss": {}, "seconds": 0.0}
    seen = []
    monkeypatch.setattr(harness, "open_suite_envs", lambda *a: None)
    monkeypatch.setattr(harness, "run_cell", lambda s, enc, pool, episodes, *a, **k: seen.append(episodes) or done)
    for suite in (spec, half):
        harness.run_suite(suite, {"tiny": "random:tiny"}, out=tmp_path / "out", cache=cache, progress=False)
    files = sorted(p.name for p in (cache / "embeddings").rglob("*.npz"))
    assert files == [f"drawer-open-{spec.data_key()}-bf16.npz", f"drawer-open-{spec.data_key()}.npz"]
    full, low = (np.concatenate([e["emb"] for e in eps]) for eps in seen)
    assert low.dtype == full.dtype == np.float32 and not np.array_equal(low, full)
    assert np.abs(low - full).max() < 0.05 * np.abs(full).max()  # bfloat16 autocast: close, not equal
    # the float32 cell is not reused for bf16: it is trained again and its file now carries bf16's key
    cells = [json.loads(p.read_text()) for p in (tmp_path / "out" / "t" / "cells").glob("*.json")]
    assert len(seen) == 2 and [c["suite_key"] for c in cells] == [half.cell_key("bc")]
    # float16 has no CPU kernels: refused in one line before anything is rendered
    fresh = tmp_path / "fresh"
    with pytest.raises(ReprlError, match="needs a CUDA device"):
        harness.run_suite(from_dict(SuiteSpec, {**to_dict(spec), "precision": "16"}), {"tiny": "random:tiny"},
                          out=tmp_path / "out16", cache=fresh, progress=False)
    assert not task_dir(spec, fresh, "drawer-open").exists()
    # compile: its cells apart from uncompiled ones, whose key stays as it was; no C++ compiler: refused before
    # anything is rendered
    fast = from_dict(SuiteSpec, {**to_dict(spec), "compile": True})
    assert fast.cell_key("bc") != spec.cell_key("bc")
    assert from_dict(SuiteSpec, {**to_dict(spec), "compile": False}).cell_key("bc") == spec.cell_key("bc")
    from reprl.encoders import compiled

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    with pytest.raises(ReprlError, match="compile needs a C"):
        harness.run_suite(fast, {"tiny": "random:tiny"}, out=tmp_path / "outc", cache=fresh, progress=False)
    assert not task_dir(spec, fresh, "drawer-open").exists()
    # unquoted in YAML, `precision: 32` is float32
    (tmp_path / "s.yaml").write_text("tasks: [drawer-open]\nprecision: 32\n")
    assert load_suite(tmp_path / "s.yaml").precision == "32"


def test_a_bf16_cell_rolls_out_and_saves_its_policy_in_bf16(tmp_path, monkeypatch):
    """run_cell hands the suite's precision and compile to the Policy it rolls out, and the saved policy folder
    keeps the precision."""
    spec, cache = tiny_suite(tmp_path)
    spec.precision, spec.rollouts, spec.compile = "bf16", 1, True
    made = []

    class Spy(harness.Policy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append((self.precision, self._compiled is not None))

    monkeypatch.setattr(harness, "Policy", Spy)
    import reprl

    encoder = reprl.load("random:tiny")
    episodes = task_episodes(spec, cache, "drawer-open", encoder, "fp")
    pool = open_suite_envs(spec, "drawer-open")
    try:
        cell = harness.run_cell(spec, encoder, pool, episodes, 2, 0, "bc", policy_dir=tmp_path / "policy",
                                source="random:tiny")
    finally:
        pool.close()
    assert made == [("bf16", True)] and cell["evaluations"][0]["rollouts"] == 1
    assert load_policy(tmp_path / "policy").precision == "bf16"


def test_a_second_encoder_keeps_the_first_in_the_tables(tmp_path, monkeypatch):
    """Evaluating one more encoder into the same results folder adds its rows: the earlier encoder's current cells
    stay in results.json and table.md (they were dropped from both before); cells a changed suite no longer
    matches are left out."""
    spec, cache = tiny_suite(tmp_path)
    spec.heads, spec.seeds = ["bc"], [0]
    done = {"demos_used": [], "noisy_episodes": 1, "suboptimal": {}, "transitions": 1, "success": 0.5,
            "success_final_step": None, "success_max": 0.5, "evaluations": [], "head_loss": {}, "seconds": 0.0}
    calls = []
    monkeypatch.setattr(harness, "open_suite_envs", lambda *a: None)
    monkeypatch.setattr(harness, "run_cell", lambda *a, **k: calls.append(a[1]) or done)
    out = tmp_path / "out"
    harness.run_suite(spec, {"first": "random:tiny"}, out=out, cache=cache, progress=False)
    result = harness.run_suite(spec, {"second": "random:tiny"}, out=out, cache=cache, progress=False)
    assert len(calls) == 2, "the first encoder's cell is not run again"
    assert list(result["encoders"]) == ["first", "second"] and [c["encoder"] for c in result["cells"]] == [
        "first", "second"]
    saved = json.loads((out / "t" / "results.json").read_text())
    assert list(saved["encoders"]) == ["first", "second"] and len(saved["cells"]) == 2
    table = (out / "t" / "table.md").read_text()
    assert "| first | bc |" in table and "| second | bc |" in table
    # the previous order is kept when the first encoder is evaluated again
    result = harness.run_suite(spec, {"first": "random:tiny"}, out=out, cache=cache, progress=False)
    assert list(result["encoders"]) == ["first", "second"] and len(calls) == 2
    # a changed setting makes the first encoder's cell stale: it is not in the new tables
    spec.horizon = 4
    result = harness.run_suite(spec, {"second": "random:tiny"}, out=out, cache=cache, progress=False)
    assert list(result["encoders"]) == ["second"] and len(result["cells"]) == 1 and len(calls) == 3
    assert "| first |" not in (out / "t" / "table.md").read_text()


def test_outcomes_take_the_last_evaluation_or_the_best_and_the_final_flags_as_recorded():
    from reprl.evaluation.report import outcomes

    def ev(hits, final):
        return {"success": float(np.mean(hits)), "first_success": [3 if h else None for h in hits], "final": final}

    cell = {"success": 0.4, "evaluations": [ev([1, 0, 0, 0, 0], [0] * 5), ev([1, 1, 1, 0, 0], [1, 0, 0, 0, 0]),
                                            ev([1, 1, 0, 0, 0], [1, 1, 1, 1, 0])]}
    assert outcomes(cell, "success").tolist() == [1, 1, 0, 0, 0]  # the last evaluation
    assert outcomes(cell, "success_max").tolist() == [1, 1, 1, 0, 0]  # the best one (0.6)
    assert outcomes(cell, "success_final_step").tolist() == [1, 1, 1, 1, 0]  # the last one's final flags
    assert outcomes({"success": 0.25, "evaluations": []}, "success").tolist() == [0.25]


def test_report_table_prints_percentages_with_their_interval_per_task_and_mean():
    from reprl.evaluation.report import _table

    ci = {"mean": 0.5, "lo": 0.4, "hi": 0.6}
    agg = {(1, "e", "h", "a"): ci, (1, "e", "h", "mean"): ci}
    assert _table(agg, 1, ["e"], ["h"], ["a"]) == ["| encoder | head | a | mean |", "| --- | --- | --- | --- |",
                                                   "| e | h | 50 [40, 60] | 50 [40, 60] |"]
    assert _table(agg, 1, ["e"], ["h", "g"], ["a"])[-1] == "| e | g | - | - |"  # a head with no cells


def test_suite_data_renders_its_episode_mix_with_the_suites_settings(tmp_path, monkeypatch):
    """data: 4 expert, 15 noisy, 2 random and 1 early-stopped episode: 22 in all, rendered as fractions 15/22,
    2/22 and 1/22 of 22 episodes, which corpus_jobs turns back into exactly 15 noisy (15/22 * 22 is
    14.999999999999998 in floating point: rounded, not floored), 2 random, 1 early and 4 expert episodes, with
    the action noise 0.3 only on the noisy ones."""
    import reprl.sim.corpus as corpus
    from reprl.evaluation.data import ensure_task_data

    spec = from_dict(SuiteSpec, {"name": "t", "tasks": ["drawer-open"], "demos": [2], "seeds": [0], "heads": ["bc"],
                                 "data": {"expert_episodes": 4, "noisy_episodes": 15, "random_episodes": 2,
                                          "early_stopped_episodes": 1, "noise": 0.3, "early_stop_steps": 12,
                                          "stop_after_success": 7, "seed": 5, "frame_size": 64, "camera": "topview"}})
    seen = []
    monkeypatch.setattr(corpus, "render_corpus", lambda cfg, out, progress=True: seen.append((cfg, Path(out))))
    out = ensure_task_data(spec, tmp_path, "drawer-open", progress=False)
    (cfg, where), = seen
    assert where == out == task_dir(spec, tmp_path, "drawer-open")
    assert (cfg.tasks, cfg.episodes, cfg.cameras, cfg.size, cfg.seed) == ("drawer-open", 22, "topview", 64, 5)
    assert (cfg.noise, cfg.early_stop_steps, cfg.stop_after_success, cfg.frame_every) == (0.3, 12, 7, 1)
    jobs = corpus.corpus_jobs(cfg)
    assert [j[5] for j in jobs] == ["noisy"] * 15 + ["random"] * 2 + ["early"] + ["expert"] * 4
    assert [j[3] for j in jobs] == [0.3] * 15 + [0.0] * 7


def test_corpus_seeds_are_the_documented_seed_task_episode_triple_below_2_31():
    """Episode e of task i renders with seed SeedSequence((seed, i, e)) reduced mod 2^31: fixed per (task, episode)
    whatever the number of episodes, different across tasks and base seeds."""
    from reprl.sim.corpus import CorpusConfig, corpus_jobs

    jobs = corpus_jobs(CorpusConfig(tasks="drawer-open,button-press", episodes=6, seed=3))
    expected = [int(np.random.SeedSequence([3, i, e]).generate_state(1)[0]) % 2**31 for i in range(2) for e in range(6)]
    assert [j[2] for j in jobs] == expected and all(0 <= s < 2**31 for s in expected)
    assert [(j[0], j[1]) for j in jobs] == [(t, e) for t in ("drawer-open", "button-press") for e in range(6)]
    fewer = corpus_jobs(CorpusConfig(tasks="drawer-open,button-press", episodes=2, seed=3))
    assert [j[2] for j in fewer] == expected[:2] + expected[6:8]


class _FakeEpisode:
    """What run_episode returns, for one camera and 2 steps."""

    def __init__(self, task: str, info: dict) -> None:
        self.task, self.info = task, info
        self.frames = {"corner": [np.full((16, 16, 3), v, np.uint8) for v in (0, 100, 200)]}
        self.actions, self.proprio, self.state = np.zeros((2, 4)), np.zeros((3, 4)), np.zeros((3, 39))
        self.success, self.reward, self.frame_step = np.array([0, 0, 1], bool), np.zeros(2), np.arange(3)

    @property
    def steps(self) -> int:
        return 2


def test_render_jobs_run_each_behaviour_with_its_policy_length_and_noise(monkeypatch):
    """A random episode acts with RandomPolicy(seed), an early one runs min(max_steps, early_stop_steps) = 12
    steps of the expert, the others max_steps = 40; only a clean expert run is marked expert (an early-stopped run
    has noise 0 but is not)."""
    import reprl.sim.corpus as corpus
    import reprl.sim.metaworld as metaworld
    from reprl.sim.corpus import CorpusConfig, corpus_jobs

    runs = []

    def run_episode(env, policy, *, seed, noise, max_steps, stop_after_success, frame_every):
        runs.append((policy, seed, noise, max_steps))
        return _FakeEpisode("drawer-open", {"noise": noise, "text": "open the drawer", "succeeded": True})

    monkeypatch.setattr(corpus, "_env", lambda task, cameras, size: None)
    monkeypatch.setattr(metaworld, "run_episode", run_episode)
    monkeypatch.setattr(metaworld, "expert_policy", lambda task: f"expert:{task}")
    monkeypatch.setattr(metaworld, "RandomPolicy", lambda seed: f"random:{seed}")
    cfg = CorpusConfig(tasks="drawer-open", episodes=4, noise=0.5, noisy_fraction=0.25, random_fraction=0.25,
                       early_fraction=0.25, early_stop_steps=12, max_steps=40)
    jobs = corpus_jobs(cfg)
    videos = [corpus._render_job(job) for job in jobs]
    seeds = [j[2] for j in jobs]
    assert runs == [("expert:drawer-open", seeds[0], 0.5, 40), (f"random:{seeds[1]}", seeds[1], 0.0, 40),
                    ("expert:drawer-open", seeds[2], 0.0, 12), ("expert:drawer-open", seeds[3], 0.0, 40)]
    assert [v[0].meta["behaviour"] for v in videos] == ["noisy", "random", "early", "expert"]
    assert [v[0].meta["expert"] for v in videos] == [False, False, False, True]
    assert videos[3][0].arrays["success"].tolist() == [0, 0, 1] and videos[3][0].meta["episode"] == 3


def test_a_rendered_corpus_counts_its_successful_episodes_and_names_the_eval_tasks_it_holds(tmp_path, monkeypatch):
    """3 episodes of each of 2 tasks, the middle one of each failing: index.json says 6 episodes, 4 succeeded, and
    that drawer-open (an evaluation task) is in the corpus."""
    import reprl.sim.corpus as corpus
    from reprl.sim.corpus import EVAL_TASKS, CorpusConfig, episode_videos

    def fake_job(job):
        task, episode = job[0], job[1]
        info = {"noise": 0.0, "text": task, "succeeded": episode != 1, "behaviour": "expert"}
        return episode_videos(_FakeEpisode(task, info), episode, 90)

    monkeypatch.setattr(corpus, "_render_job", fake_job)
    assert "drawer-open" in EVAL_TASKS and "reach" not in EVAL_TASKS
    index = corpus.render_corpus(CorpusConfig(tasks="drawer-open,reach", episodes=3, size=16), tmp_path / "c",
                                 progress=False)
    assert index["episodes"] == 6 and index["episodes_succeeded"] == 4
    assert index["split"]["contains_eval_tasks"] == ["drawer-open"]


def test_task_episodes_fill_in_expert_behaviour_and_episode_for_videos_that_do_not_record_them(tmp_path, monkeypatch):
    """Renders from before the behaviour field: a video without 'expert' is an expert run, behaviour 'expert' for
    an expert and 'noisy' otherwise, episode 0 where none is recorded; a recorded behaviour and episode are kept.
    Embeddings come from the cache file (e0, e1, e2), so nothing is embedded."""
    from types import SimpleNamespace

    import reprl.evaluation.data as data_mod

    spec, cache = from_dict(SuiteSpec, {"name": "t", "tasks": ["drawer-open"], "demos": [1], "heads": ["bc"],
                                        "data": {"expert_episodes": 1}}), tmp_path
    metas = [{}, {"expert": False}, {"expert": False, "behaviour": "random", "episode": 4}]
    arrays = {"proprio": np.zeros((2, 4)), "actions": np.zeros((1, 4)), "success": np.array([0, 1], np.uint8),
              "reward": np.array([0.5])}
    videos = [SimpleNamespace(key=f"v{i}", meta=m, array=arrays.__getitem__) for i, m in enumerate(metas)]
    monkeypatch.setattr(data_mod, "expand_urls", lambda spec_: [spec_])
    monkeypatch.setattr(data_mod, "iter_videos", lambda urls: iter(videos))
    stored = cache / "embeddings" / "fp" / f"drawer-open-{spec.data_key()}.npz"
    stored.parent.mkdir(parents=True)
    np.savez(stored, **{f"e{i}": np.full((2, 3), float(i), np.float32) for i in range(3)})
    episodes = task_episodes(spec, cache, "drawer-open", None, "fp")  # no encoder: nothing is embedded
    assert [(e["key"], e["expert"], e["behaviour"], e["episode"]) for e in episodes] == [
        ("v0", True, "expert", 0), ("v1", False, "noisy", 0), ("v2", False, "random", 4)]
    assert episodes[2]["emb"].tolist() == [[2.0] * 3] * 2 and episodes[0]["success"].tolist() == [False, True]
