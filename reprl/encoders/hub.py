"""Share encoders: a folder with config.json + model.safetensors + a README model card, on disk or on the
Hugging Face hub (huggingface_hub is an optional extra: `pip install 'reprl[hub]'`).

    encoder.save_pretrained("my_encoder", run_dir="runs/vip")   # card gets training data, steps, held-out scores
    encoder.push_to_hub("org/my-encoder")
    reprl.encoders.hub.from_pretrained("org/my-encoder")        # or a local folder
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import reprl
from reprl.errors import ReprlError

if TYPE_CHECKING:  # pragma: no cover
    from reprl.encoders.base import Encoder

CARD = "README.md"


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Training facts for the card from a `reprl pretrain` run folder (config.yaml and summary.json)."""
    import json

    import yaml

    run = Path(run_dir)
    if not (run / "summary.json").is_file():
        raise ReprlError(f"{run} has no summary.json: give the folder of a finished `reprl pretrain` run")
    summary = json.loads((run / "summary.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    data, objective = cfg.get("data") or {}, cfg.get("objective") or {}
    info = {"steps": summary.get("steps"), "objective": objective.get("name"), "train_data": data.get("train"),
            "heldout_data": data.get("val"), "batch_size": data.get("batch_size")}
    heldout = summary.get("heldout") or {}
    if "trained" in heldout:
        info["heldout"] = heldout
    return {k: v for k, v in info.items() if v is not None}


def _scores_table(heldout: dict[str, Any]) -> list[str]:
    rows = ["| encoder | VOC (higher is better) | bump rate (lower is better) | videos |", "|---|---|---|---|"]
    for name, s in heldout.items():
        rows.append(f"| {name} | {s['voc']:+.3f} | {s['bump_rate']:.3f} | {s.get('videos', '')} |")
    return rows


def model_card(encoder: Encoder, info: dict[str, Any] | None = None) -> str:
    """README.md text: what the encoder is, how to feed it, how to score with it, and how it was trained."""
    c, info = encoder.config, info or {}
    ops = ", ".join(f"{o['op']} {o['size']}" + ("" if o.get("antialias", True) else " (no antialias)")
                    for o in c.preprocess)
    value = ("V(o; g) = -||phi(o) - phi(g)||" if c.similarity == "l2"
             else f"V(o; g) = cos(phi(o), phi(g)) / (1 - {c.gamma})")
    lines = ["---", "library_name: reprl", "tags: [robotics, representation-learning, reward-model, reprl]", "---",
             f"# {c.name}", "", f"A frozen visual{' and language' if encoder.has_text else ''} encoder for robots, "
             f"saved by reprl {reprl.__version__}. Provenance: {c.source or 'unknown'}.", "",
             "## Architecture", f"- `{c.arch}` ({c.name}), parameters {c.params}",
             f"- {c.embed_dim}-d embeddings of {c.image_size}x{c.image_size} images"
             + ("; text tower for language goals" if encoder.has_text else ""), "",
             "## Preprocessing", f"- uint8 [0, 255] or float [0, 1] RGB images; {ops} ({c.interpolation}); "
             f"then mean {list(c.mean)}, std {list(c.std)}", "",
             "## Similarity (value function)", f"- {value}; reward r = V(o'; g) - V(o; g)", "",
             "## Training"]
    if info.get("steps") is not None:
        lines += [f"- objective: {info.get('objective', 'unknown')}, {info['steps']} steps"
                  + (f", batch {info['batch_size']}" if info.get("batch_size") else "")]
        lines += [f"- training data: {info.get('train_data', 'unknown')}"]
    else:
        lines += ["- not recorded" + (" (random init: untrained weights)" if c.random_init else "")]
    if info.get("heldout"):
        lines += ["", f"## Held-out quality ({info.get('heldout_data', 'held-out videos')}, goal = last frame)", ""]
        lines += _scores_table(info["heldout"])
    lines += ["", "## Use", "```python", "import reprl", "from reprl.encoders.hub import from_pretrained",
              "encoder = from_pretrained('THIS_REPO_OR_FOLDER')", "emb = encoder(images)  # [B, D]",
              "values = encoder.similarity(emb, emb[-1:])", "```", ""]
    return "\n".join(lines)


def save_pretrained(encoder: Encoder, out: str | Path, run_dir: str | Path | None = None,
                    info: dict[str, Any] | None = None) -> Path:
    """config.json + model.safetensors + README.md, written atomically (one staging folder)."""
    from reprl.encoders.io import save_encoder

    facts = {**(run_info(run_dir) if run_dir else {}), **(info or {})}
    return save_encoder(encoder, out, extra={CARD: model_card(encoder, facts)})


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise ReprlError("the hub needs huggingface_hub: pip install 'reprl[hub]'") from None
    return huggingface_hub


def push_to_hub(encoder: Encoder, repo: str, *, private: bool = False, token: str | None = None,
                run_dir: str | Path | None = None, info: dict[str, Any] | None = None,
                commit_message: str = "Upload reprl encoder") -> str:
    """Create (if needed) the model repo `repo` and upload the saved folder with its card; returns the repo."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ReprlError(f"hub repo must look like 'org/name', got {repo!r}")
    api = _hub().HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="reprl-push-") as tmp:
        folder = save_pretrained(encoder, Path(tmp) / "encoder", run_dir=run_dir, info=info)
        try:
            api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model", commit_message=commit_message)
        except Exception as e:  # noqa: BLE001 - offline, auth, permissions: all end here
            first = str(e).splitlines()[0] if str(e) else ""
            raise ReprlError(f"could not push to the hub repo {repo} ({type(e).__name__}: {first}); "
                             "save_pretrained(dir) works offline") from None
    return repo


def from_pretrained(source: str | Path, device: str = "cpu", revision: str | None = None) -> Encoder:
    """A frozen encoder from a saved folder or a hub repo 'org/name' (downloaded into the hub's cache)."""
    from reprl.encoders.io import load_encoder

    path = Path(str(source)).expanduser()
    if path.is_dir():
        return load_encoder(path, device=device)
    text = str(source).removeprefix("hf://")
    if text.count("/") != 1:
        raise ReprlError(f"{source} is neither a saved encoder folder nor a hub repo 'org/name'")
    return load_encoder(f"hf://{text}" + (f"@{revision}" if revision else ""), device=device)
