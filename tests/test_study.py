"""The study's pieces: LIV with a frozen pretrained sentence encoder as text tower, and `make study` in a tiny
configuration (the real figures come from the full run, docs/results.md)."""

from __future__ import annotations

import torch
from test_training import metrics, tiny

import reprl


def test_liv_trains_resnet_with_frozen_sentence_text_tower(tmp_path):
    from reprl.training.run import build_training_encoder, pretrain

    cfg = tiny(tmp_path, "--encoder.name", "resnet18-minilm", "--encoder.embed_dim", "16", "--objective.name", "liv",
               "--objective.num_negatives", "1", "--data.batch_size", "4", "--trainer.max_steps", "2",
               "--trainer.checkpoint_every", "2")
    enc = build_training_encoder(cfg)
    assert enc.config.similarity == "cosine" and enc.text_parameters()
    assert all(p.requires_grad for p in enc.text_parameters())
    assert not any(k.startswith("model.") or "embeddings" in k for k in enc.state_dict())  # MiniLM is not saved
    summary = pretrain(cfg)
    names = {k for r in metrics(tmp_path / "run") for k, v in r.items() if v}
    assert {"train/clip", "train/vip_i/loss", "train/vip_l/loss"} <= names
    loaded = reprl.load(summary["encoder"])
    again = reprl.load(summary["encoder"])
    a, b = loaded.embed_text(["open the drawer"]), again.embed_text(["open the drawer"])
    assert a.shape == (1, 16) and torch.equal(a, b)
    assert not torch.allclose(a, loaded.embed_text(["close the door"]))  # the sentence encoder tells texts apart
