"""Where a late-interaction model's document tokens sit on the page: text spans and image-patch grids.

Two kinds of token, two kinds of location:

- a text token comes from a span of characters of the text (:class:`ColEmbedEncoder.document_token_spans
  <pagesight.models.late_interaction.ColEmbedEncoder.document_token_spans>`);
- an image token comes from a patch of the image. Vision-language retrievers cut the image into
  tiles or resize it to a patch grid, and emit the patch tokens of each grid row by row. A
  :class:`TokenGrid` says which consecutive token rows form one such grid and which box of the
  ORIGINAL image (pixels) the grid covers.

The two grid rules here are the ones the NVIDIA models' public processors use:

- :func:`tiled_grids`: InternVL / Eagle dynamic tiling (``dynamic_preprocess`` with the "area and
  aspect ratio" choice of ``find_closest_aspect_ratio`` in NVIDIA's ``LlamaNemotronVLProcessor``):
  the image is resized to ``cols x rows`` square tiles of ``image_size`` pixels, tiles are emitted
  left to right, top to bottom, then (``use_thumbnail`` and more than one tile) a thumbnail of the
  whole image; each tile gives ``side x side`` tokens (pixel shuffle, row-major);
- :func:`merged_patch_grid`: Qwen2/3-VL: the whole image resized to ``grid_h x grid_w`` patches,
  merged ``merge x merge`` into one token each, row-major.

Pure Python; numpy-free so the backends can call it anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Box",
    "ImageTokenLayout",
    "TokenGrid",
    "closest_tile_ratio",
    "merged_patch_grid",
    "tiled_grids",
    "token_boxes",
]

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in pixels of the original image, ``x1 > x0`` and ``y1 > y0``."""


@dataclass(frozen=True, slots=True)
class TokenGrid:
    """``rows x cols`` consecutive token rows covering ``box`` of the image, row by row.

    Token row ``start + r * cols + c`` (of the matrix the encoder returns) is the cell in grid row
    ``r``, column ``c``.

    Example:
        >>> g = TokenGrid(start=1, rows=2, cols=2, box=(0, 0, 100, 50))
        >>> g.cell_box(g.start + 3)      # bottom-right cell
        (50.0, 25.0, 100.0, 50.0)

    Attributes:
        start: the first token row of the grid.
        rows: grid rows.
        cols: grid columns.
        box: the part of the original image the grid covers, ``(x0, y0, x1, y1)`` pixels.
    """

    start: int
    rows: int
    cols: int
    box: Box

    @property
    def count(self) -> int:
        """How many token rows the grid holds."""
        return self.rows * self.cols

    @property
    def stop(self) -> int:
        """One past the last token row of the grid."""
        return self.start + self.count

    def cell_box(self, token: int) -> Box:
        """The box of token row ``token`` (``start <= token < stop``)."""
        if not self.start <= token < self.stop:
            raise IndexError(f"token {token} is outside this grid (rows {self.start}..{self.stop - 1})")
        r, c = divmod(token - self.start, self.cols)
        x0, y0, x1, y1 = self.box
        w = (x1 - x0) / self.cols
        h = (y1 - y0) / self.rows
        return (float(x0 + c * w), float(y0 + r * h), float(x0 + (c + 1) * w), float(y0 + (r + 1) * h))


@dataclass(frozen=True, slots=True)
class ImageTokenLayout:
    """Where an image's tokens are: the patch grids, and how many token rows the model returns in all.

    Rows outside every grid (a prompt such as ``"passage: "``, ``<img>`` markers) have no place on
    the image. ``tokens`` lets a caller check the layout against the matrix the encoder returned.

    Attributes:
        grids: the patch grids, in token order.
        tokens: the number of token rows the encoder returns for the image.
    """

    grids: tuple[TokenGrid, ...]
    tokens: int


def token_boxes(grids: Sequence[TokenGrid]) -> tuple[list[int], list[Box]]:
    """Every located token row and its box: ``(rows, boxes)``, in grid order."""
    rows: list[int] = []
    boxes: list[Box] = []
    for grid in grids:
        for token in range(grid.start, grid.stop):
            rows.append(token)
            boxes.append(grid.cell_box(token))
    return rows, boxes


