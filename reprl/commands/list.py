"""List the registered encoders (what `reprl.load(NAME)` builds at random init) and what each needs, or with
--pretrained the released weights loadable by name (downloaded once into the cache, $REPRL_CACHE).

  reprl list
  reprl list --pretrained
"""

from __future__ import annotations

import argparse

HELP = "list registered encoders, or released weights with --pretrained"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pretrained", action="store_true",
                   help="released VIP / R3M / LIV weights: names, sizes, sources, cached or not")


def _pretrained() -> None:
    from reprl.encoders.io import load_dir, models_dirs, named_models
    from reprl.encoders.pretrained import cache_dir, describe_pretrained
    from reprl.errors import ReprlError

    released, local = describe_pretrained(), named_models()
    w = max([14, *(len(r["name"]) for r in released), *(len(n) for n in local)])  # columns fit the longest name
    src = max([48, *(len(str(f)) for f in local.values())])
    print(f"{'name':{w}s} {'size':>8s} {'cached':6s}  {'source':{src}s} description")
    for r in released:
        print(f"{r['name']:{w}s} {r['size']:>8s} {r['cached']:6s}  {r['source']:{src}s} {r['description']}")
    for name, folder in local.items():
        try:
            c = load_dir(folder).config
        except ReprlError as e:  # one unreadable folder does not hide the others
            print(f"{name:{w}s} {'?':>8s} {'local':6s}  {str(folder):{src}s} not a loadable encoder ({e})")
            continue
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20
        steps, what = c.training.get("steps", "?"), c.training.get("objective") or c.training.get("preset") or c.source
        print(f"{name:{w}s} {size:>5.0f} MB {'local':6s}  {str(folder):{src}s} {c.name} {c.embed_dim}-d "
              f"{c.image_size} px, {what}, {steps} steps")
    print(f"\nModels in {', '.join(map(str, models_dirs()))} load by folder name (set REPRL_MODELS to add folders).")
    print(f"reprl.load(NAME) downloads into {cache_dir()}/pretrained/NAME/ (set REPRL_CACHE to move it). Offline: "
          "download the model.pt yourself and put it there, or run `reprl convert model.pt --out DIR`.")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import reprl

    if args.pretrained:
        _pretrained()
        return 0
    rows = reprl.list_encoders()
    print(f"{'name':20s} {'dim':>5s} {'px':>4s} {'similarity':10s} {'text':4s}  {'needs':16s} description")
    for r in rows:
        print(f"{r['name']:20s} {r['embed_dim']:>5s} {r['image_size']:>4s} {r['similarity']:10s} {r['text']:4s}  "
              f"{r['needs']:16s} {r['description']}")
        if r["params"]:
            print(f"    params: {r['params']}")
    print("\nParameters change with --encoder.params '{width: 64}' in `reprl pretrain`, or reprl.load(NAME, "
          "params={'width': 64}); the names not listed keep their defaults.")
    print("\nThese names build the architecture at RANDOM INIT. Trained weights: `reprl list --pretrained` (by "
          "name), exported folders (config.json + model.safetensors), VIP/R3M/LIV checkpoints, reprl .ckpt files, "
          "hf://org/repo")
    return 0
