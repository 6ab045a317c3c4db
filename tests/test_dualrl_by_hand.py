"""Each value-based head's loss composition (which batch, which network, which target, which weight) against
values computed by hand, and the loss pieces the formula tests in test_dualrl.py leave open (stop-gradients,
a three-way shuffle, the ||next||^2 term, the Gaussian's scale).

The learners are rigged: their networks are replaced by column pickers, so Q, V and the target networks read
known numbers straight from the batch, and their sampler returns fixed batches. A change to any single term of a
head's losses (a sign, a swapped batch or network, a weight, a discount) changes a number asserted here.
"""

import math

import numpy as np
import pytest
import torch
from test_dualrl import episodes
from torch import nn

from reprl.heads import HeadConfig, Transitions, make_learner
from reprl.heads import losses as L

E = math.exp


def _t(x):
    return torch.tensor(x, dtype=torch.float32)


class Columns(nn.Module):
    """x -> x[:, a:b] * scale: a 'network' whose output is chosen by the test."""

    def __init__(self, a: int, b: int, scale: float = 1.0) -> None:
        super().__init__()
        self.a, self.b, self.scale = a, b, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.a:self.b] * self.scale


# State columns: [V, Q1, Q2, Q1_target, Q2_target]; column 0 of next_state is V(s').
# Mixture batch: V = [1, 0], Q1 = [3, -1], Q2 = [4, 0], Q_target = min([2, -2], [5, -1]) = [2, -2], so
# y = Q_target - V = [1, -2]; V(s') = [4, 2], r = [1, 0.5], done = [0, 1]; action column 0 = [1, 1].
MIX = {"state": _t([[1, 3, 4, 2, 5], [0, -1, 0, -2, -1]]), "next_state": _t([[4, 0, 0, 0, 0], [2, 0, 0, 0, 0]]),
       "actions": _t([[1, 0], [1, 0]]), "reward": _t([1, 0.5]), "done": _t([0, 1])}
# Expert batch: Q1 = [4, 6], Q2 = [2, 4], Q_target = min([3, 0], [5, 0]) = [3, 0] and V = [0, 0], so y = [3, 0];
# action column 0 = [0, 0] (so an actor loss on it would be 0).
EXP = {"state": _t([[0, 4, 2, 3, 5], [0, 6, 4, 0, 0]]), "next_state": _t([[0] * 5, [0] * 5]),
       "actions": _t([[0, 0], [0, 0]]), "reward": _t([0, 0]), "done": _t([0, 0])}


def _rigged(kind, cfg, seen=None):
    learner = make_learner(kind, Transitions.from_episodes(episodes(3)), HeadConfig(hidden=(8,), batch_size=2), cfg)
    learner.value = Columns(0, 1)
    if hasattr(learner, "q1"):
        learner.q1, learner.q2 = Columns(1, 2), Columns(2, 3)
        learner.q1_target, learner.q2_target = Columns(3, 4), Columns(4, 5)
    else:
        learner.value_target = Columns(0, 1, 0.5)  # V_target(s') = [2, 1] on the mixture batch
    learner.sample = lambda pool=None, size=None: MIX if pool is None else EXP

    def actor_loss(batch, w):  # the weights' mean on the mixture batch, 0 on the expert batch
        if seen is not None:
            seen["w"] = w
        return (w * batch["actions"][:, 0]).mean()

    learner.actor_loss = actor_loss
    return learner


def test_iql_losses_by_hand():
    seen: dict = {}
    out = _rigged("iql", {"expectile": 0.7, "beta": 1.0, "discount": 0.5}, seen).losses()
    # value: expectile 0.7 of y = [1, -2]: (0.7 * 1 + 0.3 * 4) / 2
    assert out["value"].item() == pytest.approx(0.95)
    # TD target r + 0.5 (1 - done) V(s') = [3, 0.5]; each Q: 0.5 * mean squared error
    # Q1 = [3, -1]: 0.5 * (0 + 2.25) / 2; Q2 = [4, 0]: 0.5 * (1 + 0.25) / 2
    assert out["q"].item() == pytest.approx(0.5625 + 0.3125)
    # actor weights exp(beta * y) = [e, e^-2], on the mixture batch
    assert seen["w"].tolist() == pytest.approx([E(1), E(-2)], rel=1e-6)
    assert out["actor"].item() == pytest.approx((E(1) + E(-2)) / 2, rel=1e-6)


