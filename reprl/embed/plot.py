"""Figures of `reprl embed`: the value curve and rewards of a video under a goal, with frames along the top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_video(path: Path, values: np.ndarray, rewards: np.ndarray, thumbs: list[tuple[int, Any]], *, title: str,
               fps: float | None = None, goal_thumb: Any = None, goal_label: str = "goal") -> None:
    """Three rows: frames (and the goal), V(o_t; g) over time, rewards V_{t+1} - V_t (green up, red down)."""
    plt = _mpl()
    n = len(thumbs) + (goal_thumb is not None)
    fig = plt.figure(figsize=(max(8.0, 1.3 * n), 7.0))
    grid = fig.add_gridspec(3, max(n, 1), height_ratios=[1.1, 2.0, 1.3], hspace=0.45)
    for i, (idx, img) in enumerate(thumbs):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(img.permute(1, 2, 0).numpy())
        ax.set_title(f"frame {idx}", fontsize=8)
        ax.axis("off")
    if goal_thumb is not None:
        ax = fig.add_subplot(grid[0, n - 1])
        ax.imshow(goal_thumb.permute(1, 2, 0).numpy())
        ax.set_title(goal_label, fontsize=8, color="tab:green")
        ax.axis("off")
    t = np.arange(len(values)) / fps if fps else np.arange(len(values))
    xlabel = "time (s)" if fps else "frame"
    ax_v = fig.add_subplot(grid[1, :])
    ax_v.plot(t, values, color="tab:blue", lw=1.8)
    for idx, _ in thumbs:
        ax_v.axvline(t[min(idx, len(t) - 1)], color="0.85", lw=0.8, zorder=0)
    ax_v.set_ylabel("value V(o_t; g)")
    ax_v.set_title(title, fontsize=10)
    ax_v.grid(alpha=0.3)
    ax_r = fig.add_subplot(grid[2, :], sharex=ax_v)
    colors = np.where(rewards >= 0, "tab:green", "tab:red")
    width = (t[1] - t[0]) if len(t) > 1 else 1.0
    ax_r.bar(t[:-1], rewards, width=width, color=colors, align="edge")
    ax_r.axhline(0, color="0.3", lw=0.8)
    ax_r.set_ylabel("reward")
    ax_r.set_xlabel(xlabel)
    ax_r.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def short_name(name: str, width: int = 34) -> str:
    """`name` in at most `width` characters, shortened in the middle so its start and end both show."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return f"{name[:head]}\u2026{name[len(name) - (width - 1 - head):]}"


def plot_many(path: Path, curves: list[tuple[str, np.ndarray, float]], title: str, max_panels: int = 16) -> None:
    """A grid of value curves (one panel per video, labelled with its VOC)."""
    plt = _mpl()
    curves = curves[:max_panels]
    cols = min(4, len(curves))
    rows = (len(curves) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, vals, voc) in zip(axes.flat, curves):
        ax.axis("on")
        ax.plot(vals, lw=1.4)
        ax.set_title(f"{short_name(name)}\nVOC {voc:+.2f}", fontsize=7)
        ax.set_xlabel("frame", fontsize=6)
        ax.set_ylabel("value V(o_t; g)", fontsize=6)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
