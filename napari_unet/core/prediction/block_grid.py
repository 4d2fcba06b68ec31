"""The block grid of an image too large for memory: where the blocks are, the halo
predicted around each and how many pixels of its neighbours each block reads, at the
image's scale (:func:`plan_blocks`) or seen rescaled (:func:`plan_scaled_blocks`); and
where the objects are (:func:`busiest_window`), for the one size estimate of a run.

numpy only; ``blockwise.py`` builds its dask graph on these grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserInputError
from .tiling import plan_tiles


@dataclass(frozen=True)
class BlockGrid:
    """Where the blocks are (per axis: edges ``0 = e0 < e1 < … = n``), the halo around
    each, and how many pixels of its neighbours each block reads (``depth``)."""

    edges_y: tuple[int, ...]
    edges_x: tuple[int, ...]
    block: int
    halo: int
    depth_y: int
    depth_x: int

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.edges_y) - 1, len(self.edges_x) - 1

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(np.diff(self.edges_y).tolist()), tuple(np.diff(self.edges_x).tolist())

    def core(self, i: int, j: int) -> tuple[int, int, int, int]:
        return self.edges_y[i], self.edges_y[i + 1], self.edges_x[j], self.edges_x[j + 1]

    def region(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Block + halo, clipped to the image."""
        y0, y1, x0, x1 = self.core(i, j)
        h, w = self.edges_y[-1], self.edges_x[-1]
        t = self.halo
        return max(0, y0 - t), min(h, y1 + t), max(0, x0 - t), min(w, x1 + t)

    def window(self, i: int, j: int) -> tuple[int, int]:
        """Where block ``(i, j)`` of the overlapped dask array starts in the image."""
        y0, _, x0, _ = self.core(i, j)
        dy = self.depth_y if self.shape[0] > 1 else 0
        dx = self.depth_x if self.shape[1] > 1 else 0
        return max(0, y0 - dy), max(0, x0 - dx)

    @property
    def slot(self) -> tuple[int, int]:
        """The largest block + halo (the scratch array's slot)."""
        return (
            max(np.diff(self.edges_y)) + 2 * self.halo,
            max(np.diff(self.edges_x)) + 2 * self.halo,
        )


def _edges(n: int, block: int, least: int) -> tuple[int, ...]:
    edges = list(range(0, n, block)) + [n]
    if len(edges) > 2 and edges[-1] - edges[-2] < least:
        del edges[-2]  # a sliver at the end joins the block before it
    return tuple(edges)


