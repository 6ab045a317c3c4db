# Relative decode CPU time of simplejpeg fastdct / fastupsample vs the exact decoder (docs/benchmarks.md).
# Usage: python measure.py SHARD_FOLDER   (e.g. demo_out/corpus/train after make demo)
import glob
import sys
import tarfile
import time

import numpy as np
import simplejpeg

tars = sorted(glob.glob(sys.argv[1] + "/shard-*.tar"))[:2]
jpegs = []
for t in tars:
    with tarfile.open(t) as tf:
        for m in tf:
            if m.name.endswith(".jpg"):
                jpegs.append(tf.extractfile(m).read())
jpegs = jpegs[:400]
h, w, _, _ = simplejpeg.decode_jpeg_header(jpegs[0])
print(len(jpegs), "frames", h, w)
def run(scale, fd, fu):
    mh, mw = (0, 0) if scale == 8 else (-(-h*scale//8), -(-w*scale//8))
    t0 = time.process_time()
    for b in jpegs:
        simplejpeg.decode_jpeg(b, colorspace="RGB", min_height=mh, min_width=mw, fastdct=fd, fastupsample=fu)
    return time.process_time() - t0
for scale in (8, 4, 2, 1):
    res = {k: [] for k in [(False, False), (True, False), (False, True), (True, True)]}
    for _rep in range(5):
        for k in res:
            res[k].append(run(scale, *k))
    base = np.median(res[(False, False)])
    print(scale, "full-accuracy %.1f us/frame" % (1e6 * base / len(jpegs)),
          {f"fastdct={k[0]},fastup={k[1]}": round(float(np.median(v) / base), 3) for k, v in res.items()})
# pixel difference at full scale
a = simplejpeg.decode_jpeg(jpegs[0], colorspace="RGB").astype(int)
for fd, fu in [(True, False), (False, True), (True, True)]:
    d = np.abs(simplejpeg.decode_jpeg(jpegs[0], colorspace="RGB", fastdct=fd, fastupsample=fu).astype(int) - a)
    print(fd, fu, "mean abs diff", d.mean(), "max", d.max())
