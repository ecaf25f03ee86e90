"""Old home of the late-interaction store; it lives in :mod:`pagesight.retrieval.store.late`."""

from pagesight.retrieval.store.late import MultiVectorStore, ReconcileReport, SummaryMethod

__all__ = ["MultiVectorStore", "ReconcileReport", "SummaryMethod"]
