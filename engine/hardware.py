"""What this process's CPU runs fast, decided once per process.

Machines of the same kind differ: with AVX-512 BF16 or AMX a bfloat16 matmul runs at least as
fast as a float32 one, while on an AVX2-only CPU bfloat16 is emulated and about 90 times slower.
No kernel here assumes either: a reduced precision is used on a CPU only where torch reports a
bfloat16 kernel for it and a micro-benchmark measured in this process finds it faster. The same
measurement gives the float32 rate that the neighbour graph's cost estimate divides by
(engine/propagation.py). `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2` shows an AVX2 machine's decision on a newer one."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

# bfloat16 must beat float32 by this much to be worth its rounding (the candidates it finds
# are re-scored in float32; a tie is not worth the extra pass).
BF16_MIN_SPEEDUP = 1.3
# The micro-benchmark's product: [M, K] @ [K, N], the shape of a block of the exact graph's
# similarities (rows x embedding width x candidate rows), small enough that an emulated
# bfloat16 takes a fraction of a second.
_SHAPE = (128, 384, 1024)


@dataclass(frozen=True)
class CpuKernels:
    capability: str              # torch.backends.cpu.get_cpu_capability(): AVX512, AVX2, DEFAULT, ...
    bf16_kernel: bool            # torch reports a bfloat16 matmul kernel (oneDNN's) for this CPU
    f32_gflops: float            # one thread's float32 matmul rate, measured in this process
    bf16_gflops: float | None    # one thread's bfloat16 rate; None where there is no kernel to measure
    reduced: torch.dtype | None  # the reduced precision a CPU matmul may take: bfloat16, or None

    def note(self) -> str:
        """One line for a round's notes: what was decided and why."""
        rates = f"float32 {self.f32_gflops:.0f} GFLOP/s a thread"
        if self.bf16_gflops is not None:
            rates += f", bfloat16 {self.bf16_gflops:.1f}"
        if self.reduced is not None:
            return f"CPU {self.capability}: bfloat16 candidates in the exact neighbour graph ({rates})"
        why = ("torch has no bfloat16 kernel for this CPU" if not self.bf16_kernel
               else f"bfloat16 is not {BF16_MIN_SPEEDUP}x faster here")
        return f"CPU {self.capability}: float32 only, {why} ({rates})"


@functools.cache
def cpu_kernels() -> CpuKernels:
    """The decision for this process (measured once, about 0.1 s; 0.3 s where bfloat16 is emulated)."""
    capability = torch.backends.cpu.get_cpu_capability()
    kernel = _bf16_kernel()
    f32 = _gflops(torch.float32)
    bf16 = _gflops(torch.bfloat16) if kernel else None
    reduced = torch.bfloat16 if bf16 is not None and bf16 >= BF16_MIN_SPEEDUP * f32 else None
    return CpuKernels(capability, kernel, f32, bf16, reduced)


def _bf16_kernel() -> bool:
    """Whether torch would run a bfloat16 matmul in hardware (oneDNN with AVX-512 BF16 or AMX);
    without it, torch emulates bfloat16 in its own loops."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # a build without the query: measure instead
        return True


def _gflops(dtype: torch.dtype, repeats: int = 3) -> float:
    """One thread's best rate over `repeats` products of _SHAPE in `dtype`."""
    m, k, n = _SHAPE
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(m, k, generator=gen).to(dtype)
        b = torch.randn(k, n, generator=gen).to(dtype)
        best = float("inf")
        for _ in range(repeats + 1):   # the first call warms the kernel up
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return 2 * m * k * n / max(best, 1e-9) / 1e9
