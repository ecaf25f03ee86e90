"""Typed errors raised by pagesight.

Every error a user can cause (a bad file, a dead URL, a store built with another model)
is a :class:`PagesightError`. Messages name the file, page or URL and say what to do.
"""

from __future__ import annotations

__all__ = [
    "PagesightError",
    "ConfigurationError",
    "MissingDependencyError",
    "DocumentLoadError",
    "SourceNotFoundError",
    "EmptyDocumentError",
    "NotAPDFError",
    "CorruptPDFError",
    "EncryptedPDFError",
    "ImageTooLargeError",
    "UnsupportedSourceError",
    "URLFetchError",
    "ModelNotAvailableError",
    "GenerationError",
    "StoreError",
    "StoreMismatchError",
    "InvalidVectorError",
    "DamagedStoreError",
    "OcrError",
    "StoreAuthenticationError",
    "EncoderOutOfMemoryError",
    "EmptyStoreError",
    "StoreNotFoundError",
    "ImageQueryError",
]


class PagesightError(Exception):
    """Base class of every error pagesight raises on purpose."""


class ConfigurationError(PagesightError, ValueError):
    """An option has a value pagesight cannot use (the message names the option)."""


class MissingDependencyError(PagesightError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line."""


class DocumentLoadError(PagesightError):
    """A source (file, folder or URL) could not be turned into pages.

    Attributes:
        source: the path or URL as the caller gave it.
        page: the 1-based page number when one page is at fault, else ``None``.
    """

    def __init__(self, source: str, message: str, *, page: int | None = None) -> None:
        self.source = str(source)
        self.page = page
        where = f"{self.source} (page {page})" if page is not None else self.source
        super().__init__(f"{where}: {message}")


class SourceNotFoundError(DocumentLoadError):
    """The path does not exist."""


class EmptyDocumentError(DocumentLoadError):
    """The file is empty or the document has no pages."""


class NotAPDFError(DocumentLoadError):
    """A file named or served as PDF does not hold PDF bytes (an HTML error page, say)."""


class CorruptPDFError(DocumentLoadError):
    """The PDF is damaged (truncated, broken cross-reference table) beyond a safe repair."""


class EncryptedPDFError(DocumentLoadError):
    """The PDF is encrypted and no password, or a wrong one, was given."""


class ImageTooLargeError(DocumentLoadError):
    """An image exceeds the pixel limit (a possible decompression bomb)."""


class UnsupportedSourceError(DocumentLoadError):
    """The source's type (extension, URL scheme or Content-Type) is not supported."""


class URLFetchError(DocumentLoadError):
    """A URL could not be fetched: HTTP error, timeout, too large, too many redirects."""


class ModelNotAvailableError(PagesightError):
    """A model could not be loaded (not downloaded, no Hub access, wrong library version)."""


class GenerationError(PagesightError):
    """A model failed while writing an answer (server error, lost connection, generation crash)."""


class StoreError(PagesightError):
    """The page store cannot do what was asked."""


class StoreMismatchError(StoreError):
    """The store was built with another embedder than the one used to write or query it."""


class InvalidVectorError(StoreError, ValueError):
    """A vector has the wrong shape or holds NaN or infinity."""


class OcrError(PagesightError):
    """An OCR engine failed on an image (crashed, timed out or returned garbage)."""


class DamagedStoreError(StoreError):
    """The store's parts disagree: its database, page images, token files or journal.

    The message says what is missing and how to repair it; ``pagesight check --store S`` reports
    every problem (:meth:`pagesight.retrieval.store.PageStore.check`).
    """


class StoreAuthenticationError(StoreError):
    """A Chroma server (or the proxy in front of it) refused the credentials: HTTP 401, 403 or 407.

    Pass the header the server expects (``PageStore(url=..., headers={"Authorization": "Bearer
    TOKEN"})``, ``--chroma-header``) or Chroma's own ``CHROMA_CLIENT_AUTH_*`` settings.
    """


class EncoderOutOfMemoryError(PagesightError, MemoryError):
    """The accelerator ran out of memory even with one item per batch."""


class StoreNotFoundError(StoreError, ConfigurationError):
    """No store exists where one was to be read (``Index.create`` or ``pagesight index`` makes one)."""


class EmptyStoreError(StoreError, ConfigurationError):
    """The store holds no pages yet, so it has no embedder to search with (add documents first)."""


class ImageQueryError(ConfigurationError):
    """A search by image on a store whose model embeds text only (the message names the models that can)."""
