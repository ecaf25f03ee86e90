"""Old home of the page image files helpers; they live in :mod:`pagesight.retrieval.store._images`."""

from pagesight.retrieval.store._images import (
    image_relpath,
    is_refused,
    place_image,
    remove_image,
    resolve_stored_path,
)

__all__ = ["image_relpath", "is_refused", "place_image", "remove_image", "resolve_stored_path"]
