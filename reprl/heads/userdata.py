"""A user's own episodes for `reprl heads train`: reprl shards with actions, or one .npz file.

.npz layout (one row per frame, episodes back to back):
  images   uint8 [N, H, W, 3] (or [N, 3, H, W])   the camera frame
  actions  float [N, A]                           the action taken at that frame (an episode's last is unused)
  proprio  float [N, P]   optional                proprioception at that frame
  episode  int   [N]      optional                episode id of each frame (default: one episode)
  expert   bool  [N]      optional                frames of expert episodes (an episode is expert if any is)
  reward   float [N]      optional                environment reward of the step taken at that frame
Shards are what `reprl shards` / `reprl render` write: every frame, with `actions` (and `proprio`, `reward`)
arrays; an episode is expert unless its metadata says `expert: false`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprl.errors import ReprlError

REQUIRED = ("images", "actions")


def _npz_episodes(path: Path) -> list[dict[str, Any]]:
    """Raw episodes (frames uint8 [T+1, 3, H, W], actions [T, A], ...) from the .npz layout above."""
    import zipfile

    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would call it pickled data
        raise ReprlError(f"{path} is not an .npz archive (torn, or another kind of file); give an .npz of images, "
                         "actions (and proprio)")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ReprlError(f"cannot read {path} as .npz ({e}); give an .npz of images, actions (and proprio)") from None
    missing = [k for k in REQUIRED if k not in z.files]
    if missing:
        raise ReprlError(f"{path} lacks {', '.join(missing)}: an episodes .npz holds images [N, H, W, 3] and "
                         f"actions [N, A] (optional: proprio, episode, expert, reward); it has {', '.join(z.files)}")
    images, actions = z["images"], np.asarray(z["actions"], np.float32)
    n = len(images)
    channels = images.shape[1] if images.ndim == 4 and images.shape[1] in (1, 3) else images.shape[-1]
    if images.ndim != 4 or images.dtype != np.uint8 or channels != 3 or len(actions) != n or actions.ndim != 2:
        raise ReprlError(f"{path}: images must be uint8 RGB [N, H, W, 3] and actions [N, A] with the same N; got "
                         f"{images.dtype} {images.shape} and {actions.shape}")
    get = {k: np.asarray(z[k]) for k in ("proprio", "episode", "expert", "reward") if k in z.files}
    if "proprio" in get and get["proprio"].ndim == 1:
        get["proprio"] = get["proprio"][:, None]  # one number per frame: a 1-wide proprio vector
    if "proprio" in get and get["proprio"].ndim != 2:
        raise ReprlError(f"{path}: proprio must be [N, P] (or [N]), got {get['proprio'].shape}")
    for k, v in get.items():
        if len(v) != n:
            raise ReprlError(f"{path}: '{k}' has {len(v)} rows for {n} frames")
    ids = get.get("episode", np.zeros(n, np.int64))
    frames = torch.as_tensor(images if images.shape[1] in (1, 3) else images.transpose(0, 3, 1, 2))
    episodes = []
    for ep_id in dict.fromkeys(ids.tolist()):  # in order of first appearance
        rows = np.flatnonzero(ids == ep_id)
        if len(rows) < 2:
            raise ReprlError(f"{path}: episode {ep_id} has {len(rows)} frame; an episode needs at least 2")
        proprio = get["proprio"][rows] if "proprio" in get else np.zeros((len(rows), 0), np.float32)
        ep = {"key": f"episode{ep_id}", "frames": frames[rows], "actions": actions[rows[:-1]],
              "proprio": np.asarray(proprio, np.float32), "expert": bool(get["expert"][rows].any())
              if "expert" in get else True}
        if "reward" in get:
            ep["reward"] = np.asarray(get["reward"][rows[:-1]], np.float32)
        episodes.append(ep)
    return episodes


def _shard_episodes(spec: str) -> Iterator[dict[str, Any]]:
    from reprl.data.reader import expand_urls, iter_videos

    for v in iter_videos(expand_urls(spec)):
        if "actions" not in v.arrays:
            raise ReprlError(f"video {v.key} in {spec} has no actions array: heads train on episodes with actions "
                             "(render them with reprl render, or give an .npz)")
        actions = v.array("actions")
        ep = {"key": v.key, "video": v, "actions": actions, "expert": bool(v.meta.get("expert", True)),
              "proprio": v.array("proprio") if "proprio" in v.arrays else np.zeros((len(v), 0), np.float32)}
        if "reward" in v.arrays:
            ep["reward"] = v.array("reward")
        yield ep


def load_episodes(spec: str) -> list[dict[str, Any]]:
    """Episodes of a user's data (frames not yet embedded), validated."""
    from reprl.embed.frame_sources import is_shards

    if spec.endswith(".npz"):
        if not Path(spec).is_file():
            raise ReprlError(f"demos file not found: {spec}")
        episodes = _npz_episodes(Path(spec))
    elif is_shards(spec):
        episodes = list(_shard_episodes(spec))
    else:
        raise ReprlError(f"--demos {spec}: give reprl shards with actions (a folder with index.json, a .tar or a "
                         "brace pattern) or an .npz of images, actions and proprio")
    if not episodes:
        raise ReprlError(f"no episodes in {spec}")
    return episodes


def embed_episodes(episodes: list[dict[str, Any]], encoder: Any, batch_size: int = 64) -> list[dict[str, Any]]:
    """Add emb [T+1, D] to every episode with reprl's embedding pipeline (frames are decoded as they go)."""
    from reprl.embed.frame_sources import FrameSource, array_batches
    from reprl.embed.pipeline import embed_source, embed_video

    for ep in episodes:
        if "video" in ep:
            emb = embed_video(encoder, ep.pop("video"), batch_size)
        else:
            source = FrameSource(name=ep["key"], kind="episode", _open=array_batches(ep.pop("frames")))
            emb, _ = embed_source(encoder, source, batch_size=batch_size)
        ep["emb"] = emb.numpy()
        if len(ep["proprio"]) != len(ep["emb"]):
            raise ReprlError(f"{ep['key']}: {len(ep['proprio'])} proprio rows for {len(ep['emb'])} frames")
    return episodes
