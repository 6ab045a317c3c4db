"""Train a policy head on your own episodes, without the MetaWorld harness, and save it as a policy folder.

  reprl heads train --demos episodes.npz --encoder demo_out/run/encoder --head recoil --out my_policy
  reprl heads train --demos shards/my_robot --encoder study-vip --head iql --set expectile=0.9 --steps 5000 --out p

--demos: reprl shards with actions (and proprio) arrays, or an .npz of images [N, H, W, 3], actions [N, A],
optional proprio [N, P], episode [N] (ids), expert [N] and reward [N] (layout: docs/heads.md). Every frame is
embedded once with the frozen encoder; the head trains on the cached embeddings. Heads that learn from a
reward use the encoder's S(o'; g) - S(o; g) with g = the mean last frame of the expert episodes (or the
data's reward with --set reward=env); recoil and trail need some episodes marked expert. The output folder
(config.json + model.safetensors + a copy of the encoder) loads with reprl.heads.load_policy(path).
"""

from __future__ import annotations

import argparse

HELP = "train a policy head (bc, rwr, awr, iql, fdvl, recoil, trail) on your own episodes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train one head and save it as a policy folder", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    from reprl.options import HeadsTrainOptions, add_options

    add_options(t, HeadsTrainOptions, flags={"settings": "set"}, metavars={"settings": "KEY=VALUE"})


def parse_settings(items: list[str]) -> dict[str, str]:
    from reprl.errors import ReprlError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReprlError(f"--set {item!r}: write KEY=VALUE, e.g. --set temperature=10")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import reprl
    from reprl.embed.run import input_paths
    from reprl.encoders.io import source_paths
    from reprl.errors import ReprlError
    from reprl.heads.policy import HeadConfig, Policy
    from reprl.heads.registry import head_config, train_policy, with_reward
    from reprl.heads.train import Transitions
    from reprl.heads.userdata import embed_episodes, load_episodes
    from reprl.options import HeadsTrainOptions, from_args
    from reprl.typed_config import from_dict
    from reprl.utils.files import check_output
    from reprl.utils.machine import resolve_device

    opts = from_args(HeadsTrainOptions, args)
    opts.device = resolve_device(opts.device)
    cfg = head_config(opts.head, parse_settings(opts.settings))  # bad names and settings fail before any work
    given = {"proprio": not opts.no_proprio, "steps": opts.steps, "batch_size": opts.batch_size}
    head = from_dict(HeadConfig, {k: v for k, v in given.items() if v is not None}, "head")
    if head.steps < 1 or head.batch_size < 1:
        raise ReprlError("--steps and --batch-size must be at least 1")
    # Up front: --out never replaces the demos, the encoder, or a folder that is not a policy of this command.
    check_output(opts.out, "heads train", [*input_paths(opts.demos), *source_paths(opts.encoder)], opts.overwrite,
                 force_flag=None)
    episodes = load_episodes(opts.demos)
    encoder = reprl.load(opts.encoder, device=opts.device)
    episodes = embed_episodes(episodes, encoder)
    data = Transitions.from_episodes(episodes)
    experts = [e for e in episodes if e["expert"]] or episodes
    data = with_reward(opts.head, cfg, data, [e["emb"][-1] for e in experts], encoder.similarity)
    print(f"heads train: {opts.head} on {len(data)} transitions of {len(episodes)} episodes "
          f"({sum(e['expert'] for e in episodes)} expert), {head.steps} steps", flush=True)
    actor, losses = train_policy(opts.head, data, head, cfg, seed=opts.seed, device=opts.device)
    policy = Policy(encoder, actor, opts.encoder, opts.head)
    policy.save(opts.out, copy_encoder=not opts.no_encoder_copy)
    print(f"loss {losses.get('loss_first', float('nan')):.4g} -> {losses.get('loss_last', float('nan')):.4g}; "
          f"policy: {opts.out} (reprl.heads.load_policy)")
    return 0
