"""Array-likes read by slicing: a window with mirrored borders, and a block of an image
held in memory but indexed in the image's coordinates.

numpy only; the lowest floor of the tiling (``prediction/tiling.py``) and of the
training patches (``training/samples.py``).
"""

from __future__ import annotations

import numpy as np


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` mirrored into ``[0, size)`` (numpy's ``reflect`` mode)."""
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= size, period - idx, idx)


def read_region(array, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """``array[y0:y1, x0:x1]`` with mirrored borders where the window leaves the array.

    Reads only the bounding box it needs, so it works on memory-mapped, zarr or dask
    arrays without loading them whole.
    """
    h, w = array.shape[0], array.shape[1]
    if 0 <= y0 and y1 <= h and 0 <= x0 and x1 <= w:
        return np.asarray(array[y0:y1, x0:x1])
    iy = reflect_indices(y0, y1, h)
    ix = reflect_indices(x0, x1, w)
    ya, yb = int(iy.min()), int(iy.max()) + 1
    xa, xb = int(ix.min()), int(ix.max()) + 1
    box = np.asarray(array[ya:yb, xa:xb])
    return box[np.ix_(iy - ya, ix - xa)]


class Window:
    """A window of an image read into memory (``local``, starting at ``y0, x0``),
    indexed in image coordinates (what :func:`read_region` and the tiling expect): a
    block of a large image and the neighbours its tiles read."""

    def __init__(self, local: np.ndarray, y0: int, x0: int, shape: tuple[int, ...]) -> None:
        self.local, self.y0, self.x0 = local, y0, x0
        self.shape, self.ndim, self.dtype = shape, len(shape), local.dtype

    def __getitem__(self, key):
        ys, xs = key[0], key[1]
        a, b = ys.start - self.y0, ys.stop - self.y0
        c, d = xs.start - self.x0, xs.stop - self.x0
        if a < 0 or c < 0 or b > self.local.shape[0] or d > self.local.shape[1]:
            raise AssertionError(f"read {key} outside the block's window")  # a planning bug
        return self.local[a:b, c:d]
