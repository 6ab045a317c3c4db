"""`reprl heads train` on a user's own episodes, policy folders and load_policy, mixed-quality rendering jobs."""

import numpy as np
import pytest

import reprl
from reprl.cli import main
from reprl.encoders.io import save_encoder
from reprl.errors import ReprlError
from reprl.heads import load_policy


def episodes_npz(path, n_episodes=3, t=6, drop=()):
    rng = np.random.default_rng(0)
    n = n_episodes * (t + 1)
    arrays = {"images": rng.integers(0, 256, (n, 24, 24, 3), dtype=np.uint8),
              "actions": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
              "proprio": rng.normal(size=(n, 4)).astype(np.float32),
              "episode": np.repeat(np.arange(n_episodes), t + 1),
              "expert": np.repeat(np.arange(n_episodes) == 0, t + 1)}
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return save_encoder(reprl.load("tiny", image_size=32, embed_dim=8), tmp_path_factory.mktemp("enc") / "encoder")


def train(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["heads", "train", *map(str, args)])
    return e.value.code, capsys.readouterr()


def test_heads_train_on_an_npz_saves_a_policy_that_loads_and_acts(tmp_path, capsys, encoder_dir, head="recoil"):
    """(TRAIL's actor saves and loads in test_readme's policy snippet.)"""
    demos = episodes_npz(tmp_path / "eps.npz")
    code, out = train(capsys, "--demos", demos, "--encoder", encoder_dir, "--head", head, "--out", tmp_path / "p",
                      "--steps", 10, "--batch-size", 8, "--set", "hidden=16,16")
    assert code == 0, out.err
    assert "on 18 transitions of 3 episodes (1 expert)" in out.out
    assert (tmp_path / "p" / "config.json").exists() and (tmp_path / "p" / "encoder" / "model.safetensors").exists()
    policy = load_policy(tmp_path / "p")
    assert policy.kind == head and policy.encoder_source == str(encoder_dir)
    img = np.zeros((24, 24, 3), np.uint8)
    a = policy.select_action({"observation.image": img, "observation.state": np.zeros(4, np.float32)})
    assert a.shape == (4,) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(a, policy.act(img, np.zeros(4)))
    with pytest.raises(ReprlError, match="has no image"):
        policy.select_action({"state": np.zeros(4)})


def test_heads_train_rejects_bad_input_before_any_work(tmp_path, capsys, encoder_dir):
    demos = episodes_npz(tmp_path / "eps.npz")
    base = ["--demos", demos, "--encoder", encoder_dir, "--out", tmp_path / "p"]
    for extra, message in [(["--head", "sac"], "unknown head 'sac'"),
                           (["--head", "iql", "--set", "expectil=0.9"], "unknown config key 'expectil'"),
                           (["--set", "oops"], "write KEY=VALUE"),
                           (["--steps", 0], "at least 1")]:
        code, out = train(capsys, *base, *extra)
        assert code == 2 and message in out.err and "Traceback" not in out.err
    code, out = train(capsys, *base[:-2], "--out", tmp_path, "--steps", 1)
    assert code == 2 and f"--out {tmp_path} contains the input" in out.err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    code, out = train(capsys, *base[:-2], "--out", tmp_path / "full", "--steps", 1)
    assert code == 2 and "is not an output of reprl heads train" in out.err and "choose another --out" in out.err
    missing = episodes_npz(tmp_path / "bad.npz", drop=("actions",))
    code, out = train(capsys, "--demos", missing, "--encoder", encoder_dir, "--out", tmp_path / "q")
    assert code == 2 and "lacks actions" in out.err
    code, out = train(capsys, "--demos", tmp_path / "nope.npz", "--encoder", encoder_dir, "--out", tmp_path / "q")
    assert code == 2 and "not found" in out.err
    assert not (tmp_path / "p").exists() and not (tmp_path / "q").exists()


def test_mixed_quality_corpus_jobs():
    from reprl.sim.corpus import CorpusConfig, corpus_jobs, render_corpus

    cfg = CorpusConfig(tasks="drawer-open", episodes=10, noise=1.0, noisy_fraction=0.2, random_fraction=0.2,
                       early_fraction=0.3, early_stop_steps=12)
    jobs = corpus_jobs(cfg)
    assert [j[5] for j in jobs] == ["noisy"] * 2 + ["random"] * 2 + ["early"] * 3 + ["expert"] * 3
    assert [j[3] for j in jobs] == [1.0] * 2 + [0.0] * 8  # action noise only on the noisy episodes
    assert len({j[2] for j in jobs}) == 10  # every episode its own seed
    with pytest.raises(ReprlError, match="sum to at most 1"):
        render_corpus(CorpusConfig(noisy_fraction=0.5, random_fraction=0.6), "unused")


def test_npz_shapes_rgba_refused_and_one_number_of_proprio_per_frame_accepted(tmp_path, capsys, encoder_dir):
    """RGBA images are one line before any embedding; a 1-D proprio (one number per frame) is a 1-wide vector."""
    rgba = episodes_npz(tmp_path / "rgba.npz")
    data = dict(np.load(rgba))
    data["images"] = np.zeros((*data["images"].shape[:3], 4), np.uint8)
    np.savez(rgba, **data)
    code, out = train(capsys, "--demos", rgba, "--encoder", encoder_dir, "--out", tmp_path / "p")
    assert code == 2 and "uint8 RGB" in out.err and len(out.err.strip().splitlines()) == 1
    flat = episodes_npz(tmp_path / "flat.npz")
    data = dict(np.load(flat))
    data["proprio"] = data["proprio"][:, 0]
    np.savez(flat, **data)
    code, out = train(capsys, "--demos", flat, "--encoder", encoder_dir, "--out", tmp_path / "q", "--steps", 2,
                      "--batch-size", 4)
    assert code == 0, out.err
    assert load_policy(tmp_path / "q").head.dims["proprio_dim"] == 1


def test_a_policy_folder_among_named_models_is_not_an_encoder(tmp_path, capsys, encoder_dir, monkeypatch):
    """`reprl list --pretrained` and reprl.load by name skip policy folders that share a models folder."""
    from reprl.encoders.io import named_models

    demos = episodes_npz(tmp_path / "eps.npz")
    models = tmp_path / "models"
    code, _ = train(capsys, "--demos", demos, "--encoder", encoder_dir, "--out", models / "policy", "--steps", 2,
                    "--batch-size", 4)
    assert code == 0
    save_encoder(reprl.load(encoder_dir), models / "enc")
    monkeypatch.setenv("REPRL_MODELS", str(models))
    assert "policy" not in named_models() and "enc" in named_models()
    with pytest.raises(SystemExit) as e:
        main(["list", "--pretrained"])
    assert e.value.code == 0 and "enc " in capsys.readouterr().out
