"""Layer conventions of napari-unet: stable names, the annotation look, pairs, and
which layer properties a training set keeps.

Names follow the project's conventions (README, *Labels*): ``<image> annotation``
(Labels), ``<image> probability`` (Image, float 0–1), ``<image> labels`` (Labels,
instances) and ``<image> doubt`` (Image, hidden: where the result is likely wrong; the
suggestions of what to correct next travel in the labels layer's metadata). Results are written into those layers in place; a re-run never adds a
duplicate.

napari glue without Qt: the reader, the writer and the widgets all use it; it imports
napari (lazily) but never qtpy, magicgui or the widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._annotation_session import COPIED_KEY  # noqa: F401 (the key Train and tests read)
from ._annotation_session import painted_pixels as _painted_pixels
from ._workfolders import WORK_KEY

ANNOTATION = " annotation"
PROBABILITY = " probability"
LABELS = " labels"
CLASSES = " classes"
DOUBT = " doubt"
_DERIVED = (ANNOTATION, PROBABILITY, LABELS, CLASSES, DOUBT)
#: Labels-layer metadata: the suggestions of the prediction it shows (what to correct
#: next, most doubtful first), as JSON entries (``Suggestion.to_dict``).
SUGGESTIONS_KEY = "napari_unet_suggestions"

#: What each annotation value means (README, *Labels*) and how it is drawn. The image
#: must show through while correcting: background (1, usually painted over large areas)
#: is a faint blue; objects are strong, saturated colours that differ from each other
#: and stay visible on grey, green or white fluorescence (object: magenta, not yellow).
ANNOTATION_CLASSES: dict[int, tuple[str, tuple[float, float, float, float]]] = {
    0: ("not annotated (ignored)", (0.0, 0.0, 0.0, 0.0)),
    1: ("background", (0.25, 0.5, 1.0, 0.4)),
    2: ("object", (1.0, 0.1, 0.85, 1.0)),
    3: ("object class 2", (1.0, 0.55, 0.0, 1.0)),
    4: ("object class 3", (0.0, 0.9, 0.9, 1.0)),
    5: ("object class 4", (0.55, 1.0, 0.0, 1.0)),
    6: ("object class 5", (1.0, 0.1, 0.1, 1.0)),
    7: ("object class 6", (0.55, 0.3, 1.0, 1.0)),
    8: ("object class 7", (1.0, 0.95, 0.2, 1.0)),
    9: ("object class 8", (1.0, 0.5, 0.7, 1.0)),
}
#: Opacity of an annotation layer: with the colours above, painted objects let half of
#: the image through and painted background most of it.
ANNOTATION_OPACITY = 0.5
#: Image-layer metadata: the object diameter (px) a person typed in Segment for this
#: image (0: the image as it is); Train brings the image to the same scale.
DIAMETER_KEY = "napari_unet_diameter"
#: The same width in a training set's image-layer properties.
TYPED_DIAMETER = "typed_diameter"
#: Label-layer metadata ``napari_unet_kind`` of a class map written by Segment.
CLASS_MAP_KIND = "classes"
BRUSH_SIZE = 10

#: Image layer properties a training set keeps (plain JSON values only).
IMAGE_KEYS = (
    "rgb",
    "scale",
    "translate",
    "colormap",
    "contrast_limits",
    "gamma",
    "blending",
    "opacity",
    "visible",
)
#: Annotation layer properties a training set keeps (the look itself is ours).
ANNOTATION_KEYS = ("scale", "translate", "opacity", "visible")


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a layer property (or ``None`` to skip it)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str):  # colormaps, enums
        return name
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return arr.tolist()


def props_from_meta(meta: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The properties ``keys`` of a layer-data tuple's ``meta``, as plain JSON values."""
    out = {}
    for key in keys:
        if key in meta:
            v = _plain(meta[key])
            if v is not None:
                out[key] = v
    return out


def painted_pixels(layer: Any, annotation: Any) -> Any:
    """Pixels of ``annotation`` a person painted, not copied from a prediction
    (:func:`._annotation_session.painted_pixels` of the layer's metadata)."""
    return _painted_pixels(layer.metadata, annotation)


