"""The settings of every command (`shards`, `render`, `embed`, `eval`, `score`, `heads train`, `stream`, `bench`),
each one dataclass, the training-tuple settings they share with pretraining (TupleSettings), and the two helpers
that turn a dataclass into command-line options and back. A field's type, default and one-line doc (the comment that
ends its line) are written once, here; `--help` and the library calls both read them from the class.

This module imports nothing heavy: the command-line parser is built from it at `reprl --help` time.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from reprl.errors import ReprlError
from reprl.typed_config import field_default, field_docs, fields_own_first, from_dict

C = TypeVar("C")


@dataclass
class ShardOptions:
    """How videos become shards."""

    resize: int = 256  # shorter side in pixels; 0 keeps the original size
    fps: float | None = None  # subsample to at most this frame rate (needs the source fps)
    every: int = 1  # keep every N-th frame (applied after fps subsampling)
    clip_frames: int | None = None  # split videos into clip samples of N (written) frames
    clip_seconds: float | None = None  # split videos into clip samples of S seconds of source time
    cameras: str | None = None  # LeRobot datasets: comma-separated cameras to write (e.g. top,wrist); default all
    quality: int = 90  # JPEG quality, 1-100
    max_shard_mb: float = 256.0  # start a new shard past this size
    max_videos_per_shard: int = 1000  # start a new shard past this many videos
    workers: int = 1  # decode/encode processes
    min_frames: int = 3  # skip shorter videos (VIP samples need 3 frames)
    require_caption: bool = False  # skip videos without a caption
    strict: bool = False  # stop at the first bad video instead of skipping it
    overwrite: bool = False  # replace an earlier output of reprl shards in --out
    force_overwrite: bool = False  # replace --out even when it is not an output of reprl shards (it is deleted)


@dataclass
class CorpusConfig:
    """What to render. Episode e of task i uses seed (seed, i, e); the first round(noisy_fraction * episodes)
    episodes of every task get Gaussian action noise of std `noise`, the next round(random_fraction *
    episodes) act uniformly at random, the next round(early_fraction * episodes) are the expert stopped after
    `early_stop_steps` steps, and the rest are clean expert runs (only those are marked expert)."""

    tasks: str = "pretrain"  # comma-separated task names and/or groups: eval, pretrain, all
    episodes: int = 4  # episodes per task
    cameras: str = "corner"  # comma-separated: corner, corner2, corner3, corner4, topview, behindGripper, gripperPOV
    size: int = 128  # frame width and height in pixels
    noise: float = 0.0  # std of the Gaussian action noise of noisy episodes
    noisy_fraction: float = 0.0  # share of each task's episodes that are noisy
    random_fraction: float = 0.0  # share of each task's episodes with uniformly random actions (after the noisy)
    early_fraction: float = 0.0  # share of each task's episodes where the expert stops after early_stop_steps
    early_stop_steps: int = 30  # length of early-stopped episodes
    max_steps: int = 500  # episode horizon
    stop_after_success: int | None = 10  # steps kept after the first success; None (-1 on the CLI): full horizon
    frame_every: int = 1  # render every N-th step
    seed: int = 0  # base seed of every episode
    workers: int = 1  # rendering processes
    quality: int = 90  # JPEG quality, 1-100
    max_videos_per_shard: int = 16  # start a new shard past this many videos
    overwrite: bool = False  # replace an earlier output of reprl render in --out

    def camera_list(self) -> list[str]:
        from reprl.sim.tasks import check_camera

        return [check_camera(c.strip()) for c in self.cameras.split(",") if c.strip()]


@dataclass
class EmbedOptions:
    """What `reprl embed` embeds, against which goal, and where it writes."""

    input: str  # video file, frame folder, image glob, or shards
    encoder: str  # exported encoder folder, checkpoint, registered name, hf://
    out: str  # output folder
    goal_image: str | None = None  # goal image file
    goal_frame: str | None = None  # 'last' (default) or a frame index; negative counts from the end
    goal_text: str | None = None  # text goal (needs an encoder with a text tower)
    goal_caption: bool = False  # shards: use each video's caption as its goal
    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto
    batch_size: int = 64  # frames per encoder call
    precision: str = "32"  # 32, bf16 or 16 (16 on CUDA only); bf16-mixed / 16-mixed are the same
    parquet: bool = False  # also write the tables as parquet (needs pyarrow)
    overwrite: bool = False  # replace an earlier output of reprl embed in --out
    force_overwrite: bool = False  # replace --out even when it is not an output of reprl embed (it is deleted)
    max_videos: int | None = None  # shards: stop after this many videos
    plots: int = 8  # shards: full figures for the first N videos (plots/KEY.png)
    progress: bool = True  # progress bars on stderr


BENCH_TASKS = "reach,drawer-close,door-open,window-open,button-press,faucet-open,lever-pull,plate-slide"


@dataclass
class DataBenchConfig:
    """`reprl bench data`: training tuples/s from shards vs per-frame JPEG files."""

    shards: str | None = None  # shard folder (default: render a MetaWorld corpus once into cache)
    cache: str = "runs/bench"  # where the rendered corpus and frame folders go
    frame_size: int = 256  # shorter side of the rendered shard frames
    image_size: int = 224  # crop size of the training tuples
    batch_size: int = 32  # tuples per batch
    mode: str = "vip"  # vip, liv or r3m tuples
    tuples_per_video: int = 1  # tuples sampled per video read
    workers: tuple[int, ...] = (1, 2)  # worker counts to measure, e.g. 1,2 (0 = none)
    batches: int = 20  # batches timed per repeat (after one warm-up batch)
    repeats: int = 3  # repeats; figures are medians
    render_tasks: str = BENCH_TASKS  # comma-separated tasks of the rendered corpus
    render_episodes: int = 2  # episodes per task of the rendered corpus
    frame_index: tuple[int, ...] = ()  # clip lengths, e.g. 40,400: only compare reading with / without the frame index
    ingest: tuple[int, ...] = ()  # video lengths, e.g. 300,3000: only measure reprl shards on synthetic 640x480 videos


@dataclass
class TrainBenchConfig:
    """`reprl bench train`: the real training loop vs a synthetic in-memory batch."""

    config: str | None = None  # a pretrain preset: its encoder, objective, data and optim sections run
    shards: str | None = None  # training shards (default: the preset's data.train, or tests/data/metaworld/train)
    encoder: str = "resnet18"  # registered encoder name (random init), without --config
    image_size: int = 64  # crop size, without --config
    embed_dim: int | None = 128  # projection size, without --config
    objective: str = "vip"  # vip, liv or r3m, without --config
    batch_size: int = 32  # tuples per batch, without --config
    num_workers: int = 1  # data-loader worker processes, without --config
    steps: int = 30  # timed steps per run, after warmup
    warmup: int = 5  # untimed steps at the start of each run
    repeats: int = 3  # runs of each loop; figures are medians
    accelerator: str = "auto"  # auto, cpu or cuda (Lightning accelerator)
    precision: str = "auto"  # auto (bf16-mixed on GPU, 32 on CPU), 32, bf16-mixed, ...


@dataclass
class EmbedBenchConfig:
    """`reprl bench embed`: images/s of reprl embed vs the encoder's forward-only rate."""

    encoder: str = "resnet18"  # any reprl.load source (registered names: random init)
    image_size: int | None = None  # for registered names
    video: str | None = None  # video to embed (default: render one MetaWorld episode at frame_size into cache)
    frame_size: int = 256  # frame size of the rendered video
    cache: str = "runs/bench"  # where the rendered video goes
    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto
    batch_size: int = 32  # frames per encoder call
    precision: str = "32"  # 32, bf16 or 16 (16 on CUDA only); bf16-mixed / 16-mixed are the same
    repeats: int = 3  # repeats; figures are medians
    max_frames: int = 300  # frames of the rendered video


