"""Reduced-scale JPEG decoding in the training stream: the scale rule, the crop box mapped onto the reduced
frame, and a bound on the pixel difference against full decoding of the same tuple."""

import io

import numpy as np
import pytest
import torch
from conftest import TRAIN_SHARDS
from PIL import Image

from reprl.data.augment import crop_params, crop_resize, decode_eighths
from reprl.data.reader import decode_frames, expand_urls, iter_videos
from reprl.data.sampling import SAMPLING_MODES, sample_indices
from reprl.data.stream import StreamConfig, TupleStream


def jpeg(array, quality=95):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_decode_eighths_keeps_at_least_the_output_size():
    sides = (40, 64, 85, 86, 128, 129, 256, 512, 4000)
    assert [decode_eighths(side, 64) for side in sides] == [8, 8, 8, 8, 4, 4, 2, 1, 1]
    assert [decode_eighths(side, 64) for side in (127, 170, 171, 255, 256)] == [8, 4, 4, 4, 2]  # no 3, 5-7
    assert decode_eighths(224, 224) == 8 and decode_eighths(256, 224) == 8 and decode_eighths(448, 224) == 4


def test_reduced_decode_sizes_and_the_box_lands_on_the_same_region():
    """Four flat quadrants (red, green / blue, white) of a 256 x 192 frame: a box inside one quadrant gives
    that quadrant's colour at every scale; an unmapped box (full-frame offsets on the reduced frame) would
    fall outside the frame or into another quadrant."""
    img = np.zeros((192, 256, 3), np.uint8)
    img[:96, :128] = (255, 0, 0)
    img[:96, 128:] = (0, 255, 0)
    img[96:, :128] = (0, 0, 255)
    img[96:, 128:] = (255, 255, 255)
    data = [jpeg(img)]
    assert decode_frames(data, 2).shape == (1, 3, 48, 64) and decode_frames(data, 4).shape == (1, 3, 96, 128)
    assert decode_frames(data, 6).shape == (1, 3, 144, 192) and decode_frames(data).shape == (1, 3, 192, 256)
    for box, colour in [((104, 136, 80, 112), (255, 255, 255)), ((8, 136, 80, 112), (0, 255, 0)),
                        ((104, 8, 80, 112), (0, 0, 255))]:
        for k in (8, 6, 4, 2):
            out = crop_resize(decode_frames(data, k), box, 16, full_hw=(192, 256)).float()
            centre = out[0, :, 3:13, 3:13].mean(dim=(1, 2))
            assert torch.allclose(centre, torch.tensor(colour, dtype=torch.float32), atol=12), (box, k, centre)


