"""napari-unet's model library: a U-Net in TensorFlow/Keras with no GUI code.

Importing this package is cheap: TensorFlow is imported only when a network is built,
trained, run or loaded. Nothing under ``napari_unet.core`` imports napari, qtpy or
magicgui.
"""

from ._tfload import import_tensorflow
from .config import TrainConfig, UNetConfig
from .data import TrainingPair
from .errors import ModelFileError, TrainingFailed, UserInputError
from .metrics import evaluate
from .targets import mask_to_annotation
from .unet import DEFAULT_MODEL_PATH, Prediction, UNet, default_model_path

__all__ = [
    "DEFAULT_MODEL_PATH",
    "ModelFileError",
    "TrainingFailed",
    "Prediction",
    "TrainConfig",
    "TrainingPair",
    "UNet",
    "UNetConfig",
    "UserInputError",
    "default_model_path",
    "evaluate",
    "import_tensorflow",
    "mask_to_annotation",
]
