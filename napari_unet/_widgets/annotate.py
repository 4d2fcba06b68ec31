"""Annotate: the ``<image> annotation`` layer, the brush, the prediction as a start,
and the list of every image/annotation pair (the training set) with its pixel counts."""

from __future__ import annotations

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

from .. import _layers as L
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
        self._backup: dict[str, np.ndarray] = {}
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

    def _dispose(self) -> None:
        """The dock was closed: stop following the viewer's layers."""
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
                scale=image.scale,
                translate=image.translate,
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
        """Copy ``<image> labels`` into the annotation.

        Parameters
        ----------
        mode
            ``"replace"`` (the whole annotation), ``"fill"`` (only pixels not painted yet)
            or ``None``: ask when the annotation already holds painted pixels.
        region
            A huge image only: ``(y0, y1, x0, x1)`` to copy (default: the part of the
            image in view), so that training reads what is annotated, not everything.
        """
        from napari.utils.notifications import show_info

        from napari_unet.core import mask_to_annotation

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
        if L.is_huge(pred) or L.is_huge(layer):
            if region is None:
                region = L.region_in_view(image)
            return self._use_lazy_prediction(pred, classes, layer, mode, region)
        old = np.asarray(layer.data)
        # a model with several object classes: each object is copied as its class's
        # label (class 1 → 2, class 2 → 3, …)
        new = mask_to_annotation(
            np.asarray(pred.data), None if classes is None else np.asarray(classes.data)
        )
        predicted = new
        if old.any():
            if mode is None:
                mode = self._ask_overwrite(layer.name)
            if mode not in ("replace", "fill"):
                return None
            self._backup[layer.name] = old.copy()
            self.undo_button.setEnabled(True)
            if mode == "fill":
                new = np.where(old > 0, old, new).astype(new.dtype)
        if new.dtype != np.uint8 and int(new.max(initial=0)) <= np.iinfo(np.uint8).max:
            new = new.astype(np.uint8)
        layer.data = new
        # what the prediction says, so that Train can tell what a person painted (also
        # strokes kept by "fill unpainted only") from copied pixels
        layer.metadata[L.COPIED_KEY] = predicted.astype(layer.data.dtype)
        if layer.metadata.get("napari_unet_kind") != "annotation":
            L.style_annotation_layer(layer)
        self._ready_brush(layer, self.object_label)
        self.refresh()
        show_info("prediction copied: paint corrections, then Train")
        return layer

    def _use_lazy_prediction(self, pred, classes, layer, mode: str | None, region=None):
        """The prediction of a huge image (a lazy layer) copied into its on-disk
        annotation block by block (within ``region``, ``(y0, y1, x0, x1)``, when given),
        in the background; returns the worker (``None`` when nothing started). Undo
        restores a copy of the annotation kept on disk."""
        from napari.utils.notifications import show_info

        from napari_unet.core.regions import create_labels_zarr, is_lazy

        from .._workfolders import WORK_KEY
        from ._ui import start_worker

        if self.copying:
            return None
        if len(layer.data.shape) != 2:
            self._warn("a huge prediction is copied into a 2D annotation only")
            return None
        if L.has_labels(layer.data):
            if mode is None:
                mode = self._ask_overwrite(layer.name)
            if mode not in ("replace", "fill"):
                return None
        else:
            mode = "replace"
        folder = layer.metadata.get(WORK_KEY)
        labels = L.layer_array(pred)
        cls = None if classes is None else L.layer_array(classes)
        target = layer.data

        def work():
            from napari_unet.core.regions import copy_labels, prediction_to_annotation

            backup = copied = None
            if folder and is_lazy(target):
                backup = create_labels_zarr(
                    f"{folder}/before-copy.zarr", target.shape, overwrite=True
                )
                copy_labels(target, backup)
            prediction_to_annotation(labels, target, mode, cls, box=region)
            if folder and is_lazy(target):
                copied = create_labels_zarr(f"{folder}/copied.zarr", target.shape, overwrite=True)
                copy_labels(target, copied)
            return backup, copied

        def done(result) -> None:
            backup, copied = result
            if layer not in self.viewer.layers:
                self._warn(
                    f"{layer.name!r} was closed while the prediction was copied into it: "
                    "nothing was changed; click 'Use prediction as annotation' again"
                )
                return
            if backup is not None:
                self._backup[layer.name] = backup
                self.undo_button.setEnabled(True)
            if copied is not None:
                layer.metadata[L.COPIED_KEY] = copied
            if layer.metadata.get("napari_unet_kind") != "annotation":
                L.style_annotation_layer(layer)
            layer.refresh()
            self._ready_brush(layer, self.object_label)
            self.refresh()
            where = ""
            if region is not None:
                y0, y1, x0, x1 = region
                where = f" (the part in view: rows {y0}–{y1}, columns {x0}–{x1})"
            show_info(f"prediction copied{where}: paint corrections, then Train")

        def finished() -> None:
            self.copying = False
            self.use_prediction_button.setEnabled(True)

        self.copying = True
        self.use_prediction_button.setEnabled(False)
        self.copy_worker = start_worker(
            work,
            returned=done,
            errored=lambda e: notify_error(e, "Use prediction as annotation", self.message),
            finished=finished,
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
        """Restore the annotation saved before the last copy. An on-disk annotation (a
        huge image) is restored block by block in the background, like the copy, and
        the worker is returned (``None`` otherwise)."""
        self._new_action()
        from napari_unet.core.regions import copy_labels, is_lazy

        from ._ui import start_worker

        if self.copying:
            return None
        on_disk = []
        for name, data in list(self._backup.items()):
            layer = L.find_layer(self.viewer, name, "labels")
            if layer is not None and layer.data.shape == data.shape:
                if is_lazy(data) and is_lazy(layer.data):
                    on_disk.append((data, layer))
                else:
                    layer.data = data
                layer.metadata.pop(L.COPIED_KEY, None)
        self._backup.clear()
        self.undo_button.setEnabled(False)
        self.refresh()
        if not on_disk:
            return None

        def work() -> None:
            for data, layer in on_disk:
                copy_labels(data, layer.data)  # only the blocks that hold labels

        def finished() -> None:
            self.copying = False
            self.use_prediction_button.setEnabled(True)
            for _, layer in on_disk:
                if layer in self.viewer.layers:
                    layer.refresh()
            self.refresh()

        self.copying = True
        self.use_prediction_button.setEnabled(False)
        self.copy_worker = start_worker(
            work,
            errored=lambda e: notify_error(e, "Undo copy", self.message),
            finished=finished,
        )
        return self.copy_worker

    def _on_save_training_set(self, path: str | None = None):
        """Write the training set (and the current model) into a folder, in the
        background; returns the worker (``None`` when nothing started). ``saved`` holds
        the files written."""
        from napari.utils.notifications import show_info

        from napari_unet.core.trainingset import write_training_set

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

        from napari_unet.core.regions import is_lazy, save_labels_zarr

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
        from napari_unet.core.trainingset import INDEX_NAME, is_training_set

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
        from napari_unet.core.regions import is_lazy

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
        counts = [L.annotated_counts(p.annotation.data) for p in pairs]
        self.last_counts = {p.name: c for p, c in zip(pairs, counts)}
        extra = sorted({v for c in counts for v in c if v > 2})
        headers = ["image", "background px", "object px"] + [
            f"class {v - 1} ({v}) px" for v in extra
        ]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(pairs))
        for row, (pair, c) in enumerate(zip(pairs, counts)):
            values = [pair.name] + [f"{c.get(v, 0):,}" for v in [1, 2] + extra]
            for col, text in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(text))
        bg = sum(c.get(1, 0) for c in counts)
        obj = sum(c.get(v, 0) for c in counts for v in c if v >= 2)
        misfits = L.misfit_annotations(self.viewer)
        if misfits:
            image, ann = misfits[0]
            self.summary.setText(
                f"{ann.name!r} is {L.shape_text(ann.data.shape)} but {image.name!r} is "
                f"{L.shape_text(L.spatial_shape(image))}: it is left out of training; "
                "click 'Create annotation layer' to start one that fits"
            )
        elif not pairs:
            self.summary.setText("no annotation layer yet: click 'Create annotation layer'")
        elif bg == 0 or obj == 0:
            missing = "background (1)" if bg == 0 else "object (2)"
            self.summary.setText(f"paint some {missing} pixels before training")
        else:
            self.summary.setText(f"{len(pairs)} image(s) ready to train")
