"""Pure frame-index samplers: (video length, rng) -> frame index per role. No I/O, no torch.

Indices are 0-based (frames 0..L-1). Modes:

- ``vip`` (reference code): start s ~ U{0..L-3}, goal g ~ U{s+1..L-1}, t ~ U{s..g-1}, t1 = t+1.
- ``vip_last`` (paper, LIV Alg. 1): goal g = L-1, s ~ U{0..L-2}, t ~ U{s..L-2}, t1 = t+1.
- ``liv``: ``vip`` plus ``text_goal`` ~ U{ceil(alpha*L)-1..L-1} (alpha = 0.95): the frame paired with the
  caption in the CLIP term, drawn from the end of the clip as LIV's EPIC loader does.
- ``liv_last``: ``vip_last`` plus ``text_goal`` as above.
- ``r3m``: start ~ U{0..floor(0.2*L)}, goal ~ U{ceil(0.8*L)-1..L-1}, s0 < s1 < s2 with s1 ~ U{1..L-2},
  s0 ~ U{0..s1-1}, s2 ~ U{s1+1..L-1}. (The reference draws s2 >= s1 and 1-based bounds; we keep the
  strict order the R3M paper describes.)

Every mode needs at least 3 frames.
"""

from __future__ import annotations

import math

import numpy as np

MODES = ("vip", "vip_last", "liv", "liv_last", "r3m")
ROLES = {
    "vip": ("start", "goal", "t", "t1"),
    "vip_last": ("start", "goal", "t", "t1"),
    "liv": ("start", "goal", "t", "t1", "text_goal"),
    "liv_last": ("start", "goal", "t", "t1", "text_goal"),
    "r3m": ("start", "goal", "s0", "s1", "s2"),
}
MIN_FRAMES = 3


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
    return _u(rng, min(length - 1, max(0, math.ceil(alpha * length) - 1)), length - 1)


def sample_r3m(length: int, rng: np.random.Generator, alpha: float = 0.2) -> dict[str, int]:
    start = _u(rng, 0, min(length - 1, int(alpha * length)))
    goal = _u(rng, min(length - 1, max(0, math.ceil((1 - alpha) * length) - 1)), length - 1)
    s1 = _u(rng, 1, length - 2)
    s0 = _u(rng, 0, s1 - 1)
    s2 = _u(rng, s1 + 1, length - 1)
    return {"start": start, "goal": goal, "s0": s0, "s1": s1, "s2": s2}


def sample_indices(mode: str, length: int, rng: np.random.Generator, *, text_alpha: float = 0.95,
                   r3m_alpha: float = 0.2) -> dict[str, int]:
    """Frame indices for one training tuple of `mode` from a video of `length` frames."""
    if mode not in ROLES:
        raise ValueError(f"unknown sampling mode {mode!r}; choose one of {', '.join(MODES)}")
    if length < MIN_FRAMES:
        raise ValueError(f"a video needs at least {MIN_FRAMES} frames to be sampled, got {length}")
    if mode == "r3m":
        return sample_r3m(length, rng, r3m_alpha)
    out = sample_vip(length, rng, goal_last=mode.endswith("_last"))
    if mode.startswith("liv"):
        out["text_goal"] = sample_text_goal(length, rng, text_alpha)
    return out