def test_fdvl_losses_by_hand():
    out = _rigged("fdvl", {"f": "chi2", "temperature": 1.0, "beta": 1.0, "discount": 0.5}).losses()
    # chi2 at temperature 1: mean max(y + y^2/4, 0) over y = [1, -2] = (1.25 + 0) / 2
    assert out["value"].item() == pytest.approx(0.625)
    # Huber (threshold 20, so quadratic here) per Q: 0.5 mean squared error, as IQL's above
    assert out["q"].item() == pytest.approx(0.875)
    out = _rigged("fdvl", {"f": "chi2", "temperature": 1.0, "discount": 0.5, "huber": 1.0}).losses()
    # threshold 1: Q1's error 1.5 is linear (1.5 - 0.5 = 1), the others quadratic: (0 + 1)/2 + (0.5 + 0.125)/2
    assert out["q"].item() == pytest.approx(0.8125)


def test_fdvl_random_actions_by_hand():
    learner = _rigged("fdvl", {"f": "chi2", "temperature": 1.0, "random_actions": 1})
    # the target critics read action column 0 (column 5 of [state, action]): Q_target = min(a0, 2 a0)
    learner.q1_target, learner.q2_target = Columns(5, 6), Columns(5, 6, 2.0)
    learner.draw_random_actions = lambda n: _t([[-2, 0], [3, 0]])[:n]
    # data rows: a0 = [1, 1], so Q_target = [1, 1] and y = Q_target - V = [0, 1]; random rows of the same states:
    # a0 = [-2, 3], Q_target = [-4, 3] and y = [-5, 3]; chi2 at temperature 1, max(y + y^2/4, 0), averaged over
    # all four rows: (0 + 1.25 + 1.25 + 5.25) / 4
    assert learner.losses()["value"].item() == pytest.approx(1.9375)
    learner.cfg.random_actions = 0  # the data rows alone: (0 + 1.25) / 2
    assert learner.losses()["value"].item() == pytest.approx(0.625)


def test_fdvl_random_actions_stay_in_the_datas_action_range():
    data = Transitions.from_episodes(episodes(3))
    learner = make_learner("fdvl", data, HeadConfig(hidden=(8,), batch_size=4), {"hidden": [8], "random_actions": 2})
    a = learner.draw_random_actions(5000)
    lo, hi = np.asarray(data.actions).min(0), np.asarray(data.actions).max(0)
    assert a.shape == (5000, data.actions.shape[1])
    assert (a.numpy() >= lo - 1e-6).all() and (a.numpy() <= hi + 1e-6).all()
    assert np.allclose(a.numpy().min(0), lo, atol=0.05 * (hi - lo)) and np.allclose(a.numpy().max(0), hi,
                                                                                     atol=0.05 * (hi - lo))
    out = learner.train(3)
    assert out["skipped_steps"] == 0 and np.isfinite(out["value_last"])


def test_awr_losses_by_hand():
    seen: dict = {}
    out = _rigged("awr", {"beta": 1.0, "discount": 0.5}, seen).losses()
    # target from the target network: r + 0.5 (1 - done) V_target(s') = [1 + 0.5 * 2, 0.5] = [2, 0.5]; V = [1, 0]
    assert out["value"].item() == pytest.approx(0.5 * (1 + 0.25) / 2)
    # advantages [1, 0.5] z-scored to [1, -1]; weights exp(z / beta)
    assert seen["w"].tolist() == pytest.approx([E(1), E(-1)], rel=1e-6)
    assert out["actor"].item() == pytest.approx((E(1) + E(-1)) / 2, rel=1e-6)


