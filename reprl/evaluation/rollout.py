"""Roll policies out in MetaWorld. Several environments step in lockstep so the encoder embeds all their
frames in one batched call per step; the environments may live in worker processes (reprl.sim.vector), so
physics and rendering use every core. Success is counted at any step within the horizon (as R3M does).

An episode ends at the horizon or, with `stop_after_success` set, that many steps after its first success
(success at any step is then already decided); its slot starts the next seed at once. The success flag at
the final step (some tasks leave the success region after reaching it) is only known when episodes run the
full horizon, so it is None otherwise.

With `groups=2` the slots are split in two halves that alternate: the encoder decides one half's actions
while the other half steps and renders in the workers, so the encoder and the simulator overlap.

An episode depends only on its seed and on the actions chosen from its own frames, so results do not
depend on the number of slots, groups or workers (given an act function whose rows are independent).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reprl.sim.metaworld import PROPRIO_DIM
from reprl.sim.vector import ProcessEnvs, SerialEnvs, open_envs
from reprl.utils.machine import available_memory, torch_threads, usable_cores

# (frames uint8 [N, H, W, 3], proprio [N, P]) -> actions [N, A]
ActFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
Envs = SerialEnvs | ProcessEnvs

__all__ = ["ActFn", "RolloutResult", "open_envs", "rollout", "summarize"]


@dataclass
class RolloutResult:
    seed: int
    success_any: bool
    success_final: bool | None  # None: the episode stopped early after its success
    first_success: int | None
    steps: int
    actions: np.ndarray | None = None  # [steps, A] when rollout(keep_actions=True)


def summarize(results: list[RolloutResult]) -> dict[str, Any]:
    n = len(results)
    finals = [r.success_final for r in results]
    return {"rollouts": n, "success": sum(r.success_any for r in results) / n,
            "success_final": None if None in finals else sum(bool(f) for f in finals) / n,
            "first_success": [r.first_success for r in results], "final": finals,
            "seeds": [r.seed for r in results], "steps": sum(r.steps for r in results)}


@dataclass
class _Episode:
    order: int
    seed: int
    obs: np.ndarray
    frame: np.ndarray
    t: int = 0
    ok: bool = False
    first: int | None = None
    actions: list[np.ndarray] = field(default_factory=list)


class _Runner:
    """The bookkeeping of one rollout call: which seed each slot runs, and the results so far."""

    def __init__(self, envs: Envs, act: ActFn, seeds: list[int], horizon: int, stop: int | None, keep: bool) -> None:
        self.envs, self.act, self.stop, self.keep = envs, act, stop, keep
        self.horizon = min(horizon, envs.max_steps)
        self.todo = deque(enumerate(seeds))
        self.live: dict[int, _Episode] = {}
        self.results: list[RolloutResult | None] = [None] * len(seeds)

    def start(self, slots: list[int]) -> None:
        """Start the next seeds in free `slots` (as many as seeds remain)."""
        slots = slots[:len(self.todo)]
        if not slots:
            return
        jobs = [self.todo.popleft() for _ in slots]
        obs, frames = self.envs.reset(slots, [s for _, s in jobs])
        for k, (slot, (order, seed)) in enumerate(zip(slots, jobs)):
            self.live[slot] = _Episode(order, seed, obs[k], frames[k])

    def decide(self, slots: list[int]) -> np.ndarray:
        eps = [self.live[i] for i in slots]
        actions = np.asarray(self.act(np.stack([e.frame for e in eps]),
                                      np.stack([e.obs[:PROPRIO_DIM] for e in eps])), dtype=np.float32)
        if self.keep:
            for e, a in zip(eps, actions):
                e.actions.append(a)
        return actions

    def advance(self, slots: list[int], obs: np.ndarray, ok: np.ndarray, frames: np.ndarray) -> None:
        """Record one step of `slots`; finished episodes hand their slot to the next seed."""
        free = []
        for k, slot in enumerate(slots):
            e = self.live[slot]
            e.t, e.ok, e.obs, e.frame = e.t + 1, bool(ok[k]), obs[k], frames[k]
            if e.ok and e.first is None:
                e.first = e.t
            settled = self.stop is not None and e.first is not None and e.t - e.first >= self.stop
            if e.t >= self.horizon or settled:
                final = e.ok if self.stop is None or e.t >= self.horizon else None
                self.results[e.order] = RolloutResult(e.seed, e.first is not None, final, e.first, e.t,
                                                      np.stack(e.actions) if self.keep else None)
                del self.live[slot]
                free.append(slot)
        self.start(free)


def rollout(envs: Envs, act: ActFn, seeds: list[int], horizon: int, on_step: Callable[[], None] | None = None, *,
            stop_after_success: int | None = None, groups: int = 1,
            keep_actions: bool = False) -> list[RolloutResult]:
    """One episode per seed, up to envs.num_envs at a time; returns their results in seed order.

    groups: 1 = one batched act call per step for all slots; 2 = two halves whose stepping overlaps the
    other half's act call (worth it when the environments run in worker processes).
    """
    with _encoder_threads(envs):
        return _rollout(_Runner(envs, act, seeds, horizon, stop_after_success, keep_actions), groups, on_step)


@contextmanager
def _encoder_threads(envs: Envs) -> Iterator[None]:
    """While worker processes render, the encoder gets the cores they leave (at least one thread): more
    threads than free cores make torch's thread pool wait on busy cores (measured several times slower)."""
    if not isinstance(envs, ProcessEnvs):
        yield
        return
    import torch

    with torch_threads(min(torch.get_num_threads(), usable_cores() - envs.workers)):
        yield


