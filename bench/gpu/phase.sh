#!/usr/bin/env bash
# GPU measurement phases (docs/benchmarks.md and docs/results.md quote their
# output with these exact commands). Run from the repository root on the GPU
# machine after the ONNX Runtime CUDA staging of ../shared/docs/GPU.md:
#   bench/gpu/phase.sh A|B|…|Z OUTDIR
# Environment: PIPELINE (binary, default bin/pipeline), SHARED (default
# ../shared), QUICK=1 shrinks every size for a dry rehearsal on a CPU box
# (PROVIDER=cpu). Since 2026-12-08 the blocks' fused kernels
# (training.block_kernels) and ORT's memory pattern off are the defaults:
# phases before OURS13 ran without the kernels unless they passed
# --block-kernels, and with the pattern on.
set -uo pipefail
phase=$1; out=$2; mkdir -p "$out"
P=${PIPELINE:-bin/pipeline}; S=${SHARED:-../shared}; PROV=${PROVIDER:-cuda}
RUNS=${RUNS:-$out/runs}  # ablation runs (phase C exports a student from them)
TINY=$S/reference/phi-tiny-en; DATA=$S/data/en; TORCH=$S/tools/torch-reference
q() { if [ "${QUICK:-0}" = 1 ]; then echo "$2"; else echo "$1"; fi; }
log() { echo "== $(date -u +%T) $*" | tee -a "$out/log.txt"; }
# run NAME TIMEOUT CMD...: append CMD's JSON lines to $out/NAME.jsonl
# The device returns at most eight files per call, so each result line is
# also echoed (shortened) to stdout, which comes back in the call's output.
# short N: result lines cut to N characters, keeping each line's start and
# its losses (bench-stage puts them last; the fields between are elided).
short() { sed -E 's/("mfu_vs_790":[^,]*),.*("losses":)/\1,…,\2/' | cut -c1-$1; }
run() { local name=$1 t=$2 rc; shift 2; log "$name: $*"; timeout "$t" "$@" 2>>"$out/$name.err" | tee -a "$out/$name.jsonl" | short 900; rc=${PIPESTATUS[0]}; [ $rc = 0 ] || tail -n 3 "$out/$name.err" | cut -c1-400; echo "rc=$rc $name" | tee -a "$out/log.txt"; return $rc; }
# gpumem NAME: sample GPU memory (MiB) every 0.5 s into gpumem-NAME.txt until killed.
gpumem() { while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 >>"$out/gpumem-$1.txt"; sleep 0.5; done; }

# against_torch RUNS [PRECISIONS]: PyTorch's Stage 3 step, then ours
# (bench-stage --runs RUNS) with GPU memory sampled, in each of PRECISIONS
# (default "fp32 bf16"; PyTorch's fp32 is its TF32), and the binary $ALT
# when set (in $ALT_PRECISION, default fp32): one machine session, so ratios
# compare runs on the same GPU.
against_torch() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  local precs=${2:-fp32 bf16} pr pid
  for pr in $precs; do
    [ "$PROV" = cuda ] && run perf_torch 200 python3 $TORCH/perf_torch.py ${pr/fp32/tf32} 4 2048
  done
  local S3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs $1 --provider $PROV --tf32"
  for pr in $precs; do
    gpumem s3$pr </dev/null >/dev/null 2>&1 & pid=$!
    run stage3 200 $P bench-stage $S3 --precision $pr
    kill $pid 2>/dev/null
  done
  [ -n "${ALT:-}" ] && run stage3_alt 200 $ALT bench-stage $S3 --precision ${ALT_PRECISION:-fp32}
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done | tee "$out/gpumem-peaks.txt"
}