@dataclass
class EvalBenchConfig:
    """`reprl bench eval`: rollout steps/s of the harness vs the same envs alone, and the study's rollout hours."""

    task: str = "hammer"  # MetaWorld task
    camera: str = "corner"  # camera of the rendered frames
    frame_size: int = 128  # rendered frame size
    encoder: str = "resnet18"  # any reprl.load source (registered names: random init)
    image_size: int | None = 64  # for registered names
    envs: int = 10  # environments stepped in lockstep (parallel_envs of the suites)
    workers: int | None = None  # environment processes (default: one per core; 0: in this process)
    horizon: int = 50  # steps per timed rollout
    repeats: int = 3  # repeats; figures are medians
    serial: bool = True  # also time the single-process path
    precision: str = "32"  # the encoder's forward in rollouts: 32 or bf16 (a suite's `precision`)
    compile: bool = False  # the encoder compiled for inference (a suite's `compile`); the warm-up compiles


@dataclass
class EvalOptions:
    """`reprl eval`: which suite, which encoders, and where results and caches go."""

    suite: str  # suite spec (eval/suites/*.yaml)
    encoder: list[str]  # [LABEL=]SOURCE; repeat to compare
    out: str = "eval/results"  # results root
    cache: str = "eval/cache"  # rendered data and embedding cache
    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto
    rerun: bool = False  # recompute finished cells


