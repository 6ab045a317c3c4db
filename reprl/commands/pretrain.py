"""Pretrain an encoder on video shards with VIP, LIV or R3M.

  reprl pretrain --config configs/pretrain/demo.yaml
  reprl pretrain --config configs/pretrain/vip_resnet50.yaml --data.train 'shards/ego/shard-{000000..000999}.tar' \\
      --trainer.devices 8 --trainer.num_nodes 2
  reprl pretrain --config configs/pretrain/demo.yaml --resume last      # continue a run

Any config key can be overridden as --section.key value (sections: encoder, objective, data, optim,
trainer; top level: run_dir, resume, overwrite, plugins): all of them are listed below with their types and
defaults. Unknown keys are errors that list the valid ones. New objectives: docs/extending.md.
Multi-node: start the same command on every node with torchrun or under SLURM (see docs/training.md).
"""

from __future__ import annotations

import argparse

HELP = "pretrain an encoder (VIP / LIV / R3M) on video shards"
ACCEPTS_OVERRIDES = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.training.config import PretrainConfig
    from reprl.typed_config import keys_help

    p.epilog = keys_help(PretrainConfig, {"objective": objective_keys()})
    p.add_argument("--config", default=None, help="YAML preset (configs/pretrain/*.yaml)")
    p.add_argument("--print-config", action="store_true",
                   help="check the resolved config as a run would, before building anything; print it and exit")


def objective_keys() -> dict[str, type]:
    """The settings class of every built-in objective, for --help."""
    from reprl.objectives.registry import OBJECTIVES

    return {name: cls.Config for name, cls in OBJECTIVES.items()}


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from reprl.training.config import load_pretrain_config
    from reprl.typed_config import to_dict

    cfg = load_pretrain_config(args.config, extra)
    if args.print_config:
        import yaml

        from reprl.training.config import check_config

        check_config(cfg)  # a printed config is one that trains: the same checks as a run, nothing built or written

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    from reprl.training.run import format_summary, pretrain

    summary = pretrain(cfg)
    if "encoder" in summary:
        print(format_summary(summary))
    return 0