def closest_tile_ratio(
    width: int, height: int, *, image_size: int, max_tiles: int, min_tiles: int = 1
) -> tuple[int, int]:
    """``(cols, rows)`` of the tiling NVIDIA's Eagle / Llama-Nemotron-VL processors pick for an image.

    Among all ``cols x rows`` with ``min_tiles <= cols * rows <= max_tiles`` (in increasing order
    of tile count, as the processors sort them), the first to maximize
    ``min(tiles area / image area, 0.6) * min(r / a, a / r)`` where ``a`` is the image's aspect
    ratio and ``r`` the tiling's ("new area > 60% of original image area is enough").
    """
    aspect = width / height
    area = width * height
    ratios = sorted(
        {
            (i, j)
            for n in range(min_tiles, max_tiles + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_tiles <= i * j <= max_tiles
        },
        key=lambda x: x[0] * x[1],
    )
    best, best_factor = (1, 1), -math.inf
    for cols, rows in ratios:
        target = cols / rows
        area_ratio = cols * rows * image_size * image_size / area
        factor = min(area_ratio, 0.6) * min(target / aspect, aspect / target)
        if factor > best_factor:
            best, best_factor = (cols, rows), factor
    return best


def tiled_grids(
    width: int,
    height: int,
    *,
    first_token: int,
    image_size: int,
    max_tiles: int,
    use_thumbnail: bool,
    tokens_per_tile: int,
    dynamic: bool = True,
    min_tiles: int = 1,
) -> list[TokenGrid]:
    """The token grids of an image cut into tiles (InternVL / Eagle / Llama-Nemotron-VL rule).

    Args:
        width: the image's width in pixels.
        height: the image's height in pixels.
        first_token: the token row of the first image token.
        image_size: a tile's side in the model's input pixels.
        max_tiles: the most tiles (``max_input_tiles``).
        use_thumbnail: a thumbnail of the whole image follows when there is more than one tile.
        tokens_per_tile: image tokens per tile (``num_image_token``), a square number.
        dynamic: ``False``: one tile, the whole image resized (``dynamic_image_size=False``).
        min_tiles: the fewest tiles.

    Raises:
        ValueError: ``tokens_per_tile`` is not a square number.
    """
    side = math.isqrt(tokens_per_tile)
    if side * side != tokens_per_tile or side < 1:
        raise ValueError(f"tokens_per_tile must be a square number, got {tokens_per_tile}")
    whole: Box = (0.0, 0.0, float(width), float(height))
    if not dynamic:
        return [TokenGrid(first_token, side, side, whole)]
    cols, rows = closest_tile_ratio(
        width, height, image_size=image_size, max_tiles=max_tiles, min_tiles=min_tiles
    )
    tile_w, tile_h = width / cols, height / rows
    grids = []
    start = first_token
    for i in range(cols * rows):
        r, c = divmod(i, cols)
        box = (c * tile_w, r * tile_h, (c + 1) * tile_w, (r + 1) * tile_h)
        grids.append(TokenGrid(start, side, side, box))
        start += tokens_per_tile
    if use_thumbnail and cols * rows != 1:
        grids.append(TokenGrid(start, side, side, whole))
    return grids


def merged_patch_grid(
    width: int, height: int, *, first_token: int, grid_h: int, grid_w: int, merge: int
) -> list[TokenGrid]:
    """The token grid of a Qwen2/3-VL image: ``grid_h x grid_w`` patches merged ``merge x merge``.

    The processor resizes the whole image (no crop) to ``grid_h x grid_w`` patches
    (``image_grid_thw``), so the grid covers the whole original image.

    Raises:
        ValueError: the patch grid does not divide by ``merge``.
    """
    if merge < 1 or grid_h % merge or grid_w % merge:
        raise ValueError(f"a {grid_h}x{grid_w} patch grid does not merge {merge}x{merge}")
    return [TokenGrid(first_token, grid_h // merge, grid_w // merge, (0.0, 0.0, float(width), float(height)))]
