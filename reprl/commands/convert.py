"""Convert an encoder to reprl's own format (config.json + model.safetensors), e.g. a VIP, R3M or LIV
checkpoint, or a reprl training checkpoint (.ckpt).

  reprl convert ~/.vip/resnet50/model.pt --out encoders/vip_resnet50
  reprl convert runs/vip/encoder --out eval/models/NAME --half --training card.json

A folder under eval/models/ (or under a folder listed in $REPRL_MODELS) loads by its name: reprl.load("NAME").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "write any loadable encoder as config.json + model.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="checkpoint file, exported folder, registered name, hf://org/repo")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of reprl convert in --out")
    p.add_argument("--force-overwrite", action="store_true", help="replace --out even when it is not an output of "
                   "reprl convert (it is deleted)")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the file; loading "
                   "casts them back to float32)")
    p.add_argument("--training", metavar="JSON", help="a JSON file describing what the weights were trained on "
                   "and how they scored; stored as the config's `training` entry")


def _training(path: str) -> dict[str, Any]:
    import json

    from reprl.errors import ReprlError

    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ReprlError(f"--training {path}: cannot read it ({e.strerror}); give a JSON file") from None
    except json.JSONDecodeError as e:
        raise ReprlError(f"--training {path}: not valid JSON ({e}); give a JSON object") from None
    if not isinstance(data, dict):
        raise ReprlError(f"--training {path}: holds a {type(data).__name__}; give a JSON object") from None
    return data


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import reprl
    from reprl.encoders.io import save_encoder, source_paths
    from reprl.utils.files import check_output

    out = Path(args.out)
    inputs = source_paths(args.source)  # a name or random:SOURCE reads a folder too: --out never replaces it
    check_output(out, "convert", inputs, args.overwrite, args.force_overwrite)
    training = _training(args.training) if args.training else None
    enc = reprl.load(args.source)
    if training is not None:
        enc.config.training = training
    save_encoder(enc, out, command="convert", force=args.force_overwrite, half=args.half)
    c = enc.config
    print(f"wrote {out}: {c.name}, {c.embed_dim}-d, {c.image_size} px, similarity {c.similarity} ({c.source})")
    return 0
