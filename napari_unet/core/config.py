"""Plain, JSON-serialisable configuration for the U-Net and its training, and what every
setting a person types means: its default, its valid range (:data:`LIMITS`) and what
its special values say (a diameter of 0, an empty threshold, the channels of a new
network). The command line and the widgets read them here and decide none of it.

Nothing here imports TensorFlow, so a widget can read and validate a configuration
without paying the TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ConfigError, UserInputError

PADDINGS = ("same", "valid")
#: Filters of the first level at most: 512 makes a ~2 GB depth-4 network already.
MAX_BASE_FILTERS = 512
#: Largest training patch edge: a batch of 8 such patches already needs several GB.
MAX_PATCH_SIZE = 1024
#: Tile edge (px) prediction uses by default: large images are cut into such tiles.
DEFAULT_TILE_SIZE = 1024
#: Context per tile side used by default; 64 px keeps the labels identical to a
#: whole-image pass for the default depth-4 network (see benchmarks/).
DEFAULT_CONTEXT = 64
#: Mirrored pixels a tile reads beyond the image's own borders (the context stays
#: between tiles): the network learned from patches cut out of images, and the full
#: context mirrored around a 256 px image made the network see 2.25× its pixels.
#: Development images: F1 0.688 with 64, 0.687 with 16, the prediction 19% faster
#: (benchmarks/RESULTS.md, "A thin mirrored border").
DEFAULT_BORDER = 16
#: Seconds between live previews of a prediction while training runs.
PREVIEW_INTERVAL = 5.0
#: Adam's first learning rate when none is given: gentle when fine-tuning a trained
#: model (it keeps what it knows), larger for a new network.
FINE_TUNE_LEARNING_RATE = 3e-4
NEW_NETWORK_LEARNING_RATE = 1e-3
#: Scale factors an image may be seen at (8× smaller to 4× larger): the object sizes a
#: model can be brought to (see :mod:`.size`).
MIN_SCALE, MAX_SCALE = 1.0 / 8.0, 4.0
#: How a model measures object width (its metadata's ``width_measure``):
#:
#: - ``"foreground"``: every pixel that is not background; touching objects merge into
#:   one region (models made before the measure was recorded);
#: - ``"interior"``: object pixels that are neither background nor boundary, so touching
#:   cells are measured one by one: a field of packed cells or membranes reads a cell's
#:   width, not the width of the whole field (the bundled generalist).
WIDTH_MEASURES = ("foreground", "interior")
#: How a one-channel model reads a colour picture (its metadata's ``colour_reading``):
#:
#: - ``"mean"``: the mean of the colour channels (models saved before the reading was
#:   recorded, which learned colours so);
#: - ``"stains"``: a stained brightfield slide (H&E, IHC) as its haematoxylin density,
#:   anything else as the mean (:mod:`~napari_unet.core.stains`; new networks and the
#:   bundled generalist).
COLOUR_READINGS = ("mean", "stains")


@dataclass(frozen=True)
class Limit:
    """The valid range of one setting, for the core's checks, the command line's
    messages and the widgets' spin boxes alike."""

    lo: float
    hi: float
    unit: str = ""

    def text(self) -> str:
        """``"from 1 to 256"``, ``"from 16 to 1024 pixels"``."""
        unit = f" {self.unit}" if self.unit else ""
        return f"from {self.lo:g} to {self.hi:g}{unit}"


#: Valid ranges of the settings a person types (widgets and command line both).
#: Beyond them a run is refused with the range, never silently clamped: a validation
#: fraction above one half leaves training too little (the split then gives up and
#: holds nothing out), a tile above 16384 px needs GBs per tile.
LIMITS: dict[str, Limit] = {
    "epochs": Limit(1, 100_000),
    "steps_per_epoch": Limit(1, 100_000),
    "time_limit": Limit(1, 7 * 24 * 3600, "seconds"),
    "patch_size": Limit(16, MAX_PATCH_SIZE, "pixels"),
    "batch_size": Limit(1, 256),
    "val_fraction": Limit(0.0, 0.5),
    "tile_size": Limit(128, 16384, "pixels"),
    "early_stopping_patience": Limit(1, 10_000),
    "depth": Limit(1, 6),
    "learning_rate": Limit(0, 0.1),  # above 0.1 Adam diverges on a U-Net; 0 = automatic
    "min_size": Limit(0, 1_000_000, "pixels"),
    "preview_interval": Limit(1, 3600, "seconds"),
    # a volume's z-step over its XY pixel size (anisotropy); beyond 100 it is a series
    # of planes, not a volume
    "z_scale": Limit(0.01, 100, "times the pixel size"),
}

