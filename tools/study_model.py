"""The study's export step (tools/study.sh): pick the best trained encoder and write its training card.

  python3 tools/study_model.py best RESULTS            -> the encoder key with the highest VOC (other-episodes goal)
  python3 tools/study_model.py card RESULTS KEY PRESET CORPUS -> JSON: data, steps and reward-quality metrics

RESULTS is the study's results folder (eval/results/study): pretrain_PRESET.json and
reward_quality/results.json; CORPUS is the training corpus folder (its index.json says what was rendered). The
card goes into the exported config.json (`reprl convert --training`), so the model carries what it was trained
on and how it scored. Standard library only: runs with any python3.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

METRIC = "voc_other"  # what "best" means: value-order correlation with a goal from other successful episodes


def _read(path: Path, what: str) -> dict:
    """The JSON object in `path`, or a one-line exit naming the file and what should have written it."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise SystemExit(f"study_model: cannot read {path} ({e.strerror}); {what}") from None
    except ValueError as e:
        raise SystemExit(f"study_model: {path} is not valid JSON ({e}); {what}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"study_model: {path} holds a JSON {type(data).__name__}, not an object; {what}")
    return data


def _scores(results: Path) -> dict:
    data = _read(results / "reward_quality" / "results.json", "run the study's scoring step (reprl score --report)")
    if not isinstance(data.get("scores"), dict):
        raise SystemExit(f"study_model: {results}/reward_quality/results.json has no scores; rerun reprl score")
    return data


def _mean(entry: object) -> float | None:
    """The metric's mean, or None where the encoder has no finite one (not scored, NaN, infinite)."""
    value = entry.get(METRIC, {}).get("mean") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def best(results: Path) -> str:
    scores = _scores(results)["scores"]
    trained = {k: m for k, v in scores.items() if k != "random" and (m := _mean(v)) is not None}
    if not trained:
        raise SystemExit(f"study_model: no trained encoder has a finite {METRIC} in "
                         f"{results}/reward_quality/results.json")
    return max(trained, key=lambda k: trained[k])


def card(results: Path, key: str, preset: str, corpus: Path) -> dict:
    scored = _scores(results)
    if key not in scored["scores"]:
        raise SystemExit(f"study_model: no encoder {key!r} in {results}/reward_quality/results.json; scored: "
                         f"{', '.join(sorted(scored['scores']))}")
    train = _read(corpus / "index.json", "give the training corpus folder (reprl render writes its index.json)")
    pretrain = _read(results / f"pretrain_{preset}.json", f"run the study's pretraining of {preset} first")
    metrics = {m: {"mean": round(v["mean"], 4), "ci95": [round(v["lo"], 4), round(v["hi"], 4)]}
               for m, v in scored["scores"][key].items() if math.isfinite(v["mean"])}  # e.g. no text tower: none
    return {
        "preset": f"configs/pretrain/{preset}.yaml",
        "steps": pretrain.get("steps"),
        "data": {"videos": train.get("videos"), "episodes": train.get("episodes"), "frames": train.get("frames"),
                 "render": train.get("render")},
        "heldout_pretraining_tasks": pretrain.get("heldout"),
        "reward_quality": {"on": scored.get("title", "evaluation tasks"),
                           "videos": scored.get("data", {}).get("videos"),
                           "interval": "95% bootstrap over videos", "metrics": metrics},
        "selected_by": f"highest {METRIC} among the study's trained encoders",
    }


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "best":
        print(best(Path(argv[1])))
        return 0
    if len(argv) >= 5 and argv[0] == "card":
        print(json.dumps(card(Path(argv[1]), argv[2], argv[3], Path(argv[4])), indent=2))
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