def annotation_name(image_name: str) -> str:
    return image_name + ANNOTATION


def probability_name(image_name: str) -> str:
    return image_name + PROBABILITY


def labels_name(image_name: str) -> str:
    return image_name + LABELS


def classes_name(image_name: str) -> str:
    return image_name + CLASSES


def doubt_name(image_name: str) -> str:
    return image_name + DOUBT


def class_colormap(n_object_classes: int):
    """A direct colormap for a class map: class *k* in the colour of annotation label
    *k* + 1 (class 1 magenta like "object", class 2 orange, …), 0 transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[int | None, Any] = {0: np.zeros(4)}
    for k in range(1, n_object_classes + 1):
        rgba = ANNOTATION_CLASSES.get(k + 1, (None, (0.8, 0.8, 0.8, 1.0)))[1]
        colors[k] = np.array(rgba)
    colors[None] = np.array([0.8, 0.8, 0.8, 1.0])
    return DirectLabelColormap(color_dict=colors)


def class_features(names: list[str]) -> dict[str, list]:
    """Per-class features of a class map, shown in the status bar under the cursor."""
    return {"index": list(range(len(names) + 1)), "class": ["background", *names]}


def is_image(layer: Any) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image)


def is_labels(layer: Any) -> bool:
    from napari.layers import Labels

    return isinstance(layer, Labels)


def is_output_layer(layer: Any, names: set[str]) -> bool:
    """``True`` for a layer napari-unet derived from an image that is in ``names``."""
    return any(layer.name.endswith(s) and layer.name[: -len(s)] in names for s in _DERIVED)


def image_layers(viewer: Any) -> list[Any]:
    """Image layers a person may segment or train on (our probability maps excluded)."""
    names = {layer.name for layer in viewer.layers}
    return [
        layer for layer in viewer.layers if is_image(layer) and not is_output_layer(layer, names)
    ]


def labels_layers(viewer: Any) -> list[Any]:
    return [layer for layer in viewer.layers if is_labels(layer)]


def spatial_shape(layer: Any) -> tuple[int, ...]:
    """Shape of the data without the colour axis of an RGB(A) image."""
    shape = tuple(int(s) for s in layer.data.shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def find_layer(viewer: Any, name: str, kind: str | None = None) -> Any | None:
    """The layer called ``name`` (of type ``"image"``/``"labels"`` if given), or ``None``."""
    if name not in viewer.layers:
        return None
    layer = viewer.layers[name]
    if kind == "image" and not is_image(layer):
        return None
    if kind == "labels" and not is_labels(layer):
        return None
    return layer


@dataclass
class Pair:
    """An image layer and its annotation layer: one member of the training set."""

    image: Any
    annotation: Any

    @property
    def name(self) -> str:
        return self.image.name


def misfit_annotations(viewer: Any) -> list[tuple[Any, Any]]:
    """``(image, annotation)`` layers whose shapes differ: left out of training."""
    out = []
    for image in image_layers(viewer):
        ann = find_layer(viewer, annotation_name(image.name), "labels")
        if ann is not None and tuple(ann.data.shape) != spatial_shape(image):
            out.append((image, ann))
    return out


def shape_text(shape: tuple[int, ...]) -> str:
    return " × ".join(str(int(s)) for s in shape)


def training_pairs(viewer: Any) -> list[Pair]:
    """Every image with a ``<image> annotation`` Labels layer of the same shape."""
    pairs = []
    for image in image_layers(viewer):
        ann = find_layer(viewer, annotation_name(image.name), "labels")
        if ann is not None and tuple(ann.data.shape) == spatial_shape(image):
            pairs.append(Pair(image, ann))
    return pairs


def annotation_colormap():
    """A direct colormap: background faint blue, object magenta, further classes distinct."""
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[int | None, Any] = {k: np.array(c) for k, (_, c) in ANNOTATION_CLASSES.items()}
    colors[None] = np.array([0.8, 0.8, 0.8, 1.0])
    return DirectLabelColormap(color_dict=colors)


def annotation_features(top: int = max(ANNOTATION_CLASSES)) -> dict[str, list]:
    """Per-label features, shown in napari's status bar under the cursor."""
    index = list(range(top + 1))
    return {
        "index": index,
        "meaning": [ANNOTATION_CLASSES.get(i, (f"object class {i - 1}", None))[0] for i in index],
    }