# cuda_tests REGEX: the graphs package's CUDA tests matching REGEX, and the
# train and runtime packages' CUDA tests, from the test binaries in
# GRAPHS_TEST, TRAIN_TEST and RUNTIME_TEST (each when set), into
# cuda-test.txt.
cuda_tests() {
  [ -n "${GRAPHS_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $GRAPHS_TEST -test.run "$1" -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|worst|error" | tee "$out/cuda-test.txt"
  [ -n "${TRAIN_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $TRAIN_TEST -test.run 'TestAllReduceNCCL|TestInPlaceMatchesOutOfPlace' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|NCCL|error" | tee -a "$out/cuda-test.txt"
  [ -n "${RUNTIME_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $RUNTIME_TEST -test.run 'TestCUDA|TestUpload' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|error" | tee -a "$out/cuda-test.txt"
}

# stage3_new_alt: Stage 3 bf16 at micro-batch 4 under the 76 GB cap with
# $O3's flags, ours and then $ALT (when set), GPU memory sampled per run.
# With BLOCK=1 ours runs once more with the blocks' fused kernels
# (--block-kernels) as "block".
stage3_new_alt() {
  local b pid
  for b in "$P new" ${BLOCK:+"$P block --block-kernels"} ${ALT:+"$ALT alt"}; do
    set -- $b
    gpumem s3_$2-bf16-mb4 </dev/null >/dev/null 2>&1 & pid=$!
    run stage3_$2 280 $1 bench-stage $O3 --mem-limit-gb $(q 76 2) --precision bf16 --micro-batch $(q 4 1) ${3:-}
    kill $pid 2>/dev/null
  done
}

# stage3_at MB: ours at micro-batch MB with $O3's flags, in bf16 unless MB
# is 4 (run by stage3_new_alt), then in fp32 with TF32 products; then
# every sampled run's GPU memory peak.
stage3_at() {
  local pid pr
  for pr in bf16 fp32; do
    [ "$pr" = bf16 ] && [ "$1" = 4 ] && continue
    gpumem s3_new-$pr-mb$1 </dev/null >/dev/null 2>&1 & pid=$!
    run stage3_new 280 $P bench-stage $O3 --precision $pr --micro-batch $1
    kill $pid 2>/dev/null
  done
}

# arena_of NAME: the ORT arenas of NAME's last result line (bench-stage's
# "arena"), peak in use and reserved in GB, one line.
arena_of() { python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print("arena " + sys.argv[2] + ": " + "; ".join("%s %.2f/%.2f GB%s" % (a["session"], a["max_in_use_bytes"] / 1e9, a["reserved_bytes"] / 1e9, " open" if a.get("open") else "") for a in r.get("arena") or []) + " (peak in use/reserved)")
' "$out/$1.jsonl" "$1" 2>/dev/null | tee -a "$out/arena.txt"; }

# stage3_variants "NAME [FLAGS]"...: ours, Stage 3 bf16 at micro-batch 4
# under the 76 GB cap with $O3's flags and each variant's FLAGS, named
# stage3_NAME, GPU memory sampled and the ORT arenas printed per run.
stage3_variants() {
  local v pid
  for v in "$@"; do
    set -- $v
    gpumem s3_$1 </dev/null >/dev/null 2>&1 & pid=$!
    run stage3_$1 280 $P bench-stage $O3 --mem-limit-gb $(q 76 2) --precision bf16 --micro-batch $(q 4 1) ${2:-}
    kill $pid 2>/dev/null
    arena_of stage3_$1
  done
}

# gpumem_peaks: each sampled run's peak into gpumem-peaks.txt.
gpumem_peaks() { for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done | tee "$out/gpumem-peaks.txt"; }

# gpu_mb: the Stage 3 micro-batch both PyTorch peers and ours fit at seq
# 2048: 4 on a card of 100 GB or more (H200), else 2 (H100 80 GB).
gpu_mb() { local m; m=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1); [ "${m:-0}" -ge 100000 ] && echo 4 || echo 2; }

# stage3_sampled PREFIX TIMEOUT "FLAGS" VARIANT...: one bench-stage run of
# Stage 3 per VARIANT, "PRECISION MICRO_BATCH RECOMPUTE LOSS_CHUNK
# [ALL_REDUCE]" (RECOMPUTE none: no recomputation), named
# PREFIX<variant>, with GPU memory sampled per run; then each run's peak.
stage3_sampled() {
  local prefix=$1 t=$2 flags=$3 v name pid; shift 3
  for v in "$@"; do
    set -- $v; name=$1-mb$2-$3-$4${5:+-$5}
    gpumem $prefix$name </dev/null >/dev/null 2>&1 & pid=$!
    run "$prefix$name" $t $P bench-stage $flags --precision $1 --micro-batch $2 --recompute=${3/none/} --loss-chunk $4 ${5:+--all-reduce $5} >/dev/null
    kill $pid 2>/dev/null
  done
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done | tee "$out/gpumem-peaks.txt"
}

case $phase in
A)
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1
  run eval 120 $P eval --model $TINY --data $DATA/val.txt --provider $PROV --json
  run forward 120 $P bench-forward --model $TINY --batch 16 --seq 256 --iters $(q 20 2) --provider $PROV
  run forward 120 $P bench-forward --model $TINY --batch 16 --seq 256 --iters $(q 5 2) --provider cpu
  [ "$PROV" = cuda ] && run forward_torch 180 python3 bench/torch/forward_torch.py $TINY 16 256 20
  run forward 300 $P bench-forward --model $(q phi-1.5 phi-1.5:1) --batch 1 --seq $(q 2048 128) --iters $(q 10 2) --provider $PROV
  run forward 300 $P bench-forward --model $(q phi-1.5 phi-1.5:1) --batch 1 --seq $(q 2048 128) --iters $(q 10 2) --provider $PROV --tf32
  [ "$PROV" = cuda ] && run forward_torch 300 python3 bench/torch/forward_torch.py phi-1.5 1 2048 10
  [ "$PROV" = cuda ] && run forward_torch 300 python3 bench/torch/forward_torch.py phi-1.5 1 2048 10 tf32
  for st in pretrain-teacher distill align orient; do
    for spr in 1 $(q 16 2); do
      run stage_tiny 240 $P bench-stage --teacher $TINY --stage $st --micro-batch $(q 16 2) --seq $(q 256 64) --steps-per-run $spr --runs $(q 3 1) --provider $PROV
    done
  done
  ;;
B)
  for b in ${BUDGETS:-1000000 3300000}; do
    run ablate_$b 1200 $P ablate configs/phi-tiny-en.yaml --budget $(q $b 60000) --provider $PROV \
      training.steps_per_run=${SPR:-8} output_dir=$RUNS
    cp $RUNS/*ablation*.md "$out/" 2>/dev/null
  done
  ;;
C)
  $P export --model $TINY --out $out/exp-teacher >/dev/null 2>>"$out/export.err"
  student=$(ls -d $RUNS/*-s123-*/stages/02-distill/output 2>/dev/null | tail -1)
  if [ -n "$student" ]; then
    $P export --model $student --out $out/exp-student >/dev/null 2>>"$out/export.err"
    run bench_generate 300 $P bench-generate --student $out/exp-student --teacher $out/exp-teacher --contexts $(q 1024,4096,16384 64,256) --decode-tokens $(q 32 4) --out $out/bench-generate-$PROV --provider $PROV
    cp $out/bench-generate-$PROV/bench.* "$out/" 2>/dev/null
  else
    log "no distilled student under $RUNS: bench-generate skipped"
  fi
  rm -rf $out/exp-teacher $out/exp-student
  [ "$PROV" = cuda ] && run perf_torch 200 python3 $TORCH/perf_torch.py tf32 4 2048
  [ "$PROV" = cuda ] && run perf_torch 200 python3 $TORCH/perf_torch.py bf16 4 2048
  gpumem distill </dev/null >/dev/null 2>&1 & pid=$!
  run stage_phi15 540 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs $(q 2 1) --provider $PROV --tf32
  kill $pid 2>/dev/null
  ;;