def test_awr_weights_follow_the_advantage_not_the_target():
    seen: dict = {}
    learner = _rigged("awr", {"beta": 1.0, "discount": 0.5}, seen)
    # the same targets [2, 0.5] as above, but V = [1.5, -1]: advantages [0.5, 1.5] rank the rows the other way
    # round from the targets, z-scored to [-1, 1]
    mix = {**MIX, "state": _t([[1.5, 3, 4, 2, 5], [-1, -1, 0, -2, -1]])}
    learner.sample = lambda pool=None, size=None: mix
    out = learner.losses()
    assert seen["w"].tolist() == pytest.approx([E(-1), E(1)], rel=1e-6)
    assert out["value"].item() == pytest.approx(0.5 * (0.25 + 2.25) / 2)


def test_weighted_actor_loss_is_the_plain_mean_of_weight_times_loss():
    learner = make_learner("awr", Transitions.from_episodes(episodes(3)), HeadConfig(hidden=(8,), batch_size=2),
                           {})
    learner.actor.per_sample_loss = lambda emb, proprio, actions: _t([1.0, 0.0])
    batch = {"emb": torch.zeros(2, 3), "proprio": None, "actions": torch.zeros(2, 2)}
    # (3 * 1 + 1 * 0) / 2, not normalised by the weights' sum (0.75)
    assert learner.actor_loss(batch, _t([3.0, 1.0])).item() == pytest.approx(1.5)
    assert learner.actor_loss(batch).item() == pytest.approx(0.5)


def test_recoil_losses_by_hand():
    out = _rigged("recoil", {"temperature": 1.0, "beta": 1.0, "discount": 0.5}).losses()
    # expert target 2 / (1 - 0.5) = 4; mixture targets -2 + 0.5 V(s') = 0 and, done, -2 + 0.5 * (-2 / 0.5) = -4
    # Q1: 0.5 mean((4-4)^2, (6-4)^2) + 0.5 mean((3-0)^2, (-1+4)^2) = 1 + 4.5
    # Q2: 0.5 mean((2-4)^2, (4-4)^2) + 0.5 mean((4-0)^2, (0+4)^2) = 1 + 8
    assert out["q"].item() == pytest.approx(14.5)
    # Gumbel at temperature 1 averaged over the mixture's y = [1, -2], normalised by the max over both halves
    # (the expert half's y = [3, 0], so m = 3): ((e^-2 - 2e^-3) + (e^-5 + 2e^-3 - e^-3)) / 2
    assert out["value"].item() == pytest.approx((E(-2) - E(-3) + E(-5)) / 2, rel=1e-6)
    # weighted BC on the mixture half: exp(y) = [e, e^-2]
    assert out["actor"].item() == pytest.approx((E(1) + E(-2)) / 2, rel=1e-6)


def test_gumbel_normaliser_rows_are_divided_by_the_temperature_too():
    # temperature 2: z = 2 / 2 = 1; the normaliser row 4 / 2 = 2 sets m = 2 -> e^(1-2) - 1 e^-2 - e^-2
    # (an undivided normaliser row would set m = 4)
    loss = L.gumbel_loss(_t([2.0]), 2.0, normaliser_rows=_t([4.0]))
    assert loss.item() == pytest.approx(E(-1) - 2 * E(-2), rel=1e-6)


def test_gumbel_normaliser_takes_no_gradient():
    y = torch.tensor([0.0, 2.0], requires_grad=True)
    L.gumbel_loss(y, 1.0).backward()  # m = 2 held fixed: d/dz_i = (exp(z_i - m) - exp(-m)) / 2
    assert y.grad.tolist() == pytest.approx([0.0, (1 - E(-2)) / 2], abs=1e-6)


def test_rkl_value_loss_clips_at_max_z():
    # y = [2, 0] at temperature 1, clipped at 1: z = [1, 0], m = 1 -> ((1 - 1/e - 1/e) + (1/e - 0 - 1/e)) / 2
    assert L.fdvl_value_loss(_t([2, 0]), "rkl", 1.0, max_z=1.0).item() == pytest.approx((1 - 2 / E(1)) / 2, rel=1e-6)


