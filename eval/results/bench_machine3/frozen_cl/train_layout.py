"""One training step's forward + backward of ResNet-18 at 64 px on 128 channels-last images (32 VIP tuples x 4
frames), weights in the default layout vs channels-last; 2 threads, median of 3 x 8 steps after warm-up."""
import copy, sys, time, torch
from reprl.bench import bench_encoder
torch.set_num_threads(2)
name, size = sys.argv[1], int(sys.argv[2])
enc = bench_encoder(name, size).train()
for p in enc.parameters(): p.requires_grad_(True)
cl = copy.deepcopy(enc).to(memory_format=torch.channels_last)
x = torch.rand(128, 3, size, size).contiguous(memory_format=torch.channels_last)
def step(m):
    m.zero_grad(set_to_none=True); m.encode(x).pow(2).mean().backward()
def t(m, n=8):
    ts = []
    for _ in range(n):
        s = time.perf_counter(); step(m); ts.append(time.perf_counter() - s)
    return 1000 * sorted(ts)[n // 2]
for m in (enc, cl): step(m); step(m)
res = {"weights default": [], "weights channels-last": []}
for _ in range(3):
    res["weights default"].append(t(enc)); res["weights channels-last"].append(t(cl))
print(name, size, "px, 128 channels-last images, ms per forward+backward:", {k: round(sorted(v)[1], 1) for k, v in res.items()})
