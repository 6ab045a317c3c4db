"""N processes x B/N samples must give the loss and gradients of 1 process x B (gathering with gradients),
and Lightning DDP must run on CPU with gloo, on one node and across two 'nodes' on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reprl.encoders.registry import build_encoder
from reprl.objectives import liv_loss, r3m_loss, vip_loss
from reprl.objectives.common import gather_with_grad
from reprl.objectives.liv import caption_ids

pytestmark = pytest.mark.slow

B, ROLES = 8, 5
CAPTIONS = ["open the drawer", "close the door", "open the drawer", "push the puck"] * 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Model(torch.nn.Module):
    """A tiny image encoder (no batch statistics) plus a text-embedding table for the LIV case."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = build_encoder("tiny", image_size=32, embed_dim=16)
        self.text = torch.nn.Embedding(4, 16)

    def forward(self, images: torch.Tensor, text_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(images), self.text(text_idx)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (ROLES, B, 3, 32, 32), dtype=torch.uint8, generator=g)
    return frames, torch.tensor([[0, 1, 0, 2][i % 4] for i in range(B)])


def losses(model: torch.nn.Module, frames: torch.Tensor, text_idx: torch.Tensor, texts: list[str], gather) -> dict:
    n = frames.shape[1]
    emb, text = model(frames.reshape(-1, 3, 32, 32), text_idx)
    s, g, t, t1, tg = emb.split(n)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731  same seed on every rank
    out = {
        "vip": vip_loss(s, g, t, t1, num_negatives=2, l1_weight=0.01, l2_weight=0.01, generator=gen(),
                        gather=gather)[0],
        "liv": liv_loss(s, g, t, t1, tg, text, num_negatives=1, ids=caption_ids(texts), generator=gen(),
                        gather=gather)[0],
        "r3m": r3m_loss(s, g, t, t1, tg, lang_weight=0.0, num_negatives=2, generator=gen(), gather=gather)[0],
    }
    return out


def _rank_main(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        frames, text_idx = data()
        part = slice(rank * B // world, (rank + 1) * B // world)
        result = {}
        for name in ("vip", "liv", "r3m"):
            # the text table is unused by vip / r3m: let DDP know, or it never reduces that bucket
            model = torch.nn.parallel.DistributedDataParallel(Model(), find_unused_parameters=name != "liv")
            loss = losses(model, frames[:, part], text_idx[part], CAPTIONS[part], gather_with_grad)[name]
            loss.backward()
            result[name] = (loss.item(), {k: p.grad.numpy().copy() for k, p in model.module.named_parameters()
                                          if p.grad is not None})  # numpy: no shared-memory handles
        queue.put((rank, result))
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_loss_and_gradients_of_one():
    frames, text_idx = data()
    single = {}
    for name in ("vip", "liv", "r3m"):
        model = Model()
        loss = losses(model, frames, text_idx, CAPTIONS, None)[name]
        loss.backward()
        single[name] = (loss.item(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for name, (loss, grads) in single.items():
        for rank in range(2):
            r_loss, r_grads = results[rank][name]
            assert r_loss == pytest.approx(loss, rel=1e-5), f"{name} loss on rank {rank}"
            assert set(r_grads) == set(grads)
            for k in grads:  # DDP averages rank gradients; gathering with gradients makes that the full-batch one
                torch.testing.assert_close(torch.from_numpy(r_grads[k]), grads[k], atol=1e-5, rtol=1e-4,
                                           msg=f"{name} {k}")


REPO = Path(__file__).resolve().parents[1]
TINY = ["--encoder.name", "tiny", "--encoder.image_size", "32", "--encoder.embed_dim", "16",
        "--objective.num_negatives", "1", "--data.train", str(REPO / "tests/data/metaworld/train"),
        "--data.batch_size", "8", "--data.num_workers", "0", "--data.batches_per_epoch", "10",
        "--data.shuffle_buffer", "8", "--trainer.accelerator", "cpu", "--trainer.max_steps", "4",
        "--trainer.checkpoint_every", "2", "--trainer.progress", "false", "--trainer.loggers", "csv"]


def test_lightning_ddp_on_two_cpu_processes(tmp_path):
    cmd = [sys.executable, "-m", "reprl", "pretrain", "--run_dir", str(tmp_path / "run"), *TINY,
           "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 process(es)" in out.stdout and "trained 4 steps" in out.stdout
    assert (tmp_path / "run" / "encoder" / "model.safetensors").exists()


def test_two_nodes_of_one_process_on_loopback(tmp_path):
    port = str(free_port())
    procs = []
    for node in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(node),
               "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
        cmd = [sys.executable, "-m", "reprl", "pretrain", "--run_dir", str(tmp_path / "run"), *TINY,
               "--trainer.devices", "1", "--trainer.num_nodes", "2", "--trainer.strategy", "ddp"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      cwd=tmp_path))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "2 process(es)" in outs[0][0] and "trained 4 steps" in outs[0][0]
    assert (tmp_path / "run" / "encoder" / "model.safetensors").exists()
