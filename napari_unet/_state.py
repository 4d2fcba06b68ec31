"""Plain state shared by the widgets of one viewer: the *current model*.

The current model is the one the Train widget produces and the Segment widget uses by
default. It is either a :class:`~napari_unet.core.UNet` in memory or, to keep
TensorFlow unimported until it is needed, only the path of a model file (e.g. the
``model.keras`` of a training-set folder that was opened). No Qt here: listeners are
plain callables, called on the GUI thread by whoever changes the state. The reader and
the writer use it without importing the widgets.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Key under which a layer's metadata names the model file of its training set.
MODEL_METADATA_KEY = "napari_unet_model"
#: Key under which a layer's metadata names that model.
MODEL_NAME_METADATA_KEY = "napari_unet_model_name"


@dataclass
class ModelState:
    """The current model of one viewer.

    Attributes
    ----------
    model
        The network in memory, or ``None``.
    path
        The file the model came from or was last saved to (``None`` for an unsaved one).
        With ``model`` ``None`` it is a model still to be loaded (lazily, in a worker).
    name
        What to call the model in the widgets.
    training
        ``True`` while the Train widget runs.
    """

    model: Any = None
    path: str | None = None
    name: str = ""
    training: bool = False
    listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def available(self) -> bool:
        """Whether there is a current model (in memory or as a file to load)."""
        return self.model is not None or self.path is not None

    @property
    def unsaved(self) -> bool:
        """A model trained here and not saved yet (never replaced silently)."""
        return self.model is not None and self.path is None

    def describe(self) -> str:
        """One line for the widgets: which model is current."""
        if not self.available:
            return "none yet (Segment or Train with the bundled model, or load a file)"
        text = self.name or "model"
        if self.unsaved:
            return f"{text} (trained here, not saved yet)"
        if self.path is not None and Path(self.path).stem not in text:
            text += f" ({Path(self.path).name})"
        return text

    def set_model(self, model: Any, name: str, path: str | None = None) -> None:
        """Make ``model`` (a UNet) the current model."""
        self.model, self.name, self.path = model, name, path
        self.notify()

    def set_pending(self, path: str | Path, name: str | None = None) -> None:
        """Make the model file at ``path`` current without loading it yet."""
        self.model, self.path = None, str(path)
        self.name = name or Path(path).stem
        self.notify()

    def notify(self) -> None:
        for listener in list(self.listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> None:
        if listener not in self.listeners:
            self.listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)


_STATES: dict[int, ModelState] = {}


def unwrap(obj: Any) -> Any:
    """The object behind napari's ``PublicOnlyProxy`` (stable identity for keys)."""
    return getattr(obj, "__wrapped__", obj)


def state_for(viewer: Any) -> ModelState:
    """The :class:`ModelState` of ``viewer`` (created on first use)."""
    real = unwrap(viewer)
    key = id(real)
    state = _STATES.get(key)
    if state is None:
        state = _STATES[key] = ModelState()
        weakref.finalize(real, _STATES.pop, key, None)
        _watch_layers(real, state)
    return state


def adopt_model_of(state: ModelState, layer: Any) -> bool:
    """Make the model a layer's training set came with current (see the reader).

    An unsaved model trained in this session is never replaced silently.
    """
    meta = getattr(layer, "metadata", None) or {}
    path = meta.get(MODEL_METADATA_KEY)
    if not path or not Path(path).is_file() or path == state.path:
        return False
    if state.unsaved:
        try:
            from napari.utils.notifications import show_info

            show_info("unsaved current model kept; Load model… to switch")
        except Exception:  # noqa: BLE001 - no napari: nothing to show
            pass
        return False
    state.set_pending(path, meta.get(MODEL_NAME_METADATA_KEY))
    return True


def _watch_layers(viewer: Any, state: ModelState) -> None:
    layers = getattr(viewer, "layers", None)
    if layers is None:
        return
    for layer in list(layers):
        adopt_model_of(state, layer)
    layers.events.inserted.connect(lambda event: adopt_model_of(state, event.value))


def current_state() -> ModelState | None:
    """The state of the current napari viewer (``None`` without one)."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no viewer, no Qt
        viewer = None
    return state_for(viewer) if viewer is not None else None


# ---------------------------------------------------------------------- file dialogs
#: The folder the last file dialog was used in, for this session only (nothing is written
#: to disk: a fresh session starts in the person's home again).
_dialog: dict[str, str] = {}


def _home() -> Path:
    return Path.home()


def dialog_folder() -> str:
    """Where the next file dialog opens: the folder last used, else the home folder."""
    last = _dialog.get("folder")
    if last and Path(last).is_dir():
        return last
    return str(_home())


def remember_folder(path: str | Any) -> None:
    """Open the next dialog where ``path`` (a file or folder just chosen) lies."""
    p = Path(path)
    _dialog["folder"] = str(p.parent if p.parent != p else p)
