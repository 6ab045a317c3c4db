"""Safe writes: a file or folder appears under its final name only once it is complete, an output never
replaces what the command did not write, and names that come from data never leave the output folder."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reprl.errors import ReprlError

log = logging.getLogger("reprl.files")

MARKER = ".reprl-output.json"  # names the command whose output a folder is, so a rerun may replace it
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, max_len: int = 80) -> str:
    """`text` as one file name that stays inside its folder: a name that is already safe is kept; otherwise
    unsafe characters (slashes, '..', spaces, ...) become '_' and a short hash of `text` keeps names unique."""
    clean = re.sub(r"_*\.{2,}_*", "_", _UNSAFE.sub("_", text))  # no '/', no '..'
    clean = re.sub(r"_+", "_", clean).strip("._")[:max_len]
    if clean == text and clean:
        return clean
    return f"{clean or 'item'}-{zlib.crc32(text.encode()):08x}"


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to ('.NAME.partial-PID.EXT': hidden, named by this process so
    it never meets a file of the user's or of another run, with the same suffix for writers that infer the format
    from it); it is renamed over `path` when the block succeeds, and removed when the block or the rename fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file, then rename it over `path` (creating parent folders)."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """`obj` as indented JSON, written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2))


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`; a file that cannot be read, is not JSON, or holds another kind of value is a
    one-line error naming `what` the file should be."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ReprlError(f"cannot read {path} ({e.strerror or e}); {what}") from None
    except ValueError as e:
        raise ReprlError(f"{path} is not valid JSON ({e}); {what}") from None
    if not isinstance(data, dict):
        raise ReprlError(f"{path} holds a JSON {type(data).__name__}, not an object; {what}")
    return data


def normal_mode(path: str | Path) -> None:
    """Give a file the mode a plain `open()` would (0644 under umask 022): some writers create 0600 files."""
    umask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _within(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_output(out: str | Path, command: str | None = None, inputs: Iterable[str | Path] = (),
                 overwrite: bool = False, force: bool = False, flag: str = "--out",
                 force_flag: str | None = "--force-overwrite") -> None:
    """Refuse an output folder that would lose the user's data, before any work: one that is, contains or lies
    inside an input; a plain file; or (with `command`) a non-empty folder that is not a previous output of
    `command` (no marker) unless `force`. Without `overwrite` any non-empty folder is refused. `flag` names the
    option in messages; `force_flag` is the command's option that replaces any folder (None: it has none)."""
    out = Path(out)
    target = out.resolve()
    for item in inputs:
        src = Path(item).resolve()
        if _within(target, src) or _within(src, target):
            where = "is" if target == src else "lies inside" if _within(target, src) else "contains"
            raise ReprlError(f"{flag} {out} {where} the input {item}; choose a {flag} outside every input")
    if not (out.exists() or out.is_symlink()):
        check_writable(out, flag)
        return
    if not out.is_dir():
        if command is None or not force:
            raise ReprlError(f"{flag} {out} is a file, not a folder; remove it yourself or choose another {flag}")
        return
    if not any(out.iterdir()):
        return
    if force:
        return
    anyway = f", or pass {force_flag} to replace it anyway" if force_flag else ""
    if command is not None and output_command(out) != command:  # --overwrite would not take it either: say so
        raise ReprlError(f"{out} is not an output of reprl {command} (it holds no marker of one), so it will not be "
                         f"replaced; choose another {flag}{anyway}")
    if not overwrite:
        raise ReprlError(f"output {out} exists and is not empty; pass --overwrite to replace it")


# Commands whose outputs always hold a file that names them need no extra marker: (file, key it holds).
# ("shards" also stands for "render" where index.json has a render section: see output_command.)
SIGNATURES = {"shards": ("index.json", "format"), "embed": ("summary.json", "reprl_version"),
              "score": ("results.json", "scores"), "eval": ("results.json", "cells"),
              "heads train": ("config.json", "actor")}


def json_has(path: str | Path, *keys: str) -> bool:
    """Whether `path` holds a JSON object with every one of `keys` (how a command knows a result file as its own)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(k in data for k in keys)


def check_output_file(path: str | Path, flag: str, ours: Callable[[Path], bool], command: str) -> None:
    """Refuse, before any work, an output file named by `flag` that is a folder, an existing file that `ours` does
    not recognise as an earlier output of reprl `command`, or a path that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise ReprlError(f"{flag} {path} is a folder; give a file name to write")
    if path.exists() and not ours(path):
        raise ReprlError(f"{flag} {path} exists and is not a result of reprl {command}, so it will not be replaced; "
                         f"choose another {flag}")
    check_writable(path, flag)


def check_writable(out: str | Path, flag: str = "--out") -> None:
    """`out` can be created: its nearest existing ancestor is a folder this process may write to."""
    parent = Path(out).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        why = "is a file, not a folder" if not parent.is_dir() else "is not writable"
        raise ReprlError(f"cannot write {flag} {out}: {parent} {why}; choose a {flag} in a folder you can write to")


def output_command(folder: str | Path) -> str | None:
    """The command whose output `folder` is (its MARKER, or a signature file), else None."""
    for command, (name, key) in [(None, (MARKER, "command")), *SIGNATURES.items()]:
        try:
            data = json.loads((Path(folder) / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and key in data:
            if command == "shards" and "render" in data:  # reprl render writes shards that record their render
                return "render"
            return data[key] if command is None else command
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove '.NAME.partial-PID' / '.NAME.old-PID' folders beside `out` left by processes no longer running
    (a run killed before it could clean up); returns what was removed."""
    removed = []
    for p in out.parent.glob(f".{glob_escape(out.name)}.*-*"):
        kind, _, pid = p.name[len(out.name) + 2:].rpartition("-")
        if kind not in ("partial", "old") or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        if kind == "old" and not (out.exists() or out.is_symlink()):  # stopped between commit's two renames:
            os.replace(p, out)  # the previous output goes back where it was
            log.warning("restored %s from %s, left by an interrupted run (process %s is gone)", out, p, pid)
            continue
        remove_path(p)
        log.warning("removed %s, left by an interrupted run (process %s is gone)", p, pid)
        removed.append(p)
    return removed


def remove_path(p: Path) -> None:
    """Delete `p`: a folder with its contents, a file, or a symbolic link itself (never what it points to)."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    if Path(src).is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def carry_others(src: Path, dst: Path, own: Iterable[str], move: bool = False) -> None:
    """Carry every entry of folder `src` that is not a command's (its name matches none of the `own` glob
    patterns, is no staging or old-output name, and `dst` has nothing of that name) into `dst`: moved, or as
    hard links where the file system allows (else copies). How a rerun replaces a command's own files and keeps
    whatever else of the user's the folder holds."""
    own = tuple(own)
    for item in src.iterdir():
        if any(fnmatch.fnmatchcase(item.name, pattern) for pattern in own) or (dst / item.name).exists() \
                or item.name.startswith(".") and (".partial-" in item.name or ".old-" in item.name):
            continue
        if move:
            os.replace(item, dst / item.name)
        elif item.is_dir() and not item.is_symlink():
            shutil.copytree(item, dst / item.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, dst / item.name)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


class StagingDir:
    """A hidden folder beside `out` to build an output in. `commit()` swaps it into place (what `out` held
    before is deleted only after the swap), `abort()` deletes it: `out` is never seen half-written. Used as a
    context manager it yields the folder, commits on success and aborts on any error.

    Before anything is written, `check_output` refuses an `out` that would lose the user's data (see there);
    with `command` the output gets a marker naming it, so a later `--overwrite` of the same command may
    replace it. Staging folders of dead processes beside `out` are removed (and logged).

    `own`: glob patterns of the top-level names the command writes (None: every name). When `out` is replaced
    without `force` (an earlier output of the same command), its entries that match none of them (a user's notes
    beside the results) are carried into the new output instead of being deleted with the old one; `force`
    replaces the whole folder, as its option says.

    An `out` that is a symbolic link to a folder is written through: the output replaces the folder it points
    to (with the same checks) and the link stays as it was."""

    def __init__(self, out: str | Path, overwrite: bool = True, command: str | None = None,
                 inputs: Iterable[str | Path] = (), force: bool = False,
                 own: Iterable[str] | None = None, force_flag: str | None = "--force-overwrite") -> None:
        self.out = Path(out)
        if self.out.is_symlink() and self.out.is_dir():
            self.out = self.out.resolve()
        self.own = None if own is None or force else (*own, MARKER)
        if self.out.parent.is_dir():  # first: a previous output it restores is then checked like any other
            clean_stale(self.out)
        check_output(self.out, command, inputs, overwrite, force, force_flag=force_flag)
        parent = self.out.parent.absolute()
        self.made = []  # the folders above `out` this command creates: removed again by abort() when left empty
        while not parent.exists() and parent != parent.parent:
            self.made.append(parent)
            parent = parent.parent
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.dir = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir()
        except OSError as e:
            raise ReprlError(f"cannot write {self.out}: {e.strerror or e}; choose an --out in a folder you can "
                             "write to") from None
        if command is not None and command not in SIGNATURES and command != "render":  # render: its index.json
            (self.dir / MARKER).write_text(json.dumps({"command": command}) + "\n")

    def commit(self) -> None:
        if self.own is not None and self.out.is_dir() and not self.out.is_symlink():
            try:
                carry_others(self.out, self.dir, self.own)  # the originals stay in place until the swap
            except OSError as e:
                self.abort()
                raise ReprlError(f"cannot carry your files from {self.out} into its new version ({e.strerror or e}); "
                                 f"{self.out} is unchanged: free space, or move them out and rerun") from None
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.dir, self.out)
        remove_path(old)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        for folder in self.made:  # innermost first; a folder something else wrote into stays
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self) -> Path:
        return self.dir

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
