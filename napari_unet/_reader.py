"""napari readers: open a training-set folder as it was saved — images, their
annotation layers (with the annotation look) and the model, which becomes the current
model of the widgets (loaded lazily, when first used); napari-unet's OME-Zarr
predictions; and slide scanners' files (.svs, .ndpi, .scn, .bif) as lazy pyramids.
Imports napari's Qt-free glue only, never the widgets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._layers import (
    ANNOTATION_KEYS,
    DIAMETER_KEY,
    IMAGE_KEYS,
    TYPED_DIAMETER,
    annotation_layer_kwargs,
    annotation_name,
    axes_layer_kwargs,
)
from ._state import MODEL_METADATA_KEY, MODEL_NAME_METADATA_KEY
from .core.files.training_sets import is_training_set, read_training_set


def get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[tuple]] | None:
    """Claim ``path`` only when it is a napari-unet training-set folder (or its index)."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not is_training_set(path):
        problem = _index_problem(path)
        return None if problem is None else _refuse(problem)
    return read_training_set_layers


def _index_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a training-set index that cannot be read (``None`` when
    ``path`` does not try to be a training set: that is left to other readers)."""
    import json

    from .core.files.training_sets import FORMAT, INDEX_NAME

    p = Path(path)
    index = p if p.name == INDEX_NAME else p / INDEX_NAME
    if not index.is_file():
        return None
    where = f"{index.parent.name!r}"
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except OSError as e:
        return f"{where}: its {INDEX_NAME} cannot be read ({e.strerror or e}); check the file"
    except ValueError:
        return (
            f"{where}: its {INDEX_NAME} is damaged (not valid JSON); save the training set "
            "again from napari-unet, or restore the file from a backup"
        )
    kind = content.get("format") if isinstance(content, dict) else None
    return (
        f"{where}: its {INDEX_NAME} is not a napari-unet training-set index (format "
        f"{str(kind)[:40]!r}, expected {FORMAT!r}); open the folder that napari-unet's "
        "'Save training set…' wrote"
    )


def _refuse(problem: str) -> Callable[[Any], list[tuple]]:
    """A reader that tells what is wrong instead of napari's "reader refused the file"."""
    from .core import UserInputError

    def read(path: Any) -> list[tuple]:
        raise UserInputError(f"cannot open the training set {problem}")

    return read


def read_training_set_layers(path: str | os.PathLike | list) -> list[tuple]:
    """The layers of a training set: each image, then its ``<image> annotation``."""
    if isinstance(path, list | tuple):
        path = path[0]
    ts = read_training_set(path)
    model = str(ts.model_path.resolve()) if ts.model_path is not None else None
    layers: list[tuple] = []
    for e in ts.entries:
        meta = {k: v for k, v in e.image_props.items() if k in IMAGE_KEYS}
        meta["name"] = e.name
        meta["metadata"] = {"napari_unet_training_set": str(ts.folder)}
        typed = e.image_props.get(TYPED_DIAMETER)  # the width typed in Segment: Train's too
        if isinstance(typed, int | float) and not isinstance(typed, bool) and typed >= 0:
            meta["metadata"][DIAMETER_KEY] = float(typed)
        if model:
            meta["metadata"][MODEL_METADATA_KEY] = model
            meta["metadata"][MODEL_NAME_METADATA_KEY] = ts.model_name or Path(model).stem
        layers.append((e.image, meta, "image"))
        ann_meta = annotation_layer_kwargs()
        ann_meta.update({k: v for k, v in e.annotation_props.items() if k in ANNOTATION_KEYS})
        ann_meta["name"] = annotation_name(e.name)
        layers.append((e.annotation, ann_meta, "labels"))
    return layers


def get_zarr_reader(path: str | os.PathLike | list) -> Callable[[Any], list[tuple]] | None:
    """Claim an OME-Zarr folder only when napari-unet wrote it (``predict --format zarr``,
    ``UNet.predict_dask``): labels open as a Labels layer, probabilities in the look of
    the Segment widget, both as lazy pyramids. An OME-Zarr image whose ``multiscales``
    name a Z or T axis opens with its z-step as ``scale`` and its axis labels
    (:func:`read_image_layers`). Other zarr folders are left to napari."""
    from .core.files.outputs import zarr_written_by_us

    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not str(path).lower().rstrip("/\\").endswith(".zarr"):
        return None
    if zarr_written_by_us(path):
        return read_prediction_zarr
    return read_image_layers if _names_stack_axes(path) else None


