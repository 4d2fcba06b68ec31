"""Segment: one click turns an image layer into ``<image> probability`` and
``<image> labels``, updated in place on every run."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtWidgets import QHBoxLayout, QVBoxLayout
from superqt import QCollapsible

from napari_unet.core.config import LIMITS, check_limit, diameter_argument, typed_setting
from napari_unet.core.jobs.planning import (
    BUNDLED_MODELS,
    ModelSpec,
    bundled_choices,
    bundled_model_name,
)
from napari_unet.core.prediction.doubt import width_words
from napari_unet.core.prediction.instances import PostprocessParams

from .. import _layers as L
from . import _workers
from ._ui import (
    ImageFollower,
    JobWidget,
    button,
    combo,
    file_edit,
    notify_error,
    plain_error,
    progress_bar,
    status_label,
    warn,
)
from ._workers import (
    LazySegmentResult,
    SegmentJob,
    SegmentResult,
    SegmentStopped,
    StageUpdate,
    Status,
    TileProgress,
    segment_worker,
)

#: The object diameter field's "auto" (measured in each image); 0 is the image as it is.
MEASURE = -1
#: Characters a napari notification shows on its one line.
TOAST_CHARS = 45
MODEL_CHOICES = [
    ("current model (trained / loaded here)", "current"),
    *bundled_choices(),  # the default ("default"), then the others by name ("nuclei")
    ("model file…", "file"),
]


def _file_slot(path: str | None) -> str:
    """Where the cache keeps a network loaded from ``path``: one place per bundled model
    (``"nuclei"``), one for the file chosen by hand (``"file"``)."""
    return (bundled_model_name(path) if path else None) or "file"


class SegmentWidget(JobWidget):
    """Pick an image and a model; one click segments it in a background thread.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        # "default", a bundled model's name ("nuclei") or "file" -> (key, UNet); a
        # file's key is its path and modification time (see _file_slot)
        self._cache: dict[str, tuple[Any, Any]] = {}

        self._image = combo("image", napari_viewer, "image", tip="the image layer to segment")
        self._model = ComboBox(
            label="model",
            choices=MODEL_CHOICES,
            value="current" if self.state.available else "default",
            tooltip="which network segments the image",
        )
        self._file = file_edit(label="model file", mode="r", filter="*.keras *.zip")
        self._file.visible = self._model.value == "file"
        self._model.changed.connect(lambda v: setattr(self._file, "visible", v == "file"))
        tiles = LIMITS["tile_size"]
        self._tile = SpinBox(
            label="tile size",
            value=0,
            min=0,
            max=int(tiles.hi),
            step=64,
            tooltip="edge of the tiles the network sees, "
            f"{tiles.text()}; 0 = automatic (large images are tiled)",
        )
        self._threshold = FloatSpinBox(
            label="threshold",
            value=0.0,
            min=0.0,
            max=0.95,
            step=0.05,
            tooltip="foreground probability above which a pixel belongs to an object; "
            "0 = the model's own (tuned on its training annotation; 0.5 for a model without one)",
        )
        self._diameter = SpinBox(
            label="object diameter (px)",
            value=MEASURE,
            min=MEASURE,
            max=100_000,  # the real bound depends on the model and image: core checks it
            tooltip="typical width of the objects in this image, in pixels; the image is "
            "rescaled so they match what the model learned (from a quarter to 8× the "
            "model's own object width, and less than the image). auto = measured "
            "automatically; 0 = the image as it is (as --diameter 0 on the command line)",
        )
        self._min_size = SpinBox(
            label="min size (px)",
            value=0,
            min=int(LIMITS["min_size"].lo),
            max=int(LIMITS["min_size"].hi),
            tooltip="drop objects smaller than this many pixels; 0 = the model's own "
            f"(tuned on its training annotation; {PostprocessParams().min_size} for a new "
            "model), 1 = keep every object",
        )
        form = Container(widgets=[self._image, self._model, self._file])
        advanced = Container(widgets=[self._diameter, self._tile, self._threshold, self._min_size])
        more = QCollapsible("Advanced")
        more.addWidget(advanced.native)
        self._forms = (form, advanced)
        # the values that let napari-unet decide (the lowest): say so in the field
        self._threshold.native.setSpecialValueText("model's own")
        self._diameter.native.setSpecialValueText("auto")
        self._min_size.native.setSpecialValueText("model's own")

        self.model_label = status_label()
        self.run_button = button("Segment", self._on_segment, "segment the chosen image")
        self.stop_button = button(
            "Stop", self._on_stop, "stop a block-by-block run after the block under way"
        )
        self.stop_button.setEnabled(False)
        self._job: SegmentJob | None = None
        self.stages: list[str] = []  # the stages the last run showed, in order
        self.progress = progress_bar()
        self.status = status_label()

        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.model_label)
        layout.addWidget(more)
        run = QHBoxLayout()
        run.addWidget(self.run_button)
        run.addWidget(self.stop_button)
        layout.addLayout(run)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.state.subscribe(self._on_state)
        self._on_state(switch=False)
        self._follower = ImageFollower(napari_viewer, self._image)
        self._job_name: str | None = None  # the image the run under way segments
        self._discarded: str | None = None  # why the run's result is not shown
        napari_viewer.layers.events.removed.connect(self._on_layer_removed)
        # TensorFlow and the bundled model load in the background meanwhile (a thread,
        # never this one): the first Segment takes them or waits for them
        _workers.PRELOAD.start(load_default=self._model.value == "default")

    # ------------------------------------------------------------------ plumbing
    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer lists (napari calls this when layers change)."""
        self._image.reset_choices()

    def _on_state(self, switch: bool = True) -> None:
        self.model_label.setText(f"current model: {self.state.describe()}")
        if switch and self.state.available and not self._busy:
            self._model.value = "current"  # after training, "segment again" uses it

    def model_spec(self) -> ModelSpec:
        """The chosen model as plain data (cached networks travel along)."""
        kind = self._model.value
        if kind == "current":
            return ModelSpec("current", path=self.state.path, model=self.state.model)
        if kind == "file" or kind in BUNDLED_MODELS:
            if kind == "file":
                path = str(self._file.value) if str(self._file.value) not in ("", ".") else None
                spec = ModelSpec("file", path=path)
            else:
                spec = ModelSpec.bundled(kind)
            return replace(spec, model=self._cached(spec.path))
        cached = self._cache.get("default")
        return ModelSpec(kind, model=cached[1] if cached else None)

    def _cached(self, path: str | None):
        """The network last loaded from the file ``path``, if the file has not changed
        since."""
        key = (path, os.path.getmtime(path)) if path and os.path.isfile(path) else None
        cached = self._cache.get(_file_slot(path)) if key else None
        return cached[1] if cached and cached[0] == key else None

    def job(self) -> SegmentJob | None:
        """Read the widget into a plain job (GUI thread)."""
        name = self._image.value
        layer = L.find_layer(self.viewer, name, "image") if name else None
        if layer is None:
            return None
        tile = typed_setting("tile_size", int(self._tile.value))
        diameter = int(self._diameter.value)
        if tile is not None:  # 0 is automatic; a tile too small is refused with the range
            check_limit("tile_size", tile, say="tile size")
        # the layer's own data (a dask or zarr array stays one: a huge image is read
        # block by block in the worker, never converted here)
        return SegmentJob(
            image=L.layer_array(layer),
            multiscale=bool(getattr(layer, "multiscale", False)),
            axis_labels=tuple(str(a) for a in getattr(layer, "axis_labels", ())),
            scale=tuple(float(s) for s in layer.scale),
            name=layer.name,
            rgb=bool(layer.rgb),
            tile_size=tile,
            threshold=typed_setting("threshold", float(self._threshold.value)),
            min_size=typed_setting("min_size", int(self._min_size.value)),
            diameter=diameter_argument(None if diameter == MEASURE else float(diameter)),
        )

    # ------------------------------------------------------------------ callbacks
    def _on_segment(self, image: str | None = None):
        """Segment the chosen (or named) image; returns the worker (``None`` if not started)."""
        if self.running:
            return None
        if image is not None:
            self._image.value = image
        self.status.setText("")  # a new action: the last message is over
        from napari_unet.core import UserInputError

        try:
            job = self.job()
        except UserInputError as e:  # a setting out of range: said with the range
            notify_error(e, "Segment", self.status)
            return None
        if job is None:
            warn("Segment: open an image first (File ▸ Open)", self.status)
            return None
        self._job_name = job.name
        self._discarded = None
        spec = self.model_spec()
        self._busy = True
        self._job = job
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"segmenting {job.name}…")
        self.stages = []
        return self._start(segment_worker, spec, job)

    def _on_stop(self) -> None:
        """Stop a block-by-block run after the blocks under way; nothing is shown and
        its files are removed. (A whole-image run is short and ends by itself.)"""
        if self._job is not None and self.running:
            self._job.stop_event.set()
            self.stop_button.setEnabled(False)
            self.status.setText("stopping after this block…")

    def _dispose(self) -> None:
        super()._dispose()
        self._follower.disconnect()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self._on_stop()

    def _on_layer_removed(self, event: Any) -> None:
        """The image being segmented was deleted: stop the run (a block-by-block one
        stops after the blocks under way) and show nothing of it."""
        # names, not identities: a plugin sees the viewer's layers through proxies
        name = self._job_name
        if (
            not self.running
            or name is None
            or event.value.name != name
            or name in self.viewer.layers
        ):
            return
        self._discarded = f"{name!r} was closed while it was being segmented"
        if self._job is not None:
            self._job.stop_event.set()
        self.stop_button.setEnabled(False)
        self.status.setText(f"{self._discarded}: stopping; its result will not be shown")

    def _on_yielded(self, batch: list) -> None:
        name = self._job.name if self._job is not None else ""
        for item in batch:
            if isinstance(item, TileProgress):
                self.progress.setRange(0, max(1, item.total))
                self.progress.setValue(item.done)
                if item.done < item.total:
                    self.status.setText(
                        f"{name}: predicting {item.unit} {item.done + 1}/{item.total}…"
                    )
            elif isinstance(item, StageUpdate):
                if item.stage.name != "PREDICT":
                    self.progress.setRange(0, 0)  # busy: no count to show
                self.stages.append(item.stage.value)
                self.status.setText(f"{name}: {item.stage.value}…")
            elif isinstance(item, Status):
                self.status.setText(item.text)

    def _on_returned(self, result) -> None:
        if self._discarded is not None:
            warn(
                f"Segment: {self._discarded}, so its result was discarded; open the "
                "image again and click Segment",
                self.status,
            )
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            return
        if isinstance(result, SegmentStopped):
            self.status.setText(f"{result.name}: stopped; nothing was changed")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            return
        self._adopt_model(result)
        self._remember_diameter(result.name)
        if isinstance(result, LazySegmentResult):
            self._show_lazy(result)
        else:
            self._show(result)

    def _remember_diameter(self, name: str) -> None:
        """The image was segmented at a diameter the person typed: kept on its layer, so
        that Train learns it at the scale it was segmented at (measured: forgotten)."""
        layer = L.find_layer(self.viewer, name, "image")
        typed = self._job.diameter if self._job is not None else None
        if layer is None:
            return
        if isinstance(typed, int | float):
            layer.metadata[L.DIAMETER_KEY] = float(typed)
        else:
            layer.metadata.pop(L.DIAMETER_KEY, None)

    def _show_lazy(self, result: LazySegmentResult) -> None:
        pred = result.prediction
        L.show_lazy_prediction(
            self.viewer, result.name, pred, result.channel_axis, folder=pred.folder
        )
        size = ""
        if pred.scale != 1.0 and pred.diameter:
            size = f", objects ~{pred.diameter:.0f} px wide, seen at x{pred.scale:.2f}"
        self.status.setText(
            f"{result.name}: {pred.n_instances} objects in {result.seconds:.1f} s "
            f"(block by block, {result.blocks} blocks{size})" + _stained(result)
        )
        self._say_doubt(result.name, pred.doubt)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)

    def _adopt_model(self, result) -> None:
        spec, state = result.spec, self.state
        if spec.kind == "current":
            if state.model is None and state.path and state.path == spec.path:
                state.model = result.model  # loaded lazily: keep it
        else:
            if spec.kind == "file" and spec.path:
                key = (spec.path, os.path.getmtime(spec.path))
                self._cache[_file_slot(spec.path)] = (key, result.model)
            elif spec.kind == "default":
                self._cache["default"] = (None, result.model)
            # the model just used becomes the one to correct and fine-tune (Train),
            # unless that would drop a model trained here and not saved yet
            if not state.unsaved and state.model is not result.model:
                from napari_unet.core.jobs.planning import default_model_path

                path = spec.path if spec.kind == "file" else str(default_model_path())
                name = spec.describe() if spec.kind == "default" else spec.name
                state.set_model(result.model, name or os.path.basename(path), path)

    def _show(self, result: SegmentResult) -> None:
        before = L.find_layer(self.viewer, L.labels_name(result.name), "labels")
        was = None
        if (
            before is not None
            and not before.metadata.get(L.WORK_KEY)  # a lazy result: never read it whole
            and before.data.shape == result.prediction.labels.shape
        ):
            was = int(np.max(before.data, initial=0))
        L.show_prediction(self.viewer, result.name, result.prediction, result.channel_axis)
        n = int(result.prediction.labels.max(initial=0))
        change = "" if was is None else f" (was {was})"
        size = ""
        pred = result.prediction
        if pred.scale != 1.0 and pred.diameter:
            size = f" ({width_words(pred.diameter, pred.doubt)}, seen at x{pred.scale:.2f})"
        per_class = ""
        if pred.instance_classes is not None:
            counts = np.bincount(pred.instance_classes, minlength=pred.n_object_classes + 1)
            names = pred.class_names or []
            per_class = (
                " ("
                + ", ".join(
                    f"{int(c)} {names[k] if k < len(names) else f'class {k + 1}'}"
                    for k, c in enumerate(counts[1:])
                )
                + ")"
            )
        self.status.setText(
            f"{result.name}: {n} objects{per_class}{change} in {result.seconds:.1f} s{size}"
            + _stained(result)
        )
        if result.volume:  # a stack whose axes say Z: one id per object through z
            from napari.utils.notifications import show_info

            said = f"{result.name}: segmented as a 3D volume ({result.volume})"
            show_info(said)
            self.status.setText(f"{self.status.text()}\n{said}")
        if result.nonfinite:
            from napari.utils.notifications import show_warning

            from napari_unet.core.normalize import nonfinite_message

            show_warning(nonfinite_message(result.name, result.nonfinite))
        self._say_doubt(result.name, pred.doubt)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)

    def _say_doubt(self, name: str, doubt) -> None:
        """A result the model is likely wrong about: a short warning, and the whole line
        (what to do) kept in the panel under the count until the next run."""
        if doubt is None:
            return
        from napari.utils.notifications import show_warning

        toast = f"{name}: {doubt.headline}"  # a toast shows one line: the name if it fits
        show_warning(toast if len(toast) <= TOAST_CHARS else doubt.headline)
        line = doubt.say(" (object diameter, under Advanced)")
        self.status.setText(f"{self.status.text()}\n⚠ {line}")

    def _on_errored(self, error: BaseException) -> None:
        notify_error(error, "Segment")
        self.status.setText(f"failed: {plain_error(error)}")  # kept until the next run
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    def _on_finished(self) -> None:
        self._busy = False
        self._job = None
        self._job_name = None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)


def _stained(result) -> str:
    """A line for the status when the image was read as a stained slide's haematoxylin,
    so the person knows which colours the model looked at."""
    if not result.stained:
        return ""
    return "\na stained slide: its haematoxylin (the nuclei's stain) was segmented"
