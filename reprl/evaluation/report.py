"""Suite reports: markdown tables of success rates (mean +- std over seeds) and a bar plot comparing encoders."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from reprl.utils.files import replacing, write_text_atomic


def aggregate(cells: list[dict[str, Any]], metric: str) -> dict[tuple, dict[str, float]]:
    """(demos, encoder, head, task) -> mean / std / n over seeds; task 'mean' averages tasks per seed."""
    by: dict[tuple, list[float]] = defaultdict(list)
    per_seed: dict[tuple, dict[str, float]] = defaultdict(dict)
    for c in cells:
        by[(c["demos"], c["encoder"], c["head"], c["task"])].append(c[metric])
        per_seed[(c["demos"], c["encoder"], c["head"], c["seed"])][c["task"]] = c[metric]
    for (d, e, h, _), tasks in per_seed.items():
        by[(d, e, h, "mean")].append(float(np.mean(list(tasks.values()))))
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} for k, v in by.items()}


def _table(agg: dict[tuple, dict[str, float]], demos: int, encoders: list[str], heads: list[str],
           tasks: list[str]) -> list[str]:
    cols = tasks + ["mean"]
    lines = ["| encoder | head | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 2)]
    for e in encoders:
        for h in heads:
            row = []
            for t in cols:
                a = agg.get((demos, e, h, t))
                row.append(f"{100 * a['mean']:.0f} +- {100 * a['std']:.0f}" if a else "-")
            lines.append(f"| {e} | {h} | " + " | ".join(row) + " |")
    return lines


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    suite, cells = result["suite"], result["cells"]
    if not cells:
        return
    encoders = list(result["encoders"])
    heads, tasks = suite["heads"], suite["tasks"]
    lines = [f"# {suite['name']}", "", suite.get("description", "").strip(), "",
             f"Success rate (%) over {suite['rollouts']} rollouts of {suite['horizon']} steps per cell, mean +- std "
             f"over seeds {suite['seeds']}; camera {suite['data']['camera']}, {suite['data']['frame_size']} px; head "
             f"{suite['head']['steps']} steps, batch {suite['head']['batch_size']}, lr {suite['head']['lr']}.", "",
             "Encoders: " + ", ".join(f"`{k}` = `{v}`" for k, v in result["encoders"].items()), ""]
    metrics = [("success", "success at any step within the horizon")]
    if all(c.get("success_final_step") is not None for c in cells):  # None: rollouts stopped after success
        metrics.append(("success_final_step", "success at the final step"))
    if suite.get("evaluations", 1) > 1:
        metrics.append(("success_max", f"best of {suite['evaluations']} evaluations during head training (R3M's "
                                       "protocol)"))
    for metric, title in metrics:
        agg = aggregate(cells, metric)
        for d in suite["demos"]:
            lines += [f"## {title}, {d} demos", ""] + _table(agg, d, encoders, heads, tasks) + [""]
    write_text_atomic(out_dir / "table.md", "\n".join(lines))
    plot_success(aggregate(cells, "success"), suite, encoders, out_dir / "success.png")


def plot_success(agg: dict[tuple, dict[str, float]], suite: dict[str, Any], encoders: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demos, heads, cols = suite["demos"], suite["heads"], suite["tasks"] + ["mean"]
    width_in = max(6.0, 1.6 * len(cols) * len(demos)) + 1.4  # + room for the legend on the right
    fig, axes = plt.subplots(1, len(demos), figsize=(width_in, 3.8), squeeze=False)
    combos = [(e, h) for e in encoders for h in heads]
    width = 0.8 / len(combos)
    for ax, d in zip(axes[0], demos):
        x = np.arange(len(cols))
        for i, (e, h) in enumerate(combos):
            vals = [agg.get((d, e, h, t), {"mean": np.nan, "std": 0}) for t in cols]
            label = e if len(heads) == 1 else f"{e} / {h}"
            ax.bar(x + (i - (len(combos) - 1) / 2) * width, [100 * v["mean"] for v in vals], width,
                   yerr=[100 * v["std"] for v in vals], capsize=2, label=label)
        ax.set_xticks(x, cols, rotation=20, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("success (%)")
        ax.set_title(f"{suite['name']}: {d} demos", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay visible
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
