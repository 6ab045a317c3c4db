"""Pure frame-index samplers: (video length, rng) -> frame index per role. No I/O, no torch.

Indices are 0-based (frames 0..L-1). Modes:

- ``vip`` (reference code): start s ~ U{0..L-3}, goal g ~ U{s+1..L-1}, t ~ U{s..g-1}, t1 = t+1.
- ``vip_last`` (paper, LIV Alg. 1): goal g = L-1, s ~ U{0..L-2}, t ~ U{s..L-2}, t1 = t+1.
- ``liv``: ``vip`` plus ``text_goal`` ~ U{floor(alpha*L)-1..L-1} (alpha = 0.95): the frame paired with the
  caption in the CLIP term, drawn from the end of the clip with the bounds of LIV's EPIC loader
  (``randint(int(alpha * L) - 1, L)``, upper end exclusive).
- ``liv_last``: ``vip_last`` plus ``text_goal`` as above.
- ``r3m``: start ~ U{0..floor(0.2*L)}, goal ~ U{ceil(0.8*L)-1..L-1}, s0 < s1 < s2 with s1 ~ U{1..L-2},
  s0 ~ U{0..s1-1}, s2 ~ U{s1+1..L-1}. (The reference draws s2 >= s1 and 1-based bounds; we keep the
  strict order the R3M paper describes.)

Every mode needs at least 3 frames. Each mode, built in or not, is registered with `register_mode` (an objective
registered with reprl.objectives.register_objective adds its own sampler that way): a name, the roles it draws,
whether it needs the video's caption, and a function (length, rng) -> {role: index}.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_FRAMES = 3
Sampler = Callable[[int, np.random.Generator], dict[str, int]]


@dataclass(frozen=True)
class SamplingMode:
    roles: tuple[str, ...]
    sample: Sampler
    needs_text: bool = False
    built_in: bool = False


SAMPLING_MODES: dict[str, SamplingMode] = {}  # mode name -> its roles, sampler and caption need
MODES = SAMPLING_MODES.keys()  # a live view: registered modes appear in it


def register_mode(name: str, roles: tuple[str, ...], sample: Sampler, needs_text: bool = False, *,
                  built_in: bool = False) -> None:
    """Add a sampling mode: `sample(length, rng)` returns one frame index per role (0 <= index < length) for a
    video of at least MIN_FRAMES frames. Built-in modes cannot be replaced."""
    old = SAMPLING_MODES.get(name)
    if old is not None and old.built_in:
        raise ValueError(f"sampling mode {name!r} is built in and cannot be replaced")
    if not roles or len(set(roles)) != len(roles):
        raise ValueError(f"sampling mode {name!r}: roles must be distinct names, got {roles}")
    SAMPLING_MODES[name] = SamplingMode(tuple(roles), sample, needs_text, built_in)


def other_goal_mode(mode: str) -> str | None:
    """The mode whose draws end at the video's last frame (vip -> vip_last), for tuples that take another
    video's last frame as their goal; None when the mode has no such form."""
    last = mode if mode.endswith("_last") else f"{mode}_last"
    return last if last in MODES and "goal" in SAMPLING_MODES[last].roles else None


def needs_text(mode: str) -> bool:
    """Whether tuples of this mode need the video's caption."""
    return SAMPLING_MODES[mode].needs_text


def _u(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (both inclusive)."""
    return int(rng.integers(lo, hi + 1))


def sample_vip(length: int, rng: np.random.Generator, goal_last: bool = False) -> dict[str, int]:
    if goal_last:
        goal = length - 1
        start = _u(rng, 0, length - 2)
    else:
        start = _u(rng, 0, length - 3)
        goal = _u(rng, start + 1, length - 1)
    t = _u(rng, start, goal - 1)
    return {"start": start, "goal": goal, "t": t, "t1": t + 1}


def sample_text_goal(length: int, rng: np.random.Generator, alpha: float = 0.95) -> int:
    return _u(rng, min(length - 1, max(0, int(alpha * length) - 1)), length - 1)


def sample_r3m(length: int, rng: np.random.Generator, alpha: float = 0.2) -> dict[str, int]:
    start = _u(rng, 0, min(length - 1, int(alpha * length)))
    goal = _u(rng, min(length - 1, max(0, math.ceil((1 - alpha) * length) - 1)), length - 1)
    s1 = _u(rng, 1, length - 2)
    s0 = _u(rng, 0, s1 - 1)
    s2 = _u(rng, s1 + 1, length - 1)
    return {"start": start, "goal": goal, "s0": s0, "s1": s1, "s2": s2}


def sample_liv(length: int, rng: np.random.Generator, goal_last: bool = False) -> dict[str, int]:
    return {**sample_vip(length, rng, goal_last), "text_goal": sample_text_goal(length, rng)}


_VIP_ROLES = ("start", "goal", "t", "t1")
register_mode("vip", _VIP_ROLES, sample_vip, built_in=True)
register_mode("vip_last", _VIP_ROLES, lambda n, rng: sample_vip(n, rng, goal_last=True), built_in=True)
register_mode("liv", (*_VIP_ROLES, "text_goal"), sample_liv, needs_text=True, built_in=True)
register_mode("liv_last", (*_VIP_ROLES, "text_goal"), lambda n, rng: sample_liv(n, rng, goal_last=True),
              needs_text=True, built_in=True)
register_mode("r3m", ("start", "goal", "s0", "s1", "s2"), sample_r3m, built_in=True)


def sample_indices(mode: str, length: int, rng: np.random.Generator) -> dict[str, int]:
    """Frame indices for one training tuple of `mode` from a video of `length` frames."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling mode {mode!r}; choose one of {', '.join(MODES)}")
    if length < MIN_FRAMES:
        raise ValueError(f"a video needs at least {MIN_FRAMES} frames to be sampled, got {length}")
    m = SAMPLING_MODES[mode]
    out = m.sample(length, rng)
    if set(out) != set(m.roles) or not all(0 <= int(i) < length for i in out.values()):
        raise ValueError(f"sampling mode {mode!r} returned {out} for a {length}-frame video; it must give "
                         f"each of {m.roles} an index in [0, {length - 1}]")
    return {r: int(out[r]) for r in m.roles}
