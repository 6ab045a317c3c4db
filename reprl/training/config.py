"""`reprl pretrain` configuration: typed dataclasses (the source of truth) that YAML presets in
configs/pretrain/ mirror. No Lightning here, so configs can be read and checked cheaply."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from reprl.objectives.registry import ObjectiveConfig, VIPConfig, data_mode, objective_class, objective_config
from reprl.options import TupleSettings


@dataclass
class EncoderSection:
    name: str = "resnet50"  # registered encoder (reprl list)
    embed_dim: int | None = None  # None: the registered default
    image_size: int = 224  # training crop size in pixels
    similarity: Literal["l2", "cosine"] | None = None  # None: l2 for VIP/R3M, cosine for LIV
    init: str | None = None  # start from any reprl.load source (exported folder, reference checkpoint, ...)
    pretrained: str | None = None  # local backbone weights (torchvision / CLIP checkpoint file)
    params: dict[str, Any] = field(default_factory=dict)  # architecture parameters to change, e.g. {width: 64} (tiny)
    channels_last: bool = True  # channels-last memory format (faster convolutions on most hardware)


@dataclass
class DataSection(TupleSettings):
    """The training data (crop_scale, augment, tuples_per_video, shuffle_buffer and other_goal come from
    TupleSettings)."""

    train: str = ""  # shards: folder, .tar, brace pattern, ::-joined list, pipe:/URL
    val: str | None = None  # held-out shards for VOC / bump rate
    holdout_tasks: str = ""  # comma-separated tasks kept out of training, the only ones validated (data.val or .train)
    goal_last: bool = False  # paper variant: goal = last frame (default: the reference code's random later frame)
    batch_size: int = 32  # global batch: split evenly over all processes
    num_workers: int = 2  # data-loader worker processes per training process
    batches_per_epoch: int = 1000  # the stream is endless: an epoch is this many batches
    val_videos: int = 16  # held-out videos scored at each validation
    val_max_frames: int = 64  # evenly spaced frames per held-out video


@dataclass
class OptimSection:
    name: Literal["adam", "adamw"] = "adam"  # optimiser
    lr: float = 1e-4  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # Adam moment decay rates
    eps: float = 1e-8  # Adam denominator term
    weight_decay: float = 0.0  # L2 (adam) or decoupled (adamw) weight decay
    warmup_steps: int = 0  # linear warm-up from 0 to lr over these steps
    schedule: Literal["constant", "cosine"] = "constant"  # learning rate after warm-up
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio
    grad_clip: float | None = None  # clip the gradient norm to this (None: no clipping)


@dataclass
class TrainerSection:
    max_steps: int = 1000  # optimiser steps of the run
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int | str = "auto"  # processes (GPUs) per node, or auto
    num_nodes: int = 1  # machines in a multi-node run
    strategy: str = "auto"  # auto | ddp | ...
    precision: str = "auto"  # auto: bf16-mixed on GPU, 32-true on CPU
    compile: bool = False  # torch.compile the encoder
    sync_batchnorm: bool = False  # batch statistics over all processes (small per-GPU batches)
    seed: int = 0  # seeds the weights, the data stream and the negatives
    log_every: int = 10  # steps between logged training metrics
    val_every: int = 500  # steps between held-out VOC / bump-rate checks (data.val or data.holdout_tasks)
    checkpoint_every: int = 500  # steps between checkpoints (and encoder exports)
    keep_checkpoints: int = 3  # most recent checkpoints kept
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    loggers: str = "csv,tensorboard"  # comma-separated: csv, tensorboard, wandb
    progress: bool = True  # a redrawing bar on a terminal, else a plain line every 5% (as with false: logs, scripts)
    select: Literal["last", "best"] = "last"  # encoder/ = the last step, or the validation of highest held-out VOC


def holdout_tasks(d: DataSection) -> tuple[str, ...]:
    """data.holdout_tasks as a tuple of task names."""
    return tuple(t.strip() for t in d.holdout_tasks.split(",") if t.strip())


def validation_source(d: DataSection) -> str | None:
    """The shards validation reads: data.val, else data.train when tasks are held out of training, else none."""
    return d.val or (d.train if holdout_tasks(d) else None)


@dataclass
class PretrainConfig:
    run_dir: str = "runs/pretrain"  # where checkpoints, logs, the exported encoder and summary.json go
    resume: str | None = None  # 'last' or a checkpoint path
    overwrite: bool = False  # start over in a run_dir that holds an earlier run (it is deleted)
    plugins: list[str] = field(default_factory=list)  # modules imported first (e.g. one registering an objective)
    encoder: EncoderSection = field(default_factory=EncoderSection)
    objective: ObjectiveConfig = field(default_factory=VIPConfig)  # name + that objective's own settings
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """Defaults <- YAML preset <- command-line overrides, checked. The `objective` section is parsed by the chosen
    objective's own Config class once the plugins are imported; naming another objective on the command line than
    the preset's drops the preset's objective settings (they belong to the other objective)."""
    from reprl.typed_config import from_dict, merge_variants, parse_overrides, read_yaml

    variants = {"objective": ObjectiveConfig.name}  # a preset's or base's objective keys belong to its objective
    data = read_yaml(path, variants) if path else {}
    merged = merge_variants(data, parse_overrides(overrides or []), variants)
    section = merged.pop("objective", {})
    cfg = from_dict(PretrainConfig, merged)
    import_plugins(cfg.plugins)
    return replace(cfg, objective=objective_config(section))


def import_plugins(modules: list[str]) -> None:
    """Import the config's plugins (modules that register objectives, encoders, ...) once per process."""
    import importlib

    from reprl.errors import ReprlError

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure of a user's module is reported in one line
            raise ReprlError(f"plugins: cannot import {name!r} ({type(e).__name__}: {e}); give an importable module "
                             "(on PYTHONPATH or installed)") from None


