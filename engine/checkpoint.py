"""What rounds save, in one place: a round's fold ensemble (weights, the config it was trained
under, temperatures, the fold split) and each fold model's votes over the rows the round scored,
in `round-<id>.pt`; and, once per project, `reuse.pt`: the pre-trained weights and the
neighbour graph, which later rounds on the same rows take instead of computing them again. Each
file is written whole or not at all, and read without unpickling code (tensors and plain
values only)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .disk import DiskFull, is_full
from .errors import InputError, one_line


def path(folder: Path, round_id: int) -> Path:
    return Path(folder) / f"round-{round_id}.pt"


def files(folder: Path, round_id: int) -> list[Path]:
    """The round's file and what a save interrupted before its end leaves."""
    final = path(folder, round_id)
    return [final, final.with_suffix(".tmp")]


def save(state: dict, file: Path) -> None:
    """Write `state` (engine.train.RoundResult.state) to `file` through a temporary file beside
    it, removed when the write fails (a full disk: DiskFull, one line)."""
    import torch   # here, not at the top: the names above serve commands that never train

    tmp = file.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as f:   # a file object: a full disk is an OSError, not torch's RuntimeError
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_full(e):
            raise DiskFull(f"{file.parent}: no space left on the disk for the round's checkpoint; "
                           "it was not kept (free some space there and try again)") from None
        raise
    tmp.replace(file)


def load(file: Path) -> dict:
    """A state saved by `save` (weights_only: a checkpoint never runs code when read)."""
    import torch

    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:   # truncated, garbled, not a checkpoint: one line naming it, and the way out
        raise InputError(f"{file}: damaged checkpoint ({one_line(e)[:160]}); delete it and the next round "
                         "trains without it (the predictions in force stay)") from None


def reuse_path(folder: Path) -> Path:
    return Path(folder) / "reuse.pt"


def save_reuse(reusable: dict, file: Path) -> None:
    """engine.train.RoundResult.reusable, the graph as its CSR arrays."""
    import torch

    graph = reusable.get("graph")
    save({"reuse_key": reusable["reuse_key"], "pretrained": reusable.get("pretrained"),
          "graph": None if graph is None else {
              "indptr": torch.as_tensor(graph.indptr), "indices": torch.as_tensor(graph.indices),
              "data": torch.as_tensor(graph.data), "shape": list(graph.shape)}}, file)


def load_reuse(file: Path) -> dict | None:
    """What `save_reuse` wrote (the graph a scipy CSR matrix again); None without the file."""
    import scipy.sparse as sp

    if not Path(file).is_file():
        return None
    saved = load(file)
    g = saved.get("graph")
    graph = None if g is None else sp.csr_matrix((g["data"].numpy(), g["indices"].numpy(), g["indptr"].numpy()),
                                                 shape=tuple(g["shape"]))
    return {"reuse_key": saved["reuse_key"], "pretrained": saved.get("pretrained"), "graph": graph}


def votes_for(state: dict, rows: np.ndarray) -> np.ndarray | None:
    """[len(rows), K] int: each fold model's predicted class for global `rows` (-1 where the
    round did not score a row); None for a checkpoint without votes."""
    if "fold_votes" not in state:
        return None
    scored = state["score_rows"].numpy()
    votes = state["fold_votes"].numpy().astype(np.int64)
    at = {int(r): i for i, r in enumerate(scored)}
    out = np.full((len(rows), votes.shape[0]), -1, np.int64)
    for j, r in enumerate(np.asarray(rows, np.int64).tolist()):
        i = at.get(r)
        if i is not None:
            out[j] = votes[:, i]
    return out
