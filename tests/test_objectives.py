"""Objectives against values computed by hand (plain Python arithmetic on the formulas of docs/objectives.md)."""

import math

import pytest
import torch

from reprl.objectives import clip_loss, conjugate_term, liv_loss, r3m_loss, vip_loss
from reprl.objectives.common import chi2_conjugate, chi2_weights, tv_conjugate

G = 0.98
T = torch.tensor

START = T([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
GOAL = T([[3.0, 4.0], [1.0, 1.0], [2.0, 2.0]])
TT = T([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
T1 = T([[2.0, 0.0], [1.0, 1.0], [2.0, 1.0]])


def dist(a, b):
    return math.hypot(a[0] - b[0], a[1] - b[1])


def rows(x):
    return [list(map(float, r)) for r in x]


def hand_vip(start, goal, t, t1, pairs=None):
    """(1-g) mean d(s,g) + log(eps + mean exp(1 + g d(t1,g) - d(t,g))) over `pairs` (i -> (t_idx, goal_idx))."""
    s, g, a, b = rows(start), rows(goal), rows(t), rows(t1)
    n = len(s)
    value = (1 - G) * sum(dist(s[i], g[i]) for i in range(n)) / n
    pairs = pairs or [(i, i) for i in range(n)]
    ys = [1 + G * dist(b[k], g[j]) - dist(a[k], g[j]) for k, j in pairs]
    return value, ys


def lme(ys):
    return math.log(1e-8 + sum(math.exp(y) for y in ys) / len(ys))


def test_vip_loss_matches_the_reference_formula():
    value, ys = hand_vip(START, GOAL, TT, T1)
    loss, m = vip_loss(START, GOAL, TT, T1)
    assert loss.item() == pytest.approx(value + lme(ys), rel=1e-6)
    assert m["value_term"].item() == pytest.approx(value, rel=1e-6)
    # V(t1) > V(t) means t1 is closer to the goal
    closer = [dist(b, g) < dist(a, g) for a, b, g in zip(rows(TT), rows(T1), rows(GOAL))]
    assert m["progress_acc"].item() == pytest.approx(sum(closer) / 3)


def test_vip_negatives_form_one_extra_term_with_unshuffled_goals():
    gen = torch.Generator().manual_seed(7)
    perms = [torch.randperm(3, generator=gen).tolist() for _ in range(2)]
    value, ys = hand_vip(START, GOAL, TT, T1)
    neg = [y for p in perms for y in hand_vip(START, GOAL, TT, T1, [(p[i], i) for i in range(3)])[1]]
    loss, m = vip_loss(START, GOAL, TT, T1, num_negatives=2, generator=torch.Generator().manual_seed(7))
    assert m["neg_term"].item() == pytest.approx(lme(neg), rel=1e-6)
    assert loss.item() == pytest.approx(value + lme(ys) + lme(neg), rel=1e-6)
    joint, _ = vip_loss(START, GOAL, TT, T1, num_negatives=2, negatives="joint",
                        generator=torch.Generator().manual_seed(7))
    assert joint.item() == pytest.approx(value + lme(ys + neg), rel=1e-6)


def test_vip_embedding_penalties_act_on_all_four_roles():
    allrows = rows(START) + rows(GOAL) + rows(TT) + rows(T1)
    l1 = sum(abs(x) + abs(y) for x, y in allrows) / 12
    l2 = sum(math.hypot(x, y) for x, y in allrows) / 12
    base, _ = vip_loss(START, GOAL, TT, T1)
    loss, m = vip_loss(START, GOAL, TT, T1, l1_weight=0.1, l2_weight=0.01)
    assert m["l1"].item() == pytest.approx(l1) and m["l2"].item() == pytest.approx(l2)
    assert (loss - base).item() == pytest.approx(0.1 * l1 + 0.01 * l2, rel=1e-5)


def test_vip_with_a_given_similarity_and_the_f_divergence_family():
    sim = lambda a, b: -((a - b) ** 2).sum(-1)  # noqa: E731  (squared distance, to check it is used)
    s, g, a, b = rows(START), rows(GOAL), rows(TT), rows(T1)
    sq = lambda p, q: (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2  # noqa: E731
    value = (1 - G) * sum(sq(s[i], g[i]) for i in range(3)) / 3
    ys = [1 + G * sq(b[i], g[i]) - sq(a[i], g[i]) for i in range(3)]
    kl, _ = vip_loss(START, GOAL, TT, T1, similarity=sim)
    assert kl.item() == pytest.approx(value + lme(ys), rel=1e-6)
    chi, _ = vip_loss(START, GOAL, TT, T1, similarity=sim, f="chi2")
    chi_hand = sum(y + y * y / 4 if y >= -2 else -1.0 for y in ys) / 3
    assert chi.item() == pytest.approx(value + chi_hand, rel=1e-6)
    tv, _ = vip_loss(START, GOAL, TT, T1, similarity=sim, f="tv")
    assert tv.item() == pytest.approx(value + sum(min(max(y, -0.5), 0.5) for y in ys) / 3, rel=1e-6)


def test_conjugates_and_chi2_weights():
    y = T([-3.0, -2.0, 0.0, 2.0, 0.7])
    assert chi2_conjugate(y).tolist() == pytest.approx([-1.0, -1.0, 0.0, 3.0, 0.7 + 0.49 / 4])
    assert tv_conjugate(y).tolist() == pytest.approx([-0.5, -0.5, 0.0, 0.5, 0.5])
    assert chi2_weights(y).tolist() == pytest.approx([0.0, 0.0, 1.0, 2.0, 1.35])
    assert conjugate_term(T([0.0, math.log(3.0)]), "kl").item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert conjugate_term(T([0.0, 2.0]), "kl", alpha=2.0).item() == pytest.approx(
        2 * math.log((1 + math.e) / 2), rel=1e-6)


def cos(a, b):
    return (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))


def test_clip_term_is_symmetric_at_temperature_one_and_masks_repeated_captions():
    # three pairs whose image->text and text->image cross-entropies differ, so each half of the symmetric
    # term is visible: dropping the transposed half, or scaling the logits, changes the value
    img, txt = T([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), T([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    L = [[cos(i, t) for t in rows(txt)] for i in rows(img)]

    def ce(logits, target):
        return -logits[target] + math.log(sum(math.exp(v) for v in logits))

    rows_ce = sum(ce(L[i], i) for i in range(3)) / 3
    cols_ce = sum(ce([L[k][j] for k in range(3)], j) for j in range(3)) / 3
    assert abs(rows_ce - cols_ce) > 0.05  # the example tells the two directions apart
    loss, _ = clip_loss(img, txt)
    assert loss.item() == pytest.approx(0.5 * (rows_ce + cols_ce), rel=1e-6)
    pair, two = T([[1.0, 0.0], [0.6, 0.8]]), T([[0.8, 0.6], [0.0, 1.0]])
    masked, _ = clip_loss(pair, two, ids=T([5, 5]))  # the same caption twice: no negatives left
    assert masked.item() == pytest.approx(0.0, abs=1e-6)
    unmasked, _ = clip_loss(pair, two, ids=T([5, 5]), mask_repeated=False)
    assert unmasked.item() == pytest.approx(clip_loss(pair, two)[0].item())
    # masking keeps each pair's own logit: captions 0 and 2 equal -> row 0 loses column 2 and vice versa
    part, _ = clip_loss(img, txt, ids=T([7, 8, 7]))
    keep = [[j for j in range(3) if j == i or [7, 8, 7][j] != [7, 8, 7][i]] for i in range(3)]
    rows_m = sum(ce([L[i][j] for j in keep[i]], keep[i].index(i)) for i in range(3)) / 3
    cols_m = sum(ce([L[k][j] for k in keep[j]], keep[j].index(j)) for j in range(3)) / 3
    assert part.item() == pytest.approx(0.5 * (rows_m + cols_m), rel=1e-6)


def test_liv_loss_combines_clip_vip_image_and_vip_language_with_scaled_cosine():
    text = T([[1.0, 0.5], [0.2, 1.0], [1.0, 1.0]])
    tg = T([[0.5, 0.5], [1.0, 0.1], [0.3, 0.9]])
    S = lambda a, b: cos(a, b) / (1 - G)  # noqa: E731

    def hand(goal):
        s, g, a, b = rows(START + 0.5), rows(goal), rows(TT), rows(T1)
        value = (1 - G) * sum(-S(s[i], g[i]) for i in range(3)) / 3
        ys = [-(-1 + G * S(b[i], g[i]) - S(a[i], g[i])) for i in range(3)]
        return value + lme(ys)

    clip, _ = clip_loss(tg, text)
    loss, m = liv_loss(START + 0.5, GOAL, TT, T1, tg, text, clip_weight=0.5, vision_weight=2.0, lang_weight=3.0)
    assert m["vip_i/loss"].item() == pytest.approx(hand(GOAL), rel=1e-5)
    assert m["vip_l/loss"].item() == pytest.approx(hand(text), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * clip.item() + 2 * hand(GOAL) + 3 * hand(text), rel=1e-5)
    finetune, m2 = liv_loss(START + 0.5, GOAL, TT, T1, tg, text, lang_weight=0.0)
    assert "vip_l/loss" not in m2 and finetune.item() == pytest.approx(clip.item() + hand(GOAL), rel=1e-5)


class DotReward(torch.nn.Module):
    """A stand-in language reward with a formula we can compute by hand: R = e0 . et + sum(lang)."""

    def forward(self, e0, et, lang):
        return (e0 * et).sum(-1) + lang.sum(-1)


def test_r3m_loss_time_contrastive_and_language_terms():
    s0, s1, s2 = TT, T1, GOAL
    gen = torch.Generator().manual_seed(3)
    # one negative: tcn draws a perm for s0, then one for s2 (R3M's code shuffles them separately), then the
    # language term one per pair
    p0, p2 = (torch.randperm(3, generator=gen).tolist() for _ in range(2))
    assert p0 != p2  # so a single shared permutation would give other values
    q = [torch.randperm(3, generator=gen).tolist() for _ in range(3)]
    A, B, C = rows(s0), rows(s1), rows(s2)

    def nce(pos, negs):
        return -pos + math.log(sum(math.exp(v) for v in [pos, *negs]))

    sim = lambda a, b: -dist(a, b)  # noqa: E731
    tcn = sum((nce(sim(C[i], B[i]), [sim(C[i], A[i]), sim(C[i], C[p2[i]])])
               + nce(sim(B[i], A[i]), [sim(C[i], A[i]), sim(A[i], A[p0[i]])])) / 2 for i in range(3)) / 3
    lang = T([[0.1], [0.2], [0.0]])
    mask = [1.0, 1.0, 0.0]
    S0, G0 = rows(START), rows(GOAL)
    R = lambda e0, et, i: e0[0] * et[0] + e0[1] * et[1] + float(lang[i, 0])  # noqa: E731
    per = []
    for i in range(3):
        terms = []
        for k, (pos_f, neg_f) in enumerate(((G0, S0), (B, A), (C, B))):
            j = q[k][i]
            terms.append(nce(R(S0[i], pos_f[i], i), [R(S0[i], neg_f[i], i), R(S0[j], pos_f[j], i)]))
        per.append(sum(terms) / 3 * mask[i])
    loss, m = r3m_loss(START, GOAL, s0, s1, s2, lang=lang, lang_mask=T(mask), lang_reward=DotReward(),
                       num_negatives=1, l1_weight=0.0, l2_weight=0.0, generator=torch.Generator().manual_seed(3))
    assert m["tcn"].item() == pytest.approx(tcn, rel=1e-5)
    assert m["lang"].item() == pytest.approx(sum(per) / 3, rel=1e-5)
    assert loss.item() == pytest.approx(tcn + sum(per) / 3, rel=1e-5)


def test_vip_loss_decreases_under_gradient_descent_on_free_embeddings():
    torch.manual_seed(0)
    e = {k: torch.randn(8, 4, requires_grad=True) for k in ("s", "g", "t", "t1")}
    opt = torch.optim.Adam(e.values(), lr=0.05)
    first = None
    for _ in range(50):
        loss, _ = vip_loss(e["s"], e["g"], e["t"], e["t1"], l1_weight=0.01, l2_weight=0.01)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
