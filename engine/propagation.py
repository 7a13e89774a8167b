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

import importlib.util
import os

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["CLASS_MASS", "KNN_METHODS", "knn_graph", "spread"]

# How much a class's seeds inject into the graph. "per_label": one unit per seed (Zhou et
# al.'s Y), so a class with ten times the labels pushes its boundary well past the midway
# point towards a class with few. "equal": every class's seeds share one unit, so each class
# spreads as far as its structure lets it, whatever its label count.
CLASS_MASS = ("equal", "per_label")


KNN_METHODS = ("auto", "exact", "pynndescent")
EXACT_MAX_ROWS = 250_000   # "auto" compares every pair (in blocks) up to here on a CPU, approximates above


def knn_graph(embedding: np.ndarray | torch.Tensor, neighbours: int, method: str = "exact", seed: int = 0,
              chunk: int = 2048) -> tuple[sp.csr_matrix, str]:
    """Symmetric normalised adjacency D^-1/2 W D^-1/2 of the cosine k-nearest-neighbour graph,
    and a line saying how it was built.

    W links i and j when either is among the other's `neighbours` most similar rows (0/1
    weights, as scikit-learn's knn kernel). "exact": every pair compared, in blocks of `chunk`
    rows (memory stays chunk x N similarities), on the embedding's device; on a CPU the
    candidates come from a bfloat16 product and are re-scored in float32 (2x less CPU, the same
    neighbours). "pynndescent": approximate nearest-neighbour descent (McInnes), for more rows
    than pairs can be compared in reasonable time. "auto": exact on a GPU or up to
    EXACT_MAX_ROWS rows, pynndescent above (exact, with a note, when it is not installed)."""
    if method not in KNN_METHODS:
        raise ValueError(f"knn method: expected one of {', '.join(KNN_METHODS)}, got {method!r}")
    e = torch.nn.functional.normalize(torch.as_tensor(embedding).float(), dim=1)
    n = len(e)
    k = min(int(neighbours), n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32), "fewer than 2 rows: no neighbours"
    how = method
    if method == "auto":
        how = "exact" if e.device.type != "cpu" or n <= EXACT_MAX_ROWS else "pynndescent"
        if how == "pynndescent" and importlib.util.find_spec("pynndescent") is None:
            how = "exact (pynndescent is not installed; pip install pynndescent approximates it faster)"
    if how == "pynndescent":
        cols = _pynndescent(e.cpu().numpy(), k, seed)
    else:
        cols = _exact(e, k, chunk)
    a = sp.csr_matrix((np.ones(n * k, np.float32), (np.repeat(np.arange(n), k), cols.ravel())), shape=(n, n))
    w = a.maximum(a.T)
    inv_sqrt = 1.0 / np.sqrt(np.asarray(w.sum(axis=1)).ravel())   # every row has >= k links
    d = sp.diags(inv_sqrt.astype(np.float32))
    return (d @ w @ d).tocsr(), f"{k} neighbours per row, {how}"


def _exact(e: torch.Tensor, k: int, chunk: int) -> np.ndarray:
    """Each row's k most similar other rows, every pair compared in blocks of rows."""
    n = len(e)
    cols = np.empty((n, k), np.int64)
    cpu = e.device.type == "cpu"
    fast = e.bfloat16() if cpu else e
    extra = min(8, n - 1 - k) if cpu else 0    # bfloat16 candidates beyond k, re-scored exactly
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


def _pynndescent(e: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each row's k nearest other rows by approximate nearest-neighbour descent."""
    try:
        from pynndescent import NNDescent
    except ImportError:
        raise ImportError("propagation.knn pynndescent: the package is not installed (pip install pynndescent), "
                          "or set propagation.knn: exact") from None
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
