"""Group an ORT profile's node times by op type and input/output shapes.

usage: python3 opshapes.py PROFILE.json [TOP]

Leaves out the first model run (allocation, algorithm search) and prints
the TOP (op, shapes) groups by summed kernel time, with calls per run and
bytes (ORT's activation + output + parameter sizes). Run it on a profile
taken with CUDA_LAUNCH_BLOCKING=1, or the times are kernel launches only.
"""
import collections
import json
import sys

events = json.load(open(sys.argv[1]))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
runs = [e for e in events if e.get("name") == "model_run"]
start = runs[1]["ts"] if len(runs) > 1 else 0
kept = max(len(runs) - 1, 1)
groups = collections.defaultdict(lambda: [0, 0, 0.0])
total = 0.0
for e in events:
    if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
        continue
    a = e["args"]
    shapes = [tuple(next(iter(d.values()))) for d in a.get("input_type_shape", []) + a.get("output_type_shape", [])]
    key = (a.get("op_name"), str(shapes)[:140])
    g = groups[key]
    g[0] += 1
    g[1] += int(a.get("activation_size", 0)) + int(a.get("output_size", 0)) + int(a.get("parameter_size", 0))
    g[2] += e["dur"] / 1000
    total += e["dur"] / 1000
print(f"{kept} run(s), {total / kept:.1f} ms per run; per run: calls, ms, GB, op, shapes")
for (op, shapes), (n, b, ms) in sorted(groups.items(), key=lambda kv: -kv[1][2])[:top]:
    print(f"{n / kept:6.1f} {ms / kept:8.2f} {b / kept / 1e9:7.2f}  {op:20s} {shapes}")
