"""Where RWR's weight goes on an eval suite's training data: per encoder, task, seed and tau, the effective sample
size of the weights, the share of the total weight on expert transitions against their share of the data, and
the mean encoder reward of expert and non-expert transitions. Reads the suite's cached render (run `reprl eval` on
the suite first: nothing is rendered here). Frames are embedded once per encoder and the embeddings kept under
--cache, as `reprl eval` keeps them.

  python tools/rwr_diagnosis.py --suite eval/suites/study_downstream.yaml --cache eval/cache \
      --encoder random=random:study-vip --encoder vip=study-vip --tau 0.1 --tau 1
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
from reprl.heads.train import Transitions, rwr_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", required=True)
    p.add_argument("--cache", default="eval/cache")
    p.add_argument("--encoder", action="append", required=True, help="LABEL=SOURCE")
    p.add_argument("--tau", type=float, action="append", required=True)
    args = p.parse_args()
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
    print("| encoder | task | seed | tau | ESS / n | expert share of weight | expert share of data | "
          "mean reward, expert | mean reward, other |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
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
                reward = data.reward.double().numpy()
                expert = data.expert.numpy().astype(bool)
                for tau in args.tau:
                    cfg = dataclasses.replace(rwr, tau=tau)
                    w = rwr_weights(data.reward, cfg.tau, "exp", clip=cfg.clip,
                                    standardize=cfg.standardize).double().numpy()
                    ess = w.sum() ** 2 / (len(w) * (w ** 2).sum())
                    print(f"| {label} | {task} | {seed} | {tau:g} | {ess:.2f} | {w[expert].sum() / w.sum():.3f} | "
                          f"{expert.mean():.3f} | {reward[expert].mean():.3f} | {reward[~expert].mean():.3f} |")


if __name__ == "__main__":
    main()
