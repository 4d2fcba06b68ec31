"""Small helpers shared by the widgets: workers, notifications, choices, styling."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton, QWidget

log = logging.getLogger("napari_unet")


def plain_error(error: BaseException, what: str = "") -> str:
    """The text a person reads for an exception from a worker: the message of a
    :class:`~napari_unet.core.UserInputError` as it is; for anything else the message
    without the exception's class name (the traceback goes to the log)."""
    from napari_unet.core import UserInputError
    from napari_unet.core.errors import DefaultModelMissing

    prefix = f"{what}: " if what else ""
    if isinstance(error, DefaultModelMissing):
        return f"{prefix}{error}; choose a model file, or train a model in the Train widget"
    if isinstance(error, UserInputError):
        return f"{prefix}{error}"
    text = str(error).strip() or "an unexpected problem"
    return f"{prefix}{text} (this looks like a bug: the details are in the terminal)"


def notify_error(error: BaseException, what: str = "", panel: QLabel | None = None) -> str:
    """Show an exception from a worker as a napari notification (and in ``panel``, a
    status line that keeps it after the notification is gone); returns the text.

    Messages meant for the user (:class:`~napari_unet.core.UserInputError`) are shown as
    they are; anything else also goes to the log with its traceback.
    """
    from napari.utils.notifications import show_error

    from napari_unet.core import UserInputError

    if not isinstance(error, UserInputError):
        log.error("napari-unet %s failed", what or "task", exc_info=error)
    text = plain_error(error, what)
    show_error(text)
    if panel is not None:
        panel.setText(f"⚠ {text}")
    return text


def warn(text: str, panel: QLabel | None = None) -> None:
    """A warning as a napari notification and, kept until the next action, in ``panel``."""
    from napari.utils.notifications import show_warning

    show_warning(text)
    if panel is not None:
        panel.setText(f"⚠ {text}")


# ---------------------------------------------------------------------- file dialogs
def dialog_start(name: str = "") -> str:
    """Where a file dialog opens: the folder last used in this session, else the
    person's home (never the folder napari was started from), with ``name`` in it."""
    from .._state import dialog_folder

    folder = dialog_folder()
    return os.path.join(folder, name) if name else folder


def remember(path: str | os.PathLike | None) -> None:
    """The folder of a path chosen in a dialog: where the next dialog opens."""
    from .._state import remember_folder

    if path:
        remember_folder(path)


def open_path(parent: QWidget, title: str, kinds: str) -> str | None:
    """A file the person picks in an open dialog (``None``: cancelled)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(parent, title, dialog_start(), kinds)
    remember(path)
    return path or None


def open_folder(parent: QWidget, title: str) -> str | None:
    """A folder the person picks (``None``: cancelled)."""
    from qtpy.QtWidgets import QFileDialog

    path = QFileDialog.getExistingDirectory(parent, title, dialog_start())
    remember(path)
    return path or None


def file_edit(**kwargs: Any):
    """A magicgui ``FileEdit`` whose "Select file" dialog opens where :func:`dialog_start`
    says while the field is empty (magicgui would open the working directory)."""
    from magicgui.widgets import FileEdit

    class _FileEdit(FileEdit):
        def _on_choose_clicked(self) -> None:
            text = str(self.line_edit.value).strip()
            if text in ("", "."):
                self.line_edit.value = dialog_start()
                super()._on_choose_clicked()
                if str(self.line_edit.value) == dialog_start():  # cancelled
                    self.line_edit.value = ""
            else:
                super()._on_choose_clicked()
            value = str(self.line_edit.value).strip()
            if value and os.path.isfile(value):
                remember(value)

    return _FileEdit(**kwargs)


#: GIL switch interval while a job runs (Python's default is 5 ms). The GUI thread
#: re-acquires the GIL many times per repaint (each Python callback from Qt); with a
#: busy worker thread every acquisition may wait a full interval, so a shorter one keeps
#: the viewer fluid at no measurable cost to training (TensorFlow runs without the GIL).
JOB_SWITCH_INTERVAL = 0.001
_jobs = {"running": 0, "saved": None}


def _job_started() -> None:
    import sys

    if _jobs["running"] == 0:
        _jobs["saved"] = sys.getswitchinterval()
        sys.setswitchinterval(min(JOB_SWITCH_INTERVAL, _jobs["saved"]))
    _jobs["running"] += 1


def _job_finished() -> None:
    import sys

    _jobs["running"] = max(0, _jobs["running"] - 1)
    if _jobs["running"] == 0 and _jobs["saved"] is not None:
        sys.setswitchinterval(_jobs["saved"])
        _jobs["saved"] = None


def start_worker(
    func: Callable[..., Any],
    *args: Any,
    yielded: Callable[[Any], None] | None = None,
    returned: Callable[[Any], None] | None = None,
    errored: Callable[[BaseException], None] | None = None,
    finished: Callable[[], None] | None = None,
):
    """Start ``func(*args)`` in a napari ``thread_worker``; connect the callbacks.

    Errors are handled by ``errored`` (not re-raised in the GUI thread), so a failed
    job leaves the widget usable. While jobs run, the GIL switch interval is
    :data:`JOB_SWITCH_INTERVAL`.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True)
    worker.finished.connect(_job_finished)
    if yielded is not None:
        worker.yielded.connect(yielded)
    if returned is not None:
        worker.returned.connect(returned)
    if errored is not None:
        worker.errored.connect(errored)
    if finished is not None:
        worker.finished.connect(finished)
    _job_started()
    worker.start()
    return worker


