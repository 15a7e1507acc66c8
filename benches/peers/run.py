#!/usr/bin/env python3
"""Runs the spine workloads in ferrograd, numpy, torch and tinygrad (when installed) in the same
run and prints each peer's time and the ratio peer_time / ferrograd_time (above 1 means ferrograd
is faster).

    python3 benches/peers/run.py [--budget SECONDS] [--rounds N]

Every peer does the same work as ferrograd: float32 inputs of the same shapes, the output
materialized. numpy's add writes into a preallocated output (np.add(a, b, out=c)); numpy has no
erf, so its gelu chain uses the same Abramowitz-Stegun erf polynomial that ferrograd composes.
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
N16M = 16 * 1024 * 1024


def timeit(fn, budget):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def ferrograd_times(budget):
    cmd = ["cargo", "run", "--quiet", "--release", "-p", "ferrograd-benches", "--bin", "ferrograd-peer", "--", str(budget)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {row["name"]: row["median_s"] for row in map(json.loads, out.strip().splitlines())}


def numpy_workloads():
    import numpy as np

    rng = np.random.default_rng(0)
    f32 = np.float32
    a = rng.standard_normal((1024, 1024), dtype=f32)
    b = rng.standard_normal((1024, 1024), dtype=f32)
    x16 = rng.standard_normal(N16M, dtype=f32)
    y16 = rng.standard_normal(N16M, dtype=f32)
    z16 = rng.standard_normal(N16M, dtype=f32)
    out16 = np.empty(N16M, dtype=f32)
    s = rng.standard_normal((4096, 1024), dtype=f32)

    def softmax():
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    coeffs = [1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592]

    def erf(v):
        av = np.abs(v)
        t = (f32(1.0) / (av * f32(0.3275911) + f32(1.0))).astype(f32)
        p = t * f32(coeffs[0])
        for c in coeffs[1:]:
            p = (p + f32(c)) * t
        y = f32(1.0) - p * np.exp(-(av * av))
        return np.where(v < 0, -y, y)

    def gelu_chain():
        h = x16 * y16 + z16
        return f32(0.5) * h * (f32(1.0) + erf(h * f32(1.0 / math.sqrt(2.0))))

    return {
        "matmul_1024": lambda: a @ b,
        "add_16m": lambda: np.add(x16, y16, out=out16),
        "sum_16m": lambda: x16.sum(),
        "softmax_4096x1024": softmax,
        "gelu_chain_16m": gelu_chain,
    }


def torch_workloads():
    import torch

    torch.manual_seed(0)
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    x16, y16, z16 = torch.randn(N16M), torch.randn(N16M), torch.randn(N16M)
    out16 = torch.empty(N16M)
    s = torch.randn(4096, 1024)
    return {
        "matmul_1024": lambda: a @ b,
        "add_16m": lambda: torch.add(x16, y16, out=out16),
        "sum_16m": lambda: x16.sum(),
        "softmax_4096x1024": lambda: torch.softmax(s, dim=-1),
        "gelu_chain_16m": lambda: torch.nn.functional.gelu(x16 * y16 + z16),
    }


def tinygrad_workloads():
    from tinygrad import Tensor

    a = Tensor.randn(1024, 1024).realize()
    b = Tensor.randn(1024, 1024).realize()
    x16, y16, z16 = (Tensor.randn(N16M).realize() for _ in range(3))
    s = Tensor.randn(4096, 1024).realize()
    return {
        "matmul_1024": lambda: (a @ b).realize(),
        "add_16m": lambda: (x16 + y16).realize(),
        "sum_16m": lambda: x16.sum().realize(),
        "softmax_4096x1024": lambda: s.softmax(-1).realize(),
        "gelu_chain_16m": lambda: (x16 * y16 + z16).gelu().realize(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per workload and peer")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds alternating ferrograd and the peers; the best median counts")
    args = ap.parse_args()
    makers = [("numpy", numpy_workloads), ("torch", torch_workloads), ("tinygrad", tinygrad_workloads)]
    work = {}
    for name, make in makers:
        try:
            work[name] = make()
        except ImportError:
            print(f"# {name}: not installed, skipped", file=sys.stderr)
        except Exception as e:  # a peer that is installed but cannot run here (no device)
            print(f"# {name}: cannot run here ({e}), skipped", file=sys.stderr)
    best = {}

    def record(peer, times):
        for k, t in times.items():
            best.setdefault(peer, {})[k] = min(t, best.get(peer, {}).get(k, math.inf))

    # Alternate so that a noisy stretch of the machine hits every library alike.
    for _ in range(args.rounds):
        record("ferrograd", ferrograd_times(args.budget))
        for name, fns in work.items():
            record(name, {k: timeit(fn, args.budget) for k, fn in fns.items()})
    ours = best.pop("ferrograd")
    header = f"{'workload':<20} {'ferrograd':>11}" + "".join(f" {p:>11} {'ratio':>7}" for p in best)
    print(header)
    for name, t in ours.items():
        row = f"{name:<20} {t * 1e3:>9.3f}ms"
        for p, times in best.items():
            pt = times.get(name)
            row += f" {pt * 1e3:>9.3f}ms {pt / t:>6.2f}x" if pt else f" {'-':>11} {'-':>7}"
        print(row)
    print("ratio = peer time / ferrograd time (above 1: ferrograd is faster); best median of "
          f"{args.rounds} alternating rounds")


if __name__ == "__main__":
    main()