def accelerator_available(name: str) -> bool:
    """Whether Lightning's accelerator `name` (gpu: cuda or mps) can run on this machine."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    try:
        if name == "gpu":
            return any(AcceleratorRegistry[n]["accelerator"].is_available() for n in ("cuda", "mps"))
        return bool(AcceleratorRegistry[name]["accelerator"].is_available())
    except Exception:  # noqa: BLE001 - a backend whose library is missing or broken is not available
        return False


def check_hardware(t: TrainerSection) -> None:
    """The accelerator named is on this machine: checked where a run starts (not where a config is only read or
    printed, e.g. on a login node without the GPUs)."""
    from reprl.errors import ReprlError

    if t.accelerator not in ("auto", "cpu") and not accelerator_available(t.accelerator):
        raise ReprlError(f"--trainer.accelerator {t.accelerator}: this machine has none that torch can use; choose "
                         "auto or cpu")


def device_count(devices: int | str) -> int | None:
    """The processes per node that Lightning starts for `devices` (None: decided at run time): a count, or the
    length of a list of device indices ('0,1'; '3,' is the one device 3)."""
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    return int(text) if text.isdigit() else None


def check_trainer(t: TrainerSection) -> None:
    """Hardware and seed settings Lightning would refuse only after the model is built, in one line each."""
    from typing import get_args

    from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    from reprl.errors import ReprlError

    accelerators = ["auto", "gpu", *AcceleratorRegistry]
    if t.accelerator not in accelerators:
        raise ReprlError(f"--trainer.accelerator {t.accelerator!r}: choose one of {', '.join(accelerators)}")
    if isinstance(t.devices, str) and t.devices != "auto" and not re.fullmatch(r"\s*(-1|\d+|\d+(\s*,\s*\d+)*\s*,?)\s*",
                                                                          t.devices):
        raise ReprlError(f"--trainer.devices {t.devices!r}: give a count, a comma-separated list of device indices "
                         "(0,1), -1 (all) or auto")
    if t.strategy != "auto" and t.strategy not in StrategyRegistry:
        raise ReprlError(f"--trainer.strategy {t.strategy!r}: choose auto or a Lightning strategy (ddp, fsdp, "
                         "deepspeed, ...)")
    precisions = ["auto", *get_args(_PRECISION_INPUT_STR), *get_args(_PRECISION_INPUT_STR_ALIAS)]
    if str(t.precision) not in precisions:
        raise ReprlError(f"--trainer.precision {t.precision!r}: choose one of {', '.join(precisions)}")
    if t.num_nodes < 1 or t.devices in (0, "0", ""):
        raise ReprlError(f"--trainer.num_nodes and --trainer.devices must be at least 1 (devices may be auto), got "
                         f"{t.num_nodes} and {t.devices!r}")
    if not 0 <= t.seed < 2**32:
        raise ReprlError(f"--trainer.seed must lie in [0, 2**32), got {t.seed}")


def check_config(cfg: PretrainConfig) -> None:
    """Values that parse but cannot train, refused before anything is built or written."""
    from reprl.errors import ReprlError

    import_plugins(cfg.plugins)

    positive = {"optim.lr": cfg.optim.lr, "optim.eps": cfg.optim.eps, "trainer.max_steps": cfg.trainer.max_steps,
                "data.batch_size": cfg.data.batch_size, "trainer.checkpoint_every": cfg.trainer.checkpoint_every,
                "trainer.log_every": cfg.trainer.log_every, "trainer.val_every": cfg.trainer.val_every,
                "trainer.max_bad_steps": cfg.trainer.max_bad_steps,
                "encoder.image_size": cfg.encoder.image_size, "data.batches_per_epoch": cfg.data.batches_per_epoch}
    for key, value in positive.items():
        if not value > 0:
            raise ReprlError(f"--{key} must be > 0, got {value}")
    nonneg = {"optim.weight_decay": cfg.optim.weight_decay, "optim.warmup_steps": cfg.optim.warmup_steps,
              "data.num_workers": cfg.data.num_workers}
    for key, value in nonneg.items():
        if value < 0:
            raise ReprlError(f"--{key} must be >= 0, got {value}")
    check_trainer(cfg.trainer)
    count = device_count(cfg.trainer.devices)
    if count and cfg.data.batch_size % (count * cfg.trainer.num_nodes):  # else each process would find out, late
        raise ReprlError(f"data.batch_size {cfg.data.batch_size} is the global batch and must be divisible by the "
                         f"number of processes ({count} devices x {cfg.trainer.num_nodes} nodes)")
    if cfg.encoder.embed_dim is not None and cfg.encoder.embed_dim < 1:
        raise ReprlError(f"--encoder.embed_dim must be at least 1, got {cfg.encoder.embed_dim}")
    if cfg.encoder.pretrained and not Path(cfg.encoder.pretrained).expanduser().is_file():
        raise ReprlError(f"--encoder.pretrained {cfg.encoder.pretrained}: no such file; give a local weights file")
    if cfg.data.val_videos < 1 or cfg.data.val_max_frames < 2:
        raise ReprlError(f"--data.val_videos must be at least 1 and --data.val_max_frames at least 2 (a value order "
                         f"needs two frames), got {cfg.data.val_videos} and {cfg.data.val_max_frames}")
    if not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise ReprlError(f"--optim.betas must lie in [0, 1), got {list(cfg.optim.betas)}")
    cls = objective_class(cfg.objective.name)
    if type(cfg.objective) is not cls.Config:
        raise ReprlError(f"objective: the {cfg.objective.name} objective's settings are a {cls.Config.__name__}, got "
                         f"a {type(cfg.objective).__name__} (build them with objective_config)")
    mode = data_mode(cfg.objective, cfg.data.goal_last)  # an objective without a goal_last variant refuses it here
    cfg.data.check_tuple_settings(lambda name: f"--data.{name}", mode)  # crops, shares: before anything is built
    if cfg.encoder.init and cfg.encoder.params:
        raise ReprlError("--encoder.params sets a new encoder's architecture, and --encoder.init loads one with its "
                         "own: give one of them")
    if not cfg.encoder.init:
        from reprl.encoders.registry import make_config

        make_config(cfg.encoder.name, params=cfg.encoder.params)  # the name and parameters, before any build
    if cfg.trainer.select == "best":
        if not validation_source(cfg.data):
            raise ReprlError("--trainer.select best picks the weights by held-out VOC, and this run validates on "
                             "nothing: give --data.val (held-out shards) or --data.holdout_tasks (tasks kept out of "
                             "training), or use --trainer.select last")
        if cfg.trainer.val_every > cfg.trainer.max_steps:
            raise ReprlError(f"--trainer.select best needs a validation, and --trainer.val_every "
                             f"{cfg.trainer.val_every} is past --trainer.max_steps {cfg.trainer.max_steps}: lower "
                             "val_every")
    if cfg.resume and cfg.overwrite:
        raise ReprlError("--resume continues a run and --overwrite deletes it: give one of them")
