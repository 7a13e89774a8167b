"""The one folder the app's server lets Gradio serve files from: copies of the media clips the
cards show, and nothing else.

Gradio serves any file under a folder in `allowed_paths`. The media folder is the user's own
(for a native import, the import folder: samples.csv with the hidden labels, the feature
matrices), so it is never opened; a clip a card shows is put here first (a hard link where
the file system allows, a copy otherwise), under a name derived from its path, and the card
points here. No Gradio in this module.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path


class ClipShelf:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mersemi-clips-")  # removed at exit at the latest
        self.folder = Path(self._dir.name).resolve()

    def serve(self, clip: Path) -> Path:
        """The shelf's copy of `clip` (a file the caller has checked is a clip of the project),
        refreshed when the clip changed since it was put here."""
        clip = Path(clip).resolve()
        key = hashlib.sha256(str(clip).encode()).hexdigest()[:24]
        target = self.folder / key / clip.name
        if target.exists() and _same_content(clip, target):
            return target
        target.parent.mkdir(exist_ok=True)
        part = target.with_name(f".{uuid.uuid4().hex}.part")  # concurrent cards: each its own
        try:
            os.link(clip, part)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(clip, part)
        os.replace(part, target)
        return target

    def offer(self, file: str | Path) -> Path:
        """A copy of an export for the browser to download, in a folder of its own here."""
        file = Path(file)
        target = self.folder / "downloads" / uuid.uuid4().hex / file.name
        target.parent.mkdir(parents=True)
        shutil.copyfile(file, target)
        return target

    def close(self) -> None:
        self._dir.cleanup()


def _same_content(clip: Path, copy: Path) -> bool:
    if os.path.samefile(clip, copy):
        return True
    a, b = clip.stat(), copy.stat()
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns  # copy2 keeps the time
