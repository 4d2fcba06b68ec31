"""All of napari-unet in one dock: Segment, Annotate, Train and Evaluate as tabs."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ._ui import DockLifetime, FitOnDock
from .annotate import AnnotateWidget
from .evaluate import EvaluateWidget
from .segment import SegmentWidget
from .train import TrainWidget


class UNetWidget(DockLifetime, FitOnDock, QWidget):
    """The whole loop in one dock widget; each tab is the widget of the same name.

    Parameters
    ----------
    napari_viewer
        The viewer the tabs work on.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self._init_fit(napari_viewer)
        self.segment = SegmentWidget(napari_viewer)
        self.annotate = AnnotateWidget(napari_viewer)
        self.train = TrainWidget(napari_viewer)
        self.evaluate = EvaluateWidget(napari_viewer)
        self.tabs = QTabWidget()
        for widget, title in (
            (self.segment, "Segment"),
            (self.annotate, "Annotate"),
            (self.train, "Train"),
            (self.evaluate, "Evaluate"),
        ):
            self.tabs.addTab(widget, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def reset_choices(self, *_: Any) -> None:
        for w in (self.segment, self.annotate, self.train, self.evaluate):
            w.reset_choices()

    def _dispose(self) -> None:
        """The dock was closed: every tab stops its work and lets go of the viewer."""
        for w in (self.segment, self.annotate, self.train, self.evaluate):
            if isinstance(w, DockLifetime):
                w.dispose()