def test_weights_and_td_targets_carry_no_gradient():
    a = torch.tensor([1.0], requires_grad=True)
    assert not L.advantage_weights(a, 2.0).requires_grad
    assert not L.awr_weights(a, 2.0).requires_grad
    assert not L.td_target(_t([1.0]), a, _t([0.0]), 0.5).requires_grad


def test_contrastive_loss_with_a_three_way_shuffle():
    sa, nxt = _t([[0], [1], [2]]), _t([[0], [1], [3]])
    perm = torch.tensor([[0, 1, 2], [1, 2, 0]])  # rows 0, 1, 2 take next rows 1, 2, 0: next' = [1, 3, 0]
    energy = -np.array([[1, 9, 0], [0, 4, 1], [1, 1, 4]], float)  # -(sa_i - next'_j)^2
    expected = np.mean([-energy[i, i] + np.log(np.exp(energy[i]).sum()) for i in range(3)])
    assert expected == pytest.approx(3.1192168, rel=1e-6)
    assert L.contrastive_energy_loss(sa, nxt, perm).item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_keeps_the_next_embedding_norm():
    # sa = 0 for both rows, next = [0, 1]: E = -[[0, 1], [0, 1]]; row 0: 0 + log(1 + 1/e), row 1: 1 + log(1 + 1/e)
    loss = L.contrastive_energy_loss(_t([[0.0], [0.0]]), _t([[0.0], [1.0]]))
    assert loss.item() == pytest.approx((2 * math.log(1 + E(-1)) + 1) / 2, rel=1e-6)


def test_shuffle_rows_counts_and_permutes():
    assert L.shuffle_rows(10, 0.1, torch.Generator()).numel() == 0  # one row cannot be shuffled
    rows = L.shuffle_rows(100, 0.5, torch.Generator().manual_seed(0))
    assert rows.shape == (2, 50)
    assert sorted(rows[0].tolist()) == sorted(rows[1].tolist()) and not torch.equal(rows[0], rows[1])


def test_gaussian_nll_with_a_scale():
    nll = L.gaussian_nll(_t([[0.0, 0.0]]), _t([[math.log(2), 0.0]]), _t([[2.0, 1.0]]))
    # dim 0: std 2, error 2 -> 0.5 (1 + 2 ln 2 + ln 2pi); dim 1: std 1, error 1 -> 0.5 (1 + ln 2pi)
    expected = 0.5 * (1 + 2 * math.log(2) + math.log(2 * math.pi)) + 0.5 * (1 + math.log(2 * math.pi))
    assert nll.item() == pytest.approx(expected, rel=1e-6)


def _rigged_trail(phase):
    learner = make_learner("trail", Transitions.from_episodes(episodes(3)),
                           HeadConfig(hidden=(8,), batch_size=2, steps=10), {"hidden": [8], "embed_dim": 2})
    learner._step_in_call = 0
    learner.steps_done = 0 if phase == 1 else learner.pretrain_steps
    learner.phi, learner.psi = Columns(0, 1), Columns(0, 1)
    learner.actor.decode = lambda s, z: (torch.zeros(len(s), 2), torch.zeros(len(s), 2))  # N(0, 1) per dim
    learner.actor.norm, learner.actor.latent = nn.Identity(), Columns(5, 7)
    return learner


