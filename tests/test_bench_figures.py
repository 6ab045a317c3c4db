"""The arithmetic of the figures `reprl bench data` prints (stage shares, decode time by scale, the frame-index
and ingestion sections), on stubbed measurements whose answers are worked out by hand in the comments. The
benchmarks themselves run in tests/test_bench.py (tiny configurations, figures not asserted)."""

import json
from types import SimpleNamespace

import pytest

import reprl.bench.data as data
import reprl.bench.decode as decode
import reprl.bench.frameindex as frameindex
import reprl.bench.ingest as ingest
from reprl.data.frameindex import STATS
from reprl.options import DataBenchConfig


class Clock:
    """A fake clock for the benches' `time` module: each batch of FakeStream takes 2 s of wall and 1 s of CPU."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def module(self) -> SimpleNamespace:
        return SimpleNamespace(perf_counter=lambda: self.wall, thread_time=lambda: self.cpu)


class FakeStream:
    """Batches that each take 2 s (1 s of it decoding, 0.5 s reading) and read 1,000 bytes of shards."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.timer, self.use_index = clock, None, None

    def __iter__(self):
        while True:
            self.clock.wall += 2.0
            self.clock.cpu += 1.0
            if self.timer is not None:
                self.timer.seconds["decode"] += 1.0
                self.timer.seconds["read"] += 0.5
            STATS.data_bytes += 1000
            yield "batch"


