"""Page images at an fsspec URL (``s3://bucket/pages``, ``gcs://``, ``sftp://``, ...), every machine's
image folder a cache of them.

A store given an image URL writes each page image to the URL before the page's record (so a record
another machine reads always has its image there), deletes it there with the record, and fetches
an image its own folder lacks from the URL when a hit, a page listing or a health check needs it.
Names are content-addressed (``<hash[:2]>/<hash[:32]>-p<N>.png``), so a cached copy is never stale.

The URL's side is untrusted like every stored path: names listed there are checked with
:func:`~pagesight.retrieval.store._images.resolve_stored_path` before they become local paths, and a
file larger than :data:`MAX_IMAGE_BYTES` is refused instead of fetched.

Credentials and endpoints come from fsspec's own configuration: the filesystem's usual
environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ... for ``s3://`` through s3fs),
``FSSPEC_<PROTOCOL>_<OPTION>`` variables, fsspec's config files, or ``storage_options``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pagesight.errors import ConfigurationError, StoreError
from pagesight.retrieval.store._images import words_name

__all__ = ["MAX_IMAGE_BYTES", "ImageMirror", "is_url"]

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 64 << 20
"""Largest page image fetched from an image URL (a 300-dpi A4 PNG is a few MB)."""


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is an fsspec URL (``scheme://...``; not a folder, not a Windows drive)."""
    text = str(location)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


class ImageMirror:
    """The page images of a store at an fsspec URL.

    Args:
        url: the folder URL (``s3://bucket/prefix``); nothing is contacted until a method needs it.
        storage_options: keyword arguments for the fsspec filesystem (``{"endpoint_url": ...}``).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if not is_url(url):
            raise ValueError(f"not an fsspec URL: {url!r}")
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""

    def __repr__(self) -> str:
        return f"ImageMirror({self.url!r})"

    # -- the filesystem -------------------------------------------------------------------------

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            try:
                import fsspec
            except ImportError as e:
                raise ImportError(
                    f"page images at {self.url} need fsspec and the filesystem's package: "
                    'pip install "pagesight[s3]" (s3fs), or gcsfs, adlfs, sshfs for gcs://, az://, sftp://'
                ) from e
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            except ImportError as e:
                raise ImportError(
                    f'page images at {self.url}: {e} (s3://: pip install "pagesight[s3]")'
                ) from e
            except TypeError as e:  # an option the filesystem does not take
                raise ConfigurationError(
                    f"page images at {self.url}: the filesystem refused its storage options: {e}"
                ) from e
            except (ValueError, OSError) as e:
                raise StoreError(f"page images at {self.url}: cannot open that location: {e}") from e
        return self._fs, self._root

    def _path(self, rel: str) -> str:
        return f"{self._filesystem()[1].rstrip('/')}/{rel}"

    def _failed(self, action: str, e: BaseException) -> StoreError | ConfigurationError:
        if isinstance(e, TypeError) and "unexpected keyword" in str(e):  # s3fs opens its session lazily
            return ConfigurationError(
                f"page images at {self.url}: the filesystem refused its storage options ({e}); "
                f"check `image_storage_options` and any FSSPEC_* variables"
            )
        return StoreError(
            f"page images at {self.url}: {action} failed: {type(e).__name__}: {e}; check that the "
            f"location exists and that this machine's credentials may read and write it"
        )

    # -- operations -----------------------------------------------------------------------------

    def put(self, local: Path, rel: str) -> bool:
        """Upload ``local`` as ``rel`` unless it is there already; ``True`` when this call created it."""
        fs, _ = self._filesystem()
        target = self._path(rel)
        try:
            fs.invalidate_cache(target)
            if fs.exists(target):
                return False
            fs.put_file(str(local), target)
        except FileNotFoundError as e:
            if not local.is_file():
                raise StoreError(f"page image {local} to upload to {self.url} is missing") from e
            raise self._failed(f"uploading {rel}", e) from e
        except Exception as e:  # fsspec backends raise their own types (botocore, aiohttp, ...)
            raise self._failed(f"uploading {rel}", e) from e
        return True

    def fetch(self, rel: str, local: Path) -> bool:
        """Download ``rel`` to ``local`` (atomically); ``False`` when the URL does not have it."""
        fs, _ = self._filesystem()
        source = self._path(rel)
        try:
            fs.invalidate_cache(source)  # another machine may have written it since we listed
            info = fs.info(source)
        except FileNotFoundError:
            return False
        except Exception as e:
            raise self._failed(f"reading {rel}", e) from e
        size = info.get("size")
        if info.get("type") not in (None, "file") or (isinstance(size, int) and size > MAX_IMAGE_BYTES):
            logger.warning(
                "refusing page image %s at %s: %s", rel, self.url, f"{size} bytes" if size else "not a file"
            )
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.parent / f".{local.name}.{uuid.uuid4().hex}.tmp"
        try:
            with fs.open(source, "rb") as src, open(tmp, "wb") as dst:
                copied = 0
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > MAX_IMAGE_BYTES:
                        raise StoreError(
                            f"page image {rel} at {self.url} is larger than {MAX_IMAGE_BYTES} bytes"
                        )
                    dst.write(chunk)
            os.replace(tmp, local)
        except FileNotFoundError:
            return False
        except StoreError:
            raise
        except Exception as e:
            raise self._failed(f"downloading {rel}", e) from e
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def exists(self, rel: str) -> bool:
        fs, _ = self._filesystem()
        target = self._path(rel)
        try:
            fs.invalidate_cache(target)
            return bool(fs.exists(target))
        except Exception as e:
            raise self._failed(f"looking for {rel}", e) from e

    def remove(self, rel: str) -> None:
        """Delete ``rel`` (and its OCR word boxes) if present; never raises (a leftover is only unused
        bytes, which :meth:`~pagesight.retrieval.store.PageStore.repair` removes)."""
        fs, _ = self._filesystem()
        for name in (rel, words_name(rel)):
            try:
                fs.rm_file(self._path(name))
            except FileNotFoundError:
                pass
            except Exception as e:
                logger.warning("could not delete page image %s at %s: %s", name, self.url, e)

    def files(self) -> Iterator[str]:
        """Relative paths of every file under the URL (unchecked: the caller checks each)."""
        fs, root = self._filesystem()
        base = root.rstrip("/")
        try:
            fs.invalidate_cache(base)
            found = fs.find(base) if fs.exists(base) else []
        except Exception as e:
            raise self._failed("listing the images", e) from e
        for path in sorted(found):
            text = str(path)
            if text.startswith(base + "/"):
                yield text[len(base) + 1 :]
