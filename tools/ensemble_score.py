"""Do several encoders together order progress better than each alone? Scores ensembles of encoders on held-out
videos with `reprl score`'s metrics: an ensemble's value is the mean of its members' values, each member with
its own similarity and its own goal (the mean last-frame embedding of the other successful episodes of the
task and camera, as `reprl score` makes it). Members must take the same image size. Every member is embedded
once; the table has each member alone, then each ensemble (mean [95% bootstrap interval over videos]).

  python tools/ensemble_score.py study_out/corpus/eval --encoder a=study-tiny_long_g0995 --encoder b=RUN/encoder \
      --ensemble a+b [--boot 1000 --max-frames 64 --json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

import reprl
from reprl.errors import ReprlError
from reprl.scoring import embed_videos, load_videos, records_from_embeddings, score_records
from reprl.utils.files import write_text_atomic

METRICS = ("voc_other", "bump_other", "near_auc", "fail_auc_final", "voc_last", "bump_last")


def mean_of_values(similarities: list[Any], dims: list[int]) -> Any:
    """The similarity of concatenated member embeddings: the mean of each member's similarity on its slice."""
    bounds = [(sum(dims[:i]), sum(dims[:i + 1])) for i in range(len(dims))]

    def sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack([s(a[..., lo:hi], b[..., lo:hi]) for s, (lo, hi) in zip(similarities, bounds)]).mean(0)
    return sim


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", help="held-out videos (a shard folder, as for reprl score)")
    p.add_argument("--encoder", action="append", required=True, help="LABEL=SOURCE (repeat)")
    p.add_argument("--ensemble", action="append", default=[], help="LABEL+LABEL[+...] (repeat)")
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--max-frames", type=int, default=64)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    labels = [e.split("=", 1)[0] for e in args.encoder]
    if any("=" not in e for e in args.encoder) or len(set(labels)) != len(labels):
        p.error("each --encoder is LABEL=SOURCE with a label of its own")
    for ens in args.ensemble:
        unknown = [m for m in ens.split("+") if m not in labels]
        if unknown or len(ens.split("+")) < 2:
            p.error(f"--ensemble {ens!r}: name two or more --encoder labels joined by '+'"
                    + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if args.json and not Path(args.json).parent.is_dir():
        p.error(f"--json {args.json}: its folder does not exist")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        encoders = {lab: reprl.load(src) for lab, src in (e.split("=", 1) for e in args.encoder)}
        sizes = {enc.config.image_size for enc in encoders.values()}
        if len(sizes) != 1:
            raise ReprlError(f"the encoders take different image sizes ({sorted(sizes)}); ensemble encoders "
                             "of one size")
        videos = load_videos(args.shards, sizes.pop(), max_frames=args.max_frames)
        embs = {lab: embed_videos(enc, videos) for lab, enc in encoders.items()}
    except ReprlError as e:
        sys.exit(f"ensemble_score: {e}")
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for group in [[lab] for lab in encoders] + [ens.split("+") for ens in args.ensemble]:
        joined = [torch.cat([embs[m][i] for m in group], dim=-1) for i in range(len(videos))]
        sim = mean_of_values([encoders[m].similarity for m in group], [embs[m][0].shape[-1] for m in group])
        rows["+".join(group)] = score_records(records_from_embeddings(videos, joined, sim), n_boot=args.boot,
                                              metrics=METRICS)
    print("| encoder(s) | " + " | ".join(METRICS) + " |")
    print("| --- |" + " --- |" * len(METRICS))
    for name, s in rows.items():
        print(f"| {name} | " + " | ".join(f"{s[m]['mean']:.3f} [{s[m]['lo']:.3f}, {s[m]['hi']:.3f}]" for m in METRICS)
              + " |")
    if args.json:
        write_text_atomic(args.json, json.dumps({"videos": len(videos), "encoders": dict(e.split("=", 1) for e in
                                                 args.encoder), "scores": rows}, indent=1))


if __name__ == "__main__":
    main()
