"""napari widgets: thin Qt classes that turn clicks into calls of ``napari_unet.core``.

Importing this package imports Qt and magicgui but never TensorFlow.
"""

from .._quiet import quiet_developer_notices
from .annotate import AnnotateWidget
from .combined import UNetWidget
from .evaluate import EvaluateWidget
from .segment import SegmentWidget
from .train import TrainWidget

__all__ = ["AnnotateWidget", "EvaluateWidget", "SegmentWidget", "TrainWidget", "UNetWidget"]

quiet_developer_notices()  # napari's PyQt5 notices: nothing a microscopist can act on
