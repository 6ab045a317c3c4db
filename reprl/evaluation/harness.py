"""`reprl eval`: for each encoder x task x demo count x seed x head, train a head on cached embeddings and
roll it out in MetaWorld. Every finished cell is a JSON file, so re-running reuses finished cells and an
interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.evaluation.data import encoder_fingerprint, ensure_task_data, task_episodes
from reprl.evaluation.rollout import EnvPool, rollout, summarize
from reprl.evaluation.suite import SuiteSpec
from reprl.heads.policy import PolicyHead
from reprl.heads.train import HeadTrainer, Transitions, rwr_weights, transition_rewards
from reprl.utils.files import safe_name, write_json


def parse_encoders(specs: list[str]) -> dict[str, str]:
    """['vip=runs/x/encoder', 'random:runs/x/encoder'] -> {label: source}; labels default to the source."""
    out: dict[str, str] = {}
    for s in specs:
        label, sep, source = s.partition("=")
        if not sep:
            label, source = s, s
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


def head_weights(kind: str, data: Transitions, demos: list[dict[str, Any]], encoder: Encoder,
                 spec: SuiteSpec) -> torch.Tensor | None:
    if kind == "bc":
        return None
    goal = torch.as_tensor(np.stack([d["emb"][-1] for d in demos])).mean(0)
    rewards = transition_rewards(data, goal, encoder.similarity)
    weighting = "chi2" if kind == "rwr_chi2" else "exp"
    return rwr_weights(rewards, spec.rwr.tau, weighting, clip=spec.rwr.clip, standardize=spec.rwr.standardize)


def make_act(encoder: Encoder, head: PolicyHead) -> Any:
    def act(frames: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            emb = encoder(frames)
            p = torch.as_tensor(proprio, dtype=torch.float32, device=emb.device)
            return head.to(emb.device)(emb, p).clamp(-1, 1).cpu().numpy()
    return act


def run_cell(spec: SuiteSpec, encoder: Encoder, pool: EnvPool, episodes: list[dict[str, Any]], n_demos: int,
             seed: int, kind: str, progress: Any = None) -> dict[str, Any]:
    """Train one head (checkpointed `evaluations` times) and roll each checkpoint out."""
    t0 = time.perf_counter()
    demos, noisy = select_training_episodes(episodes, n_demos, seed)
    data = Transitions.from_episodes(demos + noisy)
    weights = head_weights(kind, data, demos, encoder, spec)
    seeds = [spec.eval_seed + 1000 * seed + i for i in range(spec.rollouts)]
    evals, losses = [], []
    trainer = HeadTrainer(data, spec.head, weights=weights, seed=seed)
    steps_each = max(1, spec.head.steps // spec.evaluations)
    for _ in range(spec.evaluations):
        losses.append(trainer.train(steps_each))
        res = summarize(rollout(pool, make_act(encoder, trainer.head), seeds, spec.horizon, on_step=progress))
        evals.append({"head_steps": trainer.steps_done, **res})
    final = evals[-1]
    return {"demos_used": [d["key"] for d in demos], "noisy_episodes": len(noisy), "transitions": len(data),
            "success": final["success"], "success_final_step": final["success_final"],
            "success_max": max(e["success"] for e in evals), "evaluations": evals, "head_loss": losses,
            "seconds": round(time.perf_counter() - t0, 1)}


def run_suite(spec: SuiteSpec, encoders: dict[str, str], *, out: str | Path = "eval/results",
              cache: str | Path = "eval/cache", device: str = "cpu", rerun: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a suite; returns all cells and writes results.json, table.md and success.png."""
    import reprl
    from reprl.evaluation.report import write_report

    out_dir, cache_dir = Path(out) / spec.name, Path(cache) / spec.name
    cells: list[dict[str, Any]] = []
    for task in spec.tasks:
        ensure_task_data(spec, cache_dir, task, progress)
    for label, source in encoders.items():
        encoder = reprl.load(source, device=device)
        fp = encoder_fingerprint(encoder)
        for task in spec.tasks:
            episodes = task_episodes(spec, cache_dir, task, encoder, fp)
            pool: EnvPool | None = None
            try:
                for n in spec.demos:
                    for seed in spec.seeds:
                        for kind in spec.heads:
                            path = out_dir / "cells" / f"{safe_name(label)}__{task}__d{n}__s{seed}__{kind}.json"
                            key = {"encoder": label, "source": source, "fingerprint": fp, "task": task, "demos": n,
                                   "seed": seed, "head": kind, "suite_key": spec.cell_key()}
                            if path.exists() and not rerun:
                                old = json.loads(path.read_text())
                                if all(old.get(k) == v for k, v in key.items()):
                                    cells.append(old)
                                    continue
                            if pool is None:
                                pool = EnvPool(task, spec.data.camera, spec.data.frame_size,
                                               min(spec.parallel_envs, spec.rollouts))
                            print(f"eval {spec.name}: {label} / {task} / {n} demos / seed {seed} / {kind} ...",
                                  flush=True)
                            cell = {**key, **run_cell(spec, encoder, pool, episodes, n, seed, kind)}
                            write_json(path, cell)
                            cells.append(cell)
                            print(f"  success {cell['success']:.0%} (final step {cell['success_final_step']:.0%}, "
                                  f"max {cell['success_max']:.0%}) in {cell['seconds']:.0f}s", flush=True)
            finally:
                if pool is not None:
                    pool.close()
    result = {"suite": asdict(spec), "encoders": encoders, "cells": cells}
    write_json(out_dir / "results.json", result)
    write_report(result, out_dir)
    return result
