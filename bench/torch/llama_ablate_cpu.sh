#!/bin/sh
# The MOHAWK ablation on the demo Llama teacher (testdata/demo-llama) and its
# PyTorch peer, one after the other on this machine's CPU, with the same
# teacher weights, the same token stream (pipeline tokenize's ids of
# testdata/demo/{train,val}.txt), the same recipes, budgets and settings
# (configs/demo-llama-ablate.yaml, which both read). From the repository root:
#   PYTHON=/usr/bin/python3 sh bench/torch/llama_ablate_cpu.sh [BUDGET ...]
# (default budgets 100000 300000). Logs and tables: runs/llama-ablate/,
# runs/demo-llama-ablate-ablation-*.md; docs/results.md has the numbers.
# The peer runs on one thread (torch and OpenBLAS); on a machine whose cores
# are shared, more threads made each step slower, not faster.
set -eu
PY=${PYTHON:-python3}
OUT=runs/llama-ablate
CFG=configs/demo-llama-ablate.yaml
TOK=testdata/demo-llama/teacher/tokenizer.json
[ $# -gt 0 ] || set -- 100000 300000
mkdir -p "$OUT" bin
go build -o bin/pipeline ./cmd/pipeline
bin/pipeline tokenize --tokenizer "$TOK" testdata/demo/train.txt > "$OUT/train.ids"
bin/pipeline tokenize --tokenizer "$TOK" testdata/demo/val.txt > "$OUT/val.ids"
rm -rf runs/demo-llama-ablate-*  # ablate resumes finished runs; start afresh so the wall times are this run's
for b in "$@"; do
	echo "== mohawk, budget $b ($(date -u +%H:%M:%S))"
	/usr/bin/time -p bin/pipeline ablate "$CFG" --budget "$b" > "$OUT/mohawk-$b.log" 2>&1
	tail -n 9 "$OUT/mohawk-$b.log"
done
for b in "$@"; do
	echo "== peer, budget $b ($(date -u +%H:%M:%S))"
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/time -p "$PY" bench/torch/mohawk_llama_torch.py \
		testdata/demo-llama/teacher "$OUT/train.ids" "$OUT/val.ids" all "$b" --config "$CFG" --threads 1 \
		> "$OUT/peer-$b.jsonl" 2> "$OUT/peer-$b.err"
	tail -n 1 "$OUT/peer-$b.jsonl"
done
