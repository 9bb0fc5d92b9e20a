#!/usr/bin/env bash
# Soak test: a long Stage-3 (distill) run on the demo teacher on the CPU,
# with the process's resident set sampled every INTERVAL seconds, to show
# that memory stays flat (no leaked ONNX Runtime values or sessions) over
# thousands of training steps, held-out evaluations and checkpoints.
#
#   bench/soak.sh [OUTDIR]        (run from the repository root; make soak)
#
# Environment: MINUTES (default 30) of training, INTERVAL (default 10) s
# between samples, PIPELINE (default: build bin/pipeline).
# Writes OUTDIR/rss.csv (elapsed_s,rss_kib,step), OUTDIR/pipeline.log and
# OUTDIR/summary.txt (start/min/max/end RSS from the first sample after
# step 1, and the least-squares slope after the first 10% of samples, the
# warm-up).
# The run is stopped with SIGTERM, which makes it checkpoint and exit
# cleanly (exit status 130); the script exits non-zero when the slope
# after warm-up exceeds MAX_SLOPE_KIB_PER_MIN (default 256 KiB/min).
set -euo pipefail
out=${1:-runs/soak}
minutes=${MINUTES:-30}
interval=${INTERVAL:-10}
max_slope=${MAX_SLOPE_KIB_PER_MIN:-256}
root=$(pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
P=${PIPELINE:-}
if [ -z "$P" ]; then
  go build -o bin/pipeline ./cmd/pipeline
  P=$root/bin/pipeline
fi
demo=$root/testdata/demo
rm -rf "$out/runs"
cat >"$out/soak.yaml" <<EOF
name: soak
output_dir: $out/runs
seed: 7
teacher: {path: $demo/teacher}
student: {chunk_size: 32}
data:
  train: [{path: $demo/train.txt}]
  val: [{path: $demo/val.txt}]
  cache_dir: $out/cache
training:
  seq_len: 128
  micro_batch: 8
  tokens_per_update: 2048
  eval_every: 100
  eval_windows: 8
  checkpoint_every: 100
eval: {windows: 8, seq_len: 128, after_each_stage: false}
checkpoints: {keep_last: 2}
runtime: {cpu: {intra_op_threads: 1}}
stages:
  - {name: distill, kind: distill, tokens: 1000000000, lr: 0.0005}
EOF
"$P" run "$out/soak.yaml" >"$out/pipeline.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
echo "elapsed_s,rss_kib,step" >"$out/rss.csv"
t0=$(date +%s)
end=$((t0 + minutes * 60))
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  step=$(grep -o '"step":[0-9]*' "$out/runs/soak/metrics.jsonl" 2>/dev/null | tail -1 | cut -d: -f2 || true)
  [ -n "$rss" ] && echo "$((now - t0)),$rss,${step:-0}" >>"$out/rss.csv"
  if [ "$now" -ge "$end" ]; then
    kill -TERM "$pid"
    break
  fi
  sleep "$interval"
done
rc=0
wait "$pid" || rc=$?
echo "pipeline exit status $rc (130: interrupted by the script, as intended)" >>"$out/pipeline.log"
awk -F, -v max="$max_slope" '
  BEGIN { n = 0; m = 0 }
  NR == 1 || $3 == 0 { next }   # header; samples before the first step (start-up)
  { t[n] = $1; r[n] = $2; s[n] = $3; n++ }
  END {
    if (n < 3) { print "too few samples"; exit 1 }
    min = r[0]; mx = r[0]
    for (i = 0; i < n; i++) { if (r[i] < min) min = r[i]; if (r[i] > mx) mx = r[i] }
    w = int(n / 10)
    for (i = w; i < n; i++) { sx += t[i]; sy += r[i]; sxx += t[i] * t[i]; sxy += t[i] * r[i]; m++ }
    slope = (m * sxy - sx * sy) / (m * sxx - sx * sx) * 60
    printf "samples %d over %.1f min, steps %d\n", n, t[n-1] / 60, s[n-1]
    printf "rss_kib start %d  min %d  max %d  end %d  (after warm-up at %ds: %d)\n", r[0], min, mx, r[n-1], t[w], r[w]
    printf "slope after warm-up %.1f KiB/min (limit %d)\n", slope, max
    if (slope > max) { print "FAIL: resident set grows"; exit 1 }
    print "OK: resident set flat"
  }' "$out/rss.csv" | tee "$out/summary.txt"
