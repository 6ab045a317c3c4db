"""Eager ResNet-18 / tiny forward, one thread: input contiguous vs channels-last, model contiguous vs channels-last."""
import time, sys, copy, torch
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
from reprl.bench import bench_encoder
name = sys.argv[1]
def t(fn, inp, n=15):
    ts=[]
    for _ in range(n):
        s=time.perf_counter(); fn(inp); ts.append(time.perf_counter()-s)
    ts.sort(); return 1000*ts[len(ts)//2]
with torch.no_grad():
    for size, b in ((64, 5), (64, 32), (224, 8)):
        enc = bench_encoder(name, size).eval()
        encl = copy.deepcopy(enc).to(memory_format=torch.channels_last)
        x = torch.rand(b, 3, size, size); xcl = x.contiguous(memory_format=torch.channels_last)
        for f, i in ((enc.encode, x), (enc.encode, xcl), (encl.encode, xcl), (encl.encode, x)): f(i); f(i)
        res = {k: [] for k in ("model C, in C", "model C, in CL", "model CL, in CL", "model CL, in C")}
        for _ in range(3):
            res["model C, in C"].append(t(enc.encode, x)); res["model C, in CL"].append(t(enc.encode, xcl))
            res["model CL, in CL"].append(t(encl.encode, xcl)); res["model CL, in C"].append(t(encl.encode, x))
        print(name, size, "px batch", b, {k: round(sorted(v)[1], 2) for k, v in res.items()}, flush=True)
