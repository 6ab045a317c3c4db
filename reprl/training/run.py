"""`reprl pretrain`: assemble encoder, objective, data and Lightning Trainer from a PretrainConfig and run.

Run folder layout:
    config.yaml                 the resolved configuration
    checkpoints/step-*.ckpt     Lightning checkpoints (last K kept) + last.ckpt, for resuming
    encoders/step-*/            the encoder exported at each checkpoint (last K kept; config.json + model.safetensors)
    encoder/                    the final encoder: what `reprl.load` and `reprl embed` take (the last step's, or
                                with trainer.select best the copy of best/)
    best/                       with trainer.select best: the encoder of the highest held-out VOC so far, and
                                selection.json (its step and scores)
    logs/, tb/                  CSV and TensorBoard logs
    summary.json                steps, skipped steps, held-out VOC / bump rate vs random init, and the machine
                                (CPU, threads, library versions: the same seed can train differently elsewhere)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from reprl.encoders.base import Encoder
from reprl.encoders.io import load_encoder, save_encoder
from reprl.encoders.registry import build_encoder
from reprl.errors import ReprlError
from reprl.objectives.registry import objective_class
from reprl.training.config import PretrainConfig, check_config, check_hardware, holdout_tasks, validation_source
from reprl.typed_config import dump_yaml
from reprl.utils.files import MARKER, carry_others, check_writable, output_command, write_json
from reprl.utils.machine import machine_info


def build_training_encoder(cfg: PretrainConfig, seed: int | None = None) -> Encoder:
    """The encoder to train: from `encoder.init` (fine-tuning) or a registered name at random init."""
    e = cfg.encoder
    if seed is not None:
        torch.manual_seed(seed)
    if e.init:
        encoder = load_encoder(e.init, freeze=False)
        encoder.config.source = f"fine-tuned from {e.init}"
    else:
        similarity = e.similarity or objective_class(cfg.objective.name).similarity
        gamma = {"gamma": cfg.objective.gamma} if hasattr(cfg.objective, "gamma") else {}  # the value's discount
        encoder = build_encoder(e.name, pretrained=e.pretrained, embed_dim=e.embed_dim, image_size=e.image_size,
                                similarity=similarity, params=e.params, **gamma)
        encoder.config.source = "reprl pretrain"
    encoder.train().requires_grad_(True)
    for p in encoder.fixed_parameters():
        p.requires_grad_(False)
    if not objective_class(cfg.objective.name).trains_text(cfg.objective):
        for p in encoder.text_parameters():
            p.requires_grad_(False)  # unused by this objective: frozen, so DDP has nothing to wait for
    return encoder.set_channels_last(e.channels_last and torch.cuda.is_available())


def resolve_resume(cfg: PretrainConfig) -> str | None:
    """The checkpoint to resume from, checked to exist and to be whole (a torn copy is not a zip archive)."""
    import zipfile

    if not cfg.resume:
        return None
    path = Path(cfg.run_dir) / "checkpoints" / "last.ckpt" if cfg.resume == "last" else Path(cfg.resume)
    if not path.exists():
        raise ReprlError(f"cannot resume: {path} does not exist" + (" (no checkpoint has been written in "
                         f"{cfg.run_dir} yet)" if cfg.resume == "last" else ""))
    intact = f"pass an intact one, e.g. another {Path(cfg.run_dir) / 'checkpoints'}/step-*.ckpt"
    if not zipfile.is_zipfile(path):
        raise ReprlError(f"cannot resume from {path}: it is torn or not a training checkpoint (an interrupted copy?); "
                         f"{intact}")
    ckpt = _resume_state(path, intact)
    if not isinstance(ckpt.get("state_dict"), dict) or "pytorch-lightning_version" not in ckpt:
        raise ReprlError(f"cannot resume from {path}: it is not a reprl pretrain checkpoint (no training state in "
                         f"it); {intact}")
    return str(path)


def _resume_state(path: Path | str, intact: str) -> dict[str, Any]:
    """A training checkpoint's contents, read with the safe loader (memory-mapped: no copy of the weights)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for files that are not its checkpoints
        raise ReprlError(f"cannot resume from {path}: not a readable training checkpoint "
                         f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); {intact}") from None
    if not isinstance(ckpt, dict):
        raise ReprlError(f"cannot resume from {path}: not a training checkpoint; {intact}")
    return ckpt


