"""One thread's matmul rates in float32, bfloat16 and float16, and what torch reports: run it with
and without the switches that make a newer x86 CPU run what an AVX2-only one runs
(bench/results/loop.md, "Do the switches take effect?"), and the decision engine/hardware.py takes.

    python bench/bench_kernels.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/bench_kernels.py
    ONEDNN_VERBOSE=1 python bench/bench_kernels.py      # which oneDNN kernel runs (none: torch's own loop)
"""
from __future__ import annotations

import os
import time

import torch


def gflops(dtype: torch.dtype, n: int, repeats: int = 3) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def main() -> None:
    from mersemi.engine.hardware import cpu_kernels

    torch.set_num_threads(1)
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
           if k in os.environ}
    print(f"environment: {env or 'none'}; capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"one thread, GFLOP/s: float32 {gflops(torch.float32, 1024):.1f}, bfloat16 "
          f"{gflops(torch.bfloat16, 512, 1):.2f}, float16 {gflops(torch.float16, 512, 1):.2f}")
    print(f"decision: {cpu_kernels().note()}")


if __name__ == "__main__":
    main()
