"""napari-unet's model library: a U-Net in TensorFlow/Keras with no GUI code.

Importing this package is cheap: TensorFlow is imported only when a network is built,
trained, run or loaded. Nothing under ``napari_unet.core`` imports napari, qtpy or
magicgui.

The modules import one another in one direction only, function-local imports included
(no circle): each floor imports only floors below it. Lowest first::

    1  errors  normalize  arrays  _tfload
    2  config  axes  targets  predict (tiles)  postprocess  worker  hardware  fused  cluster
    3  size  io  model  losses  blockgrid
    4  predictor  calibration  omezarr  modelfile  trainingset
    5  large (the dask graph; handed a network, never imports unet)  regions
    6  data  metrics
    7  training (the loop)  scoring
    8  training_run
    9  unet
    10 plan  bioimageio
    11 batch
"""

from ._tfload import import_tensorflow
from .config import TrainConfig, UNetConfig
from .data import TrainingPair
from .errors import ModelFileError, TrainingFailed, UserInputError
from .metrics import evaluate
from .predictor import Prediction, Predictor
from .targets import mask_to_annotation
from .unet import DEFAULT_MODEL_PATH, UNet, default_model_path

__all__ = [
    "DEFAULT_MODEL_PATH",
    "ModelFileError",
    "TrainingFailed",
    "Prediction",
    "Predictor",
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
