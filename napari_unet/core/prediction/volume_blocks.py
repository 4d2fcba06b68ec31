"""Volumes too large for memory: the dask graph of :mod:`.blockwise` in three dimensions.

The volume ``(Z, Y, X)`` (channels anywhere :func:`~napari_unet.core.axes.channel_layout`
finds them; a dask, zarr or OME-Zarr array, a memory-mapped TIFF, or one in memory) is
cut into 3-D blocks: the plane's block grid in y and x (:func:`plan_blocks`, the tiles on
the volume's grid) and slabs of planes in z, each block read with a halo in z, y and x
(:func:`~napari_unet.core.prediction.block_grid.plan_volume_blocks`). The two kinds of
tasks are the 2-D path's:

1. **predict**: the block + halo segmented as :meth:`Predictor.predict_volume
   <napari_unet.core.prediction.predictor.Predictor.predict_volume>` segments a whole
   volume (the network on its YX planes, the same normalisation and object scale for
   every block, 3-D instances with ``z_scale``); the block keeps the instances whose
   centre lies inside it, whole, halo included (so an object across a block face, in
   any of the three directions, is kept once, by one block).
2. **stitch**: the labels of a block are the kept instances of the 3 × 3 × 3 blocks
   around it, ids shifted by the counts of the blocks before it
   (:func:`~napari_unet.core.prediction.blockwise.stitch_kept`).

Probabilities and labels are written into 3-D OME-Zarr images (a pyramid in y and x,
every level keeping all planes); memory stays at a few blocks per worker. Only the YX
views: the ZY and ZX views (``views="all"``) need whole columns of the volume.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from ..files.ome_zarr import create_ome_zarr, write_levels
from .block_grid import VolumeGrid, plan_blocks, plan_scaled_blocks, plan_volume_blocks
from .blockwise import (
    LargeResult,
    _compute,
    _owned,
    _Progress,
    _run,
    as_channels_last,
    measure_scale,
    pyramid_factors,
    stitch_kept,
)
from .model_ref import ModelRef, bound_heap, model_ref, network
from .predictor import Predictor

#: Edge of a volume's blocks in y and x, and planes per block in z (at the model's scale).
VOLUME_BLOCK = 256
VOLUME_BLOCK_Z = 32
#: The margin around a block (px at the model's scale; in z as many planes as the
#: same width): must hold the largest object's radius.
VOLUME_HALO = 32


@dataclass(frozen=True)
class _Spec:
    """Everything a task needs (pickled once per task: paths and numbers only)."""

    model: ModelRef
    grid: VolumeGrid
    shape: tuple[int, int, int, int]  # Z, Y, X, C
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    options: dict = field(hash=False)
    labels_path: str
    probability_path: str
    scratch_path: str
    factors: tuple[int, ...]
    scale: float = 1.0
    z_scale: float = 1.0
    classes_path: str | None = None
    bound_heap: bool = False


def _name(spec: _Spec, kind: str, k: int, i: int, j: int) -> str:
    return str(Path(spec.scratch_path).parent / f"{kind}-{k}-{i}-{j}.npy")


def _predict_block(local: np.ndarray, k: int, i: int, j: int, spec: _Spec) -> int:
    """Task 1: predict block ``(k, i, j)`` (block + halo as one volume); write its
    probabilities and kept instances."""
    import zarr

    from .doubt import Tally
    from .instances import foreground_probability

    if spec.bound_heap:
        bound_heap()
    predictor = Predictor(network(spec.model), **spec.options)
    grid = spec.grid
    local = np.asarray(local)
    origin = grid.window(k, i, j)
    region, core = grid.region(k, i, j), grid.core(k, i, j)
    intensity = np.asarray(spec.lo, np.float32), np.asarray(spec.hi, np.float32)
    scores, lab = predictor.predict_volume_region(
        local, origin, spec.shape, region, intensity, spec.scale, spec.z_scale
    )
    inner = tuple(
        slice(core[2 * a] - region[2 * a], core[2 * a + 1] - region[2 * a]) for a in range(3)
    )
    prob = foreground_probability(scores[inner])
    write_levels(spec.probability_path, core[2], core[4], prob, list(spec.factors), z0=core[0])
    votes = None
    if spec.classes_path is not None:
        from .instances import instance_classes

        votes = instance_classes(scores, lab)
    del scores
    owned, kept = _owned(lab, region[0::2], core)
    del lab
    image = local[
        tuple(slice(core[2 * a] - origin[a], core[2 * a + 1] - origin[a]) for a in range(3))
    ]
    tally = Tally.empty()
    _, h, w, _ = spec.shape
    edges = (core[2] == 0, core[3] == h, core[4] == 0, core[5] == w)  # the image's border
    for z in range(prob.shape[0]):  # the doubt's figures are a plane's: summed over planes
        tally += Tally.of(prob[z], owned[inner][z], image[z], intensity, edges)
    np.save(_name(spec, "tally", k, i, j), tally.to_array())
    if votes is not None:
        np.save(_name(spec, "classes", k, i, j), votes[kept])
    scratch = zarr.open_array(spec.scratch_path, mode="r+")
    scratch[(k, i, j) + tuple(slice(0, n) for n in owned.shape)] = owned
    return int(owned.max(initial=0))


def _stitch_block(offsets: np.ndarray, k: int, i: int, j: int, spec: _Spec) -> int:
    """Task 2: the labels of block ``(k, i, j)`` from the kept instances around it."""
    import zarr

    grid = spec.grid
    core = grid.core(k, i, j)
    scratch = zarr.open_array(spec.scratch_path, mode="r")
    table = None
    if spec.classes_path is not None:

        def table(*nb):
            return np.load(_name(spec, "classes", *nb))

    out, classes = stitch_kept(
        scratch, (k, i, j), grid.shape, grid.core, grid.region, offsets, table
    )
    write_levels(spec.labels_path, core[2], core[4], out, list(spec.factors), z0=core[0])
    if classes is not None:
        write_levels(spec.classes_path, core[2], core[4], classes, list(spec.factors), z0=core[0])
    return int(out.max(initial=0))


def _offsets(*counts: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


def _lazy(image, layout, chunks):
    """``image`` as a dask array in its own axis order, chunked as the blocks (a block
    reads only its own part of the file)."""
    import dask.array as da

    if isinstance(image, da.Array):
        return image
    spatial = iter(chunks)
    nd = tuple(s if a == layout.axis else next(spatial) for a, s in enumerate(layout.shape))
    return da.from_array(image, chunks=nd, lock=False, asarray=True, inline_array=True)


def predict_volume_to_zarr(
    net,
    image,
    labels_path: str | os.PathLike,
    probability_path: str | os.PathLike,
    scratch: str | os.PathLike,
    *,
    z_scale: float = 1.0,
    client=None,
    model_path: str | os.PathLike | None = None,
    block_size: int = VOLUME_BLOCK,
    block_z: int = VOLUME_BLOCK_Z,
    halo: int = VOLUME_HALO,
    tile_size: int | None = None,
    context: int | None = None,
    threshold: float | None = None,
    min_size: int | None = None,
    batch_size: int = 1,
    axes: str | None = None,
    diameter: float | str | None = "auto",
    classes_path: str | os.PathLike | None = None,
    pyramid: bool = True,
    name: str = "volume",
    progress: Callable[[str, int, int], None] | None = None,
    stop_event: threading.Event | None = None,
    bound_heap: bool = False,
) -> LargeResult:
    """Segment a volume ``(Z, Y, X)`` (with channels, optionally) into two 3-D OME-Zarr
    images, block by block: as :func:`~napari_unet.core.prediction.blockwise.predict_to_zarr`
    does a plane, with ``z_scale`` (the z-step over the XY pixel size) for the 3-D
    instances and ``block_z`` planes per block (``block_size`` and ``halo`` in y and x,
    at the model's scale; the z halo holds an object as wide as ``halo``). ``axes``
    names the image's axes with ``C`` for channels (``"ZYX"``, ``"CZYX"``…). The object
    scale (``diameter``, ``"auto"``: measured on the brightest plane, as in memory) and
    the normalisation (percentiles of a regular subsample of the whole volume) are the
    same for every block."""
    import dask
    import dask.array as da
    import zarr

    from ..axes import channel_layout
    from ..normalize import _MAX_SAMPLE

    z_scale = float(z_scale)
    if not (np.isfinite(z_scale) and z_scale > 0):
        raise UserInputError(
            f"z scale (z step / pixel size) must be a positive number, got {z_scale}"
        )
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
    if len(layout.spatial_shape) != 3:
        raise UserInputError(
            f"a volume block by block must be Z×Y×X (optionally with channels), "
            f"got {tuple(np.shape(image))}"
        )
    n_z, h, w = (int(s) for s in layout.spatial_shape)
    plane = plan_blocks(
        h, w, block_size, halo, predictor.tile_size, predictor.context, cfg.size_multiple
    )
    grid = plan_volume_blocks(n_z, plane, block_z, z_scale)
    x = as_channels_last(_lazy(image, layout, grid.chunks), layout, grid.chunks)
    # the percentiles of a regular subsample of the whole volume (every pixel of a small one)
    step = max(1, int(np.ceil((n_z * h * w / _MAX_SAMPLE) ** (1 / 3))))
    sample = _compute(x[::step, ::step, ::step], client)
    lo, hi = predictor.normalizer.of_sample(sample)
    # the object scale: measured on the brightest plane (as in memory), the same for all
    brightest = int(np.argmax(sample.reshape(sample.shape[0], -1).mean(axis=1))) * step
    del sample
    found: dict = {}
    flat = x[brightest]
    s2 = predictor.normalizer.step(h, w)
    plane_sample = _compute(flat[::s2, ::s2], client)
    scale, measured = measure_scale(predictor, flat, plane_sample, s2, client, (lo, hi), found)
    del plane_sample
    if scale != 1.0:
        probe = predictor.plan(block_size, block_size)
        plane = plan_scaled_blocks(h, w, block_size, halo, probe.context + probe.shrink, scale)
        grid = plan_volume_blocks(n_z, plane, block_z, z_scale)
        x = x.rechunk(grid.chunks + ((x.shape[-1],),))
    factors = pyramid_factors(h, w, plane.block) if pyramid else [1]
    shape3 = (n_z, h, w)

    def create(path, dtype, what, kind):
        create_ome_zarr(
            path, shape3, dtype, plane.block, f"{name} {what}", factors, kind, grid.block_z, z_scale
        )

    create(labels_path, np.uint32, "labels", "labels")
    create(probability_path, np.float32, "probability", "image")
    n_classes = int(cfg.n_object_classes)
    if classes_path is not None and n_classes > 1:
        from ..files.outputs import class_map_dtype

        create(classes_path, class_map_dtype(n_classes), "classes", "labels")
    else:
        classes_path = None
    scratch = Path(scratch)
    nz, ny, nx = grid.shape
    slot = grid.slot
    zarr.open_array(
        str(scratch / "kept.zarr"),
        mode="w",
        shape=grid.shape + slot,
        chunks=(1, 1, 1) + slot,
        dtype=np.uint32,
        fill_value=0,
        zarr_format=2,
    )
    spec = _Spec(
        model=model_ref(net, model_path, scratch, save=client is not None),
        grid=grid,
        shape=(n_z, h, w, int(x.shape[-1])),
        lo=tuple(float(v) for v in lo),
        hi=tuple(float(v) for v in hi),
        options=predictor.options(),
        labels_path=str(labels_path),
        probability_path=str(probability_path),
        scratch_path=str(scratch / "kept.zarr"),
        factors=tuple(factors),
        scale=float(scale),
        z_scale=z_scale,
        classes_path=None if classes_path is None else str(classes_path),
        bound_heap=bool(bound_heap),
    )
    depth = {
        0: grid.depth_z,
        1: plane.depth_y if ny > 1 else 0,
        2: plane.depth_x if nx > 1 else 0,
        3: 0,
    }
    ovl = da.overlap.overlap(x, depth=depth, boundary="none") if any(depth.values()) else x
    pieces = ovl.to_delayed()
    token = dask.base.tokenize(spec, x.name)
    predict = dask.delayed(_predict_block, pure=True)
    stitch = dask.delayed(_stitch_block, pure=True)
    blocks = [(k, i, j) for k in range(nz) for i in range(ny) for j in range(nx)]
    counts = [
        predict(
            pieces[b + (0,)],
            *b,
            spec,
            dask_key_name=f"napari-unet-predict-{token}-{'-'.join(map(str, b))}",
        )
        for b in blocks
    ]
    offsets = dask.delayed(_offsets, pure=True)(*counts, dask_key_name=f"napari-unet-ids-{token}")
    stitched = [
        stitch(
            offsets, *b, spec, dask_key_name=f"napari-unet-stitch-{token}-{'-'.join(map(str, b))}"
        )
        for b in blocks
    ]
    tick = _Progress(progress, len(blocks), stop_event)
    results = _run(counts, stitched, offsets, client, tick, token)
    n = int(results[-1])
    from .doubt import Tally

    tally = Tally.empty()
    for b in blocks:
        tally += Tally.from_array(np.load(_name(spec, "tally", *b)))
    fixed = None if found else (scale, measured)
    sizes = [found["size"]] if found else []
    signs, doubt = predictor.judge(tally, sizes, fixed, float(scale), measured)
    return LargeResult(n, len(blocks), h, w, float(scale), measured, doubt, signs)
