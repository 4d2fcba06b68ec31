"""A job planned before it runs: which model, which training data, where the model goes.

The command line and the widgets make these decisions the same way, here, and only
translate (options and messages, combo boxes and notifications):

- :class:`ModelSpec` names a model as plain data (the bundled default, a file, one in
  memory, a new network); :func:`plan_network` reads what it is without TensorFlow
  (a training run from a missing default model starts a new network, said in
  :attr:`NetworkPlan.notice`), :func:`resolve_model` loads or builds it;
- :func:`check_training_pairs` refuses, before any work, image/label pairs that cannot
  train a network; :func:`load_training_pairs` reads them from files and checks them;
- :func:`check_model_target` refuses a model file name before training starts, and
  :func:`save_model_safely` keeps the trained weights in the temporary folder when the
  model cannot be written where asked.

Nothing here imports TensorFlow except :func:`resolve_model` (through :class:`UNet`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig, UNetConfig
from ..errors import ConfigError, UserInputError
from ..network.metadata import ModelMetadata
from ..network.model_file import (  # noqa: F401 - where the default model is: part of the plan
    BUNDLED_MODELS,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_PATH,
    bundled_model_name,
    bundled_model_path,
    default_model_installed,
    default_model_missing,
    default_model_path,
    named_model_path,
)

#: What a model spec's ``kind`` may be.
MODEL_KINDS = ("current", "default", "file", "new")


# --------------------------------------------------------------------------- models
def model_file(path: str | os.PathLike | None) -> tuple[Path, dict]:
    """The model file ``path`` names (a file, or a bundled model's name: ``"nuclei"``),
    or the default model's when ``path`` is ``None``, with its metadata: checked without
    TensorFlow.

    Raises
    ------
    DefaultModelMissing
        No ``path`` and no default model installed.
    ModelFileError
        The file is missing, foreign or damaged; a bundled model not installed.
    UserInputError
        A word that is neither a file nor a bundled model's name.
    """
    from ..network.model_file import read_metadata

    path = named_model_path("default" if path is None else path)
    return path, read_metadata(path)


def bundled_choices() -> list[tuple[str, str]]:
    """Each bundled model as ``(what to call it, the word that picks it)``, the default
    first (``"default"``), the others by name (``"nuclei"``: :meth:`ModelSpec.bundled`)."""
    others = [(f"bundled {n} model", n) for n in BUNDLED_MODELS if n != DEFAULT_MODEL_NAME]
    return [(f"bundled {DEFAULT_MODEL_NAME} model", "default"), *others]


#: What to do when a network's shape is given for a model that already has one.
_NEW_NETWORK = (
    "add --init none to train a new network of that shape, or leave out --depth and "
    "--base-filters to fine-tune"
)


@dataclass(frozen=True)
class ModelSpec:
    """Which model a job uses, as plain data.

    ``kind`` is ``"current"`` (``model`` in memory, else the file ``path``),
    ``"default"`` (the bundled generalist model, or the file ``NAPARI_UNET_DEFAULT_MODEL``
    names), ``"file"`` (``path``; a bundled model by name is one: :meth:`bundled`) or
    ``"new"`` (a fresh network from ``architecture``, a :class:`UNetConfig`, drawn with
    ``seed``). For ``"default"``, ``architecture`` is the new network a training run
    starts from when the default model is missing.
    """

    kind: str
    path: str | None = None
    model: Any = None
    architecture: UNetConfig | None = None
    name: str = ""
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise UserInputError(f"unknown model choice {self.kind!r}")

    @classmethod
    def bundled(cls, name: str, **kw: Any) -> ModelSpec:
        """The bundled model called ``name`` (``"nuclei"``): its file, named so."""
        return cls("file", path=str(bundled_model_path(name)), name=f"bundled {name} model", **kw)

    @classmethod
    def parse(
        cls, text: str | None, depth: int | None = None, base_filters: int | None = None, seed=0
    ) -> ModelSpec:
        """The command line's words: a model file, a bundled model's name (``"nuclei"``;
        a file of that name wins), ``"default"`` (also ``None``) or ``"none"`` (a new
        network of ``depth`` and ``base_filters``, which may also shape the new network
        that replaces a missing default model)."""
        shape = {
            k: v for k, v in (("depth", depth), ("base_filters", base_filters)) if v is not None
        }
        arch = UNetConfig(**shape)
        if text in (None, "default", "none"):
            kind = "new" if text == "none" else "default"
            if shape and kind == "default" and default_model_installed():
                raise UserInputError(
                    "--depth and --base-filters only apply to a new network, not when "
                    f"fine-tuning the bundled model; {_NEW_NETWORK}"
                )
            return cls(kind, architecture=arch, seed=seed)
        if shape:
            raise UserInputError(
                "--depth and --base-filters only apply to a new network, not when "
                f"fine-tuning {Path(text).name}; {_NEW_NETWORK}"
            )
        named_model_path(text)  # an unknown word, a bundled model not installed: refused
        if text in BUNDLED_MODELS and not os.path.exists(text):
            return cls.bundled(text, seed=seed)
        return cls("file", path=str(text), seed=seed)

    def describe(self, config: UNetConfig | None = None) -> str:
        """What to call the model this spec names."""
        if self.name:
            return self.name
        if self.kind == "default":
            return f"bundled {DEFAULT_MODEL_NAME} model"
        if self.kind == "new":
            cfg = config or self.architecture or UNetConfig()
            return f"new U-Net (depth {cfg.depth}, {cfg.base_filters} filters)"
        if self.path:
            return os.path.basename(self.path)
        return "current model"


@dataclass
class NetworkPlan:
    """Where a training run starts, known without TensorFlow (:func:`plan_network`)."""

    spec: ModelSpec  # what :func:`resolve_model` loads or builds
    config: UNetConfig
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    notice: str | None = None  # something the person should know (said once)

    def summary(self, cfg: TrainConfig, n_images: int) -> str:
        """One line: what trains on how much, for how long."""
        c, origin = self.config, self.spec.describe(self.config)
        origin = {"new": "a new network", "default": f"the {self.spec.describe()}"}.get(
            self.spec.kind, origin
        )
        return (
            f"training from {origin} (depth {c.depth}, {c.base_filters} filters) on "
            f"{n_images} image{'s' if n_images != 1 else ''}: up to {cfg.epochs} epochs of "
            f"{cfg.steps_per_epoch} batches of {cfg.batch_size} x {cfg.patch_size}px patches"
            + (f", time limit {cfg.time_limit:g} s" if cfg.time_limit else "")
        )

    def train_config(self, patch_size: int | None = None, **settings: Any) -> TrainConfig:
        """Training settings for this network: the patch edge defaults to the one the
        model was trained with, and must fit its depth."""
        patch = patch_size or int(self.metadata.patch_size or TrainConfig().patch_size)
        cfg = TrainConfig(patch_size=patch, **settings)
        self.check_patch(cfg.patch_size)
        return cfg

    def check_patch(self, patch_size: int) -> None:
        """Refuse a patch edge the network cannot take (not a multiple of ``2**depth``)."""
        m = self.config.size_multiple
        if patch_size % m:
            raise ConfigError(
                "patch_size",
                f"{patch_size} must be a multiple of {m} for a depth-{self.config.depth} "
                f"network (try {max(1, round(patch_size / m)) * m})",
                say="patch size",
            )


def plan_network(spec: ModelSpec) -> NetworkPlan:
    """Read what a training run would start from, without TensorFlow.

    A model file is checked here (a foreign or damaged file is refused); a missing
    default model means a new network from ``spec.architecture``, with a notice.

    Raises
    ------
    ModelFileError
        The model file is missing, foreign or damaged.
    UserInputError
        There is no current model.
    """
    from ..network.model_file import read_metadata

    if spec.model is not None and spec.kind != "new":
        return NetworkPlan(spec, spec.model.config, spec.model.metadata.copy())
    if spec.kind == "new":
        return NetworkPlan(spec, spec.architecture or UNetConfig(), ModelMetadata.new_network())
    if spec.kind == "current" and not spec.path:
        raise _no_current_model()
    path = spec.path
    if spec.kind == "default":
        path = default_model_path()
        if not path.exists():
            new = replace(spec, kind="new")
            notice = "no bundled default model; training from scratch"
            return NetworkPlan(
                new, spec.architecture or UNetConfig(), ModelMetadata.new_network(), notice
            )
    if not path:
        raise UserInputError("choose a model file (.keras) first")
    meta = read_metadata(path)  # a foreign or damaged file is refused here
    return NetworkPlan(spec, UNetConfig.from_dict(meta.architecture), meta)


def _no_current_model() -> UserInputError:
    return UserInputError(
        "there is no current model yet: train one (Train widget), load a model file, "
        "or choose the bundled default"
    )


def resolve_model(spec: ModelSpec):
    """The :class:`~napari_unet.core.UNet` a spec names: loads files, builds new networks
    (imports TensorFlow).

    Raises
    ------
    DefaultModelMissing
        The default model is asked for and not installed.
    ModelFileError, UserInputError
        With a message for the person (no current model, unreadable file, …).
    """
    from ..network.unet import UNet

    if spec.model is not None and spec.kind != "new":
        return spec.model
    if spec.kind == "new":
        return UNet.new(spec.architecture, seed=spec.seed)
    if spec.kind == "default":
        return UNet.default()
    if not spec.path:
        if spec.kind == "current":
            raise _no_current_model()
        raise UserInputError("choose a model file (.keras) first")
    return UNet.load(spec.path)


def check_model_target(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse a model file name before training: not ``.keras``, its folder missing or
    not writable, or an existing file without ``overwrite``."""
    from ..files.outputs import check_output_folder, check_writable

    p = Path(path)
    if p.suffix != ".keras":
        raise UserInputError(f"a model file name must end in .keras, got {p}")
    check_output_folder(p)
    refuse_bundled_model(p)
    if os.path.lexists(p) and not overwrite:
        raise UserInputError(f"{p} already exists; choose another name, or add --overwrite")
    check_writable(p.parent if str(p.parent) else Path("."))
    return p


def model_file_bytes(config: UNetConfig) -> int:
    """About how large a saved model of ``config`` is (float32 weights of its
    convolutions and normalisations, plus room for the metadata): what the disk must
    hold for a training run's result."""
    f, c, n = config.base_filters, config.input_channels, 0
    widths = [f * 2**i for i in range(config.depth + 1)]
    for i, w in enumerate(widths):  # contracting path and bottleneck: two 3×3 convs
        n += 9 * (c if i == 0 else widths[i - 1]) * w + 9 * w * w + 8 * w
    for w, below in zip(widths[:-1], widths[1:], strict=True):  # expanding path
        n += 4 * below * w + 9 * 2 * w * w + 9 * w * w + 8 * w
    n += widths[0] * config.n_outputs + config.n_outputs
    return int(4 * n * 1.1) + (1 << 20)


def check_training_space(folder: str | os.PathLike, config: UNetConfig) -> None:
    """Refuse to train when the disk of ``folder`` cannot hold the model it would save
    (said before training, not after minutes of it)."""
    from ..files.outputs import check_free_space

    check_free_space(folder, model_file_bytes(config), "the trained model")


def is_bundled_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a bundled model's file or the default model's (never written)."""
    return _bundled_what(path) is not None


def _bundled_what(path: str | os.PathLike) -> str | None:
    name = bundled_model_name(path)
    if name is not None:
        return f"the bundled {name} model that comes with napari-unet"
    try:
        if os.path.samefile(path, default_model_path()):
            return "the default model (NAPARI_UNET_DEFAULT_MODEL)"
    except OSError:  # either is missing
        pass
    return None


def refuse_bundled_model(path: str | os.PathLike) -> None:
    """Refuse to write over a bundled model or the default one, whatever the person said."""
    what = _bundled_what(path)
    if what is not None:
        raise UserInputError(
            f"{Path(path).name} is {what} and is never replaced; save under another name"
        )


def save_model_as(
    model,
    source: str | os.PathLike | None,
    path: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Write the current model to ``path``: the network ``model`` when it is in memory,
    else a copy of its file ``source`` (a model still to be loaded).

    Never over the bundled model, and over an existing file only with ``overwrite``
    (the person said so). A failed write says in plain words what happened and what to
    do; nothing is half-written and the model in memory is untouched.

    Raises
    ------
    UserInputError
        The bundled model, an existing file without ``overwrite``, a folder that is
        missing or cannot be written, a full disk.
    """
    import shutil

    from ..files.outputs import AtomicWrite, check_output_folder, os_error_message

    path = Path(path)
    if model is None and source is None:
        raise UserInputError("no model to save yet: train one first")
    try:
        check_output_folder(path)
    except UserInputError as e:
        raise UserInputError(f"could not save the model: {e}; choose another folder") from None
    refuse_bundled_model(path)
    same_file = source is not None and os.path.lexists(path) and os.path.samefile(source, path)
    if os.path.lexists(path) and not overwrite and not (model is None and same_file):
        raise UserInputError(
            f"{path.name} already exists in {path.parent}; choose another name, or confirm "
            "that it should be replaced"
        )
    try:
        if model is not None:
            return model.save(path)
        if not same_file:
            with AtomicWrite(path) as (tmp,):
                shutil.copyfile(source, tmp)
    except OSError as e:
        raise UserInputError(
            f"could not save the model to {path} ({os_error_message(e)}); nothing was "
            "written and the model is still here: save it somewhere else"
        ) from None
    return path


def save_model_safely(net, path: str | os.PathLike) -> Path:
    """Save ``net`` to ``path``; when the disk refuses (full, folder gone, read-only),
    save it in the temporary folder instead so that the training is not lost, and say
    where in the :class:`UserInputError` raised."""
    import tempfile

    from ..files.outputs import os_error_message

    try:
        return net.save(path)
    except OSError as e:
        rescue = Path(tempfile.gettempdir()) / f"napari-unet-rescued-{int(time.time())}.keras"
        try:
            net.save(rescue)
        except OSError:
            raise e from None
        raise UserInputError(
            f"could not save the model to {path} ({os_error_message(e)}); it was saved to "
            f"{rescue} instead: move it where you want it"
        ) from None


# --------------------------------------------------------------------------- data
def check_training_pairs(pairs: Sequence, channels: int, n_object_classes: int = 1) -> None:
    """Refuse, before TensorFlow starts, pairs that cannot train a ``channels``-input
    network with ``n_object_classes`` object classes: shapes that differ, labels that are
    not integers, an empty annotation, a mask without objects or background, no
    background or no object painted at all, a label that would add classes nobody
    painted (a stray value, a mask given as an annotation)."""
    from ..training.samples import pair_layout
    from ..training.targets import check_annotation, check_classes_painted, check_mask

    if not pairs:
        raise UserInputError("no training data: add at least one image with labels")
    annotations = []
    for p in pairs:
        pair_layout(p, channels)
        labels = np.asarray(p.labels)
        if p.kind == "mask":
            check_mask(labels, f"{p.name}: the mask")
        else:
            if not np.issubdtype(labels.dtype, np.integer):
                raise UserInputError(f"{p.name}: the annotation must hold integer labels")
            if not labels.any():
                raise UserInputError(
                    f"{p.name}: the annotation is empty (every pixel is 0, not annotated); "
                    "paint 1 = background and 2 = object"
                )
            annotations.append(labels)
    if len(annotations) == len(pairs):  # a mask has both kinds of pixel
        check_annotation(annotations)
    check_classes_painted(
        [(p.name, p.labels) for p in pairs if p.kind == "annotation"], n_object_classes
    )


def load_training_pairs(
    files: Sequence[tuple[str, str, str]],
    channels: int,
    warn: Callable[[str], None] | None = None,
    n_object_classes: int = 1,
    z_scale: float | None = None,
    diameter: float | None = None,
    model_diameter: float | None = None,
) -> list:
    """Read ``(image, kind, labels)`` files (``kind``: ``"mask"`` or ``"annotation"``)
    into checked :class:`~napari_unet.core.training.samples.TrainingPair` objects named after the
    images; ``warn`` hears about NaN or infinite pixels (read as background). ``diameter``
    (px, 0: as they are): the objects' width in every image, as a person gives it to
    prediction, checked against each image and the width the model takes typed widths
    by (``model_diameter``: :attr:`~napari_unet.core.network.metadata.ModelMetadata.typing_width`).

    A ``(Z, Y, X)`` pair whose image's axes say Z (its metadata, else the shape:
    :func:`~napari_unet.core.files.image_axes.image_axes`) is a volume: it trains from its
    annotated planes (any number of them) and, where a block of planes is annotated,
    from its side views at its z-step (``z_scale`` given, else the file's)."""
    from ..config import check_diameter
    from ..files.images import read_image, read_labels
    from ..normalize import nonfinite_message, nonfinite_pixels
    from ..training.samples import TrainingPair

    check_diameter(diameter, None)  # not a width at all: before any file is read
    pairs = []
    for image_path, kind, labels_path in files:
        image = read_image(image_path)
        labels = read_labels(labels_path)
        name = Path(image_path).name
        check_diameter(diameter, model_diameter, np.shape(labels), name=name)
        bad = nonfinite_pixels(image)
        if bad and warn is not None:
            warn(nonfinite_message(name, bad))
        volume_z = None
        if np.ndim(labels) == 3:
            from ..files.image_axes import image_axes

            axes = image_axes(image_path, shape=np.shape(image), z_scale=z_scale)
            if axes.axes.replace("C", "") == "ZYX":
                volume_z = axes.z_scale
        pairs.append(
            TrainingPair(image, name=name, z_scale=volume_z, diameter=diameter, **{kind: labels})
        )
    check_training_pairs(pairs, channels, n_object_classes)
    return pairs