D)
  # Recipe sweep around the peer's setting: Stage 3 at lr 1e-3, and the
  # attention-derived mixer initialisation (q→C, k→B, v→x, dense→out_proj).
  for b in ${BUDGETS:-1000000 3300000}; do
    run sweep_lr3_$b 600 $P ablate configs/phi-tiny-en.yaml --budget $(q $b 60000) --recipes s123,s23,s3 --lr-distill 0.001 \
      --provider $PROV training.steps_per_run=${SPR:-16} output_dir=$RUNS name=phi-tiny-en-lr3
    run sweep_att_$b 600 $P ablate configs/phi-tiny-en.yaml --budget $(q $b 60000) --recipes s123,s23,s3 \
      --provider $PROV training.steps_per_run=${SPR:-16} output_dir=$RUNS name=phi-tiny-en-att student.init=attention
  done
  cp $RUNS/*-lr3-ablation*.md $RUNS/*-att-ablation*.md "$out/" 2>/dev/null
  ;;
PEERS)
  # Seventh session (issue 19), Python only, so it runs while ORT's CUDA
  # provider is still being staged: the eager PyTorch Stage 3 step and the
  # Phi-Mamba authors' Triton step ($AUTHORS, default .authors/perf_authors.py
  # with pm/ beside it: ../shared/tools/torch-reference/README.md) in bf16
  # and TF32 at the micro-batch both fit (gpu_mb); on an 80 GB card also
  # eager bf16 at micro-batch 4, which fits there (66 GB). PRECS (default
  # "bf16 tf32") names the precisions.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  mb=$(q $(gpu_mb) 1)
  for pr in ${PRECS:-bf16 tf32}; do
    run perf_torch 200 python3 $TORCH/perf_torch.py $pr $mb 2048
    run perf_authors 240 python3 ${AUTHORS:-.authors/perf_authors.py} $pr $mb 2048
  done
  [ "$mb" = 2 ] && run perf_torch 200 python3 $TORCH/perf_torch.py bf16 4 2048
  ;;
PY2)
  # Seventh session, Python only: transformers' teacher forward (phase X's
  # peer side) and the authors' decode path (perf_decode_authors.py at
  # phi-tiny-en / phimamba-tiny-en shape, batch 1 and 16, 2k and 16k).
  for m in "tf32 sdpa" "fp32 sdpa" "bf16 sdpa" "tf32 eager"; do
    run forward_torch 300 python3 bench/torch/forward_torch.py phi-1.5 1 2048 10 $m
  done
  # --prefill random: the authors' prefill compiled Triton kernels for 86 s
  # on the first 2k row (2026-12-07), so the rows did not fit the limit.
  run decode_authors 420 python3 bench/torch/perf_decode_authors.py --batches 1,16 --contexts $(q 2048,16384 256) --decode-tokens 64 --prefill ${PY_PREFILL:-random} --pm ${PM_DIR:-.authors/pm}
  ;;
OURS)
  # Seventh session (issue 19): the CUDA unit tests of the fused kernels
  # ($GRAPHS_TEST), of the NCCL AllReduce at world size 1 ($TRAIN_TEST) and
  # of the runtime ($RUNTIME_TEST); then our Stage 3 at PEERS' micro-batch
  # in bf16, at micro-batch 4 with recompute: layers and loss_chunk 256
  # (fits 80 GB?), and in TF32; GPU memory sampled per run.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  [ -n "${GRAPHS_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $GRAPHS_TEST -test.run 'TestAdamW$|TestGeluGrad$|TestCausalConv$' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|error" | tee "$out/cuda-test.txt"
  [ -n "${TRAIN_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $TRAIN_TEST -test.run 'TestAllReduceNCCL' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|NCCL|error" | tee -a "$out/cuda-test.txt"
  [ -n "${RUNTIME_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $RUNTIME_TEST -test.run 'TestCUDA' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|error" | tee -a "$out/cuda-test.txt"
  mb=$(q $(gpu_mb) 1)
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  # The fourth run is the first with AllReduce nodes over a one-rank NCCL
  # communicator (issue 21: losses equal, tokens/s within 2%).
  stage3_sampled stage3_ 280 "$O3" "bf16 $mb none 0" "bf16 $(q 4 1) layers 256" "fp32 $mb none 0" "bf16 $mb none 0 nccl"
  ;;
OURS2)
  # Eighth session (issue 19): in-place updates (graphs.AdamWInPlace). The
  # CUDA unit tests of the fused kernels, the in-place step against the
  # out-of-place one on the GPU ($TRAIN_TEST) and the runtime; then a
  # one-layer Phi-1.5 step in place (the default) against the same step
  # with the state copied to the host after every run (--state-on-host,
  # out of place): the losses must be equal. Then Stage 3 at PEERS'
  # micro-batch in bf16 and TF32, and at micro-batch 4 under a 76 GB cap on
  # ONNX Runtime's arena (--mem-limit-gb 76: fits an 80 GB card?) without
  # and with recompute + loss chunks; GPU memory sampled per run. PRECS=bf16
  # (as for PEERS) leaves the TF32 run out.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  [ -n "${GRAPHS_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $GRAPHS_TEST -test.run 'TestAdamW$|TestAdamWInPlace$|TestGeluGrad$|TestCausalConv$' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|error" | tee "$out/cuda-test.txt"
  [ -n "${TRAIN_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $TRAIN_TEST -test.run 'TestAllReduceNCCL|TestInPlaceMatchesOutOfPlace' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|NCCL|error" | tee -a "$out/cuda-test.txt"
  [ -n "${RUNTIME_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $RUNTIME_TEST -test.run 'TestCUDA|TestUpload' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|error" | tee -a "$out/cuda-test.txt"
  SM="--teacher phi-1.5:1 --stage distill --micro-batch 1 --seq 256 --steps-per-run 2 --runs 2 --provider $PROV --tf32 --precision bf16"
  run inplace 200 $P bench-stage $SM
  run inplace 200 $P bench-stage $SM --state-on-host
  mb=$(q $(gpu_mb) 1)
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  v=("bf16 $mb none 0"); [[ "${PRECS:-bf16 tf32}" == *tf32* ]] && v+=("fp32 $mb none 0")
  stage3_sampled stage3_ 280 "$O3" "${v[@]}"
  stage3_sampled cap76_ 280 "$O3 --mem-limit-gb $(q 76 2)" "bf16 $(q 4 1) none 0" "bf16 $(q 4 1) layers 256"
  ;;
PEERS3)
  # Ninth session (issue 19), Python only, so it runs while ORT is staged:
  # the peers of OURS3 in one machine session. Eager PyTorch's Stage 3 in
  # bf16 at micro-batch 4 (66 GB) and at the micro-batch the authors' code
  # fits (gpu_mb), the authors' Triton step there, eager TF32 there, and
  # the PyTorch Stages 2 and 1 in bf16.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  mb=$(q $(gpu_mb) 1)
  run perf_torch 200 python3 $TORCH/perf_torch.py bf16 4 2048
  [ "$mb" != 4 ] && run perf_torch 200 python3 $TORCH/perf_torch.py bf16 $mb 2048
  run perf_authors 240 python3 ${AUTHORS:-.authors/perf_authors.py} bf16 $mb 2048
  run perf_torch 200 python3 $TORCH/perf_torch.py tf32 $mb 2048
  for st in 2 1; do run perf_stages_torch 150 python3 bench/torch/perf_stages_torch.py $st bf16 1 2048; done
  ;;
OURS3)
  # Ninth session (issue 19): the fused SegsumExp (graphs.SegsumExp). The
  # CUDA tests of every fused kernel, a one-layer smoke step of Stages 3
  # and 1, then ours and $ALT (the binary before the change) alternately:
  # Stage 3 bf16 at micro-batch 4 under the 76 GB cap, Stage 2 and Stage 1
  # bf16 at micro-batch 1; then ours alone at PEERS3's micro-batch in bf16
  # and in TF32. GPU memory sampled per Stage 3 run.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  cuda_tests 'TestAdamW$|TestAdamWInPlace$|TestGeluGrad$|TestCausalConv$|TestSegsumExp$'
  for st in distill orient; do
    run smoke 120 $P bench-stage --teacher phi-1.5:1 --stage $st --micro-batch 1 --seq $(q 256 32) --steps-per-run 2 --runs 2 --provider $PROV --tf32 --precision bf16
  done
  mb=$(q $(gpu_mb) 1)
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  S12="--teacher $(q phi-1.5 phi-1.5:1) --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16"
  stage3_new_alt
  for st in align orient; do
    run ${st}_new 200 $P bench-stage $S12 --stage $st
    [ -n "${ALT:-}" ] && run ${st}_alt 200 $ALT bench-stage $S12 --stage $st
  done
  stage3_at $mb
  gpumem_peaks
  ;;
OURS10)
  # Tenth session (issue 19): the fused soft cross-entropy, LayerNorm
  # gradient and SiLU gate, and Stage 1's matrix kernels; eleventh (no GPU
  # that session): SegsumExpMul, CausalConvSplit, Residual, Rotary (the
  # blocks' kernels, --block-kernels) and the export of live nodes only.
  # PTXCHECK compiles the PTX modules; the CUDA tests of every fused
  # kernel; Stage 3 bf16 at micro-batch 4 under the 76 GB cap, ours, ours
  # with the blocks' kernels and $ALT (the binary before the change);
  # Stage 1 with the matrix kernels (and the blocks') and without, and
  # Stage 2 with and without the blocks' kernels, bf16 at micro-batch 1
  # (and $ALT's); with EXTRA=1 then ours at PEERS3's micro-batch in bf16 and
  # TF32. GPU memory sampled per Stage 3 run.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  [ -n "${PTXCHECK:-}" ] && $PTXCHECK 2>&1 | tee "$out/ptxcheck.txt"
  cuda_tests 'TestAdamW$|TestAdamWInPlace$|TestGeluGrad$|TestCausalConv$|TestSegsumExp$|TestMaskedDiffSq$|TestCausalSoftmax$|TestSoftCrossEntropy$|TestLayerNormGrad$|TestSiluMul$|TestFusedNaN$|TestResidual$|TestRotary$'
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  S12="--teacher $(q phi-1.5 phi-1.5:1) --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16"
  BLOCK=1 stage3_new_alt
  run orient_matrix 200 $P bench-stage $S12 --stage orient --matrix-kernels
  run orient_block 200 $P bench-stage $S12 --stage orient --matrix-kernels --block-kernels
  run orient_new 200 $P bench-stage $S12 --stage orient --matrix-kernels=false
  run align_new 200 $P bench-stage $S12 --stage align
  run align_block 200 $P bench-stage $S12 --stage align --block-kernels
  if [ -n "${ALT:-}" ]; then
    run orient_alt 200 $ALT bench-stage $S12 --stage orient --matrix-kernels
    run align_alt 200 $ALT bench-stage $S12 --stage align
  fi
  [ "${EXTRA:-0}" = 1 ] && stage3_at $(q $(gpu_mb) 1)
  gpumem_peaks
  ;;
OURS13)
  # Twelfth session (issue 19): the blocks' kernels one at a time, since
  # with all four Stage 3 grew to an 80 GB nvidia-smi peak on an H100 and
  # its first loss moved by 3.5e-5 (docs/gpu-2026-12-07e). PTXCHECK; the
  # CUDA tests of every fused kernel; Stage 3 bf16 at micro-batch 4 under
  # the 76 GB cap: stock plumbing, all four kernels, each of conv and
  # decay alone, residual and rotary together, all four again (is the
  # first loss repeatable?), GPU memory sampled and ORT's arena
  # statistics in each result line; ours in fp32 with TF32 products at
  # PEERS3's micro-batch; Stages 2 and 1 bf16 at micro-batch 1 with and
  # without the blocks' kernels.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  [ -n "${PTXCHECK:-}" ] && $PTXCHECK 2>&1 | tail -n 4 | tee "$out/ptxcheck.txt"
  cuda_tests 'TestAdamW$|TestAdamWInPlace$|TestGeluGrad$|TestCausalConv$|TestSegsumExp$|TestMaskedDiffSq$|TestCausalSoftmax$|TestSoftCrossEntropy$|TestLayerNormGrad$|TestSiluMul$|TestFusedNaN$|TestResidual$|TestRotary$'
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  S12="--teacher $(q phi-1.5 phi-1.5:1) --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16"
  stage3_variants "new --block-kernels=none" "block --block-kernels" "conv --block-kernels=conv" \
    "decay --block-kernels=decay" "resrot --block-kernels=residual,rotary" "block2 --block-kernels"
  gpumem s3_tf32 </dev/null >/dev/null 2>&1 & pid=$!
  run stage3_tf32 280 $P bench-stage $O3 --precision fp32 --micro-batch $(q $(gpu_mb) 1)
  kill $pid 2>/dev/null
  arena_of stage3_tf32
  for st in align orient; do
    run ${st}_new 200 $P bench-stage $S12 --stage $st --block-kernels=none
    run ${st}_block 200 $P bench-stage $S12 --stage $st --block-kernels
    arena_of ${st}_new; arena_of ${st}_block
  done
  gpumem_peaks
  ;;
OURS14)
  # Twelfth session, second machine session: ORT's memory pattern off
  # (runtime.mem_pattern, the new default). OURS13 found that with the
  # fused decays the pattern's planned block (29.6 GB) and the arena did
  # not share memory: 63.9 GB reserved for a 34.0 GB peak in use. After
  # PEERS14 (eager PyTorch's Stage 3 bf16 at micro-batch 4, the peer in
  # the same machine session): ours with all the blocks' kernels and with
  # the stock plumbing under the 76 GB cap, and Stage 1 with them, with
  # the pattern off and on.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  S12="--teacher $(q phi-1.5 phi-1.5:1) --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16"
  stage3_variants "block --block-kernels" "new --block-kernels=none"
  for v in "orient" "orient_pattern --mem-pattern"; do
    set -- $v
    run $1 200 $P bench-stage $S12 --stage orient --block-kernels ${2:-}
    arena_of $1
  done
  gpumem_peaks
  ;;
PEERS14)
  # Python only, during staging: OURS14's peer.
  run perf_torch 200 python3 $TORCH/perf_torch.py bf16 4 2048
  ;;
OURS15)
  # For the session after the twelfth: GateSkip (the SSM mixer's gate with
  # its skip and bias, opt-in: --block-kernels=all,gate) on a GPU. Its CUDA
  # tests and SiluMul's, then Stage 3 bf16 at micro-batch 4 with the
  # default kernels and with the gate added (PEERS14 first for the peer),
  # then PROF's profile of the default step.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  [ -n "${PTXCHECK:-}" ] && $PTXCHECK 2>&1 | tail -n 4 | tee "$out/ptxcheck.txt"
  cuda_tests 'TestGateSkip$|TestSiluMul$|TestFusedNaN$'
  O3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  stage3_variants "block --block-kernels" "gate --block-kernels=all,gate"
  gpumem_peaks
  bash "$0" PROF "$out/prof-phase"
  ;;
PROF)
  # For the session after the twelfth: where the default Stage 3 step's
  # time goes now (the blocks' kernels on, memory pattern off). One step
  # per run, launch-blocking so node times are kernel times; the per-op
  # and per-shape table in profile.txt (which Transposes ORT left unfused
  # into FusedMatMul, what the SSD's chunk tensors cost).
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 1 --provider $PROV --tf32 --precision bf16 --ort-profile "$out/prof" >/dev/null
  $P profile --skip-runs 1 --top 40 --shapes 60 "$out"/prof/distill_step1_*.json >"$out/profile.txt"
  rm -rf "$out/prof"
  head -n 40 "$out/profile.txt" | cut -c1-110
  ;;
PEERS12)
  # Ninth session, second machine session, Python only: the PyTorch Stages
  # 2 and 1 in bf16 (micro-batch 1; STAGES picks), OURS12's peers.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  for st in ${STAGES:-2 1}; do run perf_stages_torch 150 python3 bench/torch/perf_stages_torch.py $st bf16 1 2048; done
  ;;
OURS12)
  # Stage 1's fused distance and softmax (graphs.MaskedDiffSq,
  # graphs.CausalSoftmax; opt-in: --matrix-kernels, training.matrix_kernels).
  # Their CUDA tests (and SegsumExp's), a one-layer smoke step with them,
  # then Stage 1 with and without them, bf16 at micro-batch 1 (and with
  # ALIGN=1 Stage 2); $ALT, when set, is run as a third Stage 1. PTXCHECK
  # (a bench/gpu/ptxcheck.c binary) first compiles both PTX modules.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  [ -n "${PTXCHECK:-}" ] && $PTXCHECK 2>&1 | tee "$out/ptxcheck.txt"
  [ -n "${GRAPHS_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $GRAPHS_TEST -test.run 'TestSegsumExp$|TestMaskedDiffSq$|TestCausalSoftmax$' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|worst|error" | tee "$out/cuda-test.txt"
  run smoke 120 $P bench-stage --teacher phi-1.5:1 --stage orient --micro-batch 1 --seq $(q 256 32) --steps-per-run 2 --runs 2 --provider $PROV --tf32 --precision bf16 --matrix-kernels
  S12="--teacher $(q phi-1.5 phi-1.5:1) --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16"
  run orient_matrix 200 $P bench-stage $S12 --stage orient --matrix-kernels
  run orient_new 200 $P bench-stage $S12 --stage orient --matrix-kernels=false
  [ -n "${ALT:-}" ] && run orient_alt 200 $ALT bench-stage $S12 --stage orient
  [ "${ALIGN:-0}" = 1 ] && run align_new 200 $P bench-stage $S12 --stage align
  ;;
DECA)
  # Ninth session, Python only: the authors' decode path alone (PY2's
  # second half), every row (batch 1 and 16, 2k and 16k) with a random
  # prefill state.
  run decode_authors 540 python3 bench/torch/perf_decode_authors.py --batches 1,16 --contexts $(q 2048,16384 256) --decode-tokens 64 --prefill ${PY_PREFILL:-random} --pm ${PM_DIR:-.authors/pm}
  ;;
DEC)
  # Seventh session (issues 18, 19): greedy decode with resident state on
  # the GPU. A one-update Stage 3 run gives a pure and a hybrid student
  # (attention layers 1 and 4) of phi-tiny-en's shape (decode speed does not
  # depend on training); exported beside the teacher; bench-generate at
  # 2k/16k, batch 1/16, in-graph greedy pick, then the student with its
  # logits fetched to the host (the old path's copy).
  $P ablate configs/phi-tiny-en.yaml --budget $(q 4096 4096) --recipes s3 --provider $PROV output_dir=$RUNS name=dec-pure >/dev/null 2>>"$out/export.err"
  $P ablate configs/phi-tiny-en.yaml --budget $(q 4096 4096) --recipes s3 --provider $PROV output_dir=$RUNS name=dec-hyb student.attention_layers=1,4 >/dev/null 2>>"$out/export.err"
  $P export --model $(ls -d $RUNS/dec-pure-s3-*/stages/00-distill/output | tail -1) --out $out/S >/dev/null 2>>"$out/export.err"
  $P export --model $(ls -d $RUNS/dec-hyb-s3-*/stages/00-distill/output | tail -1) --out $out/H >/dev/null 2>>"$out/export.err"
  $P export --model $TINY --out $out/T >/dev/null 2>>"$out/export.err"
  tail -n 3 "$out/export.err" | cut -c1-300
  run generate 420 $P bench-generate --student $out/S --hybrid $out/H --teacher $out/T --contexts $(q 2048,16384 256) --batches 1,16 --decode-tokens 64 --provider $PROV
  run generate_hostlogits 200 $P bench-generate --student $out/S --contexts $(q 2048,16384 256) --batches 1,16 --decode-tokens 64 --provider $PROV --host-logits
  rm -rf $out/S $out/H $out/T
  ;;