def test_stream_tuple_matches_full_decoding_within_a_bound():
    """The stream's tuple (reduced decoding) vs the same indices and crop box decoded at full scale: the same
    RNG draws, pixels within resampling differences. A harsh case: 64 px frames decoded at 2/8 or 4/8 scale
    for 16 px crops; mean < 9 levels of 255, 99th percentile < 64 (on 256 px frames cropped to 64 px the mean
    difference is about 2.4, see docs/benchmarks.md), while a box moved by a quarter differs by more than 15."""
    video = next(iter_videos(expand_urls(TRAIN_SHARDS)))
    cfg = StreamConfig(mode="vip", image_size=16, crop_scale=(0.6, 1.0), tuples_per_video=2)
    stream = TupleStream(TRAIN_SHARDS, cfg)
    got = stream.tuples_from_video(video, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    draws = [sample_indices("vip", len(video), rng) for _ in range(2)]
    height, width = video.frame_size()
    boxes = [crop_params(height, width, rng, cfg.crop_scale) for _ in draws]
    assert decode_eighths(min(min(b[2:]) for b in boxes), 16) <= 4, "crops over twice the output: decoded small"
    for tup, d, box in zip(got, draws, boxes):
        assert tup["indices"] == d
        frames = video.decode([d[r] for r in SAMPLING_MODES["vip"].roles])
        diff = (tup["frames"].float() - crop_resize(frames, box, 16).float()).abs()
        assert diff.mean() < 9 and torch.quantile(diff.flatten(), 0.99) < 64, (diff.mean(), diff.max())
        top, left, h, w = box  # the bound tells boxes apart: the box moved by a quarter of its size fails it
        moved = (top + h // 4, left + w // 4, h - h // 4, w - w // 4) if top + left < 8 else (0, 0, h, w)
        assert (tup["frames"].float() - crop_resize(frames, moved, 16).float()).abs().mean() > 15


def test_full_decode_is_the_same_as_torchvision():
    from torchvision.io import ImageReadMode, decode_jpeg

    video = next(iter_videos(expand_urls(TRAIN_SHARDS)))
    ours = video.decode([0, 5])
    ref = torch.stack([decode_jpeg(torch.frombuffer(bytearray(video.frames[i]), dtype=torch.uint8),
                                   mode=ImageReadMode.RGB) for i in (0, 5)])
    assert torch.equal(ours, ref) and ours.is_contiguous()
    assert torch.equal(video.decode([0, 5], channels_last=True), ref)


def test_bad_jpeg_raises_value_error_in_both_paths():
    good = jpeg(np.zeros((32, 48, 3), np.uint8))
    for k in (8, 4):
        with pytest.raises(ValueError, match="undecodable"):
            decode_frames([b"not a jpeg"], k)
        with pytest.raises(ValueError, match="undecodable"):
            decode_frames([good, b"not a jpeg"], k)


def test_frames_are_decoded_in_place_and_must_share_one_size():
    """Frames decoded into one array equal one-by-one decoding, at full and reduced scale; a video whose frames
    differ in size is refused whichever frame is larger (a larger later frame must not overrun the array)."""
    import simplejpeg

    rng = np.random.default_rng(1)
    data = [jpeg(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)) for _ in range(3)]
    for k in (8, 4, 2):
        ref = np.stack([simplejpeg.decode_jpeg(b, colorspace="RGB", min_height=64 * k // 8, min_width=96 * k // 8)
                        for b in data])
        assert torch.equal(decode_frames(data, k), torch.from_numpy(ref).permute(0, 3, 1, 2))
    small, large = jpeg(np.zeros((32, 48, 3), np.uint8)), jpeg(np.zeros((64, 96, 3), np.uint8))
    for frames in ([small, large], [large, small]):
        for k in (8, 4):
            with pytest.raises(ValueError, match="different sizes"):
                decode_frames(frames, k)


def test_crop_params_on_frames_that_are_not_square():
    rng = np.random.default_rng(0)
    # half of a 100 x 200 frame's area at aspect 1: 100 x 100, top 0 (no room), left drawn in 0..100 (31 here)
    top, left, h, w = crop_params(100, 200, rng, (0.5, 0.5), (1, 1))
    assert (top, h, w) == (0, 100, 100) and 0 <= left <= 100
    assert crop_params(100, 100, rng, (0.25, 0.25), (1, 1))[2:] == (50, 50)  # a quarter of the area
    # an area that never fits (twice the frame): the central crop at the nearest allowed aspect ratio
    assert crop_params(100, 200, rng, (2.0, 2.0)) == (0, 33, 100, 133)  # 4/3 at most
    assert crop_params(200, 100, rng, (2.0, 2.0)) == (33, 0, 133, 100)  # 3/4 at least
    assert crop_params(100, 100, rng, (2.0, 2.0)) == (0, 0, 100, 100)


def test_crop_aspect_ratio_is_log_uniform():
    # log-uniform in [3/4, 4/3] has median 1; uniform would have (3/4 + 4/3) / 2 = 1.04
    rng = np.random.default_rng(0)
    ratios = [w / h for _, _, h, w in (crop_params(1000, 1000, rng, (0.1, 0.1)) for _ in range(4000))]
    assert abs(np.median(ratios) - 1.0) < 0.02


def test_crop_params_retries_before_falling_back():
    class Scripted:
        """uniform() returns the scripted values in turn; integers() its lower bound."""

        def __init__(self, values):
            self.values = iter(values)

        def uniform(self, lo, hi):
            return next(self.values)

        def integers(self, lo, hi):
            return lo

    # first try: area 2 x the frame (does not fit); second: a quarter of it at log-aspect 0 -> 50 x 50
    assert crop_params(100, 100, Scripted([2.0, 0.0, 0.25, 0.0]), (0.2, 1.0)) == (0, 0, 50, 50)


def test_center_box_of_wide_and_tall_frames():
    from reprl.data.augment import center_box

    assert center_box(100, 200) == (0, 50, 100, 100)
    assert center_box(200, 100) == (50, 0, 100, 100)


def test_crop_box_maps_onto_a_reduced_scale_frame_by_rounding_and_stays_inside():
    f = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).expand(1, 3, 8, 8).contiguous()
    # an 8 x 8 decode of a 64 x 64 frame: box (12, 12, 40, 40) -> top 1.5 -> 2, side 5 (rounded, not floored)
    assert torch.equal(crop_resize(f, (12, 12, 40, 40), 5, full_hw=(64, 64)), f[..., 2:7, 2:7])
    g = torch.arange(49, dtype=torch.uint8).view(1, 1, 7, 7).expand(1, 3, 7, 7).contiguous()
    # a 7 x 7 decode of a 14 x 14 frame: box (7, 7, 7, 7) -> top 3.5 -> 4, side 3.5 -> 4, cut to the 3 left
    assert torch.equal(crop_resize(g, (7, 7, 7, 7), 3, full_hw=(14, 14)), g[..., 4:7, 4:7])
