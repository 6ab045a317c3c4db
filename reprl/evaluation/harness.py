"""`reprl eval`: for each encoder x task x demo count x seed x head (any head of reprl.heads, by name), train a
head on cached embeddings and roll it out in MetaWorld through Policy.act. Every finished cell is a JSON file
(and its policy a folder under policies/), so re-running reuses finished cells and an interrupted run resumes
where it stopped."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.evaluation.data import encoder_fingerprint, ensure_task_data, task_episodes
from reprl.evaluation.rollout import Envs, open_suite_envs, rollout, suite_rollout_options, summarize
from reprl.evaluation.suite import SuiteSpec
from reprl.heads.policy import Policy, save_head
from reprl.heads.registry import head_revision, make_learner, with_reward
from reprl.heads.train import Transitions
from reprl.sim.metaworld import OLDER_RENDER, RENDER_REVISION
from reprl.typed_config import to_dict
from reprl.utils.files import safe_name, write_json
from reprl.utils.machine import machine_info

log = logging.getLogger("reprl.eval")


def older_cells(cells: list[dict[str, Any]]) -> int:
    """How many result cells were rolled out with an older renderer than today's (RENDER_REVISION). Cells written
    before the revision was recorded count as revision 1 if they record the machine (added after that fix)."""
    return sum(c.get("render_revision", 1 if "machine" in c else 0) < RENDER_REVISION for c in cells)


def parse_encoders(specs: list[str]) -> dict[str, str]:
    """['vip=runs/x/encoder', 'random:runs/x/encoder'] -> {label: source}; labels default to the source."""
    out: dict[str, str] = {}
    for s in specs:
        label, sep, source = s.partition("=")
        if not sep:
            label, source = s, s
        if not label.strip() or not source.strip():
            raise ReprlError(f"--encoder {s!r}: give LABEL=SOURCE with both parts (or the source alone)")
        if label in out:
            raise ReprlError(f"encoder label {label!r} given twice; name them: --encoder name=SOURCE")
        out[label] = source
    return out


def select_training_episodes(episodes: list[dict[str, Any]], n_demos: int, seed: int) -> tuple[list, list]:
    """n successful expert demos (a seeded draw) and every noisy episode."""
    experts = [e for e in episodes if e["expert"] and e["success"].any()]
    if len(experts) < n_demos:
        raise ReprlError(f"only {len(experts)} successful expert episodes for {n_demos} demos")
    order = np.random.default_rng(seed).permutation(len(experts))
    return [experts[i] for i in order[:n_demos]], [e for e in episodes if not e["expert"]]


def run_cell(spec: SuiteSpec, encoder: Encoder, pool: Envs, episodes: list[dict[str, Any]], n_demos: int,
             seed: int, kind: str, progress: Any = None, policy_dir: Path | None = None,
             source: str = "") -> dict[str, Any]:
    """Train one head (checkpointed `evaluations` times), roll each checkpoint out through Policy.act (what
    control code calls), and save the final policy folder to policy_dir."""
    t0 = time.perf_counter()
    demos, noisy = select_training_episodes(episodes, n_demos, seed)
    data = with_reward(kind, spec.head_config(kind), Transitions.from_episodes(demos + noisy),
                       [d["emb"][-1] for d in demos], encoder.similarity)
    seeds = [spec.eval_seed + 1000 * seed + i for i in range(spec.rollouts)]
    evals, losses = [], []
    learner = make_learner(kind, data, spec.head, spec.head_config(kind), seed=seed)
    policy = Policy(encoder, learner.actor, source, kind, precision=spec.precision, compile=spec.compile)
    steps_each = max(1, spec.head.steps // spec.evaluations)
    for _ in range(spec.evaluations):
        losses.append(learner.train(steps_each))
        res = summarize(rollout(pool, policy.act, seeds, spec.horizon, on_step=progress,
                                **suite_rollout_options(spec, pool)))
        evals.append({"head_steps": learner.steps_done, **res})
    if policy_dir is not None:
        extra: dict[str, Any] = {"head_config": to_dict(spec.head_config(kind)) if spec.head_config(kind) else {}}
        if spec.precision != "32":
            extra["precision"] = spec.precision  # load_policy embeds as the head was trained
        save_head(learner.actor, policy_dir, source, kind, extra=extra)
    final = evals[-1]
    behaviours = Counter(e.get("behaviour", "noisy") for e in noisy)
    return {"demos_used": [d["key"] for d in demos], "noisy_episodes": len(noisy), "suboptimal": dict(behaviours),
            "transitions": len(data), "success": final["success"], "success_final_step": final["success_final"],
            "success_max": max(e["success"] for e in evals), "evaluations": evals, "head_loss": losses,
            "seconds": round(time.perf_counter() - t0, 1)}


def prepare_outputs(out_dir: Path, cache_dir: Path) -> None:
    """Refuse, in one line, a results folder that is a file or holds what reprl eval did not write (a rerun adds to
    its own results), and a --cache that cannot be written; mark a new results folder as reprl eval's."""
    from reprl.utils.files import MARKER, check_output, check_writable

    from_before_markers = (out_dir / "cells").is_dir() and not (out_dir / MARKER).exists()  # eval's own, unmarked
    if not from_before_markers:
        check_output(out_dir, "eval", overwrite=True, flag="--out", force_flag=None)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ReprlError(f"--cache {cache_dir} is a file; give a folder for the rendered data and embeddings")
    check_writable(cache_dir / "data", "--cache")
    if not (out_dir / MARKER).exists():  # written only once every check has passed
        try:
            write_json(out_dir / MARKER, {"command": "eval"})
        except OSError as e:
            raise ReprlError(f"cannot write --out {out_dir}: {e.strerror or e}; choose an --out in a folder you can "
                             "write to") from None


