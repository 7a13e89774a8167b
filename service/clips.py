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
import stat
import tempfile
import uuid
from pathlib import Path

from ..engine.processes import pid_alive


def temp_prefix(kind: str) -> str:
    """The name of a temporary folder this process owns: a later server finds it by the pid."""
    return f"mersemi-{kind}-{os.getpid()}-"


def remove_leftovers(tmp: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders of servers that died without cleaning up (kill -9): ours
    (same user), not links, named by a pid that is no longer running."""
    removed = []
    for folder in Path(tmp or tempfile.gettempdir()).glob("mersemi-*-*-*"):
        parts = folder.name.split("-")
        if len(parts) < 4 or parts[1] not in ("clips", "gradio") or not parts[2].isdigit():
            continue
        st = folder.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or pid_alive(int(parts[2])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class ClipShelf:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix=temp_prefix("clips"))  # removed at exit at the latest
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
