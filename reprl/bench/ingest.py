"""`reprl bench data --ingest 300,3000`: `reprl shards` on synthetic 640x480 30 fps H.264 videos of each
length, in a child process: source frames/s and the child's peak resident memory (VmHWM) per length, then
four videos of the longest length with 1 and 2 workers (frames/s overall: do workers use both cores?).

Videos are nearly flat frames with a moving bar (cheap to generate), written once into `cache`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reprl.data.video import write_mp4
from reprl.utils.timing import median_spread

CHILD = """
import sys
from reprl.data.shards import ShardOptions, write_shards
write_shards(sys.argv[3:], sys.argv[1], ShardOptions(workers=int(sys.argv[2]), overwrite=True), progress=False)
print([ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1])
"""


def synthetic_video(path: Path, frames: int, size: tuple[int, int] = (640, 480), fps: int = 30) -> Path:
    """A cheap-to-encode video of `frames` frames (written once; kept when it exists)."""
    if path.exists():
        return path
    return write_mp4(path, moving_bar_frames(frames, size), fps, options={"preset": "ultrafast", "tune": "zerolatency"})


def moving_bar_frames(frames: int, size: tuple[int, int] = (640, 480)) -> Iterator[np.ndarray]:
    """Nearly flat grey frames (cheap to encode) with a bright bar that moves 7 px a frame, so frames differ."""
    w, h = size
    for i in range(frames):
        frame = np.full((h, w, 3), 90, np.uint8)
        x = (7 * i) % (w - 40)
        frame[:, x:x + 40] = 200
        yield frame


def convert(videos: list[Path], out: Path, workers: int) -> dict[str, float]:
    """Run `write_shards` in a fresh child: wall seconds, source frames/s overall and per worker, peak MB."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(workers), *map(str, videos)],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    ingest = json.loads((out / "index.json").read_text())["ingest"]
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "frames_per_s": ingest["source_frames_decoded"] / ingest["seconds"],
            "frames_per_s_per_worker": ingest["frames_per_s_per_worker"],
            "peak_mb": int(done.stdout.split()[-1]) / 1024}


def bench_ingest(cfg: Any) -> dict[str, Any]:
    cache = Path(cfg.cache) / "ingest"
    rows = []
    for n in cfg.ingest:
        video = synthetic_video(cache / f"synthetic_{n}.mp4", n)
        runs = [convert([video], cache / "out", 1) for _ in range(cfg.repeats)]
        rows.append({"frames": n, "frames_per_s": median_spread([r["frames_per_s"] for r in runs]),
                     "peak_mb": median_spread([r["peak_mb"] for r in runs])})
    longest = synthetic_video(cache / f"synthetic_{max(cfg.ingest)}.mp4", max(cfg.ingest))
    copies = []
    for i in range(4):
        link = cache / "corpus" / f"copy{i}.mp4"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            try:
                os.link(longest, link)
            except OSError:
                shutil.copy(longest, link)
        copies.append(link)
    scaling = []
    for workers in (1, 2):
        runs = [convert(copies, cache / "out", workers) for _ in range(cfg.repeats)]
        scaling.append({"workers": workers, "frames_per_s": median_spread([r["frames_per_s"] for r in runs]),
                        "peak_mb": median_spread([r["peak_mb"] for r in runs])})
    return {"lengths": rows, "workers": scaling}


def format_ingest(r: dict[str, Any], cfg: dict[str, Any]) -> str:
    lines = [f"ingest: reprl shards (resize 256, JPEG 90) on synthetic 640x480 30 fps H.264 videos, child process, "
             f"median [min-max] of {cfg['repeats']} runs",
             f"{'frames':>7s}  {'source frames/s':>22s}  {'peak RSS MB':>20s}"]
    for row in r["lengths"]:
        f, m = row["frames_per_s"], row["peak_mb"]
        lines.append(f"{row['frames']:>7d}  {f['median']:>8.0f} [{f['min']:.0f}-{f['max']:.0f}]  "
                     f"{m['median']:>8.0f} [{m['min']:.0f}-{m['max']:.0f}]")
    for row in r["workers"]:
        f = row["frames_per_s"]
        lines.append(f"4 videos, {row['workers']} worker(s): {f['median']:.0f} [{f['min']:.0f}-{f['max']:.0f}] "
                     f"source frames/s overall")
    return "\n".join(lines)