def check_resume_fits(module: torch.nn.Module, path: str) -> None:
    """The checkpoint's weights have the names and shapes of the model this config builds (another encoder size
    or objective would fail inside Lightning with a long trace)."""
    state = _resume_state(path, "resume from a checkpoint of this configuration")["state_dict"]
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    unexpected = [k for k in state if k not in own]
    if missing or shapes or unexpected:
        detail = "; ".join(x for x in (f"shapes differ: {', '.join(shapes[:3])}" if shapes else "",
                                      f"missing: {', '.join(missing[:3])}" if missing else "",
                                      f"not in this model: {', '.join(unexpected[:3])}" if unexpected else "") if x)
        raise ReprlError(f"cannot resume from {path}: it was trained with other settings ({detail}); resume with the "
                         "run's own config.yaml (--config RUN/config.yaml --resume last)")


def check_inputs(cfg: PretrainConfig) -> None:
    """Everything the run reads, checked before anything is built or written."""
    from reprl.data.reader import expand_urls
    from reprl.encoders.io import check_source

    check_config(cfg)
    check_hardware(cfg.trainer)
    if not cfg.data.train:
        raise ReprlError("data.train is empty: point it at training shards (a folder written by reprl shards / render)")
    expand_urls(cfg.data.train)
    if cfg.data.val:
        expand_urls(cfg.data.val)
    if cfg.encoder.init:
        check_source(cfg.encoder.init)


def read_paths(cfg: PretrainConfig) -> list[tuple[str, str]]:
    """The local files and folders a run reads (setting, path): what --overwrite must not delete."""
    from reprl.data.reader import expand_urls
    from reprl.encoders.io import source_paths

    found = []
    for what, spec in (("data.train", cfg.data.train), ("data.val", cfg.data.val)):
        if spec:
            found += [(what, u) for u in expand_urls(spec) if "://" not in u and Path(u).exists()]
    if cfg.encoder.init:
        found += [("encoder.init", str(p)) for p in source_paths(cfg.encoder.init)]
    if cfg.encoder.pretrained:
        found.append(("encoder.pretrained", str(cfg.encoder.pretrained)))
    return found


def launched_as_rank_zero() -> bool:
    """Whether this process is the global rank 0 of its launch (torchrun, SLURM, Lightning's own launcher, a
    plain single process), from the environment, before any Trainer exists."""
    import os

    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    return all(os.environ.get(k, "0") == "0" for k in ("NODE_RANK", "GROUP_RANK", "LOCAL_RANK", "SLURM_PROCID"))


# what pretrain writes at the top of a run_dir; anything else there is the user's and outlives --overwrite true
RUN_DIR_OWN = frozenset({MARKER, "config.yaml", "checkpoints", "encoder", "encoders", "best", "logs", "tb", "wandb",
                         "summary.json", "hpc_ckpt_*.ckpt"})  # Lightning's own under SLURM: never carried over


