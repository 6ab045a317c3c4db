"""VIP's dual value objective (Ma et al., ICLR 2023), as the reference trainer computes it.

With value V(x; g) = S(x, g) (S = -||phi(x) - phi(g)|| by default), gamma = 0.98, reward r = -1:

    L_VIP = (1 - gamma) * mean_i[-V(start_i; g_i)]
            + log(eps + mean_i exp(-(r + gamma * V(t1_i; g_i) - V(t_i; g_i))))          eps = 1e-8

Negatives (num_negatives > 0): for each of num_negatives random permutations pi of the batch, the shuffled
pairs (t_pi(i), t1_pi(i)) with the unshuffled goal g_i give y'_i = -(r + gamma V(t1_pi(i); g_i) -
V(t_pi(i); g_i)); all of them form ONE extra term log(eps + mean exp(y')) added to the loss
(`negatives="separate"`, the reference code). `negatives="joint"` puts them in the main term instead (the
paper's description). Embedding penalties l1 / l2 act on all 4B embeddings.

`f` picks the dual's f-divergence (docs/objectives.md): "kl" is VIP; "chi2" and "tv" replace
log-mean-exp with per-sample conjugates that are bounded below and give unbiased mini-batch gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reprl.encoders.base import similarity as value_similarity
from reprl.errors import ReprlError
from reprl.objectives.base import Objective, ValueConfig
from reprl.objectives.common import (
    EPS,
    F_DIVERGENCES,
    Gather,
    Similarity,
    conjugate_term,
    embedding_penalties,
    identity,
    permutation,
)


def neg_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return value_similarity(a, b, "l2")


def vip_loss(start: torch.Tensor, goal: torch.Tensor, t: torch.Tensor, t1: torch.Tensor, *, gamma: float = 0.98,
             num_negatives: int = 0, l1_weight: float = 0.0, l2_weight: float = 0.0, f: str = "kl",
             alpha: float = 1.0, similarity: Similarity | None = None, negatives: str = "separate",
             reward: float = -1.0, eps: float = EPS, generator: torch.Generator | None = None,
             gather: Gather | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VIP loss for embeddings [B, D] of (start, goal, t, t+1); returns (loss, metrics).

    gather: applied to each embedding first (e.g. all-gather across ranks with gradients).
    generator: draws the negatives' permutations (pass the same seed on every rank).
    """
    if f not in F_DIVERGENCES:
        raise ReprlError(f"unknown f-divergence {f!r}; choose one of {', '.join(F_DIVERGENCES)}")
    if negatives not in ("separate", "joint"):
        raise ReprlError(f"negatives must be 'separate' or 'joint', got {negatives!r}")
    gather = gather or identity
    sim = similarity or neg_l2
    start, goal, t, t1 = (gather(x) for x in (start, goal, t, t1))
    v_start, v_t, v_t1 = sim(start, goal), sim(t, goal), sim(t1, goal)  # [B]
    value_term = (1 - gamma) * (-v_start).mean()
    y = -(reward + gamma * v_t1 - v_t)  # [B]
    y_neg = []
    for _ in range(num_negatives):
        perm = permutation(len(goal), generator, goal.device)
        y_neg.append(-(reward + gamma * sim(t1[perm], goal) - sim(t[perm], goal)))
    metrics: dict[str, torch.Tensor] = {}
    if negatives == "joint" and y_neg:
        dual_term = conjugate_term(torch.cat([y, *y_neg]), f, alpha, eps)
        neg_term = torch.zeros((), device=y.device)
    else:
        dual_term = conjugate_term(y, f, alpha, eps)
        neg_term = conjugate_term(torch.cat(y_neg), f, alpha, eps) if y_neg else torch.zeros((), device=y.device)
    penalty, pen_metrics = embedding_penalties([start, goal, t, t1], l1_weight, l2_weight)
    loss = value_term + dual_term + neg_term + penalty
    metrics.update({
        "loss": loss.detach(), "value_term": value_term.detach(), "dual_term": dual_term.detach(),
        "neg_term": neg_term.detach(), **pen_metrics,
        "v_start": v_start.mean().detach(), "v_goal_gap": (v_t1 - v_t).mean().detach(),
        "progress_acc": (v_t1 > v_t).float().mean().detach(),
        "emb_norm": torch.linalg.vector_norm(torch.cat([start, goal, t, t1]), dim=-1).mean().detach(),
    })
    return loss, metrics


@dataclass
class VIPConfig(ValueConfig):
    """VIP's settings."""

    l1_weight: float = 0.0  # penalty on the embeddings' L1 norm
    l2_weight: float = 0.0  # penalty on the embeddings' L2 norm


class VIPObjective(Objective):
    name, mode, goal_last_mode = "vip", "vip", "vip_last"
    roles = ("start", "goal", "t", "t1")
    Config = VIPConfig

    def forward(self, emb, text, encoder, *, generator=None, gather=None):
        c = self.cfg
        return vip_loss(emb["start"], emb["goal"], emb["t"], emb["t1"], gamma=c.gamma, num_negatives=c.num_negatives,
                        l1_weight=c.l1_weight, l2_weight=c.l2_weight, f=c.f, alpha=c.alpha,
                        similarity=encoder.similarity, negatives=c.negatives, generator=generator, gather=gather)