@dataclass
class ScoreOptions:
    """`reprl score`: which encoders on which held-out shards, how many samples, and where the report goes."""

    shards: str  # held-out shards (folder, .tar, pattern)
    encoder: list[str]  # [LABEL=]SOURCE; repeat to compare
    videos: int = 1000  # at most this many videos
    max_frames: int = 64  # frames per video, evenly spaced
    near: float = 0.9  # near-miss frame: this share of the way to the first success
    boot: int = 1000  # bootstrap resamples
    seed: int = 0  # seed of random: baselines and of the bootstrap
    title: str | None = None  # report title (default: the shards' folder name)
    report: str | None = None  # write results.json, table.md, metrics.png, curves.png here (other files are kept)
    cache: str | None = None  # keep each encoder's scores here (keyed by its weights and these settings) and reuse them
    json: str | None = None  # also write the scores to this JSON file (new, or an earlier one of reprl score)
    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto


@dataclass
class HeadsTrainOptions:
    """`reprl heads train`: one head on your own episodes, saved as a policy folder."""

    demos: str  # shards with actions, or an episodes .npz
    encoder: str  # frozen encoder: any reprl.load source
    out: str  # policy folder to write
    head: str = "bc"  # bc | rwr | rwr_chi2 | awr | iql | fdvl | recoil | trail
    steps: int | None = None  # training steps (default: HeadConfig's, 20000)
    batch_size: int | None = None  # batch size (default: HeadConfig's, 32)
    settings: list[str] = field(default_factory=list)  # a head setting KEY=VALUE, e.g. temperature=10 (repeat)
    no_proprio: bool = False  # ignore proprioception
    seed: int = 0  # training seed
    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto
    overwrite: bool = False  # replace an earlier policy folder of reprl heads train in --out
    no_encoder_copy: bool = False  # record the encoder source instead of copying the encoder into the policy folder


