"""In memory or block by block: the one rule the command line and every widget follow.

An image is worked on (segmented, annotated, trained from, scored) block by block when
it is a single 2D plane and

- napari holds it as a pyramid (``multiscale``): that is how napari keeps images too
  big for memory;
- it is handed over as a chunked array (dask, zarr: :func:`is_lazy`), which is read by
  slicing and never converted whole (the person chose to keep it out of memory);
- or it has more than :data:`LARGE_PIXELS` pixels.

Everything else (volumes, time-lapses, stacks of planes, small images) is worked on in
memory. The threshold is in pixels, not bytes: what a prediction holds per pixel
(float scores and probabilities, instance ids, the network's features) does not depend
on how the image stores its pixels.

Imports numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Above this many pixels a single 2D image is worked on block by block (about 40 bytes
#: a pixel in memory otherwise: 16 million pixels already take some 600 MB).
LARGE_PIXELS = 16_000_000


def is_lazy(array) -> bool:
    """Whether ``array`` is read by slicing rather than held in memory: a dask or
    zarr array, or any array-like with ``chunks`` (a numpy array, memory-mapped or
    not, is not). A question of type, not of size: see :func:`block_by_block`."""
    return not isinstance(array, np.ndarray) and hasattr(array, "chunks")


def block_by_block(
    spatial_shape: Sequence[int], *, multiscale: bool = False, lazy: bool = False
) -> bool:
    """Whether an image is worked on block by block rather than in memory.

    Parameters
    ----------
    spatial_shape
        The image's spatial shape, channels left out (``ChannelLayout.spatial_shape``,
        or a layer's shape without its colour axis).
    multiscale
        The image is a pyramid (napari's ``multiscale``).
    lazy
        The data at hand is a chunked array read by slicing (:func:`is_lazy`). A file
        that the command line reads itself is not: it can be read either way.

    Returns
    -------
    bool
        ``True`` for a 2D image that is a pyramid, is chunked or has more than
        :data:`LARGE_PIXELS` pixels; ``False`` otherwise (block by block is for 2D).
    """
    shape = tuple(int(s) for s in spatial_shape)
    if len(shape) != 2:
        return False
    return multiscale or lazy or math.prod(shape) > LARGE_PIXELS
