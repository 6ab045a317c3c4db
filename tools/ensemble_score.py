"""Do several encoders together order progress better than each alone? Scores ensembles of encoders on held-out
videos with `reprl score`'s metrics.

An ensemble's value is the mean of its members' values, each member with its own similarity and its own goal
(the mean last-frame embedding of the other successful episodes of the task and camera, as `reprl score` makes
it), and each member's values divided by their standard deviation over all kept frames of all videos (goal =
other episodes), so that no member outweighs the others by the scale of its embedding. Members must take the same
image size. Every member is embedded once. The table has each member alone, then each ensemble, as mean [95%
bootstrap interval over videos]; for each ensemble also its VOC (goal = other episodes) minus its best member's,
with a paired bootstrap interval over the same videos.

  python tools/ensemble_score.py study_out/corpus/eval --encoder a=study-tiny_long_g0995 \
      --encoder b=RUN/encoder --ensemble a+b --boot 1000 --max-frames 64 --json out.json
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import reprl
from reprl.errors import ReprlError
from reprl.evaluation.harness import parse_encoders
from reprl.scoring import Record, embed_videos, load_videos, records_from_embeddings, score_records
from reprl.stats import bootstrap_ci, format_ci
from reprl.utils.files import write_json

METRICS = ("voc_other", "bump_other", "near_auc", "fail_auc_final", "voc_last", "bump_last")
LABEL = re.compile(r"[A-Za-z0-9_.-]+")


def mean_of_values(similarities: list[Any], dims: list[int], scales: list[float] | None = None) -> Any:
    """The similarity of concatenated member embeddings: the mean over members of each member's similarity on its
    slice of the embedding, divided by the member's scale (1 when scales is None)."""
    bounds = [(sum(dims[:i]), sum(dims[:i + 1])) for i in range(len(dims))]
    scales = scales or [1.0] * len(dims)

    def sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack([s(a[..., lo:hi], b[..., lo:hi]) / c
                            for s, (lo, hi), c in zip(similarities, bounds, scales)]).mean(0)
    return sim


def value_scale(records: list[Record]) -> float:
    """The standard deviation of a member's values (goal = other episodes) over all kept frames of all videos."""
    curves = [r.curve for r in records if r.curve is not None]
    spread = float(np.concatenate(curves).std()) if curves else 0.0
    if not np.isfinite(spread) or spread <= 0:
        raise ReprlError("an encoder's values do not vary over these videos; it cannot be weighed in an ensemble")
    return spread


def paired_voc_gain(ensemble: list[Record], best: list[Record], n_boot: int) -> dict[str, float]:
    """Mean over successful videos of (ensemble VOC - best member's VOC), goal = other episodes, with a 95%
    bootstrap interval resampling videos within each task (the same videos for both)."""
    pairs = [(e.task, e.voc_other - b.voc_other) for e, b in zip(ensemble, best)
             if e.succeeded and e.voc_other is not None and b.voc_other is not None]
    return bootstrap_ci([d for _, d in pairs], lambda xs: float(np.mean(xs)), n_boot=n_boot,
                        strata=[t for t, _ in pairs])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", help="held-out videos (a shard folder, as for reprl score)")
    p.add_argument("--encoder", action="append", required=True, help="LABEL=SOURCE (repeat)")
    p.add_argument("--ensemble", action="append", default=[], help="LABEL+LABEL[+...] (repeat)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (at least 10)")
    p.add_argument("--max-frames", type=int, default=64, help="frames kept per video (at least 3)")
    p.add_argument("--json", help="also write the figures here (a file)")
    args = p.parse_args(argv)
    try:
        args.sources = parse_encoders(args.encoder)
    except ReprlError as e:
        p.error(str(e))
    bad = [lab for lab in args.sources if not LABEL.fullmatch(lab)]
    if bad:
        p.error(f"encoder label {bad[0]!r}: use letters, digits, '_', '.' or '-' (a '+' joins labels in --ensemble)")
    for ens in args.ensemble:
        members = ens.split("+")
        unknown = [m for m in members if m not in args.sources]
        if unknown or len(members) < 2 or len(set(members)) != len(members):
            p.error(f"--ensemble {ens!r}: name two or more different --encoder labels joined by '+'"
                    + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if args.boot < 10 or args.max_frames < 3:
        p.error(f"--boot must be at least 10 and --max-frames at least 3 (got {args.boot} and {args.max_frames})")
    if args.json and (Path(args.json).is_dir() or not Path(args.json).parent.is_dir()):
        p.error(f"--json {args.json}: give a file in an existing folder")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        encoders = {lab: reprl.load(src) for lab, src in args.sources.items()}
        sizes = {enc.config.image_size for enc in encoders.values()}
        if len(sizes) != 1:
            raise ReprlError(f"the encoders take different image sizes ({sorted(sizes)}); ensemble encoders "
                             "of one size")
        videos = load_videos(args.shards, sizes.pop(), max_frames=args.max_frames)
        embs = {}
        for lab, enc in encoders.items():  # the slow part: say what is going on
            print(f"{lab}: embedding {len(videos)} videos ...", file=sys.stderr, flush=True)
            embs[lab] = embed_videos(enc, videos)
        print(f"scoring {len(encoders)} encoders and {len(args.ensemble)} ensembles, {args.boot} bootstrap "
              "resamples each ...", file=sys.stderr, flush=True)
        alone = {lab: records_from_embeddings(videos, embs[lab], enc.similarity) for lab, enc in encoders.items()}
        scales = {lab: value_scale(recs) for lab, recs in alone.items()}
        rows = {lab: score_records(recs, n_boot=args.boot, metrics=METRICS) for lab, recs in alone.items()}
        gains: dict[str, dict[str, Any]] = {}
        for ens in args.ensemble:
            group = ens.split("+")
            joined = [torch.cat([embs[m][i] for m in group], dim=-1) for i in range(len(videos))]
            sim = mean_of_values([encoders[m].similarity for m in group], [embs[m][0].shape[-1] for m in group],
                                 [scales[m] for m in group])
            records = records_from_embeddings(videos, joined, sim)
            rows[ens] = score_records(records, n_boot=args.boot, metrics=METRICS)
            best = max(group, key=lambda m: rows[m]["voc_other"]["mean"])
            gains[ens] = {"best_member": best, **paired_voc_gain(records, alone[best], args.boot)}
    except ReprlError as e:
        sys.exit(f"ensemble_score: {e}")
    print("| encoder(s) | " + " | ".join(METRICS) + " | VOC (other) minus best member's |")
    print("| --- |" + " --- |" * (len(METRICS) + 1))
    for name, s in rows.items():
        g = gains.get(name)
        gain = f"{g['mean']:+.3f} [{g['lo']:+.3f}, {g['hi']:+.3f}] vs {g['best_member']}" if g else ""
        print(f"| {name} | " + " | ".join(format_ci(s[m]) for m in METRICS) + f" | {gain} |")
    if args.json:
        write_json(args.json, {"videos": len(videos), "encoders": args.sources, "value_scales": scales,
                               "scores": rows, "voc_gain": gains})


if __name__ == "__main__":
    main()
