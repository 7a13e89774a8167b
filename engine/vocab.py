"""The project's vocabulary, defined once: splits, round statuses, prediction kinds, decision
actions, label sources, queue and card kinds, media kinds, and the names the tool records as
itself. The store's CHECK constraints, the exports, the app, the command line and training
all import these; a leaf module (no imports of ours).
"""
from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class Split(StrEnum):
    LABELED = "labeled"        # gold labels: the only samples evaluation folds hold
    UNLABELED = "unlabeled"    # the pool
    TEST = "test"              # scored and evaluated, never trained on


class RoundStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DISCARDED = "discarded"    # finished, but its evidence was worse than the round before: not in force


UNFINISHED = (RoundStatus.QUEUED, RoundStatus.RUNNING)


class PredictionKind(StrEnum):
    POOL = "pool"
    TEST = "test"
    OOF = "oof"                # out-of-fold predictions of the gold samples


class Action(StrEnum):
    """A decision in force on a pool sample. accept / reject answer the prediction; relabel
    changes a verify card's class; label gives a class to any pool sample."""
    ACCEPT = "accept"
    REJECT = "reject"
    RELABEL = "relabel"
    LABEL = "label"


UNDO = "undo"                                   # a log entry that takes one back
LOG_ACTIONS = (*Action, UNDO)                   # what the decision log holds
CLASS_ACTIONS = (Action.ACCEPT, Action.RELABEL, Action.LABEL)   # decisions that give a sample a class


class Source(StrEnum):
    """Where a training label came from."""
    GOLD = "gold"              # imported
    VERIFIED = "verified"      # a person accepted the prediction
    RELABELED = "relabeled"    # a person changed a verify card's class
    LABELED = "labeled"        # a person gave a class to an uncertain (or any) pool sample
    PSEUDO = "pseudo"          # the tool accepted the prediction (reviewer `auto`)
    CONSENSUS = "consensus"    # the majority of a card's K votes (reviewer `consensus`, with its vote count)
    ADJUDICATED = "adjudicated"  # a tie of votes decided by a reviewer who did not vote


# every class a person gave (consensus and adjudication are people's too)
HUMAN_SOURCES = (Source.VERIFIED, Source.RELABELED, Source.LABELED, Source.CONSENSUS, Source.ADJUDICATED)
POOL_SOURCES = (*HUMAN_SOURCES, Source.PSEUDO)   # every source of a pool sample's label (all but gold)


class Tool(StrEnum):
    """Names the tool records as itself: reserved, never a reviewer's or a login's."""
    AUTO = "auto"                  # automatic acceptance (`train --auto-accept`)
    POLICY = "policy"              # the threshold policy after a round
    INIT = "init"                  # a new project's thresholds
    SUGGEST = "suggest"
    PAPER_PRESET = "paper preset"
    CONSENSUS = "consensus"        # records the majority of a card's votes


RESERVED_NAMES = tuple(Tool)

MER2024_CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")  # a new project's default


def source_of(action: str, reviewer: str) -> Source | None:
    """The label source of a decision: None for a reject (it gives no class)."""
    if action == Action.ACCEPT:
        return Source.PSEUDO if reviewer == Tool.AUTO else Source.VERIFIED
    return {Action.RELABEL: Source.RELABELED, Action.LABEL: Source.LABELED}.get(Action(action))


class QueueKind(StrEnum):
    """The review queues: `both` shows the label cards, then the verify cards."""
    BOTH = "both"
    LABEL = "label"            # below threshold: give them a class
    VERIFY = "verify"          # candidates, at or above threshold: accept or reject
    ADJUDICATE = "adjudicate"  # cards whose votes tie: decided by a reviewer who did not vote
    AUDIT = "audit"            # gold labels the round's out-of-fold probabilities flag as likely wrong


POOL_QUEUES = (QueueKind.BOTH, QueueKind.LABEL, QueueKind.VERIFY)   # the queues of the round's pool cards


class VotePurpose(StrEnum):
    """Why a card takes votes rather than one decision (service/votes.py)."""
    OVERLAP = "overlap"        # a pool card in the overlap share: K votes, the majority is the label
    PROBE = "probe"            # a gold sample shown as an ordinary card: each vote scores its reviewer
    AUDIT = "audit"            # a gold label flagged as likely wrong: K votes may change it


class CardState(StrEnum):
    """Where a voted card stands (service/votes.card_states)."""
    OPEN = "open"              # votes to come
    CONSENSUS = "consensus"    # a majority of its K votes
    TIE = "tie"                # K votes, no majority: waits for an adjudication
    ADJUDICATED = "adjudicated"


DEFAULT_QUEUE = QueueKind.BOTH   # the queue the app, `mersemi queue` and the API show unless asked


class CardKind(StrEnum):
    LABEL = "label"
    VERIFY = "verify"


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac")
# Every clip the importer accepts (in its order of preference when a sample has several) gets a
# player on the card.
MEDIA_SUFFIXES = VIDEO_SUFFIXES + AUDIO_SUFFIXES


def media_kind(path: str | Path) -> MediaKind | None:
    """The player a clip needs, by its suffix; None for a file that is not a clip."""
    suffix = Path(path).suffix.lower()
    return MediaKind.AUDIO if suffix in AUDIO_SUFFIXES else MediaKind.VIDEO if suffix in VIDEO_SUFFIXES else None
