"""Intent records that let an embedded store finish or undo a write a crash interrupted.

Before :class:`~pagesight.retrieval.store.PageStore` changes Chroma and the image folder it writes
one small JSON file into ``<store>/journal/``: the record ids and image files that must be *gone*
if the operation does not complete (the new pages of an ``add_source``; the pages a delete removes).
The file is written atomically (temporary name, fsync, rename, fsync of the folder) and removed when
the operation is done. Opening the store with the write lock free replays what is left: deletes
those ids and images (both steps are idempotent). So after a crash an ``add_source`` is rolled back
and a delete is completed: every source is all there or not there.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Intent", "JOURNAL_DIR", "finish", "fsync_dir", "pending", "record"]

logger = logging.getLogger(__name__)

JOURNAL_DIR = "journal"


@dataclass(frozen=True, slots=True)
class Intent:
    """What must be gone if the operation does not complete.

    Attributes:
        path: the journal file.
        action: what was under way (for the log).
        ids: Chroma record ids to delete.
        images: image paths relative to the store's image folder to delete.
    """

    path: Path
    action: str
    ids: tuple[str, ...]
    images: tuple[str, ...]


def record(
    folder: Path, action: str, ids: list[str], images: list[str], *, replace: Path | None = None
) -> Path:
    """Write an intent durably; with ``replace``, atomically swap it for an earlier one.

    Returns:
        The journal file (pass it to :func:`finish`).
    """
    jdir = folder / JOURNAL_DIR
    jdir.mkdir(parents=True, exist_ok=True)
    path = replace if replace is not None else jdir / f"{uuid.uuid4().hex}.json"
    tmp = jdir / f".{path.name}.{uuid.uuid4().hex}.tmp"
    data = json.dumps({"action": action, "ids": ids, "images": images}).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(jdir)
    return path


def finish(path: Path) -> None:
    """Remove an intent once its operation is complete."""
    try:
        path.unlink(missing_ok=True)
    except OSError as e:  # replayed harmlessly at the next open
        logger.warning("could not remove journal file %s: %s", path, e)


def pending(folder: Path) -> list[Intent]:
    """The intents left in ``folder``'s journal (oldest first); half-written temporaries are removed."""
    jdir = folder / JOURNAL_DIR
    if not jdir.is_dir():
        return []
    intents = []
    for path in sorted(jdir.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        if path.suffix == ".tmp":
            path.unlink(missing_ok=True)  # never renamed: its operation had not started
            continue
        if path.suffix != ".json":
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            intents.append(
                Intent(
                    path, str(data["action"]), tuple(map(str, data["ids"])), tuple(map(str, data["images"]))
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("ignoring unreadable journal file %s: %s", path, e)
    return intents


def fsync_dir(folder: Path) -> None:
    """Make a rename or new file in ``folder`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