def prepare_run_dir(cfg: PretrainConfig) -> tuple[bool, Path | None]:
    """Make run_dir (marked as pretrain's); returns whether this run created it, and where the run it replaces
    was moved (None: none). A run_dir holding anything is only reused by --resume, or started over by
    --overwrite when it is pretrain's own: the old run is then moved aside, beside run_dir, and deleted only once
    the new run has finished (finish_replacing), so a run that fails or is stopped loses nothing."""
    run_dir = Path(cfg.run_dir)
    replaced: Path | None = None
    if run_dir.exists() and not run_dir.is_dir():
        raise ReprlError(f"run_dir {run_dir} is a file, not a folder; choose another --run_dir")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if output_command(run_dir) != "pretrain":  # neither resumed into nor deleted: it is not a run of ours
            raise ReprlError(f"run_dir {run_dir} holds files that are not a reprl pretrain run (no {MARKER}), so this "
                             "run neither writes into it nor deletes it; choose another --run_dir")
        if not cfg.resume:
            if not cfg.overwrite:
                raise ReprlError(f"run_dir {run_dir} already holds a run; pass --resume last to continue it, "
                                 "--overwrite true to start over (it is deleted once the new run finishes), or "
                                 "choose another --run_dir")
            for what, path in read_paths(cfg):
                if Path(path).resolve().is_relative_to(run_dir.resolve()):
                    raise ReprlError(f"--overwrite true would delete {path}, which this run reads ({what}); copy it "
                                     "out of the run folder first, or choose another --run_dir")
            if run_dir.is_symlink() or os.path.ismount(run_dir):
                raise ReprlError(f"run_dir {run_dir} is a symbolic link or a mount point, which --overwrite true "
                                 "cannot move aside; delete the old run in it yourself, or choose another --run_dir")
            replaced = run_dir.parent / f".{run_dir.name}.replaced-{os.getpid()}"
            try:
                os.replace(run_dir, replaced)
            except OSError as e:
                raise ReprlError(f"cannot move the old run {run_dir} aside to replace it: {e.strerror or e}; delete "
                                 "it yourself or choose another --run_dir") from None
    created = not run_dir.exists()
    check_writable(run_dir, "--run_dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / MARKER, {"command": "pretrain"})
    except OSError as e:
        if replaced is not None:
            os.replace(replaced, run_dir)
        raise ReprlError(f"cannot write run_dir {run_dir}: {e.strerror or e}; choose a --run_dir in a folder you "
                         "can write to") from None
    return created, replaced


def finish_replacing(run_dir: Path, replaced: Path | None, ok: bool) -> None:
    """After a run that replaced `replaced` (--overwrite true): when it finished (ok), carry the user's own
    files of the old run into run_dir and delete the rest of the old run; when it failed or was stopped, put the
    old run back if the new one left nothing (no run folder), else keep it beside run_dir and say where."""
    if replaced is None or not replaced.exists():
        return
    if ok:
        try:
            carry_others(replaced, run_dir, RUN_DIR_OWN, move=True)
            shutil.rmtree(replaced)
        except OSError as e:
            print(f"pretrain: finished, but the run it replaced could not be cleared from {replaced} "
                  f"({e.strerror or e}): move your files from it and delete it", file=sys.stderr, flush=True)
    elif not run_dir.exists():
        os.replace(replaced, run_dir)
        print(f"pretrain: the run it was to replace is back in {run_dir}, unchanged", file=sys.stderr, flush=True)
    else:
        print(f"pretrain: the run it was to replace is kept in {replaced}: move it back over {run_dir} to keep "
              "it, or delete it", file=sys.stderr, flush=True)


def kept_checkpoint(run_dir: Path) -> str:
    """What a stopped run leaves to resume from, checked: last.ckpt must hold finite weights."""
    from reprl.encoders.io import nonfinite

    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return "No checkpoint was written."
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    if nonfinite(ckpt.get("state_dict", {})):
        return f"{last} holds non-finite weights: do not resume from it; start over with a lower learning rate."
    return f"The last good checkpoint is {last} (step {ckpt.get('global_step')}, finite weights)."


def heldout_scores(encoders: dict[str, Encoder], shards: str, image_size: int, max_videos: int = 32,
                   max_frames: int = 64, tasks: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """Mean VOC and bump rate (goal = last frame) of each encoder on the same held-out videos (of `tasks` only,
    when given)."""
    from reprl.data.datamodule import HeldoutVideos
    from reprl.rewards import video_metrics

    videos = HeldoutVideos(shards, image_size, max_videos, max_frames, tasks)
    out = {}
    for name, enc in encoders.items():
        enc.eval()
        with torch.inference_mode():
            scores = [video_metrics(enc(videos[i]["frames"]), enc.similarity) for i in range(len(videos))]
        out[name] = {k: sum(s[k] for s in scores) / len(scores) for k in ("voc", "bump_rate")}
        out[name]["videos"] = len(scores)
    return out


def lightning_precision(precision: str, accelerator: str) -> str:
    """Lightning's precision for a trainer: 'auto' is bf16-mixed when the run lands on a GPU, 32-true otherwise."""
    if precision != "auto":
        return precision
    gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if gpu else "32-true"


def trainer_settings(cfg: PretrainConfig) -> dict[str, Any]:
    """The Trainer arguments that decide how `cfg` trains: hardware, precision, steps, gradient clipping, batch-norm
    sync. `reprl pretrain` adds checkpoints, loggers and validation; `reprl bench train` its timer. Both build
    their Trainer from these, so the benchmark trains the way a run does."""
    t = cfg.trainer
    return {"accelerator": t.accelerator, "devices": t.devices, "num_nodes": t.num_nodes, "strategy": t.strategy,
            "precision": lightning_precision(t.precision, t.accelerator), "max_steps": t.max_steps,
            "gradient_clip_val": cfg.optim.grad_clip, "sync_batchnorm": t.sync_batchnorm,
            "num_sanity_val_steps": 0, "enable_model_summary": False}


def training_module(cfg: PretrainConfig) -> Any:
    """Seed, build the encoder and the PretrainModule of `cfg`, and compile the encoder when the config asks
    (shared by `reprl pretrain` and `reprl bench train`)."""
    import lightning as L

    from reprl.training.module import PretrainModule

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    encoder = build_training_encoder(cfg, cfg.trainer.seed)
    module = PretrainModule(cfg, encoder)
    if cfg.trainer.compile:
        encoder.compile_encode()
    return module


def _trainer(cfg: PretrainConfig, run_dir: Path) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    from reprl.training.callbacks import AtomicCheckpointIO, ExportEncoder, FiniteCheckpoint, KeepBest, make_loggers
    from reprl.training.progress import TextProgress

    t = cfg.trainer
    checkpoint = FiniteCheckpoint(dirpath=run_dir / "checkpoints", filename="step-{step:07d}",
                                 auto_insert_metric_name=False, every_n_train_steps=t.checkpoint_every,
                                 save_top_k=-1, save_last=True)
    callbacks = [checkpoint, ExportEncoder(run_dir / "encoders", t.keep_checkpoints, run_dir / "checkpoints")]
    # The bar only on a terminal: redirected to a log (nohup, scripts) it writes nothing there for the whole run,
    # so there, as with progress false, a plain line every 5% instead.
    bar = t.progress and sys.stderr.isatty()
    if not bar:
        callbacks.append(TextProgress())
    if t.select == "best":
        callbacks.append(KeepBest(run_dir / "best"))
    loggers = make_loggers(t.loggers, run_dir)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    has_val = bool(validation_source(cfg.data))
    return L.Trainer(
        **trainer_settings(cfg), log_every_n_steps=t.log_every, callbacks=callbacks,
        logger=loggers or False, plugins=[AtomicCheckpointIO()], enable_progress_bar=bar,
        default_root_dir=str(run_dir), limit_val_batches=1.0 if has_val else 0,
        val_check_interval=t.val_every if has_val else None, check_val_every_n_epoch=None,
    )


def quiet_lightning() -> None:
    """Keep Lightning's own chatter (tips, device banners) and warnings that do not apply here out of the
    way: our stream splits work per worker itself, the pytree deprecation is Lightning-internal, and the
    module's own batch transfer (non-blocking ClipBatch copies) is meant to win over the datamodule's."""
    import logging
    import warnings

    import lightning.pytorch  # noqa: F401 - importing Lightning sets its loggers to INFO: lower them after that

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device` in `LightningModule`.*")


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Train; returns a summary (also written to run_dir/summary.json). Inputs are checked before anything is
    written, and a run that fails before its first checkpoint leaves no run folder behind."""
    quiet_lightning()
    check_inputs(cfg)
    run_dir = Path(cfg.run_dir)
    resume = resolve_resume(cfg)
    replaced: Path | None = None
    created = False
    try:
        if launched_as_rank_zero():  # the other processes of a DDP run use the folder rank 0 makes
            created, replaced = prepare_run_dir(cfg)
            dump_yaml(cfg, run_dir / "config.yaml")
        result = _fit(cfg, run_dir, resume)
    except BaseException:
        if created and not any((run_dir / "checkpoints").glob("*.ckpt")):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume from: leave no stub behind
        finish_replacing(run_dir, replaced, ok=False)
        raise
    finish_replacing(run_dir, replaced, ok=True)
    return result


def data_module(cfg: PretrainConfig, encoder: Encoder) -> Any:
    """The training data of a config: the objective's sampling mode and every data setting (reprl pretrain and
    reprl bench train's real loop build it here, so the benchmark runs what training runs)."""
    from reprl.data.datamodule import VideoDataModule
    from reprl.data.stream import StreamConfig
    from reprl.objectives.registry import data_mode
    from reprl.options import tuple_settings

    d = cfg.data
    stream = StreamConfig(mode=data_mode(cfg.objective, d.goal_last), image_size=encoder.config.image_size,
                          batch_size=d.batch_size, seed=cfg.trainer.seed, exclude_tasks=holdout_tasks(d),
                          **tuple_settings(d))
    return VideoDataModule(d.train, stream, val=validation_source(d), num_workers=d.num_workers,
                           batches_per_epoch=d.batches_per_epoch, val_videos=d.val_videos,
                           val_max_frames=d.val_max_frames, val_tasks=holdout_tasks(d))


def _fit(cfg: PretrainConfig, run_dir: Path, resume: str | None) -> dict[str, Any]:
    """Build encoder, module, data and trainer; train; export the encoder and write the summary."""
    from reprl.encoders.io import nonfinite
    from reprl.training.module import DivergedError

    module = training_module(cfg)
    encoder = module.encoder
    dm = data_module(cfg, encoder)
    trainer = _trainer(cfg, run_dir)
    if trainer.is_global_zero:
        n_params = sum(p.numel() for p in module.parameters())
        print(f"pretrain: {cfg.objective.name} on {encoder.config.name} ({n_params:,} "
              f"parameters), {trainer.world_size} process(es), precision {trainer.precision}, "
              f"batch {cfg.data.batch_size}, {cfg.trainer.max_steps} steps -> {run_dir}"
              + (f", resuming from {resume}" if resume else ""))
        from reprl.sim.corpus import older_render

        for path in (cfg.data.train, cfg.data.val):
            if path and (note := older_render(path)):
                print(f"note: {note}", flush=True)
    if resume:
        check_resume_fits(module, resume)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
    except DivergedError as e:
        raise ReprlError(f"{e} {kept_checkpoint(run_dir)}") from None
    except SystemExit:  # Lightning turns Ctrl-C into exit status 1 with no word to the user
        if not trainer.interrupted:
            raise
        kept = kept_checkpoint(run_dir)
        print(f"pretrain: interrupted at step {trainer.global_step}. {kept}"
              + (" Continue it with --resume last." if kept.startswith("The last good") else ""),
              file=sys.stderr, flush=True)
        raise KeyboardInterrupt from None
    if nonfinite(encoder.state_dict()) or module._bad_in_row:
        raise ReprlError(f"training ended diverging (non-finite weights or {module._bad_in_row} non-finite losses in "
                         f"a row), so no encoder was exported. {kept_checkpoint(run_dir)} Lower the learning rate "
                         "and resume or start over.")
    summary: dict[str, Any] = {"run_dir": str(run_dir), "steps": trainer.global_step,
                               "skipped_steps": module.skipped_steps}
    if trainer.is_global_zero:
        from reprl.data.shards import corpus_digest

        summary["machine"] = machine_info()
        summary["data"] = {"train": str(cfg.data.train), "train_content_sha256": corpus_digest(cfg.data.train)}
        if tasks := holdout_tasks(cfg.data):
            summary["data"]["holdout_tasks"] = list(tasks)
        if cfg.trainer.select == "best":
            encoder, summary["selected"] = selected_encoder(run_dir / "best", encoder, trainer.global_step)
        final = save_encoder(encoder, run_dir / "encoder")
        summary["encoder"] = str(final)
        if val := validation_source(cfg.data):
            baseline = build_training_encoder(cfg, cfg.trainer.seed)  # the same architecture at random init
            summary["heldout"] = heldout_scores({"random init": baseline, "trained": encoder.cpu()}, val,
                                                encoder.config.image_size, cfg.data.val_videos,
                                                cfg.data.val_max_frames, tasks)
        write_json(run_dir / "summary.json", summary)
    return summary


def selected_encoder(best_dir: Path, last: Encoder, last_step: int) -> tuple[Encoder, dict[str, Any]]:
    """The encoder trainer.select best exports: the one kept in best_dir (its provenance names the step), or the
    last one when no validation kept any (every held-out VOC was non-finite)."""
    from reprl.training.callbacks import read_selection

    record = read_selection(best_dir)
    if record is None:
        print(f"note: no validation gave a finite held-out VOC, so the last step ({last_step}) is exported")
        return last, {"step": last_step, "by": "last step (no finite held-out VOC)"}
    best = load_encoder(best_dir, freeze=False)
    best.config.source = f"reprl pretrain, step {record['step']} of {last_step} (highest held-out VOC)"
    return best, record


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"trained {summary['steps']} steps ({summary['skipped_steps']} skipped) in {summary['run_dir']}"]
    if "encoder" in summary:
        lines.append(f"encoder exported to {summary['encoder']} (reprl.load / reprl embed take this folder)")
    if "selected" in summary:
        sel = summary["selected"]
        voc = f", held-out VOC {sel['voc']:.3f} at that validation" if "voc" in sel else ""
        lines.append(f"selected: step {sel['step']}, {sel['by']}{voc}")
    if "holdout_tasks" in summary.get("data", {}):
        lines.append(f"held-out tasks (never trained on, validated on): {', '.join(summary['data']['holdout_tasks'])}")
    if "heldout" in summary:
        h = summary["heldout"]
        n = next(iter(h.values()))["videos"]
        lines.append(f"held-out videos ({n}), goal = last frame:  VOC (higher is better)  bump rate (lower is better)")
        if "voc" in summary.get("selected", {}):
            lines.append("  (these videos also chose the step, so the trained row is optimistic: `reprl score` other "
                         "videos for an unbiased figure)")
        for name, m in h.items():
            lines.append(f"  {name:12s} {m['voc']:+39.3f} {m['bump_rate']:26.3f}")
    return "\n".join(lines)
