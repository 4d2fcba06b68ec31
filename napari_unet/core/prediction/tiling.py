"""Overlap-tile prediction for images of any size.

The image is mirrored at its borders (as in Ronneberger et al.) and cut into tiles that
each see ``context`` extra pixels on every side; only their centres are kept. Tile
origins sit on the network's ``2**depth`` grid, so with enough context the stitched
output equals one whole-image pass. Beyond the image's own borders a tile of a padded
("same") network reads only a thin mirrored ``border``
(:data:`~napari_unet.core.config.DEFAULT_BORDER`): the network learned from patches cut
out of images, and a 64 px mirror around a small image cost more pixels than the image
(benchmarks/RESULTS.md, "A thin mirrored border"). Tiles are read lazily (memory-mapped,
zarr and dask inputs work) and predicted in batches of tiles of one size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..arrays import read_region
from ..errors import UserInputError


class Stage(str, Enum):
    """What a segmentation is doing, in the words a progress line shows; core reports
    the last three through :meth:`~napari_unet.core.UNet.predict`'s ``stage`` callback,
    the front ends the first two."""

    IMPORT = "importing TensorFlow"
    LOAD = "loading the model"
    ESTIMATE = "estimating the object size"
    PREDICT = "predicting"
    POSTPROCESS = "post-processing"


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go: output blocks of ``(out_y, out_x)`` with ``context`` around."""

    height: int
    width: int
    out_y: int
    out_x: int
    context: int
    shrink: int = 0  # pixels an unpadded network loses per side beyond ``context``
    origin_y: int = 0  # where the planned region starts in the image
    origin_x: int = 0
    border: int | None = None  # mirrored pixels read beyond the image (None: all the context)
    multiple: int = 1  # a tile's sides are multiples of this (the network's pooling grid)

    @property
    def origins(self) -> list[tuple[int, int]]:
        return [
            (y, x)
            for y in range(0, self.height, self.out_y)
            for x in range(0, self.width, self.out_x)
        ]

    @property
    def in_y(self) -> int:
        return self.out_y + 2 * (self.context + self.shrink)

    @property
    def in_x(self) -> int:
        return self.out_x + 2 * (self.context + self.shrink)

    def window(self, y: int, x: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``: what the tile whose output starts at ``(y, x)`` of the
        plan reads, in the coordinates of an image of ``shape`` (mirrored where it leaves
        the image): its output block with the context around, less what lies more than
        :attr:`border` beyond the image (in whole steps of :attr:`multiple`)."""
        pad = self.context + self.shrink
        y0, x0 = self.origin_y + y - pad, self.origin_x + x - pad
        y1, x1 = y0 + self.in_y, x0 + self.in_x
        if self.border is None:
            return y0, y1, x0, x1
        m, b = max(1, self.multiple), self.border

        def cut(beyond: int) -> int:  # pixels more than ``border`` outside the image
            return max(0, beyond - b) // m * m

        h, w = shape[0], shape[1]
        return y0 + cut(-y0), y1 - cut(y1 - h), x0 + cut(-x0), x1 - cut(x1 - w)

    def pixels(self, shape: tuple[int, ...]) -> int:
        """Pixels the network evaluates for this plan in an image of ``shape``."""
        total = 0
        for y, x in self.origins:
            y0, y1, x0, x1 = self.window(y, x, shape)
            total += (y1 - y0) * (x1 - x0)
        return total


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def plan_tiles(
    height: int,
    width: int,
    tile_size: int,
    context: int,
    multiple: int,
    shrink: int = 0,
    origin: tuple[int, int] = (0, 0),
    border: int | None = None,
) -> TilePlan:
    """Tile layout for an image (or a region of it starting at ``origin``).

    ``tile_size`` is the edge of a tile as the network sees it (context included);
    ``context`` is rounded up to ``multiple`` so tiles stay on the pooling grid;
    ``border``: the mirrored pixels a tile reads beyond the image's own borders (``None``:
    its whole context, as a network without padding needs). The
    tiles are spread evenly: an image that fits is done in one pass, and a 2048 px image
    with 1152 px tiles takes two tiles per side, not three.
    """
    context = _round_up(max(0, int(context)), multiple)
    out = int(tile_size) - 2 * context - 2 * shrink
    out = (out // multiple) * multiple
    if out < multiple:
        raise UserInputError(
            f"tile size {tile_size} is too small for {context} px of context per side; "
            f"use a tile size of at least {2 * context + 2 * shrink + multiple}"
        )

    def even(n: int) -> int:
        count = -(-n // out)
        return min(out, _round_up(-(-n // count), multiple))

    return TilePlan(
        height, width, even(height), even(width), context, shrink, *origin, border, multiple
    )


def iter_tile_predictions(
    infer: Callable[[np.ndarray], np.ndarray],
    image,
    plan: TilePlan,
    normalizer: Callable[[np.ndarray], np.ndarray],
    batch_size: int = 4,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(y0, x0, block)`` with each output block's probabilities ``(h, w, K)``.

    ``image`` is a channels-last array-like ``(Y, X, C)``, read tile by tile.
    """
    shape = np.shape(image)
    by_size: dict[tuple[int, int], list] = {}  # tiles of one size are batched together
    for y, x in plan.origins:
        win = plan.window(y, x, shape)
        by_size.setdefault((win[1] - win[0], win[3] - win[2]), []).append((y, x, win))
    step = max(1, batch_size)
    for group in by_size.values():
        for start in range(0, len(group), step):
            chunk = group[start : start + step]
            tiles = [normalizer(read_region(image, *win)) for _, _, win in chunk]
            tiles = np.stack(tiles).astype(np.float32, copy=False)
            scores = np.asarray(infer(tiles))
            for (y, x, (y0, _, x0, _)), s in zip(chunk, scores):
                h = min(plan.out_y, plan.height - y)
                w = min(plan.out_x, plan.width - x)
                a, b = plan.origin_y + y - y0, plan.origin_x + x - x0
                yield y, x, s[a : a + h, b : b + w]


def predict_probabilities(
    infer: Callable[[np.ndarray], np.ndarray],
    image,
    n_outputs: int,
    plan: TilePlan,
    normalizer: Callable[[np.ndarray], np.ndarray],
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Stitched ``(Y, X, n_outputs)`` float32 probabilities of one channels-last image."""
    out = np.empty((plan.height, plan.width, n_outputs), np.float32)
    total = len(plan.origins)
    for done, (y, x, block) in enumerate(
        iter_tile_predictions(infer, image, plan, normalizer, batch_size), start=1
    ):
        out[y : y + block.shape[0], x : x + block.shape[1]] = block
        if progress is not None:
            progress(done, total)
    return out