#: Settings whose 0 (or nothing typed) means "automatic": the model's own threshold and
#: minimum object size (tuned on its training annotation), the automatic tile size, the
#: first learning rate of :meth:`TrainConfig.first_learning_rate`. The same in every
#: front end: ``--threshold 0`` on the command line is the widget's 0.
AUTOMATIC_WHEN_ZERO = ("threshold", "min_size", "tile_size", "learning_rate")


def typed_setting(name: str, value: Any) -> Any:
    """What a typed value of the setting ``name`` means: ``None`` (automatic, see
    :data:`AUTOMATIC_WHEN_ZERO`) for nothing typed or 0, else the value itself."""
    if value is None:
        return None
    if name in AUTOMATIC_WHEN_ZERO and float(value) == 0:
        return None
    return value


def check_limit(name: str, value: Any, say: str | None = None) -> None:
    """Refuse ``value`` for the setting ``name`` outside :data:`LIMITS` (ConfigError)."""
    limit = LIMITS[name]
    try:
        ok = not isinstance(value, bool) and limit.lo <= float(value) <= limit.hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(name, f"must be {limit.text()}, got {value}", say=say)


def diameter_range(
    model_diameter: float | None, image_shape: tuple[int, ...] | None = None
) -> tuple[float, float] | None:
    """Object diameters (whole px) that a model which learned objects ``model_diameter`` px
    wide can be brought to (the image seen at most 8× smaller or 4× larger), no wider
    than the image's smaller side (``image_shape``: its ``(Y, X)`` at the end);
    ``None`` when the model does not record its object size."""
    if not model_diameter:
        return None
    lo = math.ceil(model_diameter / MAX_SCALE)
    hi = math.floor(model_diameter / MIN_SCALE)
    if image_shape is not None and len(image_shape) >= 2:
        hi = min(hi, int(min(image_shape[-2:])))
    return float(lo), float(hi)


#: The ``diameter`` a prediction takes when a person gives none: measured in each image.
MEASURE_DIAMETER = "auto"


def diameter_argument(typed: float | None) -> float | str:
    """What an object diameter a person typed (``--diameter``, Segment's field) means to
    a prediction (:meth:`~napari_unet.core.network.unet.UNet.predict`'s ``diameter``): none given
    (``None``): measured in each image (:data:`MEASURE_DIAMETER`); 0: the image as it
    is; a number of pixels: the image rescaled so its objects match the model's."""
    return MEASURE_DIAMETER if typed is None else float(typed)


def check_diameter(
    diameter: float | None,
    model_diameter: float | None,
    image_shape: tuple[int, ...] | None = None,
    name: str | None = None,
) -> None:
    """Refuse an object diameter (px) the model cannot be brought to, with the valid
    range (``None`` and 0 mean "measure it" / "as it is", :func:`diameter_argument`, and
    always pass); ``name``: the image it is for, said in the message."""
    if diameter is None or diameter == 0:
        return
    d = float(diameter)
    if not (d > 0 and math.isfinite(d)):
        raise ConfigError(
            "diameter", f"must be a number of pixels (0 to use the image as it is), got {diameter}"
        )
    of = f" for {name}" if name else ""
    if image_shape is not None and len(image_shape) >= 2 and d > min(image_shape[-2:]):
        h, w = image_shape[-2:]
        raise ConfigError(
            "diameter",
            f"of {d:g} px is wider than the image{of} ({h}×{w} px): give the width of one "
            "object in pixels, or leave it out (auto) to measure it",
        )
    span = diameter_range(model_diameter, image_shape)
    if span is not None and not span[0] <= d <= span[1]:
        raise ConfigError(
            "diameter",
            f"of {d:g} px is out of reach{of}: this model learned objects ~{model_diameter:.0f}"
            f" px wide and can see objects from {span[0]:.0f} to {span[1]:.0f} px wide (the "
            "image is shrunk at most 8× or enlarged 4×); give a diameter in that range, or "
            "leave it out (auto) to measure it",
        )


