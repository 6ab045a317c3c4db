"""Ordered parallel map over processes that fails loudly (never hangs) when a worker dies."""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from reprl.errors import ReprlError

T = TypeVar("T")


def ordered_map(fn: Callable[[Any], T], jobs: Iterable[Any], workers: int, ahead: int = 2,
                initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()) -> Iterator[T]:
    """Yield fn(job) in job order, running up to `workers` processes (spawned) with `ahead` x workers jobs in flight.

    workers <= 1 runs in this process (without `initializer`). A worker that crashes raises ReprlError instead
    of hanging the run.
    """
    if workers <= 1:
        yield from map(fn, jobs)
        return
    pending: deque[Future[T]] = deque()
    it = iter(jobs)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=initializer,
                             initargs=initargs) as pool:
        try:
            for job in it:
                pending.append(pool.submit(fn, job))
                if len(pending) >= workers * ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            raise ReprlError(f"a worker process died ({e}); rerun with --workers 1 to see the error") from None
        finally:
            for f in pending:
                f.cancel()
