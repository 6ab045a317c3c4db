"""Save and load encoders. The unit users share is a folder: config.json + model.safetensors.

`load_encoder(source)` also takes a registered name (random init), a reference checkpoint file (VIP, R3M,
LIV), a reprl training checkpoint (.ckpt), `hf://org/repo[@revision]` (needs huggingface_hub and a
reachable hub), or `random:SOURCE` (SOURCE's architecture at random init, seed 0).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

import reprl
from reprl.encoders.base import Encoder, EncoderConfig
from reprl.encoders.reference import import_reference
from reprl.encoders.registry import SPECS, build_encoder, build_from_config
from reprl.errors import ReprlError
from reprl.utils.files import StagingDir, normal_mode, read_json_object

log = logging.getLogger(__name__)
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CKPT_CONFIG_KEY = "reprl_encoder_config"  # where reprl training checkpoints keep the encoder config


def nonfinite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in `state` holding NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite(state: dict[str, torch.Tensor], where: str) -> None:
    """A model with NaN/inf weights embeds everything as NaN: refuse it with one line, never score it."""
    bad = nonfinite(state)
    if bad:
        raise ReprlError(f"{where} has non-finite weights (NaN/inf) in {len(bad)} tensors, e.g. {bad[0]}: it comes "
                         "from a diverged run; use an earlier checkpoint or retrain with a lower learning rate")


def save_encoder(encoder: Encoder, out: str | Path, command: str | None = None, force: bool = False,
                 extra: dict[str, str] | None = None, half: bool = False) -> Path:
    """Write config.json + model.safetensors (and `extra` text files, e.g. a README model card) atomically (a
    staging folder renamed into place); a model with non-finite weights is refused. `command` marks the folder
    as that command's output (see StagingDir). half=True stores floating-point weights as float16 (half the
    size; loading casts them back to the model's float32)."""
    from safetensors.torch import save_file

    out = Path(out)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in encoder.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    check_finite(state, f"the encoder to export to {out}")
    with StagingDir(out, command=command, force=force, own=(CONFIG, WEIGHTS, *(Path(n).name for n in extra or {}))) \
            as staging:
        for name, text in (extra or {}).items():
            (staging / Path(name).name).write_text(text)
        config = {**encoder.config.to_dict(), "reprl_version": reprl.__version__}
        (staging / CONFIG).write_text(json.dumps(config, indent=2))
        save_file(state, str(staging / WEIGHTS), metadata={"format": "pt", "reprl": reprl.__version__})
        normal_mode(staging / WEIGHTS)
    return out


def load_state_checked(encoder: Encoder, state: dict[str, torch.Tensor], where: str) -> None:
    """Load weights, turning any key or shape mismatch into one readable error."""
    own = encoder.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ReprlError(f"{where}: config.json and the weights disagree: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, shape mismatches {shapes[:5]}")
    check_finite(state, where)
    encoder.load_state_dict(state, strict=True)


def load_dir(path: Path) -> Encoder:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path, w_path = path / CONFIG, path / WEIGHTS
    if not cfg_path.exists():
        raise ReprlError(f"no {CONFIG} in {path}: an exported reprl encoder folder holds {CONFIG} and {WEIGHTS}")
    raw = read_json_object(cfg_path, f"an exported encoder's {CONFIG} is the JSON object reprl convert writes")
    raw.pop("reprl_version", None)
    config = EncoderConfig.from_dict(raw)
    if not w_path.exists():
        raise ReprlError(f"{path} has {CONFIG} but no {WEIGHTS}")
    try:
        state = load_file(str(w_path))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ReprlError(f"{w_path} is corrupt or not a safetensors file ({e})") from None
    encoder = build_from_config(config)
    load_state_checked(encoder, state, str(path))
    return encoder


