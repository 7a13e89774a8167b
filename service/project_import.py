"""A project's import, all-or-nothing and whole after a kill at any step (`ProjectImport`,
held by `Project` as `project.importer`, service/project.py): validate the metadata, stream
the features into a staging folder, record the pending import, insert the samples, move the
features in."""
from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..db.store import Store
from ..engine.disk import require_space
from ..engine.crashpoints import crash_point
from ..engine.errors import InputError, shown
from ..engine.features import FeatureWriter, dead_staging, process_may_run, publish_staged, remove_dead_staging

from .errors import ProjectError

if TYPE_CHECKING:
    from ..engine.importers import ImportPlan
    from ..engine.progress import ProgressFn

# A sample's rows in the store (name, text, media path, indexes), for the free-space check.
_DB_ROW_BYTES = 600
PENDING_IMPORT = "import_pending"  # meta key: JSON of an import between its samples and its features


class ProjectImport:
    """The imports into the project at `root` whose store is `store` and classes `classes`."""

    def __init__(self, root: Path, store: Store, classes: list[str]) -> None:
        self.root, self.store, self.classes = root, store, classes

    def native(self, folder: str | Path, dtype: str = "float16", progress: ProgressFn | None = None) -> None:
        from ..engine.importers import plan_native   # pandas: only an import needs it

        self._require_empty()
        self._import(lambda: plan_native(Path(folder), self.classes), dtype, progress)

    def mertools(self, labels: str | Path, features_root: str | Path, modality_map: dict[str, str],
                 transcripts: str | Path | None = None, media: str | Path | None = None, dtype: str = "float16",
                 progress: ProgressFn | None = None) -> None:
        from ..engine.importers import plan_mertools

        self._require_empty()
        if not modality_map:
            raise ProjectError("--modality: map at least one modality, e.g. --modality audio=chinese-hubert-large-UTT")
        self._import(lambda: plan_mertools(
            Path(labels), Path(features_root), modality_map, self.classes,
            transcripts=Path(transcripts) if transcripts else None,
            media=Path(media) if media else None), dtype, progress)

    def _require_empty(self) -> None:
        n = self.store.samples.count()
        if n:
            raise ProjectError(f"{self.root}: already holds {n} samples; import into a new project")

    def _import(self, make_plan: Callable[[], ImportPlan], dtype: str, progress: ProgressFn | None) -> None:
        """All-or-nothing, and whole after a kill at any step: validate the metadata, stream the
        features into a staging folder (validating rows), record the pending import, insert
        the samples in one transaction (the commit point), move the features in, clear the
        record. A kill before the samples are in is undone by the next command that opens the
        project, one after them is finished by it (`finish_interrupted`)."""
        if dtype not in ("float16", "float32"):
            raise ProjectError(f"--dtype: must be float16 or float32, got {shown(dtype)}")
        try:
            plan = make_plan()
            plan.check_trainable(self.classes)
            row_bytes = sum(plan.modalities.values()) * np.dtype(dtype).itemsize + _DB_ROW_BYTES
            require_space(self.root / "features", len(plan.names) * row_bytes, "the import's features and samples")
            with FeatureWriter(self.root / "features", len(plan.names), plan.modalities, dtype) as writer:
                plan.write_features(writer, progress)
                staging = writer.stage()
                crash_point("import:staged")
                self._commit_import(plan, writer, staging.name)
        except InputError as e:
            raise ProjectError(str(e)) from None

    def _commit_import(self, plan: ImportPlan, writer: FeatureWriter, staging: str) -> None:
        cid = {c: i for i, c in enumerate(self.classes)}
        rows = [{"id": i, "name": n, "split": sp,
                 "gold_label": None if lab is None else cid[lab],
                 "true_label": None if tl is None else cid[tl],
                 "text": tx, "media": md}
                for i, (n, sp, lab, tl, tx, md) in enumerate(zip(
                    plan.names, plan.splits, plan.labels, plan.true_labels, plan.texts, plan.media))]
        pending = {"staging": staging, "pid": os.getpid(), "host": socket.gethostname(),
                   "media_root": plan.media_root or "", "source": plan.source}
        self.store.meta.set(**{PENDING_IMPORT: json.dumps(pending)})
        try:
            crash_point("import:marked")
            self.store.samples.insert(rows)
        except BaseException:
            if self.store.samples.count() == 0:  # not committed: the writer removes the staging folder
                self.store.meta.set(**{PENDING_IMPORT: ""})
                raise
            writer.publish()  # committed after all: finish before reporting the interruption
            self._record_import(pending)
            raise
        crash_point("import:samples")
        writer.publish()
        crash_point("import:published")
        self._record_import(pending)

    def _record_import(self, pending: dict) -> None:
        self.store.meta.set(media_root=pending["media_root"], import_source=pending["source"],
                            **{PENDING_IMPORT: ""})

    def pending_repairs(self) -> list[str]:
        """What `finish_interrupted` would do, said without doing it (status writes nothing)."""
        notes, later = [], "the next command that writes"
        features = self.root / "features"
        raw = self.store.meta.get(PENDING_IMPORT)
        pending = json.loads(raw) if raw else None
        if pending and not process_may_run(pending["host"], pending["pid"]):
            n, who = self.store.samples.count(), f"process {pending['pid']}"
            notes.append(f"an import ({who}) was interrupted before its samples were written: nothing was "
                         f"imported; {later} removes what it left (run the import again)" if n == 0 else
                         f"an import ({who}) was interrupted after its {n} samples were written; {later} finishes it")
        if features.is_dir() and (dead := dead_staging(features, keep=pending["staging"] if pending else None)):
            notes.append(f"{len(dead)} staging folder(s) of killed imports in {features}; {later} removes them")
        return notes

    def finish_interrupted(self) -> list[str]:
        """Repair what a killed import left behind; returns what was done, for the user."""
        notes = []
        features = self.root / "features"
        raw = self.store.meta.get(PENDING_IMPORT)
        pending = json.loads(raw) if raw else None
        if pending and not process_may_run(pending["host"], pending["pid"]):
            n, who = self.store.samples.count(), f"process {pending['pid']}"
            if n == 0:
                shutil.rmtree(features / pending["staging"], ignore_errors=True)
                self.store.meta.set(**{PENDING_IMPORT: ""})
                notes.append(f"an import ({who}) was interrupted before its samples were written: "
                             f"nothing was imported; run it again")
            else:
                try:
                    publish_staged(features, pending["staging"])
                except InputError as e:
                    notes.append(f"an import ({who}) was interrupted after its {n} samples were written and "
                                 f"cannot be finished ({e}); import into a new project")
                else:
                    self._record_import(pending)
                    notes.append(f"finished an import ({who}) interrupted after its {n} samples were written")
            pending = None
        if features.is_dir():
            removed = remove_dead_staging(features, keep=pending["staging"] if pending else None)
            if removed:
                notes.append(f"removed {len(removed)} staging folder(s) of killed imports from {features}")
        return notes
