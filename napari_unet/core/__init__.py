"""napari-unet's model library: a U-Net in TensorFlow/Keras with no GUI code.

Importing this package is cheap: TensorFlow is imported only when a network is built,
trained, run or loaded. Nothing under ``napari_unet.core`` imports napari, qtpy or
magicgui.

The layout says what each part does (a reader knows their room from the path):

- ``network/``: the U-Net's architecture, its kernels, :class:`UNet` and its ``.keras`` file;
- ``prediction/``: the :class:`Predictor` (normalisation, object scale, tiles,
  post-processing), the one path every image takes, in memory or block by block;
- ``training/``: labels and targets, samples, losses, the loop, a training run, huge
  annotations, the before/after comparison, calibration;
- ``files/``: images read, outputs written, OME-Zarr, training sets, bioimage.io;
- ``jobs/``: what the front ends run (planned before it starts);
- at the top, what all of them share: ``config`` (every setting and what it means),
  ``memory`` (in memory or block by block), ``normalize``, ``axes``, ``arrays``,
  ``metrics``, ``hardware``, ``errors``.

The modules import one another in one direction only, function-local imports included
(no circle): each floor imports only floors below it. Lowest first::

     1  _tfload  arrays  errors  memory  normalize
     2  axes  config  hardware  network.fused_kernels  network.metadata  prediction.cluster
        prediction.doubt  prediction.instances  prediction.model_ref  prediction.tiling
        training.targets
     3  files.images  network.architecture  prediction.block_grid  prediction.object_size  training.losses
     4  files.outputs  prediction.predictor  training.calibration
     5  files.ome_zarr  files.training_sets  network.model_file
     6  prediction.blockwise  training.huge_annotations
     7  metrics  training.samples
     8  training.comparison  training.loop
     9  training.run
    10  network.unet
    11  files.bioimageio  jobs.planning
    12  jobs.file_jobs
"""

from ._tfload import import_tensorflow
from .config import TrainConfig, UNetConfig
from .errors import ModelFileError, TrainingFailed, UserInputError
from .metrics import evaluate
from .network.unet import DEFAULT_MODEL_PATH, UNet, default_model_path
from .prediction.predictor import Prediction, Predictor
from .training.samples import TrainingPair
from .training.targets import mask_to_annotation

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
