"""Small helpers shared by the widgets: workers, notifications, choices, styling."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton, QWidget

log = logging.getLogger("napari_unet")


def notify_error(error: BaseException, what: str = "") -> None:
    """Show an exception from a worker as a napari notification.

    Messages meant for the user (:class:`~napari_unet.core.UserInputError`) are shown as
    they are; anything else also goes to the log with its traceback.
    """
    from napari.utils.notifications import show_error

    from napari_unet.core import UserInputError
    from napari_unet.core.errors import DefaultModelMissing

    prefix = f"{what}: " if what else ""
    if isinstance(error, DefaultModelMissing):
        show_error(f"{prefix}{error}; choose a model file, or train a model in the Train widget")
    elif isinstance(error, UserInputError):
        show_error(f"{prefix}{error}")
    else:
        log.error("napari-unet %s failed", what or "task", exc_info=error)
        show_error(f"{prefix}{type(error).__name__}: {error}")


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

        path, _ = QFileDialog.getSaveFileName(parent, title, name, kinds)
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