def load_file(path: Path) -> Encoder:
    """A reference checkpoint (VIP / R3M / LIV) or a reprl training checkpoint."""
    import pickle

    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's text suggests weights_only=False: never pass that on
        detail = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        if "global" not in str(e):
            raise ReprlError(f"cannot read checkpoint {path}: damaged or not a PyTorch file ({detail})") from None
        raise ReprlError(f"refusing to load {path}: it holds Python objects other than tensors and plain "
                         "containers, and unpickling those can run arbitrary code; save its state_dict (tensors "
                         "only) where you trust the file, or use a safetensors export") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ReprlError(f"cannot read checkpoint {path}: damaged or not a PyTorch file ({detail})") from None
    if not isinstance(obj, dict):
        raise ReprlError(f"{path} is not a checkpoint dictionary")
    encoder = import_reference(obj, str(path))
    if encoder is not None:
        check_finite(encoder.state_dict(), str(path))
        return encoder
    if CKPT_CONFIG_KEY in obj:
        config = EncoderConfig.from_dict(dict(obj[CKPT_CONFIG_KEY]))
        encoder = build_from_config(config)
        state = {k[len("encoder."):]: v for k, v in obj.get("state_dict", {}).items() if k.startswith("encoder.")}
        load_state_checked(encoder, state, str(path))
        return encoder
    raise ReprlError(f"unrecognised checkpoint {path}: top-level keys {sorted(obj)[:8]}; expected a VIP ('vip'), "
                     "R3M ('r3m') or LIV ('liv') checkpoint, or a reprl training checkpoint")


def _from_hub(source: str) -> Path:
    repo, _, revision = source[len("hf://"):].partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ReprlError("hf:// sources need huggingface_hub: pip install huggingface_hub") from None
    try:
        return Path(snapshot_download(repo, revision=revision or None))
    except Exception as e:  # noqa: BLE001 - offline, missing repo, auth: all end here
        raise ReprlError(f"could not fetch {source} from the Hugging Face hub ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); download the folder yourself and pass its "
                         "local path") from None


def models_dirs() -> list[Path]:
    """Folders whose sub-folders are encoders loadable by their folder name: $REPRL_MODELS (os.pathsep-separated)
    and eval/models/ of the reprl checkout this package runs from (the study's trained encoder lives there)."""
    import os

    extra = [Path(p).expanduser() for p in os.environ.get("REPRL_MODELS", "").split(os.pathsep) if p]
    return [*extra, Path(__file__).resolve().parents[2] / "eval" / "models"]


def named_models() -> dict[str, Path]:
    """Short name -> exported folder, for every folder under models_dirs() holding config.json (first wins)."""
    found: dict[str, Path] = {}
    for base in models_dirs():
        if base.is_dir():
            for d in sorted(base.iterdir()):
                if (d / CONFIG).is_file() and not _is_policy(d / CONFIG):
                    found.setdefault(d.name, d)
    return found


def _is_policy(config: Path) -> bool:
    """A policy folder (reprl heads train, reprl eval) also holds config.json; it is not an encoder."""
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith("reprl-policy")


def is_architecture_name(source: str | Path) -> bool:
    """`source` names a registered architecture (a new, randomly initialised encoder), not a local path that
    happens to share the name: the only sources that take settings such as image_size."""
    text = str(source)
    return text in SPECS and not Path(text).expanduser().exists()


def random_like(source: str, seed: int = 0) -> Encoder:
    """`source`'s architecture, preprocessing and similarity at random init (seed `seed`): the baseline a
    trained encoder should beat."""
    text = str(source)
    if is_architecture_name(text):  # random init already: no "no weights" warning
        config = build_encoder(text).config
    else:
        config = resolve(text).config
    config.source = f"random init like {source}"
    torch.manual_seed(seed)
    return build_from_config(config)


