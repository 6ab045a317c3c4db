"""Objective values computed by hand for the cases tests/test_objectives.py leaves open.

Each test pins one term of a pretraining loss (an alpha, an eps floor, a weight, which embedding is the goal, a
normalisation, a default) with inputs small enough that the expected number is worked out in the comments.
"""

import math

import pytest
import torch

from reprl.objectives import clip_loss, conjugate_term, liv_loss, r3m_loss, vip_loss
from reprl.objectives.common import chi2_conjugate
from reprl.objectives.liv import caption_ids
from reprl.objectives.vip import VIPConfig, VIPObjective

T = torch.tensor


class DotReward(torch.nn.Module):
    """A language reward computable by hand: R(e0, et, lang) = e0 . et + sum(lang)."""

    def forward(self, e0, et, lang):
        return (e0 * et).sum(-1) + lang.sum(-1)


class L2Encoder:
    """All VIPObjective.forward reads from the encoder: its value function -||a - b||."""

    @staticmethod
    def similarity(a, b):
        return -torch.linalg.vector_norm(a - b, dim=-1)


# ---- the dual conjugates (common.py) ----

def test_chi2_conjugate_is_quadratic_between_minus_two_and_minus_one():
    # y = -1.5 >= -2, so f*(y) = y + y^2/4 = -1.5 + 2.25/4 = -0.9375 (a cut-off at -1 would give -1)
    assert chi2_conjugate(T([-1.5])).item() == pytest.approx(-0.9375, rel=1e-6)


def test_kl_dual_term_is_floored_by_eps_inside_the_log():
    # log(eps + mean e^y) with y = -30: log(1e-8 + 9.3576e-14) = log(1e-8) + log1p(9.3576e-6)
    #   = -18.4206807 + 0.0000094 = -18.4206714   (without eps: -30)
    assert conjugate_term(T([-30.0, -30.0]), "kl").item() == pytest.approx(-18.4206714, rel=1e-6)


def test_chi2_dual_term_scales_by_alpha_inside_and_outside():
    # alpha * f*(y / alpha) with y = 1, alpha = 2: 2 * (0.5 + 0.25/4) = 2 * 0.5625 = 1.125   (f*(1) = 1.25)
    assert conjugate_term(T([1.0]), "chi2", alpha=2.0).item() == pytest.approx(1.125, rel=1e-6)


def test_tv_dual_term_scales_by_alpha_inside_and_outside():
    # alpha * clamp(y / alpha, -1/2, 1/2): y = 1, alpha = 4 -> 4 * 0.25 = 1.0  (no outer alpha: 0.25)
    assert conjugate_term(T([1.0]), "tv", alpha=4.0).item() == pytest.approx(1.0, rel=1e-6)
    # y = 3, alpha = 2 -> 2 * clamp(1.5) = 2 * 0.5 = 1.0   (no outer alpha: 0.5)
    assert conjugate_term(T([3.0]), "tv", alpha=2.0).item() == pytest.approx(1.0, rel=1e-6)


# ---- VIP (vip.py) ----

def test_vip_value_is_similarity_of_state_then_goal():
    # an asymmetric value S(x, g) = x - 2g (1-D), so S(start, g) != S(g, start)
    sim = lambda a, b: (a - 2 * b).sum(-1)  # noqa: E731
    start, goal, t, t1 = T([[1.0]]), T([[0.0]]), T([[2.0]]), T([[3.0]])
    loss, m = vip_loss(start, goal, t, t1, similarity=sim)
    # value term: (1 - 0.98) * -S(1, 0) = 0.02 * -1 = -0.02   (S(0, 1) = -2 would give +0.04)
    assert m["value_term"].item() == pytest.approx(-0.02, rel=1e-6)
    # y = -(r + g S(t1, g) - S(t, g)) = -(-1 + 0.98 * 3 - 2) = 0.06; log(1e-8 + e^0.06) = 0.06
    # loss = -0.02 + 0.06 = 0.04
    assert loss.item() == pytest.approx(0.04, rel=1e-5)


def test_vip_negatives_shuffle_the_states_not_the_goals(monkeypatch):
    # a 3-cycle pi = [1, 2, 0] (not its own inverse, so shuffling goals instead of states gives other pairs)
    monkeypatch.setattr("reprl.objectives.vip.permutation", lambda n, generator, device: T([1, 2, 0]))
    goal = T([[0.0], [1.0], [3.0]])
    t = T([[0.0], [2.0], [4.0]])
    # with t1 = t: y = 1 + 0.98 d - d = 1 - 0.02 d, d = |t - g|
    # negative i pairs t[pi(i)] with goal[i]: d = |2-0|, |4-1|, |0-3| = 2, 3, 3 -> y' = 0.96, 0.94, 0.94
    # neg term = log((e^0.96 + 2 e^0.94) / 3) = 0.94 + log((e^0.02 + 2) / 3) = 0.94 + 0.006711 = 0.946711
    # (goals shuffled instead: d = |0-1|, |2-3|, |4-0| = 1, 1, 4 -> 0.960397)
    _, m = vip_loss(t, goal, t, t, num_negatives=1)
    assert m["neg_term"].item() == pytest.approx(0.9467112, rel=1e-6)


