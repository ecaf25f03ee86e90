"""Page image files beside a store: content-addressed names, atomic placement, removal."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path

__all__ = ["image_relpath", "place_image", "remove_image"]

logger = logging.getLogger(__name__)


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


def remove_image(path: Path) -> None:
    """Delete an image file and, when it empties it, its hash-prefix folder; never raises."""
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        logger.warning("could not delete page image %s: %s", path, e)
        return
    with contextlib.suppress(OSError):  # not empty, or already gone
        path.parent.rmdir()
