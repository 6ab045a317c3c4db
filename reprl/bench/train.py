"""`reprl bench train`: steps/s and frames/s of the real training loop (LightningModule, streamed shards,
logging on) next to the same module and objective stepping on a synthetic batch already in memory; the
ratio, and the share of step time spent waiting for data. Medians of `repeats` runs in one process."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from reprl.errors import ReprlError
from reprl.options import TrainBenchConfig
from reprl.utils.timing import median_spread


class StepTimer:
    """Lightning callback: wall time per step and the time waiting for the next batch (end -> next start)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, idx: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def figures(self) -> dict[str, float]:
        s, e = self.starts[self.warmup:], self.ends[self.warmup:]
        total = e[-1] - self.ends[self.warmup - 1]
        wait = sum(s[i] - (e[i - 1] if i else self.ends[self.warmup - 1]) for i in range(len(s)))
        return {"steps_per_s": len(s) / total, "data_wait_share": wait / total}


class RepeatBatch(IterableDataset):
    def __init__(self, batch: Any, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self) -> Any:
        for _ in range(self.n):
            yield self.batch


def _callback(warmup: int) -> Any:
    import lightning as L

    class _CB(StepTimer, L.Callback):
        pass

    return _CB(warmup)


DEFAULT_SHARDS = "tests/data/metaworld/train"


def pretrain_config(cfg: TrainBenchConfig, run_dir: str) -> Any:
    """The PretrainConfig the benchmark trains: the preset (or the bench's encoder / objective / batch options)
    with only the run's mechanics replaced (run folder, shards, step count, no validation or checkpoints)."""
    from dataclasses import replace

    from reprl.objectives.registry import objective_config
    from reprl.training.config import DataSection, EncoderSection, PretrainConfig, load_pretrain_config

    if cfg.config:
        flags = {"encoder": "--encoder", "image_size": "--image-size", "embed_dim": "--embed-dim",
                 "objective": "--objective", "batch_size": "--batch-size", "num_workers": "--workers"}
        given = [flag for name, flag in flags.items()
                 if getattr(cfg, name) != TrainBenchConfig.__dataclass_fields__[name].default]
        if given:  # the preset's own settings run: these would be ignored without a word
            raise ReprlError(f"{', '.join(given)} apply only without --config (the preset's settings run); "
                             "drop them, or edit a copy of the preset")
        pc = load_pretrain_config(cfg.config)
    else:
        pc = PretrainConfig(encoder=EncoderSection(name=cfg.encoder, image_size=cfg.image_size,
                                                   embed_dim=cfg.embed_dim),
                            objective=objective_config({"name": cfg.objective}),
                            data=DataSection(batch_size=cfg.batch_size, num_workers=cfg.num_workers))
    steps = cfg.steps + cfg.warmup
    shards = cfg.shards or (pc.data.train if cfg.config else DEFAULT_SHARDS)
    if shards == DEFAULT_SHARDS and not Path(shards).is_dir():
        raise ReprlError(f"no --shards given, and the default {DEFAULT_SHARDS} (the repository's test data, read "
                         "from the current folder) is not here: pass --shards, or run from a clone of reprl")
    return replace(pc, run_dir=run_dir, resume=None,
                   data=replace(pc.data, train=shards, val=None, batches_per_epoch=steps),
                   trainer=replace(pc.trainer, max_steps=steps, accelerator=cfg.accelerator, precision=cfg.precision,
                                   devices=1, num_nodes=1, strategy="auto", loggers="csv", progress=False,
                                   checkpoint_every=10**9, log_every=1))