def test_stream_rates_and_stage_shares_count_the_timed_batches_only(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(data, "time", clock.module())
    monkeypatch.setattr(data, "_stream", lambda shards, cfg, repeat: FakeStream(clock))
    wall, cpu, stage = data._time_stream("shards", DataBenchConfig(batches=3, batch_size=4), 0)
    # after the warm-up batch (the timer is reset after it): 3 batches x 4 tuples in 6 s of wall time -> 2
    # tuples/s, in 3 s of CPU time -> 4 tuples/s; decode 3 s / 6 s = 0.5, read 1.5 / 6 = 0.25, other 0.25
    assert wall == pytest.approx(2.0) and cpu == pytest.approx(4.0)
    assert stage == pytest.approx({"decode": 0.5, "read": 0.25, "other": 0.25})


def test_decode_time_by_scale_is_the_full_scale_cpu_rate_over_each_scales(monkeypatch):
    # CPU-time rates of 100 n frames/s at n/8 scale (wall-time rates all 1: they must not be used): decoding at
    # n/8 takes (1 / 100 n) / (1 / 800) = 8 / n of the full-scale time
    monkeypatch.setattr(decode, "decode_rate", lambda jpegs, eighths=8: (1.0, 100.0 * eighths))
    assert decode.decode_time_by_scale([b"jpeg"]) == pytest.approx({n: 8 / n for n in range(1, 9)})


def test_frame_index_bytes_per_tuple_count_the_timed_batches_and_the_timers_warm_up(monkeypatch):
    clock = Clock()
    made = []

    def stream(shards, cfg, seed):
        made.append(FakeStream(clock))
        return made[-1]

    monkeypatch.setattr(data, "time", clock.module())
    monkeypatch.setattr(data, "_stream", stream)
    STATS.reset()
    rate, per_tuple = frameindex._measure("shards", DataBenchConfig(batches=3, batch_size=4), True, 0)
    # _time_batches: one warm-up batch, then 3 batches x 4 tuples in 6 s -> 2 tuples/s; bytes are counted from
    # after _measure's own warm-up batch: 4 batches x 1,000 bytes over 4 x 4 tuples = 250 bytes per tuple
    assert rate == pytest.approx(2.0) and per_tuple == pytest.approx(250.0)
    assert made[0].use_index is True


def test_frame_index_rows_and_their_printed_speed_up(monkeypatch, tmp_path):
    monkeypatch.setattr(frameindex, "synthetic_clips", lambda out, length, total, size: str(out))
    runs = {False: iter([(100.0, 4096.0), (120.0, 3072.0), (200.0, 1024.0)]),  # (tuples/s, bytes/tuple), walking
            True: iter([(400.0, 512.0), (300.0, 2560.0), (600.0, 4096.0)])}  # through the index
    monkeypatch.setattr(frameindex, "_measure", lambda shards, cfg, flag, seed: next(runs[flag]))
    cfg = DataBenchConfig(cache=str(tmp_path), frame_index=(40,), repeats=3)
    [row] = frameindex.bench_frame_index(cfg)
    # walk: median of 100 / 120 / 200 tuples/s = 120, of 4,096 / 3,072 / 1,024 bytes = 3,072 (3.0 KB);
    # index: median 400 tuples/s, 2,560 bytes (2.5 KB); speed-up 400 / 120 = 3.33x
    assert row["clip_frames"] == 40
    assert row["walk"]["tuples_per_s"]["median"] == 120.0 and row["walk"]["bytes_per_tuple"] == 3072.0
    assert row["index"]["tuples_per_s"]["median"] == 400.0 and row["index"]["bytes_per_tuple"] == 2560.0
    line = frameindex.format_frame_index([row], {"mode": "vip", "image_size": 64, "batch_size": 32,
                                                  "repeats": 3}).splitlines()[-1]
    assert line.split() == ["40", "120.0", "400.0", "3.33x", "3.0", "2.5"]


def test_ingest_rates_peak_memory_and_worker_runs(monkeypatch, tmp_path):
    def child(cmd, **kwargs):  # what the child leaves: the shard index with its ingest figures, VmHWM in kB
        out = tmp_path / "cache" / "ingest" / "out"
        out.mkdir(parents=True)
        (out / "index.json").write_text(json.dumps({"ingest": {"source_frames_decoded": 600, "seconds": 2.0,
                                                               "frames_per_s_per_worker": 300.0}}))
        return SimpleNamespace(stdout="51200\n")

    monkeypatch.setattr(ingest.subprocess, "run", child)
    r = ingest.convert([tmp_path / "v.mp4"], tmp_path / "cache" / "ingest" / "out", 1)
    # 600 frames in 2 s -> 300 frames/s; 51,200 kB = 50 MB; the child's output folder is removed after
    assert r["frames_per_s"] == 300.0 and r["peak_mb"] == 50.0 and r["wall_s"] >= 0
    assert not (tmp_path / "cache" / "ingest" / "out").exists()

    def video(path, frames):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"mp4")
        return path

    calls = []
    rates = iter([10.0, 30.0, 20.0, 40.0, 60.0, 50.0, 70.0, 90.0, 80.0, 100.0, 120.0, 110.0])
    peaks = iter([12.0, 10.0, 11.0] + [10.0] * 6 + [20.0] * 3)

    def convert(videos, out, workers):
        calls.append((len(videos), workers))
        return {"frames_per_s": next(rates), "peak_mb": next(peaks)}

    monkeypatch.setattr(ingest, "synthetic_video", video)
    monkeypatch.setattr(ingest, "convert", convert)
    res = ingest.bench_ingest(DataBenchConfig(cache=str(tmp_path / "cache"), ingest=(300, 3000), repeats=3))
    # each length alone, 3 repeats each, then 4 copies of the longest with 1 and with 2 workers
    assert calls == [(1, 1)] * 6 + [(4, 1)] * 3 + [(4, 2)] * 3
    # medians: 300 frames -> 20 (10, 30, 20), 3000 -> 50 (40, 60, 50); 1 worker 80, 2 workers 110
    assert [row["frames"] for row in res["lengths"]] == [300, 3000]
    assert [row["frames_per_s"]["median"] for row in res["lengths"]] == [20.0, 50.0]
    assert [(row["workers"], row["frames_per_s"]["median"], row["peak_mb"]["median"]) for row in res["workers"]] \
        == [(1, 80.0, 10.0), (2, 110.0, 20.0)]
    lines = ingest.format_ingest(res, {"repeats": 3}).splitlines()
    assert lines[2].split() == ["300", "20", "[10-30]", "11", "[10-12]"]  # peak MB: median 11 of 12 / 10 / 11
    assert lines[-1] == "4 videos, 2 worker(s): 110 [100-120] source frames/s overall"


