"""Several MetaWorld environments of one task behind one interface, stepped in this process or spread over
worker processes, so that physics and offscreen rendering run on every core while the caller (one batched
encoder call) decides the next actions.

Both kinds take the same calls: `reset(slots, seeds)` and `step_async(slots, actions)` + `step_wait()`,
each returning proprioception-sized observations, success flags and one rendered frame per slot. A slot's
episode depends only on its seed and its actions, never on which process or slot ran the episodes before it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Sequence
from typing import Any

import numpy as np

from reprl.errors import ReprlError

# (obs [k, 39] float32, frames [k, H, W, 3] uint8)
Reset = tuple[np.ndarray, np.ndarray]
# (obs [k, 39] float32, success [k] bool, frames [k, H, W, 3] uint8)
Step = tuple[np.ndarray, np.ndarray, np.ndarray]


class SerialEnvs:
    """Environments stepped one after the other in this process (objects with MetaWorldEnv's reset/step/render)."""

    def __init__(self, envs: Sequence[Any]) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.max_steps = int(self.envs[0].max_steps)
        self._pending: tuple[list[int], np.ndarray] | None = None

    def reset(self, slots: list[int], seeds: list[int]) -> Reset:
        obs = [self.envs[i].reset(seed=s) for i, s in zip(slots, seeds)]
        return np.stack(obs), np.stack([self.envs[i].render()[0] for i in slots])

    def step(self, slots: list[int], actions: np.ndarray) -> Step:
        obs, ok = [], []
        for i, a in zip(slots, actions):
            o, _, success, _ = self.envs[i].step(a)
            obs.append(o)
            ok.append(success)
        return np.stack(obs), np.asarray(ok, dtype=bool), np.stack([self.envs[i].render()[0] for i in slots])

    def step_async(self, slots: list[int], actions: np.ndarray) -> None:
        self._pending = (list(slots), np.asarray(actions))

    def step_wait(self) -> Step:
        if self._pending is None:
            raise RuntimeError("step_wait without step_async")
        slots, actions = self._pending
        self._pending = None
        return self.step(slots, actions)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _serve(conn: Any, task: str, camera: str, size: int, count: int) -> None:
    """Worker process: own `count` environments and answer reset / step / close requests."""
    import os

    os.environ["REPRL_ENV_WORKER"] = "1"  # this process never loads torch (see reprl.sim.metaworld)
    envs = None
    try:
        from reprl.sim.metaworld import MetaWorldEnv

        envs = SerialEnvs([MetaWorldEnv(task, [camera], size) for _ in range(count)])
        conn.send(("ready", envs.max_steps))
        while True:
            cmd, args = conn.recv()
            if cmd == "close":
                break
            conn.send(("ok", getattr(envs, cmd)(*args)))
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        if envs is not None:
            envs.close()


class ProcessEnvs:
    """`num_envs` environments spread round-robin over `workers` processes (spawned); slot j lives in
    process j % workers, so any contiguous block of slots keeps every process busy."""

    def __init__(self, task: str, camera: str, size: int, num_envs: int, workers: int) -> None:
        workers = max(1, min(workers, num_envs))
        ctx = mp.get_context("spawn")
        self.num_envs, self.workers = num_envs, workers
        self._conns, self._procs = [], []
        self._pending: tuple[list[tuple[int, list[int]]], int] | None = None  # (step_async's parts, n)
        try:
            for w in range(workers):
                parent, child = ctx.Pipe()
                count = len(range(w, num_envs, workers))
                proc = ctx.Process(target=_serve, args=(child, task, camera, size, count), daemon=True,
                                   name=f"reprl-env-{w}")
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            self.max_steps = min(self._recv(w, "ready") for w in range(workers))
        except BaseException:
            self.close()
            raise

    def _recv(self, w: int, expect: str = "ok") -> Any:
        try:
            kind, payload = self._conns[w].recv()
        except (EOFError, ConnectionError):
            raise self._died(w) from None
        if kind == "error":
            raise ReprlError(f"environment worker {w} failed: {payload}")
        if kind != expect:
            raise ReprlError(f"environment worker {w} answered {kind!r}, expected {expect!r}")
        return payload

    def _died(self, w: int) -> ReprlError:
        self._procs[w].join(timeout=1)  # its exit code, once it is gone
        return ReprlError(f"environment worker {w} died (exit code {self._procs[w].exitcode}); rerun with "
                          "env_workers: 0 to see the error in this process")

    def _scatter(self, cmd: str, slots: list[int], values: Any) -> list[tuple[int, list[int]]]:
        """Send each worker its share of `slots` (local indices) and values; -> [(worker, positions)]."""
        parts = []
        for w in range(self.workers):
            pos = [k for k, j in enumerate(slots) if j % self.workers == w]
            if pos:
                local = [slots[k] // self.workers for k in pos]
                try:
                    self._conns[w].send((cmd, (local, [values[k] for k in pos] if cmd == "reset" else values[pos])))
                except (ConnectionError, OSError):  # a broken pipe: the worker is gone
                    raise self._died(w) from None
                parts.append((w, pos))
        return parts

    def _gather(self, parts: list[tuple[int, list[int]]], n: int) -> tuple[np.ndarray, ...]:
        answers = [(pos, self._recv(w)) for w, pos in parts]
        out = []
        for field in range(len(answers[0][1])):
            first = answers[0][1][field]
            arr = np.empty((n, *first.shape[1:]), dtype=first.dtype)
            for pos, ans in answers:
                arr[pos] = ans[field]
            out.append(arr)
        return tuple(out)

    def reset(self, slots: list[int], seeds: list[int]) -> Reset:
        parts = self._scatter("reset", slots, list(seeds))
        return self._gather(parts, len(slots))  # type: ignore[return-value]  # 2 arrays: obs, frames

    def step_async(self, slots: list[int], actions: np.ndarray) -> None:
        self._pending = (self._scatter("step", slots, np.asarray(actions)), len(slots))

    def step_wait(self) -> Step:
        if self._pending is None:
            raise RuntimeError("step_wait without step_async")
        (parts, n), self._pending = self._pending, None
        return self._gather(parts, n)  # type: ignore[return-value]  # 3 arrays: obs, success, frames

    def step(self, slots: list[int], actions: np.ndarray) -> Step:
        self.step_async(slots, actions)
        return self.step_wait()

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):  # a worker that already died
                conn.send(("close", ()))
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []


def open_envs(task: str, camera: str, size: int, num_envs: int, workers: int = 0) -> SerialEnvs | ProcessEnvs:
    """`num_envs` environments of `task` rendering `camera` at `size` px: in this process when workers is 0,
    else over that many worker processes."""
    if num_envs < 1 or workers < 0:
        raise ReprlError(f"need at least one environment and workers >= 0, got {num_envs} and {workers}")
    if workers == 0:
        from reprl.sim.metaworld import MetaWorldEnv

        return SerialEnvs([MetaWorldEnv(task, [camera], size) for _ in range(num_envs)])
    return ProcessEnvs(task, camera, size, num_envs, workers)
