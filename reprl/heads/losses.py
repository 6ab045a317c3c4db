"""Per-batch losses and weights of the dual-RL heads (pure torch, no networks): docs/heads.md has the math.

Conventions: y = Q_target(s, a) - V(s) (the value's residual), all losses are batch means, every exponent
is clipped before exp() so no loss or weight overflows, and nothing divides by a batch statistic that can
be zero (a batch of identical states gives finite losses and gradients).
"""

from __future__ import annotations

import math

import torch

from reprl.errors import ReprlError

FDVL_DIVERGENCES = ("chi2", "tv", "rkl")


def expectile_loss(y: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric L2: mean |tau - 1(y < 0)| y^2; V -> the tau-expectile of Q_target (tau > 0.5: upper)."""
    weight = torch.where(y < 0, 1.0 - expectile, expectile)
    return (weight * y * y).mean()


def gumbel_loss(y: torch.Tensor, temperature: float, max_z: float = 7.0, min_norm: float = -1.0,
                normaliser_rows: torch.Tensor | None = None) -> torch.Tensor:
    """Extreme-Q (Gumbel) value loss, max-normalised: with z = clip(y / T, max=max_z) and m = max(stop_grad(max z),
    min_norm), mean[exp(z - m) - z exp(-m) - exp(-m)] = exp(-m) * mean[exp(z) - z - 1]. The rescaling by exp(-m)
    keeps the loss and its gradient finite however large y gets; the minimiser is unchanged. `normaliser_rows`:
    more values of y that count in the max m but not in the mean (ReCOIL takes m over both halves of its batch
    and averages the mixture half only)."""
    z = (y / temperature).clamp(max=max_z)
    zs = z.detach() if normaliser_rows is None else torch.cat([z.detach(), (normaliser_rows.detach() / temperature)
                                                               .clamp(max=max_z)])
    m = zs.max().clamp(min=min_norm)
    return (torch.exp(z - m) - z * torch.exp(-m) - torch.exp(-m)).mean()


def fdvl_value_loss(y: torch.Tensor, f: str, temperature: float, max_z: float = 7.0) -> torch.Tensor:
    """f-DVL's semi-gradient value loss on y = Q_target - V with temperature a:
    chi2: a * max(y + y^2/4, 0) - (1 - a) y;   tv: a * max(y, 0) - (1 - a) y (a pinball loss);
    rkl: the max-normalised Gumbel loss of y / a."""
    if f == "chi2":
        return (temperature * (y + y * y / 4).clamp(min=0) - (1 - temperature) * y).mean()
    if f == "tv":
        return (temperature * y.clamp(min=0) - (1 - temperature) * y).mean()
    if f == "rkl":
        return gumbel_loss(y, temperature, max_z)
    raise ReprlError(f"unknown f-DVL divergence {f!r}; choose one of {', '.join(FDVL_DIVERGENCES)}")


def clipped_exp(x: torch.Tensor, max_weight: float) -> torch.Tensor:
    """min(exp(x), max_weight), computed as exp(min(x, log max_weight)) so it never overflows."""
    return torch.exp(x.clamp(max=math.log(max_weight)))


def advantage_weights(advantage: torch.Tensor, beta: float, max_weight: float = 100.0) -> torch.Tensor:
    """IQL / f-DVL / ReCOIL actor weights min(exp(beta * A), max_weight) (no gradient to the critics)."""
    return clipped_exp(beta * advantage.detach(), max_weight)


def awr_weights(advantage: torch.Tensor, beta: float = 1.0, max_weight: float = 20.0) -> torch.Tensor:
    """AWR: advantages z-scored over the batch, then min(exp(A_z / beta), max_weight). A batch with no spread
    (identical advantages) z-scores to 0, i.e. weight 1 everywhere."""
    a = advantage.detach()
    z = (a - a.mean()) / a.std(unbiased=False).clamp_min(1e-6) if a.numel() > 1 else torch.zeros_like(a)
    return clipped_exp(z / beta, max_weight)


def td_target(reward: torch.Tensor, next_value: torch.Tensor, done: torch.Tensor, discount: float) -> torch.Tensor:
    """r + gamma * (1 - done) * V(s'), without gradient."""
    return (reward + discount * (1.0 - done) * next_value).detach()


def recoil_q_targets(next_value: torch.Tensor, done: torch.Tensor, discount: float, expert_reward: float = 2.0,
                     mixture_reward: float = -2.0) -> tuple[float, torch.Tensor]:
    """ReCOIL's critic targets (no environment reward). Expert pairs: the constant expert_reward / (1 - gamma)
    (200 by default). Mixture transitions: mixture_reward + gamma (1 - done) V(s') + gamma done * V_absorbing,
    V_absorbing = mixture_reward / (1 - gamma) (-200): a terminal transition enters an absorbing state that
    keeps paying the mixture reward forever. Returns (expert target, mixture targets)."""
    absorbing = mixture_reward / (1 - discount)
    mix = mixture_reward + discount * (1.0 - done) * next_value + discount * done * absorbing
    return expert_reward / (1 - discount), mix.detach()


def contrastive_energy_loss(sa: torch.Tensor, next_s: torch.Tensor, perm: torch.Tensor | None = None) -> torch.Tensor:
    """TRAIL's energy-based transition loss. E_ij = -||sa_i - next_i'_j||^2, loss = mean_i(-E_ii + logsumexp_j E_ij),
    where next' is next_s with the rows listed in `perm` (a [2, k] tensor: rows perm[0] take the embeddings of
    rows perm[1]) shuffled among themselves, the regularising 'shuffle' of a fraction of the targets."""
    if perm is not None and perm.numel():
        next_s = next_s.clone()
        next_s[perm[0]] = next_s[perm[1]]
    sq = (sa * sa).sum(1, keepdim=True) + (next_s * next_s).sum(1)[None] - 2 * sa @ next_s.T  # no sqrt: finite grads
    energy = -sq
    return (-energy.diagonal() + torch.logsumexp(energy, dim=1)).mean()


def shuffle_rows(n: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """[2, k] row pairs for contrastive_energy_loss: k = round(fraction * n) rows, permuted among themselves."""
    k = int(round(fraction * n))
    if k < 2:
        return torch.zeros(2, 0, dtype=torch.long)
    rows = torch.randperm(n, generator=generator)[:k]
    return torch.stack([rows, rows[torch.randperm(k, generator=generator)]])


def gaussian_nll(mean: torch.Tensor, log_std: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] negative log-likelihood of target under a diagonal Gaussian (summed over dims)."""
    return 0.5 * (((target - mean) / log_std.exp()) ** 2 + 2 * log_std + math.log(2 * math.pi)).sum(-1)
