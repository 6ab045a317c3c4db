"""What a run was measured on: the CPU, its core and thread counts, and the versions of the libraries that
change numbers. The same seed and data can train a different encoder on another machine (docs/results.md,
"The same preset on a second machine"), so a run's summary records these beside its figures."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

LIBRARIES = ("torch", "torchvision", "lightning", "numpy", "pillow", "simplejpeg", "av", "mujoco", "metaworld")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS has one, else all cores)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch's intra-op thread count set to `n` (at least 1) for the block, and the caller's count restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_memory() -> int | None:
    """Bytes of memory available to new processes without swapping (MemAvailable in /proc/meminfo, Linux), or
    None where that is not known."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows, else ''."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """{'cpu', 'cores' (usable by this process), 'torch_threads', 'python', 'versions': {library: version}}
    (installed libraries only)."""
    import torch

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["torch"] = torch.__version__  # with its build tag (+cpu, +cu130, ...), which the metadata omits
    return {"cpu": cpu_name(), "cores": usable_cores(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "versions": versions}
