"""Bounds for `reprl bench data`, measured on the same shards in the same run:

- the pure JPEG-decode bound: full-scale decoding of the corpus's frames on one thread with reprl's decoder,
  in frames/s and as tuples/s (frames/s divided by the frames per tuple): a loader doing nothing but
  decoding its frames at full size;
- the shard readers on the same local shards: reprl's mmap reader through the frame index (when the shards
  have one), the same reader walking the tar headers, and webdataset's tar reader, as seconds per video to
  read every sample and pull its frames out (no decoding).
"""

from __future__ import annotations

import time
from typing import Any

from reprl.data.reader import expand_urls, iter_local_tar, iter_videos, jpeg_size, parse_sample, scaled_min_size


def corpus_frames(shards: str, limit: int = 400) -> list[bytes]:
    """Up to `limit` JPEG frames spread over every video of the corpus (every k-th frame)."""
    videos = list(iter_videos(expand_urls(shards)))
    total = sum(len(v) for v in videos)
    step = max(1, total // limit)
    frames = [bytes(f) for v in videos for f in v.frames]
    return frames[::step][:limit]


def decode_rate(jpegs: list[bytes], eighths: int = 8) -> tuple[float, float]:
    """Frames/s decoding `jpegs` one by one on one thread with the decoder reprl uses (libjpeg-turbo through
    simplejpeg), at full scale or at eighths/8 of it, per second of wall time and per second of this thread's
    CPU time (robust on a loaded machine)."""
    import simplejpeg

    min_h, min_w = scaled_min_size(jpeg_size(jpegs[0]), eighths)
    min_side = {"min_height": min_h, "min_width": min_w}
    simplejpeg.decode_jpeg(jpegs[0], colorspace="RGB", **min_side)
    start, cpu = time.perf_counter(), time.thread_time()
    for b in jpegs:
        simplejpeg.decode_jpeg(b, colorspace="RGB", **min_side)
    return len(jpegs) / (time.perf_counter() - start), len(jpegs) / (time.thread_time() - cpu)


def decode_time_by_scale(jpegs: list[bytes]) -> dict[int, float]:
    """CPU time to decode the frames at n/8 scale (n = 1..8) relative to full scale: which scaled decodings
    pay (the loader uses only the fastest ones, reprl.data.augment.FAST_EIGHTHS)."""
    rates = {n: decode_rate(jpegs, n)[1] for n in range(1, 9)}
    return {n: rates[8] / rate for n, rate in rates.items()}


def _webdataset_samples(url: str) -> Any:
    from webdataset.tariterators import tarfile_samples

    return tarfile_samples(iter([{"url": url}]))


def read_seconds_per_video(shards: str) -> dict[str, float]:
    """Seconds per video to read every sample of the shards and take its frames, per reader."""
    urls = expand_urls(shards)
    out = {}
    readers = (("reprl_index", iter_local_tar), ("reprl_walk", lambda url: iter_local_tar(url, use_index=False)),
               ("webdataset", _webdataset_samples))
    for name, samples in readers:
        start, videos = time.perf_counter(), 0
        for url in urls:
            for raw in samples(url):
                video = parse_sample(raw)
                videos += sum(len(f) > 0 for f in video.frames[:1])
        out[name] = (time.perf_counter() - start) / max(1, videos)
    return out

