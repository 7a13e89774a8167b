"""A project on disk and the actions on it that the command line and the app share.

Orchestration only: it reads and writes the store (db/) and calls the engine; it holds no
Gradio and no argument parsing. Errors meant for the user are `ProjectError` (one line,
service/errors.py). The import path is `ProjectImport` (service/project_import.py), where the
store is and how to reach it service/store_location.py.
"""
from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Collection, Mapping, Sequence
import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..db.connect import quick_problems, sqlite_url
from ..db.errors import (
    CardClaimed, SchemaOutOfDate, StoreDamaged, StoreError, StoreFull, StoreNotEmpty, StoreUnavailable, VoteRefused,
)
from ..db.models import Round, as_utc
from ..db.store import Store
from ..db.writes import DecisionIn
from ..engine.config import load_config
from ..engine.crashpoints import crash_point
from ..engine.disk import require_space
from ..engine.errors import shown
from ..engine import checkpoint, thresholds
from ..engine.vocab import MER2024_CLASSES, UNFINISHED, Action, RoundStatus, Source, Split
from ..engine.features import FeatureStore
from ..engine.names import lookalike, name_problem, name_key, note_problem
from ..engine.processes import pid_alive
from ..engine.progress import ProgressFn
from ..engine.safe_files import check_folder_target
from ..engine.selection import card_kind

from .errors import Claimed, NoRound, ProjectError
from .project_import import ProjectImport
from .round_summary import RoundSummary
from .round_views import RoundViews
from .store_location import (
    PASSWORD_ENV, SERVER_URL_FILE, adopt_empty_store, clear_killed_init, half_made, init_temp_name,
    remove_sqlite_files, server_url, store_label, store_url, without_password, write_text_atomically,
)
from .values import person

if TYPE_CHECKING:
    from sqlalchemy import URL

DEFAULT_CLASSES = list(MER2024_CLASSES)
MAX_REPORTED = 20  # bad decision rows named in one error
# A running round that has not beaten for this long is dead, whichever host runs it.
HEARTBEAT_LIMIT = timedelta(minutes=10)


@dataclass(frozen=True)
class DecisionRequest:
    name: str
    action: str
    label: str | None = None
    note: str | None = None


