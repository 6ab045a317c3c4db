"""Encoders compiled for inference (`compile: true` in suites, `Policy(..., compile=True)`, `reprl bench eval
--compile`): torch.compile's inductor with frozen weights, which on the CPU folds batch norm into the
convolutions and pre-packs their weights for oneDNN. In rollouts, where the encoder shares 2 cores with the
environments, this is the largest lever measured on ResNet-18 (docs/benchmarks.md, "A compiled encoder in
rollouts").

Shapes are static: each batch is padded to the largest batch size compiled so far (repeating its last image),
so the shrinking batches at the end of a rollout reuse one compiled graph instead of compiling one per size,
and the padding's outputs are dropped. The weights are constants of the compiled graph: the encoder must not
be trained afterwards (a frozen encoder, as policies use it). The outputs equal the eager forward's up to
floating-point rounding (float32: below 1e-6 of the norm, measured on ResNet-18), not bit for bit.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import weakref
from typing import Any

import torch
from torch._inductor import config as inductor_config

from reprl.errors import ReprlError

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoder -> its compiled copy


def check_compile(device: torch.device) -> None:
    """A one-line error where compiling cannot work, before any expensive step: inductor on the CPU builds C++
    kernels, so it needs a C++ compiler."""
    if device.type == "cpu" and not (os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "c++", "clang++"))):
        raise ReprlError("compile needs a C++ compiler on the CPU (torch.compile builds C++ kernels): install one "
                         "(apt install g++) or set compile to false")


class _StaticBatches:
    """`encode` compiled with static shapes; batches smaller than the largest one seen are padded up to it."""

    def __init__(self, encode: Any) -> None:
        self.fn = torch.compile(encode, dynamic=False)
        self.sizes: list[int] = []  # every batch size compiled, in order: the last is the largest

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if not self.sizes or n > self.sizes[-1]:
            self.sizes.append(n)
        size = self.sizes[-1]
        if n < size:
            pad = x[-1:].expand(size - n, *x.shape[1:])
            x = torch.cat([x, pad]).contiguous(memory_format=_format(x))
        # freezing is read when a graph compiles (at a call), and only from the global config: torch.compile's
        # options={"freezing": True} left ResNet-18 as slow as eager (measured), so it is patched around the call
        with inductor_config.patch(freezing=True):
            return self.fn(x)[:n]


def _format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def compiled_for_inference(encoder: Any) -> Any:
    """A copy of `encoder` (sharing its weights) whose image tower is compiled for inference; one per encoder,
    so every policy on the same encoder shares the compiled graphs. Call it in eval mode, without gradients."""
    if not hasattr(encoder, "encode") or not hasattr(encoder, "preprocess"):
        raise ReprlError(f"compile works with reprl encoders, got a {type(encoder).__name__}; set compile to false")
    if encoder.training:
        raise ReprlError("compile is for a frozen encoder in eval mode: call encoder.eval() (or .freeze()) first")
    fast = _COMPILED.get(encoder)
    if fast is None:
        check_compile(encoder.device)
        if encoder.device.type == "cpu":  # its "No CUDA runtime is found" warning says nothing about a CPU run
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        fast = copy.copy(encoder)  # shares parameters and submodules; only `encode` differs
        fast.encode = _StaticBatches(type(encoder).encode.__get__(fast))  # no reference back to `encoder`
        _COMPILED[encoder] = fast
    return fast
