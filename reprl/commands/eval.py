"""Evaluate encoders downstream: train policy heads (bc, rwr, rwr_chi2, awr, iql, fdvl, recoil, trail; the
suite's `heads:` list) on frozen embeddings of robot episodes and roll them out in MetaWorld (success at any
step within the horizon; the final-step flag is recorded too).

  reprl eval --suite eval/suites/metaworld_bc_quick.yaml --encoder vip=demo_out/run/encoder \\
      --encoder random=random:demo_out/run/encoder

--encoder takes [LABEL=]SOURCE (any reprl.load source; random:SOURCE is SOURCE's architecture at random
init). Data are rendered once per suite into --cache; each frame is embedded once per encoder. Results go
to --out/SUITE/: cells/*.json (one per encoder x task x demos x seed x head; finished cells are reused, so
an interrupted run resumes), policies/ (a policy folder per cell: reprl.heads.load_policy), results.json,
table.md and success.png (95% bootstrap intervals over seeds and rollouts).
"""

from __future__ import annotations

import argparse

HELP = "train policy heads on frozen embeddings and roll them out in MetaWorld"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import EvalOptions, add_options

    add_options(p, EvalOptions, metavars={"encoder": "[LABEL=]SOURCE"})


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    from reprl.encoders.io import check_source
    from reprl.evaluation.harness import parse_encoders, run_suite
    from reprl.evaluation.suite import load_suite
    from reprl.options import EvalOptions, from_args
    from reprl.utils.machine import resolve_device

    opts = from_args(EvalOptions, args)
    opts.device = resolve_device(opts.device)
    spec = load_suite(opts.suite)
    encoders = parse_encoders(opts.encoder)
    for source in encoders.values():
        check_source(source)  # a bad --encoder fails now, not after the data are rendered
    result = run_suite(spec, encoders, out=opts.out, cache=opts.cache, device=opts.device,
                       rerun=opts.rerun)
    out = Path(opts.out) / spec.name
    print((out / "table.md").read_text().split("## ", 1)[1].split("## ")[0].strip().split("\n", 1)[1])
    print(f"\n{len(result['cells'])} cells; tables: {out / 'table.md'}, plot: {out / 'success.png'}")
    folders = sorted(result["data"].values())
    trained = [(label, src) for label, src in encoders.items() if not src.startswith("random:")]
    label, source = (trained or list(encoders.items()))[0]
    baseline = "random_init" if label == "random" else "random"  # `reprl score` refuses a label given twice
    against = f" --encoder {baseline}=random:{source}" if trained else ""  # a random-init encoder is its own baseline
    print(f"rendered data: {', '.join(folders)}\n  before trusting a head that learns from the encoder's reward, "
          f"score that reward on it: reprl score {folders[0]} --encoder {label}={source}{against}")
    return 0