W)
  # Issue 18's table: the pure student against hybrids keeping 1, 2 and 3 of
  # phi-tiny-en's 6 attention layers (placement 0 | 0,3 | 0,2,4: evenly
  # spaced, floor(j*6/n)), Stages 1-3 at each budget; then the 1M hybrid-2
  # student exported and decoded at 16k beside the pure one and the teacher.
  for b in ${BUDGETS:-1000000 3300000}; do
    for v in pure:none hyb1:0, hyb2:0,3 hyb3:0,2,4; do
      name=pt-${v%%:*}; layers=${v#*:}; set -- name=$name
      [ "$layers" = none ] || set -- "$@" student.attention_layers=$layers
      run hybrid_$b ${TIMEOUT:-900} $P ablate configs/phi-tiny-en.yaml --budget $(q $b 60000) --recipes s123 --provider $PROV \
        training.steps_per_run=${SPR:-16} output_dir=$RUNS "$@"
    done
  done
  cp $RUNS/pt-*ablation*.md "$out/" 2>/dev/null
  ;;
X)
  # Issue 19: the teacher forward against transformers (SDPA and eager
  # attention) in the same run, then where its time goes (steady-state
  # per-op profile, launch-blocking so node times are kernel times).
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  if [ "$PROV" = cuda ] && [ "${SKIP_TORCH:-0}" != 1 ]; then
    for m in "tf32 sdpa" "tf32 eager" "fp32 sdpa" "bf16 sdpa"; do
      run forward_torch 300 python3 bench/torch/forward_torch.py phi-1.5 1 2048 10 $m
    done
  fi
  # Logits stay on the device (as transformers leaves them), except in the
  # last row, the command as it ran before (logits copied to the host).
  for f in "--tf32" "" "--tf32 --precision bf16" "--tf32 --host-logits"; do
    run forward 300 $P bench-forward --model $(q phi-1.5 phi-1.5:1) --batch 1 --seq $(q 2048 128) --iters $(q 10 2) --provider $PROV $f
  done
  mkdir -p "$out/fprof"
  run forward_prof 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-forward --model $(q phi-1.5 phi-1.5:1) --batch 1 --seq $(q 2048 128) --iters 2 --provider $PROV --tf32 --ort-profile "$out/fprof" >/dev/null
  $P profile --skip-runs 2 --top 15 --nodes 12 "$out"/fprof/*.json 2>&1 | cut -c1-160 | tee "$out/forward-profile.txt"
  ;;
E)
  # Node placement of the Phi-1.5 forward (any node ONNX Runtime put on the CPU).
  $P bench-forward --model $(q phi-1.5 phi-1.5:1) --batch 1 --seq $(q 2048 64) --iters 2 --provider $PROV --tf32 --ort-log-level verbose 2>&1 \
    | grep -iE "placed on|kernel not found|fallback" | sort | uniq -c | sort -rn | head -40 >"$out/placement.txt"
  gpumem distill16 </dev/null >/dev/null 2>&1 & pid=$!
  run stage_phi15 420 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 16 2) --runs 1 --provider $PROV --tf32
  kill $pid 2>/dev/null
  for st in align orient; do
    gpumem $st </dev/null >/dev/null 2>&1 & pid=$!
    run stage_phi15 300 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 1 --provider $PROV --tf32
    kill $pid 2>/dev/null
  done
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done >"$out/gpumem-peaks.txt"
  ;;
F)
  # Device memory of decoding at long contexts, student vs teacher, each
  # model alone in its process (a one-step Stage 3 run provides a student
  # of phi-tiny-en's shape; decode speed does not depend on its training).
  $P ablate configs/phi-tiny-en.yaml --budget 4096 --recipes s3 --provider $PROV output_dir=$RUNS name=phi-tiny-en-f >/dev/null 2>>"$out/export.err"
  student=$(ls -d $RUNS/phi-tiny-en-f-s3-*/stages/00-distill/output | tail -1)
  $P export --model $TINY --out $out/exp-teacher >/dev/null 2>>"$out/export.err"
  $P export --model $student --out $out/exp-student >/dev/null 2>>"$out/export.err"
  for m in student teacher; do
    gpumem gen-$m </dev/null >/dev/null 2>&1 & pid=$!
    run gen_$m 300 $P bench-generate --$m $out/exp-$m --contexts $(q 16384 256) --decode-tokens $(q 32 4) --out $out/gen-$m --provider $PROV
    kill $pid 2>/dev/null
    cp $out/gen-$m/bench.md "$out/gen-$m.md" 2>/dev/null
  done
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB, idle $(sort -n $f | head -1) MiB"; done >"$out/gpumem-peaks.txt"
  rm -rf $out/exp-teacher $out/exp-student $out/gen-student $out/gen-teacher
  ;;
