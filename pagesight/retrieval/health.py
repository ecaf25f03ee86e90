"""Old home of the store health report; it lives in :mod:`pagesight.retrieval.store.health`."""

from pagesight.retrieval.store.health import PageRef, StoreHealth

__all__ = ["PageRef", "StoreHealth"]
