"""Stream training tuples from shards and print what was read: a quick check of a corpus and of the
sampling mode before a long run. Optionally saves a picture of the first tuples (one row per tuple,
one column per role).

Example:
  reprl stream shards/mw_pretrain --mode liv --batches 3 --batch-size 8 --grid tuples.png
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "stream training tuples from shards and print them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reprl.options import StreamOptions, add_options

    add_options(p, StreamOptions, positional=["shards"], metavars={"crop_scale": ("MIN", "MAX")})


def save_grid(batch, path: str, max_rows: int = 8) -> None:
    """One row per tuple, one column per role, labelled with the frame indices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = batch.roles
    rows = min(len(batch), max_rows)
    fig, axes = plt.subplots(rows, len(roles), figsize=(1.8 * len(roles), 1.9 * rows), squeeze=False)
    for r in range(rows):
        for c, role in enumerate(roles):
            ax = axes[r][c]
            ax.imshow(batch.frames[role][r].permute(1, 2, 0).numpy())
            lender = batch.goal_from[r] if role == "goal" and batch.goal_from else ""
            ax.set_title(f"goal: end of ..{lender[-14:]}" if lender else f"{role} #{int(batch.indices[role][r])}",
                         fontsize=8)  # a borrowed goal (data.other_goal) is not a frame of the tuple's video
            ax.axis("off")
        if batch.text[r]:
            axes[r][0].text(0, -0.35, batch.text[r][:60], transform=axes[r][0].transAxes, fontsize=7)
    fig.tight_layout()
    from reprl.utils.files import replacing

    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=90, metadata={"Software": GRID_MARK})
    plt.close(fig)


GRID_MARK = "reprl stream --grid"  # in the PNG's metadata: a later --grid may replace this picture, no other file


def check_options(opts: Any) -> None:
    """Counts and the --grid path, refused in one line before any shard is read."""
    from pathlib import Path

    from PIL import Image

    from reprl.errors import ReprlError
    from reprl.utils.files import check_output_file

    if opts.batches < 1 or opts.batch_size < 1 or opts.workers < 0 or opts.seed < 0:
        raise ReprlError(f"--batches and --batch-size must be at least 1, --workers and --seed at least 0; got "
                         f"{opts.batches}, {opts.batch_size}, {opts.workers}, {opts.seed}")
    if not opts.grid:
        return
    if Path(opts.grid).suffix.lower() != ".png":
        raise ReprlError(f"--grid {opts.grid}: give a .png file name for the picture")

    def ours(path: Path) -> bool:
        try:
            with Image.open(path) as im:
                return im.info.get("Software") == GRID_MARK
        except OSError:
            return False

    check_output_file(opts.grid, "--grid", ours, "stream")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import time

    from torch.utils.data import DataLoader

    from reprl.data.stream import StreamConfig, TupleStream
    from reprl.errors import ReprlError
    from reprl.options import StreamOptions, from_args, tuple_settings

    opts = from_args(StreamOptions, args)
    check_options(opts)
    cfg = StreamConfig(mode=opts.mode, image_size=opts.image_size, batch_size=opts.batch_size, seed=opts.seed,
                       **tuple_settings(opts))
    stream = TupleStream(opts.shards, cfg, batches_per_epoch=opts.batches)
    print(f"{len(stream.urls)} shards, mode {opts.mode}, roles {', '.join(stream.roles)}")
    loader = DataLoader(stream, batch_size=None, num_workers=opts.workers)
    start, tuples = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        tuples += len(batch)
        shapes = ", ".join(f"{r} {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
                           for r, t in batch.frames.items())
        print(f"batch {i}: {shapes}")
        for j in range(min(3, len(batch))):
            borrowed = batch.goal_from[j] if batch.goal_from else ""  # data.other_goal: another video's last frame
            idx = " ".join(f"{r}=last of {borrowed}" if r == "goal" and borrowed else f"{r}={int(batch.indices[r][j])}"
                           for r in batch.roles)
            caption = f' "{batch.text[j]}"' if batch.text[j] else ""
            print(f"  {batch.key[j]} (len {int(batch.length[j])}): {idx}{caption}")
        if i == 0 and opts.grid:
            try:
                save_grid(batch, opts.grid)
            except OSError as e:  # a place the permission check could not foresee (a read-only mount, a full disk)
                raise ReprlError(f"cannot write --grid {opts.grid}: {e.strerror or e}; choose a --grid in a folder you "
                                 "can write to") from None
            print(f"  saved a picture of these tuples to {opts.grid}")
    elapsed = time.perf_counter() - start
    print(f"read {tuples} tuples in {elapsed:.1f}s ({tuples / elapsed:.0f} tuples/s including start-up)")
    if stream.skips.counts:
        print(f"skipped: {dict(stream.skips.counts)}")
    return 0
