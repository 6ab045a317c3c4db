"""Where RWR's weight goes on an eval suite's training data: per encoder, task, seed, tau and reward span, the
effective sample size of the weights, the share of the total weight on expert transitions against their share of
the data, and the mean encoder reward of expert and non-expert transitions. The RWR head learns from the one-step
reward S(o_{t+1}; g) - S(o_t; g); --steps K also shows the K-step reward S(o_{t+K}; g) - S(o_t; g) (a what-if: a
reward over a longer span is less noisy per step). Reads the suite's cached render (run `reprl eval` on
the suite first: nothing is rendered here). Frames are embedded once per encoder and the embeddings kept under
--cache, as `reprl eval` keeps them.

  python tools/rwr_diagnosis.py --suite eval/suites/study_downstream.yaml --cache eval/cache \
      --encoder random=random:study-vip --encoder vip=study-vip --tau 0.1 --tau 1 [--steps 1 --steps 20]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import reprl
from reprl.evaluation.data import encoder_fingerprint, task_episodes
from reprl.evaluation.harness import select_training_episodes
from reprl.evaluation.suite import load_suite
from reprl.heads.registry import with_reward
from reprl.heads.train import Transitions, mean_goal, rwr_weights, transition_rewards


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", required=True)
    p.add_argument("--cache", default="eval/cache")
    p.add_argument("--encoder", action="append", required=True, help="LABEL=SOURCE")
    p.add_argument("--tau", type=float, action="append", required=True)
    p.add_argument("--steps", type=int, action="append", help="reward span K (repeat; default 1, what RWR uses)")
    args = p.parse_args()
    spans = args.steps or [1]
    if min(spans) < 1:
        raise SystemExit(f"rwr_diagnosis: --steps must be >= 1, got {min(spans)}")
    spec = load_suite(args.suite)
    rwr = spec.head_config("rwr")
    from reprl.errors import ReprlError
    from reprl.evaluation.data import task_dir
    from reprl.evaluation.harness import parse_encoders

    try:
        encoders = parse_encoders(args.encoder)  # LABEL=SOURCE, or SOURCE labelled by itself
        missing = [t for t in spec.tasks if not (task_dir(spec, Path(args.cache), t) / "index.json").exists()]
        if missing:
            raise ReprlError(f"no render of {', '.join(missing)} under --cache {args.cache}: run reprl eval --suite "
                             f"{args.suite} first")
    except ReprlError as e:
        raise SystemExit(f"rwr_diagnosis: {e}") from None
    print("| encoder | task | seed | reward steps | tau | ESS / n | expert share of weight | expert share of data | "
          "mean reward, expert | mean reward, other |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, source in encoders.items():
        encoder = reprl.load(source)
        fp = encoder_fingerprint(encoder)
        for task in spec.tasks:
            episodes = task_episodes(spec, Path(args.cache), task, encoder, fp)
            for seed in spec.seeds:
                demos, noisy = select_training_episodes(episodes, spec.demos[0], seed)
                data = with_reward("rwr", rwr, Transitions.from_episodes(demos + noisy),
                                   [d["emb"][-1] for d in demos], encoder.similarity)
                assert data.reward is not None and data.expert is not None
                expert = data.expert.numpy().astype(bool)
                goal = mean_goal([d["emb"][-1] for d in demos])  # RWR's goal, as with_reward takes it
                for k in spans:  # k = 1 is the head's own reward
                    rewards = data.reward if k == 1 else transition_rewards(data, goal, encoder.similarity, k)
                    reward = rewards.double().numpy()
                    for tau in args.tau:
                        cfg = dataclasses.replace(rwr, tau=tau)
                        w = rwr_weights(rewards, cfg.tau, "exp", clip=cfg.clip,
                                        standardize=cfg.standardize).double().numpy()
                        ess = w.sum() ** 2 / (len(w) * (w ** 2).sum())
                        print(f"| {label} | {task} | {seed} | {k} | {tau:g} | {ess:.2f} | "
                              f"{w[expert].sum() / w.sum():.3f} | {expert.mean():.3f} | {reward[expert].mean():.3f} | "
                              f"{reward[~expert].mean():.3f} |")


if __name__ == "__main__":
    main()
