"""`reprl bench eval`: environment steps/s of the evaluation harness's rollouts (encoder + policy head choosing
every action) next to the bound measured in the same run: the same environments, in the same worker
processes, stepping and rendering with a constant action and no encoder. Today's single-process path
(serial envs, one group) is measured too, and the full study's rollout budget is stated in hours.

Neither policy reaches success here (a random head, a constant action), so every episode runs the horizon and
both rates count the same steps. Medians of `repeats` runs, alternating the paths, in one process.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from reprl.options import EvalBenchConfig
from reprl.utils.timing import median_spread

# the study's downstream evaluation: 5 tasks x 3 heads (BC, RWR at tau 0.1 and 1) x 3 encoders x 3 seeds
# x 30 rollouts of at most 500 steps, each ending shortly after its first success
STUDY = {"tasks": 5, "heads": 3, "encoders": 3, "seeds": 3, "rollouts": 30, "horizon": 500, "settle_steps": 10}


def study_budget_hours(steps_per_s: float) -> dict[str, float]:
    """Hours of rollouts for the study: every rollout to the horizon (none succeeds), and half of them
    succeeding at step 150 (ending settle_steps later)."""
    s = STUDY
    n = s["tasks"] * s["heads"] * s["encoders"] * s["seeds"] * s["rollouts"]
    half = 0.5 * (150 + s["settle_steps"]) + 0.5 * s["horizon"]
    return {"rollouts": n, "hours_no_success": n * s["horizon"] / steps_per_s / 3600,
            "hours_half_succeed_at_150": n * half / steps_per_s / 3600}


def _rate(envs: Any, act: Any, cfg: EvalBenchConfig, groups: int) -> float:
    from reprl.evaluation.rollout import rollout

    seeds = list(range(cfg.envs))
    start = time.perf_counter()
    res = rollout(envs, act, seeds, cfg.horizon, groups=groups)
    return sum(r.steps for r in res) / (time.perf_counter() - start)


def run_eval_bench(cfg: EvalBenchConfig) -> dict[str, Any]:
    import torch

    from reprl.bench import bench_encoder
    from reprl.evaluation.rollout import default_env_workers, open_envs
    from reprl.heads.policy import HeadConfig, Policy, PolicyHead
    from reprl.sim.metaworld import PROPRIO_DIM
    from reprl.utils.machine import usable_cores

    encoder = bench_encoder(cfg.encoder, cfg.image_size)  # --image-size shapes a new encoder only
    torch.manual_seed(0)
    act = Policy(encoder, PolicyHead(encoder.embed_dim, PROPRIO_DIM, 4, HeadConfig()), cfg.encoder,
                 precision=cfg.precision, compile=cfg.compile).act
    const = lambda frames, proprio: np.full((len(frames), 4), 0.1, np.float32)  # noqa: E731
    workers = default_env_workers(cfg.envs) if cfg.workers is None else cfg.workers
    groups = 2 if workers > 0 else 1
    envs = open_envs(cfg.task, cfg.camera, cfg.frame_size, cfg.envs, workers)
    serial = open_envs(cfg.task, cfg.camera, cfg.frame_size, cfg.envs, 0) if cfg.serial and workers else None
    bound, harness, old = [], [], []
    try:
        warm = EvalBenchConfig(horizon=2, envs=cfg.envs)  # first renders, allocator, compiling
        start = time.perf_counter()
        _rate(envs, act, warm, groups)
        warm_s = time.perf_counter() - start
        if serial is not None:
            _rate(serial, act, warm, 1)
        for _ in range(cfg.repeats):
            bound.append(_rate(envs, const, cfg, groups))
            harness.append(_rate(envs, act, cfg, groups))
            if serial is not None:
                old.append(_rate(serial, act, cfg, 1))
    finally:
        envs.close()
        if serial is not None:
            serial.close()
    ratios = [h / b for h, b in zip(harness, bound)]
    threads = torch.get_num_threads()
    out = {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "workers": workers, "groups": groups,
           "encoder": encoder.config.name, "image_size": encoder.config.image_size,
           "threads": max(1, min(threads, usable_cores() - workers)) if workers else threads,
           "bound": median_spread(bound), "harness": median_spread(harness),
           "ratio": median_spread(ratios), "warmup_s": warm_s, "study": STUDY,
           "study_budget": study_budget_hours(median_spread(harness)["median"])}
    if old:
        out["serial_harness"] = median_spread(old)
    return out


def format_eval_bench(r: dict[str, Any]) -> str:
    c, b = r["config"], r["study_budget"]
    f = lambda d: f"{d['median']:8.1f} [{d['min']:.1f}-{d['max']:.1f}]"  # noqa: E731
    lines = [
        f"eval: {c['task']} at {c['frame_size']} px, {c['envs']} envs over {r['workers']} worker process(es), "
        f"{r['groups']} group(s); {r['encoder']} at {r['image_size']} px"
        f"{'' if c.get('precision', '32') == '32' else ' under ' + c['precision'] + ' autocast'}"
        f"{' compiled' if c.get('compile') else ''} + MLP head, "
        f"{r['threads']} torch threads; "
        f"{c['horizon']}-step rollouts, median [min-max] of {c['repeats']}",
        f"  harness (encoder + head act every step)          {f(r['harness'])} env steps/s",
        f"  bound (same envs, constant action, no encoder)   {f(r['bound'])} env steps/s",
        f"  ratio harness / bound                            {r['ratio']['median']:8.3f} "
        f"[{r['ratio']['min']:.3f}-{r['ratio']['max']:.3f}]",
    ]
    if c.get("compile"):
        lines.append(f"  warm-up with compiling (not in the rates)        {r['warmup_s']:8.1f} s")
    if "serial_harness" in r:
        lines.append(f"  single-process harness (before)                  {f(r['serial_harness'])} env steps/s")
    lines.append(f"  study: {b['rollouts']} rollouts -> {b['hours_no_success']:.1f} h if none succeeds (500 steps "
                 f"each), {b['hours_half_succeed_at_150']:.1f} h if half succeed at step 150")
    return "\n".join(lines)
