"""Render MetaWorld expert (and noisy) episodes into reprl shards, with task text and per-step arrays.

The same shards serve pretraining (frames + caption) and downstream evaluation (actions, proprioception,
per-step success). index.json records the task split so a corpus can be checked for overlap with the
evaluation tasks.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from reprl.data.shards import EncodedVideo, ShardOptions, ShardWriter, encode_jpeg, local_index
from reprl.errors import ReprlError
from reprl.options import CorpusConfig
from reprl.sim.metaworld import OLDER_RENDER, RENDER_REVISION
from reprl.sim.tasks import EVAL_TASKS, resolve_tasks
from reprl.utils.machine import usable_cores
from reprl.utils.parallel import ordered_map

_ENV_CACHE: dict[tuple, Any] = {}


def default_workers() -> int:
    """Render processes for corpora that reprl renders for itself (benches, evaluation suites): two, or one on a
    single usable core."""
    return min(2, usable_cores())


def older_render(path: str | Path) -> str | None:
    """A one-line note when the shard folder at `path` was rendered from MetaWorld before the current
    RENDER_REVISION (None for current renders, for data that MetaWorld did not render, and for URLs and globs).
    Each folder of a `::`-joined list is checked; the note names the older ones."""
    from reprl.data.reader import spec_parts

    parts = spec_parts(path)
    if len(parts) > 1:
        notes = [n for n in map(older_render, parts) if n]
        return "; ".join(notes) or None
    index = local_index(path)
    if index is None:
        return None
    # folders written before the revision was recorded: content digests came in right after revision 1's fix
    revision = index.get("render_revision", 1 if "content_sha256" in index else 0)
    if index.get("source") != "metaworld" or revision >= RENDER_REVISION:
        return None
    return (f"{path} was rendered before render revision {RENDER_REVISION} ({OLDER_RENDER}); render it again for "
            "figures comparable with new renders")


def _close_envs() -> None:
    for env in _ENV_CACHE.values():
        env.close()
    _ENV_CACHE.clear()


def _env(task: str, cameras: tuple[str, ...], size: int) -> Any:
    from reprl.sim.metaworld import MetaWorldEnv

    key = (task, cameras, size)
    if key not in _ENV_CACHE:
        _close_envs()
        _ENV_CACHE[key] = MetaWorldEnv(task, cameras, size)
    return _ENV_CACHE[key]


def episode_videos(ep: Any, episode: int, quality: int) -> list[EncodedVideo]:
    """One EncodedVideo per camera of an Episode, sharing its arrays."""
    arrays = {"actions": ep.actions, "proprio": ep.proprio, "state": ep.state,
              "success": ep.success.astype(np.uint8), "reward": ep.reward, "frame_step": ep.frame_step}
    out = []
    for camera, frames in ep.frames.items():
        meta = {"source": f"metaworld:{ep.task}/{camera}/episode{episode}", "task": ep.task, "camera": camera,
                "episode": episode, "num_frames": len(frames), "steps": ep.steps, "width": int(frames[0].shape[1]),
                "height": int(frames[0].shape[0]), **ep.info,
                "expert": ep.info["noise"] == 0 and ep.info.get("behaviour", "expert") == "expert"}
        out.append(EncodedVideo(frames=[encode_jpeg(f, quality) for f in frames], meta=meta,
                                caption=ep.info["text"], arrays=arrays))
    return out


def _render_job(job: tuple[str, int, int, float, CorpusConfig, str]) -> list[EncodedVideo]:
    from reprl.sim.metaworld import RandomPolicy, expert_policy, run_episode

    task, episode, seed, noise, cfg, behaviour = job
    env = _env(task, tuple(cfg.camera_list()), cfg.size)
    policy = RandomPolicy(seed) if behaviour == "random" else expert_policy(task)
    steps = min(cfg.max_steps, cfg.early_stop_steps) if behaviour == "early" else cfg.max_steps
    ep = run_episode(env, policy, seed=seed, noise=noise, max_steps=steps,
                     stop_after_success=cfg.stop_after_success, frame_every=cfg.frame_every)
    ep.info["behaviour"] = behaviour
    return episode_videos(ep, episode, cfg.quality)


def corpus_jobs(cfg: CorpusConfig) -> list[tuple[str, int, int, float, CorpusConfig, str]]:
    tasks = resolve_tasks(cfg.tasks)
    counts = np.cumsum([round(f * cfg.episodes) for f in (cfg.noisy_fraction, cfg.random_fraction,
                                                          cfg.early_fraction)])
    jobs = []
    for i, task in enumerate(tasks):
        for e in range(cfg.episodes):
            seed = int(np.random.SeedSequence([cfg.seed, i, e]).generate_state(1)[0] % 2**31)
            behaviour = ("noisy", "random", "early", "expert")[int(np.searchsorted(counts, e, side="right"))]
            jobs.append((task, e, seed, cfg.noise if behaviour == "noisy" else 0.0, cfg, behaviour))
    return jobs


def render_corpus(cfg: CorpusConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Render episodes and write shards (frames, caption, actions, proprio, state, success) to `out_dir`."""
    from tqdm import tqdm

    if cfg.episodes < 1 or cfg.size < 16 or cfg.frame_every < 1 or cfg.early_stop_steps < 1:
        raise ReprlError("need episodes >= 1, size >= 16, frame_every >= 1 and early_stop_steps >= 1")
    if cfg.max_steps < 1 or cfg.workers < 1 or cfg.max_videos_per_shard < 1 or not 0 <= cfg.seed < 2**31:
        raise ReprlError(f"need max_steps, workers and max_videos_per_shard >= 1 and seed in [0, 2**31), got "
                         f"{cfg.max_steps}, {cfg.workers}, {cfg.max_videos_per_shard} and {cfg.seed}")
    if not 1 <= cfg.quality <= 100 or not math.isfinite(cfg.noise) or cfg.noise < 0:
        raise ReprlError(f"need quality from 1 to 100 and a finite noise >= 0, got {cfg.quality} and {cfg.noise}")
    if cfg.stop_after_success is not None and cfg.stop_after_success < 0:
        raise ReprlError(f"stop_after_success must be >= 0 (or -1 on the command line: the full horizon), got "
                         f"{cfg.stop_after_success}")
    shares = (cfg.noisy_fraction, cfg.random_fraction, cfg.early_fraction)
    if min(shares) < 0 or sum(shares) > 1:
        raise ReprlError(f"noisy, random and early fractions must be >= 0 and sum to at most 1, got {shares}")
    cfg.camera_list()
    jobs = corpus_jobs(cfg)
    opts = ShardOptions(resize=0, quality=cfg.quality, max_videos_per_shard=cfg.max_videos_per_shard,
                        workers=cfg.workers, overwrite=cfg.overwrite, min_frames=1)
    tasks = resolve_tasks(cfg.tasks)
    succeeded = 0
    with ShardWriter(out_dir, opts, command="render") as writer:
        results = ordered_map(_render_job, jobs, cfg.workers)
        for videos in tqdm(results, total=len(jobs), desc="render", unit="episode", disable=not progress):
            succeeded += bool(videos[0].meta["succeeded"])
            for video in videos:
                writer.add(video)
        index = writer.finish({
            "source": "metaworld",
            "render_revision": RENDER_REVISION,
            "render": asdict(cfg),
            "split": {"tasks": tasks, "eval_tasks": list(EVAL_TASKS),
                      "contains_eval_tasks": sorted(set(tasks) & set(EVAL_TASKS))},
            "episodes": len(jobs),
            "episodes_succeeded": succeeded,
        })
        print(f"{writer.report()}; {succeeded}/{len(jobs)} episodes reached success")
    return index