@dataclass
class TupleSettings:
    """How training tuples are cut from videos and mixed: written once here, read by pretraining's `data`
    section, the stream itself (reprl.data.stream.StreamConfig) and `reprl stream`."""

    crop_scale: tuple[float, float] = (0.2, 1.0)  # random resized crop: area range as fractions of the frame
    augment: bool = True  # random resized crop shared by a tuple's frames (else resize + center crop)
    tuples_per_video: int = 1  # training tuples drawn from each video read
    shuffle_buffer: int = 128  # tuples held for shuffling before batching
    other_goal: float = 0.0  # share of VIP/LIV tuples whose goal is another video's last frame (same task and camera)

    def check_tuple_settings(self, name: Callable[[str], str], mode: str) -> None:
        """Refuse impossible tuple settings for tuples drawn in `mode`; `name` spells a field as the user wrote it
        (data.crop_scale in a pretraining config, --crop-scale on the command line)."""
        from reprl.data.sampling import MODES, other_goal_mode
        if self.tuples_per_video < 1:
            raise ReprlError(f"{name('tuples_per_video')} must be at least 1, got {self.tuples_per_video}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ReprlError(f"{name('crop_scale')} must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0 <= self.other_goal <= 1:
            raise ReprlError(f"{name('other_goal')} is a share of the tuples: give a value from 0 to 1, "
                             f"got {self.other_goal}")
        if self.other_goal > 0 and mode in MODES and other_goal_mode(mode) is None:
            raise ReprlError(f"{name('other_goal')} needs tuples with a goal frame that runs to the video's end "
                             f"(modes vip, liv and their _last forms), and these are {mode!r} tuples: set "
                             f"{name('other_goal')} to 0")


def tuple_settings(obj: TupleSettings) -> dict[str, Any]:
    """The TupleSettings fields of `obj` (any subclass) as keyword arguments for another subclass."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(TupleSettings)}


@dataclass
class StreamOptions(TupleSettings):
    """`reprl stream`: draw a few training batches from shards, as pretraining would."""

    shards: str = field(kw_only=True)  # shard folder, .tar path, brace pattern or URL
    mode: str = "vip"  # vip | vip_last | liv | liv_last | r3m
    batches: int = 3  # batches to draw
    batch_size: int = 8  # tuples per batch
    image_size: int = 224  # crop size in pixels
    shuffle_buffer: int = 32  # tuples held for shuffling before batching (a quick look needs few)
    workers: int = 0  # data-loader worker processes
    seed: int = 0  # seed of the sampling and the crops
    grid: str | None = None  # save a PNG of the first batch here (new, or replacing an earlier one of reprl stream)

    def __post_init__(self) -> None:
        self.check_tuple_settings(lambda name: "--" + name.replace("_", "-"), self.mode)


def _base_type(tp: Any) -> Any:
    """int for `int | None`, the type itself otherwise."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def add_options(p: argparse.ArgumentParser, cls: type, *, positional: Iterable[str] = (),
                flags: dict[str, str] | None = None, converters: dict[str, Callable[[str], Any]] | None = None,
                skip: Iterable[str] = (), metavars: dict[str, Any] | None = None) -> None:
    """One command-line option per field of the dataclass `cls`, named --field-name (or flags[field]), with the
    field's type (or converters[field]), default and one-line doc. A bool field that defaults to False is a
    switch; one that defaults to True is switched off by --no-field-name. A list field is a repeatable option.
    Fields without a default are required (positional when named in `positional`). The option's dest is always
    the field's name (see `from_args`)."""
    hints, docs = get_type_hints(cls), field_docs(cls)
    flags, converters, positional, skip = flags or {}, converters or {}, set(positional), set(skip)
    metavars = metavars or {}
    for f in fields_own_first(cls):
        if f.name in skip:
            continue
        doc = docs.get(f.name, "")
        if f.name in positional:
            p.add_argument(f.name, help=doc)
            continue
        default = field_default(f)
        required = default is dataclasses.MISSING
        tp = _base_type(hints[f.name])
        flag = "--" + flags.get(f.name, f.name).replace("_", "-")
        if get_origin(tp) is list:  # a repeatable option: --flag A --flag B
            item = (get_args(tp) or (str,))[0]
            p.add_argument(flag, dest=f.name, action="append", type=converters.get(f.name, item), required=required,
                           default=None if required else default, help=doc or None,
                           metavar=metavars.get(f.name))
            continue
        items = get_args(tp)
        if get_origin(tp) is tuple and f.name not in converters and Ellipsis not in items:  # --flag A B
            p.add_argument(flag, dest=f.name, nargs=len(items), type=converters.get(f.name, items[0]),
                           required=required, default=None if required else default, help=doc or None,
                           metavar=metavars.get(f.name))
            continue
        if tp is bool and not required:
            if default:
                p.add_argument("--no-" + flags.get(f.name, f.name).replace("_", "-"), dest=f.name,
                               action="store_false", help=f"off: {doc} (on by default)")
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=doc or None)
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "type": converters.get(f.name, tp), "help": doc or None,
                                  "metavar": metavars.get(f.name)}
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        p.add_argument(flag, **kwargs)


def from_args(cls: type[C], args: argparse.Namespace, **values: Any) -> C:
    """The dataclass `cls` from parsed options (see `add_options`); `values` set or override fields. argparse only
    splits the command line into fields; the values are checked and converted by `typed_config.from_dict`, the
    same path as YAML presets, suites and `--section.key` overrides."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass type
    given = {**{k: v for k, v in vars(args).items() if k in names}, **values}
    cfg = from_dict(cls, given)
    # A flag's text stays text: the parser reads `null` / `~` as None for an optional string (right in a YAML
    # file), but `--goal-text null` means the words.
    kept = {k: v for k, v in given.items() if isinstance(v, str) and getattr(cfg, k) is None}
    return dataclasses.replace(cfg, **kept) if kept else cfg  # type: ignore[type-var]  # cfg is a dataclass