def test_trail_representation_losses_by_hand(monkeypatch):
    learner = _rigged_trail(1)
    monkeypatch.setattr(L, "shuffle_rows", lambda n, fraction, gen: torch.tensor([[0, 1], [1, 0]]))
    learner.sample = lambda pool=None, size=None: {"state": _t([[0], [1]]), "actions": _t([[1, 0], [0, 0]]),
                                                   "next_state": _t([[0], [2]])}
    out = learner.losses()
    # phi(s, a) = s = [0, 1]; psi(s') = [0, 2], swapped by the shuffle to [2, 0]
    # E = -[[4, 0], [1, 1]]: row 0: 4 + log(e^-4 + 1), row 1: 1 + log(2 / e) = log 2
    assert out["contrastive"].item() == pytest.approx((4 + math.log(1 + E(-4)) + math.log(2)) / 2, rel=1e-6)
    # decoder N(0, 1) on actions [1, 0] and [0, 0]: (0.5 + ln 2pi) and ln 2pi, averaged
    assert out["decoder"].item() == pytest.approx(0.25 + math.log(2 * math.pi), rel=1e-6)


def test_trail_latent_bc_by_hand():
    learner = _rigged_trail(2)
    learner.phi = Columns(0, 2)  # the target phi(s, a): state columns 0-1
    expert = {"state": _t([[0, 2, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0]]), "actions": _t([[0, 0], [0, 0]])}
    other = {"state": _t([[9, 9, 0, 0, 0, 0, 0], [9, 9, 0, 0, 0, 0, 0]]), "actions": _t([[0, 0], [0, 0]])}
    learner.sample = lambda pool=None, size=None: other if pool is None else expert
    # expert batch only: z = state columns 5-6 = [[1, 0], [0, 0]], target [[0, 2], [0, 0]]: squared distance
    # summed over dims [1 + 4, 0], averaged over rows
    assert learner.losses()["actor"].item() == pytest.approx(2.5)


def test_trail_fine_tunes_the_decoder_on_the_expert_latent_phi():
    learner = _rigged_trail(2)
    learner.phi = Columns(0, 2)  # phi(s, a) = state columns 0-1 = [[0, 2], [0, 0]]; pi_Z(s) = columns 5-6
    expert = {"state": _t([[0, 2, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0]]), "actions": _t([[0, 0], [0, 0]])}
    learner.sample = lambda pool=None, size=None: expert
    learner.actor.decode = lambda s, z: (z, torch.zeros_like(z))  # mean = the latent it is given, std 1
    # decoder NLL of actions 0 with means phi = [[0, 2], [0, 0]]: rows (0.5 * 4 + ln 2pi) and ln 2pi, averaged
    # (with pi_Z(s) = [[1, 0], [0, 0]] as the latent it would be 0.25 + ln 2pi)
    assert learner.losses()["decoder"].item() == pytest.approx(1 + math.log(2 * math.pi), rel=1e-6)


def test_trail_decoder_log_std_is_clamped():
    learner = make_learner("trail", Transitions.from_episodes(episodes(3)),
                           HeadConfig(hidden=(8,), batch_size=2, steps=10), {"hidden": [8], "embed_dim": 2})
    actor = learner.actor
    actor.norm = nn.Identity()
    actor.decoder = Columns(0, 4)  # the decoder reads [s, z]: s = [0, 0, 10, -10] -> mean 0, log-std [10, -10]
    mean, log_std = actor.decode(_t([[0.0, 0.0, 10.0, -10.0]]), torch.zeros(1, 2))
    assert mean.tolist() == [[0.0, 0.0]]
    assert log_std.tolist() == [[learner.cfg.max_log_std, learner.cfg.min_log_std]] == [[2.0, -5.0]]


@pytest.mark.parametrize("standardize, scale, expected", [
    (True, 2.0, [-2.0, 0.0, 2.0]),  # mean 2, (unbiased) std 1 -> [-1, 0, 1], then scaled by 2
    (False, 3.0, [3.0, 6.0, 9.0]),  # scaled only
    (True, 1.0, [-1.0, 0.0, 1.0]),
])
def test_value_head_rewards_are_z_scored_then_scaled(standardize, scale, expected):
    from types import SimpleNamespace

    from reprl.heads.registry import prepare_rewards

    cfg = SimpleNamespace(standardize_reward=standardize, reward_scale=scale)
    assert prepare_rewards(_t([1.0, 2.0, 3.0]), cfg).tolist() == pytest.approx(expected)
