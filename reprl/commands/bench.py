"""Benchmarks that print figures and ratios measured side by side in one run (medians of repeats).

  reprl bench data    training tuples/s from shards vs a per-frame-JPEG-file loader, time split, memory
  reprl bench train   steps/s of the real training loop vs a synthetic in-memory batch, data-wait share
  reprl bench embed   images/s of reprl embed on a video vs the encoder's forward-only rate
  reprl bench eval    env steps/s of evaluation rollouts vs the same envs with a constant action, study budget

Add --json FILE to also write the figures for machines, with the machine they were measured on (CPU, cores,
library versions).
"""

from __future__ import annotations

import argparse
from typing import Any

from reprl.cli import precision

HELP = "measure data / training / embedding throughput"


def _counts(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2): the worker counts `bench data` measures."""
    try:
        return tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1,2, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import DataBenchConfig, EmbedBenchConfig, EvalBenchConfig, TrainBenchConfig, add_options

    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    d = sub.add_parser("data", help="training tuples/s from shards vs per-frame JPEG files")
    add_options(d, DataBenchConfig, converters={"workers": _counts, "frame_index": _counts, "ingest": _counts})
    t = sub.add_parser("train", help="real training loop vs synthetic batch, data-wait share")
    add_options(t, TrainBenchConfig, flags={"num_workers": "workers", "accelerator": "device"})
    e = sub.add_parser("embed", help="reprl embed images/s vs forward-only")
    add_options(e, EmbedBenchConfig, converters={"precision": precision})
    v = sub.add_parser("eval", help="rollout steps/s of the harness vs envs alone; the study's rollout hours")
    add_options(v, EvalBenchConfig, flags={"workers": "env_workers"}, converters={"precision": precision})
    for q in (d, t, e, v):
        q.add_argument("--json", default=None, help="also write the figures as JSON here")


BENCHES = {  # what -> (module, config class, run function, format function)
    "data": ("reprl.bench.data", "DataBenchConfig", "run_data_bench", "format_data_bench"),
    "train": ("reprl.bench.train", "TrainBenchConfig", "run_train_bench", "format_train_bench"),
    "embed": ("reprl.bench.embed", "EmbedBenchConfig", "run_embed_bench", "format_embed_bench"),
    "eval": ("reprl.bench.eval", "EvalBenchConfig", "run_eval_bench", "format_eval_bench"),
}


AT_LEAST_ONE = ("batches", "repeats", "steps", "warmup", "batch_size", "image_size", "frame_size", "envs", "horizon",
                "max_frames", "render_episodes", "tuples_per_video")


def check_bench(cfg: Any, json_path: str | None) -> None:
    """Counts, choices and output paths of a benchmark, refused in one line before anything is rendered or timed."""
    from pathlib import Path

    from reprl.errors import ReprlError
    from reprl.options import EvalBenchConfig
    from reprl.utils.files import check_output_file, json_has

    for name in AT_LEAST_ONE:
        value = getattr(cfg, name, None)
        if value is not None and value < 1:
            raise ReprlError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name, least in (("ingest", 2), ("frame_index", 2)):  # video / clip lengths: at least a frame pair
        if any(n < least for n in getattr(cfg, name, ())):
            raise ReprlError(f"--{name.replace('_', '-')} takes lengths of at least {least} frames, got "
                             f"{','.join(map(str, getattr(cfg, name)))}")
    if getattr(cfg, "mode", "vip") not in ("vip", "liv", "r3m"):
        raise ReprlError(f"--mode {cfg.mode!r}: choose vip, liv or r3m")
    rollouts = isinstance(cfg, EvalBenchConfig)
    workers = getattr(cfg, "workers", None)  # data: a list of counts; eval: one count or None
    if any(n < 0 for n in (workers if isinstance(workers, tuple) else () if workers is None else (workers,))):
        raise ReprlError(f"{'--env-workers' if rollouts else '--workers'} must be >= 0, got {workers}")
    if rollouts:  # else only a worker process would find out
        from reprl.sim.tasks import check_camera, task_name

        task_name(cfg.task)
        check_camera(cfg.camera)
    cache = getattr(cfg, "cache", None)
    if cache and Path(cache).exists() and not Path(cache).is_dir():
        raise ReprlError(f"--cache {cache} is a file; give a folder for the rendered corpus and frames")
    if json_path:
        check_output_file(json_path, "--json", lambda p: json_has(p, "machine"), "bench")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import importlib

    from reprl.options import from_args

    module, cfg_name, run_name, fmt_name = BENCHES[args.what]
    mod = importlib.import_module(module)
    cfg = from_args(getattr(mod, cfg_name), args)
    check_bench(cfg, args.json)
    result = getattr(mod, run_name)(cfg)
    print(getattr(mod, fmt_name)(result))
    if args.json:
        from reprl.utils.files import write_json
        from reprl.utils.machine import machine_info

        write_json(args.json, {**result, "machine": machine_info()})  # ratios differ little, figures a lot
    return 0
