"""Label spreading over the contrastive pre-trained embedding (Zhou et al., 2004).

Few labels leave a fine-tuned ensemble unsure exactly where the pool's structure would
tell: samples that sit among others of one class. A k-nearest-neighbour graph over every
row of a round, in the label-free embedding that pre-training learnt from the pool,
spreads the known labels along that structure. The round multiplies the ensemble's
probabilities by the spread ones (engine/train.py), so a sample is sure when both agree.

Arrays in, arrays out: `knn_graph` builds the normalised graph once; `spread` runs for any
set of seed rows, so the round can hide each fold's evaluation labels (out-of-fold scores
stay honest for calibration).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .errors import InputError, shown
from .hardware import cpu_kernels

__all__ = ["CLASS_MASS", "KNN_METHODS", "knn_graph", "plan_knn", "spread"]

# How much a class's seeds inject into the graph. "per_label": one unit per seed (Zhou et
# al.'s Y), so a class with ten times the labels pushes its boundary well past the midway
# point towards a class with few. "equal": every class's seeds share one unit, so each class
# spreads as far as its structure lets it, whatever its label count.
CLASS_MASS = ("equal", "per_label")


KNN_METHODS = ("auto", "exact", "ivf", "pynndescent")
# "auto" compares every pair while that is estimated to take at most this long on this
# machine, and approximates above, by nearest-neighbour descent: on the MER2024-scale
# embedding it found more of the true neighbours than FAISS's inverted file or HNSW for less
# CPU (bench/results/loop.md).
EXACT_BUDGET_S = 5.0
# The inverted file ("ivf"): sqrt(rows) k-means clusters (trained on at most IVF_TRAIN_PER_LIST
# rows each), each row's neighbours searched in its IVF_NPROBE nearest clusters.
IVF_NPROBE = 16
IVF_TRAIN_PER_LIST = 64
IVF_MIN_ROWS = 39 * 16   # k-means wants 39 rows per cluster; fewer rows than this make no useful index
# Nearest-neighbour descent costs about this many comparisons per row at the scan efficiency
# below (40 candidates, their neighbours, a few passes, numba compiling its code once): fitted
# to the 79 CPU s it took at 121,625 x 384 (bench/results/loop.md). Blocked products run near
# the matmul peak.
_DESCENT_COMPARISONS = 16_000
_EXACT_EFFICIENCY, _SCAN_EFFICIENCY = 0.7, 0.25


@dataclass(frozen=True)
class KnnPlan:
    method: str             # "exact", "ivf" or "pynndescent"
    exact_s: float          # estimated seconds for every pair on this machine
    approx_s: float         # estimated seconds for nearest-neighbour descent
    reduced: torch.dtype | None   # the exact product's candidates in this precision (CPU only)

    def note(self) -> str:
        return f"estimated every pair {self.exact_s:.1f} s, approximate {self.approx_s:.1f} s"


def plan_knn(n: int, dim: int, method: str, device: torch.device, threads: int | None = None) -> KnnPlan:
    """How the graph over `n` rows of width `dim` is found: `method`, or for "auto" exact where
    it is estimated to fit in EXACT_BUDGET_S on this machine (or to cost no more than the
    approximation), pynndescent above. On a GPU every pair is compared on the device. The CPU's
    rates and its reduced precision come from engine/hardware.py, measured once per process."""
    if method not in KNN_METHODS:
        raise InputError(f"propagation.knn: expected one of {', '.join(KNN_METHODS)}, got {shown(method)}")
    if device.type != "cpu":
        return KnnPlan("exact" if method == "auto" else method, 0.0, 0.0, None)
    kernels = cpu_kernels()
    threads = threads or torch.get_num_threads()
    f32 = kernels.f32_gflops * 1e9 * threads
    fast = (kernels.bf16_gflops or kernels.f32_gflops) * 1e9 * threads if kernels.reduced else f32
    exact_s = 2.0 * n * n * dim / (fast * _EXACT_EFFICIENCY)
    approx_s = 2.0 * n * dim * min(_DESCENT_COMPARISONS, n) / (f32 * _SCAN_EFFICIENCY)
    if method == "auto":
        method = "exact" if exact_s <= EXACT_BUDGET_S or exact_s <= approx_s else "pynndescent"
    return KnnPlan(method, exact_s, approx_s, kernels.reduced)


def knn_graph(embedding: np.ndarray | torch.Tensor, neighbours: int, method: str = "exact", seed: int = 0,
              chunk: int = 2048) -> tuple[sp.csr_matrix, str]:
    """Symmetric normalised adjacency D^-1/2 W D^-1/2 of the cosine k-nearest-neighbour graph,
    and a line saying how it was built.

    W links i and j when either is among the other's `neighbours` most similar rows (0/1
    weights, as scikit-learn's knn kernel). "exact": every pair compared: FAISS's flat index on
    a CPU (float32), or blocks of `chunk` rows on the embedding's device (a GPU; a CPU whose
    bfloat16 measured faster, engine/hardware.py: candidates in bfloat16 re-scored in float32);
    memory stays a block of similarities. "ivf": FAISS's inverted file (approximate: each row
    searched in the clusters nearest to it). "pynndescent": nearest-neighbour descent
    (McInnes; approximate). "auto": see plan_knn. Bad input (an unknown method, NaN or inf in the embedding,
    too few rows for an inverted file) is an InputError naming it, before any work."""
    if method not in KNN_METHODS:
        raise InputError(f"propagation.knn: expected one of {', '.join(KNN_METHODS)}, got {shown(method)}")
    e = torch.as_tensor(embedding).float()
    bad = ~torch.isfinite(e).all(dim=1) if e.ndim == 2 else None
    if bad is None or e.shape[1] < 1:
        raise InputError(f"label spreading: expected a [rows, dim] embedding, got shape {list(e.shape)}")
    if bool(bad.any()):
        raise InputError(f"label spreading: the embedding has NaN or inf in {int(bad.sum())} of {len(e)} rows "
                         f"(first row {int(bad.nonzero()[0, 0])}): no neighbour graph can be built from it")
    e = torch.nn.functional.normalize(e, dim=1)
    n = len(e)
    k = min(int(neighbours), n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32), "fewer than 2 rows: no neighbours"
    if method == "ivf" and n < IVF_MIN_ROWS:
        raise InputError(f"propagation.knn ivf: {n} rows are too few for an inverted-file index (at least "
                         f"{IVF_MIN_ROWS}); use exact or auto")
    plan = plan_knn(n, e.shape[1], method, e.device)
    if plan.method == "pynndescent":
        cols, how = _pynndescent(e.cpu().numpy(), k, seed), "pynndescent"
    elif plan.method == "ivf":
        cols, how = _ivf(e.cpu().numpy(), k, seed)
    elif e.device.type != "cpu" or plan.reduced is not None:
        cols = _blocked(e, k, chunk, plan.reduced if e.device.type == "cpu" else None)
        how = "exact" + (" (bfloat16 candidates, re-scored in float32)" if e.device.type == "cpu" else "")
    else:
        cols, how = _flat(e.numpy(), k), "exact"
    if method == "auto" and e.device.type == "cpu":
        how += f"; {plan.note()}"
    a = sp.csr_matrix((np.ones(n * k, np.float32), (np.repeat(np.arange(n), k), cols.ravel())), shape=(n, n))
    w = a.maximum(a.T)
    inv_sqrt = 1.0 / np.sqrt(np.asarray(w.sum(axis=1)).ravel())   # every row has >= k links
    d = sp.diags(inv_sqrt.astype(np.float32))
    return (d @ w @ d).tocsr(), f"{k} neighbours per row, {how}"


def _blocked(e: torch.Tensor, k: int, chunk: int, reduced: torch.dtype | None) -> np.ndarray:
    """Each row's k most similar other rows, every pair compared in blocks of rows on e's
    device; with `reduced`, the candidates come from a product in that precision and the best
    k + 8 are re-scored in float32 (the same neighbours)."""
    n = len(e)
    cols = np.empty((n, k), np.int64)
    fast = e.to(reduced) if reduced is not None else e
    extra = min(8, n - 1 - k) if reduced is not None else 0
    for start in range(0, n, chunk):
        block = e[start:start + chunk]
        sims = fast[start:start + chunk] @ fast.T
        rows = torch.arange(len(sims), device=sims.device)
        sims[rows, rows + start] = -2.0              # never one's own neighbour
        cand = sims.topk(k + extra, dim=1).indices
        if extra:
            exact = torch.einsum("cd,ckd->ck", block, e[cand])
            exact[cand == (rows + start)[:, None]] = -2.0
            cand = cand.gather(1, exact.topk(k, dim=1).indices)
        cols[start:start + len(sims)] = cand.cpu().numpy()
    return cols


def _faiss():
    try:
        import faiss
    except ImportError:
        raise InputError("propagation.knn: FAISS is not installed (pip install faiss-cpu)") from None
    return faiss


def _flat(e: np.ndarray, k: int) -> np.ndarray:
    """Every pair compared by FAISS's flat inner-product index (float32 BLAS, blocks of rows)."""
    faiss = _faiss()
    index = faiss.IndexFlatIP(e.shape[1])
    index.add(np.ascontiguousarray(e, np.float32))
    return _without_self(index.search(e, k + 1)[1], k, e, faiss)


