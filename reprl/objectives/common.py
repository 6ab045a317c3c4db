"""Pieces shared by the objectives: the dual-RL f-divergence conjugates, embedding penalties, and gathering
embeddings across processes with gradients (so N processes x B/N samples give the loss of 1 x B)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from reprl.errors import ReprlError

Gather = Callable[[torch.Tensor], torch.Tensor]
Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
F_DIVERGENCES = ("kl", "chi2", "tv")
EPS = 1e-8


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] per process -> [world * B, ...] in rank order, with gradients flowing back to every rank."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API that gloo cannot back: keep it
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x.contiguous()), dim=0)


def chi2_conjugate(y: torch.Tensor) -> torch.Tensor:
    """f*(y) for Pearson chi^2, f(x) = (x - 1)^2: y + y^2/4 for y >= -2, else -1 (continuous, bounded below)."""
    return torch.where(y >= -2, y + y * y / 4, torch.full_like(y, -1.0))


def tv_conjugate(y: torch.Tensor) -> torch.Tensor:
    """f*(y) for total variation, f(x) = |x - 1| / 2: max(y, -1/2), clipped at +1/2 (f* is infinite above)."""
    return y.clamp(-0.5, 0.5)


def conjugate_term(y: torch.Tensor, f: str = "kl", alpha: float = 1.0, eps: float = EPS) -> torch.Tensor:
    """The dual term of a batch of y = 1 + gamma * U(o') - U(o) (U = distance-like, -V).

    kl:   alpha * log(eps + mean exp(y / alpha))  (VIP: alpha = 1)
    chi2: alpha * mean f*_chi2(y / alpha)
    tv:   alpha * mean f*_tv(y / alpha)
    The chi^2 and TV forms are per-sample means, so their mini-batch gradients are unbiased.
    """
    if f == "kl":
        return alpha * torch.log(eps + torch.exp(y / alpha).mean())
    if f == "chi2":
        return alpha * chi2_conjugate(y / alpha).mean()
    if f == "tv":
        return alpha * tv_conjugate(y / alpha).mean()
    raise ReprlError(f"unknown f-divergence {f!r}; choose one of {', '.join(F_DIVERGENCES)}")


def chi2_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-sample weights max(0, 1 + y/2) that the chi^2 dual puts on transitions (used by RWR heads)."""
    return (1 + y / 2).clamp_min(0)


def embedding_penalties(embeddings: list[torch.Tensor], l1_weight: float, l2_weight: float
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """l1_weight * mean ||e||_1 + l2_weight * mean ||e||_2 over all given embeddings (activations, not weights)."""
    allemb = torch.cat(embeddings)
    l1 = allemb.abs().sum(-1).mean()
    l2 = torch.linalg.vector_norm(allemb, dim=-1).mean()
    return l1_weight * l1 + l2_weight * l2, {"l1": l1.detach(), "l2": l2.detach()}


def permutation(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """A random permutation drawn on the CPU generator (the same on every rank for the same seed)."""
    return torch.randperm(n, generator=generator).to(device)
