import json
import math

import numpy as np
import pytest
import torch

import reprl
from reprl.errors import ReprlError
from reprl.heads import HeadConfig, PolicyHead, Transitions, load_policy, rwr_weights, train_head, transition_rewards
from reprl.heads.policy import Policy, save_head


def episodes(n=3, t=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return [{"emb": rng.normal(size=(t + 1, d)).astype(np.float32), "proprio": rng.normal(size=(t + 1, 4)),
             "actions": rng.uniform(-1, 1, size=(t, 4))} for _ in range(n)]


def test_transitions_pair_each_frame_with_the_next_and_its_action():
    eps = episodes(2, t=3)
    data = Transitions.from_episodes(eps)
    assert len(data) == 6 and data.episode.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(data.emb[1], torch.as_tensor(eps[0]["emb"][1]))
    assert torch.equal(data.next_emb[2], torch.as_tensor(eps[0]["emb"][3]))
    assert torch.allclose(data.actions[4], torch.as_tensor(eps[1]["actions"][1], dtype=torch.float32))
    bad = episodes(1)
    bad[0]["emb"] = bad[0]["emb"][:-1]
    with pytest.raises(ReprlError, match="need T\\+1 frames"):
        Transitions.from_episodes(bad)


def test_rwr_weights_by_hand():
    r = torch.tensor([1.0, -1.0, 0.0, 3.0])
    raw = rwr_weights(r, tau=0.5, normalize=False, clip=None)
    assert raw.tolist() == pytest.approx([math.exp(0.5), math.exp(-0.5), 1.0, math.exp(1.5)], rel=1e-6)
    clipped = rwr_weights(r, tau=0.5, normalize=False, clip=2.0)
    assert clipped.tolist() == pytest.approx([math.exp(0.5), math.exp(-0.5), 1.0, 2.0], rel=1e-6)
    normed = rwr_weights(r, tau=0.5, clip=None)
    assert normed.mean().item() == pytest.approx(1.0) and normed[3] / normed[2] == pytest.approx(math.exp(1.5))
    chi2 = rwr_weights(torch.tensor([1.0, -6.0, 0.0]), tau=1.0, weighting="chi2", normalize=False)
    assert chi2.tolist() == pytest.approx([1.5, 0.0, 1.0])
    z = rwr_weights(r, tau=1.0, normalize=False, clip=None, standardize=True)
    zr = (r - r.mean()) / r.std()
    assert z.tolist() == pytest.approx(torch.exp(zr).tolist(), rel=1e-6)


def test_transition_rewards_use_the_encoder_similarity():
    data = Transitions.from_episodes([{"emb": np.array([[0.0, 0], [3, 0], [3, 4]], np.float32),
                                       "proprio": np.zeros((3, 4)), "actions": np.zeros((2, 4))}])
    goal = torch.tensor([3.0, 4.0])
    l2 = lambda a, b: -torch.linalg.vector_norm(a - b, dim=-1)  # noqa: E731
    assert transition_rewards(data, goal, l2).tolist() == pytest.approx([5 - 4, 4 - 0])


def test_k_step_rewards_look_k_observations_ahead_within_each_episode():
    """R_t = S(o_{t+k}) - S(o_t), o_{t+k} stopping at the episode's last observation, never crossing into the
    next episode; the similarity here is the first coordinate, so values are the numbers below."""
    ep0, ep1 = [0.0, 1, 3, 6], [10.0, 20, 40]  # observations o_0..o_T of two episodes
    data = Transitions.from_episodes([{"emb": np.array([[v, 0] for v in ep], np.float32),
                                       "proprio": np.zeros((len(ep), 1)), "actions": np.zeros((len(ep) - 1, 1))}
                                      for ep in (ep0, ep1)])
    first = lambda e, g: e[:, 0]  # noqa: E731
    goal = torch.zeros(2)
    assert transition_rewards(data, goal, first).tolist() == [1, 2, 3, 10, 20]
    assert transition_rewards(data, goal, first, steps=1).tolist() == [1, 2, 3, 10, 20]
    assert transition_rewards(data, goal, first, steps=2).tolist() == [3 - 0, 6 - 1, 6 - 3, 40 - 10, 40 - 20]
    assert transition_rewards(data, goal, first, steps=3).tolist() == [6 - 0, 6 - 1, 6 - 3, 40 - 10, 40 - 20]
    with pytest.raises(ReprlError, match="steps must be >= 1"):
        transition_rewards(data, goal, first, steps=0)


def test_weighted_loss_is_the_weighted_mean_of_per_sample_losses():
    torch.manual_seed(0)
    head = PolicyHead(4, 4, 2, HeadConfig(hidden=(8,))).eval()
    emb, prop, act = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 2)
    per = head.per_sample_loss(emb, prop, act).detach()
    manual = ((head(emb, prop) - act) ** 2).sum(-1).detach()
    torch.testing.assert_close(per, manual)
    w = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    assert (w * per).mean().item() == pytest.approx(float((per[1] + 2 * per[2] + per[4]) / 5), rel=1e-6)
    nll = PolicyHead(4, 4, 2, HeadConfig(hidden=(8,), loss="nll")).eval()
    mean = nll(emb, prop)
    expected = 0.5 * ((act - mean) ** 2 + math.log(2 * math.pi)).sum(-1)  # log_std = 0 at init
    torch.testing.assert_close(nll.per_sample_loss(emb, prop, act), expected)