G)
  # Resident training state and bf16 products (issue 7), Stage 3 at Phi-1.5
  # shape next to PyTorch in the same run. First a bf16-vs-fp32 sanity run
  # on phi-tiny-en and the node placement of its bf16 step graph.
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1
  for pr in fp32 bf16; do
    run sanity 120 $P bench-stage --teacher $TINY --stage distill --micro-batch 8 --seq 256 --steps-per-run 4 --runs 1 --provider $PROV --precision $pr
  done
  $P bench-stage --teacher $TINY --stage distill --micro-batch 2 --seq 64 --steps-per-run 2 --runs 1 --provider $PROV --precision bf16 --ort-log-level verbose 2>&1 \
    | awk '/placed on \[/{cpu=/CPUExecutionProvider/; sub(/^.*\] +/, ""); print; next} cpu && /\] +[A-Za-z]+ \(/{sub(/^.*\] +/, ""); sub(/ \(.*/, ""); n[$0]++} END{for (k in n) print n[k], "on CPU:", k}' >"$out/placement.txt"
  [ "$PROV" = cuda ] && run perf_torch 200 python3 $TORCH/perf_torch.py tf32 4 2048
  [ "$PROV" = cuda ] && run perf_torch 200 python3 $TORCH/perf_torch.py bf16 4 2048
  S3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs $(q 2 1) --provider $PROV --tf32"
  gpumem s3bf16 </dev/null >/dev/null 2>&1 & pid=$!
  run stage3 240 $P bench-stage $S3 --micro-batch $(q 4 1) --precision bf16 ||
    run stage3 240 $P bench-stage $S3 --micro-batch $(q 2 1) --micro-batches 2 --precision bf16
  kill $pid 2>/dev/null
  gpumem s3fp32 </dev/null >/dev/null 2>&1 & pid=$!
  run stage3 200 $P bench-stage $S3 --micro-batch $(q 4 1)
  kill $pid 2>/dev/null
  run stage3 200 $P bench-stage $S3 --micro-batch $(q 4 1) --state-on-host
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done >"$out/gpumem-peaks.txt"
  ;;
