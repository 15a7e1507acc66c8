#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, after benches/gpu/prepare.sh made .gpu/:
# the Vulkan test suite restricted to the first GPU, then the GPU peers against torch.
# Logs go to OUTDIR (first argument).
set -uo pipefail
out=${1:?usage: run.sh OUTDIR}
mkdir -p "$out"
xz -d -k -f .gpu/bin/*.xz
chmod +x .gpu/bin/*
export FERROGRAD_TEST_BACKENDS=vulkan:0 RUST_BACKTRACE=1
status=0
for t in .gpu/bin/*; do
  case $t in *.xz|*/ferrograd-gpu-peer) continue ;; esac
  echo "== $(basename "$t")" | tee -a "$out/tests.log"
  timeout 300 "$t" --test-threads 4 >> "$out/tests.log" 2>&1 || { status=1; echo "FAILED: $t" | tee -a "$out/tests.log"; }
done
grep -E '^test result|^FAILED' "$out/tests.log"
PYTHONUNBUFFERED=1 python3 .gpu/gpu.py --device vulkan:0 --budget 1 --rounds 2 \
  --ferrograd-bin .gpu/bin/ferrograd-gpu-peer | tee "$out/peers.txt"
exit $status
