"""A 2-D point mass with a known answer: 3 expert trajectories to the goal among 60 random ones.

BC on all the data imitates the random actions (their mean is ~0, so it crawls and never arrives);
ReCOIL (expert flags, no reward), IQL (progress reward) and TRAIL (latent BC on the expert pairs, with the
action space learned from everything) reach the goal."""

import numpy as np
import pytest
import torch

from reprl.heads import HeadConfig, Transitions, make_learner

GOAL = np.array([1.0, 1.0], np.float32)


def run(pos, policy, steps, rng):
    """Move by 0.1 * action per step; returns positions [steps + 1, (n,) 2] and actions."""
    ps, acts = [pos], []
    for _ in range(steps):
        a = np.clip(policy(pos, rng), -1, 1).astype(np.float32)
        pos = np.clip(pos + 0.1 * a, -1.5, 1.5).astype(np.float32)
        ps.append(pos)
        acts.append(a)
    return np.stack(ps), np.stack(acts)


def expert(pos, rng):
    d = GOAL - pos
    return d / np.abs(d).max(-1, keepdims=True).clip(1e-6)


def dataset(seed, n_expert=3, n_random=60, steps=20):
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n_expert + n_random):
        policy = expert if i < n_expert else (lambda p, r: r.uniform(-1, 1, 2))
        ps, acts = run(rng.uniform(-0.3, 0.3, 2).astype(np.float32), policy, steps, rng)
        progress = np.linalg.norm(ps[:-1] - GOAL, axis=1) - np.linalg.norm(ps[1:] - GOAL, axis=1)
        eps.append({"emb": ps, "proprio": np.zeros((steps + 1, 0)), "actions": acts, "reward": progress,
                    "expert": i < n_expert})
    return Transitions.from_episodes(eps)


def success_rate(actor, seed, n=50, steps=25):
    def act(pos, rng):
        with torch.no_grad():
            return actor(torch.as_tensor(pos), torch.zeros(len(pos), 0)).numpy()

    rng = np.random.default_rng(1000 + seed)
    ps, _ = run(rng.uniform(-0.3, 0.3, (n, 2)).astype(np.float32), act, steps, rng)
    return float((np.linalg.norm(ps - GOAL, axis=-1) < 0.15).any(0).mean())


CONFIGS = {"bc": None, "recoil": {"hidden": [64, 64]}, "iql": {"hidden": [64, 64], "beta": 10.0},
           "trail": {"hidden": [64, 64], "embed_dim": 16}}


@pytest.mark.slow
def test_value_heads_reach_the_goal_where_bc_on_all_data_fails():
    torch.set_num_threads(1)
    head = HeadConfig(hidden=(64, 64), steps=800, batch_size=64, proprio=False)
    rates = {k: [] for k in CONFIGS}
    for seed in (0, 1):
        data = dataset(seed)
        for kind, cfg in CONFIGS.items():
            learner = make_learner(kind, data, head, cfg, seed=seed)
            learner.train(head.steps)
            rates[kind].append(success_rate(learner.actor, seed))
    mean = {k: np.mean(v) for k, v in rates.items()}
    assert max(rates["bc"]) <= 0.1, rates
    for kind in ("recoil", "iql", "trail"):
        assert min(rates[kind]) >= 0.4 and mean[kind] >= mean["bc"] + 0.5, rates