def check_threshold(threshold: float | None) -> None:
    """Refuse a foreground probability threshold outside (0, 1) (ConfigError); ``None``
    means the model's own (tuned on its training annotation) and always passes."""
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ConfigError("threshold", f"must be between 0 and 1, got {threshold}")


def input_channels_for(colour: Iterable[bool]) -> int:
    """Input channels of a new network for its training images, ``colour`` telling
    which of them are colour pictures (RGB or RGBA, whose alpha is dropped): 3 when all
    of them are, else 1 (colours are then seen as grey, :mod:`.axes`)."""
    flags = [bool(c) for c in colour]
    return 3 if flags and all(flags) else 1


def _whole(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]`` (a float is accepted when it is whole)."""
    ok = not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )
    if not ok or not lo <= int(value) <= hi:
        raise ConfigError(name, f"must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


#: Most object classes a network may have (annotation labels 2 .. MAX_OBJECT_CLASSES + 1).
MAX_OBJECT_CLASSES = 32


def class_names(n_object_classes: int) -> list[str]:
    """Default names of a network's output channels: background, the object class(es)
    and the boundary (``"object"`` alone for a one-class network, else ``"object class
    1"``, ``"object class 2"``, …, class *k* being annotation label *k* + 1)."""
    n = int(n_object_classes)
    objects = ["object"] if n == 1 else [f"object class {k}" for k in range(1, n + 1)]
    return ["background", *objects, "boundary"]


@dataclass
class UNetConfig:
    """Architecture of a U-Net (Ronneberger et al. 2015).

    Parameters
    ----------
    depth
        Number of 2×2 max-pooling steps on the contracting path.
    base_filters
        Filters of the first level; they double at every level.
    input_channels
        Channels of the input image (1 for a plain fluorescence image).
    n_object_classes
        Object classes (annotation labels 2, 3, …). The network predicts
        ``1 + n_object_classes + 1`` channels: background, each object class and the
        object boundary that separates touching instances.
    batch_norm, dropout
        Batch normalisation after every convolution; dropout rate in the bottleneck.
    padding
        ``"same"`` (output as large as the input) or the paper's ``"valid"`` (unpadded
        convolutions, centre-cropped skips, output smaller than the input).
    """

    depth: int = 4
    base_filters: int = 16
    input_channels: int = 1
    n_object_classes: int = 1
    batch_norm: bool = True
    dropout: float = 0.0
    padding: str = "same"

    def __post_init__(self) -> None:
        depth = LIMITS["depth"]
        self.depth = _whole("depth", self.depth, int(depth.lo), int(depth.hi))
        self.base_filters = _whole("base_filters", self.base_filters, 1, MAX_BASE_FILTERS)
        self.input_channels = _whole("input_channels", self.input_channels, 1, 64)
        self.n_object_classes = _whole(
            "n_object_classes", self.n_object_classes, 1, MAX_OBJECT_CLASSES
        )
        if not isinstance(self.batch_norm, bool):
            raise UserInputError(f"batch_norm must be true or false, got {self.batch_norm!r}")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, int | float)
            or not 0.0 <= float(self.dropout) < 1.0
        ):
            raise UserInputError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.padding not in PADDINGS:
            raise UserInputError(f"padding must be one of {PADDINGS}, got {self.padding!r}")

    @property
    def n_outputs(self) -> int:
        """Output channels: background, object classes, boundary."""
        return self.n_object_classes + 2

    @property
    def class_names(self) -> list[str]:
        """Names of the output channels (see :func:`class_names`)."""
        return class_names(self.n_object_classes)

    @property
    def size_multiple(self) -> int:
        """Input sizes (``same`` padding) must be multiples of this."""
        return 2**self.depth

    @classmethod
    def interactive(cls, **changes: Any) -> UNetConfig:
        """A new network for training in the viewer: depth 3 instead of 4.

        A person waits for it and watches the live preview on what is often a laptop
        CPU: one pooling level less has about a quarter of the weights (the deepest
        level holds most of them) and costs less per patch, and its receptive field
        (radius up to 58 px, :func:`~napari_unet.core.network.architecture.receptive_field_radius`)
        still spans nuclei-sized objects. The command line, meant for longer unattended
        runs, uses the class defaults.
        """
        return cls(**{**asdict(cls()), "depth": 3, **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        if not isinstance(d, dict):
            raise UserInputError(f"an architecture is a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainConfig:
    """How to train: patches, optimisation and stopping.

    Parameters
    ----------
    epochs
        Maximum number of epochs; ``steps_per_epoch`` batches each.
    time_limit
        Wall-clock limit in seconds (``None``: no limit). Training stops after the batch
        that crosses it and keeps the best weights.
    patch_size, batch_size
        Square training patches and how many per batch.
    val_fraction
        Share of the annotated pixels held out (by image blocks) for validation.
    learning_rate
        Initial Adam learning rate; reduced on plateau. ``None``:
        :meth:`first_learning_rate` (3e-4 when fine-tuning a trained model, gentle on
        what it knows; 1e-3 for a new one).
    augment, elastic
        Flips / 90° rotations / intensity jitter, and the paper's elastic deformation.
    annotated_fraction
        Share of patches centred on an annotated pixel (the rest are uniform).
    early_stopping_patience, reduce_lr_patience
        Epochs without improvement before stopping / halving the learning rate.
    seed
        Seed for patch sampling, augmentation and the validation split.
    painted_weight
        Loss weight of pixels a person painted, relative to pixels copied from a
        prediction (``TrainingPair.painted`` says which).
    pseudo_label_weight
        When fine-tuning on annotations, pixels nobody annotated learn the trained
        model's own confident prediction at this weight, so that a few strokes correct
        it without making it forget the rest (0 turns it off).
    rescale
        Bring each image to the model's object size (``UNet.object_diameter``) before
        training on it, as prediction does.
    tune_postprocessing
        After training, choose the post-processing that gives the best instance F1 on
        the training annotation and keep it in the model.
    """

    epochs: int = 50
    steps_per_epoch: int = 50
    time_limit: float | None = None
    patch_size: int = 128
    batch_size: int = 8
    val_fraction: float = 0.1
    learning_rate: float | None = None
    augment: bool = True
    elastic: bool = True
    annotated_fraction: float = 0.8
    early_stopping_patience: int = 15
    reduce_lr_patience: int = 5
    seed: int = 0
    painted_weight: float = 4.0
    pseudo_label_weight: float = 0.25
    rescale: bool = True
    tune_postprocessing: bool = True

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, problem: str) -> None:
            if not ok:
                raise ConfigError(name, problem, say=name.replace("_", " "))

        for name in ("epochs", "steps_per_epoch", "patch_size", "batch_size", "val_fraction"):
            check_limit(name, getattr(self, name), say=name.replace("_", " "))
        if self.time_limit is not None:
            check_limit("time_limit", self.time_limit, say="time limit")
        lr = LIMITS["learning_rate"]
        check(
            "learning_rate",
            self.learning_rate is None or lr.lo < float(self.learning_rate) <= lr.hi,
            f"must be a positive number up to {lr.hi:g} (0: automatic), got {self.learning_rate}",
        )
        check(
            "painted_weight",
            1.0 <= float(self.painted_weight) <= 60.0,
            f"must be in [1, 60], got {self.painted_weight}",
        )
        check(
            "pseudo_label_weight",
            0.0 <= float(self.pseudo_label_weight) < 1.0,
            f"must be in [0, 1), got {self.pseudo_label_weight}",
        )

    def first_learning_rate(self, pretrained: bool) -> float:
        """The learning rate training starts at: the one given, else
        :data:`FINE_TUNE_LEARNING_RATE` for a trained model (``pretrained``) and
        :data:`NEW_NETWORK_LEARNING_RATE` for a new one."""
        if self.learning_rate:
            return float(self.learning_rate)
        return FINE_TUNE_LEARNING_RATE if pretrained else NEW_NETWORK_LEARNING_RATE

    @classmethod
    def interactive(cls, **changes: Any) -> TrainConfig:
        """Training from the viewer's Train button: short epochs, a time limit.

        ``steps_per_epoch=20`` so that epochs end (validation, the loss curve, the
        preview, early stopping) every few seconds while a person watches, ``epochs=100``
        to make up for the shorter epochs, and ``time_limit=120`` s so that a click never
        ties up the machine for long; Stop or the limit keep the best weights. The
        command line, meant for unattended runs, uses the class defaults.
        """
        return cls(**{"epochs": 100, "steps_per_epoch": 20, "time_limit": 120.0, **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