def save_path(parent: QWidget, path: str | None, title: str, name: str, kinds: str) -> str | None:
    """``path``, else the one the person picks in a save dialog (``None``: cancelled)."""
    if path is None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(parent, title, dialog_start(name), kinds)
        remember(path)
    return path or None


def save_in_background(
    button: QPushButton,
    what: str,
    func: Callable[..., Any],
    *args: Any,
    done: Callable[[Any], None],
    finished: Callable[[], None] | None = None,
):
    """Write files off the GUI thread: ``func(*args)`` in a worker, ``button`` disabled
    meanwhile, ``done(result)`` on success; a failure becomes a notification (nothing
    in the viewer is touched, so nothing is lost). Returns the worker."""

    def ended() -> None:
        button.setEnabled(True)
        if finished is not None:
            finished()

    button.setEnabled(False)
    return start_worker(
        func, *args, returned=done, errored=lambda e: notify_error(e, what), finished=ended
    )


def layer_choices(kind: str, viewer: Any, filter_: Callable[[Any], bool] | None = None):
    """A magicgui ``choices`` callable listing the viewer's layers of ``kind`` by name."""
    from .._layers import image_layers, labels_layers

    def choices(widget=None) -> list[str]:
        layers = image_layers(viewer) if kind == "image" else labels_layers(viewer)
        return [layer.name for layer in layers if filter_ is None or filter_(layer)]

    return choices


def combo(kind: str, viewer: Any, label: str, filter_=None, tip: str = "", nullable: bool = False):
    """A magicgui ComboBox of layer names of ``kind`` (``"image"`` or ``"labels"``);
    ``nullable``: "none" is a choice too."""
    from magicgui.widgets import ComboBox

    return ComboBox(
        label=label,
        choices=layer_choices(kind, viewer, filter_),
        tooltip=tip or None,
        nullable=nullable,
    )


class ImageFollower:
    """Keeps an image dropdown on the image the person works on.

    Selecting an image layer in the layer list (or opening one, which napari selects)
    moves the dropdown to it. Selecting a layer napari-unet derived from an image
    (``<image> annotation``, ``<image> labels``, …) moves it to that image, unless the
    person chose an image in the dropdown by hand: that choice is kept until an image
    layer is selected again.
    """

    def __init__(self, viewer: Any, combo: Any) -> None:
        self.viewer, self.combo = viewer, combo
        self.deliberate = False  # the person picked the current image in the dropdown
        combo.native.activated.connect(self._on_picked)  # emitted on user action only
        layers = viewer.layers
        layers.selection.events.active.connect(self._on_active)
        layers.events.inserted.connect(self._on_inserted)
        self._on_active()

    def disconnect(self) -> None:
        layers = self.viewer.layers
        layers.selection.events.active.disconnect(self._on_active)
        layers.events.inserted.disconnect(self._on_inserted)

    def _on_picked(self, *_: Any) -> None:
        self.deliberate = True

    def _follow(self, name: str) -> None:
        if name not in self.combo.choices:
            self.combo.reset_choices()
        if name in self.combo.choices and self.combo.value != name:
            self.combo.value = name

    def _image_of(self, layer: Any) -> tuple[str | None, bool]:
        """(the image name ``layer`` stands for, whether it is that image itself)."""
        from .._layers import image_layers, is_image

        if layer is None:
            return None, False
        names = [im.name for im in image_layers(self.viewer)]
        if is_image(layer) and layer.name in names:
            return layer.name, True
        for name in sorted(names, key=len, reverse=True):
            if layer.name.startswith(name + " "):
                return name, False
        return None, False

    def _on_active(self, *_: Any) -> None:
        name, itself = self._image_of(self.viewer.layers.selection.active)
        if name is None or (not itself and self.deliberate):
            return
        if itself:
            self.deliberate = False
        self._follow(name)

    def _on_inserted(self, event: Any) -> None:
        name, itself = self._image_of(event.value)
        if itself:
            self.deliberate = False
            self._follow(name)


