"""Prediction of images too large for memory, block by block, in bounded memory.

The image (any array-like with numpy slicing: a memory-mapped TIFF, a zarr array) is cut
into square blocks. Each block is predicted together with a ``halo`` of neighbouring
pixels, by the same overlap-tiling as whole images (tiles on the global grid, so the
probabilities equal a single pass). Instances are found on block + halo; a block keeps
the instances whose centre lies inside it and writes all of their pixels, halo included,
so a nucleus on a block border is written once, whole, by one block, with a fresh id.

Outputs are array-likes too; :class:`.io.RowMappedArray` maps only the rows a block needs
from a file, so resident memory stays at a few blocks whatever the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import UserInputError
from .postprocess import foreground_probability, instances_from_probabilities
from .predict import plan_tiles, predict_probabilities


@dataclass
class LargeResult:
    """Summary of a block-wise prediction."""

    n_instances: int
    blocks: int
    height: int
    width: int


def predict_large(
    net,
    image,
    labels_out,
    probability_out,
    block_size: int = 2048,
    halo: int = 64,
    tile_size: int | None = None,
    context: int | None = None,
    threshold: float | None = None,
    min_size: int | None = None,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    axes: str | None = None,
) -> LargeResult:
    """Predict a large 2D single-image ``image`` block by block into the two outputs.

    Parameters
    ----------
    net
        A :class:`~napari_unet.core.unet.UNet`.
    image
        A 2D image (``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, RGB(A)) as an array-like
        read lazily by slicing; where its channels are is decided by
        :func:`~napari_unet.core.axes.channel_layout` (or said with ``axes``).
    labels_out, probability_out
        Writable ``(Y, X)`` array-likes, zero-filled (labels) beforehand; instance ids
        need a dtype wide enough (``uint32``).
    block_size, halo
        Edge of the blocks each written once, and the extra margin predicted around
        them so that nuclei across a block border are seen whole (must exceed the
        largest nucleus radius).
    """
    from .axes import channel_layout
    from .normalize import normalize, percentile_range, percentiles

    cfg = net.config
    layout = channel_layout(np.shape(image), cfg.input_channels, axes=axes)
    if len(layout.spatial_shape) != 2:
        raise UserInputError(
            f"a large image must be 2D (optionally with channels), got {tuple(np.shape(image))}"
        )
    m = cfg.size_multiple
    block_size = max(m, (int(block_size) // m) * m)
    halo = -(-int(halo) // m) * m
    h, w = layout.spatial_shape
    src = _LayoutView(image, layout)
    lo, hi = percentiles(src, *percentile_range(net.normalization))

    def normalizer(t):
        return normalize(t, lo, hi)

    from .unet import DEFAULT_CONTEXT, DEFAULT_TILE_SIZE

    tile = int(tile_size or DEFAULT_TILE_SIZE)
    ctx = DEFAULT_CONTEXT if context is None else int(context)
    infer = net.inference_function()
    params = net.postprocessing.to_dict()
    if threshold is not None:
        params["threshold"] = float(threshold)
    if min_size is not None:
        params["min_size"] = int(min_size)
    blocks = [(y, x) for y in range(0, h, block_size) for x in range(0, w, block_size)]
    next_id = 1
    for done, (by, bx) in enumerate(blocks, start=1):
        by1, bx1 = min(h, by + block_size), min(w, bx + block_size)
        ry0, rx0 = max(0, by - halo), max(0, bx - halo)
        ry1, rx1 = min(h, by1 + halo), min(w, bx1 + halo)
        plan = plan_tiles(ry1 - ry0, rx1 - rx0, tile, ctx, m, origin=(ry0, rx0))
        scores = predict_probabilities(infer, src, cfg.n_outputs, plan, normalizer, batch_size)
        probability_out[by:by1, bx:bx1] = foreground_probability(
            scores[by - ry0 : by1 - ry0, bx - rx0 : bx1 - rx0]
        )
        lab = instances_from_probabilities(scores, **params)
        del scores
        next_id = _write_owned(lab, labels_out, (ry0, rx0), (by, by1, bx, bx1), next_id)
        if progress is not None:
            progress(done, len(blocks))
    return LargeResult(next_id - 1, len(blocks), h, w)


def _write_owned(lab, labels_out, origin, core, next_id: int) -> int:
    """Write the instances whose centre lies in ``core`` with fresh ids."""
    from scipy import ndimage as ndi

    n = int(lab.max(initial=0))
    if n == 0:
        return next_id
    ry0, rx0 = origin
    by, by1, bx, bx1 = core
    idx = np.arange(1, n + 1)
    centres = np.array(ndi.center_of_mass(np.ones_like(lab, np.uint8), lab, idx)).reshape(-1, 2)
    cy = centres[:, 0] + ry0
    cx = centres[:, 1] + rx0
    owned = (cy >= by) & (cy < by1) & (cx >= bx) & (cx < bx1)
    if not owned.any():
        return next_id
    new_ids = np.zeros(n + 1, np.int64)
    new_ids[1:][owned] = np.arange(next_id, next_id + int(owned.sum()))
    relabelled = new_ids[lab]
    ys, xs = np.nonzero(relabelled)
    y0, y1 = int(ys.min()), int(ys.max()) + 1
    x0, x1 = int(xs.min()), int(xs.max()) + 1
    window = relabelled[y0:y1, x0:x1]
    gy, gx = ry0 + y0, rx0 + x0
    current = np.asarray(labels_out[gy : gy + (y1 - y0), gx : gx + (x1 - x0)])
    # pixels already given to an instance of an earlier block stay with it
    put = (window > 0) & (current == 0)
    current = current.copy()
    current[put] = window[put]
    labels_out[gy : gy + (y1 - y0), gx : gx + (x1 - x0)] = current
    return next_id + int(owned.sum())


class _LayoutView:
    """Present a lazy 2D image as ``(Y, X, C)`` with the model's channels, reading only
    the window asked for (channels moved last, alpha dropped, colours to grey as the
    :class:`~napari_unet.core.axes.ChannelLayout` says)."""

    def __init__(self, a, layout) -> None:
        self.a = a
        self.layout = layout
        h, w = layout.spatial_shape
        self.shape = (int(h), int(w), int(layout.channels))
        self.ndim = 3
        self.dtype = np.dtype(np.float32) if layout.to_grey else a.dtype

    def __getitem__(self, key):
        ys, xs = key[0], key[1]
        return self.layout.read(self.a, (), ys, xs)
