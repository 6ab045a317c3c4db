"""Regenerate the small real test corpus committed under tests/data (MetaWorld renders, CPU, EGL).

    MUJOCO_GL=egl python tools/make_test_data.py

- tests/data/metaworld/train: 5 pretraining tasks x 2 expert episodes, corner camera, 64 px (frames, task
  text, actions, proprio, state, per-step success)
- tests/data/metaworld/heldout: drawer-open (an evaluation task) x 3 episodes, the last one noisy
- tests/data/drawer_open.mp4: the first held-out episode as an H.264 video
"""

from __future__ import annotations

import shutil
from pathlib import Path

from reprl.data.reader import expand_urls, iter_videos
from reprl.data.video import write_mp4
from reprl.sim.corpus import CorpusConfig, render_corpus

ROOT = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> None:
    common = dict(size=64, cameras="corner", quality=85, max_videos_per_shard=3, overwrite=True, workers=2)
    render_corpus(CorpusConfig(tasks="reach,drawer-close,door-open,button-press,window-open", episodes=2,
                               seed=1, **common), ROOT / "metaworld" / "train", progress=False)
    render_corpus(CorpusConfig(tasks="drawer-open", episodes=3, noise=0.5, noisy_fraction=0.34, seed=2,
                               stop_after_success=10, **common), ROOT / "metaworld" / "heldout", progress=False)
    first = next(v for v in iter_videos(expand_urls(str(ROOT / "metaworld" / "heldout"))) if v.meta["expert"])
    frames = (f.permute(1, 2, 0).numpy() for f in first.decode())
    write_mp4(ROOT / "drawer_open.mp4", frames, 20, options={"crf": "23"})
    for p in ROOT.rglob(".*partial*"):
        shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    main()