def plan_blocks(
    height: int, width: int, block_size: int, halo: int, tile_size: int, context: int, multiple: int
) -> BlockGrid:
    """The block grid of an image: blocks on the network's pooling grid, and the depth of
    neighbouring pixels each block reads so that its tiles see exactly what they would
    see in a whole-image pass (tile context and the last tile's overhang included)."""
    m = multiple
    block = max(m, (int(block_size) // m) * m)
    halo = -(-int(halo) // m) * m
    if halo >= block:
        raise UserInputError(f"the halo ({halo} px) must be smaller than a block ({block} px)")

    def depth(n: int, edges: tuple[int, ...]) -> int:
        need = 0
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            r0, r1 = max(0, a - halo), min(n, b + halo)
            plan = plan_tiles(r1 - r0, 1, tile_size, context, m)
            pad = plan.context + plan.shrink
            count = -(-(r1 - r0) // plan.out_y)
            lo, hi = max(0, r0 - pad), min(n, r0 + count * plan.out_y + pad)
            need = max(need, a - lo, hi - b)
        return need

    # the last block must be at least as deep as what it reads (dask's overlap rule)
    probe = _edges(max(height, width), block, 0)
    least = depth(max(height, width), probe) if len(probe) > 2 else 0
    ey, ex = _edges(height, block, least), _edges(width, block, least)
    return BlockGrid(ey, ex, block, halo, depth(height, ey), depth(width, ex))


def plan_scaled_blocks(
    height: int, width: int, block_size: int, halo: int, pad: int, scale: float
) -> BlockGrid:
    """The block grid of an image seen at ``scale`` (objects resized to the model's
    size): blocks of about ``block_size`` px *once rescaled* (at most 4× that in the
    image), a halo that still holds an object of ``halo`` px radius at the model's size,
    and enough neighbouring pixels for the rescaled tiles' context (``pad`` px at the
    model's scale) around block + halo."""
    unit = 256  # keeps the pyramid's downsampling factors whole
    block = max(unit, round(min(block_size / scale, 4 * block_size) / unit) * unit)
    halo_px = int(np.ceil(halo / scale))
    if halo_px >= block:
        raise UserInputError(f"the halo ({halo_px} px) must be smaller than a block ({block} px)")
    depth = halo_px + int(np.ceil(pad / scale)) + 2
    ey, ex = _edges(height, block, depth), _edges(width, block, depth)
    return BlockGrid(ey, ex, block, halo_px, depth, depth)


@dataclass(frozen=True)
class VolumeGrid:
    """The 3-D block grid of a volume too large for memory: a plane's :class:`BlockGrid`
    in y and x, and slabs of planes in z (edges ``0 = e0 < … = Z``) with a halo of
    ``halo_z`` planes (the tiles see planes one by one: a block reads no more in z)."""

    edges_z: tuple[int, ...]
    halo_z: int
    plane: BlockGrid
    block_z: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.edges_z) - 1,) + self.plane.shape

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        return (tuple(np.diff(self.edges_z).tolist()),) + self.plane.chunks

    @property
    def depth_z(self) -> int:
        return self.halo_z if self.shape[0] > 1 else 0

    def core(self, k: int, i: int, j: int) -> tuple[int, ...]:
        return (self.edges_z[k], self.edges_z[k + 1]) + self.plane.core(i, j)

    def region(self, k: int, i: int, j: int) -> tuple[int, ...]:
        """Block + halo, clipped to the volume."""
        z0, z1 = self.edges_z[k], self.edges_z[k + 1]
        n, t = self.edges_z[-1], self.halo_z
        return (max(0, z0 - t), min(n, z1 + t)) + self.plane.region(i, j)

    def window(self, k: int, i: int, j: int) -> tuple[int, int, int]:
        """Where block ``(k, i, j)`` of the overlapped dask array starts in the volume."""
        return (max(0, self.edges_z[k] - self.depth_z),) + self.plane.window(i, j)

    @property
    def slot(self) -> tuple[int, int, int]:
        """The largest block + halo (the scratch array's slot)."""
        return (int(max(np.diff(self.edges_z))) + 2 * self.halo_z,) + tuple(
            int(v) for v in self.plane.slot
        )


def plan_volume_blocks(n_z: int, plane: BlockGrid, block_z: int, z_scale: float) -> VolumeGrid:
    """The 3-D grid of a volume of ``n_z`` planes on the plane grid ``plane``: slabs of
    about ``block_z`` planes, a z halo that holds an object as wide as the plane's halo
    (``plane.halo`` px, ``z_scale`` px a plane), slabs never thinner than that halo."""
    halo_z = min(int(n_z), int(np.ceil(plane.halo / float(z_scale))))
    block_z = max(int(block_z), halo_z + 1, 1)
    return VolumeGrid(_edges(int(n_z), block_z, halo_z), halo_z, plane, block_z)


def busiest_window(sample: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner (in ``sample``'s pixels) of the ``side`` × ``side`` window of a
    channels-last ``sample`` whose intensities vary most: where the objects are, so an
    object size measured there is the image's (a slide's empty margins say nothing)."""
    g = np.asarray(sample, np.float64).mean(axis=-1)
    g = np.where(np.isfinite(g), g, np.nanmin(g) if np.isfinite(g).any() else 0.0)
    h, w = g.shape
    sy, sx = min(side, h), min(side, w)
    if (sy, sx) == (h, w):
        return 0, 0
    c1 = np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    c2 = np.pad((g * g).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.unique(np.r_[np.arange(0, h - sy + 1, max(1, sy // 2)), h - sy])
    xs = np.unique(np.r_[np.arange(0, w - sx + 1, max(1, sx // 2)), w - sx])
    Y, X = np.meshgrid(ys, xs, indexing="ij")

    def box(c):
        return c[Y + sy, X + sx] - c[Y, X + sx] - c[Y + sy, X] + c[Y, X]

    n = sy * sx
    var = box(c2) / n - (box(c1) / n) ** 2
    k = int(np.argmax(var))
    return int(Y.flat[k]), int(X.flat[k])
