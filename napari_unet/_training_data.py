"""What the Train widget reads from a viewer and says about a run, without Qt: the
painted image/annotation pairs as core training pairs, the plane the live preview
predicts, how far a run is, why it ended and the two models it leaves to choose from.

Imports :mod:`._layers` and core (lazily); never qtpy, magicgui or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _layers as L

#: Why a training run ended, in the words the status line uses.
STOP_REASONS = {
    "epochs": "finished",
    "early_stopping": "stopped early: validation stopped improving",
    "time_limit": "time limit reached",
    "stop_event": "stopped by you",
    "non_finite": "stopped: the loss became NaN; the last good epoch was kept",
}


def stop_reason(stopped_by: str) -> str:
    """The words for why a run ended (:attr:`TrainResult.stopped_by`)."""
    return STOP_REASONS.get(stopped_by, str(stopped_by).replace("_", " "))


def painted_pairs(viewer: Any) -> tuple[list[L.Pair], list]:
    """The viewer's image/annotation pairs that hold painted labels, with core
    :class:`~napari_unet.core.training.samples.TrainingPair` objects for them (annotations copied,
    so painting may go on while training runs; the on-disk annotation of a huge image
    stays on disk: training reads its painted regions only).

    Raises
    ------
    UserInputError
        Nothing painted, or an annotation that does not fit its image.
    """
    from napari_unet.core import TrainingPair, UserInputError
    from napari_unet.core.memory import is_lazy

    pairs, annotations = [], []
    for pair in L.training_pairs(viewer):
        if is_lazy(pair.annotation.data) and L.is_huge(pair.image):
            # an on-disk annotation of a huge image: training reads its painted
            # regions (and only those of the image), never the whole of either
            ann = pair.annotation.data
            if not L.has_labels(ann):
                continue
        else:
            ann = np.array(pair.annotation.data)  # a copy: painting may go on
            if not ann.any():  # an annotation layer not painted yet teaches nothing
                continue
        pairs.append(pair)
        annotations.append(ann)
    if not pairs:
        misfits = L.misfit_annotations(viewer)
        if misfits:
            image, ann = misfits[0]
            raise UserInputError(
                f"{ann.name!r} is {L.shape_text(ann.data.shape)} but {image.name!r} is "
                f"{L.shape_text(L.spatial_shape(image))}, so it cannot train; click "
                "'Create annotation layer' (Annotate) to start one that fits"
            )
        raise UserInputError("nothing painted yet: annotate objects and background first")
    data = [
        TrainingPair(
            image=L.layer_array(p.image),
            annotation=a,
            name=p.name,
            painted=L.painted_pixels(p.annotation, a),
            z_scale=volume_z_scale(p.image, p.annotation),
            diameter=typed_diameter(p.image),
        )
        for p, a in zip(pairs, annotations, strict=True)
    ]
    return pairs, data


def typed_diameter(image: Any) -> float | None:
    """The object diameter (px) a person typed in Segment for this image layer (0: the
    image as it is), ``None`` where Segment measured it or never ran: training then
    measures the annotation, as before."""
    value = image.metadata.get(L.DIAMETER_KEY)
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def typed_words(pairs: list) -> str:
    """`` Learned cells at the 24 px typed in Segment.`` for the training pairs that
    have a typed diameter (:func:`typed_diameter`), else ``""``."""
    typed = [
        f"{p.name} as it is (0 typed)" if p.diameter == 0 else f"{p.name} at {p.diameter:g} px"
        for p in pairs
        if p.diameter is not None
    ]
    return f" Learned {', '.join(typed)}: the width typed in Segment." if typed else ""


def volume_z_scale(image: Any, annotation: Any) -> float | None:
    """The z-step (over the XY pixel) of a ``(Z, Y, X)`` image layer that is a volume
    (the layers' axis labels, else the shape, say Z: the rule Segment follows), from
    its scale; ``None`` for a 2D image or a stack of frames."""
    shape = tuple(int(s) for s in annotation.data.shape)
    if len(shape) != 3 or L.stack_axes_of(shape, [image, annotation])[0] != "ZYX":
        return None
    scale = [float(s) for s in image.scale][-3:]
    from napari_unet.core.files.image_axes import layer_axes

    return layer_axes(shape, ["z", "y", "x"], scale).z_scale


@dataclass
class PreviewSource:
    """The plane the live preview predicts, read when the training worker starts (not on
    the GUI thread: deciding a stained slide's reading samples the whole image)."""

    data: Any  # the layer's data, as a numpy or dask array
    rgb: bool
    channels: int
    index: tuple  # over the stack axes (``()`` for one plane)
    stains: bool = False

    def read(self) -> np.ndarray:
        """The plane as the network takes it, ``(Y, X, C)``."""
        from napari_unet.core.axes import channel_layout

        layout = channel_layout(
            np.shape(self.data),
            self.channels,
            rgb=self.rgb,
            image=self.data if self.stains else None,
        )
        return np.ascontiguousarray(layout.read(self.data, self.index))


def preview_plane(viewer: Any, layer: Any, channels: int, stains: bool = False):
    """The plane of ``layer`` shown now as a ``channels``-input network takes it
    (``stains``: one that reads a stained slide as its haematoxylin), to be read by
    :meth:`PreviewSource.read`, with where it goes: its index over the stack axes
    (``None`` for one plane) and the image axis that held the channels (``None`` for
    colours, which napari keeps out of a layer's geometry). ``None`` when the image does
    not fit."""
    from napari_unet.core import UserInputError
    from napari_unet.core.axes import channel_layout

    data = L.layer_array(layer)
    try:
        layout = channel_layout(np.shape(data), channels, rgb=bool(layer.rgb))
    except UserInputError:
        return None
    coords = np.asarray(layer.world_to_data(viewer.dims.point), float)
    stack = [i for i in range(len(layout.shape)) if i != layout.axis][:-2]
    index = tuple(int(np.clip(np.round(coords[i]), 0, layout.shape[i] - 1)) for i in stack)
    source = PreviewSource(data, bool(layer.rgb), channels, index, stains)
    return source, index or None, None if layer.rgb else layout.axis


@dataclass
class ModelChoice:
    """The two models after a training run: the new one and the one it would replace,
    each as ``(model, name, path)`` for :meth:`ModelState.set_model`, with its preview
    (what it predicts on the preview plane) and which of them is current."""

    new: tuple
    previous: tuple | None
    comparison: Any
    previews: dict = field(default_factory=dict)  # "new"/"previous" -> Prediction
    current: str = "new"

    def text(self) -> str:
        """What the before/after panel says: the comparison, which model is current
        and what the buttons would do, and where it was measured."""
        c = self.comparison
        if self.previous is None:
            now = "The new model is current (there was no model before it)."
        elif self.current == "new":
            now = (
                "The new model is current; 'Go back to the previous one' restores "
                f"{self.previous[1] or 'the previous model'}."
            )
        elif c.worse:
            now = (
                "The new model scored worse, so the previous model stays current; "
                "'Keep the new model' uses the new one anyway."
            )
        else:
            now = "The previous model is current; 'Keep the new model' uses the new one."
        where = f" Measured {c.where}." if c.where and c.verdict != "untested" else ""
        return f"{c.summary()}\n{now}{where}"


def fraction_done(rec, time_limit: float | None) -> tuple[float, int]:
    """How far a run is after the batch record ``rec`` (core ``TrainProgress``): by
    epochs or by the time limit, whichever ends it first; and how many steps it will
    probably make."""
    total = max(1, rec.total_steps)
    done = rec.step / total
    expected = total
    if time_limit:
        done = max(done, min(1.0, rec.elapsed / time_limit))
        if rec.elapsed > 1.0 and rec.step > 0:
            expected = min(total, int(rec.step / rec.elapsed * time_limit) + 1)
    return min(done, 1.0), max(expected, rec.step)
