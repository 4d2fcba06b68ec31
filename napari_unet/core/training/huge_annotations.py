"""Training pairs from huge images: the annotated regions of a chunked (dask, zarr or
any chunked array-like) image and its labels, read region by region.

A person annotates a few regions of a 16k² image; training needs those regions and a
margin around them (for the patches and their augmentation), never the whole image.
:func:`annotated_boxes` finds them chunk by chunk (a zarr annotation written with its
empty chunks left out is found from the chunks stored; a dask one by a per-chunk
reduction), and :func:`region_pairs` turns a lazy pair into in-memory pairs, one per
region, that share one normalisation taken from the regions read. Memory is bounded by
the annotated area (plus margins), not by the image size.

numpy + scipy only; dask and zarr are imported only when the arrays are theirs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import UserInputError
from ..memory import is_lazy  # the type question, answered in one place

#: Edge of the blocks that copies and conversions of whole label images go by (a
#: multiple of the annotation chunks of :func:`create_labels_zarr`).
BLOCK = 2048
#: Box: ``(y0, y1, x0, x1)``, half-open, in pixels.
Box = tuple[int, int, int, int]


def _is_dask(array) -> bool:
    return type(array).__module__.startswith("dask.")


def _chunk_edges(array) -> tuple[list[int], list[int]]:
    """Chunk boundaries of the last two axes (Y, X) of a chunked array."""
    chunks = array.chunks
    shape = array.shape
    edges = []
    for axis in (-2, -1):
        c = chunks[axis]
        if isinstance(c, tuple | list):  # dask: sizes of every chunk
            e = [0, *np.cumsum(c).tolist()]
        else:  # zarr, h5py: one size
            e = list(range(0, shape[axis], int(c))) + [shape[axis]]
        edges.append([int(v) for v in e])
    return edges[0], edges[1]


def _bbox(block: np.ndarray, y0: int, x0: int) -> Box | None:
    """The box of the non-zero pixels of ``block`` (placed at ``y0, x0``)."""
    rows = np.flatnonzero(block.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(block.any(axis=0))
    return (y0 + int(rows[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1)


def _block_boxes(block: np.ndarray) -> np.ndarray:
    """``(1, 1, 4)``: the non-zero box of one dask block in its own coordinates
    (``-1`` everywhere when it has none)."""
    b = _bbox(np.asarray(block) != 0, 0, 0)
    return np.array(b if b is not None else (-1, -1, -1, -1), np.int64).reshape(1, 1, 4)


def _dask_boxes(labels) -> Iterator[tuple[int, int, Box]]:
    """``(chunk row, chunk column, box)`` of every dask chunk holding a label: one
    reduction per chunk, computed together (a few integers per chunk come back)."""
    import dask.array as da

    if len(labels.shape) != 2:
        raise ValueError("expected 2D labels")
    ny, nx = len(labels.chunks[0]), len(labels.chunks[1])
    boxes = da.map_blocks(
        _block_boxes,
        labels,
        dtype=np.int64,
        chunks=((1,) * ny, (1,) * nx, (4,)),
        new_axis=2,
        meta=np.empty((0, 0, 0), np.int64),
    ).compute()
    ey, ex = _chunk_edges(labels)
    for i, j in zip(*np.nonzero(boxes[..., 0] >= 0)):
        b = boxes[i, j]
        yield (
            int(i),
            int(j),
            (ey[i] + int(b[0]), ey[i] + int(b[1]), ex[j] + int(b[2]), ex[j] + int(b[3])),
        )


def _stored_chunks(labels) -> set[tuple[int, int]] | None:
    """Grid positions of the chunks a zarr (v3 library) array has in its store, when
    the chunks not stored read as 0; ``None`` when that cannot be told."""
    try:
        import zarr
    except ImportError:
        return None
    if not isinstance(labels, zarr.Array) or len(labels.shape) != 2:
        return None
    if labels.fill_value is not None and labels.fill_value != 0:
        return None  # an absent chunk would be all labels
    try:
        from zarr.core.array import _shards_initialized
        from zarr.core.sync import sync

        keys = set(sync(_shards_initialized(labels._async_array)))
        grid = labels.shards or labels.chunks
        ny, nx = (math.ceil(s / c) for s, c in zip(labels.shape, grid))
        encode = labels.metadata.encode_chunk_key
        return {(i, j) for i in range(ny) for j in range(nx) if encode((i, j)) in keys}
    except Exception:  # noqa: BLE001 - another zarr: read every chunk instead
        return None


def _chunked_boxes(labels) -> Iterator[tuple[int, int, Box]]:
    """``(chunk row, chunk column, box)`` of every chunk of a 2D chunked array-like
    that holds a label, reading one chunk (zarr: one stored chunk) at a time."""
    stored = _stored_chunks(labels)
    if stored is not None:
        grid = labels.shards or labels.chunks
        ey = list(range(0, labels.shape[0], grid[0])) + [labels.shape[0]]
        ex = list(range(0, labels.shape[1], grid[1])) + [labels.shape[1]]
        cells = sorted(stored)
    else:
        ey, ex = _chunk_edges(labels)
        cells = [(i, j) for i in range(len(ey) - 1) for j in range(len(ex) - 1)]
    for i, j in cells:
        block = np.asarray(labels[ey[i] : ey[i + 1], ex[j] : ex[j + 1]]) != 0
        b = _bbox(block, ey[i], ex[j])
        if b is not None:
            yield i, j, b


def _label_blocks(labels) -> Iterator[np.ndarray]:
    """The chunks of a 2D chunked ``labels`` array that may hold labels, one at a time
    (zarr written without its empty chunks: the stored ones only)."""
    stored = _stored_chunks(labels)
    if stored is not None:
        grid = labels.shards or labels.chunks
        for i, j in sorted(stored):
            y, x = i * grid[0], j * grid[1]
            yield np.asarray(labels[y : y + grid[0], x : x + grid[1]])
        return
    ey, ex = _chunk_edges(labels)
    for i in range(len(ey) - 1):
        for j in range(len(ex) - 1):
            yield np.asarray(labels[ey[i] : ey[i + 1], ex[j] : ex[j + 1]])


def any_label(labels) -> bool:
    """Whether a 2D chunked ``labels`` array holds a non-zero pixel (stops at the first
    chunk that does)."""
    if _is_dask(labels):
        return bool(labels.any().compute())
    return any(block.any() for block in _label_blocks(labels))


def label_counts(labels) -> dict[int, int]:
    """How many pixels carry each non-zero label of a 2D chunked ``labels`` array
    (as :func:`~napari_unet.core.training.targets.annotated_pixel_counts`), chunk by chunk."""
    from .targets import annotated_pixel_counts

    if _is_dask(labels):
        import dask

        blocks = labels.to_delayed().ravel().tolist()
        parts = dask.compute(*[dask.delayed(annotated_pixel_counts)(b) for b in blocks])
    else:
        parts = [annotated_pixel_counts(b) for b in _label_blocks(labels)]
    total: dict[int, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def create_labels_zarr(
    path, shape: tuple[int, int], chunk: int = 512, dtype="uint8", overwrite: bool = False
):
    """A new, empty zarr array of labels at ``path`` (a folder): 0 everywhere, chunks of
    ``chunk``², empty chunks never stored, so it costs disk only where labels are and
    :func:`annotated_boxes` reads only those. napari paints into it in place."""
    import zarr

    return zarr.create_array(
        str(path),
        shape=tuple(int(s) for s in shape),
        chunks=(min(chunk, int(shape[0])), min(chunk, int(shape[1]))),
        dtype=dtype,
        fill_value=0,
        config={"write_empty_chunks": False},
        overwrite=overwrite,
    )


def _grow(box: Box, margin: int, shape: tuple[int, int]) -> Box:
    y0, y1, x0, x1 = box
    return (
        max(0, y0 - margin),
        min(shape[0], y1 + margin),
        max(0, x0 - margin),
        min(shape[1], x1 + margin),
    )


def _overlap(a: Box, b: Box) -> bool:
    """Whether two boxes overlap or touch (one stroke across a chunk border is one)."""
    return a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))


def merge_boxes(boxes: list[Box]) -> list[Box]:
    """Boxes that overlap or touch replaced by the box around them, until none does."""
    out = list(boxes)
    changed = True
    while changed:
        changed = False
        merged: list[Box] = []
        for b in out:
            for k, m in enumerate(merged):
                if _overlap(b, m):
                    merged[k] = _union(b, m)
                    changed = True
                    break
            else:
                merged.append(b)
        out = merged
    return sorted(out)


def annotated_boxes(labels, margin: int = 0) -> list[Box]:
    """Boxes around the labelled (non-zero) pixels of a 2D chunked ``labels`` array,
    grown by ``margin`` (clipped to the array) and merged where they overlap.

    Only one chunk is in memory at a time (dask: a per-chunk reduction; zarr written
    without its empty chunks: only the chunks stored are read). A box is the extent of
    the labels of the chunks it joins, so strokes far apart give separate boxes.
    """
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    found = _dask_boxes(labels) if _is_dask(labels) else _chunked_boxes(labels)
    return merge_boxes([_grow(b, margin, shape) for _, _, b in found])


def region_pairs(
    pair, channels: int, margin: int, normalization: dict | None = None, stains: bool = False
) -> list:
    """A lazy 2D :class:`~napari_unet.core.training.samples.TrainingPair` as in-memory pairs, one
    per annotated region (with ``margin`` pixels of image around it; ``stains``: a
    stained slide read as its haematoxylin, decided on the whole image).

    The regions share one normalisation: the percentiles of the model's
    ``normalization`` over the pixels read (``TrainingPair.intensity``), so that a
    region of background and a region of crowded nuclei are scaled alike.

    Raises
    ------
    UserInputError
        The labels are not 2D (a stack), or nothing is labelled.
    """
    import dataclasses

    from ..axes import channel_layout
    from ..normalize import Normalizer

    labels = pair.labels
    if len(labels.shape) != 2:
        raise UserInputError(
            f"{pair.name}: a huge (chunked) image trains from 2D labels; got "
            f"{len(labels.shape)}D ({tuple(labels.shape)})"
        )
    layout = channel_layout(
        tuple(np.shape(pair.image)), channels, name=pair.name, image=pair.image if stains else None
    )
    if layout.spatial_shape != tuple(labels.shape):
        raise UserInputError(
            f"{pair.name}: image shape {tuple(np.shape(pair.image))} and {pair.kind} shape "
            f"{tuple(labels.shape)} differ; the {pair.kind} must cover the image pixel for pixel"
        )
    boxes = annotated_boxes(labels, margin)
    if not boxes:
        raise UserInputError(f"{pair.name}: nothing is labelled in the {pair.kind}")
    out = []
    for y0, y1, x0, x1 in boxes:
        ys, xs = slice(y0, y1), slice(x0, x1)
        lab = np.asarray(labels[ys, xs])
        painted = None if pair.painted is None else np.asarray(pair.painted[ys, xs], bool)
        out.append(
            dataclasses.replace(
                pair,
                image=layout.read(pair.image, (), ys, xs),
                painted=painted,
                name=f"{pair.name}[{y0}:{y1}, {x0}:{x1}]",
                **{pair.kind: lab},
            )
        )
    # one normalisation for all regions of the image, from the pixels read
    flat = np.concatenate([p.image.reshape(-1, p.image.shape[-1]) for p in out])
    shared = Normalizer.of(normalization).intensity(flat[:, None, :])
    for p in out:
        p.intensity = shared
    return out


#: ``kind`` in the napari-unet mark of a saved annotation (an OME-Zarr labels image).
ANNOTATION_KIND = "annotation"


def save_labels_zarr(labels, path, name: str = "annotation", replace: bool = False):
    """Write a 2D labels array (an annotation) to ``path`` as a one-level OME-Zarr
    labels image marked as napari-unet's (its reader opens it as an annotation again),
    chunk by chunk: only the chunks that hold labels are read and written. The write is
    atomic (a hidden folder renamed into place). Returns the path.

    Raises
    ------
    UserInputError
        ``path`` exists and napari-unet did not write it (``replace`` replaces one it
        wrote, never another).
    """
    from pathlib import Path

    from ..files.ome_zarr import OUTPUT_CHUNK, create_ome_zarr
    from ..files.outputs import AtomicWrite, is_our_output

    path = Path(path)
    if path.suffix.lower() != ".zarr":
        raise UserInputError(f"{path.name}: an annotation is saved as a .zarr folder")
    if path.exists() and not (replace and is_our_output(path)):
        raise UserInputError(f"{path} already exists; choose another name")
    import zarr

    shape = (int(labels.shape[0]), int(labels.shape[1]))
    dtype = np.dtype(labels.dtype)
    with AtomicWrite(path, folder=True) as (tmp,):
        create_ome_zarr(tmp, shape, dtype, OUTPUT_CHUNK, name, [1], ANNOTATION_KIND)
        out = zarr.open_array(str(tmp / "0"), mode="r+")
        boxes = annotated_boxes(labels) if is_lazy(labels) else [(0, shape[0], 0, shape[1])]
        for y0, y1, x0, x1 in boxes:
            block = np.asarray(labels[y0:y1, x0:x1])
            if block.any():
                out[y0:y1, x0:x1] = block
    return path


def open_labels_copy(path, folder):
    """A writable copy, in ``folder``, of a labels image saved by
    :func:`save_labels_zarr` (only its stored chunks are copied): painting it never
    changes the saved file until it is saved again."""
    import zarr

    source = zarr.open_array(f"{path}/0", mode="r")
    copy = create_labels_zarr(f"{folder}/annotation.zarr", source.shape, dtype=source.dtype)
    for y0, y1, x0, x1 in annotated_boxes(source):
        copy[y0:y1, x0:x1] = np.asarray(source[y0:y1, x0:x1])
    return copy


def _grid(shape: tuple[int, int], block: int) -> Iterator[Box]:
    for y in range(0, shape[0], block):
        for x in range(0, shape[1], block):
            yield y, min(y + block, shape[0]), x, min(x + block, shape[1])


def copy_labels(source, target, block: int | None = None) -> None:
    """``target[:] = source`` for 2D chunked arrays, block by block (only the blocks
    that hold labels in either are read and written)."""
    block = int(block or BLOCK)
    shape = (int(target.shape[0]), int(target.shape[1]))
    boxes = set(annotated_boxes(source)) | set(annotated_boxes(target)) if is_lazy(target) else None
    for y0, y1, x0, x1 in _grid(shape, block):
        if boxes is not None and not any(_overlap((y0, y1, x0, x1), b) for b in boxes):
            continue
        target[y0:y1, x0:x1] = np.asarray(source[y0:y1, x0:x1])


def prediction_to_annotation(
    labels,
    annotation,
    mode: str = "replace",
    classes=None,
    block: int | None = None,
    box: Box | None = None,
) -> None:
    """Write :func:`~napari_unet.core.training.targets.mask_to_annotation` of a 2D instance
    ``labels`` image into the 2D ``annotation`` array, block by block: chunked (dask,
    zarr) arrays of a huge image, never read whole. The result is the same as on the
    whole image (each block is converted with a one-pixel rim, so the line where two
    instances touch is found across block borders too).

    ``mode`` ``"replace"`` writes every pixel; ``"fill"`` keeps the pixels already
    labelled in ``annotation``. ``box`` ``(y0, y1, x0, x1)`` limits the copy to a region
    (the rest of ``annotation`` is left as it is). ``block`` (default :data:`BLOCK`) is best a multiple of
    the annotation's chunks.
    """
    from .targets import mask_to_annotation

    if mode not in ("replace", "fill"):
        raise ValueError(f"mode must be 'replace' or 'fill', not {mode!r}")
    shape = (int(annotation.shape[0]), int(annotation.shape[1]))
    if tuple(labels.shape) != shape or (classes is not None and tuple(classes.shape) != shape):
        raise UserInputError(
            f"the prediction {tuple(labels.shape)} and the annotation {shape} differ in shape"
        )
    by0, by1, bx0, bx1 = box if box is not None else (0, shape[0], 0, shape[1])
    for y0, y1, x0, x1 in _grid(shape, int(block or BLOCK)):
        y0, y1, x0, x1 = max(y0, by0), min(y1, by1), max(x0, bx0), min(x1, bx1)
        if y0 >= y1 or x0 >= x1:
            continue
        ya, yb, xa, xb = (
            max(0, y0 - 1),
            min(shape[0], y1 + 1),
            max(0, x0 - 1),
            min(shape[1], x1 + 1),
        )
        lab = np.asarray(labels[ya:yb, xa:xb])
        cls = None if classes is None else np.asarray(classes[ya:yb, xa:xb])
        new = mask_to_annotation(lab, cls)[
            y0 - ya : y0 - ya + (y1 - y0), x0 - xa : x0 - xa + (x1 - x0)
        ]
        if mode == "fill":
            old = np.asarray(annotation[y0:y1, x0:x1])
            new = np.where(old > 0, old, new)
        annotation[y0:y1, x0:x1] = new.astype(annotation.dtype, copy=False)
