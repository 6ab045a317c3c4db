"""Convert an encoder to reprl's own format (config.json + model.safetensors), e.g. a VIP, R3M or LIV
checkpoint, or a reprl training checkpoint (.ckpt).

  reprl convert ~/.vip/resnet50/model.pt --out encoders/vip_resnet50
"""

from __future__ import annotations

import argparse

HELP = "write any loadable encoder as config.json + model.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="checkpoint file, exported folder, registered name, hf://org/repo")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    import reprl
    from reprl.encoders.io import save_encoder
    from reprl.errors import ReprlError

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ReprlError(f"output {out} exists and is not empty; pass --overwrite to replace it")
    enc = reprl.load(args.source)
    save_encoder(enc, out)
    c = enc.config
    print(f"wrote {out}: {c.name}, {c.embed_dim}-d, {c.image_size} px, similarity {c.similarity} ({c.source})")
    return 0
