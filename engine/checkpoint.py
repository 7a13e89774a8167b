"""What rounds save, in one place, each type with its one save and load: a round's fold ensemble
(`Checkpoint`: weights, the config it was trained under, the calibration, the fold split, each
fold model's votes over the rows the round scored) in `round-<id>.pt`; and, once per project,
what later rounds on the same rows take instead of computing again (`Reusable`: the pre-trained
weights and the neighbour graph) in `reuse.pt`. Each file is written whole or not at all, and
read without unpickling code (tensors and plain values only).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .disk import DiskFull, is_full
from .errors import InputError, one_line

REUSE_FILE = "reuse.pt"


def path(folder: Path, round_id: int) -> Path:
    return Path(folder) / f"round-{round_id}.pt"


def files(folder: Path, round_id: int) -> list[Path]:
    """The round's file and what a save interrupted before its end leaves."""
    final = path(folder, round_id)
    return [final, final.with_suffix(".tmp")]


def reuse_path(folder: Path) -> Path:
    return Path(folder) / REUSE_FILE


@dataclass
class Checkpoint:
    """A round's fold ensemble (engine/train.py makes it; `train.predict` scores with it)."""
    config: dict[str, Any]                  # the config the round was trained under
    modalities: dict[str, int]              # modality -> feature width
    n_classes: int
    folds: list[dict] = field(repr=False)   # one state dict per fold model
    temperature: float = 1.0
    graph_weight: float | None = None       # the graph joined the round's stored scores with this weight
    fold_key: str | None = None             # folds.fold_key of the split; None: a checkpoint from before
    score_rows: np.ndarray | None = None    # the rows the round scored
    fold_votes: np.ndarray | None = field(default=None, repr=False)   # [K, len(score_rows)] predicted classes

    def save(self, file: Path) -> None:
        import torch   # here, not at the top: the names above serve commands that never train

        _save({"config": self.config, "modalities": self.modalities, "n_classes": self.n_classes,
               "folds": self.folds, "temperature": self.temperature, "graph_weight": self.graph_weight,
               "fold_key": self.fold_key,
               "score_rows": None if self.score_rows is None else torch.as_tensor(self.score_rows),
               "fold_votes": None if self.fold_votes is None else torch.as_tensor(self.fold_votes)}, file)

    @classmethod
    def load(cls, file: Path) -> Checkpoint:
        state = _load(file)
        # The one reader of every version of the file: keys added later are absent from older ones.
        try:
            optional = {k: state[k] for k in ("temperature", "graph_weight", "fold_key") if k in state}
            rows, votes = state.get("score_rows"), state.get("fold_votes")
            return cls(config=state["config"], modalities=dict(state["modalities"]),
                       n_classes=int(state["n_classes"]), folds=list(state["folds"]), **optional,
                       score_rows=None if rows is None else rows.numpy().astype(np.int64),
                       fold_votes=None if votes is None else votes.numpy())
        except (KeyError, TypeError, AttributeError, ValueError) as e:   # loads, but is not a round's
            raise _damaged(file, e) from None

    def votes_for(self, rows: np.ndarray) -> np.ndarray | None:
        """[len(rows), K] int: each fold model's predicted class for global `rows` (-1 where the
        round did not score a row); None for a checkpoint without votes."""
        if self.fold_votes is None or self.score_rows is None:
            return None
        votes = np.asarray(self.fold_votes, np.int64)
        at = {int(r): i for i, r in enumerate(self.score_rows.tolist())}
        out = np.full((len(rows), votes.shape[0]), -1, np.int64)
        for j, r in enumerate(np.asarray(rows, np.int64).tolist()):
            i = at.get(r)
            if i is not None:
                out[j] = votes[:, i]
        return out


@dataclass
class Reusable:
    """What a later round on the same rows may take from this one (engine/train.reuse_key says
    when the rows and the config that shape them are the same)."""
    key: str
    pretrained: dict | None = field(default=None, repr=False)   # the pre-trained weights; None: none ran
    graph: Any = field(default=None, repr=False)                # scipy CSR neighbour graph; None: none built

    def save(self, file: Path) -> None:
        import torch

        g = self.graph
        _save({"reuse_key": self.key, "pretrained": self.pretrained,
               "graph": None if g is None else {"indptr": torch.as_tensor(g.indptr),
                                                "indices": torch.as_tensor(g.indices),
                                                "data": torch.as_tensor(g.data), "shape": list(g.shape)}}, file)

    @classmethod
    def load(cls, file: Path) -> Reusable | None:
        """What `save` wrote; None without the file."""
        import scipy.sparse as sp

        if not Path(file).is_file():
            return None
        saved = _load(file)
        try:
            g = saved["graph"]
            graph = None if g is None else sp.csr_matrix(
                (g["data"].numpy(), g["indices"].numpy(), g["indptr"].numpy()), shape=tuple(g["shape"]))
            return cls(saved["reuse_key"], saved["pretrained"], graph)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise _damaged(file, e) from None


def _save(state: dict, file: Path) -> None:
    """`state` to `file` through a temporary file beside it: whole or not at all; the temporary
    file removed when the write fails (a full disk: DiskFull, one line)."""
    import torch

    file = Path(file)
    tmp = file.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as f:   # a file object: a full disk is an OSError, not torch's RuntimeError
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_full(e):
            raise DiskFull(f"{file.parent}: no space left on the disk for {file.name}; it was not kept "
                           "(free some space there and try again)") from None
        raise
    tmp.replace(file)


def _load(file: Path) -> dict:
    """weights_only: a checkpoint never runs code when read. A damaged file is one line naming it."""
    import torch

    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:   # truncated, garbled, not a checkpoint: one line naming it, and the way out
        raise _damaged(file, e) from None


def _damaged(file: Path, e: Exception) -> InputError:
    return InputError(f"{file}: damaged checkpoint ({one_line(e)[:160]}); delete it and the next round "
                      "trains without it (the predictions in force stay)")