class Project:
    """Handle on DIR: project.db, features/, checkpoints/, exports/."""

    def __init__(self, root: Path, store: Store, repair: bool = True) -> None:
        """`repair`: finish or undo a killed import and mark dead rounds failed (writes); a
        command that only reads (status, check) passes False and changes nothing."""
        self.root = root
        self.store = store
        self.classes = store.classes.names()
        if not self.classes:   # an older version's init killed between the schema and the classes
            raise ProjectError(f"{root}: its init was interrupted (the store has no classes); "
                               f"run 'mersemi init {root}' again")
        self.features = FeatureStore(root / "features")
        self.views = RoundViews()   # the arrays of its latest rounds, as the review reads them
        self.importer = ProjectImport(root, store, self.classes)
        # Notes for the user ('mersemi: note: ...'): what was repaired, or (reading only) what will be.
        self.repairs: list[str] = self.importer.finish_interrupted() if repair else self.importer.pending_repairs()
        if repair:
            self.mark_dead_rounds_failed()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def init(cls, root: str | Path, classes: Sequence[str] = DEFAULT_CLASSES,
             db_url: str | None = None) -> Project:
        """A new project in DIR; its store in DIR/project.db, or on the PostgreSQL server that
        `db_url` names (features, checkpoints and exports stay in DIR). Atomic: the store is
        complete (schema and classes, one transaction) before the file that makes DIR a project
        appears (project.db renamed into place, or database.url), so a kill leaves a project or
        none; what a killed init (of this version or an older one) left is cleared first."""
        root = check_folder_target(root, "init")  # not vocab: the command's name
        classes = [c.strip() for c in classes]
        if len(classes) < 2 or any(not c for c in classes):
            raise ProjectError("--classes: give at least two non-empty class names")
        for c in classes:
            if problem := name_problem(c):
                raise ProjectError(f"--classes: class {shown(c)} {problem}")
        if len(set(map(name_key, classes))) != len(classes):
            raise ProjectError("--classes: class names must be unique and read differently "
                               "(case, accents and lookalike letters aside)")
        server = server_url(db_url) if db_url is not None else None
        notes, pending = clear_killed_init(root)
        for marker in ("project.db", SERVER_URL_FILE):
            if (root / marker).exists() or (root / marker).is_symlink():
                raise ProjectError(f"{root}: already a project ({marker} exists)")
        require_space(root, 0, "a new project")
        # The paper's thresholds where the class is named there, otherwise the default.
        first = (classes, load_config().self_training.threshold_for(classes))
        made = [d for d in (root, *(root / sub for sub in ("features", "checkpoints", "exports"))) if not d.exists()]
        try:
            for d in made:   # not a project without its store
                d.mkdir(parents=True, exist_ok=True)
            store = _build_sqlite(root, first) if server is None else _build_server(root, server, first, pending)
        except BaseException:
            for d in reversed(made):   # a failed init leaves no folder it made
                shutil.rmtree(d, ignore_errors=True)
            raise
        project = cls(root, store)
        project.repairs = notes + project.repairs
        return project

    @classmethod
    def open(cls, root: str | Path, repair: bool = True) -> Project:
        """The project in DIR (see __init__ for `repair`)."""
        root = Path(root)
        url = store_url(root)
        try:
            store = Store(url)
        except SchemaOutOfDate as e:
            raise ProjectError(f"{store_label(root, url)}: {e}; run 'mersemi migrate {root}'") from None
        except StoreUnavailable as e:
            login = str(e).startswith("cannot open") and not str(url).startswith("sqlite")
            hint = f" (the password comes from {PASSWORD_ENV} or ~/.pgpass)" if login else ""
            raise ProjectError(f"{e}{hint}") from None
        except (StoreFull, StoreDamaged) as e:   # their message names the place already
            raise ProjectError(str(e)) from None
        except StoreError as e:
            if half_made(root / "project.db"):
                raise ProjectError(f"{root}: its init was interrupted (project.db holds no project yet); "
                                   f"run 'mersemi init {root}' again") from None
            raise ProjectError(f"{store_label(root, url)}: {e}") from None
        try:
            return cls(root, store, repair=repair)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def import_native(self, folder: str | Path, dtype: str = "float16", progress: ProgressFn | None = None) -> dict:
        """Import a native folder into this empty project (`ProjectImport`); its status after."""
        self.importer.native(folder, dtype, progress)
        return self.status()

    def import_mertools(self, labels: str | Path, features_root: str | Path, modality_map: dict[str, str],
                        transcripts: str | Path | None = None, media: str | Path | None = None,
                        dtype: str = "float16", progress: ProgressFn | None = None) -> dict:
        """Import the MERTools layout into this empty project (`ProjectImport`); its status after."""
        self.importer.mertools(labels, features_root, modality_map, transcripts, media, dtype, progress)
        return self.status()

    def current_round_id(self) -> int | None:
        """The latest finished round, whose predictions are in force."""
        current = self.store.rounds.current()
        return None if current is None else current.id

    def store_url(self) -> str:
        """Where the store is, without a password."""
        return self.store.db.engine.url.render_as_string(hide_password=True)

    def class_id(self, name: str, what: str = "class") -> int:
        """Class id of a name (case-insensitive); ProjectError naming the classes otherwise."""
        lowered = {c.lower(): i for i, c in enumerate(self.classes)}
        if not isinstance(name, str) or name.strip().lower() not in lowered:
            raise ProjectError(f"unknown {what} {shown(name)}; classes are {', '.join(self.classes)}")
        return lowered[name.strip().lower()]

    @property
    def media_root(self) -> Path | None:
        value = self.store.meta.get("media_root")
        return Path(value) if value else None

    # ------------------------------------------------------------------ thresholds
    def thresholds(self) -> dict[str, float]:
        return dict(zip(self.classes, self.store.thresholds.values()))

    def set_thresholds(self, values: Mapping[str, object], by: str) -> dict[str, float]:
        """Set some classes' thresholds as `by`'s (every value checked before any is written,
        engine/thresholds.py): the policy leaves them alone until `by` releases them."""
        parsed = thresholds.parse(self.classes, values)
        self.store.thresholds.set(parsed, by=self.known_person(by, "name"))
        return self.thresholds()

    def release_thresholds(self, classes: Sequence[str], by: str) -> list[str]:
        """Let the policy set these classes' thresholds after the coming rounds ("all": every
        class); returns the classes released."""
        if not classes:
            raise ProjectError("name the classes to release, or all")
        ids = (list(range(len(self.classes))) if [c.strip().lower() for c in classes] == ["all"]
               else sorted({self.class_id(c) for c in classes}))
        self.store.thresholds.release(ids, by=self.known_person(by, "name"))
        return [self.classes[i] for i in ids]

    def known_person(self, name: str, what: str = "reviewer") -> str:
        """`name`, unless it only looks like a name the store already records (`аnn`, Cyrillic
        а, beside `ann`): one person, one name, and the log reads unambiguously."""
        twin = lookalike(name, self.store.people())
        if twin is not None:
            raise ProjectError(f"{what} {shown(name)} looks like {shown(twin)}, who is already in the "
                               f"log; use {shown(twin)} or a name that reads differently")
        return name

    def threshold_owners(self) -> dict[str, dict]:
        """Per class: value, who set it and when, and whether the policy may set it."""
        return {self.classes[t.class_id]: {"threshold": t.value, "set_by": t.updated_by,
                                           "set_at": as_utc(t.updated_at).isoformat(timespec="seconds"),
                                           "policy_may_set": t.policy_may_set}
                for t in self.store.thresholds.rows()}

    def threshold_history(self, limit: int | None = None) -> list[dict]:
        """Every threshold change, newest first: class, value, who, when, the round whose policy
        step made it, and whether the policy may set the class afterwards."""
        return [{"class": self.classes[c.class_id], "threshold": c.value, "set_by": c.set_by,
                 "set_at": as_utc(c.set_at).isoformat(timespec="seconds"), "round": c.round_id,
                 "policy_may_set": c.policy_may_set, "note": c.note}
                for c in self.store.thresholds.history(limit)]

    # ------------------------------------------------------------------ decisions
    def decide(self, requests: Sequence[DecisionRequest], reviewer: str,
               source: str = "request", round_id: int | None = None,
               respect_claims: bool = False) -> dict:
        """Record decisions on pool samples of the current round (or of `round_id`, the round
        a request resolved once and chose the samples in): every row validated (each bad row
        reported, up to MAX_REPORTED), then one batch; nothing is written on an error.
        A relabel to the predicted class is recorded as the accept it is. With
        `respect_claims`, samples on another reviewer's screen (claimed) are refused."""
        rnd = self.store.rounds.current() if round_id is None else self.store.rounds.get(round_id)
        if rnd is None or rnd.status != RoundStatus.DONE:
            raise NoRound("no finished round yet: train round 0 before deciding")
        from . import votes

        reviewer = self.known_person(person(reviewer))
        bad_names = {r.name: p for r in requests if (p := name_problem(r.name))}
        known = self.store.samples.by_name(r.name for r in requests if r.name not in bad_names)
        preds = self.store.rounds.prediction_of(rnd.id, [v[0] for v in known.values()])
        th = self.store.thresholds.values()
        gold = [sid for sid, split in known.values() if split == Split.LABELED]
        # gold samples take votes only as probes or audit cards (service/votes.py)
        voting = votes.gold_open_to_votes(self, gold) if gold else set()
        entries, errors, as_accept = [], [], []
        first: dict[str, int] = {}
        for n, r in enumerate(requests, 1):
            if r.name in first:  # the last row winning silently undid the first one's decision
                errors.append(f"{source}: sample {shown(r.name)}: decided twice (requests {first[r.name]} and {n}); "
                              "keep one")
                continue
            first[r.name] = n
            try:
                entry = self._decision(r, known, preds, rnd.id, bad_names, th, voting)
            except ProjectError as e:
                errors.append(f"{source}: sample {shown(r.name)}: {e}")
                continue
            if r.action.strip().lower() == Action.RELABEL and entry.action == Action.ACCEPT:
                as_accept.append(r.name)
            entries.append(entry)
        if errors:
            more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
            raise ProjectError("; ".join(errors[:MAX_REPORTED]) + more)
        try:
            batch, replaced = self.store.decisions.record(
                entries, reviewer, respect_claims=respect_claims, single_holder=votes.overlap(self).votes > 1,
                new_cards=votes.audit_cards(self, [e.sample_id for e in entries if e.sample_id in voting], rnd.id))
        except VoteRefused as e:
            raise votes.refusal(self, e, source) from None
        except CardClaimed as e:
            names = self.store.samples.names(e.sample_ids)
            shown_names = ", ".join(names[i] for i in e.sample_ids[:5]) + (" ..." if len(e.sample_ids) > 5 else "")
            raise Claimed(f"{source}: {shown_names}: on another reviewer's screen right now; "
                               "take the next card (it is theirs to decide)") from None
        states = votes.card_states(self, [e.sample_id for e in entries])
        return {"recorded": len(entries), "round": rnd.id, "batch": batch, "relabel_as_accept": as_accept,
                "votes": {r.name: states[known[r.name][0]] for r in requests if known[r.name][0] in states},
                "replaced": [{"name": r.name, "action": d.action, "reviewer": d.reviewer,
                              "label": self.classes[d.label] if d.label is not None else None,
                              "at": d.created_at.isoformat(timespec="seconds")}
                             for r in requests if (d := replaced.get(known[r.name][0])) is not None]}

    def _decision(self, r: DecisionRequest, known: dict, preds: dict, round_id: int,
                  bad_names: dict[str, str], th: list[float], voting: Collection[int] = ()) -> DecisionIn:
        """One request as a decision, or ProjectError saying what is wrong with it."""
        if r.name in bad_names:
            raise ProjectError(f"the name {bad_names[r.name]}")
        if r.note and (problem := note_problem(r.note)):
            raise ProjectError(f"the note {problem}")
        if r.name not in known:
            raise ProjectError("unknown sample")
        sid, split = known[r.name]
        asked = (r.action or "").strip().lower()
        if asked not in tuple(Action):
            raise ProjectError(f"decision must be {', '.join(list(Action)[:-1])} or {list(Action)[-1]}, "
                               f"got {shown(r.action)}")
        action = Action(asked)
        if split != Split.UNLABELED and sid not in voting:
            raise ProjectError(f"not in the pool (it is a {split} sample)")
        if sid not in preds:
            raise ProjectError(f"not scored in round {round_id}")
        _, predicted, confidence = preds[sid]
        label = predicted
        if action in (Action.RELABEL, Action.LABEL):
            if not r.label:
                raise ProjectError(f"{action} needs a label")
            label = self._label_id(r.label)
            if action == Action.RELABEL and label == predicted:
                action = Action.ACCEPT   # the prediction was right: that is an accept
        elif r.label and self._label_id(r.label) != predicted:
            raise ProjectError(f"{action} names label {shown(r.label)} but the prediction is "
                               f"{self.classes[predicted]!r}; use relabel")
        # The card it was decided on, as the queues would show it now.
        card = card_kind(predicted, confidence, th)
        return DecisionIn(sid, action, label, round_id, r.note, predicted=predicted, card=card, confidence=confidence)

    def _label_id(self, label: str) -> int:
        return self.class_id(label, "label")  # not vocab: the field's name

    # ------------------------------------------------------------------ rounds
    def require_sound_store(self) -> None:
        """Refuse to write much (a round) into a store whose file is broken (SQLite's quick check)."""
        problems = quick_problems(self.store.db.engine)
        if problems:
            raise ProjectError(f"{self.root / 'project.db'} is damaged (SQLite: {problems[0][:200]}); nothing was "
                               f"written. `mersemi check {self.root}` says what, and the way out")

    def mark_dead_rounds_failed(self) -> list[int]:
        """A round whose process is gone (killed, crashed, machine rebooted) is failed, and its
        orphan checkpoint removed. Dead: run on this host by a pid that is gone, or silent for
        longer than HEARTBEAT_LIMIT (any host: a team shares one server)."""
        host, now = socket.gethostname(), self.store.db.clock()

        def dead(r: Round) -> bool:
            return round_is_dead(r, host, now)

        # A cheap read first; the write transaction decides again under the lock.
        if not any(dead(r) for r in self.store.rounds.unfinished()):
            return []
        failed = self.store.rounds.fail_dead(dead, lambda r: _death_note(r, host))
        for r in failed:
            for file in checkpoint.files(self.root / "checkpoints", r.id):
                file.unlink(missing_ok=True)
        return [r.id for r in failed]

    # ------------------------------------------------------------------ status
    def rounds(self) -> list[RoundSummary]:
        """Every round, oldest first."""
        return [RoundSummary.of(r, self.classes) for r in self.store.rounds.all()]

    def round(self, round_id: int) -> RoundSummary:
        r = self.store.rounds.get(round_id)
        if r is None:
            raise ProjectError(f"no round {round_id}")
        return RoundSummary.of(r, self.classes)

    def status(self) -> dict:
        splits = self.store.samples.split_counts()
        gold = self.store.samples.gold_counts()
        counts = self.store.decisions.counts()
        sources = self.store.decisions.source_counts()
        host, now = socket.gethostname(), self.store.db.clock()
        rounds = []
        for r in self.store.rounds.all():
            summary = RoundSummary.of(r, self.classes)
            if r.status in UNFINISHED and round_is_dead(r, host, now):   # as the next write will record it
                summary = dataclasses.replace(summary, status=RoundStatus.FAILED, error=_death_note(r, host))
            rounds.append(summary.to_json())
        current = self.store.rounds.current()
        return {
            "project": str(self.root.resolve()),
            "classes": self.classes,
            "modalities": self.features.modalities if self.features.exists() else {},
            "samples": {s.value: splits.get(s, 0) for s in Split}
                       | {"total": sum(splits.values())},
            "labeled_per_class": {c: gold.get(i, 0) for i, c in enumerate(self.classes)},
            "decisions": {a: {c: counts[a].get(i, 0) for i, c in enumerate(self.classes)}
                          for a in Action},
            # Labels in force by where they came from: gold, then a person's, then the tool's.
            "labels": {Source.GOLD: {c: gold.get(i, 0) for i, c in enumerate(self.classes)}}
                      | {src: {c: n.get(i, 0) for i, c in enumerate(self.classes)} for src, n in sources.items()},
            "thresholds": self.thresholds(),
            "threshold_owners": self.threshold_owners(),
            "current_round": None if current is None else current.id,
            "rounds": rounds,
        }


