"""How far a compiled encoder's embeddings are from the eager ones: every frame of drawer-open's videos in the
compile/precision check suites' cached render, ResNet-18 `study-vip_nocrop`, float32 and bf16, batches of 10 (the
rollouts' group size) through the compiled copy reprl's policies use. Prints and writes embeddings.json."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

import reprl
from reprl.data.reader import expand_urls, iter_videos
from reprl.embed.pipeline import autocast
from reprl.encoders.compiled import compiled_for_inference

torch.set_num_threads(1)
data = sys.argv[1] if len(sys.argv) > 1 else "eval/cache/data/drawer-open-691a0bf98be1"
enc = reprl.load("study-vip_nocrop")
fast = compiled_for_inference(enc)
out = {}
for precision in ("32", "bf16"):
    rel, cos, n = [], [], 0
    for v in iter_videos(expand_urls(data)):
        frames = v.decode(range(len(v)), channels_last=True)
        with torch.inference_mode(), autocast(torch.device("cpu"), precision):
            for chunk in frames.split(10):
                a, b = enc(chunk).float(), fast(chunk).float()
                rel.append(((a - b).norm(dim=1) / a.norm(dim=1)).numpy())
                cos.append(torch.nn.functional.cosine_similarity(a, b).numpy())
                n += len(chunk)
    rel_all, cos_all = np.concatenate(rel), np.concatenate(cos)
    out[precision] = {"frames": n, "relative_difference_median": float(np.median(rel_all)),
                      "relative_difference_max": float(rel_all.max()), "cosine_min": float(cos_all.min())}
    print(precision, out[precision], flush=True)
Path(__file__).with_name("embeddings.json").write_text(json.dumps(out, indent=1) + "\n")