def _ivf(e: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, str]:
    """Each row's k nearest among the rows of its IVF_NPROBE nearest k-means clusters."""
    faiss = _faiss()
    n, dim = e.shape
    lists = _ivf_lists(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = e[np.sort(rng.choice(n, min(n, IVF_TRAIN_PER_LIST * lists), replace=False))]
    index.train(np.ascontiguousarray(sample, np.float32))
    index.add(np.ascontiguousarray(e, np.float32))
    index.nprobe = min(IVF_NPROBE, lists)
    return _without_self(index.search(e, k + 1)[1], k, e, faiss), f"ivf ({lists} lists, {index.nprobe} probed)"


def _ivf_lists(n: int) -> int:
    return max(1, min(int(np.sqrt(n)), n // 39))


def _without_self(found: np.ndarray, k: int, e: np.ndarray, faiss) -> np.ndarray:
    """[n, k] neighbours from FAISS's [n, k + 1] results: each row's own index dropped (or its
    last hit, where a duplicate row outranked it); a row with fewer than k hits (-1: its probed
    clusters held too few rows) is searched again over every row."""
    n = len(found)
    is_self = found == np.arange(n)[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), k)
    keep = np.ones_like(found, bool)
    keep[np.arange(n), drop] = False
    cols = found[keep].reshape(n, k).astype(np.int64)
    short = np.flatnonzero((cols < 0).any(1))
    if len(short):
        flat = faiss.IndexFlatIP(e.shape[1])
        flat.add(np.ascontiguousarray(e, np.float32))
        cols[short] = _without_self_rows(flat.search(e[short], k + 1)[1], short, k)
    return cols


def _without_self_rows(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(rows), k), np.int64)
    for i, (r, hits) in enumerate(zip(rows, found)):
        out[i] = hits[hits != r][:k]
    return out


def _pynndescent(e: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each row's k nearest other rows by approximate nearest-neighbour descent."""
    try:
        from pynndescent import NNDescent
    except ImportError:
        raise InputError("propagation.knn pynndescent: the package is not installed (pip install pynndescent), "
                         "or set propagation.knn: auto") from None
    # More candidates than needed keep the recall high on large graphs (0.99 at 120,000 rows).
    index = NNDescent(e, n_neighbors=max(40, k + 1), metric="cosine", random_state=seed,
                      n_jobs=len(os.sched_getaffinity(0)))
    found = index.neighbor_graph[0]
    cols = np.empty((len(e), k), np.int64)
    for i, row in enumerate(found):
        row = row[row != i]
        cols[i] = row[:k]
    return cols


def spread(graph: sp.csr_matrix, seed_pos: np.ndarray, seed_labels: np.ndarray, n_classes: int,
           alpha: float, iterations: int, class_mass: str = "per_label") -> np.ndarray:
    """Class distributions [N, C] after `iterations` of F <- alpha S F + (1 - alpha) Y.

    Y holds a one-hot row per seed (row positions into the graph), each class's column
    divided by its seed count when `class_mass` is "equal" (see CLASS_MASS). alpha near 1
    lets labels travel far; a row no label reaches gets the uniform distribution, so it
    changes nothing in a product with other probabilities."""
    if class_mass not in CLASS_MASS:
        raise ValueError(f"class_mass: expected one of {', '.join(CLASS_MASS)}, got {class_mass!r}")
    n = graph.shape[0]
    seed_labels = np.asarray(seed_labels, np.int64)
    y = np.zeros((n, n_classes), np.float32)
    y[np.asarray(seed_pos, np.int64), seed_labels] = 1.0
    if class_mass == "equal":
        y /= np.maximum(np.bincount(seed_labels, minlength=n_classes), 1).astype(np.float32)
    f = y.copy()
    for _ in range(iterations):
        f = alpha * (graph @ f) + (1.0 - alpha) * y
    total = f.sum(axis=1, keepdims=True)
    reached = total[:, 0] > 0
    out = np.full((n, n_classes), 1.0 / n_classes, np.float32)
    out[reached] = f[reached] / total[reached]
    return out