def round_is_dead(r: Round, host: str, now) -> bool:
    """Whether an unfinished round's process is gone (see Project.mark_dead_rounds_failed)."""
    if r.host == host and (r.pid is None or not pid_alive(r.pid)):
        return True
    last = r.heartbeat_at or r.started_at or r.created_at   # rounds from before heartbeats
    return last is None or now - as_utc(last) > HEARTBEAT_LIMIT


def _death_note(r: Round, host: str) -> str:
    if r.host == host and (r.pid is None or not pid_alive(r.pid)):
        return f"interrupted: process {r.pid} on {r.host} is gone"
    minutes = int(HEARTBEAT_LIMIT.total_seconds() // 60)
    return f"interrupted: no heartbeat from process {r.pid} on {r.host} for over {minutes} minutes"


def _build_sqlite(root: Path, first: tuple[list[str], list[float]]) -> Store:
    """DIR/project.db, built complete under a temporary name and renamed into place."""
    build = root / init_temp_name()
    try:
        Store(sqlite_url(build), create=True, classes=first).close()   # closing folds the WAL in
        crash_point("init:built")
        os.replace(build, root / "project.db")   # the commit point
        crash_point("init:renamed")
    finally:
        remove_sqlite_files(build)
    return Store(sqlite_url(root / "project.db"))


def _build_server(root: Path, server: URL, first: tuple[list[str], list[float]], pending: set[str]) -> Store:
    """The store on the server (schema and classes in one transaction), then DIR/database.url.
    A note of the URL is written first, so that the next init recognises a store its killed
    predecessor made (`pending`) and takes it, while nothing else unused is taken."""
    url_text = without_password(server)
    note = root / init_temp_name(SERVER_URL_FILE)
    write_text_atomically(note, url_text + "\n")
    try:
        try:
            store = Store(server, create=True, classes=first)
            crash_point("init:built")
        except StoreNotEmpty as e:   # a store that a killed init left?
            store = adopt_empty_store(server, first, e, ours=url_text in pending)
        except StoreError as e:
            raise ProjectError(f"--db: {e}") from None
        try:
            os.replace(note, root / SERVER_URL_FILE)   # the commit point
            crash_point("init:renamed")
        except BaseException:
            store.close()
            raise
    finally:
        note.unlink(missing_ok=True)
    return store


def parse_decisions_csv(path: str | Path) -> list[DecisionRequest]:
    """Read `name, decision, label[, note]`; errors name the file and row."""
    from ..engine.importers import read_csv   # pandas: only `decide` needs it

    path = Path(path)
    df = read_csv(path, required=("name", "decision"))  # a regular file, bounded, no NUL
    if df.empty:
        raise ProjectError(f"{path}: no decisions in the file")
    label = df["label"] if "label" in df.columns else [""] * len(df)  # not vocab: a column
    note = df["note"] if "note" in df.columns else [""] * len(df)
    return [DecisionRequest(n, d, l or None, nt or None)
            for n, d, l, nt in zip(df["name"], df["decision"], label, note)]