def _names_stack_axes(path: str | os.PathLike) -> bool:
    """Whether an OME-Zarr image's ``multiscales`` say which axes are Z or T (other
    zarr folders are left to napari)."""
    from .core.files.image_axes import read_file_axes

    found = read_file_axes(path)
    return bool(found.axes) and any(a in "TZ" for a in found.axes)


def read_image_layers(path: str | os.PathLike | list) -> list[tuple]:
    """An image file as one Image layer whose ``scale`` and ``axis_labels`` follow its
    axes (:func:`napari_unet.core.files.image_axes.image_axes`: Z and T from ImageJ, OME
    or OME-Zarr metadata, else the shape; the z-step on the Z axis), so a volume looks
    right in 3D. TIFF is memory-mapped or read lazily, zarr opened lazily; channels
    become an RGB layer (3 or 4, last) or one layer each."""
    import numpy as np

    from .core.files.image_axes import image_axes
    from .core.files.images import image_info, image_stem, open_lazy, read_image

    path = Path(path[0] if isinstance(path, list | tuple) else path)
    shape, _ = image_info(path)
    axes = image_axes(path, shape=shape)
    data = open_lazy(path) if path.suffix.lower() == ".zarr" else read_image(path)
    if path.suffix.lower() == ".zarr":
        import dask.array as da

        data = da.from_zarr(data) if hasattr(data, "chunks") else np.asarray(data)
    meta: dict[str, Any] = {"name": image_stem(path), "metadata": {"napari_unet_axes": axes.axes}}
    c = axes.channel_axis
    if c is None:
        meta.update(axes_layer_kwargs(axes))
    elif c == len(shape) - 1 and shape[c] in (3, 4):
        meta.update(axes_layer_kwargs(axes), rgb=True)
    else:
        meta.update(axes_layer_kwargs(axes, channel_layers=shape[c]), channel_axis=c)
    return [(data, meta, "image")]


def get_slide_reader(path: str | os.PathLike | list) -> Callable[[Any], list[tuple]] | None:
    """Claim a slide scanner's file (Aperio .svs, Hamamatsu .ndpi, Leica .scn, Ventana
    .bif), which napari cannot open itself: it opens as one lazy multiscale image."""
    from .core.files.images import SLIDE_SUFFIXES

    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    return read_slide_layers if str(path).lower().endswith(SLIDE_SUFFIXES) else None


def read_slide_layers(path: str | os.PathLike | list) -> list[tuple]:
    """A slide as one Image layer over its pyramid (read only where napari looks; colour
    slides as RGB), named after the file. A file that cannot be read says why in one
    line."""
    from .core.files.images import image_stem, slide_levels

    path = Path(path[0] if isinstance(path, list | tuple) else path)
    levels = slide_levels(path)
    shape = levels[0].shape
    meta: dict[str, Any] = {
        "name": image_stem(path),
        "rgb": len(shape) == 3 and shape[-1] in (3, 4),
        "multiscale": len(levels) > 1,
    }
    return [(levels if len(levels) > 1 else levels[0], meta, "image")]


def read_prediction_zarr(path: str | os.PathLike | list) -> list[tuple]:
    """One lazy multiscale layer for a napari-unet OME-Zarr output."""
    import json

    from .core.files.outputs import ZARR_MARK
    from .core.prediction.blockwise import pyramid_levels

    path = Path(path[0] if isinstance(path, list | tuple) else path)
    attrs = json.loads((path / ".zattrs").read_text())
    kind = attrs[ZARR_MARK].get("kind")
    name = attrs["multiscales"][0].get("name") or path.name
    if kind == "annotation":
        return _annotation_copy(path, name)
    levels = pyramid_levels(path)
    multiscale = len(levels) > 1
    data = levels if multiscale else levels[0]
    if kind == "labels":
        return [(data, {"name": name, "multiscale": multiscale}, "labels")]
    look = {"colormap": "magma", "blending": "additive", "contrast_limits": (0.0, 1.0)}
    return [(data, {"name": name, "multiscale": multiscale, **look}, "image")]


def _annotation_copy(path: Path, name: str) -> list[tuple]:
    """A saved annotation (Annotate's 'Save annotation…') as an annotation layer: a
    writable copy in a working folder of its own (only its painted chunks are copied),
    so painting never changes the saved folder until it is saved again."""
    from ._layers import WORK_KEY
    from ._workfolders import new_work_folder, unpin
    from .core.training.huge_annotations import open_labels_copy

    folder = new_work_folder(name)
    data = open_labels_copy(path, folder)
    meta = annotation_layer_kwargs()
    meta["metadata"] = {**meta["metadata"], WORK_KEY: str(folder)}
    unpin(folder)  # from here on it lives as long as a layer shows it
    return [(data, {**meta, "name": name}, "labels")]
