"""Prediction of images too large for memory: a dask graph, run anywhere dask runs.

The image (a dask array, or any array-like read lazily by slicing: a memory-mapped TIFF,
tifffile's zarr store, a zarr / OME-Zarr array) is cut into square blocks, the chunks of
a dask array. The graph has two kinds of tasks:

1. **predict** (one per block): the block is read with ``depth`` pixels of its
   neighbours (:func:`dask.array.overlap.overlap`, no data beyond the image); the
   network runs on the block plus a ``halo`` with the same overlap-tiling as a whole
   image (tiles on the *global* grid, so the probabilities equal a single pass);
   instances are found on block + halo and the block keeps those whose centre lies
   inside it, whole, halo included. It writes its probabilities into the output and its
   kept instances (ids ``1..k``) into a scratch array, and returns ``k``. Its figures
   (:class:`~napari_unet.core.prediction.doubt.Tally`) go beside them, so the whole image
   is judged as one held in memory is (:attr:`LargeResult.doubt`).
2. **stitch** (one per block, after every predict): the output labels of a block are
   the kept instances of the 3 × 3 blocks around it, each block's ids shifted by the
   number of instances kept by the blocks before it (raster order), a pixel claimed by
   two instances going to the earlier block. Ids run ``1..N``, none is reused, and a
   nucleus on a block border is written once, by one block.

Every task returns a number; the pixels go through files (OME-Zarr outputs and the
scratch array), so memory stays at a few blocks per worker whatever the image size, and
workers on other machines share nothing but a folder. The network is never pickled: a
task carries a :class:`ModelRef` (a path and a digest) and each process loads the model
once. With no ``client`` the graph runs in this process, one task at a time (dask's
synchronous scheduler); with a :class:`distributed.Client` it runs on that cluster.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..arrays import Window
from ..errors import UserInputError
from ..files.ome_zarr import OUTPUT_CHUNK, create_ome_zarr, pyramid_levels, write_levels  # noqa: F401
from .block_grid import (  # noqa: F401 - the grid is part of this module's interface
    BlockGrid,
    busiest_window,
    plan_blocks,
    plan_scaled_blocks,
)
from .model_ref import (  # noqa: F401 - bound_heap, model_ref: part of this module's interface
    ModelRef,
    bound_heap,
    model_ref,
    network,
    weights_digest,
)
from .predictor import Predictor

if TYPE_CHECKING:
    from .doubt import Doubt, Signs

#: Pyramid levels stop when the next level's larger side would be below this.
PYRAMID_MIN = 512


@dataclass
class LargeResult:
    """Summary of a block-wise prediction."""

    n_instances: int
    blocks: int
    height: int
    width: int
    scale: float = 1.0  # the factor the image was seen at (objects brought to the model's size)
    diameter: float | None = None  # the object width measured or given (px)
    doubt: Doubt | None = None  # why the result is likely wrong (None: the model looks sure)
    signs: Signs | None = None  # the figures it was judged by
    stained: bool = False  # a stained slide, read as its haematoxylin (core.stains)


def measure_scale(
    predictor: Predictor, x, sample: np.ndarray, step: int, client, intensity=None, found=None
):
    """The factor a block-wise prediction sees the image ``x`` at, and the object width:
    the predictor's, fixed by its diameter or measured (as :meth:`Predictor.predict
    <napari_unet.core.prediction.predictor.Predictor.predict>` does) on the most textured region of
    the image (found on ``sample``, ``x`` read every ``step`` px) that the estimate
    looks at, read alone, normalised by the whole image's ``intensity`` (as the
    in-memory estimate normalises its looks; ``None``: the region's own). ``found``
    hears how sure the estimate is (:func:`~napari_unet.core.prediction.object_size.estimate_scale`)."""
    from .object_size import LOOK_CROP, PROBE_SCALES

    h, w = int(x.shape[0]), int(x.shape[1])
    fixed = predictor.fixed_scale((h, w))
    if fixed is not None:
        return fixed
    side = int(LOOK_CROP / min(PROBE_SCALES))
    wy, wx = busiest_window(sample, -(-side // step))
    ch, cw = min(h, side), min(w, side)
    y0, x0 = min(wy * step, h - ch), min(wx * step, w - cw)
    region = _compute(x[y0 : y0 + ch, x0 : x0 + cw], client).astype(np.float32)
    return predictor.estimate_scale(predictor.scorer(region, intensity), region.shape, found)


# --------------------------------------------------------------------------- OME-Zarr
def pyramid_factors(height: int, width: int, block: int) -> list[int]:
    """Downsampling factors of the levels (1, 2, 4, …): until the larger side would drop
    below :data:`PYRAMID_MIN`, and never finer than a block can write on its own."""
    factors = [1]
    while max(height, width) // (factors[-1] * 2) >= PYRAMID_MIN and block % (factors[-1] * 2) == 0:
        factors.append(factors[-1] * 2)
    return factors


# --------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class _Spec:
    """Everything a task needs (pickled once per task: paths and numbers only)."""

    model: ModelRef
    grid: BlockGrid
    height: int
    width: int
    channels: int
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    options: dict = field(hash=False)  # the predictor's settings (Predictor.options)
    labels_path: str
    probability_path: str
    scratch_path: str
    factors: tuple[int, ...]
    scale: float = 1.0
    classes_path: str | None = None  # the class map, for a model with several object classes
    bound_heap: bool = False  # the task's process gives freed block buffers back (see below)


def _predict_block(local: np.ndarray, i: int, j: int, spec: _Spec) -> int:
    """Task 1: predict block ``(i, j)`` (the predictor's steps on block + halo); write
    its probabilities and kept instances."""
    import zarr

    from .doubt import Tally
    from .instances import foreground_probability

    if spec.bound_heap:
        bound_heap()
    predictor = Predictor(network(spec.model), **spec.options)
    grid = spec.grid
    wy, wx = grid.window(i, j)
    src = Window(np.asarray(local), wy, wx, (spec.height, spec.width, spec.channels))
    intensity = np.asarray(spec.lo, np.float32), np.asarray(spec.hi, np.float32)
    by, by1, bx, bx1 = grid.core(i, j)
    ry0, ry1, rx0, rx1 = grid.region(i, j)
    scores, lab = predictor.predict_region(src, grid.region(i, j), intensity, spec.scale)
    prob = foreground_probability(scores[by - ry0 : by1 - ry0, bx - rx0 : bx1 - rx0])
    write_levels(spec.probability_path, by, bx, prob, list(spec.factors))
    votes = None
    if spec.classes_path is not None:  # the class of each instance, by its pixels' vote
        from .instances import instance_classes

        votes = instance_classes(scores, lab)
    del scores  # one block's maps at a time: the probabilities go before the ids are made
    owned, kept = _owned(lab, (ry0, rx0), (by, by1, bx, bx1))
    del lab
    core = owned[by - ry0 : by1 - ry0, bx - rx0 : bx1 - rx0]
    edges = (by == 0, by1 == spec.height, bx == 0, bx1 == spec.width)  # the image's border
    tally = Tally.of(prob, core, src[by:by1, bx:bx1], intensity, edges)
    np.save(_tally_file(spec, i, j), tally.to_array())
    del prob, core
    if votes is not None:
        np.save(_class_file(spec, i, j), votes[kept])
    scratch = zarr.open_array(spec.scratch_path, mode="r+")
    scratch[i, j, : owned.shape[0], : owned.shape[1]] = owned
    return int(owned.max(initial=0))


def _class_file(spec: _Spec, i: int, j: int) -> str:
    return str(Path(spec.scratch_path).parent / f"classes-{i}-{j}.npy")


def _tally_file(spec: _Spec, i: int, j: int) -> str:
    return str(Path(spec.scratch_path).parent / f"tally-{i}-{j}.npy")


def _owned(lab: np.ndarray, origin, core) -> tuple[np.ndarray, np.ndarray]:
    """The instances of ``lab`` whose centre lies in ``core``, renumbered ``1..k``, and
    their ids in ``lab`` (in the new order). ``origin``: where ``lab`` starts in the
    image, per axis; ``core``: ``(start, stop)`` per axis, flat (``y0, y1, x0, x1``; a
    volume's ``z0, z1, y0, y1, x0, x1``)."""
    n = int(lab.max(initial=0))
    if n == 0:
        return np.zeros(lab.shape, np.uint32), np.zeros(0, np.int64)
    idx = np.arange(1, n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # ids a crop left out: NaN, not kept
        centres = _centres(lab, n)
    keep = np.ones(n, bool)
    for axis in range(lab.ndim):
        c = centres[:, axis] + origin[axis]
        keep &= (c >= core[2 * axis]) & (c < core[2 * axis + 1])
    new_ids = np.zeros(n + 1, np.uint32)
    new_ids[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return new_ids[lab], idx[keep]


def _centres(lab: np.ndarray, n: int, pixels: int = 1 << 16) -> np.ndarray:
    """``scipy.ndimage.center_of_mass(ones, lab, 1..n)`` as an ``(n, lab.ndim)`` array,
    the same values, a slab of about ``pixels`` pixels at a time (SciPy weighs a float64
    copy of the whole label image per axis). Each sum is of whole numbers below 2**53,
    exact in float64 in any order, and divided by the pixel count as SciPy does; an id
    with no pixel is NaN."""
    count = np.zeros(n + 1, np.float64)
    sums = np.zeros((lab.ndim, n + 1), np.float64)
    row = int(np.prod(lab.shape[1:]))
    rows = max(1, pixels // max(row, 1))
    for y0 in range(0, lab.shape[0], rows):
        slab = lab[y0 : y0 + rows]
        flat = slab.ravel().astype(np.intp)
        count += np.bincount(flat, minlength=n + 1)
        for axis in range(lab.ndim):
            shape = [1] * slab.ndim
            shape[axis] = slab.shape[axis]
            at = np.arange(slab.shape[axis], dtype=np.float64) + (y0 if axis == 0 else 0)
            weights = np.broadcast_to(at.reshape(shape), slab.shape).ravel()
            sums[axis] += np.bincount(flat, weights=weights, minlength=n + 1)
            del weights
    return (sums[:, 1:] / count[1:]).T


def _stitch_block(offsets: np.ndarray, i: int, j: int, spec: _Spec) -> int:
    """Task 2: the labels of block ``(i, j)`` from the kept instances around it."""
    import zarr

    grid = spec.grid
    by, by1, bx, bx1 = grid.core(i, j)
    scratch = zarr.open_array(spec.scratch_path, mode="r")
    table = None
    if spec.classes_path is not None:

        def table(ni, nj):
            return np.load(_class_file(spec, ni, nj))

    out, classes = stitch_kept(scratch, (i, j), grid.shape, grid.core, grid.region, offsets, table)
    write_levels(spec.labels_path, by, bx, out, list(spec.factors))
    if classes is not None:
        write_levels(spec.classes_path, by, bx, classes, list(spec.factors))
    return int(out.max(initial=0))


def stitch_kept(scratch, index, shape, core, region, offsets, class_table=None):
    """The labels of the block at ``index`` (of a grid of ``shape`` blocks, 2-D or 3-D):
    the kept instances of the blocks around it (3 × 3, or 3 × 3 × 3), read from their
    ``scratch`` slots (``scratch[neighbour]`` holds its region ``region(*neighbour)``,
    ids ``1..k``), each block's ids shifted by its ``offsets`` entry (raster order), a
    pixel claimed by two instances going to the earlier block. With ``class_table``
    (``(neighbour) -> votes``) also the class of each pixel's instance."""
    box = core(*index)
    lo, hi = box[0::2], box[1::2]
    out = np.zeros(tuple(b - a for a, b in zip(lo, hi, strict=True)), np.uint32)
    classes = None if class_table is None else np.zeros(out.shape, np.uint16)
    around = [range(max(0, k - 1), min(n, k + 2)) for k, n in zip(index, shape, strict=True)]
    for nb in itertools.product(*around):  # raster order: earlier blocks win
        reg = region(*nb)
        r0 = reg[0::2]
        a = [max(x, y) for x, y in zip(lo, r0, strict=True)]
        b = [min(x, y) for x, y in zip(hi, reg[1::2], strict=True)]
        if any(p >= q for p, q in zip(a, b, strict=True)):
            continue
        src = tuple(slice(p - r, q - r) for p, q, r in zip(a, b, r0, strict=True))
        dst = tuple(slice(p - c, q - c) for p, q, c in zip(a, b, lo, strict=True))
        win = np.asarray(scratch[tuple(nb) + src])
        cur = out[dst]
        put = (win > 0) & (cur == 0)
        cur[put] = win[put] + np.uint32(offsets[np.ravel_multi_index(nb, shape)])
        if classes is not None:
            votes = np.concatenate([[0], class_table(*nb)])
            classes[dst][put] = votes[win[put]]
    return out, classes


def _offsets(*counts: int) -> np.ndarray:
    """Ids before each block (raster order); the last entry is the total."""
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


# --------------------------------------------------------------------------- the graph
def as_channels_last(image, layout, chunks: tuple[tuple[int, ...], tuple[int, ...]]):
    """``image`` as a dask array ``(Y, X, C)`` with the model's channels, chunked as the
    blocks (a dask array stays in its graph; other array-likes are read by slicing)."""
    import dask.array as da

    if isinstance(image, da.Array):
        x = image
    else:
        nd_chunks = tuple(
            max(1, min(s, 2048)) if i != layout.axis else s for i, s in enumerate(layout.shape)
        )
        x = da.from_array(image, chunks=nd_chunks, lock=False, asarray=True, inline_array=True)
    if layout.axis is None:
        x = x[..., None]
    else:
        x = da.moveaxis(x, layout.axis, -1)
        if layout.drop_alpha:
            x = x[..., :3]
        if layout.stains is not None:
            from ..stains import haematoxylin

            x = x.rechunk({-1: -1}).map_blocks(
                haematoxylin, layout.stains, chunks=x.chunks[:-1] + ((1,),), dtype=np.float32
            )
        elif layout.to_grey:
            x = x.astype(np.float32).mean(axis=-1, keepdims=True)
    return x.rechunk(chunks + ((x.shape[-1],),))


class Stopped(Exception):
    """The run was stopped on request (its ``stop_event``); nothing is complete."""


class _Progress:
    """Counts finished tasks by kind for ``progress(kind, done, total)``; raises
    :class:`Stopped` once the stop event is set."""

    def __init__(self, progress, total: int, stop_event=None) -> None:
        self.progress, self.total, self.stop_event = progress, total, stop_event
        self.done = {"predict": 0, "stitch": 0}

    def __call__(self, kind: str) -> None:
        self.done[kind] += 1
        if self.progress is not None:
            self.progress(kind, self.done[kind], self.total)
        if self.stop_event is not None and self.stop_event.is_set():
            raise Stopped("stopped")


def predict_to_zarr(
    net,
    image,
    labels_path: str | os.PathLike,
    probability_path: str | os.PathLike,
    scratch: str | os.PathLike,
    *,
    client=None,
    model_path: str | os.PathLike | None = None,
    block_size: int = 2048,
    halo: int = 64,
    tile_size: int | None = None,
    context: int | None = None,
    threshold: float | None = None,
    min_size: int | None = None,
    batch_size: int = 1,
    axes: str | None = None,
    diameter: float | str | None = "auto",
    classes_path: str | os.PathLike | None = None,
    pyramid: bool = True,
    name: str = "image",
    progress: Callable[[str, int, int], None] | None = None,
    stop_event: threading.Event | None = None,
    bound_heap: bool = False,
) -> LargeResult:
    """Segment a large 2D image into two OME-Zarr images, block by block.

    Parameters
    ----------
    net
        A :class:`~napari_unet.core.network.unet.UNet`.
    image
        A 2D image (``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, RGB(A)): a dask array or an
        array-like read by slicing; where its channels are is decided by
        :func:`~napari_unet.core.axes.channel_layout` (or said with ``axes``).
    labels_path, probability_path
        Folders to create: instance ids (uint32) and foreground probability (float32),
        with a pyramid of downsampled levels when ``pyramid``.
    scratch
        An existing empty folder for the work in progress (the model copy, the kept
        instances of each block); every worker must be able to read and write it, as
        the outputs. The caller removes it.
    client
        A :class:`distributed.Client` to run on; ``None`` runs here, one task at a time.
    model_path
        The file ``net`` was loaded from (unchanged since); otherwise a copy is saved into
        ``scratch`` for the workers.
    block_size, halo
        Edge of the blocks, and the margin predicted around each so that nuclei across a
        block border are seen whole (must exceed the largest nucleus radius); both at the
        model's scale.
    diameter
        Typical object width in px: ``"auto"`` measures it (on the most textured region
        of the image), ``None`` or 0 takes the image as it is. As in
        :meth:`~napari_unet.core.network.unet.UNet.predict`, the image is seen at the scale where
        its objects match the model's, block by block, and the results come back at the
        image's pixels. At scale 1 the probabilities equal a whole-image pass.
    classes_path
        For a model with several object classes: a third folder to create, the class of
        every pixel's instance (by a vote of its pixels, as
        :func:`~napari_unet.core.prediction.instances.instance_classes`).
    progress
        Called as ``progress(kind, done, total)``, ``kind`` ``"predict"`` or ``"stitch"``.
    stop_event
        When set, the run ends after the tasks running now with :class:`Stopped`.
    bound_heap
        Let each process that predicts blocks (this one without a ``client``) give
        freed block buffers back to the system (:func:`bound_heap`): for processes that
        do nothing else, as the command line's.
    """
    import dask
    import zarr

    from ..axes import channel_layout

    cfg = net.config
    predictor = Predictor(
        net,
        tile_size=tile_size,
        context=context,
        threshold=threshold,
        min_size=min_size,
        diameter=diameter,
        batch_size=batch_size,
    )
    layout = channel_layout(
        tuple(np.shape(image)),
        cfg.input_channels,
        axes=axes,
        image=image if net.metadata.reads_stains else None,
    )
    if len(layout.spatial_shape) != 2:
        raise UserInputError(
            f"a large image must be 2D (optionally with channels), got {tuple(np.shape(image))}"
        )
    h, w = (int(s) for s in layout.spatial_shape)
    grid = plan_blocks(
        h, w, block_size, halo, predictor.tile_size, predictor.context, cfg.size_multiple
    )

    x = as_channels_last(image, layout, grid.chunks)
    # normalisation: the percentiles of the pixels an in-memory prediction (or training)
    # of the whole image takes them on (Normalizer.sample), read through dask
    normalizer = predictor.normalizer
    step = normalizer.step(h, w)
    sample = _compute(x[::step, ::step], client)
    lo, hi = normalizer.of_sample(sample)
    found: dict = {}  # how sure the size estimate is (empty: a diameter fixed it)
    scale, measured = measure_scale(predictor, x, sample, step, client, (lo, hi), found)
    del sample
    if scale != 1.0:
        probe = predictor.plan(block_size, block_size)
        grid = plan_scaled_blocks(h, w, block_size, halo, probe.context + probe.shrink, scale)
        x = x.rechunk(grid.chunks + ((x.shape[-1],),))
    factors = pyramid_factors(h, w, grid.block) if pyramid else [1]
    scratch = Path(scratch)
    create_ome_zarr(labels_path, (h, w), np.uint32, grid.block, f"{name} labels", factors, "labels")
    create_ome_zarr(
        probability_path, (h, w), np.float32, grid.block, f"{name} probability", factors, "image"
    )
    n_classes = int(cfg.n_object_classes)
    if classes_path is not None and n_classes > 1:
        from ..files.outputs import class_map_dtype

        dtype = class_map_dtype(n_classes)
        create_ome_zarr(
            classes_path, (h, w), dtype, grid.block, f"{name} classes", factors, "labels"
        )
    else:
        classes_path = None
    ny, nx = grid.shape
    sy, sx = grid.slot
    zarr.open_array(
        str(scratch / "kept.zarr"),
        mode="w",
        shape=(ny, nx, sy, sx),
        chunks=(1, 1, sy, sx),
        dtype=np.uint32,
        fill_value=0,
        zarr_format=2,
    )
    spec = _Spec(
        model=model_ref(net, model_path, scratch, save=client is not None),
        grid=grid,
        height=h,
        width=w,
        channels=int(x.shape[-1]),
        lo=tuple(float(v) for v in lo),
        hi=tuple(float(v) for v in hi),
        options=predictor.options(),
        labels_path=str(labels_path),
        probability_path=str(probability_path),
        scratch_path=str(scratch / "kept.zarr"),
        factors=tuple(factors),
        scale=float(scale),
        classes_path=None if classes_path is None else str(classes_path),
        bound_heap=bool(bound_heap),
    )

    import dask.array as da

    depth = {0: grid.depth_y if ny > 1 else 0, 1: grid.depth_x if nx > 1 else 0, 2: 0}
    ovl = da.overlap.overlap(x, depth=depth, boundary="none") if any(depth.values()) else x
    pieces = ovl.to_delayed()
    token = dask.base.tokenize(spec, x.name)
    predict = dask.delayed(_predict_block, pure=True)
    stitch = dask.delayed(_stitch_block, pure=True)
    counts = [
        predict(pieces[i, j, 0], i, j, spec, dask_key_name=f"napari-unet-predict-{token}-{i}-{j}")
        for i in range(ny)
        for j in range(nx)
    ]
    offsets = dask.delayed(_offsets, pure=True)(*counts, dask_key_name=f"napari-unet-ids-{token}")
    stitched = [
        stitch(offsets, i, j, spec, dask_key_name=f"napari-unet-stitch-{token}-{i}-{j}")
        for i in range(ny)
        for j in range(nx)
    ]
    tick = _Progress(progress, ny * nx, stop_event)
    results = _run(counts, stitched, offsets, client, tick, token)
    n = int(results[-1])
    from .doubt import Tally

    tally = Tally.empty()
    for i in range(ny):
        for j in range(nx):
            tally += Tally.from_array(np.load(_tally_file(spec, i, j)))
    fixed = None if found else (scale, measured)
    sizes = [found["size"]] if found else []
    measured = predictor.shown_width(fixed, float(scale), measured)
    signs, doubt = predictor.judge(tally, sizes, fixed, float(scale), measured)
    return LargeResult(n, ny * nx, h, w, float(scale), measured, doubt, signs, layout.stained)


def _compute(collection, client):
    if client is None:
        return np.asarray(collection.compute(scheduler="sync"))
    return np.asarray(client.compute(collection).result())


def _run(counts, stitched, offsets, client, tick: _Progress, token: str):
    """Run the graph; returns the offsets (the last one is the number of instances)."""
    if client is None:
        import dask
        from dask.callbacks import Callback

        def posttask(key, result, dsk, state, worker_id):
            name = key[0] if isinstance(key, tuple) else key
            name = str(name)
            if name.startswith("napari-unet-predict-"):
                tick("predict")
            elif name.startswith("napari-unet-stitch-"):
                tick("stitch")

        with Callback(posttask=posttask):
            _, offs = dask.compute(stitched, offsets, scheduler="sync")
        return offs
    return _run_distributed(counts, stitched, offsets, client, tick, token)


class WorkerLost(UserInputError):
    """A dask worker died (out of memory, killed, its machine gone) during the run."""


def _run_distributed(counts, stitched, offsets, client, tick: _Progress, token: str):
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    futures = client.compute(counts + stitched + [offsets])
    kinds = {f.key: "predict" for f in futures[: len(counts)]}
    kinds.update({f.key: "stitch" for f in futures[len(counts) : -1]})
    finished = False
    try:
        for fut in as_completed(futures):
            if fut.status == "error":
                fut.result()  # raises the task's error
            kind = kinds.get(fut.key)
            if kind:
                tick(kind)
        result = futures[-1].result()
        finished = True
        return result
    except KilledWorker as e:
        raise WorkerLost(
            f"a dask worker died while running {_task_name(e)} (out of memory, killed, or its "
            "machine went away); nothing was written. Give the workers more memory (or lower "
            "--tile-size) and run again"
        ) from None
    finally:
        client.cancel(futures, force=True)
        if not finished:
            _quiesce(client, token)
            # a failed task's other chunk writes go on in its worker: let them end
            # before the caller removes the folders they write into
            from ..files.outputs import settle_zarr_writes

            try:
                client.run(settle_zarr_writes, on_error="ignore")
            except Exception:  # noqa: BLE001 - the cluster is going away: nothing runs
                pass


def _busy(token: str, dask_worker=None) -> int:
    """How many of this run's tasks a worker is still executing (run on the workers)."""
    return sum(token in str(ts.key) for ts in dask_worker.state.executing)


def _quiesce(client, token: str, timeout: float = 120.0) -> None:
    """Wait until no worker executes a task of this run any more: a cancelled task
    still runs to its end, and must not write into outputs the caller is removing."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            busy = client.run(_busy, token, on_error="ignore")
        except Exception:  # noqa: BLE001 - the cluster is going away: nothing runs
            return
        if not any(v for v in busy.values() if isinstance(v, int)):
            return
        time.sleep(0.2)


def _task_name(e) -> str:
    key = getattr(e, "task", None) or (e.args[0] if e.args else "")
    text = str(key)
    for kind in ("predict", "stitch"):
        if f"napari-unet-{kind}-" in text:
            parts = text.rsplit("-", 2)
            return f"{kind} block ({parts[-2]}, {parts[-1]})"
    return "a task"


def zarr_to_tiffs(items, rows: int = 2048) -> None:
    """Copy level 0 of OME-Zarr images into memory-mapped TIFF arrays, ``rows`` at a
    time (``items``: ``(zarr path, writable (Y, X) array-like)``)."""
    import zarr

    for path, out in items:
        src = zarr.open_array(f"{path}/0", mode="r")
        for y in range(0, src.shape[0], rows):
            out[y : y + rows] = src[y : y + rows]


@dataclass
class LazyPrediction:
    """The result of :func:`predict_dask`: pyramids of dask arrays read from the two
    OME-Zarr images in ``folder`` (full resolution first), nothing in memory yet."""

    labels: list
    probability: list
    n_instances: int
    folder: Path
    scale: float = 1.0
    diameter: float | None = None
    classes: list | None = None  # the class map's pyramid, for several object classes
    class_names: list | None = None
    doubt: Doubt | None = None  # why the result is likely wrong (None: the model looks sure)
    signs: Signs | None = None
    stained: bool = False  # a stained slide, read as its haematoxylin (core.stains)


def predict_dask(
    net,
    image,
    out: str | os.PathLike | None = None,
    client=None,
    *,
    model_path: str | os.PathLike | None = None,
    **kwargs,
) -> LazyPrediction:
    """Segment a 2D image of any size (a dask array, a zarr array, a memory map) as a
    dask graph, on ``client``'s cluster or, without one, in this process.

    The results are written into ``out`` (default: a new temporary folder) as
    ``labels.zarr`` and ``probability.zarr`` (and ``classes.zarr`` for a model with
    several object classes; OME-Zarr with a pyramid) and returned as
    lazy dask arrays. With a client, its workers must be able to write ``out``; the
    network reaches them as a ``.keras`` file saved there (``model_path`` names the file
    it was loaded from instead). Other keyword arguments are :func:`predict_to_zarr`'s.
    Existing outputs in ``out`` are replaced only when napari-unet wrote them.
    """
    import tempfile

    from ..files.outputs import AtomicWrite, is_our_output, remove_folder

    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="napari-unet-"))
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / "labels.zarr", folder / "probability.zarr"]
    if int(net.config.n_object_classes) > 1:
        targets.append(folder / "classes.zarr")
    for t in targets:
        if os.path.lexists(t) and not is_our_output(t):
            raise UserInputError(
                f"{t} exists and was not written by napari-unet; choose another out"
            )
    outputs = AtomicWrite(*targets, folder=True)
    work = Path(tempfile.mkdtemp(prefix=".napari-unet-work.", dir=folder))
    try:
        res = predict_to_zarr(
            net,
            image,
            outputs.temps[0],
            outputs.temps[1],
            work,
            client=client,
            model_path=model_path,
            classes_path=outputs.temps[2] if len(targets) > 2 else None,
            **kwargs,
        )
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    finally:
        remove_folder(work)  # after the chunk writes still in flight (a full disk)
    return LazyPrediction(
        pyramid_levels(targets[0]),
        pyramid_levels(targets[1]),
        res.n_instances,
        folder,
        res.scale,
        res.diameter,
        pyramid_levels(targets[2]) if len(targets) > 2 else None,
        list(net.object_class_names) if len(targets) > 2 else None,
        res.doubt,
        res.signs,
        res.stained,
    )
