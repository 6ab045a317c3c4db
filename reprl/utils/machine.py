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


def resolve_device(device: str, flag: str = "--device") -> str:
    """`device` checked against this machine, with "auto" made concrete (cuda where a CUDA GPU is visible, else
    mps where available, else cpu): a name torch does not know, or a GPU this machine does not have, is a
    one-line error before any work."""
    import torch

    from reprl.errors import ReprlError

    name = str(device).strip()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ReprlError(f"{flag} {name!r} is not a device: give cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ReprlError(f"{flag} {name}: no CUDA GPU is visible to this process; use {flag} cpu (or auto)")
        if dev.index is not None and dev.index >= count:
            raise ReprlError(f"{flag} {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not has_mps:
            raise ReprlError(f"{flag} mps: Apple's Metal backend is not available here; use {flag} cpu (or auto)")
    elif dev.type != "cpu":
        raise ReprlError(f"{flag} {name!r}: reprl runs on cpu, cuda, cuda:N or mps (or auto)")
    return name


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
