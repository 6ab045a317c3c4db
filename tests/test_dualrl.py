"""The value-based heads: every loss against hand-computed values, numerical safety, and the training loop."""

import math

import numpy as np
import pytest
import torch

from reprl.errors import ReprlError
from reprl.heads import HEADS, HeadConfig, Transitions, head_config, make_learner
from reprl.heads import losses as L

E = math.exp


def test_expectile_weights_each_side():
    y = torch.tensor([2.0, -1.0])
    assert L.expectile_loss(y, 0.7).item() == pytest.approx((0.7 * 4 + 0.3 * 1) / 2)
    assert L.expectile_loss(y, 0.5).item() == pytest.approx((0.5 * 4 + 0.5 * 1) / 2)


def test_gumbel_loss_clips_and_max_normalises():
    y = torch.tensor([2.0, -4.0, 40.0])  # / T=2 -> z = [1, -2, 20] -> clipped at 7; m = 7
    z, m = [1.0, -2.0, 7.0], 7.0
    expected = np.mean([E(zi - m) - zi * E(-m) - E(-m) for zi in z])
    assert L.gumbel_loss(y, 2.0, max_z=7.0).item() == pytest.approx(expected, rel=1e-5)
    # the normaliser is floored at -1: z = [-2, -3] has max -2, so m = -1
    low = torch.tensor([-4.0, -6.0])
    expected = np.mean([E(zi + 1) - zi * E(1) - E(1) for zi in (-2.0, -3.0)])
    assert L.gumbel_loss(low, 2.0).item() == pytest.approx(expected, rel=1e-5)
    # it is exp(-m) * the plain Gumbel loss exp(z) - z - 1, and its gradient stays finite for huge residuals
    y = torch.tensor([1e6, 0.5], requires_grad=True)
    L.gumbel_loss(y, 1.0).backward()
    assert torch.isfinite(y.grad).all()


def test_fdvl_value_losses_with_temperature():
    y = torch.tensor([2.0, -1.0, -6.0])  # chi2 term y + y^2/4 = [3, -0.75, 3] -> max(., 0) = [3, 0, 3]
    chi2 = np.mean([0.8 * 3 - 0.2 * 2, 0.8 * 0 + 0.2 * 1, 0.8 * 3 + 0.2 * 6])
    assert L.fdvl_value_loss(y, "chi2", 0.8).item() == pytest.approx(chi2)
    tv = np.mean([0.8 * 2 - 0.2 * 2, 0.2 * 1, 0.2 * 6])
    assert L.fdvl_value_loss(y, "tv", 0.8).item() == pytest.approx(tv)
    assert L.fdvl_value_loss(y, "rkl", 8.0).item() == pytest.approx(L.gumbel_loss(y, 8.0).item())
    with pytest.raises(ReprlError, match="chi2, tv, rkl"):
        L.fdvl_value_loss(y, "kl", 1.0)


def test_recoil_q_targets_with_the_absorbing_state():
    expert, mix = L.recoil_q_targets(torch.tensor([10.0, 10.0]), torch.tensor([0.0, 1.0]), 0.9)
    assert expert == pytest.approx(2 / 0.1)  # expert_reward / (1 - gamma)
    # -2 + gamma V(s') if not done; -2 + gamma * (-2 / (1 - gamma)) if done (V(s') ignored)
    assert mix.tolist() == pytest.approx([-2 + 0.9 * 10, -2 + 0.9 * -20])
    expert, mix = L.recoil_q_targets(torch.tensor([1.0]), torch.tensor([1.0]), 0.5, expert_reward=1.0,
                                     mixture_reward=-3.0)
    assert expert == pytest.approx(2.0) and mix.tolist() == pytest.approx([-3 + 0.5 * -6])


def test_actor_weights():
    a = torch.tensor([0.0, 1.0, 5.0])
    assert L.advantage_weights(a, 2.0, 100.0).tolist() == pytest.approx([1.0, E(2), 100.0], rel=1e-6)
    z = (np.array([1.0, 2, 3]) - 2) / np.sqrt(2 / 3)  # z-scored with the population std
    w = L.awr_weights(torch.tensor([1.0, 2.0, 3.0]), beta=0.5, max_weight=10.0)
    assert w.tolist() == pytest.approx([E(z[0] / 0.5), 1.0, 10.0], rel=1e-5)
    assert L.awr_weights(torch.full((4,), 3.0)).tolist() == [1.0] * 4  # no spread: all weights 1, no NaN
    assert L.td_target(torch.tensor([1.0, 1.0]), torch.tensor([4.0, 4.0]), torch.tensor([0.0, 1.0]),
                       0.5).tolist() == [3.0, 1.0]


def test_trail_contrastive_loss_with_the_shuffle():
    sa, nxt = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [2.0]])
    # E = -[[0, 4], [1, 1]]: row 0: 0 + log(e^0 + e^-4); row 1: 1 + log(2 e^-1) = log 2
    plain = np.mean([math.log(1 + E(-4)), math.log(2)])
    assert L.contrastive_energy_loss(sa, nxt).item() == pytest.approx(plain, rel=1e-6)
    # rows 0 and 1 of next swapped: E = -[[4, 0], [1, 1]]: row 0: 4 + log(e^-4 + 1)
    shuffled = np.mean([4 + math.log(1 + E(-4)), math.log(2)])
    perm = torch.tensor([[0, 1], [1, 0]])
    assert L.contrastive_energy_loss(sa, nxt, perm).item() == pytest.approx(shuffled, rel=1e-6)
    rows = L.shuffle_rows(20, 0.1, torch.Generator().manual_seed(0))
    assert rows.shape == (2, 2) and set(rows[0].tolist()) == set(rows[1].tolist())
    assert L.shuffle_rows(5, 0.1, torch.Generator()).numel() == 0


