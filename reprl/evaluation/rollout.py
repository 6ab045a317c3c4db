"""Roll policies out in MetaWorld. Several environments step in lockstep so the encoder embeds all their
frames in one batched call per step. Success is counted at any step within the horizon (as R3M does);
the flag at the final step is recorded too, since some tasks leave the success region after reaching it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# (frames uint8 [N, H, W, 3], proprio [N, P]) -> actions [N, A]
ActFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class RolloutResult:
    seed: int
    success_any: bool
    success_final: bool
    first_success: int | None
    steps: int


def summarize(results: list[RolloutResult]) -> dict[str, Any]:
    n = len(results)
    return {"rollouts": n, "success": sum(r.success_any for r in results) / n,
            "success_final": sum(r.success_final for r in results) / n,
            "first_success": [r.first_success for r in results], "final": [r.success_final for r in results],
            "seeds": [r.seed for r in results]}


class EnvPool:
    """Reusable environments of one task, camera and size."""

    def __init__(self, task: str, camera: str, size: int, n: int) -> None:
        from reprl.sim.metaworld import MetaWorldEnv

        self.task, self.camera, self.size = task, camera, size
        self.envs = [MetaWorldEnv(task, [camera], size) for _ in range(n)]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def rollout(pool: EnvPool, act: ActFn, seeds: list[int], horizon: int,
            on_step: Callable[[], None] | None = None) -> list[RolloutResult]:
    """One episode per seed, len(pool.envs) at a time; returns their results in seed order."""
    from reprl.sim.metaworld import PROPRIO_DIM

    results: list[RolloutResult] = []
    width = len(pool.envs)
    for start in range(0, len(seeds), width):
        chunk = seeds[start:start + width]
        envs = pool.envs[:len(chunk)]
        obs = [env.reset(seed=s) for env, s in zip(envs, chunk)]
        frames = [env.render()[0] for env in envs]
        ok = [False] * len(envs)
        first: list[int | None] = [None] * len(envs)
        horizon_i = min(horizon, envs[0].max_steps)
        for t in range(horizon_i):
            actions = act(np.stack(frames), np.stack([o[:PROPRIO_DIM] for o in obs]))
            for i, env in enumerate(envs):
                obs[i], _, ok[i], _ = env.step(actions[i])
                if ok[i] and first[i] is None:
                    first[i] = t + 1
            if t + 1 < horizon_i:
                frames = [env.render()[0] for env in envs]
            if on_step is not None:
                on_step()
        results.extend(RolloutResult(s, f is not None, o, f, horizon_i) for s, f, o in zip(chunk, first, ok))
    return results
