"""The :class:`UNet`: the network and its file (new, load, default, copy, widen, save)
with the metadata that travels with it — usable from a notebook. Training runs in
:mod:`~napari_unet.core.training.run`, prediction in :mod:`~napari_unet.core.prediction.predictor`
(:meth:`UNet.predict` builds a :class:`~napari_unet.core.prediction.predictor.Predictor`), images
too large for memory in :mod:`~napari_unet.core.prediction.blockwise`.

>>> from napari_unet.core import UNet, UNetConfig, TrainConfig, TrainingPair
>>> net = UNet.new(UNetConfig(depth=3, base_filters=16))          # doctest: +SKIP
>>> net.train([TrainingPair(image, mask=mask)], TrainConfig(epochs=5))  # doctest: +SKIP
>>> result = net.predict(image)                                    # doctest: +SKIP
>>> result.labels, result.probability                              # doctest: +SKIP
>>> net.save("nuclei.keras"); UNet.load("nuclei.keras")            # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (  # noqa: F401 - the tile defaults are re-exported
    DEFAULT_CONTEXT,
    DEFAULT_TILE_SIZE,
    PREVIEW_INTERVAL,
    TrainConfig,
    UNetConfig,
    class_names,
)
from ..errors import ModelFileError, UserInputError
from ..prediction.predictor import Prediction, Predictor  # noqa: F401 - Prediction is re-exported
from .metadata import ModelMetadata, recorded_width
from .model_file import DEFAULT_MODEL_PATH, default_model_path  # noqa: F401 - re-exported


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("napari-unet")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0+unknown"


class UNet:
    """A U-Net with everything needed to reuse it: config, normalisation, history.

    Create one with :meth:`new`, :meth:`load` or :meth:`default`.
    """

    def __init__(
        self,
        keras_model,
        config: UNetConfig,
        metadata: ModelMetadata | dict[str, Any] | None = None,
    ):
        self.keras_model = keras_model
        self.config = config
        if not isinstance(metadata, ModelMetadata):
            metadata = ModelMetadata.from_dict(metadata)
        self.metadata: ModelMetadata = metadata
        if self.metadata.classes is None:
            self.metadata.classes = config.class_names
        self._infer = None
        self._traced = None  # the tf.function behind _infer
        self._encoder = None  # encoder_function's
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ creation
    @classmethod
    def new(cls, config: UNetConfig | None = None, seed: int | None = 0) -> UNet:
        """A freshly initialised network."""
        from .._tfload import import_tensorflow

        import_tensorflow()
        from .architecture import build_unet, initialise_weights

        config = config or UNetConfig()
        model = build_unet(config, fused=True)
        if seed is not None:
            initialise_weights(model, seed)
        return cls(model, config, ModelMetadata.new_network())

    @classmethod
    def load(cls, path: str | os.PathLike) -> UNet:
        """Load a napari-unet model file (or a bioimage.io package napari-unet exported:
        the model file inside it), refusing foreign or code-carrying files.

        Raises
        ------
        ModelFileError
            With a message that says what is wrong with the file.
        """
        from .architecture import build_unet
        from .model_file import keras_file, read_metadata, read_weights

        meta = read_metadata(path)
        source, path = path, keras_file(path)  # a bioimage.io package: the file inside it
        try:
            config = UNetConfig.from_dict(meta.architecture)
        except (TypeError, UserInputError) as e:
            raise ModelFileError(f"{Path(path).name}: bad architecture in metadata ({e})") from None
        # the file holds plain Keras layers: their weights go to the network that
        # computes (fused, the machine's precision), read straight from the file; a
        # file laid out otherwise is read by Keras into a float32 twin first
        model = build_unet(config, fused=True)
        weights = read_weights(path, model)
        if weights is None:
            stored = build_unet(config, dtype_policy="float32")
            try:
                with warnings.catch_warnings():
                    # Keras warns of each group of layers (``_operations_by_depth``)
                    # it finds no weights for under that name ("Skipping nested
                    # container ..."; the layers are read under their own names): on
                    # a file that does not fit, a warning per group came before the
                    # one line below that says so
                    warnings.filterwarnings("ignore", "Skipping nested container", UserWarning)
                    stored.load_weights(str(path))
            except Exception as e:  # noqa: BLE001 - h5/keras raise many kinds
                raise ModelFileError(
                    f"{Path(path).name}: weights do not fit its architecture ({type(e).__name__})"
                ) from None
            weights = stored.get_weights()
        if not all(np.isfinite(w).all() for w in weights):
            raise ModelFileError(
                f"{Path(path).name}: its weights are not finite numbers (a diverged "
                "training); it cannot segment anything — use another model"
            )
        model.set_weights(weights)
        meta.source_path = str(Path(source).resolve())
        return cls(model, config, meta)

    @classmethod
    def default(cls) -> UNet:
        """The default model: the bundled generalist (or the file
        ``NAPARI_UNET_DEFAULT_MODEL`` names)."""
        from .model_file import default_model_missing

        path = default_model_path()
        if not path.exists():
            raise default_model_missing()
        return cls.load(path)

    @classmethod
    def bundled(cls, name: str) -> UNet:
        """The bundled model called ``name`` (``"generalist"``, ``"nuclei"``)."""
        from .model_file import bundled_model_missing, bundled_model_path

        path = bundled_model_path(name)
        if not path.exists():
            raise bundled_model_missing(name)
        return cls.load(path)

    def copy(self) -> UNet:
        """An independent copy (same weights, own metadata)."""

        from .architecture import build_unet

        model = build_unet(self.config, fused=True)
        model.set_weights(self.keras_model.get_weights())
        return UNet(model, self.config, self.metadata.copy())

    def widen(self, n_object_classes: int, seed: int | None = 0) -> None:
        """Give the network more object classes, in place, keeping what it learned.

        Every layer keeps its weights except the final 1×1 convolution, which gets a
        column per new class. In a trained network each new class starts as a copy of
        object class 1 that shares its probability (the bias of class 1 and of each
        copy is lowered by ``log(copies)``), so the widened network predicts exactly the
        same background, object and boundary probabilities, hence the same instances,
        until training on the new labels tells the classes apart. In an untrained
        network the new columns are drawn from the layer's initializer (seeded by
        ``seed``). A network with as many classes or more is left as it is.
        """
        from .architecture import build_unet, initialise_weights

        old = self.config.n_object_classes
        n = int(n_object_classes)
        if n <= old:
            return
        config = replace(self.config, n_object_classes=n)  # validates the bound
        with self._lock:
            model = build_unet(config, fused=True)
            if seed is not None:
                initialise_weights(model, seed)
            source = {layer.name: layer for layer in self.keras_model.layers}
            for layer in model.layers:
                weights = source[layer.name].get_weights()
                if layer.name != "scores":
                    if weights:
                        layer.set_weights(weights)
                    continue
                kernel, bias = weights
                new_kernel, new_bias = (np.array(w) for w in layer.get_weights())
                new_kernel[..., : old + 1] = kernel[..., : old + 1]
                new_bias[: old + 1] = bias[: old + 1]
                new_kernel[..., -1] = kernel[..., -1]
                new_bias[-1] = bias[-1]
                if self.pretrained:
                    copies = n - old + 1  # class 1 and its new copies share its share
                    for k in [1, *range(old + 1, n + 1)]:
                        new_kernel[..., k] = kernel[..., 1]
                        new_bias[k] = bias[1] - np.log(copies)
                layer.set_weights([new_kernel, new_bias])
            self.keras_model = model
            self.config = config
            self._infer = self._traced = self._encoder = None
        names = self.metadata.classes
        if isinstance(names, list) and names == class_names(old):
            self.metadata.classes = class_names(n)
        elif isinstance(names, list) and len(names) == old + 2:
            # names a person gave: keep them, name the new classes
            self.metadata.classes = (
                names[:-1] + [f"object class {k}" for k in range(old + 1, n + 1)] + names[-1:]
            )
        else:
            self.metadata.classes = class_names(n)

    def portable_model(self):
        """This network's weights in plain Keras layers computing in float32: what model
        files and exports hold, independent of the machine (:attr:`keras_model` is the
        network that computes: fused batch normalisation, the machine's precision)."""
        from .architecture import build_unet

        with self._lock:
            twin = build_unet(self.config, dtype_policy="float32")
            twin.set_weights(self.keras_model.get_weights())
        return twin

    # ------------------------------------------------------------------ properties
    @property
    def normalization(self) -> dict[str, Any]:
        return self.metadata.normalization

    @property
    def n_object_classes(self) -> int:
        return self.config.n_object_classes

    @property
    def object_class_names(self) -> list[str]:
        """Names of the object classes (class *k* is item *k* − 1)."""
        names = self.metadata.classes
        n = self.config.n_object_classes
        if isinstance(names, list) and len(names) == n + 2:
            return [str(c) for c in names[1:-1]]
        return class_names(n)[1:-1]

    @property
    def input_channels(self) -> int:
        return self.config.input_channels

    @property
    def lock(self) -> threading.RLock:
        """Held while the network's weights or layers change (training, widening) or
        are read whole (saving), so that these never overlap."""
        return self._lock

    # ------------------------------------------------------------------ training
    def train(
        self,
        pairs: Sequence,
        config: TrainConfig | None = None,
        progress: Callable | None = None,
        stop_event: threading.Event | None = None,
        preview_image: np.ndarray | None = None,
        preview_interval: float = PREVIEW_INTERVAL,
    ):
        """Fine-tune this network in place on image/label pairs.

        Parameters
        ----------
        pairs
            :class:`~napari_unet.core.training.samples.TrainingPair` objects (annotations or masks).
        config
            Training settings; defaults to :class:`TrainConfig`'s.
        progress
            Called with :class:`~napari_unet.core.training.loop.TrainProgress` records after
            every batch and epoch (from the training thread).
        stop_event
            When set, training stops after the current batch; the best weights are kept.
        preview_image
            If given, a :class:`Prediction` of it is reported (kind ``"preview"``) at
            epoch ends, at most every ``preview_interval`` seconds.

        Returns
        -------
        TrainResult
        """
        from ..training.run import train

        return train(self, pairs, config, progress, stop_event, preview_image, preview_interval)

    @property
    def pretrained(self) -> bool:
        """True when the network has learned something (trained here or loaded)."""
        return bool(self.metadata.training_runs or self.metadata.source_path)

    # ------------------------------------------------------------------ prediction
    def encoder_function(self):
        """``encode(batch) -> [activations]``: the :func:`~napari_unet.core.network.architecture.encoder_layers`
        of a ``(N, Y, X, C)`` float32 batch of normalised images (a size regression
        reads them, :mod:`~napari_unet.core.prediction.size_model`), traced once for any
        size, reading the weights when it runs, as :meth:`inference_function` does."""
        with self._lock:
            if self._encoder is None:
                import keras
                import tensorflow as tf

                from .architecture import encoder_layers

                model = self.keras_model
                outputs = [model.get_layer(n).output for n in encoder_layers(self.config)]
                sub = keras.Model(model.inputs, outputs)
                spec = tf.TensorSpec([None, None, None, self.input_channels], tf.float32)

                @tf.function(input_signature=[spec], autograph=False)
                def encode(x):
                    return sub(x, training=False)

                self._encoder = lambda x: [
                    np.asarray(a) for a in encode(tf.convert_to_tensor(np.asarray(x, np.float32)))
                ]
            return self._encoder

    def inference_function(self):
        """``infer(batch) -> probabilities``: the network on a ``(N, Y, X, C)`` float32
        batch of normalised tiles (the block-wise large-image path and benchmarks call
        it directly).

        It is traced once for any batch and tile size (the signature leaves them open,
        so a new image size or the last, smaller batch costs no new trace) and reads
        the weights when it runs, so training does not make it stale."""
        with self._lock:
            if self._infer is None:
                import tensorflow as tf

                from ..hardware import inference_jit

                model = self.keras_model
                spec = tf.TensorSpec([None, None, None, self.input_channels], tf.float32)

                @tf.function(input_signature=[spec], jit_compile=inference_jit(), autograph=False)
                def infer(x):
                    return model(x, training=False)

                self._traced = infer
                self._infer = lambda x: infer(
                    tf.convert_to_tensor(np.asarray(x, np.float32))
                ).numpy()
            return self._infer

    def predict(
        self,
        image,
        tile_size: int | None = None,
        context: int | None = None,
        threshold: float | None = None,
        min_size: int | None = None,
        channel_axis: int | None = None,
        batch_size: int = 2,
        return_scores: bool = False,
        progress: Callable[[int, int], None] | None = None,
        diameter: float | str | None = "auto",
        rgb: bool | None = None,
        axes: str | None = None,
        stage: Callable | None = None,
        volume: bool = False,
        z_scale: float = 1.0,
        views: str = "yx",
        suggest: bool = False,
    ) -> Prediction:
        """Segment a 2D image, a 2D multichannel image or a stack (plane by plane), or a
        z-stack as one volume (``volume=True``).

        Parameters
        ----------
        image
            ``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, an RGB(A) picture, or a stack of
            them ``(Z, Y, X[, C])``, ``(T, Z, Y, X)``, …; where the channels are is decided
            by :func:`~napari_unet.core.axes.channel_layout` (the same rule as the command
            line, the widgets and training).
        channel_axis, axes, rgb
            Say where the channels are instead: an axis number, an axes string such as
            ``"YXC"`` or ``"ZCYX"``, or napari's RGB flag of the layer.
        tile_size
            Edge of the tiles the network sees (context included); images that fit are
            done in one pass.
        context
            Pixels of context per tile side (rounded up to the network's size multiple).
        threshold, min_size
            Foreground probability above which a pixel belongs to an object, and the
            smallest instance kept (pixels); ``None``: the model's own setting
            (:attr:`postprocessing`, tuned on its training annotation).
        diameter
            Typical object width in the image, in pixels: ``"auto"`` measures it per
            plane; a number says it; ``None`` or 0 uses the image as it is. The image
            is rescaled so its objects match :attr:`object_diameter` (the model's
            training scale) and the results are brought back to the image's pixels.
        batch_size
            Tiles the network sees at once.
        progress
            Called as ``progress(done, total)`` in tiles over all planes.
        stage
            Called with a :class:`~napari_unet.core.prediction.tiling.Stage` as each stage of a
            plane starts: estimating the object size (only when measured), predicting
            (then ``progress`` counts its tiles), post-processing.
        volume
            The stack's last axis before Y, X is Z and it is one volume: objects get one
            id through z, touching ones are split in 3-D (axes before Z are frames, each a
            volume of its own); see :meth:`Predictor.predict_volume
            <napari_unet.core.prediction.predictor.Predictor.predict_volume>`.
            ``progress`` then counts network passes (planes), not tiles.
        z_scale
            A volume's z step over its pixel size (e.g. 2.0 for 0.5 µm pixels and 1 µm
            steps).
        views
            What the network sees of a volume: ``"yx"`` (its planes) or ``"all"`` (also
            its ZY and ZX planes, averaged; about three times the time).
        suggest
            Also say what to correct next: :attr:`Prediction.suggestions
            <napari_unet.core.prediction.predictor.Prediction.suggestions>` (most doubtful
            first) and :attr:`~napari_unet.core.prediction.predictor.Prediction.doubt_map`
            (:mod:`napari_unet.core.prediction.suggestions`).
        """
        if image is None:
            raise UserInputError("no image given")
        predictor = self.predictor(
            tile_size=tile_size,
            context=context,
            threshold=threshold,
            min_size=min_size,
            diameter=diameter,
            batch_size=batch_size,
        )
        if volume:
            return predictor.predict_volume(
                image,
                z_scale,
                views,
                channel_axis,
                rgb,
                axes,
                return_scores,
                progress,
                stage,
                suggest=suggest,
            )
        return predictor.predict(
            image, channel_axis, rgb, axes, return_scores, progress, stage, suggest=suggest
        )

    def predictor(self, **options) -> Predictor:
        """A :class:`~napari_unet.core.prediction.predictor.Predictor` of this network: what one
        prediction needs (normalisation, object scale, tiles, post-processing);
        ``options`` are its settings (``tile_size``, ``context``, ``threshold``,
        ``min_size``, ``diameter``, ``batch_size``)."""
        return Predictor(self, **options)

    def predict_dask(self, image, out=None, client=None, **kwargs):
        """Segment a 2D image of any size block by block as a dask graph, in this
        process or on a :class:`distributed.Client`'s cluster; returns a
        :class:`~napari_unet.core.prediction.blockwise.LazyPrediction` (OME-Zarr pyramids in ``out``,
        as dask arrays). See :func:`napari_unet.core.prediction.blockwise.predict_dask`."""
        from ..prediction.blockwise import predict_dask

        return predict_dask(self, image, out, client, **kwargs)

    @property
    def object_diameter(self) -> float | None:
        """Typical object width (px) in the data the model was trained at, if known."""
        return recorded_width(self.metadata.object_diameter)

    @property
    def mask_diameter(self) -> float | None:
        """The width of those objects as their masks measure it, at the model's scale
        (:attr:`~napari_unet.core.network.metadata.ModelMetadata.mask_diameter`; the
        :attr:`object_diameter` where the model does not record it)."""
        return recorded_width(self.metadata.mask_diameter) or self.object_diameter

    @property
    def postprocessing(self):
        """The :class:`~napari_unet.core.prediction.instances.PostprocessParams` of this model
        (tuned on its training annotation after each run; defaults otherwise)."""
        from ..prediction.instances import PostprocessParams

        try:
            return PostprocessParams.from_dict(self.metadata.postprocessing)
        except (TypeError, ValueError, UserInputError):
            return PostprocessParams()

    # ------------------------------------------------------------------ saving
    def describe(self) -> ModelMetadata:
        """The metadata written into the model file."""
        meta = self.metadata.copy()
        meta.source_path = None
        meta.architecture = self.config.to_dict()
        meta.input_channels = self.config.input_channels
        meta.package_version = _package_version()
        meta.saved = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if meta.patch_size is None:
            meta.patch_size = TrainConfig().patch_size
        return meta

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one ``.keras`` file (atomically)."""
        from .model_file import save_keras_with_metadata

        with self._lock:
            # an uncompiled float32 twin: the file names no loss or optimizer code and
            # loads into any Keras
            return save_keras_with_metadata(self.portable_model(), path, self.describe())
