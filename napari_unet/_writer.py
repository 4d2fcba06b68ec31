"""napari writer: save images, their annotation layers and a model as a training-set
folder (see :mod:`napari_unet.core.files.training_sets`).

The model to save is handed in (:func:`write_layers`); only the npe2 entry point, whose
signature napari fixes, looks it up: the current model of the current viewer.
Imports napari's Qt-free glue only, never the widgets.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._layers import (
    ANNOTATION,
    ANNOTATION_KEYS,
    DIAMETER_KEY,
    IMAGE_KEYS,
    TYPED_DIAMETER,
    props_from_meta,
)
from .core.files.training_sets import Entry, write_training_set


def _level0(data: Any) -> np.ndarray:
    if isinstance(data, list | tuple):  # multiscale
        data = data[0]
    return np.asarray(data)


def entries_from_layer_data(layer_data: list[tuple]) -> list[Entry]:
    """Pair every image with the labels layer called ``<image> annotation``."""
    images = {meta["name"]: (data, meta) for data, meta, kind in layer_data if kind == "image"}
    entries = []
    for data, meta, kind in layer_data:
        name = meta.get("name", "")
        if kind != "labels" or not name.endswith(ANNOTATION):
            continue
        base = name[: -len(ANNOTATION)]
        if base not in images:
            continue
        img, img_meta = images[base]
        image_props = props_from_meta(img_meta, IMAGE_KEYS)
        typed = (img_meta.get("metadata") or {}).get(DIAMETER_KEY)
        if isinstance(typed, int | float):  # the width typed in Segment: Train's too
            image_props[TYPED_DIAMETER] = float(typed)
        entries.append(
            Entry(
                base,
                _level0(img),
                np.asarray(data),
                image_props,
                props_from_meta(meta, ANNOTATION_KEYS),
            )
        )
    return entries


def model_of(state: Any) -> dict[str, Any]:
    """The current model of ``state`` (a :class:`~napari_unet._state.ModelState`, or
    ``None``: no model) as :func:`~napari_unet.core.files.training_sets.write_training_set`'s
    arguments: the network in memory, else its file."""
    if state is None:
        return {}
    model_file = state.path if state.model is None else None
    return {"model": state.model, "model_file": model_file, "model_name": state.name}


def write_layers(path: str | os.PathLike, layer_data: list[tuple], state: Any) -> list[str]:
    """Write the image/annotation pairs among ``layer_data`` and the current model of
    ``state``."""
    return write_training_set(path, entries_from_layer_data(layer_data), **model_of(state))


def write_training_set_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """npe2 writer: ``viewer.layers.save("my_set.unet", plugin="napari-unet")``.

    Writes every image that has an ``<image> annotation`` layer among the saved layers,
    plus the current model of the current viewer (if any).
    """
    from napari.utils.notifications import show_warning

    from ._state import current_state

    if not entries_from_layer_data(layer_data):
        show_warning("napari-unet: select each image together with its '<image> annotation' layer")
        return []
    return write_layers(path, layer_data, current_state())


def training_set_of_viewer(viewer: Any, state: Any) -> tuple[list[Entry], dict[str, Any]]:
    """Every image/annotation pair of ``viewer`` (the annotations copied: painting may
    go on while they are written) and ``state``'s model: the arguments of
    :func:`~napari_unet.core.files.training_sets.write_training_set`, read on the GUI thread."""
    from ._layers import training_pairs

    layer_data = []
    for pair in training_pairs(viewer):
        layer_data.append(pair.image.as_layer_data_tuple())
        data, meta, kind = pair.annotation.as_layer_data_tuple()
        layer_data.append((np.array(data), meta, kind))
    return entries_from_layer_data(layer_data), model_of(state)