def test_in_process_figures_are_medians_over_repeats_and_each_ratio_pairs_figures_of_one_repeat(monkeypatch):
    decodes = iter([(800.0, 1000.0), (1200.0, 1600.0), (1000.0, 1200.0)])  # frames/s: (wall, CPU) per repeat
    streams = iter([(200.0, 300.0, {"decode": 0.5, "read": 0.1, "augment": 0.2}),  # tuples/s (wall, CPU), shares
                    (150.0, 400.0, {"decode": 0.6, "read": 0.2}),
                    (300.0, 500.0, {"decode": 0.4, "read": 0.3, "augment": 0.1})])
    loaders = iter([50.0, 60.0, 40.0, 90.0, 70.0, 80.0])  # frame-file loaders: reference, uint8, per repeat
    reads = iter([{"reprl_index": 1.0, "webdataset": 4.0}, {"reprl_index": 3.0, "webdataset": 2.0},
                  {"reprl_index": 2.0, "webdataset": 3.0}])
    scales = iter([{4: 0.7, 8: 1.0}, {4: 0.9, 8: 1.0}, {4: 0.8, 8: 1.0}])
    monkeypatch.setattr(data, "corpus_frames", lambda shards: [b"jpeg"])
    monkeypatch.setattr(data, "decode_rate", lambda jpegs: next(decodes))
    monkeypatch.setattr(data, "_time_stream", lambda shards, cfg, r: next(streams))
    monkeypatch.setattr(data, "FrameFileTuples", lambda *a, **k: None)
    monkeypatch.setattr(data, "_baseline_batches", lambda ds, batch_size: None)
    monkeypatch.setattr(data, "_time_batches", lambda it, batches, batch_size: next(loaders))
    monkeypatch.setattr(data, "read_seconds_per_video", lambda shards: next(reads))
    monkeypatch.setattr(data, "decode_time_by_scale", lambda jpegs: next(scales))
    r = data.bench_in_process("shards", None, DataBenchConfig(repeats=3))  # VIP tuples: 4 frames each
    # bound: 800 / 1,200 / 1,000 frames/s over 4 frames -> 200 / 300 / 250 tuples/s, median 250
    assert r["decode_bound"]["tuples_per_s"]["median"] == 250.0 and r["decode_bound"]["frames_per_tuple"] == 4
    # per repeat, the loader over that repeat's bound: 200 / 200, 150 / 300, 300 / 250 -> 1.0, 0.5, 1.2
    assert r["ratio_vs_decode_bound"] == pytest.approx({"median": 1.0, "min": 0.5, "max": 1.2, "n": 3})
    # of CPU time: 300 / 250, 400 / 400, 500 / 300 -> 1.2, 1.0, 1.67
    assert r["ratio_vs_decode_bound_cpu"]["median"] == pytest.approx(1.2)
    assert r["reprl"]["median"] == 200.0 and r["framefiles_reference"]["median"] == 50.0  # of 50, 40, 70
    assert r["framefiles_uint8"]["median"] == 80.0  # of 60, 90, 80
    # shares: medians per stage; a stage a repeat did not time counts 0 (augment: 0.2, 0, 0.1 -> 0.1)
    assert r["stage_share"] == pytest.approx({"read": 0.2, "decode": 0.5, "augment": 0.1, "collate": 0.0,
                                              "other": 0.0})
    per_video = r["read_s_per_video"]
    assert per_video["reprl_index"]["median"] == 2.0 and per_video["webdataset"]["median"] == 3.0
    assert r["decode_time_by_scale"][4]["median"] == pytest.approx(0.8)
