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
import sys
from pathlib import Path

METRIC = "voc_other"  # what "best" means: value-order correlation with a goal from other successful episodes


def _scores(results: Path) -> dict:
    return json.loads((results / "reward_quality" / "results.json").read_text())


def best(results: Path) -> str:
    scores = _scores(results)["scores"]
    trained = {k: v[METRIC]["mean"] for k, v in scores.items() if k != "random"}
    if not trained:
        raise SystemExit(f"study_model: no trained encoder scored in {results}/reward_quality/results.json")
    return max(trained, key=lambda k: trained[k])


def card(results: Path, key: str, preset: str, corpus: Path) -> dict:
    scored = _scores(results)
    train = json.loads((corpus / "index.json").read_text())
    pretrain = json.loads((results / f"pretrain_{preset}.json").read_text())
    metrics = {m: {"mean": round(v["mean"], 4), "ci95": [round(v["lo"], 4), round(v["hi"], 4)]}
               for m, v in scored["scores"][key].items()}
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