H)
  # Stages 1 and 2 at Phi-1.5 shape (micro-batch 1), ours (resident state,
  # TF32 and bf16) next to bench/torch/perf_stages_torch.py in the same run.
  [ "$PROV" = cuda ] && run torch_rehearsal 120 python3 bench/torch/perf_stages_torch.py 1 bf16 1 256 2 &&
    for st in 2 1; do for m in tf32 bf16; do run perf_stages_torch 150 python3 bench/torch/perf_stages_torch.py $st $m 1 2048; done; done
  for st in align orient; do
    for pr in fp32 bf16; do
      gpumem $st-$pr </dev/null >/dev/null 2>&1 & pid=$!
      run stage12 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 1 --provider $PROV --tf32 --precision $pr
      kill $pid 2>/dev/null
    done
  done
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done >"$out/gpumem-peaks.txt"
  ;;
I)
  # Where Stage 3's time goes: the teacher's forward alone, the student's
  # language-model step alone (forward, backward, AdamW, no teacher), and
  # Stage 3, each at Phi-1.5 shape, micro-batch 4, TF32 and bf16 (resident
  # state), plus Stages 1 and 2 in bf16 with --runs 3.
  for pr in fp32 bf16; do
    run split 200 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage pretrain --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --precision $pr
    run split 200 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --precision $pr
  done
  run split 200 $P bench-forward --model $(q phi-1.5 phi-1.5:1) --batch $(q 4 1) --seq $(q 2048 64) --iters 5 --provider $PROV --tf32
  for st in align orient; do
    run stage12 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 3 --provider $PROV --tf32 --precision bf16
  done
  # Per-op GPU time of the Stage 3 step: CUDA_LAUNCH_BLOCKING=1 makes each
  # kernel launch wait, so ORT's host-timed node events measure the kernels.
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 1 --provider $PROV --tf32 --precision bf16 --ort-profile "$out/prof"
  $P profile --top 40 "$out"/prof/distill_step1_*.json | tee "$out/profile.txt"
  rm -rf "$out/prof"
  ;;
J)
  # Third session: the steady-state per-op GPU profile of the Stage 3 step
  # (the first run, with allocation and cuDNN's algorithm search, left out),
  # and Stage 3 in TF32 (resident state) after the graph changes it led to.
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 2 --provider $PROV --tf32 --precision ${PREC:-fp32} --ort-profile "$out/prof"
  $P profile --skip-runs 1 --top 30 --nodes 25 "$out"/prof/distill_step1_*.json | tee "$out/profile.txt"
  rm -rf "$out/prof"
  gpumem s3fp32 </dev/null >/dev/null 2>&1 & pid=$!
  run stage3 200 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32
  kill $pid 2>/dev/null
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done | tee "$out/gpumem-peaks.txt"
  ;;
K)
  # Third session, final: Stage 3 next to PyTorch in the same run, TF32 and
  # bf16, ours with the graph changes of the session; ALT (a second binary,
  # the same commit with ONNX Conv for the student's conv) measures the conv
  # choice in the same run.
  against_torch 2
  ;;
L)
  # Stages 1 and 2 (bf16, resident state) after the session's changes, then
  # the steady-state Stage 3 profile with the slowest nodes' memory fields.
  # TORCH12=1 also runs PyTorch's Stage 2 and 1 steps first (same run).
  [ "$PROV" = cuda ] && [ "${TORCH12:-0}" = 1 ] && for st in 2 1; do run perf_stages_torch 150 python3 bench/torch/perf_stages_torch.py $st bf16 1 2048; done
  for st in align orient; do
    run stage12 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16
  done
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 2 --provider $PROV --tf32 --ort-profile "$out/prof"
  $P profile --skip-runs 1 --top 30 --nodes 12 "$out"/prof/distill_step1_*.json | tee "$out/profile.txt"
  python3 - "$out"/prof/distill_step1_*.json <<'PY' | tee "$out/slowest.txt"
import json, sys
ev = [e for e in json.load(open(sys.argv[1])) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
for e in sorted(ev, key=lambda e: -e["dur"])[:4]:
    a = e["args"]
    print(e["name"], e["dur"], "us", a.get("op_name"), a.get("input_type_shape"), a.get("output_type_shape"),
          {k: a.get(k) for k in ("mem_arena_held", "mem_arena_held_delta", "mem_in_use_peak", "mem_bytes_in_use", "mem_in_use_delta")})
PY
  $P profile --skip-runs 1 --top 0 --shapes 60 "$out"/prof/distill_step1_*.json | tail -n 61 | tee "$out/opshapes.txt"
  rm -rf "$out/prof"
  ;;
M)
  # Fourth session: Stage 3 against PyTorch in the same run, timed over the
  # runs between the warm-up and the last (which copies the state to the
  # host); ALT is the same commit without the session's graph changes.
  against_torch 3
  ;;
