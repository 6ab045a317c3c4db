"""Released VIP, R3M and LIV weights by name: `reprl.load("vip-resnet50")`.

Each name lists the files of the official release (the addresses the original projects download from).
They are fetched once into the cache (`REPRL_CACHE`, default ~/.cache/reprl) and imported with the
reference-checkpoint importers. A download goes to NAME.part and is renamed into place only when complete
(a partial file is never taken for the weights); an interrupted one resumes with an HTTP Range request; every
read has a time-out (`REPRL_DOWNLOAD_TIMEOUT`, seconds), so a stalled server ends in an error, not a hang.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprl.errors import ReprlError

if TYPE_CHECKING:  # pragma: no cover
    from reprl.encoders.base import Encoder

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def _drive(file_id: str) -> str:
    """Google Drive's direct-download address (confirm=t skips the large-file warning page)."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


@dataclass(frozen=True)
class Release:
    name: str
    files: dict[str, str]  # file name in the cache folder -> address
    approx_mb: int  # size of the weights file, approximately
    description: str
    origin: str  # where the addresses are published

    @property
    def url(self) -> str:
        return self.files["model.pt"]


_VIP_S3 = "https://pytorch.s3.amazonaws.com/models/rl/vip"
_LIV_HUB = "https://huggingface.co/jasonyma/LIV/resolve/main"
RELEASES = {r.name: r for r in [
    Release("vip-resnet50", {"model.pt": f"{_VIP_S3}/model.pt", "config.yaml": f"{_VIP_S3}/config.yaml"}, 100,
            "VIP ResNet-50, 1024-d, trained on Ego4D; -L2 value", "facebookresearch/vip (PyTorch S3)"),
    Release("r3m-resnet18", {"model.pt": _drive("1A1ic-p4KtYlKXdXHcV2QV0cUzI4kn0u-"),
                             "config.yaml": _drive("1nitbHQ-GRorxc7vMUiEHjHWP5N11Jvc6")}, 45,
            "R3M ResNet-18, 512-d, trained on Ego4D", "facebookresearch/r3m (Google Drive)"),
    Release("r3m-resnet34", {"model.pt": _drive("15bXD3QRhspIRacOKyWPw5y2HpoWUCEnE"),
                             "config.yaml": _drive("1RY0NS-Tl4G7M1Ik_lOym0b5VIBxX9dqW")}, 85,
            "R3M ResNet-34, 512-d, trained on Ego4D", "facebookresearch/r3m (Google Drive)"),
    Release("r3m-resnet50", {"model.pt": _drive("1Xu0ssuG0N1zjZS54wmWzJ7-nb0-7XzbA"),
                             "config.yaml": _drive("10jY2VxrrhfOdNPmsFdES568hjjIoBJx8")}, 95,
            "R3M ResNet-50, 2048-d, trained on Ego4D", "facebookresearch/r3m (Google Drive)"),
    Release("liv", {"model.pt": f"{_LIV_HUB}/model.pt", "config.yaml": f"{_LIV_HUB}/config.yaml"}, 400,
            "LIV CLIP RN50 image + text, 1024-d, trained on EpicKitchens; cosine value",
            "penn-pal-lab/LIV (Hugging Face hub jasonyma/LIV)"),
]}


def cache_dir() -> Path:
    """Where downloaded weights live: $REPRL_CACHE, else $XDG_CACHE_HOME/reprl, else ~/.cache/reprl."""
    if os.environ.get("REPRL_CACHE"):
        return Path(os.environ["REPRL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "reprl"


def release_dir(name: str) -> Path:
    return cache_dir() / "pretrained" / name


def timeout_s() -> float:
    try:
        return float(os.environ.get("REPRL_DOWNLOAD_TIMEOUT", "30"))
    except ValueError:
        raise ReprlError("REPRL_DOWNLOAD_TIMEOUT must be a number of seconds") from None


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": "reprl", **({"Range": f"bytes={offset}-"} if offset else {})}
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(url: str, dest: Path, *, timeout: float | None = None, progress: bool = True) -> Path:
    """Fetch `url` into `dest` atomically and resumably. Raises ReprlError (one line) on any failure; what
    arrived stays in DEST.part, and the next call asks only for the rest."""
    from tqdm import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    timeout = timeout_s() if timeout is None else timeout
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:  # 416: the range starts past the end; restart from scratch below
            raise ReprlError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
        part.unlink()
        return download(url, dest, timeout=timeout, progress=progress)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ReprlError(f"cannot reach {url} ({type(reason).__name__}: {reason})") from None
    with resp:
        if "text/html" in resp.headers.get("Content-Type", ""):
            raise ReprlError(f"{url} answered with a web page, not the file (a sign-in or quota page?)")
        resumed = resp.status == 206
        total = int(resp.headers.get("Content-Length") or -1)
        total = total + offset if resumed and total >= 0 else total
        done = offset if resumed else 0
        with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total if total >= 0 else None, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, leave=False) as bar:
            while True:
                try:
                    chunk = resp.read1(CHUNK)
                except (TimeoutError, OSError, http.client.HTTPException) as e:
                    raise ReprlError(f"download of {url} stalled at {done} bytes ({type(e).__name__}, time-out "
                                     f"{timeout:g} s); run again to resume") from None
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    if total >= 0 and done != total:
        raise ReprlError(f"download of {url} ended at {done} of {total} bytes; run again to resume")
    os.replace(part, dest)
    return dest


def _release(name: str) -> Release:
    if name not in RELEASES:
        raise ReprlError(f"unknown pretrained name {name!r}; known: {', '.join(RELEASES)}")
    return RELEASES[name]


def fetch(name: str, progress: bool = True) -> Path:
    """The cached weights file of a release, downloading it (and its config record) first if missing. A
    model.pt placed in the cache by hand is used as is, with no network access."""
    release = _release(name)
    folder = release_dir(name)
    weights = folder / "model.pt"
    if weights.is_file():
        return weights
    for file, url in sorted(release.files.items(), key=lambda kv: kv[0] != "model.pt"):  # weights first
        dest = folder / file
        log.info("downloading %s %s from %s into %s", name, file, url, folder)
        try:
            download(url, dest, progress=progress)
        except ReprlError as e:
            if file != "model.pt":  # the importers need only the weights; the config is a record
                log.warning("%s; continuing without %s", e, file)
                continue
            raise ReprlError(f"{e}. To install {name} by hand, download {url} and either run "
                             f"`reprl convert model.pt --out DIR` (then load DIR) or put it at {dest}") from None
    return weights


def load_pretrained(name: str, progress: bool = True) -> Encoder:
    """Released weights by name, imported as a reprl encoder (not frozen; reprl.load freezes)."""
    from reprl.encoders.io import load_file

    path = fetch(name, progress=progress)
    encoder = load_file(path)
    encoder.config.source = f"pretrained {name} ({_release(name).url})"
    return encoder


def describe_pretrained() -> list[dict[str, str]]:
    """One row per release: name, size, source, and whether (and where) it is cached."""
    rows = []
    for r in RELEASES.values():
        weights = release_dir(r.name) / "model.pt"
        cached = weights.is_file()
        size = f"{weights.stat().st_size / 2**20:.0f} MB" if cached else f"~{r.approx_mb} MB"
        rows.append({"name": r.name, "size": size, "cached": "yes" if cached else "no", "source": r.origin,
                     "url": r.url, "path": str(weights), "description": r.description})
    return rows