def resolve(source: str | Path, **overrides: Any) -> Encoder:
    """Build (not freeze) the encoder a source names. `overrides` (image_size, embed_dim, ...) shape a new encoder
    of an architecture name; a trained encoder keeps its own, so they are refused there rather than ignored."""
    text = str(source)
    if not text.strip():
        raise ReprlError("the encoder source is empty: give an exported encoder folder, a checkpoint, a pretrained "
                         "or model name, hf://REPO or random:SOURCE (reprl list shows the names)")
    if overrides and not is_architecture_name(text):
        raise ReprlError(f"{', '.join(sorted(overrides))}: settings of a new encoder of an architecture name "
                         f"({', '.join(SPECS)}); {text!r} is a trained encoder with its own, so load it without them")
    if text.startswith("random:"):
        return random_like(text[len("random:"):])
    if text.startswith("hf://"):
        folder = _from_hub(text)
        if (folder / CONFIG).exists():
            return load_dir(folder)
        files = sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth"))
        if not files:
            raise ReprlError(f"{text} holds neither {CONFIG} nor a .pt checkpoint")
        return load_file(files[0])
    path = Path(text).expanduser()
    if path.is_dir():
        return load_dir(path)
    if path.is_file():
        return load_file(path)
    from reprl.encoders.pretrained import RELEASES, load_pretrained

    if text in RELEASES:
        return load_pretrained(text)
    models = named_models()
    if text in models:
        return load_dir(models[text])
    if text in SPECS:
        log.warning("%s is an architecture name: random init, no trained weights (for released weights use one "
                    "of %s)", text, ", ".join(RELEASES))
        return build_architecture(text, **overrides)
    label, eq, rest = text.partition("=")
    if eq and rest and "/" not in label and not Path(text).exists():
        raise ReprlError(f"unknown encoder source {text!r}: LABEL=SOURCE names encoders for reprl score and reprl "
                         f"eval only; here give the source alone: {rest}")
    if not Path(text).exists() and Path(text).suffix in (".pt", ".pth", ".ckpt", ".safetensors"):
        raise ReprlError(f"encoder checkpoint {text} not found: give the path of an existing file")
    raise ReprlError(f"unknown encoder source {text!r}: not an exported encoder folder, a checkpoint file, an "
                     f"hf:// repo, random:SOURCE, a pretrained name ({', '.join(RELEASES)}), a model name "
                     f"({', '.join(models) or 'none found in ' + ', '.join(map(str, models_dirs()))}) or a "
                     f"registered architecture ({', '.join(SPECS)})")


def build_architecture(name: str, **overrides: Any) -> Encoder:
    """A new encoder of a registered architecture at random init, shaped by `overrides`; a setting the
    architecture does not take is a ReprlError naming it."""
    try:
        return build_encoder(name, **overrides)
    except TypeError as e:
        raise ReprlError(f"{name}: {e} (settings: image_size, embed_dim, params, ...)") from None


def split_random(source: str | Path) -> tuple[str, str]:
    """("random:" repeated as often as `source` starts with it, the source after them)."""
    text, prefix = str(source), ""
    while text.startswith("random:"):
        prefix, text = prefix + "random:", text[len("random:"):]
    return prefix, text


def source_paths(source: str | Path) -> list[Path]:
    """The local files or folders `source` reads its weights from, resolved as `resolve` would (random:, a path,
    a pretrained release's cache folder, a named model's folder, the hub's cache for hf://): what an output
    folder must never replace."""
    text = split_random(source)[1]
    if text.startswith("hf://"):
        try:
            from huggingface_hub.constants import HF_HUB_CACHE
        except ImportError:
            return []
        return [Path(HF_HUB_CACHE)]
    path = Path(text).expanduser()
    if path.exists():
        return [path]
    from reprl.encoders.pretrained import RELEASES, release_dir

    if text in RELEASES:
        return [release_dir(text)]
    models = named_models()
    return [models[text]] if text in models else []


def check_source(source: str | Path) -> None:
    """Fail early (before rendering or other long work) on a source that `resolve` would refuse: local folders
    and files are read once (missing, torn, mismatched or non-finite weights); names and hf:// pass."""
    text = str(source).removeprefix("random:")
    if text.startswith("hf://") or is_architecture_name(text):
        return
    resolve(text)


def load_encoder(source: str | Path, device: str | torch.device = "cpu", freeze: bool = True,
                 **overrides: Any) -> Encoder:
    """An encoder ready to use: on `device`, and frozen in eval mode unless freeze=False (fine-tuning)."""
    from reprl.utils.machine import resolve_device

    encoder = resolve(source, **overrides).to(resolve_device(str(device), "device"))
    return encoder.freeze() if freeze else encoder