def annotation_layer_kwargs() -> dict[str, Any]:
    """Keyword arguments that give an annotation Labels layer its look."""
    return {
        "colormap": annotation_colormap(),
        "features": annotation_features(),
        "opacity": ANNOTATION_OPACITY,
        "metadata": {"napari_unet_kind": "annotation"},
    }


def style_annotation_layer(layer: Any) -> None:
    """Give an existing Labels layer the annotation look."""
    for key, value in annotation_layer_kwargs().items():
        if key == "metadata":
            layer.metadata.update(value)
        else:
            setattr(layer, key, value)


def geometry_of(image: Any, drop_axis: int | None = None) -> dict[str, Any]:
    """``scale``/``translate`` of an image layer for layers over its spatial axes, and its
    ``axis_labels`` when it has its own (``z``, ``t``, … from its file's axes)."""
    scale = list(image.scale)
    translate = list(image.translate)
    labels = [str(a) for a in getattr(image, "axis_labels", ())]
    if drop_axis is not None:
        ax = drop_axis % len(scale)
        del scale[ax], translate[ax]
        if len(labels) > ax:
            del labels[ax]
    geometry = {"scale": scale, "translate": translate}
    if len(labels) == len(scale) and not all(a.lstrip("-").isdigit() for a in labels):
        geometry["axis_labels"] = tuple(labels)
    return geometry


def axes_layer_kwargs(axes: Any, channel_layers: int = 0) -> dict[str, Any]:
    """``scale`` (the z-step on Z, the XY pixel as unit) and ``axis_labels`` (``z``,
    ``t``, ``y``, ``x``) of an image layer from an
    :class:`~napari_unet.core.files.image_axes.ImageAxes`; the channel axis is left out
    (an RGB layer or one layer per channel: ``channel_layers`` such layers, each given its
    own labels, as napari's ``channel_axis`` wants them)."""
    labels = axes.axis_labels()
    return {
        "scale": list(axes.scale()),
        "axis_labels": [labels] * channel_layers if channel_layers else labels,
    }


#: What a layer's axis label says about its axis (``axis_labels``, case ignored).
_AXIS_WORDS = {"t": "T", "time": "T", "z": "Z", "depth": "Z", "s": "S"}
#: Where :func:`stack_axes_of` found the axes (the words the Evaluate widget shows).
FROM_AXIS_LABELS = "the layers' axis labels"


def stack_axes_of(shape: tuple[int, ...], layers: list[Any]) -> tuple[str, str]:
    """The axis letters of label data of ``shape`` (``"YX"``, ``"ZYX"``, ``"TYX"``,
    ``"TZYX"``) and where they came from: an axis any of ``layers`` (of that many axes)
    labels ``t``/``time`` is T, ``z`` is Z; what none of them says is decided by core's
    shape rule (:func:`napari_unet.core.files.image_axes.decide_axes`: one stack axis is
    Z, two are T, Z). So a 3D pair of Labels layers is a volume unless an axis label
    says T."""
    from .core.files.image_axes import FileAxes, decide_axes

    nd = len(shape)
    said = ["?"] * nd
    for layer in (x for x in layers if x is not None):
        labels = [str(a).strip().lower() for a in getattr(layer, "axis_labels", ())]
        if len(labels) != nd:
            continue
        for i, word in enumerate(labels[:-2]):
            letter = _AXIS_WORDS.get(word)
            if letter is not None and (said[i] == "?" or letter == "T"):
                said[i] = letter  # T wins: a time axis is never a volume
    named = [a for a in said[:-2] if a != "?"]
    found = None
    if named and len(set(named)) == len(named):  # two axes both called t: not said
        found = FileAxes("".join(said), None, FROM_AXIS_LABELS)
    axes = decide_axes(shape, channel_axis=None, found=found)
    return axes.axes, axes.source


