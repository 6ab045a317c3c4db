"""Decode frames from frame folders and video files into RGB uint8 arrays [H, W, 3].

Grayscale, palette, RGBA and 16-bit frames are converted to 8-bit RGB; undecodable inputs raise
`DecodeError` with a reason a person can act on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from reprl.data.sources import VideoSource, list_frames
from reprl.utils.files import replacing


class DecodeError(Exception):
    """This video cannot be used; the message is the reason."""


@dataclass
class FrameInfo:
    fps: float | None
    width: int
    height: int
    source_frames: int | None  # frames in the file/folder before any cut, when known
    duration_s: float | None = None  # the video stream's duration from its header, when it has one

    def frames_or_estimate(self) -> int:
        """source_frames, else duration x fps from the header (some containers do not count frames), else 0."""
        if self.source_frames:
            return self.source_frames
        return int(self.duration_s * self.fps) if self.duration_s and self.fps else 0


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


def scaled_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side `size` and the aspect kept; size 0 keeps the size."""
    if size <= 0 or min(width, height) == size:
        return width, height
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_shorter(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is `size` (antialiased); 0 or equal size returns the frame as is."""
    new = scaled_size(frame.shape[1], frame.shape[0], size)
    if new == (frame.shape[1], frame.shape[0]):
        return frame
    return np.asarray(Image.fromarray(frame).resize(new, Image.Resampling.BILINEAR, reducing_gap=None))


def load_image(path: str | Path) -> np.ndarray:
    """Read one image file as RGB uint8 [H, W, 3]."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DecodeError(f"cannot read image {path}: {e}") from None


# A cut that starts more than this many frames past the decoder's position seeks (to the keyframe before it)
# instead of decoding on; below it, decoding on is about as cheap as a seek and exact for any frame rate.
SEEK_GAP = 64


Getter = Callable[..., np.ndarray]  # get(size=0) -> RGB uint8 [H, W, 3], shorter side `size`


class FrameReader:
    """Frames of one frame folder or video file, read lazily in index order over increasing ranges.

    `read(start, end)` yields (index, get) pairs where `get(size)` returns the RGB uint8 frame with its shorter
    side resized to `size` (0 keeps it): frames that a subsampler drops are never converted (or, for folders,
    never loaded), and video frames are scaled while converted from YUV, on the small image.
    """

    info: FrameInfo
    decoded: int = 0  # frames the decoder produced (a measure of work: seeking keeps it low)

    def read(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, Getter]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (a no-op for folders)."""

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderReader(FrameReader):
    """A folder of image files in natural order; every frame must have the first frame's size."""

    def __init__(self, path: str, fps: float | None = None) -> None:
        self.files = list_frames(Path(path))
        if not self.files:
            raise DecodeError("folder holds no frames (jpg/png)")
        first = load_image(self.files[0])
        self.info = FrameInfo(fps=fps, width=first.shape[1], height=first.shape[0], source_frames=len(self.files))

    def _load(self, i: int) -> np.ndarray:
        frame = load_image(self.files[i])
        if frame.shape[:2] != (self.info.height, self.info.width):
            raise DecodeError(f"mixed frame sizes: {self.files[0].name} is {self.info.width}x{self.info.height} "
                              f"but {self.files[i].name} is {frame.shape[1]}x{frame.shape[0]}")
        return frame

    def read(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, Getter]]:
        stop = len(self.files) if end is None else min(end, len(self.files))
        for i in range(max(0, start), stop):
            self.decoded += 1
            yield i, (lambda size=0, i=i: resize_shorter(self._load(i), size))