def read_cell(path: Path) -> dict[str, Any] | None:
    """A finished cell, or None when there is none; a cell file that cannot be read (torn, edited) is run again,
    with a warning."""
    if not path.exists():
        return None
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("cell %s cannot be read (%s); running it again", path, type(e).__name__)
        return None
    if not isinstance(cell, dict) or not isinstance(cell.get("success"), (int, float)):
        log.warning("cell %s is not a finished cell; running it again", path)
        return None
    return cell


def current_keys(kind: str, keys: dict[str, str], legacy: str) -> tuple[str, ...]:
    """The suite keys under which a finished cell of head `kind` is still valid: its per-head key, and the key
    cells had before keys were per head unless the head's training changed since (its revision is above 0)."""
    return (keys[kind],) if head_revision(kind) else (keys[kind], legacy)


def earlier_cells(out_dir: Path, spec: SuiteSpec, keys: dict[str, str], legacy: str,
                  skip: set[str], seen: set[Path]) -> list[dict[str, Any]]:
    """Finished cells of encoders an earlier run of this suite evaluated (labels not in `skip`) that are still
    current: the suite's tasks, demos, seeds and heads, keyed with today's settings. They stay in results.json and
    the tables, so evaluating one more encoder does not drop the earlier ones from them. `seen`: the cell files
    this run already read or wrote, not read again."""
    found = []
    for path in sorted((out_dir / "cells").glob("*.json")):
        if path in seen:
            continue
        cell = read_cell(path)
        if cell is None or cell.get("encoder") in skip or cell.get("head") not in keys:
            continue
        if (cell.get("suite_key") in current_keys(cell["head"], keys, legacy) and cell.get("task") in spec.tasks
                and cell.get("demos") in spec.demos and cell.get("seed") in spec.seeds
                and isinstance(cell.get("source"), str)):
            found.append(cell)
    return found


def table_encoders(out_dir: Path, earlier: list[dict[str, Any]], encoders: dict[str, str]) -> dict[str, str]:
    """Every encoder of the tables: those of the previous results.json in its order, then any other earlier ones,
    then this run's."""
    sources = {c["encoder"]: c["source"] for c in earlier} | encoders
    previous: list[str] = []
    try:
        listed = json.loads((out_dir / "results.json").read_text()).get("encoders", {})
        previous = [label for label in listed if isinstance(label, str)]
    except (OSError, ValueError, AttributeError):
        pass
    order = [label for label in previous if label in sources]
    order += [label for label in sorted({c["encoder"] for c in earlier}) if label not in order]
    order += [label for label in encoders if label not in order]
    return {label: sources[label] for label in order}


