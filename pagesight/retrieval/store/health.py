"""What a store health check finds: the database, the page images, the token files and the journal compared.

Use::

    from pagesight.retrieval.store import PageStore

    health = PageStore("index/").check()        # changes nothing
    health.ok                                   # False when any part disagrees
    print("\\n".join(health.problems()))         # one line per kind of problem, with examples
    PageStore("index/").repair()                # removes what no record uses, replays the journal

``pagesight check --store S`` prints the same report (exit 0 healthy, 1 damaged; ``--repair``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PageRef", "StoreHealth"]

_SHOWN = 5  # examples per problem in the report


@dataclass(frozen=True, slots=True)
class PageRef:
    """One stored page a problem concerns.

    Attributes:
        id: the record id.
        source: the source it came from.
        page: 1-based page number.
        detail: the missing file (image path or token segment).
    """

    id: str
    source: str
    page: int
    detail: str = ""

    def describe(self) -> str:
        where = f"{self.source} p.{self.page}"
        return f"{where} ({self.detail})" if self.detail else where


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The report of :meth:`~pagesight.retrieval.store.PageStore.check`.

    Attributes:
        location: the store, as messages name it.
        pages: records the database holds.
        image_files: page image files in the image folder.
        database_error: why the database cannot be read, if it cannot.
        records_without_image: records whose image file is missing.
        orphan_images: image files (relative to the image folder) no record uses.
        refused_paths: stored paths refused because they would leave the store's folders.
        leftover_journal: journal files of writes that did not complete.
        leftover_staging: staging folders of ingest processes that are gone.
        records_without_tokens: late interaction: records without (readable) token matrices.
        tokens_without_record: late interaction: token index entries without a record.
        missing_segments: late interaction: token segment files missing or shorter than indexed.
        orphan_segments: late interaction: segment files the token index does not know.
        token_error: late interaction: why the token index cannot be read, if it cannot.
        writer_pid: another process writing the store while it was checked (its journal entry
            and staging folder are then work in progress, not damage).
    """

    location: str
    pages: int = 0
    image_files: int = 0
    database_error: str | None = None
    records_without_image: tuple[PageRef, ...] = ()
    orphan_images: tuple[str, ...] = ()
    refused_paths: tuple[str, ...] = ()
    leftover_journal: tuple[str, ...] = ()
    leftover_staging: tuple[str, ...] = ()
    records_without_tokens: tuple[PageRef, ...] = ()
    tokens_without_record: tuple[str, ...] = ()
    missing_segments: tuple[str, ...] = ()
    orphan_segments: tuple[str, ...] = ()
    token_error: str | None = None
    writer_pid: int | None = None

    @property
    def ok(self) -> bool:
        """Whether every part of the store agrees (nothing missing, nothing left over)."""
        return not self.problems()

    @property
    def database_lost(self) -> bool:
        """The database is unreadable, or empty while images show that it held pages."""
        return self.database_error is not None or (self.pages == 0 and bool(self.orphan_images))

    def problems(self) -> list[str]:
        """One line per kind of problem, with a few examples each; ``[]`` for a healthy store."""
        lines: list[str] = []
        if self.database_error is not None:
            lines.append(f"the database cannot be read: {self.database_error}")
        elif self.pages == 0 and self.orphan_images:
            lines.append(
                f"the database holds no pages, but the image folder holds {len(self.orphan_images)} page "
                "images: the database was lost or replaced (an emptied or zeroed chroma.sqlite3)"
            )
        _add(lines, "records whose page image is missing", [r.describe() for r in self.records_without_image])
        if not self.database_lost:  # else the line above covers them
            _add(lines, "page images no record uses", list(self.orphan_images))
        _add(lines, "stored paths refused (they lead outside the store)", list(self.refused_paths))
        if self.writer_pid is None:
            _add(lines, "journal entries of interrupted writes", list(self.leftover_journal))
        _add(lines, "staging folders of ingest processes that are gone", list(self.leftover_staging))
        if self.token_error is not None:
            lines.append(f"the token index cannot be read: {self.token_error}")
        _add(lines, "records without token matrices", [r.describe() for r in self.records_without_tokens])
        _add(lines, "token matrices without a record", list(self.tokens_without_record))
        _add(lines, "token segment files missing or cut short", list(self.missing_segments))
        _add(lines, "token segment files the index does not know", list(self.orphan_segments))
        return lines

    def advice(self, store: str) -> str:
        """What to run to repair what :meth:`problems` lists (``store``: the ``--store`` value)."""
        if self.database_lost:
            return (
                "The pages cannot be recovered from the images. Move the folder aside (or delete it) and "
                f"index the sources again: pagesight index SOURCES... --store {store}"
                + (
                    f" (or run `pagesight check --store {store} --repair` to remove what no record uses "
                    "first)"
                    if self.database_error is None
                    else ""
                )
            )
        steps = []
        if self.records_without_image or self.records_without_tokens or self.missing_segments:
            steps.append(
                f"index the affected sources again (a plain `pagesight index SOURCES... --store {store}` "
                "re-writes sources with missing files)"
            )
        if (
            self.orphan_images
            or self.leftover_journal
            or self.leftover_staging
            or self.tokens_without_record
            or self.orphan_segments
            or self.missing_segments
        ):
            steps.append(f"run `pagesight check --store {store} --repair` to remove what no record uses")
        if self.refused_paths:
            steps.append("records with refused paths were not written by pagesight: delete their sources")
        return "; ".join(steps) if steps else "nothing to repair"


def _add(lines: list[str], what: str, items: list[str]) -> None:
    if not items:
        return
    shown = ", ".join(items[:_SHOWN]) + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
    lines.append(f"{len(items)} {what}: {shown}")