def episodes(n, t=6, d=3, same=False, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        emb = np.ones((t + 1, d), np.float32) if same else rng.normal(size=(t + 1, d)).astype(np.float32)
        acts = np.full((t, 2), 0.5, np.float32) if same else rng.uniform(-1, 1, (t, 2)).astype(np.float32)
        out.append({"emb": emb, "proprio": np.zeros((t + 1, 2)), "actions": acts, "expert": i == 0,
                    "reward": np.ones(t) if same else rng.normal(size=t)})
    return out


SMALL = {"awr": {"hidden": [8]}, "iql": {"hidden": [8]}, "fdvl": {"hidden": [8], "f": "rkl"},
         "recoil": {"hidden": [8]}, "trail": {"hidden": [8], "embed_dim": 4}}


@pytest.mark.parametrize("kind", HEADS)
def test_identical_states_train_without_nan(kind):
    data = Transitions.from_episodes(episodes(3, same=True))
    learner = make_learner(kind, data, HeadConfig(hidden=(8,), steps=6, batch_size=8), SMALL.get(kind), seed=0)
    losses = learner.train(6)
    assert losses["skipped_steps"] == 0 and all(math.isfinite(v) for v in losses.values())
    out = learner.actor(data.emb[:2], data.proprio[:2])
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_non_finite_steps_are_skipped_and_stop_after_ten_in_a_row():
    data = Transitions.from_episodes(episodes(2))
    learner = make_learner("iql", data, HeadConfig(hidden=(8,), batch_size=4), SMALL["iql"])
    real, calls = learner.losses, []

    def poisoned():
        out = real()
        calls.append(1)
        return {**out, "value": out["value"] * float("nan")} if len(calls) <= 2 else out

    learner.losses = poisoned
    before = [p.clone() for p in learner.actor.parameters()]
    learner.train(2)
    assert learner.skipped_steps == 2 and all(torch.equal(a, b) for a, b in zip(before, learner.actor.parameters()))
    learner.train(1)
    assert not all(torch.equal(a, b) for a, b in zip(before, learner.actor.parameters()))
    learner.losses = lambda: {"actor": torch.tensor(float("inf"), requires_grad=True)}
    with pytest.raises(ReprlError, match="not finite for 10 steps"):
        learner.train(20)


@pytest.mark.parametrize("finetune", [True, False])
def test_trail_switches_to_latent_bc_on_expert_data(finetune):
    data = Transitions.from_episodes(episodes(3))
    cfg = {**SMALL["trail"], "finetune_decoder": finetune}
    learner = make_learner("trail", data, HeadConfig(hidden=(8,), steps=10, batch_size=4), cfg)
    phi, latent = [p.clone() for p in learner.phi.parameters()], [p.clone() for p in learner.actor.latent.parameters()]
    learner.train(5)  # phase 1: representation and decoder only
    assert not torch.equal(phi[0], next(learner.phi.parameters()))
    assert torch.equal(latent[0], next(learner.actor.latent.parameters()))
    phi = [p.clone() for p in learner.phi.parameters()]
    decoder = next(learner.actor.decoder.parameters()).clone()
    learner.train(5)  # phase 2: latent BC (and the decoder on expert pairs if finetune_decoder)
    assert torch.equal(phi[0], next(learner.phi.parameters()))
    assert not torch.equal(latent[0], next(learner.actor.latent.parameters()))
    assert torch.equal(decoder, next(learner.actor.decoder.parameters())) is not finetune


def test_trail_defaults_follow_the_released_code():
    assert head_config("trail", {}).finetune_decoder is True


def test_head_configs_and_requirements():
    assert head_config("fdvl", {"f": "tv", "temperature": 0.8}).temperature == 0.8
    with pytest.raises(ReprlError, match="fdvl.f: expected one of 'chi2', 'tv', 'rkl', got kl"):
        head_config("fdvl", {"f": "kl"})
    with pytest.raises(ReprlError, match="fdvl.random_actions must be >= 0, got -1"):
        head_config("fdvl", {"random_actions": -1})
    with pytest.raises(ReprlError, match="recoil.temperature must be > 0"):
        head_config("recoil", {"temperature": 0})
    with pytest.raises(ReprlError, match="iql.expectile must be in"):
        head_config("iql", {"expectile": 1.5})
    with pytest.raises(ReprlError, match="unknown head 'sac'"):
        head_config("sac")
    no_reward = [{k: v for k, v in ep.items() if k != "reward"} for ep in episodes(2)]
    with pytest.raises(ReprlError, match="learns from rewards"):
        make_learner("iql", Transitions.from_episodes(no_reward), HeadConfig())
    no_expert = [{**ep, "expert": False} for ep in episodes(2)]
    with pytest.raises(ReprlError, match="needs expert transitions"):
        make_learner("recoil", Transitions.from_episodes(no_expert), HeadConfig())
