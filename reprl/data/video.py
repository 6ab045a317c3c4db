"""Decode frames from frame folders and video files into RGB uint8 arrays [H, W, 3].

Grayscale, palette, RGBA and 16-bit frames are converted to 8-bit RGB; undecodable inputs raise
`DecodeError` with a reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from reprl.data.sources import VideoSource, list_frames


class DecodeError(Exception):
    """This video cannot be used; the message is the reason."""


@dataclass
class FrameInfo:
    fps: float | None
    width: int
    height: int
    source_frames: int | None  # frames in the file/folder before any cut, when known


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL image -> RGB uint8 [H, W, 3]. 16-bit and 32-bit integer images are scaled, not clipped."""
    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        raise DecodeError("floating-point images (PIL mode F) are not supported; save frames as 8/16-bit PNG or JPEG")
    return np.asarray(img.convert("RGB"))


def load_image(path: str | Path) -> np.ndarray:
    """Read one image file as RGB uint8 [H, W, 3]."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DecodeError(f"cannot read image {path}: {e}") from None


def iter_frames(src: VideoSource) -> tuple[FrameInfo, Iterator[np.ndarray]]:
    """Frames of `src` (after its start/end cut) and what is known about them."""
    if src.kind == "frames":
        return _iter_folder(src)
    return _iter_video(src)


def _cut_indices(n: int, src: VideoSource, fps: float | None) -> range:
    start, end = src.start_frame or 0, src.end_frame if src.end_frame is not None else n
    if src.start_sec is not None or src.end_sec is not None:
        if not fps:
            raise DecodeError("start/end given in seconds but the fps is unknown: add an fps column or use start_frame")
        start = round((src.start_sec or 0.0) * fps)
        end = round(src.end_sec * fps) if src.end_sec is not None else n
    return range(max(0, start), min(n, end))


def _iter_folder(src: VideoSource) -> tuple[FrameInfo, Iterator[np.ndarray]]:
    files = list_frames(Path(src.path))
    if not files:
        raise DecodeError("folder holds no frames (jpg/png)")
    first = load_image(files[0])
    keep = _cut_indices(len(files), src, src.fps)
    info = FrameInfo(fps=src.fps, width=first.shape[1], height=first.shape[0], source_frames=len(files))

    def gen() -> Iterator[np.ndarray]:
        for i in keep:
            frame = first if i == 0 else load_image(files[i])
            if frame.shape != first.shape:
                raise DecodeError(
                    f"mixed frame sizes: {files[0].name} is {first.shape[1]}x{first.shape[0]} but "
                    f"{files[i].name} is {frame.shape[1]}x{frame.shape[0]}"
                )
            yield frame

    return info, gen()


def _iter_video(src: VideoSource) -> tuple[FrameInfo, Iterator[np.ndarray]]:
    import av

    try:
        container = av.open(src.path)
    except (av.error.FFmpegError, OSError) as e:
        raise DecodeError(f"cannot open video: {e}") from None
    if not container.streams.video:
        container.close()
        raise DecodeError("file has no video stream")
    stream = container.streams.video[0]
    fps = float(stream.average_rate) if stream.average_rate else None
    info = FrameInfo(fps=fps, width=stream.codec_context.width, height=stream.codec_context.height,
                     source_frames=stream.frames or None)
    cut = _cut_indices(10**12, src, fps)

    def gen() -> Iterator[np.ndarray]:
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i >= cut.stop:
                    break
                if i >= cut.start:
                    yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise DecodeError(f"video stopped decoding: {e}") from None
        finally:
            container.close()

    return info, gen()


def read_video_frames(path: str | Path) -> tuple[FrameInfo, list[np.ndarray]]:
    """All frames of a video file or frame folder, decoded."""
    p = Path(path)
    src = VideoSource(path=str(p), kind="frames" if p.is_dir() else "video")
    info, frames = iter_frames(src)
    return info, list(frames)
