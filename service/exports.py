"""Exports: labels (gold + relabel + accepted), the latest predictions, the decision log (votes and
consensus included), the gold labels an audit changed. A CSV's text cells are made safe to open in
a spreadsheet (service/spreadsheet.py)."""
from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from ..engine.disk import FILE_MARGIN, require_space
from ..engine.errors import shown
from ..engine.safe_files import check_writable_target, write_atomically
from ..engine.vocab import PredictionKind, Source, Split

from .errors import NoRound
from .project import Project, ProjectError
from .spreadsheet import safe_frame

WHAT = ("labels", "predictions", "decisions", "gold_changes")


def export(project: Project, what: str, out: str | Path, fmt: str = "csv") -> dict:
    """Write one export to `out`; returns {"path", "rows"}."""
    if what not in WHAT:
        raise ProjectError(f"--what: must be one of {', '.join(WHAT)}, got {shown(what)}")
    if fmt not in ("csv", "mertools"):
        raise ProjectError(f"--format: must be csv or mertools, got {shown(fmt)}")
    if fmt == "mertools" and what != "labels":
        raise ProjectError("--format mertools applies to --what labels only")
    out = output_path(project, out)
    if what == "labels":
        df = labels_frame(project)
        if fmt == "mertools":
            _write_mertools(project, df, out)
            return {"path": str(out), "rows": len(df)}
    elif what == "predictions":
        df = predictions_frame(project)
    elif what == "gold_changes":
        df = gold_changes_frame(project)
    else:
        df = decisions_frame(project)
    data = safe_frame(df).to_csv(index=False).encode()  # a note "=HYPERLINK(...)" is text, never run
    require_space(out.parent, len(data), "the export", margin=FILE_MARGIN)
    write_atomically(out, "--out", lambda f: _write_all(f, data))
    return {"path": str(out), "rows": len(df)}


def _write_all(f: IO[bytes], data: bytes) -> None:
    f.write(data)


def output_path(project: Project, out: str | Path) -> Path:
    """The file an export may write for `out` (a regular file or a new name, see
    check_writable_target): anywhere outside a project, or under a project's own exports/
    folder. Inside a project it would replace the database, a feature matrix or a checkpoint
    (`--out P/project.db` once did)."""
    given = Path(out)
    target = check_writable_target(given, "--out")
    roots = {project.root.resolve()} | {d for d in target.parents if _is_project_root(d)}
    for root in sorted(roots):
        # exports/ itself unresolved: an exports link into features/ does not make features/ writable
        exports = root / "exports"
        if target.is_relative_to(root) and not target.is_relative_to(exports):
            raise ProjectError(f"--out {given}: inside the project {root} ({target.relative_to(root)}); "
                               f"write exports under {exports} or outside the project")
    return target


def _is_project_root(folder: Path) -> bool:
    return (folder / "project.db").is_file() or all(
        (folder / sub).is_dir() for sub in ("features", "checkpoints", "exports"))


def labels_frame(project: Project) -> pd.DataFrame:
    """name, label, source: gold labels of the labeled split, then the pool labels in force with
    where each came from (engine/vocab.Source: verified, relabeled, labeled, pseudo)."""
    store, classes = project.store, project.classes
    gold_ids, gold_y, _ = store.samples.split_arrays(Split.LABELED)
    keep = gold_y >= 0
    ids, labels, pool_sources = store.decisions.training_labels()
    all_ids = np.concatenate([gold_ids[keep], ids])
    names = store.samples.names(all_ids.tolist())
    sources = [str(Source.GOLD)] * int(keep.sum()) + [str(s) for s in pool_sources]
    all_labels = np.concatenate([gold_y[keep], labels]).astype(int)
    return pd.DataFrame({"name": [names[i] for i in all_ids.tolist()],
                         "label": [classes[y] for y in all_labels], "source": sources})


def predictions_frame(project: Project) -> pd.DataFrame:
    """The current round's predictions for the pool and the test split."""
    rnd = project.store.rounds.current()
    if rnd is None:
        raise NoRound("no finished round yet: nothing to export")
    frames = []
    for kind, split in ((PredictionKind.POOL, Split.UNLABELED), (PredictionKind.TEST, Split.TEST)):
        ids, probs = project.store.rounds.predictions(rnd.id, kind)
        if len(ids) == 0:
            continue
        names = project.store.samples.names(ids.tolist())
        pred = probs.argmax(1)
        df = pd.DataFrame({"name": [names[i] for i in ids.tolist()], "split": split,
                           "predicted": [project.classes[p] for p in pred],
                           "confidence": probs.max(1).round(6)})
        for c, name in enumerate(project.classes):
            df[f"p_{name}"] = probs[:, c].round(6)
        frames.append(df)
    columns = ["name", "split", "predicted", "confidence"] + [f"p_{c}" for c in project.classes]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def decisions_frame(project: Project) -> pd.DataFrame:
    log = project.store.decisions.log()
    names = project.store.samples.names(sorted({d.sample_id for d in log}))
    classes = project.classes
    return pd.DataFrame([{
        "id": d.id, "time": d.created_at.isoformat(timespec="seconds"), "name": names[d.sample_id],
        "round": d.round_id, "decision": d.action,
        "label": None if d.label is None else classes[d.label], "undoes": d.undoes,
        "source": d.source, "card": d.card, "confidence": d.confidence,
        "reviewer": d.reviewer, "note": d.note, "batch": d.batch, "vote": d.vote,
        "votes_for": d.votes_for, "votes_cast": d.votes_cast,
    } for d in log], columns=["id", "time", "name", "round", "decision", "label", "source", "card", "confidence",
                              "undoes", "reviewer", "note", "batch", "vote", "votes_for", "votes_cast"]).astype(
        {"round": "Int64", "undoes": "Int64"})   # ids stay whole numbers beside empty cells


def gold_changes_frame(project: Project) -> pd.DataFrame:
    """Every gold label an audit's consensus changed: name, old_label, new_label, the votes, when."""
    from .audit import gold_changes

    return pd.DataFrame(gold_changes(project), columns=["name", "old_label", "new_label", "votes_for",
                                                        "votes_cast", "round", "at", "note"])


def _write_mertools(project: Project, labels: pd.DataFrame, out: Path) -> None:
    """MERTools' label-6way.npz: train_corpus holds the labels; test1_corpus the rest of the
    pool with a placeholder `emo` (the current prediction when there is one), as MERTools'
    own test1 corpus carries placeholders."""
    train = {n: {"emo": l, "source": s} for n, l, s in labels.itertuples(index=False)}
    pool_ids, _, _ = project.store.samples.split_arrays(Split.UNLABELED)
    rnd = project.store.rounds.current()
    placeholder: dict[int, str] = {}
    if rnd is not None:
        ids, probs = project.store.rounds.predictions(rnd.id, PredictionKind.POOL)
        placeholder = {int(i): project.classes[int(p)] for i, p in zip(ids, probs.argmax(1))}
    names = project.store.samples.names(pool_ids.tolist())
    test1 = {names[i]: {"emo": placeholder.get(i, project.classes[0])}
             for i in pool_ids.tolist() if names[i] not in train}
    corpora: dict[str, Any] = {"train_corpus": train, "test1_corpus": test1}
    write_atomically(out, "--out", lambda f: np.savez(f, **corpora))
