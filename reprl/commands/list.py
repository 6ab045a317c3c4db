"""List the registered encoders (what `reprl.load(NAME)` builds at random init) and what each needs."""

from __future__ import annotations

import argparse

HELP = "list registered encoders"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import reprl

    rows = reprl.list_encoders()
    print(f"{'name':20s} {'dim':>5s} {'px':>4s} {'similarity':10s} {'text':4s}  {'needs':16s} description")
    for r in rows:
        print(f"{r['name']:20s} {r['embed_dim']:>5s} {r['image_size']:>4s} {r['similarity']:10s} {r['text']:4s}  "
              f"{r['needs']:16s} {r['description']}")
    print("\nAlso loadable: exported folders (config.json + model.safetensors), VIP/R3M/LIV checkpoints, reprl .ckpt "
          "files, hf://org/repo")
    return 0
