"""Accumulating stage timers and robust summaries for benchmarks."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class StageTimer:
    """Adds wall time per named stage: `with timer("decode"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def timed_iter(self, stage: str, it: Iterator[T]) -> Iterator[T]:
        """Charge the time spent producing each item of `it` to `stage`."""
        while True:
            start = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds[stage] += time.perf_counter() - start
                return
            self.seconds[stage] += time.perf_counter() - start
            yield item

    def reset(self) -> None:
        self.seconds.clear()


class NullTimer(StageTimer):
    """A timer that measures nothing (the default in production paths)."""

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        yield

    def timed_iter(self, stage: str, it: Iterator[T]) -> Iterator[T]:
        return it


def median_spread(values: list[float]) -> dict[str, Any]:
    """Median with min and max, for 'figures are medians of several repeats'."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
