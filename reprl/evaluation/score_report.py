"""The reward-quality report of `reprl score --report DIR`: results.json, table.md, metrics.png, curves.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reprl.scoring import LOWER_IS_BETTER, METRICS, TEXT_METRICS
from reprl.stats import format_ci
from reprl.utils.files import StagingDir, replacing, write_json, write_text_atomic

LABELS = {
    "voc_last": "VOC, goal = own last frame", "bump_last": "bump rate, goal = own last frame",
    "voc_other": "VOC, goal = other episodes", "bump_other": "bump rate, goal = other episodes",
    "voc_text": "VOC, goal = the video's caption (text)", "bump_text": "bump rate, goal = the video's caption (text)",
    "fail_auc_final": "failure AUC, final value", "fail_auc_sum": "failure AUC, summed reward",
    "near_auc": "near-miss AUC (final vs 90%)", "probe_hand": "probe R^2, hand position",
    "probe_object": "probe R^2, object position",
}


def table_lines(scores: dict[str, dict[str, dict[str, float]]], names: dict[str, str]) -> list[str]:
    """Markdown table: one row per metric, one column per encoder, 'mean [lo, hi]'."""
    encoders = list(scores)
    lines = ["| metric | " + " | ".join(names[e] for e in encoders) + " |", "|" + " --- |" * (len(encoders) + 1)]
    for m in METRICS:
        if m in TEXT_METRICS and not any(np.isfinite(scores[e].get(m, {}).get("mean", np.nan)) for e in encoders):
            continue  # no encoder here has a text tower (or no video a caption): no rows of '-'
        arrow = "lower is better" if m in LOWER_IS_BETTER else "higher is better"
        cells = [format_ci(scores[e][m]) if m in scores[e] else "-" for e in encoders]
        lines.append(f"| {LABELS[m]} ({arrow}) | " + " | ".join(cells) + " |")
    return lines


REFERENCE = "shards' reward (privileged)"


def breakdown_lines(breakdown: dict[str, dict[str, dict[str, float]]], names: dict[str, str],
                    reference: dict[str, dict[str, float]] | None = None) -> list[str]:
    """Markdown table of VOC by group (tasks, then expert episodes and other behaviours): one row per group,
    one column per encoder, and a last column for the shards' own reward where there is one."""
    columns = {names[e]: breakdown[e] for e in breakdown}
    if reference is not None:
        columns[REFERENCE] = reference
    groups = list(dict.fromkeys(g for b in columns.values() for g in b))
    lines = ["| group | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for g in groups:
        cells = [f"{format_ci(b[g])} (n {b[g]['videos']})" if g in b else "-" for b in columns.values()]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def plot(scores: dict[str, dict[str, dict[str, float]]], names: dict[str, str], path: Path, title: str) -> None:
    """One panel per metric, a bar per encoder, error bars = the 95% bootstrap interval over videos."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encoders = list(scores)
    metrics = [m for m in METRICS if any(np.isfinite(scores[e].get(m, {}).get("mean", np.nan)) for e in encoders)]
    cols = 3
    rows = max(1, -(-len(metrics) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows + 0.6), squeeze=False)
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # tab10 is a ListedColormap
    x = np.arange(len(encoders))
    for ax, m in zip(axes.flat, metrics):
        cell = [scores[e].get(m, {}) for e in encoders]  # an encoder may lack a metric others have
        mean = np.array([c.get("mean", np.nan) for c in cell])
        lo = np.array([c.get("lo", np.nan) for c in cell])
        hi = np.array([c.get("hi", np.nan) for c in cell])
        err = np.nan_to_num(np.stack([mean - lo, hi - mean]), nan=0.0)
        ax.bar(x, mean, yerr=err, capsize=3, color=[colors[i % 10] for i in x])
        ax.set_title(LABELS[m] + (" (lower better)" if m in LOWER_IS_BETTER else ""), fontsize=9)
        ax.set_xticks(x, [names[e] for e in encoders], rotation=30, ha="right", fontsize=8)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel("score", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{title}\nerror bars: 95% bootstrap intervals over videos (resampled within each task)", fontsize=10)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_curves(curves: dict[str, list[tuple[str, np.ndarray]]], names: dict[str, str], path: Path, title: str,
                max_panels: int = 10) -> None:
    """Value curves V(o_t; goal = other episodes) of the same videos under each encoder, one panel per video.
    Each curve is min-max scaled to [0, 1] so encoders with different value ranges share an axis; a good
    value rises steadily to 1 at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encoders = list(curves)
    n = min(max_panels, min(len(c) for c in curves.values()))
    if n == 0:
        return
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(7.5, 3.0 * cols), 2.3 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # tab10 is a ListedColormap
    for i, ax in enumerate(list(axes.flat)[:n]):
        ax.axis("on")
        for j, e in enumerate(encoders):
            label, v = curves[e][i]
            span = float(v.max() - v.min()) or 1.0
            ax.plot(np.linspace(0, 1, len(v)), (v - v.min()) / span, lw=1.3, color=colors[j % 10], label=names[e])
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("share of the episode", fontsize=7)
        ax.set_ylabel("scaled value", fontsize=7)
        ax.tick_params(labelsize=6)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{title}: value curves V(o_t; g)\ng = mean last frame of the other successful episodes of the "
                 "task; each curve scaled to [0, 1]", fontsize=9)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


REPORT_FILES = ("results.json", "table.md", "metrics.png", "curves.png")


def write_score_report(out_dir: str | Path, result: dict[str, Any],
                       curves: dict[str, list[tuple[str, np.ndarray]]] | None = None,
                       inputs: list[str | Path] | None = None) -> None:
    """result: {'scores': {encoder: {metric: ci}}, 'names': {encoder: short name}, 'data': ..., 'settings': ...}.
    The report is built in a staging folder and swapped in whole: it replaces an earlier report of reprl score,
    never another folder (or one of `inputs`), and an interrupted write leaves the old report as it was. Files
    of the folder that the report does not write (a user's notes, other tables) are kept."""
    with StagingDir(out_dir, overwrite=True, command="score", inputs=inputs or (), own=REPORT_FILES) as out:
        write_json(out / "results.json", result)
        data = result["data"]
        tasks = ", ".join(f"{t} ({c['succeeded']} ok / {c['failed']} failed)" for t, c in data["tasks"].items())
        lines = [f"# Reward quality: {result['title']}", "",
                 f"{data['videos']} held-out videos: {tasks}.", "",
                 "Each cell: value on all videos [95% bootstrap interval over videos, resampled within each task, "
                 f"{result['settings']['n_boot']} resamples].", "",
                 *table_lines(result["scores"], result["names"]), "",
                 *(["VOC with goal = other episodes, by group (successful videos only), mean [95% bootstrap "
                    "interval over the group's videos] (n videos). The last column, where the shards carry a "
                    "per-step reward, is the VOC of that reward over time: a privileged reference (a "
                    "simulator's shaped reward reads the state), not an encoder.", "",
                    *breakdown_lines(result["breakdown"], result["names"], result.get("reward_reference")), ""]
                   if result.get("breakdown") else []),
                 "Encoders: " + ", ".join(f"`{result['names'][e]}` = `{result.get('sources', {}).get(e, e)}`"
                                          for e in result["scores"]), ""]
        write_text_atomic(out / "table.md", "\n".join(lines))
        plot(result["scores"], result["names"], out / "metrics.png", result["title"])
        if curves:
            plot_curves(curves, result["names"], out / "curves.png", result["title"])