def button(text: str, slot: Callable[[], Any], tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.clicked.connect(lambda *_: slot())
    if tip:
        b.setToolTip(tip)
    return b


class JobProgressBar(QProgressBar):
    """A progress bar that shows a percentage only while it counts real steps.

    Idle (range 0–1) it is a plain empty or full bar, not a "0%" before anything ran;
    busy (range 0–0) it is Qt's moving indicator.
    """

    def setRange(self, minimum: int, maximum: int) -> None:  # noqa: N802 - Qt API
        super().setRange(minimum, maximum)
        self.setTextVisible(maximum - minimum > 1)


def progress_bar() -> QProgressBar:
    bar = JobProgressBar()
    bar.setRange(0, 1)
    bar.setValue(0)
    return bar


def plural(n: int, word: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


#: How training metrics read in status lines (Keras' own keys are not for people).
METRIC_NAMES = {"loss": "loss", "val_loss": "validation loss", "val_dice": "validation Dice"}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key.replace("_", " "))


def status_label(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    return lab


class DockLifetime:
    """Mixin for a dock widget that lets go of the viewer when its dock is closed.

    napari never calls ``closeEvent`` on a plugin dock: closing it takes the widget out
    of the dock (``setParent(None)``) and deletes the dock. A widget left listening to
    the viewer's events and the shared model state would go on reacting (and a training
    run would go on training) for the rest of the session. So: once the widget has been
    docked, losing its parent or being closed calls :meth:`dispose` (once), which calls
    the subclass's ``_dispose``.
    """

    _docked = False
    _disposed = False

    def event(self, e) -> bool:  # noqa: D401 - Qt API
        if e.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:
                self.dispose()
        return super().event(e)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.dispose()
        super().closeEvent(event)

    @property
    def disposed(self) -> bool:
        return self._disposed

    def dispose(self) -> None:
        """Stop what this widget runs and disconnect it from the viewer (idempotent)."""
        if self._disposed:
            return
        self._disposed = True
        self._dispose()

    def _dispose(self) -> None:  # pragma: no cover - overridden
        pass


class FitOnDock:
    """Fit the image to the canvas once the dock shows (mixin of our dock widgets).

    Docking narrows the canvas after napari fitted the first image, which then runs off
    both sides until Home is pressed. The view is fitted again, once, after the dock
    took its place, and only if nobody moved the camera since the widget was made.
    """

    def _init_fit(self, viewer) -> None:
        self._fit_viewer = viewer
        self._fit_camera = _camera_state(viewer)
        self._fit_pending = True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if getattr(self, "_fit_pending", False):
            self._fit_pending = False
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self._fit_once)

    def _fit_once(self) -> None:
        viewer = self._fit_viewer
        if len(viewer.layers) and _camera_state(viewer) == self._fit_camera:
            viewer.reset_view()


def _camera_state(viewer) -> tuple:
    camera = viewer.camera
    return (round(float(camera.zoom), 6), tuple(round(float(c), 3) for c in camera.center))


class JobWidget(DockLifetime, FitOnDock, QWidget):
    """Base of the widgets that run a background job and follow the shared model state.

    Subclasses define ``_on_state`` (called when the current model changes) and set
    ``_busy`` while their job runs.
    """

    def __init__(self, napari_viewer) -> None:
        from .._state import state_for

        super().__init__()
        self.viewer = napari_viewer
        self.state = state_for(napari_viewer)
        self.worker = None
        self._busy = False
        self._init_fit(napari_viewer)

    def _on_state(self, *args) -> None:  # pragma: no cover - overridden
        pass

    def _dispose(self) -> None:
        self.state.unsubscribe(self._on_state)

    @property
    def running(self) -> bool:
        """Whether a job of this widget is under way."""
        return self._busy

    def _start(self, func: Callable[..., Any], *args: Any):
        """Run ``func(*args)`` in a worker wired to this widget's ``_on_*`` callbacks."""
        self.worker = start_worker(
            func,
            *args,
            yielded=self._on_yielded,
            returned=self._on_returned,
            errored=self._on_errored,
            finished=self._on_finished,
        )
        return self.worker
