"""`reprl pretrain` configuration: typed dataclasses (the source of truth) that YAML presets in
configs/pretrain/ mirror. No Lightning here, so configs can be read and checked cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reprl.objectives.modules import ObjectiveConfig, check_objective_settings


@dataclass
class EncoderSection:
    name: str = "resnet50"  # registered encoder (reprl list)
    embed_dim: int | None = None  # None: the registered default
    image_size: int = 224
    similarity: Literal["l2", "cosine"] | None = None  # None: l2 for VIP/R3M, cosine for LIV
    init: str | None = None  # start from any reprl.load source (exported folder, reference checkpoint, ...)
    pretrained: str | None = None  # local backbone weights (torchvision / CLIP checkpoint file)
    channels_last: bool = True


@dataclass
class DataSection:
    train: str = ""  # shards: folder, .tar, brace pattern, ::-joined list, pipe:/URL
    val: str | None = None  # held-out shards for VOC / bump rate
    goal_last: bool = False  # paper variant: goal = last frame (default: the reference code's random later frame)
    batch_size: int = 32  # global batch: split evenly over all processes
    crop_scale: tuple[float, float] = (0.2, 1.0)
    augment: bool = True
    tuples_per_video: int = 1
    shuffle_buffer: int = 128
    num_workers: int = 2
    batches_per_epoch: int = 1000
    val_videos: int = 16
    val_max_frames: int = 64


@dataclass
class OptimSection:
    name: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio
    grad_clip: float | None = None


@dataclass
class TrainerSection:
    max_steps: int = 1000
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ...
    precision: str = "auto"  # auto: bf16-mixed on GPU, 32-true on CPU
    compile: bool = False  # torch.compile the encoder
    sync_batchnorm: bool = False  # batch statistics over all processes (small per-GPU batches)
    seed: int = 0
    log_every: int = 10
    val_every: int = 500  # steps between held-out VOC / bump-rate checks (needs data.val)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    loggers: str = "csv,tensorboard"  # comma-separated: csv, tensorboard, wandb
    progress: bool = True  # a redrawing progress bar; false: a plain line every 5% of the run (logs, scripts)


@dataclass
class PretrainConfig:
    run_dir: str = "runs/pretrain"
    resume: str | None = None  # 'last' or a checkpoint path
    overwrite: bool = False  # start over in a run_dir that holds an earlier run (it is deleted)
    encoder: EncoderSection = field(default_factory=EncoderSection)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)


def check_config(cfg: PretrainConfig) -> None:
    """Values that parse but cannot train, refused before anything is built or written."""
    from reprl.errors import ReprlError

    positive = {"optim.lr": cfg.optim.lr, "optim.eps": cfg.optim.eps, "trainer.max_steps": cfg.trainer.max_steps,
                "data.batch_size": cfg.data.batch_size, "trainer.checkpoint_every": cfg.trainer.checkpoint_every,
                "trainer.log_every": cfg.trainer.log_every, "trainer.max_bad_steps": cfg.trainer.max_bad_steps,
                "encoder.image_size": cfg.encoder.image_size, "data.batches_per_epoch": cfg.data.batches_per_epoch}
    for key, value in positive.items():
        if not value > 0:
            raise ReprlError(f"--{key} must be > 0, got {value}")
    nonneg = {"optim.weight_decay": cfg.optim.weight_decay, "optim.warmup_steps": cfg.optim.warmup_steps,
              "data.num_workers": cfg.data.num_workers}
    for key, value in nonneg.items():
        if value < 0:
            raise ReprlError(f"--{key} must be >= 0, got {value}")
    if not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise ReprlError(f"--optim.betas must lie in [0, 1), got {list(cfg.optim.betas)}")
    check_objective_settings(cfg.objective)
    if cfg.resume and cfg.overwrite:
        raise ReprlError("--resume continues a run and --overwrite deletes it: give one of them")
