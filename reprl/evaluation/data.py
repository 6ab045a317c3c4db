"""Suite data: render each task's episodes once, and embed each frame once per encoder (cached on disk)."""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from reprl.data.reader import expand_urls, iter_videos
from reprl.encoders.base import Encoder
from reprl.evaluation.suite import SuiteSpec
from reprl.utils.files import replacing

log = logging.getLogger("reprl.eval")


def task_dir(spec: SuiteSpec, cache: Path, task: str) -> Path:
    return cache / "data" / f"{task}-{spec.data_key()}"


def ensure_task_data(spec: SuiteSpec, cache: Path, task: str, progress: bool = True) -> Path:
    """Render (once) the task's expert and noisy episodes with every step's frame, actions and proprio."""
    from reprl.sim.corpus import CorpusConfig, default_workers, render_corpus

    out = task_dir(spec, cache, task)
    if (out / "index.json").exists():
        from reprl.sim.corpus import older_render

        if note := older_render(out):
            print(f"note: {note} (delete the folder to render it; cells already trained on it are reused unless "
                  "you pass --rerun)", flush=True)
        return out
    d = spec.data
    total = d.expert_episodes + d.noisy_episodes + d.random_episodes + d.early_stopped_episodes
    cfg = CorpusConfig(tasks=task, episodes=total, cameras=d.camera, size=d.frame_size, noise=d.noise,
                       noisy_fraction=d.noisy_episodes / total, random_fraction=d.random_episodes / total,
                       early_fraction=d.early_stopped_episodes / total, early_stop_steps=d.early_stop_steps,
                       stop_after_success=d.stop_after_success,
                       frame_every=1, seed=d.seed, workers=default_workers(), overwrite=True,
                       max_videos_per_shard=16)
    render_corpus(cfg, out, progress=progress)
    return out


def encoder_fingerprint(encoder: Encoder) -> str:
    """A hash of the encoder's config and weights: caches are reused only for the very same encoder."""
    h = hashlib.sha1(repr(sorted(encoder.config.to_dict().items())).encode())
    for name, tensor in encoder.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _stored_embeddings(path: Path, n: int) -> list[np.ndarray] | None:
    """The cached embeddings of a task's `n` videos, or None when there are none; a cache file that cannot be read
    (torn, or not reprl's) is embedded again and replaced, with a warning."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return [stored[f"e{i}"] for i in range(n)]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        log.warning("embedding cache %s cannot be read (%s); embedding again", path, type(e).__name__)
        return None


def task_episodes(spec: SuiteSpec, cache: Path, task: str, encoder: Encoder, fingerprint: str,
                  batch_size: int = 64) -> list[dict[str, Any]]:
    """Episodes of a task with cached frame embeddings: dicts of emb [T+1, D], proprio, actions, success, expert,
    the environment's reward [T] and behaviour (expert, noisy, random, early)."""
    data = task_dir(spec, cache, task)
    precision = "" if spec.precision == "32" else f"-{spec.precision}"  # float32's files keep their earlier name
    path = cache / "embeddings" / fingerprint / f"{task}-{spec.data_key()}{precision}.npz"
    videos = list(iter_videos(expand_urls(str(data))))
    embs = _stored_embeddings(path, len(videos))
    if embs is None:
        from reprl.embed.pipeline import embed_video

        embs = [embed_video(encoder, v, batch_size, spec.precision).numpy() for v in videos]
        arrays: dict[str, Any] = {f"e{i}": e for i, e in enumerate(embs)}
        with replacing(path) as tmp:
            np.savez(tmp, **arrays)
    episodes = []
    for v, emb in zip(videos, embs):
        episodes.append({"key": v.key, "emb": emb, "proprio": v.array("proprio"), "actions": v.array("actions"),
                         "success": v.array("success").astype(bool), "expert": bool(v.meta.get("expert", True)),
                         "reward": v.array("reward"),
                         "behaviour": v.meta.get("behaviour", "expert" if v.meta.get("expert", True) else "noisy"),
                         "episode": int(v.meta.get("episode", 0))})
    return episodes