def test_a_head_overfits_a_tiny_dataset_and_zero_weights_are_ignored():
    data = Transitions.from_episodes(episodes(2, t=8))
    head, losses = train_head(data, HeadConfig(hidden=(64, 64), steps=1500, batch_size=16), seed=0)
    assert losses["loss_last"] < 0.05 * losses["loss_first"]
    with torch.no_grad():
        err = ((head(data.emb, data.proprio) - data.actions) ** 2).sum(-1).mean()
    assert err < 0.05
    w = torch.zeros(len(data))
    w[:8] = 2.0  # only the first episode counts
    head_w, _ = train_head(data, HeadConfig(hidden=(64, 64), steps=1500, batch_size=16), weights=w, seed=0)
    with torch.no_grad():
        first = ((head_w(data.emb[:8], data.proprio[:8]) - data.actions[:8]) ** 2).sum(-1).mean()
        second = ((head_w(data.emb[8:], data.proprio[8:]) - data.actions[8:]) ** 2).sum(-1).mean()
    assert first < 0.05 < second


def test_a_bf16_policy_acts_close_to_float32_and_keeps_its_precision(tmp_path):
    """Policy(precision="bf16") runs the encoder under bfloat16 autocast: actions close to float32's, not equal;
    the folder records the precision and load_policy uses it unless told otherwise; a bad one is refused at once."""
    from reprl.encoders.io import save_encoder

    enc_dir = save_encoder(reprl.load("tiny", image_size=32, embed_dim=4), tmp_path / "enc")
    data = Transitions.from_episodes(episodes(1))
    head, _ = train_head(data, HeadConfig(hidden=(16,), steps=20), seed=0)
    imgs = np.random.default_rng(1).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    full = Policy(reprl.load(enc_dir), head, str(enc_dir)).act(imgs, np.zeros((8, 4)))
    policy = Policy(reprl.load(enc_dir), head, str(enc_dir), precision="bf16")
    low = policy.act(imgs, np.zeros((8, 4)))
    assert low.dtype == np.float32 and not np.array_equal(low, full) and np.abs(low - full).max() < 0.05
    policy.save(tmp_path / "policy")
    assert json.loads((tmp_path / "policy" / "config.json").read_text())["precision"] == "bf16"
    assert load_policy(tmp_path / "policy").precision == "bf16"
    assert load_policy(tmp_path / "policy", precision="32").precision == "32"
    Policy(reprl.load(enc_dir), head, str(enc_dir)).save(tmp_path / "p32")
    assert "precision" not in json.loads((tmp_path / "p32" / "config.json").read_text())
    with pytest.raises(ReprlError, match="precision must be 32, bf16 or 16"):
        Policy(reprl.load(enc_dir), head, precision="8")
    assert Policy(reprl.load(enc_dir), head, precision="bf16-mixed").precision == "bf16"
    with pytest.raises(ReprlError, match="needs a CUDA device"):
        Policy(reprl.load(enc_dir), head, precision="16")