def test_vip_alpha_tempers_both_the_main_and_the_negative_dual_terms():
    # start = goal: value term 0. gamma = 0.5, d = |x - g|:
    # y_0 = 1 + 0.5 |0 - 0| - |1 - 0| = 0, y_1 = 1 + 0.5 |2 - 0| - |0 - 0| = 2
    zero = T([[0.0], [0.0]])
    t, t1 = T([[1.0], [0.0]]), T([[0.0], [2.0]])
    # alpha = 2: 2 log((e^0 + e^1) / 2) = 2 log(1.8591409) = 1.2402290   (alpha = 1: log((1 + e^2) / 2) = 1.4337808)
    # the goals are equal, so any shuffle gives the same y' = {0, 2}: the negative term is 1.2402290 too
    loss, m = vip_loss(zero, zero, t, t1, gamma=0.5, alpha=2.0, num_negatives=1,
                       generator=torch.Generator().manual_seed(0))
    assert m["dual_term"].item() == pytest.approx(1.2402290, rel=1e-6)
    assert m["neg_term"].item() == pytest.approx(1.2402290, rel=1e-6)
    assert loss.item() == pytest.approx(2.4804580, rel=1e-6)


def test_vip_objective_trains_with_the_default_discount_0_98():
    # 1-D, l2 value: value term 0.02 * |2 - 0| = 0.04; y = 1 + 0.98 |1 - 0| - |2 - 0| = -0.02
    # loss = 0.04 + log(1e-8 + e^-0.02) = 0.04 - 0.02 = 0.02   (gamma = 1: 0 + (1 + 1 - 2) = 0)
    emb = {"start": T([[2.0]]), "goal": T([[0.0]]), "t": T([[2.0]]), "t1": T([[1.0]])}
    loss, _ = VIPObjective(VIPConfig()).forward(emb, [], L2Encoder())
    assert loss.item() == pytest.approx(0.02, rel=1e-5)


# ---- LIV (liv.py) ----

def test_clip_term_normalises_images_and_texts_before_the_dot_product():
    # unit vectors of both are the identity, so logits = I and each direction's cross-entropy is
    # -1 + log(e^1 + e^0) = log(1 + e^-1) = 0.3132617
    # (raw image rows: logits diag(2, 1) -> 0.2200948; raw text rows: diag(1, 3) -> 0.1809245)
    loss, _ = clip_loss(T([[2.0, 0.0], [0.0, 1.0]]), T([[1.0, 0.0], [0.0, 3.0]]))
    assert loss.item() == pytest.approx(0.3132617, rel=1e-6)


def test_repeated_captions_match_up_to_case_and_surrounding_spaces():
    ids = caption_ids(["Open the door", "  open the door ", "close the door"])
    assert ids[0] == ids[1] and ids[0] != ids[2]
    # the two samples share one caption: each row and column keeps only its own logit, CE = 0
    eye = T([[1.0, 0.0], [0.0, 1.0]])
    masked, _ = clip_loss(eye, eye, ids=caption_ids(["Open the door", "open the door "]))
    assert masked.item() == pytest.approx(0.0, abs=1e-6)


def test_liv_keeps_repeated_captions_as_negatives_when_masking_is_off():
    # clip only; logits = I: log(1 + e^-1) = 0.3132617 per row and column (masked it would be 0)
    eye = T([[1.0, 0.0], [0.0, 1.0]])
    loss, _ = liv_loss(eye, eye, eye, eye, eye, eye, vision_weight=0.0, lang_weight=0.0, ids=T([5, 5]),
                       mask_repeated_captions=False)
    assert loss.item() == pytest.approx(0.3132617, rel=1e-6)


def _liv_vision(**kw):
    # goal (1, 0); start (0, 1): cos 0; t (1, 0): cos 1; t1 (0, 1): cos 0
    return liv_loss(T([[0.0, 1.0]]), T([[1.0, 0.0]]), T([[1.0, 0.0]]), T([[0.0, 1.0]]), T([[1.0, 0.0]]),
                    T([[1.0, 0.0]]), clip_weight=0.0, lang_weight=0.0, gamma=0.5, **kw)[0]


def test_liv_similarity_is_cosine_over_one_minus_its_own_gamma():
    # gamma = 0.5: S = cos / 0.5 = 2 cos. value term 0.5 * -S(start) = 0
    # y = -(-1 + 0.5 * S(t1) - S(t)) = -(-1 + 0 - 2) = 3; log e^3 = 3 -> loss 3.0
    # (S = cos / 0.02 with gamma 0.5 elsewhere: y = 51 -> 51.0)
    assert _liv_vision().item() == pytest.approx(3.0, rel=1e-6)


