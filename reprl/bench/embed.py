"""`reprl bench embed`: images/s of the embed pipeline (decode + preprocess overlapped with the model) on a
video, next to the encoder's forward-only rate on preprocessed batches already in memory, same batch size
and device. Medians of `repeats` runs in one process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from reprl.options import EmbedBenchConfig
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


def run_embed_bench(cfg: EmbedBenchConfig) -> dict[str, Any]:
    import reprl
    from reprl.embed.frame_sources import open_sources
    from reprl.embed.pipeline import autocast, embed_source

    video = ensure_video(cfg)
    kwargs = {"image_size": cfg.image_size} if cfg.image_size else {}
    encoder = reprl.load(cfg.encoder, device=cfg.device, **kwargs)
    device = torch.device(cfg.device)
    pipeline, forward, frames = [], [], 0
    for _ in range(cfg.repeats + 1):  # the first run warms up (allocator, kernels) and is not counted
        _, sources = open_sources(video)
        emb, stats = embed_source(encoder, next(sources), batch_size=cfg.batch_size, precision=cfg.precision)
        frames = emb.shape[0]
        pipeline.append(stats.images_per_s)
        # the bound encodes a batch of the same video, preprocessed as the pipeline does (decoded frames are
        # channels-last, which changes the convolutions' speed on the CPU: random NCHW input would not be a bound)
        _, again = open_sources(video)
        x = encoder.preprocess(next(next(again).batches(cfg.batch_size)).to(device))
        batches = max(1, frames // cfg.batch_size)
        with torch.inference_mode(), autocast(device, cfg.precision):
            encoder.encode(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(batches):
                encoder.encode(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
        forward.append(batches * cfg.batch_size / (time.perf_counter() - t0))
    pipeline, forward = pipeline[1:], forward[1:]
    ratios = [p / f for p, f in zip(pipeline, forward)]
    return {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "video": video, "frames": frames,
            "encoder": encoder.config.name, "image_size": encoder.config.image_size,
            "embed_pipeline": median_spread(pipeline), "forward_only": median_spread(forward),
            "ratio": median_spread(ratios), "threads": torch.get_num_threads()}


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
    ])