def put_layer(viewer: Any, name: str, data: np.ndarray, kind: str, **kwargs: Any) -> Any | None:
    """Update the layer ``name`` in place, or add it: one layer per name, ever.

    ``kwargs`` (colormap, blending, …) apply only when the layer is created, so a
    person's display choices survive re-runs; ``scale``/``translate`` (and
    ``axis_labels``) always follow the image. Returns ``None`` when a layer of another
    type already has the name.
    """
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None:
        if (kind == "labels") != is_labels(existing) or (kind == "image") != is_image(existing):
            return None
        # set only what changed: every setter refreshes the layer (tens of ms)
        for key in ("scale", "translate"):
            value = kwargs.get(key)
            if (
                value is not None
                and len(value) == existing.ndim
                and not np.allclose(getattr(existing, key), value)
            ):
                setattr(existing, key, value)
        labels = kwargs.get("axis_labels")
        if labels is not None and len(labels) == existing.ndim:
            if tuple(existing.axis_labels) != tuple(labels):
                existing.axis_labels = tuple(labels)
        existing.metadata.pop(WORK_KEY, None)  # whatever it showed is replaced
        if bool(getattr(existing, "multiscale", False)) != bool(kwargs.get("multiscale")):
            # napari cannot turn a layer into a pyramid (or back): a new layer takes its
            # place, with the person's display choices
            return _replace(viewer, existing, data, kind, kwargs)
        existing.data = data
        return existing
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    return add(data, name=name, **kwargs)


#: Display choices carried over when a layer is replaced by one of another kind of data.
_LOOK = ("opacity", "blending", "visible", "colormap", "contrast_limits", "gamma", "contour")


def _replace(viewer: Any, old: Any, data: Any, kind: str, kwargs: dict[str, Any]) -> Any:
    look = {k: getattr(old, k) for k in _LOOK if hasattr(old, k)}
    if kind == "labels":
        look.pop("colormap", None)  # a labels colormap belongs to its ids
    look.pop("contrast_limits" if kind == "labels" else "contour", None)
    index = viewer.layers.index(old)
    selected = viewer.layers.selection.active is old
    name, metadata = old.name, dict(old.metadata)
    viewer.layers.remove(old)
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    after = {k: look.pop(k) for k in ("contour",) if k in look}  # not a constructor argument
    layer = add(data, name=name, **{**kwargs, **look})
    for key, value in after.items():
        setattr(layer, key, value)
    layer.metadata.update(metadata)
    viewer.layers.move(viewer.layers.index(layer), index)
    if selected:
        viewer.layers.selection.active = layer
    return layer