def run_suite(spec: SuiteSpec, encoders: dict[str, str], *, out: str | Path = "eval/results",
              cache: str | Path = "eval/cache", device: str = "cpu", rerun: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a suite; returns all cells and writes results.json, table.md and success.png. Cells of
    encoders that earlier runs into the same folder evaluated stay in them while they are current."""
    import reprl
    from reprl.evaluation.report import write_report

    # Rendered data and embeddings are keyed by their data settings (and the encoder's fingerprint), not by the
    # suite's name: suites that differ only in heads or head settings share one render.
    out_dir, cache_dir = Path(out) / spec.name, Path(cache)
    prepare_outputs(out_dir, cache_dir)  # before anything is rendered
    import torch

    from reprl.embed.pipeline import check_precision
    from reprl.utils.machine import resolve_device

    check_precision(torch.device(resolve_device(device)), spec.precision)  # float16 off CUDA: before rendering
    if spec.compile:
        from reprl.encoders.compiled import check_compile

        check_compile(torch.device(resolve_device(device)))  # no C++ compiler: before rendering
    cells: list[dict[str, Any]] = []
    seen: set[Path] = set()  # this run's cell files
    keys, legacy = {kind: spec.cell_key(kind) for kind in spec.heads}, spec.cell_key()  # legacy: older cells' key
    data = {task: str(ensure_task_data(spec, cache_dir, task, progress)) for task in spec.tasks}
    for label, source in encoders.items():
        encoder = reprl.load(source, device=device)
        fp = encoder_fingerprint(encoder)
        for task in spec.tasks:
            episodes = task_episodes(spec, cache_dir, task, encoder, fp)
            pool: Envs | None = None
            try:
                for n in spec.demos:
                    for seed in spec.seeds:
                        for kind in spec.heads:
                            path = out_dir / "cells" / f"{safe_name(label)}__{task}__d{n}__s{seed}__{kind}.json"
                            seen.add(path)
                            key = {"encoder": label, "source": source, "fingerprint": fp, "task": task, "demos": n,
                                   "seed": seed, "head": kind, "suite_key": keys[kind]}
                            old = read_cell(path) if not rerun else None
                            if old is not None:
                                same = all(old.get(k) == v for k, v in key.items() if k != "suite_key")
                                if same and old.get("suite_key") in current_keys(kind, keys, legacy):
                                    if old["suite_key"] != key["suite_key"]:  # an older cell: key it per head
                                        old["suite_key"] = key["suite_key"]
                                        write_json(path, old)
                                    cells.append(old)
                                    continue
                            if pool is None:
                                pool = open_suite_envs(spec, task)
                            print(f"eval {spec.name}: {label} / {task} / {n} demos / seed {seed} / {kind} ...",
                                  flush=True)
                            policy_dir = out_dir / "policies" / path.stem if spec.save_policies else None
                            cell = {**key, "head_revision": head_revision(kind), "render_revision": RENDER_REVISION,
                                    "machine": machine_info(),
                                    **run_cell(spec, encoder, pool, episodes, n, seed, kind, policy_dir=policy_dir,
                                               source=source)}
                            write_json(path, cell)
                            cells.append(cell)
                            final = cell["success_final_step"]
                            print(f"  success {cell['success']:.0%} (final step "
                                  f"{'-' if final is None else format(final, '.0%')}, max {cell['success_max']:.0%}) "
                                  f"in {cell['seconds']:.0f}s", flush=True)
            finally:
                if pool is not None:
                    pool.close()
    earlier = earlier_cells(out_dir, spec, keys, legacy, skip=set(encoders), seen=seen)
    if earlier:
        print(f"the tables also keep {len(earlier)} cells of "
              f"{', '.join(sorted({c['encoder'] for c in earlier}))} from earlier runs of this suite", flush=True)
    table = table_encoders(out_dir, earlier, encoders)
    rank = {label: i for i, label in enumerate(table)}
    cells = sorted(earlier, key=lambda c: rank[c["encoder"]]) + cells
    if older := older_cells(cells):
        print(f"note: {older} of {len(cells)} cells were rolled out before render revision {RENDER_REVISION} "
              f"({OLDER_RENDER}); --rerun recomputes them", flush=True)
    result = {"suite": asdict(spec), "encoders": table, "cells": cells, "data": data}
    write_json(out_dir / "results.json", result)
    write_report(result, out_dir)
    return result
