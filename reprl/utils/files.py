"""Atomic writes: a file or folder appears under its final name only once it is complete."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reprl.errors import ReprlError


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to ('NAME.partial.EXT': the same suffix, for writers that
    infer the format from it); it is renamed over `path` when the block succeeds and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file, then rename it over `path` (creating parent folders)."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """`obj` as indented JSON, written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2))


class StagingDir:
    """A hidden folder beside `out` to build an output in. `commit()` swaps it into place (what `out` held
    before is deleted only after the swap), `abort()` deletes it: `out` is never seen half-written. Used as a
    context manager it yields the folder, commits on success and aborts on any error.

    With `overwrite=False` an existing, non-empty `out` is an error before anything is written."""

    def __init__(self, out: str | Path, overwrite: bool = True) -> None:
        self.out = Path(out)
        if not overwrite and self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise ReprlError(f"output {self.out} exists and is not empty; pass --overwrite to replace it")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.dir = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir()

    def commit(self) -> None:
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.dir, self.out)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        elif old.exists():
            old.unlink()

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Path:
        return self.dir

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