def layer_array(layer: Any):
    """The full-resolution data of a layer (level 0 of a multiscale one)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def show_prediction(viewer: Any, image_name: str, prediction: Any, drop_axis=None, index=None):
    """Write a prediction into ``<image> probability`` and ``<image> labels`` (and
    ``<image> classes`` for a model with several object classes).

    ``index`` (a tuple over the leading axes) writes one plane of a stack into layers
    that cover the whole stack, creating them empty where they are missing.
    """
    image = find_layer(viewer, image_name, "image")
    geometry = geometry_of(image, drop_axis) if image is not None else {}
    prob, labels = prediction.probability, prediction.labels
    if index is not None and image is not None:
        full = tuple(n for i, n in enumerate(spatial_shape(image)) if i != drop_axis)
        for name, plane, dtype in (
            (probability_name(image_name), prob, np.float32),
            (labels_name(image_name), labels, np.int32),
        ):
            layer = find_layer(viewer, name)
            if layer is None or tuple(layer.data.shape) != full:
                data = np.zeros(full, dtype)
            else:
                data = layer.data
            data[index] = plane
            if name.endswith(PROBABILITY):
                prob = data
            else:
                labels = data
    active = viewer.layers.selection.active
    added = []
    p = put_layer(
        viewer,
        probability_name(image_name),
        prob,
        "image",
        colormap="magma",
        blending="additive",
        contrast_limits=(0.0, 1.0),
        opacity=0.8,
        **geometry,
    )
    lab = put_layer(viewer, labels_name(image_name), labels, "labels", opacity=0.5, **geometry)
    shown = [(probability_name(image_name), p), (labels_name(image_name), lab)]
    if getattr(prediction, "doubt_map", None) is not None:
        shown.append(
            (
                doubt_name(image_name),
                _show_doubt(viewer, image, image_name, prediction, index, geometry),
            )
        )
        if lab is not None:
            _store_suggestions(lab, prediction.suggestions or [], index)
    if getattr(prediction, "classes", None) is not None:
        shown.append(
            (
                classes_name(image_name),
                _show_classes(viewer, image, image_name, prediction, index, geometry),
            )
        )
    else:
        # a one-class model made this prediction: a class map of an earlier model
        # would no longer match the labels
        old = find_layer(viewer, classes_name(image_name), "labels")
        if old is not None and old.metadata.get("napari_unet_kind") == CLASS_MAP_KIND:
            viewer.layers.remove(old)
    from ._workfolders import release_unused

    release_unused(viewer)  # lazy results these layers showed before
    for name, layer in shown:
        if layer is None:
            from napari.utils.notifications import show_warning

            show_warning(f"{name!r} is not of the right type: rename it")
        else:
            added.append(layer)
    ann = find_layer(viewer, annotation_name(image_name), "labels")
    if ann is not None:
        outline_over_annotation(viewer, ann, lab)
    # painting goes on where it was: the layer selected stays selected
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return added


def show_lazy_prediction(
    viewer: Any, image_name: str, prediction: Any, drop_axis=None, folder=None
) -> list[Any]:
    """Show a :class:`~napari_unet.core.prediction.blockwise.LazyPrediction` in ``<image> probability``
    and ``<image> labels`` as lazy (multiscale) layers read from its OME-Zarr images;
    the layers remember the working ``folder`` they read (removed with them)."""
    from ._workfolders import release_unused, unpin, watch

    image = find_layer(viewer, image_name, "image")
    geometry = geometry_of(image, drop_axis) if image is not None else {}
    active = viewer.layers.selection.active
    shown = []
    for name, levels, kind, look in (
        (
            probability_name(image_name),
            prediction.probability,
            "image",
            {"colormap": "magma", "blending": "additive", "contrast_limits": (0.0, 1.0)},
        ),
        (labels_name(image_name), prediction.labels, "labels", {}),
    ):
        multiscale = len(levels) > 1
        data = levels if multiscale else levels[0]
        opacity = 0.8 if kind == "image" else 0.5
        layer = put_layer(
            viewer, name, data, kind, multiscale=multiscale, opacity=opacity, **look, **geometry
        )
        if layer is None:
            from napari.utils.notifications import show_warning

            show_warning(f"{name!r} is not of the right type: rename it")
            continue
        if folder is not None:
            layer.metadata[WORK_KEY] = str(folder)
        shown.append(layer)
    levels = getattr(prediction, "classes", None)
    if levels is not None:
        names = list(prediction.class_names or [])
        layer = put_layer(
            viewer,
            classes_name(image_name),
            levels if len(levels) > 1 else levels[0],
            "labels",
            multiscale=len(levels) > 1,
            opacity=0.5,
            colormap=class_colormap(len(names)),
            features=class_features(names),
            metadata={"napari_unet_kind": CLASS_MAP_KIND, "napari_unet_class_names": names},
            **geometry,
        )
        if layer is not None:
            if folder is not None:
                layer.metadata[WORK_KEY] = str(folder)
            shown.append(layer)
    else:
        old = find_layer(viewer, classes_name(image_name), "labels")
        if old is not None and old.metadata.get("napari_unet_kind") == CLASS_MAP_KIND:
            viewer.layers.remove(old)  # an earlier model's class map no longer matches
    ann = find_layer(viewer, annotation_name(image_name), "labels")
    lab = find_layer(viewer, labels_name(image_name), "labels")
    forget_suggestions(viewer, image_name)  # block by block: none are made
    if ann is not None:
        outline_over_annotation(viewer, ann, lab)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    watch(viewer)
    if folder is not None:
        unpin(folder)
    release_unused(viewer)  # the folder of a run these layers showed before
    return shown


def _show_doubt(viewer, image, image_name: str, prediction, index, geometry):
    """Write the prediction's doubt map into ``<image> doubt`` (one plane of it when
    ``index`` is given): hidden when it is made, one click in the layer list shows it."""
    name = doubt_name(image_name)
    dmap = prediction.doubt_map
    if index is not None and image is not None:
        # the labels layer was just brought to the whole stack's shape
        full = tuple(int(n) for n in find_layer(viewer, labels_name(image_name)).data.shape)
        layer = find_layer(viewer, name, "image")
        data = (
            layer.data
            if layer is not None and tuple(layer.data.shape) == full
            else np.zeros(full, np.float32)
        )
        data[index] = dmap
        dmap = data
    return put_layer(
        viewer,
        name,
        dmap,
        "image",
        colormap="magma",
        blending="additive",
        contrast_limits=(0.0, 1.0),
        visible=False,
        **geometry,
    )


def _store_suggestions(labels: Any, suggestions: list, index=None) -> None:
    """Keep the suggestions with the labels layer they point into (its metadata); those
    of one plane (``index``) replace that plane's and keep the other planes'."""
    from .core.prediction.suggestions import ranked, shift

    if index is not None:
        lead = tuple(int(i) for i in index)
        n = len(lead)
        kept = [
            s
            for s in stored_suggestions(labels) or []
            if len(s.bbox) != 2 * (n + 2) or s.bbox[:n] != lead
        ]
        suggestions = ranked(kept + shift(suggestions, lead, 0))
    # a new list each time: the Annotate widget sees it and rebuilds its worklist
    labels.metadata[SUGGESTIONS_KEY] = [s.to_dict() for s in suggestions]


def forget_suggestions(viewer: Any, image_name: str) -> None:
    """A result without suggestions (block by block): the last run's doubt layer and
    suggestions no longer match its labels, so they go."""
    lab = find_layer(viewer, labels_name(image_name), "labels")
    if lab is not None:
        lab.metadata.pop(SUGGESTIONS_KEY, None)
    old = find_layer(viewer, doubt_name(image_name), "image")
    if old is not None:
        viewer.layers.remove(old)


def stored_suggestions(labels: Any | None) -> list | None:
    """The suggestions kept with a labels layer (``None`` when it has none)."""
    from .core.prediction.suggestions import Suggestion

    entries = None if labels is None else labels.metadata.get(SUGGESTIONS_KEY)
    return None if entries is None else [Suggestion.from_dict(d) for d in entries]


def _show_classes(viewer, image, image_name: str, prediction, index, geometry):
    """Write the prediction's class map into ``<image> classes`` (one plane of it when
    ``index`` is given)."""
    name = classes_name(image_name)
    classes = prediction.classes
    if index is not None and image is not None:
        full = spatial_shape(image)
        layer = find_layer(viewer, name)
        data = (
            layer.data
            if layer is not None and tuple(layer.data.shape) == full
            else np.zeros(full, classes.dtype)
        )
        data[index] = classes
        classes = data
    names = list(prediction.class_names or [])
    layer = put_layer(
        viewer,
        name,
        classes,
        "labels",
        opacity=0.5,
        colormap=class_colormap(len(names)),
        features=class_features(names),
        metadata={"napari_unet_kind": CLASS_MAP_KIND, "napari_unet_class_names": names},
        **geometry,
    )
    if (
        layer is not None
        and layer.metadata.get("napari_unet_kind") == CLASS_MAP_KIND
        and layer.metadata.get("napari_unet_class_names") != names
    ):
        # another model, other classes: their names and colours follow
        layer.metadata["napari_unet_class_names"] = names
        layer.features = class_features(names)
        layer.colormap = class_colormap(len(names))
    return layer


#: Layer-metadata key: the labels layer was turned into outlines to sit over the annotation.
OUTLINED_KEY = "napari_unet_outlined"


def outline_over_annotation(viewer: Any, annotation: Any, labels: Any | None) -> None:
    """Order the layers so that a new prediction shows while an annotation exists.

    The annotation (mostly a copy of an earlier prediction) sits above the probability
    map, and the prediction's instances are drawn as outlines on top of both: a live
    preview or a "segment again" changes what is seen, and the painted classes stay
    visible through the outlines. The first time only, the labels layer gets outlines
    (a person's later display choices are kept).
    """
    layers = viewer.layers
    if layers.index(annotation) != len(layers) - 1:
        layers.move(layers.index(annotation), len(layers))
    if labels is None or labels not in layers:
        return
    layers.move(layers.index(labels), len(layers))
    if not labels.metadata.get(OUTLINED_KEY):
        labels.metadata[OUTLINED_KEY] = True
        labels.contour = 2
        labels.opacity = 0.9
        labels.visible = True


# ---------------------------------------------------------------------- huge images
def is_huge(layer: Any) -> bool:
    """Whether a layer is worked on block by block, never read whole: core's one rule
    (:func:`napari_unet.core.memory.block_by_block`) on its shape without colours, its
    pyramid and whether its data is chunked (dask, zarr)."""
    from .core.memory import block_by_block, is_lazy

    return block_by_block(
        spatial_shape(layer),
        multiscale=bool(getattr(layer, "multiscale", False)),
        lazy=is_lazy(layer_array(layer)),
    )


def add_lazy_annotation(viewer: Any, image: Any, name: str) -> Any:
    """Add the Labels layer ``name`` over ``image`` backed by an empty zarr array in a
    working folder of its own (:mod:`._workfolders`): napari paints into it in place,
    it costs disk only where it is painted, and Train reads only the painted regions.
    The folder lives as long as a layer shows it (it is the person's work: save it with
    'Save annotation…' in Annotate before closing napari)."""
    from ._workfolders import new_work_folder, unpin, watch
    from .core.training.huge_annotations import create_labels_zarr

    folder = new_work_folder(name)
    data = create_labels_zarr(folder / "annotation.zarr", spatial_shape(image))
    kwargs = annotation_layer_kwargs()
    kwargs["metadata"] = {**kwargs["metadata"], WORK_KEY: str(folder)}
    layer = viewer.add_labels(
        data, name=name, scale=image.scale, translate=image.translate, **kwargs
    )
    watch(viewer)
    unpin(folder)
    return layer


def annotated_counts(data: Any) -> dict[int, int]:
    """Pixels per annotation label of a Labels layer's data, read chunk by chunk when
    it is a chunked (zarr, dask) array."""
    from .core.memory import is_lazy
    from .core.training.huge_annotations import label_counts
    from .core.training.targets import annotated_pixel_counts

    if is_lazy(data) and len(data.shape) == 2:
        return label_counts(data)
    return annotated_pixel_counts(data)


def has_labels(data: Any) -> bool:
    """Whether a Labels layer's data holds a non-zero pixel (chunk by chunk when
    chunked)."""
    from .core.memory import is_lazy
    from .core.training.huge_annotations import any_label

    if is_lazy(data) and len(data.shape) == 2:
        return any_label(data)
    return bool(np.asarray(data).any())


def region_in_view(layer: Any) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)``: the part of a 2D layer's data the canvas shows (napari's
    ``corner_pixels``, updated as it draws), or ``None`` when it shows all of it or has
    not drawn yet."""
    shape = spatial_shape(layer)
    if len(shape) != 2:
        return None
    corners = np.asarray(layer.corner_pixels, int)
    if corners.shape != (2, layer.ndim) or not corners.any():  # not drawn yet
        return None
    lo, hi = corners[0, -2:], corners[1, -2:] + 1  # corner_pixels are inclusive
    if getattr(layer, "multiscale", False):  # in the coordinates of the level shown
        factor = np.asarray(layer.downsample_factors[layer.data_level][-2:], float)
        lo, hi = np.floor(lo * factor), np.ceil(hi * factor)
    y0, x0 = (int(max(0, v)) for v in lo)
    y1, x1 = (int(min(s, v)) for s, v in zip(shape, hi))
    if y0 >= y1 or x0 >= x1 or (y0, y1, x0, x1) == (0, shape[0], 0, shape[1]):
        return None
    return y0, y1, x0, x1
