"""The rows a round needs, on the device once: one tensor per modality, addressed by global row,
batches drawn by index (no DataLoader, no per-batch host-to-device copies)."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping

import numpy as np
import torch

from .errors import InputError


def pick_device(setting: str) -> torch.device:
    """"cpu", "cuda" (an error without CUDA) or "auto" (CUDA when present)."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda requested but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


class FeatureBank:
    """The rows a round needs, one device tensor per modality, addressed by global row.

    Storage keeps float16 or float32 as given (float16 halves memory at MER2024 scale; a
    memory-map that covers every needed row is used in place, without a copy); each batch
    is cast to float32, or left to autocast on CUDA."""

    def __init__(self, features: Mapping[str, np.ndarray], row_sets: list[np.ndarray], device: torch.device):
        self.device = device
        self.rows = np.unique(np.concatenate([np.asarray(r, np.int64) for r in row_sets]))
        n = next(iter(features.values())).shape[0]
        whole = len(self.rows) == n  # every row: use the matrix (or its memory-map) as it is
        self.tensors = []
        for x in features.values():
            block = np.asarray(x) if whole else np.asarray(x[self.rows])
            if block.dtype not in (np.float16, np.float32):
                block = block.astype(np.float32)
            with warnings.catch_warnings():
                # A read-only memory-map: the tensor is only ever read.
                warnings.filterwarnings("ignore", message=".*not writable.*")
                self.tensors.append(torch.from_numpy(np.ascontiguousarray(block)).to(device))

    @torch.no_grad()
    def stats(self, rows: np.ndarray, chunk: int = 8192) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per modality, the mean and std of each dimension over global `rows` (float64
        sums in chunks, so float16 storage and 100k rows stay exact and small)."""
        local = torch.as_tensor(self.local(np.unique(rows)), device=self.device)
        out = []
        for t in self.tensors:
            s = torch.zeros(t.shape[1], dtype=torch.float64, device=self.device)
            s2 = torch.zeros_like(s)
            for start in range(0, len(local), chunk):
                block = t.index_select(0, local[start:start + chunk]).double()
                s += block.sum(0)
                s2 += (block * block).sum(0)
            n = max(len(local), 1)
            mean = s / n
            std = (s2 / n - mean * mean).clamp_min(0).sqrt()
            out.append((mean.float(), std.float()))
        return out

    def local(self, rows: np.ndarray) -> np.ndarray:
        """Positions of global rows in the bank's tensors."""
        return np.searchsorted(self.rows, np.asarray(rows, np.int64))

    def batch(self, idx: torch.Tensor) -> list[torch.Tensor]:
        return [t.index_select(0, idx).float() for t in self.tensors]

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()
