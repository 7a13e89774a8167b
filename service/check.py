"""`mersemi check DIR`: what is damaged in a project, part by part, with the way out: the store
(the database's own integrity check, every table and column, the schema version), every
round's record and predictions, the checkpoints (each loads), the features (the recorded
shapes, finite values, one row per sample). It reads only: nothing is repaired or written."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..db.connect import integrity_problems, make_engine, schema_version
from ..db.errors import StoreDamaged, StoreError
from ..db.models import SCHEMA_VERSION
from ..db.store import Store
from ..engine import checkpoint
from ..engine.errors import MersemiError, one_line
from ..engine.features import FeatureStore
from ..engine.vocab import PredictionKind, RoundStatus

from .errors import ProjectError
from .round_summary import RoundSummary
from .store_location import store_label, store_url

RESTORE = ("restore the store from a copy (migrate leaves project.db.v*-backup-* beside it; on PostgreSQL, "
           "pg_dump's), or make a new project and import again")


@dataclass(frozen=True)
class Finding:
    part: str
    damaged: bool
    detail: str


def check_project(root: str | Path) -> list[Finding]:
    """Every part of the project at `root`, sound or damaged (see the module doc)."""
    root = Path(root)
    try:
        url = store_url(root)
    except ProjectError as e:
        return [Finding("store", True, str(e))]
    label = store_label(root, url)
    engine = make_engine(url)
    try:
        problems = integrity_problems(engine)
        version = schema_version(engine)
    except StoreDamaged as e:   # the integrity check itself stopped at a broken page
        return [Finding(label, True, f"integrity check stopped: {one_line(e.reason)}; {RESTORE}")]
    except (StoreError, MersemiError) as e:
        return [Finding(label, True, f"{one_line(e)}; {RESTORE}")]
    finally:
        engine.dispose()
    if version != SCHEMA_VERSION:
        problems.append(f"schema version {version}, this tool's is {SCHEMA_VERSION}"
                        + (f" (run 'mersemi migrate {root}')" if version and version < SCHEMA_VERSION else ""))
    if problems:
        return [Finding(label, True, "; ".join(problems[:5]) + f"; {RESTORE}")]
    findings = [Finding(label, False, f"integrity check passed, every table and column present, "
                                      f"schema version {version}")]
    try:
        store = Store(url)
    except StoreError as e:
        return findings + [Finding(label, True, f"{one_line(e)}; {RESTORE}")]
    try:
        findings += _rounds(root, store)
        findings += _features(root, store)
    finally:
        store.close()
    return findings


def _rounds(root: Path, store: Store) -> list[Finding]:
    out = []
    for rid in store.rounds.ids():
        part = f"round {rid}"
        try:
            r = store.rounds.get(rid)
            if r is None:   # gone between the listing and the read: nothing to check
                continue
            RoundSummary.of(r, store.classes.names())   # its record in the engine's types
            if r.status == RoundStatus.DONE:
                for kind in PredictionKind:
                    store.rounds.predictions(rid, kind)
        except MersemiError as e:
            out.append(Finding(part, True, f"{one_line(e)}; {RESTORE}"))
            continue
        if r.checkpoint and (root / r.checkpoint).is_file():
            try:
                checkpoint.Checkpoint.load(root / r.checkpoint)
            except MersemiError as e:
                out.append(Finding(f"{part} checkpoint", True, one_line(e)))
                continue
        out.append(Finding(part, False, f"{r.status}; record and predictions readable"
                                        + (", checkpoint loads" if r.checkpoint and (root / r.checkpoint).is_file()
                                           else "")))
    reuse = checkpoint.reuse_path(root / "checkpoints")
    if reuse.is_file():
        try:
            checkpoint.Reusable.load(reuse)
            out.append(Finding(str(reuse.relative_to(root)), False, "loads"))
        except MersemiError as e:
            out.append(Finding(str(reuse.relative_to(root)), True, one_line(e)))
    return out


def _features(root: Path, store: Store) -> list[Finding]:
    features = FeatureStore(root / "features")
    if not features.exists():
        return [Finding("features", False, "none imported yet")]
    try:
        n = store.samples.count()
        if features.n_rows != n:
            raise MersemiError(f"{features.folder}: {features.n_rows} rows for {n} samples")
        features.check_finite()   # each matrix of its recorded shape and type, every value finite
    except MersemiError as e:
        return [Finding("features", True, one_line(e))]
    return [Finding("features", False, f"{len(features.modalities)} matrices of {n} rows, the recorded shapes, "
                                       "every value finite")]
