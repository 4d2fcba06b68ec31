"""What to correct next, in the viewer: the suggestions Segment keeps with
``<image> labels`` (:data:`._layers.SUGGESTIONS_KEY`) as a worklist per image, stepped
through by the Annotate widget's Next / Previous, and the camera brought onto an entry.

napari glue without Qt: the decisions (which entries are still open, what the line
says, where the camera goes) are here; the widget only turns clicks into calls and the
answers into its label and notifications. The list itself is core's
:class:`~napari_unet.core.prediction.suggestions.Worklist`: an entry whose box the person
changed in the annotation since the list was tracked is corrected and leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _layers as L
from ._workfolders import WORK_KEY

#: The share of the canvas an entry's box fills once the camera is on it (its larger
#: side, about a third: the object and its neighbours are in view).
FILL = 1 / 3
#: A box is framed as if it were at least this many image pixels wide: a speck of a few
#: pixels is shown with its neighbours (about three times this), not blown up to fill
#: the canvas.
MIN_BOX = 32
#: The canvas size assumed when napari does not say it (older napari).
CANVAS = (600, 800)


@dataclass
class Step:
    """Where Next / Previous landed: the entry, its place among the open entries
    (1-based) and how many are open."""

    suggestion: Any
    position: int
    total: int

    def line(self) -> str:
        """``3 of 12: much larger than the others (score 0.87)``."""
        s = self.suggestion
        return f"{self.position} of {self.total}: {s.reason} (score {s.score:.2f})"


class Worklists:
    """One worklist per image, rebuilt whenever its labels layer holds new suggestions.

    Parameters
    ----------
    viewer
        The viewer whose ``<image> labels`` and ``<image> annotation`` layers are read.
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        # image name -> (the stored entries the list was built from, Worklist)
        self._lists: dict[str, tuple[Any, Any]] = {}

    def _annotation(self, name: str, like: Any) -> Any | None:
        ann = L.find_layer(self.viewer, L.annotation_name(name), "labels")
        if ann is None or tuple(ann.data.shape) != tuple(like.data.shape):
            return None
        return ann

    def get(self, name: str | None):
        """The worklist of the image ``name`` (``None`` when its labels layer holds no
        suggestions): built, and tracked against its annotation, when Segment (or the
        preview after Train) stored new ones."""
        from .core.prediction.suggestions import Suggestion, Worklist

        labels = L.find_layer(self.viewer, L.labels_name(name), "labels") if name else None
        entries = None if labels is None else labels.metadata.get(L.SUGGESTIONS_KEY)
        if entries is None:
            self._lists.pop(name, None)
            return None
        have = self._lists.get(name)
        if have is not None and have[0] is entries:
            return have[1]
        worklist = Worklist([Suggestion.from_dict(d) for d in entries])
        ann = self._annotation(name, labels)
        if ann is not None:
            worklist.track(ann.data)
        self._lists[name] = (entries, worklist)
        return worklist

    def track(self, name: str | None) -> None:
        """The annotation of ``name`` was made or replaced (created, a prediction copied
        in, a copy undone): what it holds now is the state corrections are seen against."""
        worklist = self.get(name)
        labels = L.find_layer(self.viewer, L.labels_name(name), "labels") if name else None
        ann = None if labels is None else self._annotation(name, labels)
        if worklist is not None and ann is not None:
            worklist.track(ann.data)

    def open_count(self, name: str | None) -> tuple[int, int] | None:
        """``(open, all)`` entries of the image ``name``, or ``None`` without a list."""
        worklist = self.get(name)
        if worklist is None:
            return None
        return len(worklist.open(self._data(name))), len(worklist)

    def _data(self, name: str) -> Any | None:
        labels = L.find_layer(self.viewer, L.labels_name(name), "labels")
        ann = None if labels is None else self._annotation(name, labels)
        return None if ann is None else ann.data

    def current(self, name: str | None) -> Step | None:
        """The entry shown last, if it is still open (``None`` once corrected)."""
        worklist = self.get(name)
        if worklist is None or worklist.current is None:
            return None
        still = worklist.open(self._data(name))
        if worklist.current not in still:
            return None
        i = worklist.current
        return Step(worklist.suggestions[i], still.index(i) + 1, len(still))

    def step(self, name: str | None, direction: int) -> Step | str:
        """The next (``direction`` > 0) or previous open entry of the image ``name``, or
        what to say when there is none (plain words)."""
        worklist = self.get(name)
        if worklist is None:
            return self.why_none(name)
        if not len(worklist):
            return f"nothing to suggest on {name!r}: the model is sure of every object"
        data = self._data(name)
        s = worklist.next(data) if direction > 0 else worklist.previous(data)
        if s is None:
            return (
                f"every suggestion on {name!r} was corrected: Train, then Segment again "
                "for new ones"
            )
        still = worklist.open(data)
        return Step(s, still.index(worklist.current) + 1, len(still))

    def why_none(self, name: str | None) -> str:
        if not name:
            return "Annotate: open an image first"
        labels = L.find_layer(self.viewer, L.labels_name(name), "labels")
        if labels is None:
            return f"no suggestions for {name!r} yet: click Segment first"
        if labels.metadata.get(WORK_KEY):
            return (
                f"no suggestions for {name!r}: it was segmented block by block (a huge "
                "image), which does not make them"
            )
        return f"no suggestions for {name!r}: click Segment to make them"


def show_entry(viewer: Any, layer: Any, suggestion: Any, fill: float = FILL) -> None:
    """Bring the camera onto a suggestion's box in ``layer``'s data (its ``scale`` and
    ``translate`` taken into account): the planes not shown go to the box's middle
    (a volume's z), the view is centred on the box and zoomed so that the box fills
    ``fill`` of the canvas."""
    n = len(suggestion.bbox) // 2
    starts = np.asarray(suggestion.bbox[:n], float)
    stops = np.asarray(suggestion.bbox[n:], float)
    if n != layer.ndim:
        return
    # the middle in data coordinates: the centre of the box's pixels
    world = np.asarray(layer.data_to_world((starts + stops - 1) / 2), float)
    extent = (stops - starts) * np.abs(np.asarray(layer.scale, float))
    dims = viewer.dims
    first = dims.ndim - layer.ndim  # napari aligns the layers' last axes
    displayed = list(dims.displayed)
    for i in range(layer.ndim):
        axis = first + i
        if axis not in displayed:
            dims.set_point(axis, float(world[i]))
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    shown = [a - first for a in displayed if a >= first]
    camera.center = tuple(float(world[i]) for i in shown)
    size = getattr(getattr(viewer, "canvas", None), "size", None) or CANVAS
    canvas = np.asarray(size, float)[-2:]
    scale = np.abs(np.asarray(layer.scale, float))[shown][-2:]
    box = np.maximum(extent[shown][-2:], MIN_BOX * scale)
    camera.zoom = float(np.min(fill * canvas / box))


def select_entry(labels: Any | None, suggestion: Any) -> None:
    """Select the entry's object in the prediction's labels layer (its id; a likely
    missed object: a free new id)."""
    if labels is None:
        return
    label = int(suggestion.label)
    if label == 0 and not labels.metadata.get(WORK_KEY):
        label = int(np.max(labels.data, initial=0)) + 1
    if label:
        labels.selected_label = label