N)
  # Fourth session, after M on the same machine: Stage 3 bf16 with the
  # arena growing by what is asked, Stages 1-2 bf16, and the steady
  # launch-blocking Stage 3 TF32 profile by (op, shapes).
  S3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 3 --provider $PROV --tf32"
  gpumem s3bf16-same </dev/null >/dev/null 2>&1 & pid=$!
  run stage3_arena 200 $P bench-stage $S3 --precision bf16 --arena-extend same_as_requested
  kill $pid 2>/dev/null
  for f in $out/gpumem-*.txt; do echo "$(basename $f) peak $(sort -n $f | tail -1) MiB"; done | tee "$out/gpumem-peaks.txt"
  for st in align orient; do
    run stage12 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 3 --provider $PROV --tf32 --precision bf16
  done
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 1 --provider $PROV --tf32 --ort-profile "$out/prof"
  $P profile --skip-runs 1 --top 30 "$out"/prof/distill_step1_*.json | tee "$out/profile.txt"
  $P profile --skip-runs 1 --top 0 --shapes 45 "$out"/prof/distill_step1_*.json | tail -n 46 | tee "$out/opshapes.txt"
  rm -rf "$out/prof"
  ;;
O)
  # Next session (written in the fourth): the bf16-mlp branch's binary as
  # $P against main's as ALT, both in bf16, next to PyTorch; then the
  # steady launch-blocking Stage 3 bf16 profile by (op, shapes), which no
  # session has taken yet. Tables go to files; the call's output ends with
  # the result lines (summary), which a long table once pushed out.
  ALT_PRECISION=bf16 against_torch 3 bf16 >/dev/null
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 1 --provider $PROV --tf32 --precision bf16 --ort-profile "$out/prof" >/dev/null
  $P profile --skip-runs 1 --top 30 --shapes 40 "$out"/prof/distill_step1_*.json >"$out/profile.txt"
  rm -rf "$out/prof"
  head -n 32 "$out/profile.txt" | cut -c1-120
  ;;
R)
  # Fifth session, on the device time left: HEAD's bf16 Stage 3 (the
  # teacher's weights stored in bfloat16), then PyTorch's bf16 step.
  run stage3 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --precision bf16 >/dev/null
  [ "$PROV" = cuda ] && run perf_torch 100 python3 $TORCH/perf_torch.py bf16 4 2048 >/dev/null
  ;;
Q)
  # Fifth session, last: HEAD (LayerNorm's saved statistics on top of P's
  # binary) in TF32 and bf16 next to PyTorch, and P's binary as ALT (bf16).
  ALT_PRECISION=bf16 against_torch 3 >/dev/null
  cat "$out/gpumem-peaks.txt"
  ;;
P)
  # Fifth session: the bf16 activation regions (mixer, gate, frozen
  # teacher, shared casts) as $P against the phase O binary's main as ALT,
  # both bf16 next to PyTorch; a smoke run first, so a graph CUDA refuses
  # shows at once; Stages 1-2 bf16; the steady bf16 profile by (op, shapes).
  run smoke 120 $P bench-stage --teacher phi-1.5:1 --stage distill --micro-batch 1 --seq 256 --steps-per-run 1 --runs 1 --provider $PROV --tf32 --precision bf16 >/dev/null
  ALT_PRECISION=bf16 against_torch 3 bf16 >/dev/null
  for st in align orient; do
    run stage12 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16 >/dev/null
  done
  mkdir -p "$out/prof"
  run profile_run 300 env CUDA_LAUNCH_BLOCKING=1 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run 1 --runs 1 --provider $PROV --tf32 --precision bf16 --ort-profile "$out/prof" >/dev/null
  $P profile --skip-runs 1 --top 30 --shapes 50 "$out"/prof/distill_step1_*.json >"$out/profile.txt"
  rm -rf "$out/prof"
  head -n 24 "$out/profile.txt" | cut -c1-100
  cat "$out/gpumem-peaks.txt"
  ;;
V)
  # Sixth session, on the device time left: PyTorch's TF32 step, then ours
  # in float32 with TF32 products (the fused kernels' float32 forms).
  [ "$PROV" = cuda ] && run perf_torch 120 python3 $TORCH/perf_torch.py tf32 4 2048 >/dev/null
  run stage3 170 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --precision fp32 >/dev/null
  ;;
S)
  # Sixth session: where each step's time goes. PyTorch's bf16 step under
  # torch.profiler (GPU kernel time by part, against its wall time), then
  # ours profiled without CUDA_LAUNCH_BLOCKING, one step per run and four
  # (the benchmark's Loop): the host timeline says whether ORT's host side,
  # launching about 15,000 nodes a step, or the GPU bounds the step.
  [ "$PROV" = cuda ] && python3 bench/torch/profile_torch.py $TORCH/perf_torch.py bf16 4 2048 25 >"$out/torch-profile.txt" 2>&1
  [ -e "$out/torch-profile.txt" ] && head -n 45 "$out/torch-profile.txt" | cut -c1-110
  for spr in 1 $(q 4 2); do
    mkdir -p "$out/prof$spr"
    run host_timeline 300 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage distill --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $spr --runs 2 --provider $PROV --tf32 --precision bf16 --ort-profile "$out/prof$spr" >/dev/null
    $P profile --skip-runs 1 --top 12 "$out"/prof$spr/distill_*.json >"$out/host$spr.txt"
    head -n 8 "$out/host$spr.txt" | cut -c1-150
    rm -rf "$out/prof$spr"
  done
  ;;
T|U)
  # Sixth session: the fused kernels (mohawk.fused custom ops). Their GPU
  # unit tests ($GRAPHS_TEST, the graphs package's test binary, the tests
  # matching $CUDA_TESTS, default TestAdamW: fused against stock ops bit for
  # bit on CUDA), a smoke step, then Stage 3 bf16 against the binary before
  # (ALT) next to PyTorch.
  [ -n "${GRAPHS_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $GRAPHS_TEST -test.run "${CUDA_TESTS:-TestAdamW\$}" -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|error|GELU" | tee "$out/cuda-test.txt"
  run smoke 120 $P bench-stage --teacher phi-1.5:1 --stage distill --micro-batch 1 --seq 256 --steps-per-run 1 --runs 1 --provider $PROV --tf32 --precision bf16 >/dev/null
  ALT_PRECISION=bf16 against_torch 3 bf16 >/dev/null
  cat "$out/gpumem-peaks.txt"
  # U: T, then Stages 2 and 1 in bf16 (their PyTorch figures are phase L's).
  if [ "$phase" = U ]; then
    for st in align orient; do
      run stage12 150 $P bench-stage --teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch 1 --seq $(q 2048 64) --steps-per-run $(q 8 2) --runs 2 --provider $PROV --tf32 --precision bf16 >/dev/null
    done
  fi
  ;;
Y)
  # Data parallelism's NCCL layer at world size 1 (issue 21). The GPU test
  # ($TRAIN_TEST, graphs/train's test binary: go test -c -o bin/train.test
  # ./graphs/train) runs step graphs with AllReduce nodes over a one-rank
  # NCCL communicator against the plain step, bit for bit (and, where
  # nvidia-smi lists two GPUs, two ranks against one process); then Stage 3
  # (pretrain, then distill) bf16 steps without AllReduce nodes, with them
  # per tensor, in 25 MiB buckets, and without again (the plain runs
  # bracket the others): the losses must be equal and tokens/s within 2%.
  [ -n "${TRAIN_TEST:-}" ] && MOHAWK_TEST_CUDA=1 $TRAIN_TEST -test.run 'TestAllReduceNCCL' -test.v 2>&1 | grep -E -- "^(---|    ---|ok|FAIL|PASS)|NCCL|bit for bit|error" | tee "$out/cuda-test.txt"
  for st in pretrain distill; do
    S3="--teacher $(q phi-1.5 phi-1.5:1) --stage $st --micro-batch $(q 4 1) --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs $(q 5 1) --provider $PROV --tf32 --precision bf16"
    run nccl_$st 200 $P bench-stage $S3 >/dev/null
    run nccl_$st 200 $P bench-stage $S3 --all-reduce nccl >/dev/null
    run nccl_$st 200 $P bench-stage $S3 --all-reduce nccl --bucket-mb 25 >/dev/null
    run nccl_$st 200 $P bench-stage $S3 >/dev/null
  done
  ;;
