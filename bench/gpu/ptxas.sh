#!/usr/bin/env bash
# ptxas.sh assembles mohawk's fused-kernel PTX (runtime/fused.c) with
# NVIDIA's ptxas for sm_80 and sm_90, without a GPU: a syntax, register and
# type check of every kernel before device time is spent on it. The CUDA
# driver's JIT on the GPU machine (ptxcheck) remains the final word.
#
#   bench/gpu/ptxas.sh [PTXAS]
#
# PTXAS defaults to ptxas on PATH. On Debian 12 it is in the non-free
# package nvidia-cuda-toolkit (11.8: PTX ISA 7.8, sm_90); the binary alone
# suffices: apt-get download nvidia-cuda-toolkit; dpkg -x *.deb dir;
# bench/gpu/ptxas.sh dir/usr/bin/ptxas.
set -euo pipefail
cd "$(dirname "$0")/../.."
ptxas=${1:-ptxas}
command -v "$ptxas" >/dev/null || { echo "ptxas.sh: no ptxas ($ptxas); see this script's header" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O1 -o "$out/ptxcheck" bench/gpu/ptxcheck.c runtime/fused.c -Iruntime -ldl -lm -lpthread
"$out/ptxcheck" --dump "$out" >/dev/null
for m in "$out"/*.ptx; do
	for arch in sm_80 sm_90; do
		"$ptxas" -arch="$arch" "$m" -o /dev/null
	done
	echo "$(basename "$m" .ptx): $(grep -c '^\.visible \.entry' "$m") kernels assemble for sm_80 and sm_90"
done
