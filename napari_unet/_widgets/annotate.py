"""Annotate: the ``<image> annotation`` layer, the brush, the prediction as a start,
what to correct next (Next / Previous through the suggestions of the last Segment), and
the list of every image/annotation pair (the training set) with its pixel counts."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, SpinBox
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.config import MAX_OBJECT_CLASSES

from .. import _annotation_session as S
from .. import _layers as L
from .. import _worklists as W
from .._state import state_for
from ._ui import (
    DockLifetime,
    ImageFollower,
    button,
    combo,
    notify_error,
    open_folder,
    save_in_background,
    save_path,
    status_label,
    warn,
)

#: Recount the annotated pixels at most this often while painting (ms).
REFRESH_MS = 300
#: Layer events after which the pixel counts are recounted: painting, new data, a
#: rename, a partial redraw after an edit.
COUNT_EVENTS = ("paint", "data", "name", "labels_update")
#: napari's Undo/Redo (Ctrl+Z) of a stroke only refreshes the layer (``set_data``); it is
#: followed for in-memory labels (a huge on-disk annotation would be recounted on every
#: pan and zoom, and its own Undo copy recounts when done).
UNDO_EVENT = "set_data"
#: The viewer's shortcuts of Next / Previous (free in napari: Shift-P is the Shapes
#: layer's polygon lasso, so Previous is Shift-B, "back").
NEXT_KEY, PREVIOUS_KEY = "Shift-N", "Shift-B"


def _swatch(value: int) -> str:
    name, rgba = L.ANNOTATION_CLASSES[value]
    r, g, b = (int(255 * c) for c in rgba[:3])
    return (
        f'<span style="background-color: rgb({r},{g},{b}); color: rgb({r},{g},{b})">'
        f"&nbsp;■&nbsp;</span>&nbsp;{value} = {name}"
    )


class AnnotateWidget(DockLifetime, QWidget):
    """Create and fill annotation layers; list the training set.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.state = state_for(napari_viewer)
        #: the copies of predictions into annotations, and their undo
        self.session = S.AnnotationSession()
        self._watched: list[tuple[Any, tuple[str, ...]]] = []  # (layer, events followed)
        #: annotated pixels per class of every pair, as last shown
        self.last_counts: dict[str, dict[int, int]] = {}
        self.saving = False  # a Save training set… under way
        self.copying = False  # a huge prediction being copied in
        self.copy_worker = None
        self.saved: list[str] | None = None  # the files the last one wrote

        self._image = combo("image", napari_viewer, "image", tip="the image to annotate")
        form = Container(widgets=[self._image])

        self.create_button = button(
            "Create annotation layer",
            self._on_create,
            "add '<image> annotation' (or select it) with the brush ready",
        )
        self.use_prediction_button = button(
            "Use prediction as annotation",
            self._on_use_prediction,
            "copy '<image> labels' in: 1 = background, 2 = object (with several classes: "
            "2, 3, … = class 1, 2, … from '<image> classes'); then paint corrections",
        )
        self.undo_button = button(
            "Undo copy", self._on_undo, "restore the annotation as it was before the copy"
        )
        self.undo_button.setEnabled(False)
        #: the suggestions of the last Segment, per image (what to correct next)
        self.worklists = W.Worklists(napari_viewer)
        steps = QHBoxLayout()
        self.previous_button = button(
            "◀ Previous",
            self._on_previous,
            f"back to the previous place the model doubts ({PREVIOUS_KEY})",
        )
        self.next_button = button(
            "Next ▶",
            self._on_next,
            f"go to the next place the model doubts, most doubtful first ({NEXT_KEY}): "
            "the view centres on it and the brush is ready; what you correct leaves the list",
        )
        steps.addWidget(self.previous_button)
        steps.addWidget(self.next_button)
        #: the entry shown: "3 of 12: much larger than the others (score 0.87)"
        self.suggestion_label = status_label()
        brush = QHBoxLayout()
        self._object_class = SpinBox(
            label="object class",
            value=1,
            min=1,
            max=MAX_OBJECT_CLASSES,
            tooltip="which object class 'Paint object' paints: class 1 is label 2, class 2 "
            "is label 3, …; a model learns one output per class painted",
        )
        self._object_class.changed.connect(self._on_object_class)
        self.object_button = button("Paint object (2)", lambda: self._on_brush(self.object_label))
        self.background_button = button("Paint background (1)", lambda: self._on_brush(1))
        self.erase_button = button("Erase (0)", lambda: self._on_brush(0))
        for b in (self.object_button, self.background_button, self.erase_button):
            brush.addWidget(b)
        form.append(self._object_class)
        self._forms = (form,)
        legend = QLabel("<br>".join(_swatch(v) for v in (2, 1, 0)))
        legend.setToolTip(
            "further object classes: labels 3, 4, … (pick the label in the layer "
            "controls); training then learns one output per class, and Segment adds "
            "'<image> classes'"
        )

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["image", "background px", "object px"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setMaximumHeight(130)
        self.summary = status_label()
        #: the last warning or error, kept until the next action
        self.message = status_label()

        files = QHBoxLayout()
        self.save_set_button = button(
            "Save training set…",
            self._on_save_training_set,
            "write every image, its annotation and the current model into one folder",
        )
        self.open_set_button = button(
            "Open training set…", self._on_open_training_set, "reopen a saved training-set folder"
        )
        files.addWidget(self.save_set_button)
        files.addWidget(self.open_set_button)
        self.save_annotation_button = button(
            "Save annotation…",
            self._on_save_annotation,
            "write the chosen image's annotation to a .zarr folder (chunk by chunk: the way "
            "to keep the annotation of a huge image, which lives in a working folder)",
        )

        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.create_button)
        layout.addLayout(brush)
        layout.addWidget(legend)
        layout.addWidget(self.use_prediction_button)
        layout.addWidget(self.undo_button)
        layout.addWidget(QLabel("<b>What to correct next</b> (the model's doubts)"))
        layout.addLayout(steps)
        layout.addWidget(self.suggestion_label)
        layout.addWidget(QLabel("<b>Training set</b> (every image with an annotation layer)"))
        layout.addWidget(self.table)
        layout.addWidget(self.summary)
        layout.addLayout(files)
        layout.addWidget(self.save_annotation_button)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)

        events = napari_viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._on_layers_changed)
        from .._workfolders import watch

        watch(napari_viewer)  # working folders of annotations go with their layers
        self._on_layers_changed()
        self.refresh()
        self._follower = ImageFollower(napari_viewer, self._image)
        self._keys = {NEXT_KEY: self._key_next, PREVIOUS_KEY: self._key_previous}
        for key, func in self._keys.items():
            napari_viewer.bind_key(key, func, overwrite=True)

    def _key_next(self, _viewer: Any = None) -> None:
        self._on_next()

    def _key_previous(self, _viewer: Any = None) -> None:
        self._on_previous()

    def _dispose(self) -> None:
        """The dock was closed: stop following the viewer's layers."""
        for key, func in self._keys.items():
            unbound = self.viewer.bind_key(key, None)
            if unbound is not None and unbound != func:  # another widget's: put it back
                self.viewer.bind_key(key, unbound)
        self._timer.stop()
        self._follower.disconnect()
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.disconnect(self._on_layers_changed)
        self._unwatch()

    # ------------------------------------------------------------------ helpers
    def reset_choices(self, *_: Any) -> None:
        self._image.reset_choices()

    def _warn(self, text: str) -> None:
        warn(text, self.message)

    def _new_action(self) -> None:
        self.message.setText("")  # the last message is over

    def _image_name(self) -> str | None:
        return self._image.value

    def annotation_layer(self, create: bool = False):
        """The chosen image's annotation layer (created when ``create``)."""

        name = self._image_name()
        image = L.find_layer(self.viewer, name, "image") if name else None
        if image is None:
            self._warn("Annotate: open an image first")
            return None
        ann_name = L.annotation_name(image.name)
        layer = L.find_layer(self.viewer, ann_name)
        if layer is not None and not L.is_labels(layer):
            self._warn(f"{ann_name!r} is not a Labels layer: rename it")
            return None
        if layer is not None and tuple(layer.data.shape) != L.spatial_shape(image):
            wrong, right = L.shape_text(layer.data.shape), L.shape_text(L.spatial_shape(image))
            if not create:
                return None
            # keep the person's mis-sized layer (renamed) and start one that fits
            layer.name = f"{ann_name} (old, {wrong})"
            self._warn(f"annotation {wrong} ≠ image {right}: old one kept (renamed), new one made")
            layer = None
        if layer is None and create and L.is_huge(image):
            # a huge image: an on-disk annotation, painted in place, read region by region
            layer = L.add_lazy_annotation(self.viewer, image, ann_name)
        elif layer is None and create:
            layer = self.viewer.add_labels(
                np.zeros(L.spatial_shape(image), np.uint8),
                name=ann_name,
                # a volume's z-step and axis labels: painted on any plane, in 3D
                **L.geometry_of(image),
                **L.annotation_layer_kwargs(),
            )
        return layer

    def _ready_brush(self, layer: Any, value: int = 2) -> None:
        self.viewer.layers.selection.active = layer
        layer.visible = True
        if value == 0:
            layer.mode = "erase"
        else:
            layer.selected_label = value
            layer.mode = "paint"
        if layer.brush_size < 2:
            layer.brush_size = L.BRUSH_SIZE

    # ------------------------------------------------------------------ callbacks
    def _on_create(self):
        """Create (or select) ``<image> annotation``, ready to paint objects."""
        self._new_action()
        layer = self.annotation_layer(create=True)
        if layer is None:
            return None
        if layer.metadata.get("napari_unet_kind") != "annotation":
            L.style_annotation_layer(layer)
        layer.brush_size = L.BRUSH_SIZE
        self._ready_brush(layer, self.object_label)
        self.worklists.track(self._image_name())
        self.refresh()
        return layer

    @property
    def object_label(self) -> int:
        """The annotation label of the object class chosen (class 1 → 2, …)."""
        return 1 + int(self._object_class.value)

    def _on_object_class(self, *_: Any) -> None:
        value = self.object_label
        text = "Paint object (2)" if value == 2 else f"Paint class {value - 1} ({value})"
        self.object_button.setText(text)
        layer = self.annotation_layer(create=False) if self._image_name() else None
        if layer is not None and layer.mode == "paint" and layer.selected_label >= 2:
            layer.selected_label = value

    def _on_brush(self, value: int) -> None:
        self._new_action()
        layer = self.annotation_layer(create=True)
        if layer is not None:
            self._ready_brush(layer, value)

    def _on_use_prediction(self, mode: str | None = None, region=None):
        """Copy ``<image> labels`` into the annotation (:mod:`.._annotation_session`).

        Parameters
        ----------
        mode
            ``"replace"`` (the whole annotation), ``"fill"`` (only pixels not painted yet)
            or ``None``: ask when the annotation already holds painted pixels.
        region
            A huge image only: ``(y0, y1, x0, x1)`` to copy (default: the part of the
            image in view), so that training reads what is annotated, not everything.

        Returns the annotation layer, or the worker that copies a huge prediction block by
        block in the background (``None`` when nothing was copied).
        """
        self._new_action()
        name = self._image_name()
        if not name:
            self._warn("Annotate: open an image first")
            return None
        pred = L.find_layer(self.viewer, L.labels_name(name), "labels")
        if pred is None:
            self._warn(f"no prediction of {name!r} yet: click Segment first")
            return None
        image = L.find_layer(self.viewer, name, "image")
        if tuple(pred.data.shape) != L.spatial_shape(image):
            self._warn(f"{pred.name!r} does not have the shape of {name!r}: segment again")
            return None
        layer = self.annotation_layer(create=True)
        if layer is None:
            return None
        classes = L.find_layer(self.viewer, L.classes_name(name), "labels")
        if classes is not None and tuple(classes.data.shape) != tuple(pred.data.shape):
            classes = None
        blockwise = L.is_huge(pred) or L.is_huge(layer)
        if blockwise and self.copying:
            return None
        if blockwise and len(layer.data.shape) != 2:
            self._warn("a huge prediction is copied into a 2D annotation only")
            return None
        mode = S.copy_mode(L.has_labels(layer.data), mode, lambda: self._ask_overwrite(layer.name))
        if mode is None:
            return None
        from .._workfolders import WORK_KEY

        copy = partial(
            S.copy_prediction,
            L.layer_array(pred),
            layer.data,
            mode,
            None if classes is None else L.layer_array(classes),
            reference=layer.metadata.get(S.COPIED_KEY),
            folder=layer.metadata.get(WORK_KEY),
            # a volume: the surfaces where instances touch in 3D stay unannotated
            axes=L.stack_axes_of(tuple(pred.data.shape), [pred, image])[0],
        )
        if not blockwise:
            self._copied(layer, copy(), None)
            return layer
        if region is None:
            region = L.region_in_view(image)
        return self._in_background(
            partial(copy, blockwise=True, region=region),
            "Use prediction as annotation",
            returned=lambda done: self._copied(layer, done, region),
        )

    def _copied(self, layer, copy: S.Copy, region) -> None:
        """A copy is done: the layer shows it, ready to paint corrections."""
        from napari.utils.notifications import show_info

        if layer not in self.viewer.layers:
            self._warn(
                f"{layer.name!r} was closed while the prediction was copied into it: "
                "nothing was changed; click 'Use prediction as annotation' again"
            )
            return
        if copy.data is layer.data:
            layer.refresh()  # written in place, block by block
        else:
            layer.data = copy.data
        self.session.record(layer.name, layer.metadata, copy)
        self.undo_button.setEnabled(self.session.can_undo)
        # the copy is the start: what is painted after it is a correction
        self.worklists.track(layer.name[: -len(L.ANNOTATION)])
        if layer.metadata.get("napari_unet_kind") != "annotation":
            L.style_annotation_layer(layer)
        self._ready_brush(layer, self.object_label)
        self.refresh()
        where = ""
        if region is not None:
            y0, y1, x0, x1 = region
            where = f" (the part in view: rows {y0}–{y1}, columns {x0}–{x1})"
        show_info(f"prediction copied{where}: paint corrections, then Train")

    def _in_background(self, work, action: str, returned=None, finished=None):
        """Run a block-by-block copy or undo in a worker; 'Use prediction' waits for it."""
        from ._ui import start_worker

        def done() -> None:
            self.copying = False
            self.use_prediction_button.setEnabled(True)
            if finished is not None:
                finished()

        self.copying = True
        self.use_prediction_button.setEnabled(False)
        self.copy_worker = start_worker(
            work,
            returned=returned,
            errored=lambda e: notify_error(e, action, self.message),
            finished=done,
        )
        return self.copy_worker

    def _ask_overwrite(self, layer_name: str) -> str | None:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Question)
        box.setWindowTitle("napari-unet")
        box.setText(f"{layer_name!r} already holds painted pixels.")
        box.setInformativeText(
            "Replace everything with the prediction, or only fill the pixels you have not "
            "painted? (Undo copy restores the current annotation.)"
        )
        replace = box.addButton("Replace all", QMessageBox.DestructiveRole)
        fill = box.addButton("Fill unpainted only", QMessageBox.AcceptRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(fill)
        box.exec_()
        clicked = box.clickedButton()
        return "replace" if clicked is replace else "fill" if clicked is fill else None

    def _on_undo(self):
        """Restore the annotations as they were before their last copy (with what had
        been copied before). An on-disk annotation (a huge image) is restored block by
        block in the background, like the copy, and the worker is returned (``None``
        otherwise)."""
        self._new_action()
        if self.copying:
            return None
        on_disk = []
        for name, undo in self.session.take_undo().items():
            layer = L.find_layer(self.viewer, name, "labels")
            if layer is None or layer.data.shape != undo.backup.shape:
                continue
            if undo.blockwise(layer.data):
                on_disk.append((undo, layer))
            else:
                data, reference = undo.put_back(layer.data)
                layer.data = data
                S.remember(layer.metadata, reference)
                self.worklists.track(name[: -len(L.ANNOTATION)])
        self.undo_button.setEnabled(False)
        self.refresh()
        if not on_disk:
            return None

        def work():
            return [undo.put_back(layer.data)[1] for undo, layer in on_disk]

        def returned(references) -> None:
            for (_, layer), reference in zip(on_disk, references):
                S.remember(layer.metadata, reference)

        def finished() -> None:
            for _, layer in on_disk:
                if layer in self.viewer.layers:
                    layer.refresh()
            self.refresh()

        return self._in_background(work, "Undo copy", returned=returned, finished=finished)

    def _on_next(self):
        """Go to the next place the model doubts (most doubtful first, wrapping around,
        skipping what was corrected); returns the entry (``None`` when there is none)."""
        return self._step(+1)

    def _on_previous(self):
        """Go back to the previous place the model doubts; returns the entry."""
        return self._step(-1)

    def _step(self, direction: int):
        from napari.utils.notifications import show_info

        self._new_action()
        name = self._image_name()
        labels = L.find_layer(self.viewer, L.labels_name(name), "labels") if name else None
        image = L.find_layer(self.viewer, name, "image") if name else None
        if labels is not None and image is not None:
            if tuple(labels.data.shape) != L.spatial_shape(image):
                labels = None  # another image's result under this name: none to show
        step = self.worklists.step(name, direction) if labels is not None else None
        if not isinstance(step, W.Step):
            text = step or self.worklists.why_none(name)
            show_info(text)
            self.suggestion_label.setText(text)
            return None
        # the brush is ready in the annotation (an object is painted as an object, a
        # missed one too); the prediction's labels layer selects the object's id
        layer = self.annotation_layer(create=True)
        if layer is None:
            return None
        if layer.metadata.get("napari_unet_kind") != "annotation":
            L.style_annotation_layer(layer)
        self._ready_brush(layer, self.object_label)
        W.select_entry(labels, step.suggestion)
        W.show_entry(self.viewer, labels, step.suggestion)
        self.suggestion_label.setText(step.line())
        return step.suggestion

    def _on_save_training_set(self, path: str | None = None):
        """Write the training set (and the current model) into a folder, in the
        background; returns the worker (``None`` when nothing started). ``saved`` holds
        the files written."""
        from napari.utils.notifications import show_info

        from napari_unet.core.files.training_sets import write_training_set

        from .._writer import training_set_of_viewer

        self._new_action()

        if not L.training_pairs(self.viewer):
            self._warn("no training set yet: create an annotation layer and paint first")
            return None
        path = (
            None
            if self.saving
            else save_path(
                self, path, "Save training set (a folder)", "training_set.unet", "Folders (*)"
            )
        )
        if path is None:
            return None
        entries, model = training_set_of_viewer(self.viewer, self.state)
        self.saved, self.saving = None, True

        def done(written: list[str]) -> None:
            self.saved = written
            show_info(f"training set saved: {Path(path).name}")

        def finished() -> None:
            self.saving = False

        return save_in_background(
            self.save_set_button,
            "Save training set",
            lambda: write_training_set(path, entries, **model),
            done=done,
            finished=finished,
        )

    def _on_save_annotation(self, path: str | None = None):
        """Write the chosen image's annotation layer to a ``.zarr`` folder in the
        background (only its painted chunks are read); returns the worker (``None``
        when nothing started). Opening the folder in napari gives the annotation back."""
        from napari.utils.notifications import show_info

        from napari_unet.core.memory import is_lazy
        from napari_unet.core.training.huge_annotations import save_labels_zarr

        self._new_action()

        layer = self.annotation_layer(create=False) if self._image_name() else None
        if layer is None:
            self._warn("no annotation layer to save: create one and paint first")
            return None
        path = (
            None
            if self.saving
            else save_path(
                self,
                path,
                "Save annotation (a .zarr folder)",
                f"{layer.name}.zarr",
                "Zarr folders (*.zarr)",
            )
        )
        if path is None:
            return None
        # an on-disk annotation is read in the worker; one in memory is copied here,
        # so painting can go on meanwhile
        data = layer.data if is_lazy(layer.data) else np.array(layer.data)
        if data.ndim != 2:
            self._warn("Save annotation: only 2D annotations; use 'Save training set…'")
            return None
        self.saved, self.saving = None, True

        def done(written) -> None:
            self.saved = [str(written)]
            show_info(f"annotation saved: {Path(written).name}")

        def finished() -> None:
            self.saving = False

        return save_in_background(
            self.save_annotation_button,
            "Save annotation",
            lambda: save_labels_zarr(data, path, layer.name),
            done=done,
            finished=finished,
        )

    def _on_open_training_set(self, path: str | None = None):
        """Open a training-set folder (images, annotations, model)."""
        from napari_unet.core.files.training_sets import INDEX_NAME, is_training_set

        self._new_action()
        if path is None:
            path = open_folder(self, "Open a napari-unet training set")
            if not path:
                return None
        if not is_training_set(path):
            self._warn(
                f"{Path(path).name!r} is not a napari-unet training set (it has no valid "
                f"{INDEX_NAME}): choose the folder that 'Save training set…' wrote, or open "
                "images with File ▸ Open"
            )
            return None
        try:
            return self.viewer.open(path, plugin="napari-unet")
        except Exception as e:  # noqa: BLE001 - shown to the person
            notify_error(getattr(e, "original_error", None) or e, "Open training set", self.message)
            return None

    # ------------------------------------------------------------------ live list
    def _on_layers_changed(self, *_: Any) -> None:
        from napari_unet.core.memory import is_lazy

        self._unwatch()
        for layer in self.viewer.layers:
            names = COUNT_EVENTS
            if hasattr(layer.events, "paint") and not is_lazy(layer.data):
                names += (UNDO_EVENT,)
            names = tuple(ev for ev in names if hasattr(layer.events, ev))
            for ev in names:
                getattr(layer.events, ev).connect(self.schedule_refresh)
            self._watched.append((layer, names))
        self.schedule_refresh()

    def _unwatch(self) -> None:
        for layer, names in self._watched:
            for ev in names:
                getattr(layer.events, ev).disconnect(self.schedule_refresh)
        self._watched = []

    def schedule_refresh(self, *_: Any) -> None:
        """Recount soon (throttled: at most once per ``REFRESH_MS`` while painting)."""
        if not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        """Recount the annotated pixels of every pair and show them."""
        pairs = L.training_pairs(self.viewer)
        self.last_counts = {p.name: L.annotated_counts(p.annotation.data) for p in pairs}
        table = S.count_table(self.last_counts)
        self.table.setColumnCount(len(table.headers))
        self.table.setHorizontalHeaderLabels(table.headers)
        self.table.setRowCount(len(table.rows))
        for row, values in enumerate(table.rows):
            for col, text in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(text))
        misfits = L.misfit_annotations(self.viewer)
        if misfits:
            image, ann = misfits[0]
            self.summary.setText(
                f"{ann.name!r} is {L.shape_text(ann.data.shape)} but {image.name!r} is "
                f"{L.shape_text(L.spatial_shape(image))}: it is left out of training; "
                "click 'Create annotation layer' to start one that fits"
            )
        else:
            self.summary.setText(table.readiness)
        for image in L.image_layers(self.viewer):
            # new suggestions (a Segment, the preview after Train): a new list, tracked
            # against the annotation as it is now
            self.worklists.get(image.name)
        self._refresh_suggestion()

    def _refresh_suggestion(self) -> None:
        """Keep the suggestion line true while painting: the count of open entries
        drops as they are corrected."""
        name = self._image_name()
        counts = self.worklists.open_count(name) if name else None
        if counts is None or not self.suggestion_label.text():
            return
        step = self.worklists.current(name)
        if step is not None:
            self.suggestion_label.setText(step.line())
        elif counts[1]:
            self.suggestion_label.setText(
                f"{counts[0]} of {counts[1]} left to check: Next ({NEXT_KEY}) goes to the next"
            )
