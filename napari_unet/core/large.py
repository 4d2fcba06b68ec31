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
   kept instances (ids ``1..k``) into a scratch array, and returns ``k``.
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

import hashlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserInputError
from .io import ZARR_MARK

#: Pyramid levels stop when the next level's larger side would be below this.
PYRAMID_MIN = 512
#: Edge of the output zarr chunks (a divisor of the block size).
OUTPUT_CHUNK = 512
#: The attribute that marks an OME-Zarr written by napari-unet (may be replaced).


@dataclass
class LargeResult:
    """Summary of a block-wise prediction."""

    n_instances: int
    blocks: int
    height: int
    width: int
    scale: float = 1.0  # the factor the image was seen at (objects brought to the model's size)
    diameter: float | None = None  # the object width measured or given (px)


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelRef:
    """What a task needs to find the network: a ``.keras`` path every worker can read
    and a digest of the weights (the cache key). Pickles as two strings."""

    path: str
    key: str


_NETS: dict[str, object] = {}
_NETS_LOCK = threading.Lock()


def weights_digest(net) -> str:
    """A digest of a network's weights and architecture (cache key of :class:`ModelRef`)."""
    h = hashlib.sha1(repr(sorted(net.config.to_dict().items())).encode())
    for w in net.keras_model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def model_ref(
    net, model_path: str | os.PathLike | None, folder: str | os.PathLike, save: bool = True
) -> ModelRef:
    """A reference to ``net`` for tasks: ``model_path`` when it is the file ``net`` was
    loaded from unchanged, else a copy saved into ``folder`` (which workers can read;
    not saved when ``save`` is false: every task runs in this process).

    ``net`` is also registered in this process, so tasks run here never load it again.
    """
    key = weights_digest(net)
    if model_path is None and not save:
        path = Path(folder) / f"model-{key}.keras"
    elif model_path is None:
        path = Path(folder) / f"model-{key}.keras"
        if not path.exists():
            net.save(path)
    else:
        path = Path(model_path).resolve()
    with _NETS_LOCK:
        _NETS[key] = net
    return ModelRef(str(path), key)


def _net(ref: ModelRef):
    """The network of ``ref``, loaded once per process."""
    with _NETS_LOCK:
        net = _NETS.get(ref.key)
        if net is None:
            from ._tfload import quiet_import_tensorflow

            quiet_import_tensorflow()  # a worker's terminal is the user's too
            from .unet import UNet

            net = _NETS[ref.key] = UNet.load(ref.path)
    return net


_HEAP_BOUNDED = False

#: Buffers from this size up are mapped on their own and unmapped when freed (glibc).
HEAP_MMAP_THRESHOLD = 1 << 20


def bound_heap() -> bool:
    """Make this process give the memory of freed block-sized buffers back to the system
    (glibc on Linux; elsewhere nothing happens). Returns whether it took effect.

    glibc serves a buffer of more than 128 KiB from a mapping of its own, unmapped when
    it is freed, but raises that limit to the size of every such buffer freed, up to
    32 MiB. After the first block, a block's many maps of a few MiB to ~20 MiB come
    from the heap, which fragments and rarely shrinks, so the resident memory of a
    block-wise run crept up block after block (by ~250 MB over the first ten blocks of
    2048²) to settle well above one block's working set. A fixed limit of
    :data:`HEAP_MMAP_THRESHOLD` stops that. It holds for the whole process, so it is
    set only where a process does this work alone: the command line and dask workers
    (``predict_to_zarr(bound_heap=True)``), not napari's.
    """
    global _HEAP_BOUNDED
    if _HEAP_BOUNDED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (or no mallopt): leave the allocator be
        return False
    m_mmap_threshold = -3  # glibc's M_MMAP_THRESHOLD
    _HEAP_BOUNDED = bool(mallopt(m_mmap_threshold, HEAP_MMAP_THRESHOLD))
    return _HEAP_BOUNDED


# --------------------------------------------------------------------------- the grid
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
    from .predict import plan_tiles

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