def _run(base: Any, warmup: int, synthetic: bool) -> dict[str, float]:
    """One timed run of `base` (pretrain_config's result) in a temporary run folder."""
    from dataclasses import replace

    import lightning as L

    from reprl.data.stream import TupleStream
    from reprl.training.callbacks import make_loggers
    from reprl.training.config import check_config, check_hardware
    from reprl.training.run import data_module, quiet_lightning, trainer_settings, training_module

    quiet_lightning()
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`")  # validation is off on purpose here
    with tempfile.TemporaryDirectory() as tmp:
        pc = replace(base, run_dir=tmp)
        check_config(pc)
        check_hardware(pc.trainer)
        module = training_module(pc)  # the encoder and module reprl pretrain trains, compiled if the config says
        dm = data_module(pc, module.encoder)  # what reprl pretrain trains on, from the same config
        timer = _callback(warmup)
        trainer = L.Trainer(**trainer_settings(pc), logger=make_loggers("csv", Path(tmp)), log_every_n_steps=1,
                            enable_checkpointing=False, enable_progress_bar=False, callbacks=[timer],
                            limit_val_batches=0)
        if synthetic:
            batch = next(iter(TupleStream(pc.data.train, dm.stream_cfg)))
            loader = DataLoader(RepeatBatch(batch, pc.trainer.max_steps), batch_size=None)
            trainer.fit(module, train_dataloaders=loader)
        else:
            trainer.fit(module, datamodule=dm)
        figures = timer.figures()
        roles = len(module.objective.roles)
        batch_size = pc.data.batch_size
    figures["frames_per_s"] = figures["steps_per_s"] * batch_size * roles
    return figures


def run_train_bench(cfg: TrainBenchConfig) -> dict[str, Any]:
    pc = pretrain_config(cfg, "")  # what trains: a preset's own encoder, objective and data settings (read once)
    real, synth = [], []
    for _ in range(cfg.repeats):
        real.append(_run(pc, cfg.warmup, synthetic=False))
        synth.append(_run(pc, cfg.warmup, synthetic=True))
    ratios = [r["steps_per_s"] / s["steps_per_s"] for r, s in zip(real, synth)]
    pick = lambda runs, k: median_spread([r[k] for r in runs])  # noqa: E731
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    trained = {"encoder": pc.encoder.name, "image_size": pc.encoder.image_size, "embed_dim": pc.encoder.embed_dim,
               "objective": pc.objective.name, "batch_size": pc.data.batch_size, "num_workers": pc.data.num_workers}
    return {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "trained": trained,
            "device": gpu or "cpu",
            "threads": torch.get_num_threads(),
            "real": {k: pick(real, k) for k in ("steps_per_s", "frames_per_s", "data_wait_share")},
            "synthetic": {k: pick(synth, k) for k in ("steps_per_s", "frames_per_s", "data_wait_share")},
            "ratio": median_spread(ratios)}


def format_train_bench(r: dict[str, Any]) -> str:
    c, t = r["config"], r["trained"]

    def f(d: dict[str, Any], scale: float = 1.0, fmt: str = "8.2f") -> str:
        return f"{d['median'] * scale:{fmt}} [{d['min'] * scale:.2f}-{d['max'] * scale:.2f}]"

    return "\n".join([
        f"train: {t['objective']} on {t['encoder']} at {t['image_size']} px, batch {t['batch_size']}, "
        f"{t['num_workers']} data worker(s), {r['device']}, {r['threads']} torch threads, median [min-max] of "
        f"{c['repeats']} runs of {c['steps']} steps",
        f"  real loop (streamed shards)   {f(r['real']['steps_per_s'])} steps/s  "
        f"{f(r['real']['frames_per_s'], 1, '8.1f')} frames/s  data wait "
        f"{f(r['real']['data_wait_share'], 100, '5.1f')} %",
        f"  synthetic batch in memory     {f(r['synthetic']['steps_per_s'])} steps/s  "
        f"{f(r['synthetic']['frames_per_s'], 1, '8.1f')} frames/s  data wait "
        f"{f(r['synthetic']['data_wait_share'], 100, '5.1f')} %",
        f"  ratio real / synthetic        {r['ratio']['median']:8.3f} "
        f"[{r['ratio']['min']:.3f}-{r['ratio']['max']:.3f}]",
    ])