def test_a_compiled_policy_acts_as_the_eager_one_and_compiles_one_batch_size(tmp_path, monkeypatch):
    """Policy(compile=True) runs the encoder through torch.compile with frozen weights: the same actions up to
    rounding for a batch, a smaller batch (padded to the compiled size, not compiled again) and a single image;
    policies on one encoder share the compiled copy, which is not a submodule; bad uses are one-line errors."""
    from reprl.encoders import compiled

    encoder = reprl.load("tiny", image_size=32, embed_dim=4)
    data = Transitions.from_episodes(episodes(1))
    head, _ = train_head(data, HeadConfig(hidden=(16,), steps=20), seed=0)
    imgs = np.random.default_rng(1).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    proprio = np.random.default_rng(2).normal(size=(8, 4))
    eager, fast = Policy(encoder, head), Policy(encoder, head, compile=True)
    for n in (8, 3):
        np.testing.assert_allclose(fast.act(imgs[:n], proprio[:n]), eager.act(imgs[:n], proprio[:n]), atol=1e-5)
    one = fast.act(imgs[0], proprio[0])
    assert one.shape == (4,) and np.allclose(one, eager.act(imgs[0], proprio[0]), atol=1e-5)
    assert fast._compiled.encode.sizes == [8]  # 3 and 1 were padded up to 8
    emb = torch.as_tensor(imgs[:5]).permute(0, 3, 1, 2)
    with torch.inference_mode():
        assert torch.allclose(fast._compiled(emb), encoder(emb), atol=1e-5)
    assert Policy(encoder, head, compile=True)._compiled is fast._compiled
    assert fast.state_dict().keys() == eager.state_dict().keys()
    assert fast.act(np.concatenate([imgs, imgs]), np.zeros((16, 4))).shape == (16, 4)
    assert fast._compiled.encode.sizes == [8, 16]
    # inductor freezes the weights while compiling (what makes it fast on the CPU; torch.compile's options= form
    # does not); a saved policy loads compiled when asked
    from torch._inductor import config

    frozen, call = [], fast._compiled.encode.fn
    fast._compiled.encode.fn = lambda x: frozen.append(config.freezing) or call(x)
    fast.act(imgs[:2], proprio[:2])
    assert frozen == [True] and not config.freezing
    fast.save(tmp_path / "policy", copy_encoder=True)
    loaded = load_policy(tmp_path / "policy", compile=True)
    assert loaded._compiled is not None and loaded._compiled is not fast._compiled
    np.testing.assert_allclose(loaded.act(imgs[:4], proprio[:4]), eager.act(imgs[:4], proprio[:4]), atol=1e-5)
    assert load_policy(tmp_path / "policy")._compiled is None
    with pytest.raises(ReprlError, match="frozen encoder in eval mode"):
        Policy(reprl.load("tiny", image_size=32, embed_dim=4).train(), head, compile=True)
    with pytest.raises(ReprlError, match="works with reprl encoders"):
        Policy(torch.nn.Linear(3, 4), head, compile=True)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    with pytest.raises(ReprlError, match="needs a C\\+\\+ compiler"):
        Policy(reprl.load("tiny", image_size=32, embed_dim=4), head, compile=True)
    assert Policy(encoder, head, compile=True)._compiled is fast._compiled  # compiled before: no check again


def test_policy_saves_loads_with_its_encoder_and_acts(tmp_path):
    from reprl.encoders.io import save_encoder

    enc_dir = save_encoder(reprl.load("tiny", image_size=32, embed_dim=4), tmp_path / "enc")
    data = Transitions.from_episodes(episodes(1))
    head, _ = train_head(data, HeadConfig(hidden=(16,), steps=20), seed=0)
    Policy(reprl.load(enc_dir), head, str(enc_dir)).save(tmp_path / "policy")
    policy = load_policy(tmp_path / "policy")
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    a = policy.act(img, np.zeros(4))
    assert a.shape == (4,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    assert policy.act(np.stack([img, img]), np.zeros((2, 4))).shape == (2, 4)
    with pytest.raises(ReprlError, match="proprio"):
        policy.act(img)
    save_head(head, tmp_path / "p2", "tiny")
    with pytest.raises(ReprlError, match="expects 4-d embeddings"):
        load_policy(tmp_path / "p2")  # registered 'tiny' embeds to 64
