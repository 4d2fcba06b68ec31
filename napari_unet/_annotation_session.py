"""The annotation session: a prediction copied into an annotation, what was copied, and
the undo of the copy; the annotated pixel counts read as "ready to train" or not.

The Annotate widget drives it and keeps only the Qt parts (buttons, the replace/fill
question, notifications, background workers). Everything here works on plain arrays and
on the ``metadata`` dict of the layers handed in: numpy, with dask and zarr for the
on-disk annotation of a huge image, which is copied, backed up and restored block by
block (:mod:`napari_unet.core.training.huge_annotations`), never read whole.

What was copied is kept in the annotation layer's metadata (:data:`COPIED_KEY`): what the
prediction says where it was copied, so that Train can tell the pixels a person painted
(corrections, and strokes kept by "fill") from the copied ones (:func:`painted_pixels`).

napari glue without Qt: imports no napari, qtpy, magicgui or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.memory import is_lazy
from .core.training.huge_annotations import (
    Box,
    copy_labels,
    create_labels_zarr,
    prediction_to_annotation,
)
from .core.training.targets import mask_to_annotation

#: Layer-metadata key of the annotation as "use prediction as annotation" copied it.
COPIED_KEY = "napari_unet_copied"
#: How a prediction goes into an annotation that holds painted pixels: everything
#: replaced, or only the pixels not painted yet filled.
MODES = ("replace", "fill")
#: Files of a copy in the working folder of an on-disk annotation.
BACKUP_FILE = "before-copy.zarr"
REFERENCE_BACKUP_FILE = "before-copy-reference.zarr"
REFERENCE_FILE = "copied.zarr"


def painted_pixels(metadata: dict[str, Any], annotation: Any) -> Any:
    """Pixels of ``annotation`` a person painted: those that differ from what was copied
    from the prediction (``metadata[COPIED_KEY]``; ``None`` when nothing was copied:
    every pixel was painted). For an on-disk annotation (a huge image) a lazy map, read
    region by region."""
    copied = metadata.get(COPIED_KEY)
    if copied is None or np.shape(copied) != np.shape(annotation):
        return None
    if is_lazy(annotation) or is_lazy(copied):
        import dask.array as da

        return da.from_array(annotation, chunks=annotation.chunks) != da.from_array(
            copied, chunks=copied.chunks
        )
    return np.asarray(annotation) != np.asarray(copied)


def copy_mode(holds_labels: bool, mode: str | None, ask: Callable[[], str | None]) -> str | None:
    """The mode of a copy: ``"replace"`` into an annotation that holds nothing yet,
    else ``mode``, or what ``ask()`` answers when ``mode`` is ``None``; ``None`` when the
    answer is neither mode (the person cancelled)."""
    if not holds_labels:
        return "replace"
    if mode is None:
        mode = ask()
    return mode if mode in MODES else None


@dataclass
class Undo:
    """What a copy replaced, to put back: the annotation and its copied reference as
    they were before.

    Attributes
    ----------
    backup
        The annotation before the copy (an array in memory, or a zarr array in the
        working folder of an on-disk annotation).
    reference
        The copied reference before the copy (``None``: nothing had been copied).
    reference_file
        On disk: the zarr array the reference lives in, into which ``reference`` is
        copied back (``None`` in memory).
    """

    backup: Any
    reference: Any | None = None
    reference_file: Any | None = None

    def blockwise(self, target: Any) -> bool:
        """Whether putting back into ``target`` goes block by block (on disk, in the
        background)."""
        return is_lazy(self.backup) and is_lazy(target) and self.reference_file is not None

    def put_back(self, target: Any) -> tuple[Any, Any | None]:
        """Restore: ``(data, reference)``, the annotation the layer shows again (on
        disk: ``target``, written back block by block) and the copied reference to
        remember (``None``: none)."""
        if not self.blockwise(target):
            return self.backup, self.reference
        copy_labels(self.backup, target)  # only the blocks that hold labels in either
        if self.reference is None:
            return target, None
        copy_labels(self.reference, self.reference_file)
        return target, self.reference_file


@dataclass
class Copy:
    """One prediction copied into an annotation.

    Attributes
    ----------
    data
        The annotation after the copy: a new array in memory, or the annotation handed
        in, written in place (block by block).
    reference
        What the prediction says where it was copied (elsewhere: the reference before,
        or 0 where nothing had been copied), remembered as :data:`COPIED_KEY`.
    undo
        What puts the annotation back as it was (``None``: an on-disk annotation with
        no working folder to keep a backup in).
    mode
        ``"replace"`` or ``"fill"``.
    """

    data: Any
    reference: Any | None
    undo: Undo | None
    mode: str


def copy_prediction(
    labels: Any,
    annotation: Any,
    mode: str = "replace",
    classes: Any | None = None,
    *,
    reference: Any | None = None,
    region: Box | None = None,
    folder: str | Path | None = None,
    blockwise: bool = False,
    axes: str | None = None,
) -> Copy:
    """Copy an instance prediction into an annotation (1 = background, 2 = object; with a
    class map ``classes``: 1 + class on objects).

    Parameters
    ----------
    labels, classes
        The prediction's instances and its class map (or ``None``), of the annotation's
        shape.
    annotation
        The annotation's data. In memory it is left as it is (the result is a new
        array); block by block it is written in place.
    mode
        ``"replace"`` (every pixel) or ``"fill"`` (only the pixels not painted yet).
    reference
        The copied reference of an earlier copy (``metadata[COPIED_KEY]``), kept outside
        ``region`` and put back by the undo.
    region
        ``(y0, y1, x0, x1)``: copy only there (block by block only).
    folder
        The working folder of an on-disk annotation: its backup and copied reference are
        written there.
    blockwise
        Copy block by block (a huge, lazy prediction or annotation; 2D only); also when
        a ``region`` is given.
    axes
        The letters of the prediction's axes (``"ZYX"``, ``"TYX"``, …): with a Z axis,
        the surfaces where two instances touch in 3D are left unannotated (see
        :func:`~napari_unet.core.training.targets.mask_to_annotation`); else each plane's
        lines.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'replace' or 'fill', not {mode!r}")
    if reference is not None and np.shape(reference) != np.shape(annotation):
        reference = None  # of another annotation
    if blockwise or region is not None:
        return _copy_blockwise(labels, annotation, mode, classes, reference, region, folder)
    old = np.asarray(annotation)
    # a model with several object classes: each object is copied as its class's label
    new = mask_to_annotation(
        np.asarray(labels), None if classes is None else np.asarray(classes), axes=axes
    )
    predicted = new
    if mode == "fill" and old.any():
        new = np.where(old > 0, old, new).astype(new.dtype)
    if new.dtype != np.uint8 and int(new.max(initial=0)) <= np.iinfo(np.uint8).max:
        new = new.astype(np.uint8)
    # what the prediction says (not the merge of "fill"): strokes kept count as painted
    # where they differ from it
    return Copy(new, predicted.astype(new.dtype), Undo(old.copy(), reference), mode)


