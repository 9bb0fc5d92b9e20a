# Where PyTorch's Stage 3 step spends its GPU time: the step of
# ../shared/tools/torch-reference/perf_torch.py (loaded from there at run
# time, so it is the very step we compare against) under torch.profiler.
#
# Usage: python3 profile_torch.py PERF_TORCH_PY [bf16|tf32] [MICRO_BATCH] [SEQ] [ROWS]
# Prints, per step: wall time, the sum of GPU kernel time (so whether the
# step is GPU-bound), that time grouped into the step's parts by kernel
# name (GEMM, conv, optimizer, elementwise, ...), then the ROWS kernels and
# the ROWS operators with the most GPU time.
import sys, time, collections
import torch
from torch.profiler import profile, ProfilerActivity

ref = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "bf16"
mb = sys.argv[3] if len(sys.argv) > 3 else "4"
T = sys.argv[4] if len(sys.argv) > 4 else "2048"
rows = int(sys.argv[5]) if len(sys.argv) > 5 else 30
src = open(ref).read()
sys.argv = [ref, mode, mb, T]
g = {"__file__": ref, "__name__": "perf_torch"}
exec(src[:src.index("for _ in range(3)")], g)  # model, optimizer and step(), no timing loop
step = g["step"]
for _ in range(3):
    step()
torch.cuda.synchronize()
n = 2
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    t0 = time.time()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    wall = (time.time() - t0) / n

def dev_time(e, own=True):  # GPU time in µs (the attribute's name changed across torch versions)
    names = ("self_device_time_total", "self_cuda_time_total") if own else ("device_time_total", "cuda_time_total")
    for a in names:
        if hasattr(e, a):
            return getattr(e, a)
    return 0

avg = prof.key_averages()
# Kernels only: user annotations such as "Optimizer.step#AdamW.step" also
# show on the GPU timeline, spanning kernels already counted.
kernels = [e for e in avg if e.device_type == torch.autograd.DeviceType.CUDA and "#" not in e.key
           and not e.key.startswith(("Optimizer.", "ProfilerStep"))]
kt = lambda e: max(dev_time(e), dev_time(e, False))
gpu = sum(kt(e) for e in kernels)
print(f"mode {mode} mb {mb} seq {T}: wall {wall*1e3:.1f} ms/step, GPU kernels {gpu/n/1e3:.1f} ms/step ({sum(e.count for e in kernels)//n} kernels/step)")

parts = collections.OrderedDict((k, 0.0) for k in
    ["gemm", "attention", "conv", "optimizer", "softmax/loss", "norm", "reduce", "copy/cast", "elementwise", "other"])
def part(name):
    s = name.lower()
    if any(k in s for k in ("gemm", "cutlass", "xmma", "nvjet", "ampere_", "sm80_", "sm90_", "cublas")):
        return "gemm"
    if any(k in s for k in ("flash", "fmha", "attention", "efficient")):
        return "attention"
    if "conv" in s or "cudnn" in s or "depthwise" in s:
        return "conv"
    if "adam" in s or "multi_tensor" in s:
        return "optimizer"
    if "softmax" in s or "nll" in s or "cross_entropy" in s:
        return "softmax/loss"
    if "layer_norm" in s or "layernorm" in s:
        return "norm"
    if "reduce" in s:
        return "reduce"
    if "copy" in s or "cat" in s or "memcpy" in s or "memset" in s:
        return "copy/cast"
    if "elementwise" in s or "vectorized" in s or "unrolled" in s:
        return "elementwise"
    return "other"
for e in kernels:
    parts[part(e.key)] += kt(e)
print("part           ms/step")
for k, v in parts.items():
    print(f"{k:14s} {v/n/1e3:8.1f}")
print(f"top {rows} kernels by GPU time (ms per step, calls per step):")
for e in sorted(kernels, key=kt, reverse=True)[:rows]:
    print(f"{kt(e)/n/1e3:8.2f} {e.count//n:5d}  {e.key[:100]}")
ops = [e for e in avg if e.device_type != torch.autograd.DeviceType.CUDA]
print(f"top {rows} operators by own GPU time (ms per step, calls per step):")
for e in sorted(ops, key=dev_time, reverse=True)[:rows]:
    print(f"{dev_time(e)/n/1e3:8.2f} {e.count//n:5d}  {e.key[:90]}")
