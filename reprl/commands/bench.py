"""Benchmarks that print figures and ratios measured side by side in one run (medians of repeats).

  reprl bench data    training tuples/s from shards vs a per-frame-JPEG-file loader, time split, memory
  reprl bench train   steps/s of the real training loop vs a synthetic in-memory batch, data-wait share
  reprl bench embed   images/s of reprl embed on a video vs the encoder's forward-only rate
  reprl bench eval    env steps/s of evaluation rollouts vs the same envs with a constant action, study budget

Add --json FILE to also write the figures for machines.
"""

from __future__ import annotations

import argparse

from reprl.cli import PRECISION_HELP, add_device, precision

HELP = "measure data / training / embedding throughput"


def _counts(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2): the worker counts `bench data` measures."""
    try:
        return tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1,2, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    d = sub.add_parser("data", help="training tuples/s from shards vs per-frame JPEG files")
    d.add_argument("--shards", default=None, help="shard folder (default: render a MetaWorld corpus once)")
    d.add_argument("--cache", default="runs/bench", help="where the rendered corpus and frame folders go")
    d.add_argument("--frame-size", type=int, default=256, help="shorter side of the rendered shard frames")
    d.add_argument("--image-size", type=int, default=224, help="crop size of the training tuples")
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--mode", default="vip", help="vip, liv or r3m tuples")
    d.add_argument("--tuples-per-video", type=int, default=1, help="tuples sampled per video read")
    d.add_argument("--workers", type=_counts, default=(1, 2), help="worker counts to measure, e.g. 1,2 (0 = none)")
    d.add_argument("--batches", type=int, default=20, help="batches timed per repeat")
    d.add_argument("--repeats", type=int, default=3, help="repeats; figures are medians")
    d.add_argument("--render-episodes", type=int, default=2, help="episodes per task of the rendered corpus")
    d.add_argument("--frame-index", type=_counts, default=(), metavar="LENGTHS",
                   help="only compare reading with and without the frame index on synthetic clips of these "
                        "lengths, e.g. 40,400: tuples/s and bytes read per tuple")
    d.add_argument("--ingest", type=_counts, default=(), metavar="LENGTHS",
                   help="only measure reprl shards on synthetic 640x480 videos of these lengths, e.g. 300,3000: "
                        "source frames/s and peak memory, and 1 vs 2 workers")
    t = sub.add_parser("train", help="real training loop vs synthetic batch, data-wait share")
    t.add_argument("--config", default=None, help="a reprl pretrain preset (configs/pretrain/*.yaml): its encoder, "
                   "objective, data and optim sections run; --encoder, --image-size, --embed-dim, --objective, "
                   "--batch-size and --workers apply without one")
    t.add_argument("--shards", default=None, help="training shards (default: the preset's data.train, or "
                   "tests/data/metaworld/train)")
    t.add_argument("--encoder", default="resnet18", help="registered encoder name (random init)")
    t.add_argument("--image-size", type=int, default=64)
    t.add_argument("--embed-dim", type=int, default=128, help="projection size")
    t.add_argument("--objective", default="vip", help="vip, liv or r3m")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--workers", dest="num_workers", type=int, default=1, help="data-loader worker processes")
    t.add_argument("--steps", type=int, default=30, help="timed steps per run, after --warmup")
    t.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each run")
    t.add_argument("--repeats", type=int, default=3, help="runs of each loop; figures are medians")
    t.add_argument("--device", dest="accelerator", default="auto", help="auto, cpu or cuda (Lightning accelerator)")
    t.add_argument("--precision", default="auto", help="auto (bf16-mixed on GPU, 32 on CPU), 32, bf16-mixed, ...")
    e = sub.add_parser("embed", help="reprl embed images/s vs forward-only")
    e.add_argument("--encoder", default="resnet18", help="any reprl.load source (registered names: random init)")
    e.add_argument("--image-size", type=int, default=None, help="for registered names")
    e.add_argument("--video", default=None, help="video to embed (default: render a MetaWorld episode once)")
    e.add_argument("--frame-size", type=int, default=256)
    e.add_argument("--cache", default="runs/bench")
    add_device(e)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--precision", type=precision, default="32", help=PRECISION_HELP)
    e.add_argument("--repeats", type=int, default=3)
    e.add_argument("--max-frames", type=int, default=300, help="frames of the rendered video")
    v = sub.add_parser("eval", help="rollout steps/s of the harness vs envs alone; the study's rollout hours")
    v.add_argument("--task", default="hammer", help="MetaWorld task")
    v.add_argument("--camera", default="corner")
    v.add_argument("--frame-size", type=int, default=128, help="rendered frame size")
    v.add_argument("--encoder", default="resnet18", help="any reprl.load source (registered names: random init)")
    v.add_argument("--image-size", type=int, default=64, help="for registered names")
    v.add_argument("--envs", type=int, default=10, help="environments stepped in lockstep")
    v.add_argument("--env-workers", dest="workers", type=int, default=None,
                   help="environment processes (default: one per core; 0: in this process)")
    v.add_argument("--horizon", type=int, default=50, help="steps per timed rollout")
    v.add_argument("--repeats", type=int, default=3)
    v.add_argument("--no-serial", dest="serial", action="store_false", help="skip timing the single-process path")
    for q in (d, t, e, v):
        q.add_argument("--json", default=None, help="also write the figures as JSON here")


BENCHES = {  # what -> (module, config class, run function, format function)
    "data": ("reprl.bench.data", "DataBenchConfig", "run_data_bench", "format_data_bench"),
    "train": ("reprl.bench.train", "TrainBenchConfig", "run_train_bench", "format_train_bench"),
    "embed": ("reprl.bench.embed", "EmbedBenchConfig", "run_embed_bench", "format_embed_bench"),
    "eval": ("reprl.bench.eval", "EvalBenchConfig", "run_eval_bench", "format_eval_bench"),
}


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import importlib

    from reprl.options import from_args

    module, cfg_name, run_name, fmt_name = BENCHES[args.what]
    mod = importlib.import_module(module)
    result = getattr(mod, run_name)(from_args(getattr(mod, cfg_name), args))
    print(getattr(mod, fmt_name)(result))
    if args.json:
        from reprl.utils.files import write_json

        write_json(args.json, result)
    return 0
