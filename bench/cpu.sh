#!/usr/bin/env bash
# CPU measurements quoted in docs/benchmarks.md (run from the repository
# root; the numbers there come from a 2-core development machine).
#   bench/cpu.sh OUTDIR
set -uo pipefail
out=$1; mkdir -p "$out"
P=${PIPELINE:-bin/pipeline}; S=${SHARED:-../shared}; TINY=$S/reference/phi-tiny-en
run() { local name=$1 t=$2; shift 2; echo "== $(date -u +%T) $name: $*" | tee -a "$out/log.txt"; timeout "$t" "$@" >>"$out/$name.jsonl" 2>>"$out/$name.err"; echo "rc=$? $name" >>"$out/log.txt"; }
run forward 300 $P bench-forward --model $TINY --batch 16 --seq 256 --iters 5 --provider cpu
for st in pretrain-teacher distill align orient; do
  run stage_tiny 900 $P bench-stage --teacher $TINY --stage $st --micro-batch 16 --seq 256 --steps-per-run 1 --runs 3 --provider cpu
done
run mixer 1800 $P bench-mixer --teacher $TINY --forms ssd,step,matrix --seqs 512,2048,8192 --iters 2 --provider cpu
$P export --model $TINY --out "$out/exp-teacher" >/dev/null
$P export --model $S/reference/phimamba-tiny-en --out "$out/exp-student" >/dev/null
run bench_generate 1800 $P bench-generate --student "$out/exp-student" --teacher "$out/exp-teacher" --contexts 1024,4096,16384 --decode-tokens 16 --out "$out/bench-generate-cpu" --provider cpu
rm -rf "$out/exp-teacher" "$out/exp-student"
