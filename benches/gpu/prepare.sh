#!/usr/bin/env bash
# Builds what a GPU machine without cargo needs into .gpu/ (ignored by git): the GPU peers binary
# and the Vulkan op-suite test binaries, stripped and compressed, plus the scripts that run them.
# Then, on the GPU machine (see /work/.library/device/README.md for carrying the Vulkan loader),
# from the repository root: `bash .gpu/run.sh OUTDIR`.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/bin
cargo build --release -q -p ferrograd-benches --bin ferrograd-gpu-peer
cp target/release/ferrograd-gpu-peer .gpu/bin/
# Test binaries: the Vulkan backend's own tests and the frontend op suite.
tests="kernels casts launch errors packed_storage float_ops int_ops math workgroup_reduce"
frontend="ops_elementwise ops_reduce ops_movement ops_nn matmul_tiled grad grad_ops nn optim"
cargo test --release --no-run -q -p ferrograd-vulkan -p ferrograd --message-format=json 2>/dev/null |
  python3 -c '
import json, os, shutil, sys
wanted = set(sys.argv[1].split()) | set(sys.argv[2].split())
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        name = m["target"]["name"]
        if name in wanted:
            crate = os.path.basename(os.path.dirname(m["manifest_path"]))
            shutil.copy(m["executable"], f".gpu/bin/{crate}-{name}")
' "$tests" "$frontend"
strip .gpu/bin/*
cp benches/peers/gpu.py benches/gpu/run.sh .gpu/
xz -T2 -6 .gpu/bin/*
du -sh .gpu
