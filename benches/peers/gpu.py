#!/usr/bin/env python3
"""Runs the GPU benchmark set (matmul f32 and f16, add, softmax) on a ferrograd GPU device and in
torch on the same hardware, in the same run, and prints throughput and the ratio ferrograd/torch.

    python3 benches/peers/gpu.py [--device vulkan:0] [--budget SECONDS] [--rounds N] [--small]
                                 [--ferrograd-bin PATH]

With CUDA available, torch runs on the GPU with TF32 off (so its f32 matmul is true f32, like
ferrograd's). Without CUDA (a CPU Vulkan implementation such as lavapipe), torch runs on the CPU
the device emulates; pass --small there. Goals (issue 5): ferrograd's f32 matmul >= 50% of
torch's, elementwise add >= 80% of torch's bandwidth.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ferrograd_times(binary, device, budget, small):
    if binary:
        cmd = [binary]
    else:
        cmd = ["cargo", "run", "--quiet", "--release", "-p", "ferrograd-benches", "--bin",
               "ferrograd-gpu-peer", "--"]
    cmd += ["--device", device, "--budget", str(budget)]
    if small:
        cmd.append("--small")
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {row["name"]: row for row in map(json.loads, out.strip().splitlines())}


def torch_workloads(small):
    import torch

    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    n, elems, rows, cols = (512, 4 << 20, 1024, 1024) if small else (4096, 64 << 20, 8192, 4096)
    torch.manual_seed(0)
    a32, b32 = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    a16, b16 = a32.half(), b32.half()
    x, y = torch.randn(elems, device=dev), torch.randn(elems, device=dev)
    s = torch.randn(rows, cols, device=dev)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(fn):
        def run():
            fn()
            sync()
        return run

    name = torch.cuda.get_device_name() if cuda else "cpu"
    return name, {
        "matmul_f32": timed(lambda: a32 @ b32),
        "matmul_f16": timed(lambda: a16 @ b16),
        "add_f32": timed(lambda: x + y),
        "softmax_f32": timed(lambda: torch.softmax(s, dim=-1)),
    }


def timeit(fn, budget):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def rate(row, seconds):
    if row["flops"] and row["name"].startswith("matmul"):
        return f"{row['flops'] / seconds / 1e12:8.2f} TFLOP/s"
    return f"{row['bytes'] / seconds / 1e9:8.1f} GB/s   "


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="vulkan:0", help="ferrograd device")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per workload and library")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; best median counts")
    ap.add_argument("--small", action="store_true", help="sizes for CPU Vulkan implementations")
    ap.add_argument("--ferrograd-bin", help="a prebuilt ferrograd-gpu-peer (machines without cargo)")
    args = ap.parse_args()
    try:
        torch_name, torch_fns = torch_workloads(args.small)
    except ImportError:
        torch_name, torch_fns = None, {}
        print("# torch: not installed, ferrograd only", file=sys.stderr)
    ours, rows, theirs = {}, {}, {}
    for _ in range(args.rounds):
        for name, row in ferrograd_times(args.ferrograd_bin, args.device, args.budget, args.small).items():
            rows[name] = row
            ours[name] = min(row["median_s"], ours.get(name, math.inf))
        for name, fn in torch_fns.items():
            theirs[name] = min(timeit(fn, args.budget), theirs.get(name, math.inf))
    print(f"ferrograd on {args.device}; torch on {torch_name or '-'}"
          f"{' (TF32 off)' if torch_name and torch_name != 'cpu' else ''}")
    print(f"{'workload':<13} {'ferrograd':>10} {'':>16} {'torch':>10} {'':>16} {'ferrograd/torch':>15}")
    for name, t in ours.items():
        line = f"{name:<13} {t * 1e3:>8.3f}ms {rate(rows[name], t)}"
        if name in theirs:
            pt = theirs[name]
            line += f" {pt * 1e3:>8.3f}ms {rate(rows[name], pt)} {pt / t:>14.2f}x"
        print(line)
    print(f"ferrograd/torch = torch time / ferrograd time (1.0 = parity); best median of {args.rounds} rounds")


if __name__ == "__main__":
    main()
