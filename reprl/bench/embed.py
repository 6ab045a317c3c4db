"""`reprl bench embed`: images/s of the embed pipeline (decode + preprocess overlapped with the model) on a
video, next to the encoder's forward-only rate on preprocessed batches already in memory, same batch size
and device: called once at a time with torch's threads as they are, and called as the pipeline calls it (on
the CPU, one caller per core). Medians of `repeats` runs in one process."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import torch

from reprl.options import EmbedBenchConfig
from reprl.utils.machine import torch_threads
from reprl.utils.timing import median_spread


def ensure_video(cfg: EmbedBenchConfig) -> str:
    if cfg.video:
        return cfg.video
    path = Path(cfg.cache) / f"episode_{cfg.frame_size}.mp4"
    if not path.exists():
        from reprl.data.video import write_mp4
        from reprl.sim.metaworld import MetaWorldEnv, expert_policy, run_episode

        env = MetaWorldEnv("drawer-close", ["corner"], cfg.frame_size)
        try:
            ep = run_episode(env, expert_policy("drawer-close"), seed=0, noise=0.3, max_steps=cfg.max_frames - 1)
        finally:
            env.close()
        write_mp4(path, ep.frames["corner"], 30)
    return str(path)


def forward_rate(encoder: Any, x: torch.Tensor, batches: int, precision: str, callers: int = 1,
                 threads: int | None = None) -> float:
    """Images/s of the encoder alone on batch `x`, called `batches` times in all by `callers` threads at once
    with `threads` torch threads (None: as they are)."""
    from reprl.embed.pipeline import autocast

    device = x.device

    def run(n: int) -> None:
        with torch.inference_mode(), autocast(device, precision):
            for _ in range(n):
                encoder.encode(x)
            if device.type == "cuda":
                torch.cuda.synchronize()

    with torch_threads(threads or torch.get_num_threads()):
        run(1)
        shares = [batches // callers + (i < batches % callers) for i in range(callers)]
        others = [threading.Thread(target=run, args=(n,)) for n in shares[1:]]
        t0 = time.perf_counter()
        for t in others:
            t.start()
        run(shares[0])
        for t in others:
            t.join()
        return batches * x.shape[0] / (time.perf_counter() - t0)


def run_embed_bench(cfg: EmbedBenchConfig) -> dict[str, Any]:
    from reprl.embed.frame_sources import open_sources
    from reprl.embed.pipeline import embed_source, encoder_callers
    from reprl.utils.machine import resolve_device

    cfg.device = resolve_device(cfg.device)  # before the video is rendered
    video = ensure_video(cfg)
    from reprl.bench import bench_encoder

    encoder = bench_encoder(cfg.encoder, cfg.image_size, cfg.device)  # --image-size shapes a new encoder only
    device = torch.device(cfg.device)
    callers, threads = encoder_callers(device)
    pipeline, forward, forward_callers, frames = [], [], [], 0
    for _ in range(cfg.repeats + 1):  # the first run warms up (allocator, kernels) and is not counted
        _, sources = open_sources(video)
        emb, stats = embed_source(encoder, next(sources), batch_size=cfg.batch_size, precision=cfg.precision)
        frames = emb.shape[0]
        pipeline.append(stats.images_per_s)
        # the bound encodes a batch of the same video, preprocessed as the pipeline does (decoded frames are
        # channels-last, which changes the convolutions' speed on the CPU: random NCHW input would not be a bound)
        _, again = open_sources(video)
        x = encoder.preprocess(next(next(again).batches(cfg.batch_size)).to(device))
        # about the video's number of batches, a multiple of the callers so that none is left to finish alone
        batches = callers * max(1, round(frames / cfg.batch_size / callers))
        forward.append(forward_rate(encoder, x, batches, cfg.precision))
        # and the encoder alone called as the pipeline calls it (one caller per core): the stricter bound
        forward_callers.append(forward_rate(encoder, x, batches, cfg.precision, callers, threads))
    pipeline, forward, forward_callers = pipeline[1:], forward[1:], forward_callers[1:]
    return {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "video": video, "frames": frames,
            "encoder": encoder.config.name, "image_size": encoder.config.image_size,
            "embed_pipeline": median_spread(pipeline), "forward_only": median_spread(forward),
            "ratio": median_spread([p / f for p, f in zip(pipeline, forward)]),
            "forward_callers": median_spread(forward_callers),
            "ratio_callers": median_spread([p / f for p, f in zip(pipeline, forward_callers)]),
            "threads": torch.get_num_threads(), "callers": callers, "threads_per_caller": threads}


def format_embed_bench(r: dict[str, Any]) -> str:
    c = r["config"]
    f = lambda d: f"{d['median']:8.1f} [{d['min']:.1f}-{d['max']:.1f}]"  # noqa: E731
    return "\n".join([
        f"embed: {r['encoder']} at {r['image_size']} px, {c['device']}, precision {c['precision']}, batch "
        f"{c['batch_size']}, {r['frames']}-frame {c['frame_size']} px video, {r['threads']} torch threads, "
        f"median [min-max] of {c['repeats']}",
        f"  reprl embed pipeline (decode + preprocess + model)  {f(r['embed_pipeline'])} images/s",
        f"  forward only (preprocessed batch in memory)          {f(r['forward_only'])} images/s",
        f"  ratio pipeline / forward-only                        {r['ratio']['median']:8.3f} "
        f"[{r['ratio']['min']:.3f}-{r['ratio']['max']:.3f}]",
        f"  forward only, {r['callers']} caller(s) x {r['threads_per_caller']} thread(s) (as the pipeline calls it)"
        f"\n                                                      {f(r['forward_callers'])} images/s",
        f"  ratio pipeline / that                                {r['ratio_callers']['median']:8.3f} "
        f"[{r['ratio_callers']['min']:.3f}-{r['ratio_callers']['max']:.3f}]",
    ])
