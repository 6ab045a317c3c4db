"""Small statistics used by reports: percentile-bootstrap intervals, ROC AUC and a ridge-regression probe.

Pure numpy, no fitting libraries: each function is a few lines whose result can be checked by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from reprl.errors import ReprlError


def bootstrap_resamples(strata: Sequence[Any], n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """`n_boot` index arrays over len(strata) samples, each drawing with replacement within each stratum as many
    as it holds (strata in order of first appearance), from one seeded generator: the resamples of
    `bootstrap_ci`, for statistics computed on their own (several at once from one resample)."""
    labels = list(strata)
    groups = [np.flatnonzero(np.asarray([lab == g for lab in labels])) for g in dict.fromkeys(labels)]
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])


def percentile_interval(point: float, resampled: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """{mean: point, lo, hi, n}: the percentile interval of the finite resampled values (n of them)."""
    stats = [s for s in resampled if np.isfinite(s)]
    if not stats:
        return {"mean": point, "lo": float("nan"), "hi": float("nan"), "n": 0}
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return {"mean": point, "lo": float(lo), "hi": float(hi), "n": len(stats)}


def bootstrap_ci(samples: Sequence[Any], statistic: Callable[[list[Any]], float], *, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95, strata: Sequence[Any] | None = None) -> dict[str, float]:
    """Point estimate and percentile-bootstrap interval of `statistic(samples)`.

    Each resample draws len(samples) items with replacement; with `strata` (one label per sample, e.g. the
    task) it draws within each stratum as many as it holds, so every resample keeps the design. Resamples
    whose statistic is not finite (e.g. an AUC with no positives drawn) are dropped; `n` counts the kept ones.
    """
    samples = list(samples)
    if not samples:
        raise ReprlError("bootstrap needs at least one sample")
    labels = [0] * len(samples) if strata is None else list(strata)
    stats = [statistic([samples[i] for i in idx]) for idx in bootstrap_resamples(labels, n_boot, seed)]
    return percentile_interval(float(statistic(samples)), stats, level)


def resampled_means(x: Sequence[float] | np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot] means of x, each over len(x) items drawn with replacement: the inner level of a two-level
    bootstrap (e.g. rollouts within a seed)."""
    arr = np.asarray(x, dtype=np.float64)
    return arr[rng.integers(len(arr), size=(n_boot, len(arr)))].mean(1)


def two_level_ci(inner: Sequence[np.ndarray], rng: np.random.Generator, level: float = 0.95) -> dict[str, float]:
    """Percentile interval of a mean over units (e.g. seeds) resampled with replacement, where unit u's value
    in resample b is inner[u][b] (its own resampled mean, from resampled_means): both levels vary at once."""
    m = np.stack([np.asarray(v, dtype=np.float64) for v in inner])  # [units, n_boot]
    pick = rng.integers(len(m), size=(m.shape[1], len(m)))
    boot = m[pick, np.arange(m.shape[1])[:, None]].mean(1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return {"lo": float(lo), "hi": float(hi)}


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative, ties
    counting one half (the Mann-Whitney U statistic / (n_pos * n_neg)). NaN when either set is empty."""
    pos, neg = np.asarray(positives, dtype=np.float64), np.asarray(negatives, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def format_ci(ci: dict[str, float], scale: float = 1.0, digits: int = 3) -> str:
    """'0.812 [0.790, 0.833]' (or '-' when the interval could not be computed)."""
    if not np.isfinite(ci["mean"]):
        return "-"
    mean, lo, hi = (scale * ci[k] for k in ("mean", "lo", "hi"))
    if not np.isfinite(lo):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
