"""Suite reports: markdown tables of success rates (mean over seeds with a 95% bootstrap interval over seeds
and rollouts) and a bar plot that pairs each encoder's heads (one colour family per encoder, one hatch per
head, the intervals as error bars)."""

from __future__ import annotations

import textwrap
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from reprl.stats import format_ci, resampled_means, two_level_ci
from reprl.utils.files import replacing, write_text_atomic

BOOTSTRAP = 2000  # resamples of the 95% intervals
CI_NOTE = "95% bootstrap interval over seeds and, within each seed, its rollouts"


def outcomes(cell: dict[str, Any], metric: str) -> np.ndarray:
    """Per-rollout 0/1 outcomes of a cell for `metric` (the cell's rate alone when rollouts were not recorded)."""
    evals = cell.get("evaluations") or []
    if metric == "success_max" and evals:
        ev = max(evals, key=lambda e: e["success"])
    else:
        ev = evals[-1] if evals else {}
    if metric in ("success", "success_max") and "first_success" in ev:
        return np.array([f is not None for f in ev["first_success"]], float)
    if metric == "success_final_step" and "final" in ev:
        return np.array(ev["final"], float)
    return np.array([float(cell[metric])])


def aggregate(cells: list[dict[str, Any]], metric: str) -> dict[tuple, dict[str, float]]:
    """(demos, encoder, head, task) -> mean / std / n over seeds and a 95% bootstrap interval (lo, hi) over seeds
    and rollouts; task 'mean' averages tasks per seed (and per resample). Each cell and each row draws from its
    own random stream, seeded by its name, so a row's interval does not change when other encoders, heads or
    tasks are added to the table."""
    by: dict[tuple, list[float]] = defaultdict(list)
    boots: dict[tuple, dict[Any, np.ndarray]] = defaultdict(dict)
    per_seed: dict[tuple, dict[str, float]] = defaultdict(dict)
    for c in cells:
        key = (c["demos"], c["encoder"], c["head"], c["task"])
        by[key].append(c[metric])
        boots[key][c["seed"]] = resampled_means(outcomes(c, metric), BOOTSTRAP, _rng(*key, c["seed"]))
        per_seed[(c["demos"], c["encoder"], c["head"], c["seed"])][c["task"]] = c[metric]
    for (d, e, h, seed), tasks in per_seed.items():
        by[(d, e, h, "mean")].append(float(np.mean(list(tasks.values()))))
        boots[(d, e, h, "mean")][seed] = np.mean([boots[(d, e, h, t)][seed] for t in sorted(tasks)], axis=0)
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v),
                **two_level_ci([boots[k][seed] for seed in sorted(boots[k])], _rng(*k))} for k, v in by.items()}


def _rng(*name: Any) -> np.random.Generator:
    """A random stream of its own for one cell or row, the same in every run and every table."""
    return np.random.default_rng(zlib.crc32(repr(name).encode()))


def _table(agg: dict[tuple, dict[str, float]], demos: int, encoders: list[str], heads: list[str],
           tasks: list[str]) -> list[str]:
    cols = tasks + ["mean"]
    lines = ["| encoder | head | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 2)]
    for e in encoders:
        for h in heads:
            row = []
            for t in cols:
                a = agg.get((demos, e, h, t))
                row.append(format_ci(a, scale=100, digits=0) if a else "-")
            lines.append(f"| {e} | {h} | " + " | ".join(row) + " |")
    return lines


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    suite, cells = result["suite"], result["cells"]
    if not cells:
        return
    encoders = list(result["encoders"])
    heads, tasks = suite["heads"], suite["tasks"]
    lines = [f"# {suite['name']}", "", suite.get("description", "").strip(), "",
             f"Success rate (%) over {suite['rollouts']} rollouts of {suite['horizon']} steps per cell: mean over "
             f"seeds {suite['seeds']} [{CI_NOTE}, {BOOTSTRAP} resamples]; camera {suite['data']['camera']}, "
             f"{suite['data']['frame_size']} px; head "
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


FAMILIES = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")


def bar_style(encoder_i: int, head_i: int, n_heads: int) -> dict[str, Any]:
    """Same colour family per encoder (shades per head), one hatch per head."""
    import matplotlib

    cmap = matplotlib.colormaps[FAMILIES[encoder_i % len(FAMILIES)]]
    shade = 0.75 if n_heads == 1 else 0.85 - 0.4 * head_i / (n_heads - 1)
    return {"color": cmap(shade), "hatch": HATCHES[head_i % len(HATCHES)], "edgecolor": "black", "linewidth": 0.4}


def plot_success(agg: dict[tuple, dict[str, float]], suite: dict[str, Any], encoders: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = success_figure(agg, suite, encoders)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def success_figure(agg: dict[tuple, dict[str, float]], suite: dict[str, Any], encoders: list[str]) -> Any:
    """The bar plot of plot_success: one panel per demo count, one group of bars per task (and the mean), one bar
    per (encoder, head) with its interval as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demos, heads, cols = suite["demos"], suite["heads"], suite["tasks"] + ["mean"]
    width_in = max(6.0, 1.6 * len(cols) * len(demos) * max(1, len(encoders) * len(heads) / 4)) + 1.6
    fig, axes = plt.subplots(1, len(demos), figsize=(min(width_in, 30), 4.2), squeeze=False)
    combos = [(ei, e, hi, h) for ei, e in enumerate(encoders) for hi, h in enumerate(heads)]
    width = 0.8 / len(combos)
    for ax, d in zip(axes[0], demos):
        x = np.arange(len(cols))
        for i, (ei, e, hi, h) in enumerate(combos):
            vals = [agg.get((d, e, h, t)) or {"mean": np.nan, "lo": np.nan, "hi": np.nan} for t in cols]
            mean = np.array([100 * v["mean"] for v in vals])
            err = np.array([[100 * (v["mean"] - v["lo"]) for v in vals], [100 * (v["hi"] - v["mean"]) for v in vals]])
            label = e if len(heads) == 1 else f"{e} / {h}"
            ax.bar(x + (i - (len(combos) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=label,
                   error_kw={"linewidth": 0.8}, **bar_style(ei, hi, len(heads)))
        ax.set_xticks(x, cols, rotation=20, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("success (%)")
        ax.set_title(f"{suite['name']}: {d} demos", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay visible
    caption = textwrap.wrap(f"Bars: mean success over seeds {suite['seeds']} ({suite['rollouts']} rollouts each); "
                            f"error bars: {CI_NOTE}.", width=int(fig.get_figwidth() * 17))  # about 17 chars per inch
    fig.text(0.01, 0.01, "\n".join(caption), fontsize=7)
    fig.tight_layout(rect=(0, 0.04 * len(caption), 1, 1))
    return fig
