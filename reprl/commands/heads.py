"""Train a policy head on your own episodes, without the MetaWorld harness, and save it as a policy folder.

  reprl heads train --demos episodes.npz --encoder demo_out/run/encoder --head recoil --out my_policy
  reprl heads train --demos shards/my_robot --encoder vip=... --head iql --set expectile=0.9 --steps 5000 --out p

--demos: reprl shards with actions (and proprio) arrays, or an .npz of images [N, H, W, 3], actions [N, A],
optional proprio [N, P], episode [N] (ids), expert [N] and reward [N] (layout: docs/heads.md). Every frame is
embedded once with the frozen encoder; the head trains on the cached embeddings. Heads that learn from a
reward use the encoder's S(o'; g) - S(o; g) with g = the mean last frame of the expert episodes (or the
data's reward with --set reward=env); recoil and trail need some episodes marked expert. The output folder
(config.json + model.safetensors + a copy of the encoder) loads with reprl.heads.load_policy(path).
"""

from __future__ import annotations

import argparse

from reprl.cli import add_device

HELP = "train a policy head (bc, rwr, awr, iql, fdvl, recoil, trail) on your own episodes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train one head and save it as a policy folder", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--demos", required=True, help="shards with actions, or an episodes .npz")
    t.add_argument("--encoder", required=True, help="frozen encoder: any reprl.load source")
    t.add_argument("--head", default="bc", help="bc | rwr | rwr_chi2 | awr | iql | fdvl | recoil | trail")
    t.add_argument("--out", required=True, help="policy folder to write")
    t.add_argument("--steps", type=int, default=None, help="training steps (default: HeadConfig's, 20000)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size (default: HeadConfig's, 32)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a head setting, e.g. temperature=10 (repeat; the fields of the head's config)")
    t.add_argument("--no-proprio", action="store_true", help="ignore proprioception")
    t.add_argument("--seed", type=int, default=0, help="training seed")
    add_device(t)
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    t.add_argument("--no-encoder-copy", action="store_true",
                   help="record the encoder source instead of copying the encoder into the policy folder")


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
    import dataclasses

    import reprl
    from reprl.errors import ReprlError
    from reprl.heads.policy import HeadConfig, Policy
    from reprl.heads.registry import head_config, train_policy, with_reward
    from reprl.heads.train import Transitions
    from reprl.heads.userdata import embed_episodes, load_episodes
    from reprl.typed_config import from_dict, to_dict
    from reprl.utils.files import StagingDir

    cfg = head_config(args.head, parse_settings(args.set))  # bad names and settings fail before any work
    head = dataclasses.replace(HeadConfig(), proprio=not args.no_proprio, **{k: v for k, v in (
        ("steps", args.steps), ("batch_size", args.batch_size)) if v is not None})
    head = from_dict(HeadConfig, to_dict(head), "head")
    if head.steps < 1 or head.batch_size < 1:
        raise ReprlError("--steps and --batch-size must be at least 1")
    StagingDir(args.out, overwrite=args.overwrite).abort()  # an existing output is an error up front
    episodes = load_episodes(args.demos)
    encoder = reprl.load(args.encoder, device=args.device)
    episodes = embed_episodes(episodes, encoder)
    data = Transitions.from_episodes(episodes)
    experts = [e for e in episodes if e["expert"]] or episodes
    data = with_reward(args.head, cfg, data, [e["emb"][-1] for e in experts], encoder.similarity)
    print(f"heads train: {args.head} on {len(data)} transitions of {len(episodes)} episodes "
          f"({sum(e['expert'] for e in episodes)} expert), {head.steps} steps", flush=True)
    actor, losses = train_policy(args.head, data, head, cfg, seed=args.seed, device=args.device)
    policy = Policy(encoder, actor, args.encoder, args.head)
    policy.save(args.out, copy_encoder=not args.no_encoder_copy)
    print(f"loss {losses.get('loss_first', float('nan')):.4g} -> {losses.get('loss_last', float('nan')):.4g}; "
          f"policy: {args.out} (reprl.heads.load_policy)")
    return 0
