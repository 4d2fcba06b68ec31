"""Train: fine-tune the default or current model, or a new network, on every
image/annotation pair, in the background, with a live curve, a live preview and Stop."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtWidgets import (
    QApplication,
    QGroupBox,
    QHBoxLayout,
    QMessageBox,
    QVBoxLayout,
)
from superqt import QCollapsible

from napari_unet.core.config import (
    FINE_TUNE_LEARNING_RATE,
    LIMITS,
    NEW_NETWORK_LEARNING_RATE,
    PREVIEW_INTERVAL,
    TrainConfig,
    UNetConfig,
    input_channels_for,
    typed_setting,
)
from napari_unet.core.jobs.planning import (
    BUNDLED_MODELS,
    ModelSpec,
    bundled_choices,
    default_model_installed,
    plan_network,
)
from napari_unet.core.training.loop import ProgressKind

from .. import _layers as L
from .._training_data import (
    ModelChoice,
    fraction_done,
    painted_pairs,
    preview_plane,
    stop_reason,
    typed_words,
)
from ._plot import LossPlot
from ._ui import (
    JobWidget,
    button,
    metric_name,
    notify_error,
    open_path,
    plural,
    progress_bar,
    save_in_background,
    save_path,
    start_worker,
    status_label,
)
from ._workers import Status, TrainJob, TrainOutcome, train_worker

INIT_CHOICES = [
    ("current model", "current"),
    *bundled_choices(),  # the default ("default"), then the others by name ("nuclei")
    ("new network (from scratch)", "new"),
]
PROGRESS_STEPS = 1000


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _spin(name: str, kind=int) -> dict:
    """A spin box's range: core's valid range of the setting (the same as the command
    line's)."""
    limit = LIMITS[name]
    return {"min": kind(limit.lo), "max": kind(limit.hi)}


class TrainWidget(JobWidget):
    """Train a U-Net on all annotated images in a background thread.

    Parameters
    ----------
    napari_viewer
        The viewer whose image/annotation pairs form the training set.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.job: TrainJob | None = None
        self.outcome: TrainOutcome | None = None
        self.last_epoch = None  # the last epoch record (core TrainProgress)
        self._preview_target: tuple | None = None  # (layer name, plane index, channel axis)
        self._last_status = 0.0
        self.saving = False  # a Save model… under way
        self.saved: Path | None = None  # the file the last Save model… wrote
        self.load_worker = None  # a bioimage.io package's check under way (Load model…)

        if self.state.available:
            init = "current"
        elif default_model_installed():
            init = "default"
        else:
            init = "new"
        # defaults come from core: the presets for training in the viewer
        arch, cfg = UNetConfig.interactive(), TrainConfig.interactive()
        self._init = ComboBox(label="start from", choices=INIT_CHOICES, value=init)
        self._depth = SpinBox(
            label="depth",
            value=arch.depth,
            tooltip="pooling steps of the new U-Net",
            **_spin("depth"),
        )
        self._filters = ComboBox(
            label="base filters",
            choices=sorted({8, 16, 32, 64, arch.base_filters}),
            value=arch.base_filters,
            tooltip="width of the new U-Net",
        )
        self._init.changed.connect(self._on_init_changed)
        self._time = SpinBox(
            label="time limit (s)",
            value=int(cfg.time_limit or 0),
            min=0,
            max=int(LIMITS["time_limit"].hi),
            step=30,
            tooltip="stop after this long (0 = no limit); the best weights are kept",
        )
        self._epochs = SpinBox(label="epochs", value=cfg.epochs, **_spin("epochs"))
        self._patch = SpinBox(
            label="patch size", value=cfg.patch_size, step=16, **_spin("patch_size")
        )
        self._batch = SpinBox(label="batch size", value=cfg.batch_size, **_spin("batch_size"))
        self._lr = FloatSpinBox(
            label="learning rate",
            value=cfg.learning_rate or 0.0,
            step=0.0001,
            **_spin("learning_rate", float),
            tooltip=f"0 = automatic: {FINE_TUNE_LEARNING_RATE:g} to fine-tune a trained model, "
            f"{NEW_NETWORK_LEARNING_RATE:g} for a new one",
        )
        self._lr.native.setSpecialValueText("auto")
        self._preview = ComboBox(
            label="live preview",
            choices=self._preview_choices,
            nullable=True,
            tooltip="image whose prediction layers refresh while training runs",
        )
        self._auto_preview, self._setting_preview = True, False
        self._preview.changed.connect(self._on_preview_changed)
        self._steps = SpinBox(
            label="steps per epoch", value=cfg.steps_per_epoch, **_spin("steps_per_epoch")
        )
        self._val = FloatSpinBox(
            label="validation fraction",
            value=cfg.val_fraction,
            step=0.05,
            **_spin("val_fraction", float),
        )
        self._interval = SpinBox(
            label="preview every (s)", value=int(PREVIEW_INTERVAL), **_spin("preview_interval")
        )
        self._patience = SpinBox(
            label="early-stop patience",
            value=cfg.early_stopping_patience,
            **_spin("early_stopping_patience"),
        )

        main = Container(
            widgets=[
                self._init,
                self._depth,
                self._filters,
                self._time,
                self._epochs,
                self._preview,
            ]
        )
        more_form = Container(
            widgets=[
                self._patch,
                self._batch,
                self._lr,
                self._steps,
                self._val,
                self._interval,
                self._patience,
            ]
        )
        more = QCollapsible("Advanced")
        more.addWidget(more_form.native)
        self._forms = (main, more_form)

        self.model_label = status_label()
        self.train_button = button("Train", self._on_train, "train on every annotated image")
        self.stop_button = button(
            "Stop", self._on_stop, "stop after the current batch, keeping the best weights"
        )
        self.stop_button.setEnabled(False)
        self.save_button = button("Save model…", self._on_save, "save the current model (.keras)")
        self.load_button = button(
            "Load model…", self._on_load, "make a model file the current model"
        )
        self.progress = progress_bar()
        self.status = status_label("annotate an image (Annotate), then Train")
        self.plot = LossPlot()
        # before/after of the last run, with the model it replaced one click away
        self.choice: ModelChoice | None = None
        self.compare_panel = QGroupBox("Last training: before and after")
        self.compare_label = status_label()
        self.keep_new_button = button(
            "Keep the new model", self._on_keep_new, "make the model this training made current"
        )
        self.go_back_button = button(
            "Go back to the previous one",
            self._on_go_back,
            "make the model you had before this training current again",
        )
        choose = QHBoxLayout()
        choose.addWidget(self.keep_new_button)
        choose.addWidget(self.go_back_button)
        panel = QVBoxLayout(self.compare_panel)
        panel.addWidget(self.compare_label)
        panel.addLayout(choose)
        self.compare_panel.setVisible(False)

        run = QHBoxLayout()
        run.addWidget(self.train_button)
        run.addWidget(self.stop_button)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addWidget(main.native)
        layout.addWidget(more)
        layout.addLayout(run)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot)
        layout.addWidget(self.compare_panel)
        layout.addWidget(self.model_label)
        layout.addLayout(files)
        layout.addStretch(1)

        self._on_init_changed(self._init.value)
        self.reset_choices()
        self.state.subscribe(self._on_state)
        self._on_state()
        app = QApplication.instance()
        if app is not None:  # napari closing: let a run end within one batch
            app.aboutToQuit.connect(self._on_stop)

    def _dispose(self) -> None:
        """The dock was closed: stop the run (within one batch) and let go."""
        super()._dispose()
        self._on_stop()
        app = QApplication.instance()
        if app is not None:
            try:
                app.aboutToQuit.disconnect(self._on_stop)
            except (TypeError, RuntimeError):  # already gone
                pass

    # ------------------------------------------------------------------ plumbing
    def _preview_choices(self, widget=None) -> list[str]:
        names = [p.name for p in L.training_pairs(self.viewer)]
        others = [layer.name for layer in L.image_layers(self.viewer) if layer.name not in names]
        return names + others

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer lists (napari calls this when layers change)."""
        self._preview.reset_choices()
        if self._preview.value is None and self._auto_preview:
            choices = [c for c in self._preview.choices if c is not None]
            if choices:
                self._setting_preview = True
                self._preview.value = choices[0]
                self._setting_preview = False

    def _on_preview_changed(self, *_: Any) -> None:
        if not self._setting_preview:  # the person chose: stop choosing for them
            self._auto_preview = False

    def _on_init_changed(self, value: str) -> None:
        self._depth.visible = self._filters.visible = value == "new"

    def _on_state(self) -> None:
        choice = self.choice
        if choice is not None:
            shown = choice.new if choice.current == "new" else choice.previous
            if shown is None or self.state.model is not shown[0]:
                self._drop_choice()  # another model was made current (Load model…)
        self.model_label.setText(f"current model: {self.state.describe()}")
        self.save_button.setEnabled(self.state.available and not self.saving)
        if self.state.available and not self.running:
            self._init.value = "current"

    def train_config(self):
        """The training settings as a core :class:`TrainConfig` (raises UserInputError)."""
        limit = int(self._time.value)
        return TrainConfig.interactive(
            epochs=int(self._epochs.value),
            steps_per_epoch=int(self._steps.value),
            time_limit=float(limit) if limit > 0 else None,
            patch_size=int(self._patch.value),
            batch_size=int(self._batch.value),
            learning_rate=typed_setting("learning_rate", float(self._lr.value)),
            val_fraction=float(self._val.value),
            early_stopping_patience=int(self._patience.value),
        )

    def init_spec(self, pairs: list[L.Pair]) -> ModelSpec:
        from napari_unet.core import UserInputError

        kind = self._init.value
        if kind == "current":
            if not self.state.available:
                raise UserInputError(
                    "there is no current model yet: start from the bundled model or a new network"
                )
            return ModelSpec(
                "current", path=self.state.path, model=self.state.model, name=self.state.name
            )
        if kind in BUNDLED_MODELS:
            return ModelSpec.bundled(kind)
        # a new network is also what "bundled" starts from when the bundled model is
        # missing; core says how many channels it takes for these images
        arch = UNetConfig.interactive(
            depth=int(self._depth.value),
            base_filters=int(self._filters.value),
            input_channels=input_channels_for(p.image.rgb for p in pairs),
        )
        return ModelSpec("new" if kind == "new" else "default", architecture=arch)

    def make_job(self) -> TrainJob:
        """Read the widget and the layers into a plain job (GUI thread; copies the
        annotations, so painting can go on while training runs)."""
        pairs, data = painted_pairs(self.viewer)
        # the model to start from and the settings, checked before anything starts
        network = plan_network(self.init_spec(pairs))
        config = self.train_config()
        network.check_patch(config.patch_size)
        if network.notice:
            from napari.utils.notifications import show_info

            show_info(network.notice)
        self._warn_before_training(data, network.config)
        job = TrainJob(pairs=data, init=network.spec, config=config)
        if self.state.available and network.spec.kind != "current":
            # what the trained model would replace: compared with it, never replaced
            # by a worse one without the person's say
            job.previous = ModelSpec(
                "current", path=self.state.path, model=self.state.model, name=self.state.name
            )
        preview = self._preview.value
        layer = L.find_layer(self.viewer, preview, "image") if preview else None
        self._preview_target = None
        plane = (
            preview_plane(
                self.viewer,
                layer,
                network.config.input_channels,
                network.metadata.reads_stains,
            )
            if layer is not None and not L.is_huge(layer)  # a live preview of all of it: no
            else None
        )
        if plane is not None:
            job.preview = plane[0]
            job.preview_interval = float(self._interval.value)
            self._preview_target = (layer.name, *plane[1:])
        return job

    def _warn_before_training(self, pairs: list, config) -> None:
        """Say, as Segment and the command line do, how many pixels of an image are NaN
        or infinite; and warn when the home folder's disk cannot hold the model this run
        makes (training goes on: it may be saved elsewhere)."""
        from napari.utils.notifications import show_warning

        from napari_unet.core import UserInputError
        from napari_unet.core.jobs.planning import check_training_space
        from napari_unet.core.memory import is_lazy
        from napari_unet.core.normalize import nonfinite_message, nonfinite_pixels

        for p in pairs:
            bad = 0 if is_lazy(p.image) else nonfinite_pixels(p.image)
            if bad:
                show_warning(f"Train: {nonfinite_message(p.name, bad)}")
        try:
            check_training_space(Path.home(), config)
        except UserInputError as e:
            show_warning(f"Train: {e} (training goes on: save the model where there is room)")

    # ------------------------------------------------------------------ callbacks
    def _on_train(self):
        """Start training; returns the worker (``None`` when nothing started)."""
        if self.running:
            return None
        try:
            job = self.make_job()
        except Exception as e:  # noqa: BLE001 - a bad setting or missing data
            notify_error(e, "Train")
            return None
        self.job = job
        self.outcome = None
        self._drop_choice()  # settled: whatever is current now is what this run may replace
        self._busy = True
        self.state.training = True
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.load_button.setEnabled(False)
        total = job.config.epochs * job.config.steps_per_epoch
        self.progress.setRange(0, 0)
        self.plot.clear(0 if job.config.time_limit else total)
        self.status.setText("starting…")
        return self._start(train_worker, job)

    def _on_stop(self) -> None:
        """Ask the run to stop after the current batch (best weights are kept)."""
        if self.job is not None and self.running:
            self.job.stop_event.set()
            self.stop_button.setEnabled(False)
            self.status.setText("stopping after this batch…")

    def _on_yielded(self, batch: list) -> None:
        for rec in batch:
            if isinstance(rec, Status):
                self.status.setText(rec.text)
                continue
            kind = getattr(rec, "kind", None)
            if kind is ProgressKind.BATCH:
                limit = self.job.config.time_limit if self.job is not None else None
                done, expected = fraction_done(rec, limit)
                if self.progress.maximum() != PROGRESS_STEPS:
                    self.progress.setRange(0, PROGRESS_STEPS)
                self.progress.setValue(int(round(PROGRESS_STEPS * done)))
                self.plot.total_steps = expected
                self.plot.add("batch loss", rec.step, rec.loss)
                now = time.perf_counter()
                if now - self._last_status > 0.5 and not self.job.stop_event.is_set():
                    self._last_status = now
                    self.status.setText(
                        f"epoch {rec.epoch} · step {rec.step} · "
                        f"loss {_fmt(rec.loss)} · {rec.elapsed:.0f} s"
                    )
            elif kind is ProgressKind.EPOCH:
                self.plot.add("loss", rec.step, rec.loss)
                self.plot.add("val loss", rec.step, rec.val_loss)
                self.plot.add("val dice", rec.step, rec.val_dice)
                self.last_epoch = rec
                parts = [f"epoch {rec.epoch} done", f"loss {_fmt(rec.loss)}"]
                if rec.val_loss is not None:
                    parts.append(f"{metric_name('val_loss')} {rec.val_loss:.3f}")
                if rec.val_dice is not None:
                    parts.append(f"{metric_name('val_dice')} {rec.val_dice:.3f}")
                if not self.job.stop_event.is_set():
                    self.status.setText(" · ".join(parts))
                    self._last_status = time.perf_counter()
            elif kind is ProgressKind.PREVIEW and rec.preview is not None and self._preview_target:
                name, index, drop_axis = self._preview_target
                if L.find_layer(self.viewer, name, "image") is not None:
                    L.show_prediction(self.viewer, name, rec.preview, drop_axis, index=index)

    def _on_returned(self, outcome: TrainOutcome) -> None:
        from napari.utils.notifications import show_info, show_warning

        self.outcome = outcome
        r = outcome.result
        base = outcome.name
        name = (
            base
            if base.endswith(", fine-tuned") or base.startswith("new U-Net")
            else (f"{base}, fine-tuned")
        )
        c = outcome.comparison
        previous = None
        if outcome.previous is not None:
            previous = (outcome.previous, outcome.previous_name, outcome.previous_path)
        choice = ModelChoice((outcome.model, name, None), previous, c)
        choice.previews = {"new": outcome.preview_after, "previous": outcome.preview_before}
        self.choice = choice
        # never quietly adopt a worse model: the previous one stays current
        self._make_current("previous" if c.worse and previous is not None else "new")
        best = ""
        if r.best_epoch is not None and r.best_monitor is not None:
            best = (
                f"; best epoch {r.best_epoch} ({metric_name(r.monitor)} {r.best_monitor:.3f}) kept"
            )
        reason = stop_reason(r.stopped_by)
        n_classes = outcome.model.config.n_object_classes
        classes = f" It tells {n_classes} object classes apart." if n_classes > 1 else ""
        typed = typed_words(self.job.pairs) if self.job is not None else ""
        text = (
            f"{reason}: {plural(r.epochs_run, 'epoch')}, "
            f"{plural(r.steps_run, 'step')} in {r.seconds:.0f} s{best}.{classes}{typed} "
            f"On your annotations: {c.change()}. Segment again to apply the model."
        )
        for warning in r.warnings:  # what the labels taught that the user may not mean
            text += f" {warning}."
            # the toast holds the first sentence; the panel's status line the rest
            show_warning(f"Train: {warning.split('. ')[0]} (see the Train tab)")
        self.status.setText(text)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self._fit_plot()
        # a toast holds one short line; the details are in the panel and status line
        if choice.current == "previous":
            # the figures and the way to keep the new model anyway are in the panel
            show_warning("New model worse: previous kept")
        else:
            show_info(f"Training finished: {plural(r.epochs_run, 'epoch')} in {r.seconds:.0f} s")

    def _make_current(self, which: str) -> None:
        """Make the new (``"new"``) or the previous (``"previous"``) model of the last
        run current, show what it predicts on the preview image, and say so."""
        choice = self.choice
        if choice is None or (which == "previous" and choice.previous is None):
            return
        if self.state.model is not None:  # the one left keeps its file, if saved meanwhile
            leaving = (self.state.model, self.state.name, self.state.path)
            if choice.current == "new" and leaving[0] is choice.new[0]:
                choice.new = leaving
            elif choice.previous is not None and leaving[0] is choice.previous[0]:
                choice.previous = leaving
        choice.current = which
        self.state.set_model(*(choice.new if which == "new" else choice.previous))
        preview = choice.previews.get(which)
        if preview is not None and self._preview_target:
            name, index, drop_axis = self._preview_target
            if L.find_layer(self.viewer, name, "image") is not None:
                L.show_prediction(self.viewer, name, preview, drop_axis, index=index)
        self._show_choice()

    def _show_choice(self) -> None:
        choice = self.choice
        if choice is None:
            self.compare_panel.setVisible(False)
            return
        self.compare_label.setText(choice.text())
        self.keep_new_button.setEnabled(choice.current != "new")
        self.go_back_button.setEnabled(choice.previous is not None and choice.current == "new")
        self.compare_panel.setVisible(True)

    def _drop_choice(self) -> None:
        self.choice = None
        self.compare_panel.setVisible(False)

    def _on_keep_new(self) -> None:
        """Make the model of the last training current (also when it scored worse)."""
        if self.choice is not None and not self.running:
            self._make_current("new")

    def _on_go_back(self) -> None:
        """Make the model current again that the last training would have replaced."""
        if self.choice is not None and not self.running:
            self._make_current("previous")

    def _fit_plot(self) -> None:
        """After a run the x axis ends at the last step made, not the step once planned."""
        self.plot.total_steps = 0
        self.plot.update()

    def _on_errored(self, error: BaseException) -> None:
        notify_error(error, "Train")
        self.status.setText(f"training failed: {error}")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self._fit_plot()

    def _on_finished(self) -> None:
        self._busy = False
        self.state.training = False
        self.train_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.load_button.setEnabled(True)

    def _on_save(self, path: str | None = None, overwrite: bool | None = None):
        """Save the current model to a ``.keras`` file in the background; returns the
        worker (``None`` when nothing started). ``saved`` holds the path written.

        An existing file is replaced only when the person said so: ``overwrite``, else
        the save dialog's own question (for the file picked there) or a question here;
        the bundled model never is."""
        from napari.utils.notifications import show_info, show_warning

        from napari_unet.core import UserInputError
        from napari_unet.core.jobs.planning import refuse_bundled_model, save_model_as

        if not self.state.available:
            show_warning("no model to save yet: train one first")
            return None
        picked = path is None
        path = (
            None
            if self.saving
            else save_path(self, path, "Save model", "model.keras", "napari-unet model (*.keras)")
        )
        if path is None:
            return None
        target = Path(path)
        if target.suffix != ".keras":
            target = target.with_name(target.name + ".keras")
        try:
            refuse_bundled_model(target)
        except UserInputError as e:
            notify_error(e, "Save model")
            return None
        if overwrite is None:
            overwrite = picked and str(target) == path  # the dialog asked before replacing
            if not overwrite and os.path.lexists(target):
                overwrite = self._confirm_replace(target)
                if not overwrite:
                    self.status.setText(f"not saved: {target.name} was kept as it is")
                    return None
        model, source = self.state.model, self.state.path
        self.saved, self.saving = None, True

        def done(written: Path) -> None:
            self.saved = written
            # training may have made another model current meanwhile: that one is not saved
            if self.state.model is model and self.state.path == source:
                self.state.path = str(written)
                self.state.notify()
            show_info(f"model saved: {written.name}")

        def finished() -> None:
            self.saving = False
            self._on_state()

        return save_in_background(
            self.save_button, "Save model", save_model_as, model, source, target, overwrite,
            done=done, finished=finished,
        )  # fmt: skip

    def _confirm_replace(self, target: Path) -> bool:
        """Ask whether the existing model file ``target`` may be replaced (No by default)."""
        answer = QMessageBox.question(
            self,
            "Replace model file?",
            f"{target.name} already exists in {target.parent}.\nReplace it with the current model?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_load(self, path: str | None = None):
        """Make a model file the current model (checked now, loaded when first used);
        returns its path, or ``None``. A bioimage.io package is checked in a worker,
        since its model is taken out of it first, and becomes current when that ends
        (``None`` at once): a large package never holds up the window."""
        from napari_unet.core.network.model_file import read_metadata

        if path is None:
            path = open_path(self, "Load model", "napari-unet model (*.keras *.zip)")
            if not path:
                return None
        if Path(path).suffix.lower() == ".zip":
            self.load_worker = start_worker(
                read_metadata,
                path,
                returned=lambda _meta: self._loaded(path),
                errored=lambda e: notify_error(e, "Load model"),
            )
            return None
        try:
            read_metadata(path)
        except Exception as e:  # noqa: BLE001 - shown to the person
            notify_error(e, "Load model")
            return None
        return self._loaded(path)

    def _loaded(self, path: str) -> str:
        """The checked model file at ``path`` is the current model now."""
        from napari.utils.notifications import show_info

        self.state.set_pending(path)
        show_info(f"current model: {Path(path).name}")
        return path
