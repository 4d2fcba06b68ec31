"""How a stack is segmented, for every front end: a stack whose axes name Z as one volume
per time point (one id per object through z), any other stack plane by plane.

The axes come from :mod:`~napari_unet.core.files.image_axes` (an
:class:`~napari_unet.core.files.image_axes.ImageAxes`: a file's metadata, a layer's axis
labels, what a person said, else the shape). :func:`segments_as_volume` is the rule,
:func:`predict_stack` the call: it brings Z next to the ``(Y, X)`` plane where the
image keeps it elsewhere (``ZTYX``), predicts through :meth:`UNet.predict
<napari_unet.core.network.unet.UNet.predict>` (``volume=True``) and gives the results
back in the image's own axis order.

numpy only; the network is handed in.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .predictor import VOLUME_VIEWS as VIEWS  # what the network sees of a volume


def segments_as_volume(image_axes: Any, shape) -> bool:
    """Whether an image of ``shape`` with the axes ``image_axes`` (one letter per axis of
    ``shape``, channels included) is segmented as a volume: its axes name Z and Z holds
    at least two planes."""
    if image_axes is None or not image_axes.is_volume:
        return False
    letters, shape = image_axes.axes, tuple(shape)
    return len(letters) == len(shape) and shape[letters.index("Z")] >= 2


def _z_next_to_plane(letters: str) -> list[int]:
    """The axis order that puts Z right before Y (where a volume's Z is segmented)."""
    z = letters.index("Z")
    order = [i for i in range(len(letters)) if i != z]
    y = order.index(letters.index("Y"))
    return order[:y] + [z] + order[y:]


def predict_stack(net, image, image_axes: Any, *, views: str = VIEWS[0], **options):
    """Segment ``image`` the way its axes say: as one volume per time point
    (:func:`segments_as_volume`, with ``image_axes.z_scale`` and ``views``), else with
    ``net.predict`` as before (plane by plane, ``options`` as given).

    ``image_axes`` names every axis of ``image``, channels included (``C``); for the
    volume path it also tells ``net.predict`` where the channels are (``axes``), so
    ``options`` should not say it again. The result's axes are the image's, channels
    left out, whatever order Z had.
    """
    if not segments_as_volume(image_axes, np.shape(image)):
        return net.predict(image, **options)
    letters = image_axes.axes
    order = _z_next_to_plane(letters)
    moved = "".join(letters[i] for i in order)
    for key in ("axes", "channel_axis", "rgb"):
        options.pop(key, None)
    image = np.transpose(image, order) if order != sorted(order) else image
    pred = net.predict(
        image, axes=moved, volume=True, z_scale=float(image_axes.z_scale), views=views, **options
    )
    if order == sorted(order):
        return pred
    plain, own = moved.replace("C", ""), letters.replace("C", "")
    back = [plain.index(a) for a in own]  # the result's axes in the image's order

    def undo(a, extra: int = 0):
        return (
            None if a is None else np.transpose(a, back + list(range(len(back), len(back) + extra)))
        )

    def undo_box(s):  # a suggestion's box over the labels' axes, in the image's order
        n = len(s.bbox) // 2
        starts, stops = s.bbox[:n], s.bbox[n:]
        return replace(s, bbox=tuple(starts[b] for b in back) + tuple(stops[b] for b in back))

    return replace(
        pred,
        probability=undo(pred.probability),
        labels=undo(pred.labels),
        scores=undo(pred.scores, 1),
        classes=undo(pred.classes),
        doubt_map=undo(pred.doubt_map),
        suggestions=None if pred.suggestions is None else [undo_box(s) for s in pred.suggestions],
    )
