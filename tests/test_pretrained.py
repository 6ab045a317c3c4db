"""Pretrained names: download once into the cache (atomic, resumable, with time-outs) and import, against a
local HTTP server on 127.0.0.1. Nothing here touches the network."""

import dataclasses
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import torchvision

import reprl
from reprl.encoders import pretrained
from reprl.errors import ReprlError


class Handler(BaseHTTPRequestHandler):
    """Serves server.files; server.mode[path] is None (well-behaved), 'truncate', 'stall' or 'html'."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data, mode = srv.files.get(self.path), srv.mode.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "text/html" if mode == "html" else "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if mode == "truncate":
            self.wfile.write(body[: len(body) // 2])  # then close: fewer bytes than announced
        elif mode == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(3)
        else:
            self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.mode, srv.requests = {}, {}, []
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRL_DOWNLOAD_TIMEOUT", "0.5")
    return tmp_path / "cache"


def resnet_checkpoint(key, fc_dim):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Linear(512, fc_dim) if fc_dim else torch.nn.Identity()
    return {key: {f"module.convnet.{k}": v for k, v in net.state_dict().items()}}


def serve_release(srv, monkeypatch, tmp_path, name, checkpoint):
    """Put `checkpoint` on the server and point the release `name` at it."""
    path = tmp_path / f"{name}.pt"
    torch.save(checkpoint, path)
    srv.files[f"/{name}/model.pt"] = path.read_bytes()
    srv.files[f"/{name}/config.yaml"] = b"agent:\n  hidden_dim: 32\n"
    files = {f: f"{srv.url}/{name}/{f}" for f in ("model.pt", "config.yaml")}
    monkeypatch.setitem(pretrained.RELEASES, name, dataclasses.replace(pretrained.RELEASES[name], files=files))
    return path


@pytest.mark.parametrize("name,checkpoint,dim", [("vip-resnet50", resnet_checkpoint("vip", 32), 32),
                                                 ("r3m-resnet18", resnet_checkpoint("r3m", 0), 512)])
def test_pretrained_name_downloads_once_into_the_cache_and_imports(server, cache, monkeypatch, tmp_path, capsys,
                                                                   name, checkpoint, dim):
    local = serve_release(server, monkeypatch, tmp_path, name, checkpoint)
    enc = reprl.load(name)
    assert enc.config.embed_dim == dim and name in enc.config.source and not enc.config.random_init
    x = torch.randint(0, 256, (1, 3, 64, 80), dtype=torch.uint8)
    assert torch.equal(enc(x), reprl.load(local)(x))
    assert (cache / "pretrained" / name / "model.pt").read_bytes() == local.read_bytes()
    assert (cache / "pretrained" / name / "config.yaml").is_file()
    assert not list((cache / "pretrained" / name).glob("*.part"))
    n = len(server.requests)
    reprl.load(name)
    assert len(server.requests) == n, "a cached release is not downloaded again"
    from reprl.cli import main

    with pytest.raises(SystemExit):
        main(["list", "--pretrained"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(name + " "))
    assert " yes " in row and "MB" in row


def test_truncated_download_is_never_taken_for_the_file_and_resumes(server, cache, monkeypatch, tmp_path):
    local = serve_release(server, monkeypatch, tmp_path, "vip-resnet50", resnet_checkpoint("vip", 32))
    server.mode["/vip-resnet50/model.pt"] = "truncate"
    with pytest.raises(ReprlError, match=r"ended at \d+ of \d+ bytes; run again to resume"):
        reprl.load("vip-resnet50")
    folder = cache / "pretrained" / "vip-resnet50"
    size = len(local.read_bytes())
    assert not (folder / "model.pt").exists() and (folder / "model.pt.part").stat().st_size == size // 2
    server.mode.clear()
    enc = reprl.load("vip-resnet50")
    assert server.requests[-2][1] == f"bytes={size // 2}-", "the second attempt asks only for the rest"
    assert (folder / "model.pt").read_bytes() == local.read_bytes() and enc.config.embed_dim == 32


def test_a_stalled_server_ends_in_an_error_not_a_hang(server, cache, monkeypatch, tmp_path):
    serve_release(server, monkeypatch, tmp_path, "r3m-resnet18", resnet_checkpoint("r3m", 0))
    server.mode["/r3m-resnet18/model.pt"] = "stall"
    t0 = time.perf_counter()
    with pytest.raises(ReprlError, match=r"stalled at 1000 bytes .*time-out 0.5 s.*put it at .*model.pt"):
        reprl.load("r3m-resnet18")
    assert time.perf_counter() - t0 < 2.5
    assert not (cache / "pretrained" / "r3m-resnet18" / "model.pt").exists()


def test_offline_error_names_the_address_and_how_to_place_the_file(cache, monkeypatch):
    files = {"model.pt": "http://127.0.0.1:9/vip/model.pt", "config.yaml": "http://127.0.0.1:9/vip/config.yaml"}
    monkeypatch.setitem(pretrained.RELEASES, "vip-resnet50",
                        dataclasses.replace(pretrained.RELEASES["vip-resnet50"], files=files))
    with pytest.raises(ReprlError) as e:
        reprl.load("vip-resnet50")
    msg = str(e.value)
    assert "\n" not in msg and "cannot reach http://127.0.0.1:9/vip/model.pt" in msg
    assert "reprl convert model.pt --out DIR" in msg
    placed = cache / "pretrained" / "vip-resnet50" / "model.pt"
    assert str(placed) in msg
    torch.save(resnet_checkpoint("vip", 8), placed)  # placed by hand, as the message says: no network needed
    assert reprl.load("vip-resnet50").config.embed_dim == 8


def test_a_web_page_instead_of_the_file_is_an_error(server, cache, monkeypatch, tmp_path):
    serve_release(server, monkeypatch, tmp_path, "r3m-resnet34", resnet_checkpoint("r3m", 0))
    server.mode["/r3m-resnet34/model.pt"] = "html"
    with pytest.raises(ReprlError, match="answered with a web page"):
        reprl.load("r3m-resnet34")


def test_cache_location_and_timeout_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REPRL_CACHE", str(tmp_path / "c"))
    assert pretrained.release_dir("liv") == tmp_path / "c" / "pretrained" / "liv"
    monkeypatch.delenv("REPRL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_dir() == tmp_path / "xdg" / "reprl"
    monkeypatch.setenv("REPRL_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ReprlError, match="REPRL_DOWNLOAD_TIMEOUT must be a number"):
        pretrained.timeout_s()
    with pytest.raises(ReprlError, match="unknown pretrained name 'vip'; known: vip-resnet50"):
        pretrained.fetch("vip")


def test_official_addresses_are_the_published_ones():
    r = pretrained.RELEASES
    assert r["vip-resnet50"].url == "https://pytorch.s3.amazonaws.com/models/rl/vip/model.pt"
    assert r["liv"].files == {"model.pt": "https://huggingface.co/jasonyma/LIV/resolve/main/model.pt",
                              "config.yaml": "https://huggingface.co/jasonyma/LIV/resolve/main/config.yaml"}
    assert "id=1Xu0ssuG0N1zjZS54wmWzJ7-nb0-7XzbA" in r["r3m-resnet50"].url
    assert "id=1A1ic-p4KtYlKXdXHcV2QV0cUzI4kn0u-" in r["r3m-resnet18"].url


def test_random_init_is_never_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="reprl"):
        enc = reprl.load("tiny")
    assert "tiny is an architecture name: random init" in caplog.text
    assert enc.config.random_init and enc.config.label == "tiny (random init)"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reprl"):  # asked for by name: random init is what was meant
        same = reprl.load("random:tiny")
    assert caplog.text == "" and same.config.source == "random init like tiny"
    torch.manual_seed(0)
    for a, b in zip(same.state_dict().values(), reprl.encoders.io.build_encoder("tiny").state_dict().values()):
        torch.testing.assert_close(a, b)  # the same weights as before the warning was dropped for it
    with pytest.raises(ReprlError, match="the encoder source is empty"):
        reprl.load(" ")


@pytest.mark.slow
def test_liv_name_downloads_and_imports_the_clip_layout(server, cache, monkeypatch, tmp_path):
    import open_clip

    torch.manual_seed(1)
    ref = open_clip.create_model("RN50", pretrained=None).eval()
    state = {f"module.model.{k}": v.half() for k, v in ref.state_dict().items() if v.is_floating_point()}
    serve_release(server, monkeypatch, tmp_path, "liv", {"liv": state})
    monkeypatch.setenv("REPRL_DOWNLOAD_TIMEOUT", "10")
    enc = reprl.load("liv")
    assert enc.has_text and enc.config.similarity == "cosine" and enc.config.embed_dim == 1024
    assert enc.embed_text(["open the drawer"]).shape == (1, 1024)
