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
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of reprl convert in --out")
    p.add_argument("--force-overwrite", action="store_true", help="replace --out even when it is not an output of "
                   "reprl convert (it is deleted)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    import reprl
    from reprl.encoders.io import save_encoder
    from reprl.utils.files import check_output

    out = Path(args.out)
    inputs = [args.source] if Path(args.source).exists() else []
    check_output(out, "convert", inputs, args.overwrite, args.force_overwrite)
    enc = reprl.load(args.source)
    save_encoder(enc, out, command="convert", force=args.force_overwrite)
    c = enc.config
    print(f"wrote {out}: {c.name}, {c.embed_dim}-d, {c.image_size} px, similarity {c.similarity} ({c.source})")
    return 0
