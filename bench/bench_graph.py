"""The neighbour graph's methods on the pre-trained embedding of a data set (MER2024 scale:
121,625 gold + pool rows): CPU and wall seconds, and recall of the 7 nearest neighbours against
exact, over 2,000 random rows whose exact neighbours FAISS's flat index finds
(bench/results/loop.md, "The neighbour graph at 121,625 rows").

    mersemi synth data --scale mer2024
    python bench/bench_graph.py data emb.npy ivf:348:16 hnsw:32:128 pynndescent auto

The embedding is made once (pre-training with the default preset on the gold and pool rows,
seed 0) and kept in EMBEDDING. Methods: ivf:LISTS:PROBES, hnsw:M:EF_SEARCH, pynndescent, and
auto / exact / ivf (engine/propagation.knn_graph as a round calls it).
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np


def embedding(data: Path, out: Path) -> np.ndarray:
    if out.exists():
        return np.load(out)
    import pandas as pd
    import torch

    from mersemi.engine.bank import FeatureBank
    from mersemi.engine.config import load_config
    from mersemi.engine.loops import embed, pretrain, train_threads
    from mersemi.engine.models import build_model

    samples = pd.read_csv(data / "samples.csv")
    feats = {m: np.load(data / f"{m}.npy", mmap_mode="r") for m in ("audio", "text", "video")}
    cfg = load_config()
    torch.manual_seed(cfg.seed)
    rows = np.flatnonzero(samples.split.isin(["labeled", "unlabeled"]).to_numpy())
    bank = FeatureBank(feats, [rows], torch.device("cpu"))
    model = build_model({m: x.shape[1] for m, x in feats.items()}, 6, cfg)
    with train_threads(cfg, torch.device("cpu")):
        pretrain(model, bank, rows, cfg, lambda m, f: None)
    e = embed(model, bank, cfg.score_batch_size).numpy()
    np.save(out, e)
    return e


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    import faiss

    data, out, methods = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    e = embedding(data, out).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    n, d, k = len(e), e.shape[1], 7
    rng = np.random.default_rng(1)
    queries = np.sort(rng.choice(n, min(n, 2000), replace=False))
    flat = faiss.IndexFlatIP(d)
    flat.add(e)
    t0, c0 = time.time(), cpu_s()
    found = flat.search(e[queries], k + 1)[1]
    print(f"{n} rows x {d}; exact for {len(queries)} rows: wall {time.time() - t0:.1f} s, CPU {cpu_s() - c0:.1f} s "
          f"(every row: x {n / len(queries):.0f})", flush=True)
    truth = np.array([row[row != q][:k] for q, row in zip(queries, found)])

    def without_self(found: np.ndarray) -> np.ndarray:
        return np.array([row[row != i][:k] for i, row in enumerate(found)])

    for m in methods:
        t0, c0 = time.time(), cpu_s()
        kind, *p = m.split(":")
        if kind == "ivf" and p:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, int(p[0]), faiss.METRIC_INNER_PRODUCT)
            index.train(e[np.sort(rng.choice(n, min(n, 78 * int(p[0])), replace=False))])
            index.add(e)
            index.nprobe = int(p[1])
            cols = without_self(index.search(e, k + 1)[1])
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(p[0]), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            index.add(e)
            index.hnsw.efSearch = int(p[1])
            cols = without_self(index.search(e, k + 1)[1])
        else:   # the round's own call
            from mersemi.engine.propagation import knn_graph

            graph, how = knn_graph(e, k, kind)
            print(f"  {how}")
            cols = np.array([graph.indices[graph.indptr[i]:graph.indptr[i + 1]] for i in queries], dtype=object)
            hit = sum(len(np.intersect1d(a, b)) for a, b in zip(cols, truth))
            print(f"{m}: wall {time.time() - t0:.1f} s, CPU {cpu_s() - c0:.1f} s, recall {hit / truth.size:.4f} "
                  "(of the symmetric graph's links)", flush=True)
            continue
        hit = sum(len(np.intersect1d(a, b)) for a, b in zip(cols[queries], truth))
        print(f"{m}: wall {time.time() - t0:.1f} s, CPU {cpu_s() - c0:.1f} s, recall {hit / truth.size:.4f}",
              flush=True)


if __name__ == "__main__":
    main()