MEM)
  # Issue 19: Stage 3 bf16 at micro-batch 4 × 2048 with training.recompute
  # layers and training.loss_chunk 256 (fits an 80 GB card?), recompute
  # alone, then neither (out of memory on an 80 GB card before); then
  # micro-batch 1 without and with both, which every card fits, for the
  # throughput cost. GPU memory sampled per run; the arena grows by what is
  # asked for, so nvidia-smi's peak is near what ORT holds.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
  W3="--teacher $(q phi-1.5 phi-1.5:1) --stage distill --seq $(q 2048 64) --steps-per-run $(q 4 2) --runs 2 --provider $PROV --tf32 --arena-extend same_as_requested"
  stage3_sampled mem_ 240 "$W3" "bf16 $(q 4 1) layers 256" "bf16 $(q 4 1) layers 0" "bf16 $(q 4 1) none 0" "bf16 1 none 0" "bf16 1 layers 256"
  ;;
Z)
  # Data-parallel Stage 3 and pretrain (issue 21) on two GPUs of one host,
  # bf16, at Phi-1.5 shape (a teacher pretrained from scratch for a few
  # steps, then Stage 3): one rank (GPU 0), then two ranks
  # (--nproc-per-node 2, NCCL between GPUs 0 and 1) with the same global
  # batch (8 micro-batches of 4×2048 per update: 4 per rank), then two
  # ranks again, killing rank 1 with SIGKILL after the distill checkpoint
  # of step 4, and relaunching them. dpcmp prints each stage's tokens/s
  # (median over steps, rank 0's metrics.jsonl), the ratio of two runs and
  # the largest loss difference at one step (expected: reduction-order
  # rounding). QUICK=1 PROVIDER=cpu rehearses it at a tiny shape.
  nvidia-smi -L 2>/dev/null | tee "$out/gpus.txt"
  bin=$(realpath "$P")
  cat >"$out/dp.yaml" <<YAML
name: dp
output_dir: runs
seed: 3
data:
  tokenizer: $(realpath "$TINY")/tokenizer.json
  train: [{path: $(realpath "$DATA")/train.txt}]
  val: [{path: $(realpath "$DATA")/val.txt}]
training: {seq_len: $(q 2048 64), micro_batch: $(q 4 1), tokens_per_update: $(q 65536 512), steps_per_run: $(q 4 2), precision: bf16, eval_windows: 4, eval_every: 1000, checkpoint_every: 4}
eval: {windows: 4, seq_len: $(q 2048 64)}
runtime: {provider: $PROV, cuda: {tf32: true}}
stages:
  - {kind: pretrain, model: teacher, scratch: true, tokens: $(q 524288 2048), architecture: {vocab: 51200, hidden: $(q 2048 64), layers: $(q 24 2), heads: $(q 32 4), intermediate: $(q 8192 256), partial_rotary_factor: 0.5}}
  - {kind: distill, tokens: $(q 1572864 6144)}
YAML
  dpcmp() { python3 -c '
import json, statistics, sys
def load(d):
    by = {}
    for line in open(d + "/runs/dp/metrics.jsonl"):
        m = json.loads(line)
        if "loss" in m and "tokens_per_s" in m:
            by.setdefault(m["stage"], {})[m["step"]] = m
    return by
a, b = load(sys.argv[1]), load(sys.argv[2])
for st in a:
    ta = statistics.median(m["tokens_per_s"] for m in a[st].values())
    tb = statistics.median(m["tokens_per_s"] for m in b[st].values())
    d = max(abs(a[st][s]["loss"] - b[st][s]["loss"]) for s in a[st] if s in b[st])
    print("dpcmp %s: %s %.0f tok/s, %s %.0f tok/s, ratio %.3f; steps %d/%d, max |loss diff| %.3g" % (st, sys.argv[1], ta, sys.argv[2], tb, tb / ta, len(a[st]), len(b[st]), d))
' "$@"; }
  mkdir -p "$out/one" "$out/two" "$out/kill"
  log "dp: one rank"
  (cd "$out/one" && CUDA_VISIBLE_DEVICES=0 timeout 1800 "$bin" run ../dp.yaml) >"$out/one.log" 2>&1; echo "rc=$? one" | tee -a "$out/log.txt"
  log "dp: two ranks"
  (cd "$out/two" && timeout 1800 "$bin" run ../dp.yaml --nproc-per-node 2) >"$out/two.log" 2>&1; echo "rc=$? two" | tee -a "$out/log.txt"
  grep -E "ranks:|data parallel|memory per rank" "$out/two.log" | head -8
  dpcmp "$out/one" "$out/two" | tee "$out/dpcmp.txt"
  log "dp: two ranks, rank 1 killed after the distill checkpoint of step 4"
  port=$((29500 + RANDOM % 1000))
  for r in 0 1; do
    (cd "$out/kill" && RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port exec "$bin" run ../dp.yaml) >"$out/kill-$r.log" 2>&1 &
    eval "pid$r=$!"
  done
  until [ -d "$out/kill/runs/dp/stages/01-distill/checkpoints/step-00000004" ] || ! kill -0 "$pid0" 2>/dev/null; do sleep 0.2; done
  kill -9 "$pid1"; t0=$(date +%s.%N); wait "$pid0"; rc=$?
  echo "rank 0 rc=$rc, $(echo "$(date +%s.%N) - $t0" | bc) s after the kill: $(grep -m1 -o 'rank 1 [^;]*' "$out/kill-0.log")" | tee -a "$out/log.txt"
  (cd "$out/kill" && timeout 1800 "$bin" run ../dp.yaml --nproc-per-node 2) >"$out/kill-relaunch.log" 2>&1; echo "rc=$? relaunch" | tee -a "$out/log.txt"
  grep -m2 "resuming at step" "$out/kill-relaunch.log"
  dpcmp "$out/two" "$out/kill" | tee -a "$out/dpcmp.txt"
  ;;
esac
# Every result line of the phase, shortened, last in the output.
echo "== results"
for f in "$out"/*.jsonl; do
  [ -e "$f" ] || continue
  short 700 <"$f" | sed "s|^|$(basename "$f" .jsonl): |"
done
log "phase $phase done"