class VideoReader(FrameReader):
    """A video file (PyAV). Ranges are read in increasing order; a range starting more than SEEK_GAP frames
    past the current position seeks to the keyframe before it, decodes on and drops frames before `start`
    (frame indices then come from timestamps). Otherwise frames are counted from the start of the file."""

    def __init__(self, path: str) -> None:
        import av

        try:
            self._c = av.open(path)
        except (av.error.FFmpegError, OSError) as e:
            raise DecodeError(f"cannot open video: {e}") from None
        if not self._c.streams.video:
            self._c.close()
            raise DecodeError("file has no video stream")
        self._s = s = self._c.streams.video[0]
        fps = float(s.average_rate) if s.average_rate else None
        self.info = FrameInfo(fps=fps, width=s.codec_context.width, height=s.codec_context.height,
                              source_frames=s.frames or None,
                              duration_s=float(s.duration * s.time_base) if s.duration and s.time_base else None)
        from av.video.reformatter import VideoReformatter

        # one converter for every frame: PyAV's frame.to_ndarray(format=...) sets up a new swscale context per
        # call, which took half the time of decoding + converting a 256 px H.264 frame (same pixels either way)
        self._rgb = VideoReformatter()
        self._frames: Iterator[Any] | None = None
        self._next = 0  # index of the next frame the open decoder yields (when counting)
        self._held: tuple[int, Any] | None = None  # a frame read past the end of the previous range

    def _seek(self, start: int) -> None:
        s, fps = self._s, self.info.fps or 0.0
        base = s.start_time or 0
        assert s.time_base is not None, "a decodable video stream has a time base"
        self._c.seek(base + int(start / fps / s.time_base), stream=s, backward=True, any_frame=False)
        self._frames = self._indexed(lambda f: round(float((f.pts - base) * s.time_base) * fps))
        self._held = None

    def _indexed(self, index_of: Callable[[Any], int] | None) -> Iterator[tuple[int, Any]]:
        import av

        try:
            for frame in self._c.decode(self._s):
                self.decoded += 1
                if index_of is None:
                    i = self._next
                elif frame.pts is None:
                    raise DecodeError("frames carry no timestamps, so cuts cannot seek: convert the video to mp4")
                else:
                    i = index_of(frame)
                self._next = i + 1
                yield i, frame
        except av.error.FFmpegError as e:
            raise DecodeError(f"video stopped decoding: {e}") from None

    def read(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, Getter]]:
        far = start - (self._held[0] if self._held else self._next) > SEEK_GAP
        if self._frames is None and not (far and self.info.fps):
            self._frames = self._indexed(None)
        elif far and self.info.fps:
            self._seek(start)
        assert self._frames is not None
        pending = [self._held] if self._held else []
        self._held = None
        for i, frame in itertools.chain(pending, self._frames):
            if end is not None and i >= end:
                self._held = (i, frame)
                return
            if i >= start:
                yield i, (lambda size=0, f=frame: _rgb(self._rgb, f, size))

    def close(self) -> None:
        self._c.close()


def _rgb(reformatter: Any, frame: Any, size: int) -> np.ndarray:
    """A decoded frame as RGB uint8, its shorter side scaled to `size` in the same swscale pass (area filter)."""
    w, h = scaled_size(frame.width, frame.height, size)
    if (w, h) == (frame.width, frame.height):
        return reformatter.reformat(frame, format="rgb24").to_ndarray()
    return reformatter.reformat(frame, format="rgb24", width=w, height=h, interpolation="AREA").to_ndarray()


def open_reader(src: VideoSource) -> FrameReader:
    """A FrameReader for a source's folder or file. Raises DecodeError when it cannot be read."""
    return FolderReader(src.path, src.fps) if src.kind == "frames" else VideoReader(src.path)


def cut_range(src: VideoSource, fps: float | None) -> tuple[int, int | None]:
    """The source's [start, end) in frames (end None = to the end); start/end in seconds need the fps."""
    start, end = src.start_frame or 0, src.end_frame
    if src.start_sec is not None or src.end_sec is not None:
        if not fps:
            raise DecodeError("start/end given in seconds but the fps is unknown: add an fps column or use start_frame")
        start = round((src.start_sec or 0.0) * fps)
        end = round(src.end_sec * fps) if src.end_sec is not None else None
    return max(0, start), end


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: int = 30, *, options: dict[str, str] | None = None,
              gop: int | None = None) -> Path:
    """Encode RGB uint8 frames [H, W, 3] as an H.264 mp4 (yuv420p; size from the first frame), written atomically.

    `options` are libx264 settings (e.g. {"preset": "ultrafast", "crf": "10"}); `gop` the keyframe interval.
    """
    import av

    path = Path(path)
    with replacing(path) as tmp, av.open(str(tmp), "w") as out:
        stream = None
        for f in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = f.shape[1], f.shape[0], "yuv420p"
                if options:
                    stream.options = dict(options)
                if gop is not None:
                    stream.codec_context.gop_size = gop
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        out.mux(stream.encode())
    return path
