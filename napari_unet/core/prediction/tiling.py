"""Overlap-tile prediction for images of any size.

The image is mirrored at its borders (as in Ronneberger et al.) and cut into tiles that
each see ``context`` extra pixels on every side; only their centres are kept. Tile
origins sit on the network's ``2**depth`` grid, so with enough context the stitched
output equals one whole-image pass. Tiles are read lazily (memory-mapped, zarr and dask
inputs work) and predicted in batches.
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
) -> TilePlan:
    """Tile layout for an image (or a region of it starting at ``origin``).

    ``tile_size`` is the edge of a tile as the network sees it (context included);
    ``context`` is rounded up to ``multiple`` so tiles stay on the pooling grid. The
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

    return TilePlan(height, width, even(height), even(width), context, shrink, *origin)


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
    pad = plan.context + plan.shrink
    oy, ox = plan.origin_y, plan.origin_x
    origins = plan.origins
    for start in range(0, len(origins), max(1, batch_size)):
        chunk = origins[start : start + batch_size]
        tiles = np.stack(
            [
                normalizer(
                    read_region(
                        image,
                        oy + y - pad,
                        oy + y + plan.out_y + pad,
                        ox + x - pad,
                        ox + x + plan.out_x + pad,
                    )
                )
                for y, x in chunk
            ]
        ).astype(np.float32, copy=False)
        scores = np.asarray(infer(tiles))
        c = plan.context
        for (y, x), s in zip(chunk, scores):
            h = min(plan.out_y, plan.height - y)
            w = min(plan.out_x, plan.width - x)
            yield y, x, s[c : c + h, c : c + w]


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
