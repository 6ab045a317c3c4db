"""Policy heads on frozen embeddings: [phi(o), proprioception] -> BatchNorm -> MLP -> action.

`PolicyHead` is trained on cached embeddings (reprl.heads.train); `Policy` pairs a head with its frozen
encoder for control code: `policy.act(image, proprio)` -> action. A policy saves as a folder
(config.json + model.safetensors) that names its encoder source (or holds a copy of the encoder under
encoder/), so it loads in one line. Every head (BC, RWR, AWR, IQL, f-DVL, ReCOIL, TRAIL) exports this way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from reprl.errors import ReprlError
from reprl.heads.losses import gaussian_nll
from reprl.utils.files import StagingDir, normal_mode, read_json_object


@dataclass
class HeadConfig:
    """Architecture and training of a policy head (R3M's BC protocol by default)."""

    hidden: tuple[int, ...] = (256, 256)
    activation: Literal["relu", "tanh"] = "relu"
    loss: Literal["mse", "nll"] = "mse"  # nll: Gaussian with a learned state-independent std
    lr: float = 1e-3
    batch_size: int = 32
    steps: int = 20000
    weight_decay: float = 0.0
    proprio: bool = True  # feed proprioception beside the embedding


class PolicyHead(nn.Module):
    def __init__(self, embed_dim: int, proprio_dim: int, action_dim: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.dims = {"embed_dim": embed_dim, "proprio_dim": proprio_dim if cfg.proprio else 0,
                     "action_dim": action_dim}
        self.cfg = cfg
        inp = embed_dim + self.dims["proprio_dim"]
        act: type[nn.Module] = nn.ReLU if cfg.activation == "relu" else nn.Tanh
        layers: list[nn.Module] = [nn.BatchNorm1d(inp)]
        for width in cfg.hidden:
            layers += [nn.Linear(inp, width), act()]
            inp = width
        layers.append(nn.Linear(inp, action_dim))
        self.mlp = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.zeros(action_dim)) if cfg.loss == "nll" else None

    def inputs(self, emb: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        if self.dims["proprio_dim"]:
            if proprio is None:
                raise ReprlError("this head was trained with proprioception: pass proprio")
            if proprio.shape[-1] != self.dims["proprio_dim"] or proprio.shape[0] != emb.shape[0]:
                raise ReprlError(f"proprio must be [{self.dims['proprio_dim']}] per image ([B, "
                                 f"{self.dims['proprio_dim']}] for B images); got {list(proprio.shape)} for "
                                 f"{emb.shape[0]} image(s)")
            return torch.cat([emb, proprio.to(emb.dtype)], dim=-1)
        return emb

    def forward(self, emb: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        """Action means [B, A]."""
        return self.mlp(self.inputs(emb, proprio))

    def per_sample_loss(self, emb: torch.Tensor, proprio: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        """[B] losses: squared error summed over action dims (mse) or Gaussian negative log-likelihood (nll)."""
        mean = self(emb, proprio)
        if self.log_std is None:
            return ((mean - actions) ** 2).sum(-1)
        return gaussian_nll(mean, self.log_std, actions)


class Policy(nn.Module):
    """A frozen encoder and a trained actor (any head's): what control code and the evaluation harness call."""

    _compiled: Any  # the encoder's compiled copy (compile=True) or None

    def __init__(self, encoder: Any, head: nn.Module, encoder_source: str = "", kind: str = "bc",
                 precision: str = "32", compile: bool = False) -> None:
        """precision: the encoder's forward in float32 ("32", the default) or under bfloat16 autocast ("bf16":
        faster on CPUs with bfloat16 instructions, docs/benchmarks.md; embeddings are close to float32's, not
        equal, so train the head on embeddings of the same precision). The head always runs in float32.
        compile: run the encoder compiled for inference (reprl.encoders.compiled: torch.compile with frozen
        weights; the first act compiles, seconds to a minute; outputs equal up to rounding). The encoder must be
        in eval mode and stay unchanged."""
        super().__init__()
        from reprl.embed.pipeline import check_precision

        precision = check_precision(_device(encoder), precision)  # refused here, not at the first act
        self.encoder, self.head = encoder, head.eval()
        self.encoder_source, self.kind, self.precision = encoder_source, kind, precision
        fast = None
        if compile:
            from reprl.encoders.compiled import compiled_for_inference

            fast = compiled_for_inference(encoder)
        self.__dict__["_compiled"] = fast  # not a submodule: it shares the encoder's weights

    @torch.inference_mode()
    def act(self, image: Any, proprio: Any = None) -> np.ndarray:
        """Image(s) (any layout the encoder takes) and proprioception -> actions in [-1, 1], float32.

        One image gives one action [A]; a batch gives [B, A]."""
        from reprl.embed.pipeline import autocast

        with autocast(_device(self.encoder), self.precision):
            emb = (self.encoder if self._compiled is None else self._compiled)(image)
        emb = emb.float()
        p = None
        if proprio is not None:
            p = torch.as_tensor(np.asarray(proprio, dtype=np.float32), device=emb.device)
            p = p[None] if p.dim() == 1 else p
            if not bool(torch.isfinite(p).all()):
                raise ReprlError("proprio holds NaN or inf values")
        out = self.head.to(emb.device)(emb, p).clamp(-1, 1).float().cpu().numpy()
        return out[0] if _single(image) else out

    def select_action(self, observation: dict[str, Any]) -> np.ndarray:
        """LeRobot-style: {'observation.image' (or 'image' / 'pixels'), 'observation.state' (or 'proprio' /
        'state')} -> action(s)."""
        if not isinstance(observation, dict):
            raise ReprlError(f"select_action takes a dict observation ({{'observation.image': ..., "
                             f"'observation.state': ...}}), got a {type(observation).__name__}; for an image and "
                             "proprio, call act(image, proprio)")
        image = _first(observation, ("observation.image", "image", "pixels"), "image")
        proprio = _first(observation, ("observation.state", "proprio", "state"), None)
        return self.act(image, proprio)

    def save(self, out: str | Path, copy_encoder: bool = False) -> Path:
        """A policy folder; copy_encoder writes the encoder into it too (self-contained)."""
        return save_head(self.head, out, self.encoder_source, kind=self.kind,
                         encoder=self.encoder if copy_encoder else None,
                         extra=None if self.precision == "32" else {"precision": self.precision})


def _device(encoder: Any) -> torch.device:
    """The device an encoder runs on: its `device`, else that of its first parameter, else the CPU."""
    device = getattr(encoder, "device", None)
    if isinstance(device, torch.device):
        return device
    params = getattr(encoder, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if isinstance(first, torch.Tensor) else torch.device("cpu")


def _first(obs: dict[str, Any], keys: tuple[str, ...], what: str | None) -> Any:
    for k in keys:
        if k in obs:
            return obs[k]
    if what is None:
        return None
    raise ReprlError(f"the observation has no {what}: give one of the keys {', '.join(keys)} (got {sorted(obs)})")


def _single(image: Any) -> bool:
    """One image (PIL, or an array/tensor with 3 dims) rather than a batch or a list."""
    if hasattr(image, "convert") and hasattr(image, "size"):
        return True
    shape = getattr(image, "shape", None)
    return shape is not None and len(shape) in (2, 3)  # a colour image, or one greyscale image [H, W]


POLICY_FORMAT = "reprl-policy/1"
CONFIG, WEIGHTS, ENCODER_DIR = "config.json", "model.safetensors", "encoder"


def absolute_source(source: str) -> str:
    """An encoder source with a local path made absolute (also after random:); names and hf:// stay as they are."""
    from reprl.encoders.io import split_random

    prefix, source = split_random(source)
    path = Path(source).expanduser()
    return prefix + (str(path.resolve()) if source and path.exists() else source)


def save_head(head: nn.Module, out: str | Path, encoder_source: str, kind: str = "bc", encoder: Any = None,
              extra: dict[str, Any] | None = None) -> Path:
    """A policy folder: config.json (head kind, actor config and dims, encoder source) + model.safetensors, and
    the encoder itself under encoder/ if given; written atomically."""
    from safetensors.torch import save_file

    from reprl.encoders.io import save_encoder

    out = Path(out)
    encoder_source = absolute_source(encoder_source)  # a relative path would not load from another folder
    with StagingDir(out, own=(CONFIG, WEIGHTS, ENCODER_DIR)) as staging:
        actor_config = dataclasses.asdict(head.cfg)  # type: ignore[call-overload]  # every actor's cfg is a dataclass
        meta = {"format": POLICY_FORMAT, "head": kind, "actor": type(head).__name__,
                "actor_config": actor_config, "dims": head.dims,
                "encoder": ENCODER_DIR if encoder is not None else encoder_source,
                "encoder_copied": encoder is not None, "encoder_source": encoder_source, **(extra or {})}
        (staging / CONFIG).write_text(json.dumps(meta, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(staging / WEIGHTS))
        normal_mode(staging / WEIGHTS)  # safetensors writes 0600; every other output is 0644 under umask 022
        if encoder is not None:
            save_encoder(encoder, staging / ENCODER_DIR)
    return out


def load_head(path: str | Path) -> tuple[nn.Module, str, dict[str, Any]]:
    """(actor in eval mode, encoder source resolved to a path or name, the folder's config)."""
    from safetensors.torch import load_file

    from reprl.heads.trail import TrailActor, TRAILConfig
    from reprl.typed_config import from_dict

    p = Path(path)
    what = f"a saved policy's {CONFIG} is the JSON object reprl eval and reprl heads train write"
    meta = read_json_object(p / CONFIG, what) if (p / CONFIG).exists() else {}
    if meta.get("format") != POLICY_FORMAT:
        raise ReprlError(f"{p} is not a saved policy: it needs config.json with format {POLICY_FORMAT!r} and "
                         f"{WEIGHTS} (what reprl eval and reprl heads train write)")
    actors = {"PolicyHead": (PolicyHead, HeadConfig), "TrailActor": (TrailActor, TRAILConfig)}
    if meta["actor"] not in actors:
        raise ReprlError(f"{p}: unknown actor {meta['actor']!r}; this reprl knows {', '.join(actors)}")
    cls, cfg_cls = actors[meta["actor"]]
    d = meta["dims"]
    head = cls(d["embed_dim"], d["proprio_dim"], d["action_dim"], from_dict(cfg_cls, meta["actor_config"], "actor"))
    from safetensors import SafetensorError

    try:
        head.load_state_dict(load_file(str(p / WEIGHTS)))
    except FileNotFoundError:
        raise ReprlError(f"{p} has {CONFIG} but no {WEIGHTS}: the policy folder is incomplete") from None
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ReprlError(f"{p / WEIGHTS} does not hold this policy's weights (torn, or not the head {CONFIG} "
                         f"describes): {str(e).splitlines()[0][:120]}") from None
    source = str(p / meta["encoder"]) if meta.get("encoder_copied") else meta["encoder"]
    return head.eval(), source, meta


def load_policy(path: str | Path, device: str = "cpu", encoder: Any = None, precision: str | None = None,
                compile: bool = False) -> Policy:
    """A saved policy with its frozen encoder (its copy in the folder, or the source recorded at training,
    unless one is given), in the precision its head was trained with (recorded when not float32) unless
    `precision` says otherwise; `compile` as in Policy."""
    import reprl
    from reprl.utils.machine import resolve_device

    device = resolve_device(device, "device")
    head, source, meta = load_head(path)
    if encoder is None:
        try:
            encoder = reprl.load(source, device=device)
        except ReprlError as e:
            raise ReprlError(f"the encoder this policy was trained with ({source!r}, as recorded in {path}) cannot "
                             f"be loaded ({e}); pass it yourself: load_policy(path, encoder=reprl.load(...))") from None
    dims = cast(dict[str, int], head.dims)  # every actor class (PolicyHead, TrailActor) sets dims
    if encoder.embed_dim != dims["embed_dim"]:
        raise ReprlError(f"the head expects {dims['embed_dim']}-d embeddings, the encoder gives "
                         f"{encoder.embed_dim}")
    try:
        return Policy(encoder, head.to(device), meta.get("encoder_source", source), meta.get("head", "bc"),
                      precision=precision or str(meta.get("precision", "32")), compile=compile)
    except ReprlError as e:
        raise ReprlError(f"{path}: {e}; pass load_policy(..., precision='32') to run it in float32") from None


__all__ = ["HeadConfig", "PolicyHead", "Policy", "save_head", "load_head", "load_policy"]