def test_liv_passes_its_negatives_to_vip():
    # one sample: its only shuffle is itself, so the negative term equals the dual term: 0 + 3 + 3 = 6.0
    assert _liv_vision(num_negatives=1).item() == pytest.approx(6.0, rel=1e-6)


# ---- R3M (r3m.py) ----

def test_r3m_weights_the_time_contrastive_and_language_terms():
    # 1-D, S = -|a - b|: s0 = 0, s1 = 1, s2 = 2 -> S(s2,s1) = -1, S(s2,s0) = -2, S(s1,s0) = -1
    # t_a = log(e^-1 + e^-2) + 1 = log(1 + e^-1) = 0.3132617 = t_b -> tcn = 0.3132617
    # language, R = e0 . et, start = 1, goal = 3: log(1 + e^(R_neg - R_pos)) for
    #   (goal, start): 3 vs 1 -> log(1 + e^-2) = 0.1269280; (s1, s0): 1 vs 0 and (s2, s1): 2 vs 1 -> 0.3132617
    #   lang = (0.1269280 + 2 * 0.3132617) / 3 = 0.2511505
    # loss = 2 * 0.3132617 + 0.5 * 0.2511505 = 0.7520986   (tcn weight ignored: 0.4388369, lang: 0.8776738)
    loss, m = r3m_loss(T([[1.0]]), T([[3.0]]), T([[0.0]]), T([[1.0]]), T([[2.0]]), lang=T([[0.0]]),
                       lang_reward=DotReward(), tcn_weight=2.0, lang_weight=0.5, l1_weight=0.0, l2_weight=0.0,
                       num_negatives=0)
    assert m["tcn"].item() == pytest.approx(0.3132617, rel=1e-6)
    assert m["lang"].item() == pytest.approx(0.2511505, rel=1e-6)
    assert loss.item() == pytest.approx(0.7520986, rel=1e-6)


def test_r3m_language_reward_reads_the_start_frame_first():
    from reprl.objectives.r3m import language_loss

    class LaterFrame(torch.nn.Module):
        """An asymmetric stand-in: R(e0, et, lang) = sum(et), so swapping the two frames changes every term."""

        def forward(self, e0, et, lang):
            return et.sum(-1)

    start, goal, s0, s1, s2 = (torch.tensor([[v]]) for v in (1.0, 3.0, 0.0, 1.0, 2.0))
    loss, _ = language_loss(start, goal, s0, s1, s2, torch.zeros(1, 4), torch.ones(1), LaterFrame(),
                            num_negatives=0, generator=None)
    # three terms -log softmax(pos among [pos, neg]) = log(1 + e^(neg - pos)), pos = R(start, frame) = frame:
    # (goal 3 vs start 1), (s1 1 vs s0 0), (s2 2 vs s1 1); with R(frame, start) every pos would be 1 instead
    expected = (math.log(1 + math.exp(-2)) + 2 * math.log(1 + math.exp(-1))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_r3m_penalties_act_on_all_five_roles_with_their_own_weights():
    # start (3, 4), goal 0, s0 (1, 0), s1 (0, 2), s2 0: L1 norms 7, 0, 1, 2, 0 -> mean 2.0
    #   L2 norms 5, 0, 1, 2, 0 -> mean 1.6; loss = 0.1 * 2.0 + 0.01 * 1.6 = 0.216
    # (weights swapped: 0.18; only s0, s1, s2: 0.1 * 1 + 0.01 * 1 = 0.11)
    z = T([[0.0, 0.0]])
    loss, m = r3m_loss(T([[3.0, 4.0]]), z, T([[1.0, 0.0]]), T([[0.0, 2.0]]), z, tcn_weight=0.0, lang_weight=0.0,
                       l1_weight=0.1, l2_weight=0.01)
    assert m["l1"].item() == pytest.approx(2.0) and m["l2"].item() == pytest.approx(1.6)
    assert loss.item() == pytest.approx(0.216, rel=1e-6)


def test_hand_numbers_above():
    """The decimals quoted above, from the formulas."""
    assert math.log(1e-8 + math.exp(-30)) == pytest.approx(-18.4206714, rel=1e-8)
    assert 0.94 + math.log((math.exp(0.02) + 2) / 3) == pytest.approx(0.9467112, rel=1e-7)
    assert 2 * math.log((1 + math.e) / 2) == pytest.approx(1.2402290, rel=1e-7)
    a, b = math.log(1 + math.exp(-1)), math.log(1 + math.exp(-2))
    assert a == pytest.approx(0.3132617, rel=1e-7) and b == pytest.approx(0.1269280, rel=1e-6)
    assert 2 * a + 0.5 * (b + 2 * a) / 3 == pytest.approx(0.7520986, rel=1e-7)