def choose_scale(net, x, sample: np.ndarray, step: int, diameter, threshold: float, client):
    """The factor a block-wise prediction sees the image at, and the object width.

    ``diameter``: ``"auto"`` measures the objects (as :meth:`UNet.predict` does, on the
    most textured region of the image that the estimate looks at, read alone); a number
    says their width in px; ``None`` or 0 takes the image as it is."""
    from .size import LOOK_CROP, PROBE_SCALES

    fixed = net._fixed_scale(diameter, (int(x.shape[0]), int(x.shape[1])))
    if fixed is not None:
        given = fixed != 1.0 and diameter not in (None, 0)
        return fixed, (float(diameter) if given else None)
    h, w = int(x.shape[0]), int(x.shape[1])
    side = int(LOOK_CROP / min(PROBE_SCALES))
    wy, wx = busiest_window(sample, -(-side // step))
    ch, cw = min(h, side), min(w, side)
    y0, x0 = min(wy * step, h - ch), min(wx * step, w - cw)
    region = _compute(x[y0 : y0 + ch, x0 : x0 + cw], client).astype(np.float32)
    return net._estimate_scale(net._scorer(region), region.shape, threshold)


# --------------------------------------------------------------------------- OME-Zarr
def pyramid_factors(height: int, width: int, block: int) -> list[int]:
    """Downsampling factors of the levels (1, 2, 4, …): until the larger side would drop
    below :data:`PYRAMID_MIN`, and never finer than a block can write on its own."""
    factors = [1]
    while max(height, width) // (factors[-1] * 2) >= PYRAMID_MIN and block % (factors[-1] * 2) == 0:
        factors.append(factors[-1] * 2)
    return factors


def create_ome_zarr(
    path: str | os.PathLike,
    shape: tuple[int, int],
    dtype,
    block: int,
    name: str,
    factors: list[int],
    kind: str,
) -> None:
    """An empty OME-Zarr image (NGFF 0.4 ``multiscales``, zarr format 2) with one
    array per pyramid level, chunks that blocks fill whole."""
    import zarr

    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for k, f in enumerate(factors):
        level = (-(-shape[0] // f), -(-shape[1] // f))
        c = min(OUTPUT_CHUNK, block // f)
        g.create_array(
            str(k),
            shape=level,
            chunks=(c, c),
            dtype=dtype,
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [{"type": "scale", "scale": [float(f), float(f)]}],
            }
        )
    g.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": name,
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": datasets,
            "type": "nearest",
        }
    ]
    if kind == "labels":
        g.attrs["image-label"] = {"version": "0.4"}
    from .. import __version__

    g.attrs[ZARR_MARK] = {"kind": kind, "version": str(__version__)}


def _write_levels(path: str, y0: int, x0: int, data: np.ndarray, factors: list[int]) -> None:
    """Write a block (origin ``y0, x0`` at full resolution) into every level."""
    import zarr

    for k, f in enumerate(factors):
        arr = zarr.open_array(f"{path}/{k}", mode="r+")  # fails if the output was removed
        sub = data[::f, ::f].astype(arr.dtype, copy=False)
        arr[y0 // f : y0 // f + sub.shape[0], x0 // f : x0 // f + sub.shape[1]] = sub


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
    tile_size: int
    context: int
    batch_size: int
    params: dict = field(hash=False)
    labels_path: str
    probability_path: str
    scratch_path: str
    factors: tuple[int, ...]
    scale: float = 1.0
    classes_path: str | None = None  # the class map, for a model with several object classes
    bound_heap: bool = False  # the task's process gives freed block buffers back (see below)


class _Window:
    """A window of the image read into memory, indexed in image coordinates (what
    :func:`~napari_unet.core.data.read_region` and the tiling expect)."""

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


def _predict_block(local: np.ndarray, i: int, j: int, spec: _Spec) -> int:
    """Task 1: predict block ``(i, j)``; write its probabilities and kept instances."""
    import zarr

    from .normalize import normalize
    from .postprocess import foreground_probability, instances_from_probabilities
    from .predict import plan_tiles, predict_probabilities

    if spec.bound_heap:
        bound_heap()
    net = _net(spec.model)
    cfg = net.config
    grid = spec.grid
    wy, wx = grid.window(i, j)
    src = _Window(np.asarray(local), wy, wx, (spec.height, spec.width, spec.channels))
    lo, hi = np.asarray(spec.lo, np.float32), np.asarray(spec.hi, np.float32)
    by, by1, bx, bx1 = grid.core(i, j)
    ry0, ry1, rx0, rx1 = grid.region(i, j)
    if spec.scale == 1.0:
        plan = plan_tiles(
            ry1 - ry0, rx1 - rx0, spec.tile_size, spec.context, cfg.size_multiple, origin=(ry0, rx0)
        )
        scores = predict_probabilities(
            net.inference_function(),
            src,
            cfg.n_outputs,
            plan,
            lambda t: normalize(t, lo, hi),
            spec.batch_size,
        )
        lab = instances_from_probabilities(scores, **spec.params)
    else:
        scores, lab = _scaled_scores(net, src, (ry0, ry1, rx0, rx1), lo, hi, spec)
    prob = foreground_probability(scores[by - ry0 : by1 - ry0, bx - rx0 : bx1 - rx0])
    _write_levels(spec.probability_path, by, bx, prob, list(spec.factors))
    del prob
    votes = None
    if spec.classes_path is not None:  # the class of each instance, by its pixels' vote
        from .postprocess import instance_classes

        votes = instance_classes(scores, lab)
    del scores  # one block's maps at a time: the probabilities go before the ids are made
    owned, kept = _owned(lab, (ry0, rx0), (by, by1, bx, bx1))
    del lab
    if votes is not None:
        np.save(_class_file(spec, i, j), votes[kept])
    scratch = zarr.open_array(spec.scratch_path, mode="r+")
    scratch[i, j, : owned.shape[0], : owned.shape[1]] = owned
    return int(owned.max(initial=0))


def _scaled_scores(net, src: _Window, region, lo, hi, spec: _Spec):
    """Probabilities and instances of a block + halo seen at ``spec.scale``: its whole
    window (the block's neighbourhood, which gives the tiles their context) is resized,
    predicted and labelled at the model's scale, and both are brought back to the
    image's pixels (as :meth:`UNet.predict` does for a whole image)."""
    from .normalize import normalize
    from .postprocess import instances_from_probabilities
    from .predict import predict_probabilities
    from .size import rescale_image, resize_to

    ry0, ry1, rx0, rx1 = region
    local = src.local
    scaled = rescale_image(np.asarray(local, np.float32), spec.scale)
    plan = net._plan(scaled.shape[0], scaled.shape[1], spec.tile_size, spec.context)
    s = predict_probabilities(
        net.inference_function(),
        scaled,
        net.config.n_outputs,
        plan,
        lambda t: normalize(t, lo, hi),
        spec.batch_size,
    )
    lab = instances_from_probabilities(s, **spec.params)
    h, w = local.shape[:2]
    a, b, c, d = ry0 - src.y0, ry1 - src.y0, rx0 - src.x0, rx1 - src.x0
    # ids may have gaps where an object fell outside the crop: _owned renumbers
    return resize_to(s, (h, w))[a:b, c:d], resize_to(lab, (h, w), labels=True)[a:b, c:d]


def _class_file(spec: _Spec, i: int, j: int) -> str:
    return str(Path(spec.scratch_path).parent / f"classes-{i}-{j}.npy")


def _owned(lab: np.ndarray, origin, core) -> tuple[np.ndarray, np.ndarray]:
    """The instances of ``lab`` whose centre lies in ``core``, renumbered ``1..k``, and
    their ids in ``lab`` (in the new order)."""
    n = int(lab.max(initial=0))
    if n == 0:
        return np.zeros(lab.shape, np.uint32), np.zeros(0, np.int64)
    by, by1, bx, bx1 = core
    idx = np.arange(1, n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # ids a crop left out: NaN, not kept
        centres = _centres(lab, n)
    cy, cx = centres[:, 0] + origin[0], centres[:, 1] + origin[1]
    keep = (cy >= by) & (cy < by1) & (cx >= bx) & (cx < bx1)
    new_ids = np.zeros(n + 1, np.uint32)
    new_ids[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return new_ids[lab], idx[keep]


def _centres(lab: np.ndarray, n: int, pixels: int = 1 << 16) -> np.ndarray:
    """``scipy.ndimage.center_of_mass(ones, lab, 1..n)`` as an ``(n, 2)`` array, the same
    values, a strip of about ``pixels`` pixels at a time (SciPy weighs a float64 copy of
    the whole label image per axis). Each sum is of whole numbers below 2**53, exact in
    float64 in any order, and divided by the pixel count as SciPy does; an id with no
    pixel is NaN."""
    count = np.zeros(n + 1, np.float64)
    sums = np.zeros((2, n + 1), np.float64)
    width = lab.shape[1]
    rows = max(1, pixels // max(width, 1))
    xs = np.arange(width, dtype=np.float64)
    for y0 in range(0, lab.shape[0], rows):
        flat = lab[y0 : y0 + rows].ravel().astype(np.intp)
        h = flat.size // max(width, 1)
        count += np.bincount(flat, minlength=n + 1)
        ys = np.repeat(np.arange(y0, y0 + h, dtype=np.float64), width)
        sums[0] += np.bincount(flat, weights=ys, minlength=n + 1)
        del ys
        sums[1] += np.bincount(flat, weights=np.tile(xs, h), minlength=n + 1)
    return (sums[:, 1:] / count[1:]).T


def _stitch_block(offsets: np.ndarray, i: int, j: int, spec: _Spec) -> int:
    """Task 2: the labels of block ``(i, j)`` from the kept instances around it."""
    import zarr

    grid = spec.grid
    by, by1, bx, bx1 = grid.core(i, j)
    out = np.zeros((by1 - by, bx1 - bx), np.uint32)
    classes = None if spec.classes_path is None else np.zeros(out.shape, np.uint16)
    scratch = zarr.open_array(spec.scratch_path, mode="r")
    ny, nx = grid.shape
    for ni in range(max(0, i - 1), min(ny, i + 2)):  # raster order: earlier blocks win
        for nj in range(max(0, j - 1), min(nx, j + 2)):
            ry0, ry1, rx0, rx1 = grid.region(ni, nj)
            y0, y1, x0, x1 = max(by, ry0), min(by1, ry1), max(bx, rx0), min(bx1, rx1)
            if y0 >= y1 or x0 >= x1:
                continue
            win = np.asarray(scratch[ni, nj, y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0])
            cur = out[y0 - by : y1 - by, x0 - bx : x1 - bx]
            put = (win > 0) & (cur == 0)
            cur[put] = win[put] + np.uint32(offsets[ni * nx + nj])
            if classes is not None:
                table = np.concatenate([[0], np.load(_class_file(spec, ni, nj))])
                classes[y0 - by : y1 - by, x0 - bx : x1 - bx][put] = table[win[put]]
    _write_levels(spec.labels_path, by, bx, out, list(spec.factors))
    if classes is not None:
        _write_levels(spec.classes_path, by, bx, classes, list(spec.factors))
    return int(out.max(initial=0))


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
        if layout.to_grey:
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
        A :class:`~napari_unet.core.unet.UNet`.
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
        :meth:`~napari_unet.core.unet.UNet.predict`, the image is seen at the scale where
        its objects match the model's, block by block, and the results come back at the
        image's pixels. At scale 1 the probabilities equal a whole-image pass.
    classes_path
        For a model with several object classes: a third folder to create, the class of
        every pixel's instance (by a vote of its pixels, as
        :func:`~napari_unet.core.postprocess.instance_classes`).
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

    from .axes import channel_layout
    from .normalize import percentile_range, percentiles
    from .unet import DEFAULT_CONTEXT, DEFAULT_TILE_SIZE

    cfg = net.config
    layout = channel_layout(tuple(np.shape(image)), cfg.input_channels, axes=axes)
    if len(layout.spatial_shape) != 2:
        raise UserInputError(
            f"a large image must be 2D (optionally with channels), got {tuple(np.shape(image))}"
        )
    h, w = (int(s) for s in layout.spatial_shape)
    tile = int(tile_size or DEFAULT_TILE_SIZE)
    ctx = DEFAULT_CONTEXT if context is None else int(context)
    grid = plan_blocks(h, w, block_size, halo, tile, ctx, cfg.size_multiple)

    x = as_channels_last(image, layout, grid.chunks)
    # normalisation: percentiles of a regular subsample, as for whole images
    step = max(1, int(np.ceil(np.sqrt(h * w / 4_000_000))))
    sample = _compute(x[::step, ::step], client)
    lo, hi = percentiles(sample, *percentile_range(net.normalization))

    params = net.postprocessing.to_dict()
    if threshold is not None:
        params["threshold"] = float(threshold)
    if min_size is not None:
        params["min_size"] = int(min_size)
    scale, measured = choose_scale(net, x, sample, step, diameter, params["threshold"], client)
    del sample
    if scale != 1.0:
        probe = net._plan(block_size, block_size, tile, ctx)
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
        from .io import class_map_dtype

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
        tile_size=tile,
        context=ctx,
        batch_size=int(batch_size),
        params=params,
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
    return LargeResult(n, ny * nx, h, w, float(scale), measured)


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
            from .io import settle_zarr_writes

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


def pyramid_levels(path: str | os.PathLike) -> list:
    """The levels of an OME-Zarr image as dask arrays (full resolution first)."""
    import dask.array as da
    import zarr

    g = zarr.open_group(str(path), mode="r")
    datasets = g.attrs["multiscales"][0]["datasets"]
    return [da.from_zarr(g[d["path"]]) for d in datasets]


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

    from .io import AtomicWrite, is_our_output, remove_folder

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
    )
