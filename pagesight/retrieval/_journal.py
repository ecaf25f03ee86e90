"""Old home of the write journal; it lives in :mod:`pagesight.retrieval.store._journal`."""

from pagesight.retrieval.store._journal import JOURNAL_DIR, Intent, finish, fsync_dir, pending, record

__all__ = ["Intent", "JOURNAL_DIR", "finish", "fsync_dir", "pending", "record"]