def _copy_blockwise(labels, annotation, mode, classes, reference, region, folder) -> Copy:
    shape = tuple(int(s) for s in annotation.shape)
    if not is_lazy(annotation):  # in memory (a lazy prediction): backups in memory too
        backup = np.array(annotation)
        copied = (
            np.zeros(shape, annotation.dtype)
            if reference is None or is_lazy(reference)
            else np.array(reference)
        )
        prediction_to_annotation(labels, annotation, mode, classes, box=region)
        prediction_to_annotation(labels, copied, "replace", classes, box=region)
        return Copy(annotation, copied, Undo(backup, reference), mode)
    if folder is None:  # nowhere to keep a backup: copied, but neither undone nor told
        prediction_to_annotation(labels, annotation, mode, classes, box=region)
        return Copy(annotation, None, None, mode)
    folder = Path(folder)
    dtype = annotation.dtype

    def new_file(name: str):
        return create_labels_zarr(folder / name, shape, dtype=dtype, overwrite=True)

    before = None
    if reference is not None and is_lazy(reference):
        before = new_file(REFERENCE_BACKUP_FILE)
        copy_labels(reference, before)
    backup = new_file(BACKUP_FILE)
    copy_labels(annotation, backup)
    prediction_to_annotation(labels, annotation, mode, classes, box=region)
    copied = new_file(REFERENCE_FILE)  # replaces the earlier reference, kept in `before`
    if before is not None:
        copy_labels(before, copied)
    prediction_to_annotation(labels, copied, "replace", classes, box=region)
    return Copy(annotation, copied, Undo(backup, before, copied), mode)


def remember(metadata: dict[str, Any], reference: Any | None) -> None:
    """Keep ``reference`` as what was copied into the annotation (``None``: forget)."""
    if reference is None:
        metadata.pop(COPIED_KEY, None)
    else:
        metadata[COPIED_KEY] = reference


class AnnotationSession:
    """The copies of predictions into the annotation layers of one viewer, and their
    undo ("Undo copy" puts back every annotation as it was before its last copy).

    Layers are named by their name; their data and metadata are handed in.
    """

    def __init__(self) -> None:
        self._undo: dict[str, Undo] = {}

    @property
    def can_undo(self) -> bool:
        """Whether a copy can be undone."""
        return bool(self._undo)

    def record(self, name: str, metadata: dict[str, Any], copy: Copy) -> None:
        """A copy into the annotation layer ``name`` (with ``metadata``) is done: remember
        what was copied and how to undo it."""
        remember(metadata, copy.reference)
        if copy.undo is None:
            self._undo.pop(name, None)  # an earlier backup no longer fits
        else:
            self._undo[name] = copy.undo

    def take_undo(self) -> dict[str, Undo]:
        """The undo of every annotation's last copy, by layer name; the session forgets
        them (one level of undo)."""
        undo, self._undo = self._undo, {}
        return undo


# ---------------------------------------------------------------------- counts
@dataclass(frozen=True)
class CountTable:
    """The annotated pixels of every image, as the Annotate widget lists them."""

    headers: list[str]
    rows: list[list[str]]
    background: int  # background pixels (label 1) of every image
    objects: int  # object pixels (labels ≥ 2) of every image

    @property
    def readiness(self) -> str:
        """Whether the images can train, in words."""
        if not self.rows:
            return "no annotation layer yet: click 'Create annotation layer'"
        if self.background == 0 or self.objects == 0:
            missing = "background (1)" if self.background == 0 else "object (2)"
            return f"paint some {missing} pixels before training"
        return f"{len(self.rows)} image(s) ready to train"


def count_table(counts: dict[str, dict[int, int]]) -> CountTable:
    """The table of ``counts`` (pixels per annotation label, by image name): background,
    object, and one column per further object class painted anywhere."""
    extra = sorted({v for c in counts.values() for v in c if v > 2})
    headers = ["image", "background px", "object px"] + [f"class {v - 1} ({v}) px" for v in extra]
    rows = [[name] + [f"{c.get(v, 0):,}" for v in [1, 2] + extra] for name, c in counts.items()]
    background = sum(c.get(1, 0) for c in counts.values())
    objects = sum(n for c in counts.values() for v, n in c.items() if v >= 2)
    return CountTable(headers, rows, background, objects)