def _rollout(run: _Runner, groups: int, on_step: Callable[[], None] | None) -> list[RolloutResult]:
    envs = run.envs
    n = min(envs.num_envs, len(run.results))
    groups = max(1, min(groups, n))
    edges = np.linspace(0, n, groups + 1).round().astype(int)
    blocks = [list(range(edges[g], edges[g + 1])) for g in range(groups)]
    run.start(list(range(n)))
    ready: dict[int, np.ndarray] = {}  # block -> actions decided for its live slots
    b = 0
    while run.live:
        slots = [i for i in blocks[b] if i in run.live]
        if slots:
            actions = ready.pop(b) if b in ready else run.decide(slots)
            envs.step_async(slots, actions)
            nxt = (b + 1) % groups
            waiting = [i for i in blocks[nxt] if i in run.live]
            if nxt != b and waiting:
                ready[nxt] = run.decide(waiting)  # overlaps with block b stepping in the workers
            run.advance(slots, *envs.step_wait())
            if on_step is not None:
                on_step()
        b = (b + 1) % groups
    return [r for r in run.results if r is not None]


def default_env_workers(num_envs: int) -> int:
    """One environment process per core (at most one per env); none on a single core."""
    cores = usable_cores()
    return 0 if cores < 2 else min(cores, num_envs)


def default_parallel_envs() -> int:
    """Environments in lockstep when a suite does not say: 20 (about 1.4x the env steps/s of 10, measured) when
    the machine has room for them with a margin (8 GB available), else 10 (about 3 GB in all)."""
    free = available_memory()
    return 20 if free is not None and free >= 8e9 else 10


def open_suite_envs(spec: Any, task: str) -> Envs:
    """The environments a suite (SuiteSpec) rolls `task` out in."""
    n = min(spec.parallel_envs or default_parallel_envs(), spec.rollouts)
    workers = default_env_workers(n) if spec.env_workers is None else spec.env_workers
    return open_envs(task, spec.data.camera, spec.data.frame_size, n, workers)


def suite_rollout_options(spec: Any, envs: Envs) -> dict[str, Any]:
    """rollout() keywords for a suite: stop after success unless the final-step flag is asked for; overlap
    the encoder with the workers when there are workers."""
    return {"stop_after_success": None if spec.final_step_success else spec.settle_steps,
            "groups": 2 if isinstance(envs, ProcessEnvs) else 1}
