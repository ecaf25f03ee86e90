"""Page image files beside a store: content-addressed names, atomic placement, removal."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["image_relpath", "is_refused", "place_image", "remove_image", "resolve_stored_path", "words_name"]

logger = logging.getLogger(__name__)


def resolve_stored_path(root: Path, rel: object, *, what: str = "stored path") -> Path | None:
    """Resolve a path read from stored data and check that it lies inside ``root``.

    Every path a store reads back from its own data (journal intents, record metadata, token
    segment names, leftover folders it lists) is untrusted: the store may have been copied from
    someone else, or live on a shared Chroma server. This is the one place such a path becomes a
    :class:`~pathlib.Path` to read or delete. Refused (logged as a warning, never followed): a
    value that is not a string, an empty string, a NUL byte, an absolute path or drive (POSIX or
    Windows spelling), a ``..`` part, and a path that leaves ``root`` through a symbolic link.

    Args:
        root: the folder the path must stay inside (the image folder, the token folder, ...).
        rel: the stored value, relative to ``root``, ``/`` or ``\\`` as separator.
        what: how the warning names the value (``"image of record a-p1"``).

    Returns:
        ``root / rel`` (not resolved, so deleting a link removes the link), or ``None`` if refused.
    """
    reason = _refusal(root, rel)
    if reason is None:
        return root / str(rel)
    logger.warning("refusing %s %r under %s: %s", what, rel, root, reason)
    return None


def is_refused(root: Path, rel: object) -> bool:
    """Whether :func:`resolve_stored_path` would refuse ``rel`` (without logging)."""
    return _refusal(root, rel) is not None


def _refusal(root: Path, rel: object) -> str | None:
    if not isinstance(rel, str):
        return f"not a string ({type(rel).__name__})"
    if not rel:
        return "empty"
    if "\x00" in rel:
        return "holds a NUL character"
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).anchor:
        return "an absolute path"
    if any(part == ".." for part in rel.replace("\\", "/").split("/")):
        return "climbs out with '..'"
    try:
        base = root.resolve()
        target = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name the OS refuses
        return f"cannot be resolved ({e})"
    if target == base or not target.is_relative_to(base):
        return f"resolves to {target}, outside the folder"
    return None


def image_relpath(content_hash: str, page: int, suffix: str = ".png") -> str:
    """Return the image's path relative to the store's image folder.

    ``<hash[:2]>/<hash[:32]>-p<page><suffix>``, with ``/`` as separator on every platform so the
    string stored in Chroma metadata is portable.
    """
    return f"{content_hash[:2]}/{content_hash[:32]}-p{page}{suffix.lower() or '.png'}"


def place_image(src: Path, dst: Path) -> bool:
    """Put a copy of ``src`` at ``dst`` atomically; leave ``src`` in place.

    On one filesystem the copy is a hard link (no bytes copied); across filesystems, or where
    links are not supported, the bytes are copied. Either way the new file is first written under
    a temporary name in ``dst``'s folder and then renamed with :func:`os.replace`, so readers never
    see a half-written image. The caller removes ``src`` once the whole write has succeeded, which
    lets a failed write leave the staging files untouched.

    Args:
        src: the staging file.
        dst: where the image lives in the store.

    Returns:
        ``True`` when ``dst`` did not exist before (the caller created it and owns its rollback).

    Raises:
        OSError: the file could not be read or written.
    """
    existed = dst.exists()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex}.tmp"
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return not existed


def words_name(image: str) -> str:
    """The OCR word boxes' name beside a stored image name (``ab/x-p1.png`` -> ``ab/x-p1.words.json``):
    :func:`pagesight.documents.ocr.words_path`'s rule, on the ``/``-separated names a store keeps."""
    p = PurePosixPath(image)
    return str(p.with_name(p.stem + ".words.json"))


def remove_image(path: Path, root: Path | None = None) -> None:
    """Delete an image file and, when it empties it, its hash-prefix folder; never raises.

    ``path`` must come from :func:`resolve_stored_path`; the folder ``root`` itself is never removed.
    """
    try:
        path.with_name(words_name(path.name)).unlink(missing_ok=True)  # OCR word boxes, if any
        path.unlink(missing_ok=True)
    except OSError as e:
        logger.warning("could not delete page image %s: %s", path, e)
        return
    if root is not None and path.parent == root:
        return
    with contextlib.suppress(OSError):  # not empty, or already gone
        path.parent.rmdir()
