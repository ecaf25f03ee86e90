"""Old home of the token store; it lives in :mod:`pagesight.retrieval.store.tokens`."""

from pagesight.retrieval.store.tokens import (
    StorageDtype,
    TokenFolderReport,
    TokenStore,
    TokenStoreStats,
    check_token_matrix,
    inspect_token_folder,
)

__all__ = [
    "StorageDtype",
    "TokenFolderReport",
    "TokenStore",
    "TokenStoreStats",
    "check_token_matrix",
    "inspect_token_folder",
]
