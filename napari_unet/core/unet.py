"""The :class:`UNet`: build, train, predict, save and load — usable from a notebook.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig, UNetConfig
from .errors import ModelFileError, UserInputError
from .normalize import DEFAULT_NORMALIZATION, normalize, percentiles

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default_nuclei.keras"


def default_model_path() -> Path:
    """The default model: the bundled one, or the file ``NAPARI_UNET_DEFAULT_MODEL`` names
    (a facility can point every user at a shared, fine-tuned model)."""
    return Path(os.environ.get("NAPARI_UNET_DEFAULT_MODEL") or DEFAULT_MODEL_PATH)


#: Context per tile side used by default; 64 px keeps the labels identical to a
#: whole-image pass for the default depth-4 network (see benchmarks/).
DEFAULT_CONTEXT = 64
DEFAULT_TILE_SIZE = 1024


@dataclass
class Prediction:
    """Prediction for one image (or a stack, with the same leading axes).

    Attributes
    ----------
    probability
        Foreground probability ``1 - P(background)``, float32 in [0, 1].
    labels
        Instance ids (0 = background), unique across planes of a stack.
    scores
        Full class probabilities ``(..., Y, X, K)`` when asked for, else ``None``.
    """

    probability: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None


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

    def __init__(self, keras_model, config: UNetConfig, metadata: dict[str, Any] | None = None):
        self.keras_model = keras_model
        self.config = config
        self.metadata: dict[str, Any] = metadata or {}
        self.metadata.setdefault("normalization", dict(DEFAULT_NORMALIZATION))
        self.metadata.setdefault("history", {})
        self.metadata.setdefault("training_runs", [])
        self.metadata.setdefault(
            "classes",
            ["background"]
            + [f"object{i + 1}" if i else "object" for i in range(config.n_object_classes)]
            + ["boundary"],
        )
        self._infer = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ creation
    @classmethod
    def new(cls, config: UNetConfig | None = None, seed: int | None = 0) -> UNet:
        """A freshly initialised network."""
        import keras

        from .model import build_unet

        config = config or UNetConfig()
        if seed is not None:
            keras.utils.set_random_seed(seed)
        return cls(build_unet(config), config)

    @classmethod
    def load(cls, path: str | os.PathLike) -> UNet:
        """Load a napari-unet model file, refusing foreign or code-carrying files.

        Raises
        ------
        ModelFileError
            With a message that says what is wrong with the file.
        """
        from .model import build_unet
        from .modelfile import read_metadata

        meta = read_metadata(path)
        try:
            config = UNetConfig.from_dict(meta["architecture"])
        except (TypeError, UserInputError) as e:
            raise ModelFileError(f"{Path(path).name}: bad architecture in metadata ({e})") from None
        model = build_unet(config)
        try:
            model.load_weights(str(path))
        except Exception as e:  # noqa: BLE001 - h5/keras raise many kinds
            raise ModelFileError(
                f"{Path(path).name}: weights do not fit its architecture ({type(e).__name__})"
            ) from None
        meta["source_path"] = str(Path(path).resolve())
        return cls(model, config, meta)

    @classmethod
    def default(cls) -> UNet:
        """The bundled pretrained nuclei model."""
        path = default_model_path()
        if not path.exists():
            raise ModelFileError(
                f"the default nuclei model is not installed ({path} is missing); "
                "name a model file or train one first"
            )
        return cls.load(path)

    def copy(self) -> UNet:
        """An independent copy (same weights, own metadata)."""
        import copy

        from .model import build_unet

        model = build_unet(self.config)
        model.set_weights(self.keras_model.get_weights())
        return UNet(model, self.config, copy.deepcopy(self.metadata))

    # ------------------------------------------------------------------ properties
    @property
    def normalization(self) -> dict[str, Any]:
        return self.metadata["normalization"]

    @property
    def input_channels(self) -> int:
        return self.config.input_channels

    # ------------------------------------------------------------------ training
    def train(
        self,
        pairs: Sequence,
        config: TrainConfig | None = None,
        progress: Callable | None = None,
        stop_event: threading.Event | None = None,
        preview_image: np.ndarray | None = None,
        preview_interval: float = 5.0,
    ):
        """Fine-tune this network in place on image/label pairs.

        Parameters
        ----------
        pairs
            :class:`~napari_unet.core.data.TrainingPair` objects (annotations or masks).
        config
            Training settings; defaults to :class:`TrainConfig`'s.
        progress
            Called with :class:`~napari_unet.core.training.TrainProgress` records after
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
        from .data import prepare_pairs
        from .training import fit

        cfg = config or TrainConfig()
        if self.config.padding != "same":
            raise UserInputError("training is implemented for 'same' padding networks")
        if cfg.patch_size % self.config.size_multiple:
            raise UserInputError(
                f"patch size {cfg.patch_size} must be a multiple of {self.config.size_multiple} "
                f"for a depth-{self.config.depth} network"
            )
        normalization = dict(self.normalization)
        prepared = prepare_pairs(
            list(pairs), self.input_channels, self.config.n_object_classes, normalization
        )
        preview = None
        if preview_image is not None:

            def preview():
                return self.predict(preview_image)

        with self._lock:
            self._infer = None  # weights change: rebuild the inference function
            result = fit(
                self.keras_model,
                prepared,
                cfg,
                progress=progress,
                stop_event=stop_event,
                preview=preview,
                preview_interval=preview_interval,
            )
            self._infer = None
        hist = self.metadata["history"]
        for key, values in result.history.items():
            hist.setdefault(key, []).extend(values)
        self.metadata["patch_size"] = cfg.patch_size
        self.metadata["training_runs"].append(
            {
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": cfg.to_dict(),
                "data": result.data,
                "epochs": result.epochs_run,
                "steps": result.steps_run,
                "seconds": round(result.seconds, 2),
                "stopped_by": result.stopped_by,
                "best_epoch": result.best_epoch,
                "monitor": result.monitor,
                "best_monitor": result.best_monitor,
            }
        )
        return result

    # ------------------------------------------------------------------ prediction
    def _inference_fn(self):
        with self._lock:
            if self._infer is None:
                import tensorflow as tf

                from .hardware import inference_jit

                model = self.keras_model

                @tf.function(reduce_retracing=True, jit_compile=inference_jit(), autograph=False)
                def infer(x):
                    return model(x, training=False)

                self._infer = lambda x: infer(tf.convert_to_tensor(x)).numpy()
            return self._infer

    def _plan(self, height: int, width: int, tile_size: int | None, context: int | None):
        from .model import output_size, valid_input_sizes
        from .predict import TilePlan, plan_tiles

        tile = int(tile_size or DEFAULT_TILE_SIZE)
        if self.config.padding == "valid":
            sizes = valid_input_sizes(self.config, 1, max(tile, 64))
            if not sizes:
                raise UserInputError(f"no valid tile size up to {tile}")
            inp = sizes[-1]
            out = output_size(self.config, inp)
            return TilePlan(height, width, out, out, 0, (inp - out) // 2)
        ctx = DEFAULT_CONTEXT if context is None else int(context)
        return plan_tiles(height, width, tile, ctx, self.config.size_multiple)

    def _as_planes(self, image: np.ndarray, channel_axis: int | None):
        """Reshape to ``(planes, Y, X, C)``; returns the planes and the leading shape."""
        a = image
        ch = self.input_channels
        if channel_axis is not None:
            a = np.moveaxis(np.asarray(a), channel_axis, -1)
            if ch == 1 and a.shape[-1] != 1:
                # colours → intensity; an alpha channel (RGBA) carries no intensity
                colours = a[..., :3] if a.shape[-1] == 4 else a
                a = np.asarray(colours, np.float32).mean(axis=-1, keepdims=True)
            elif a.shape[-1] != ch:
                raise UserInputError(
                    f"the model expects {ch} channels, the image has {a.shape[-1]}"
                )
        elif ch == 1:
            a = a[..., None] if hasattr(a, "__getitem__") else np.asarray(a)[..., None]
        elif a.shape[-1] != ch:
            raise UserInputError(
                f"the model expects {ch} channels last, the image has shape {a.shape}"
            )
        if a.ndim < 3:
            raise UserInputError(f"image must be at least 2D, got shape {image.shape}")
        if a.ndim > 6:
            raise UserInputError(f"image has too many dimensions: {image.shape}")
        lead = tuple(a.shape[:-3])
        if min(a.shape[-3:-1]) < 2:
            raise UserInputError(f"image {tuple(image.shape)} is too small to segment")
        return a, lead

    def predict(
        self,
        image,
        tile_size: int | None = None,
        context: int | None = None,
        threshold: float = 0.5,
        min_size: int = 10,
        channel_axis: int | None = None,
        batch_size: int = 2,
        return_scores: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Prediction:
        """Segment a 2D image, a 2D multichannel image or a stack (plane by plane).

        Parameters
        ----------
        image
            ``(Y, X)``, ``(Y, X, C)`` (channels last, or say where with
            ``channel_axis``) or ``(..., Y, X[, C])`` stacks.
        tile_size
            Edge of the tiles the network sees (context included); images that fit are
            done in one pass.
        context
            Pixels of context per tile side (rounded up to the network's size multiple).
        threshold
            Foreground probability above which a pixel belongs to an object.
        min_size
            Instances smaller than this (pixels) are dropped.
        progress
            Called as ``progress(done, total)`` in tiles over all planes.
        """
        from .postprocess import foreground_probability, instances_from_probabilities
        from .predict import predict_probabilities

        if image is None:
            raise UserInputError("no image given")
        if not 0.0 < float(threshold) < 1.0:
            raise UserInputError(f"threshold must be between 0 and 1, got {threshold}")
        a, lead = self._as_planes(image, channel_axis)
        h, w = a.shape[-3], a.shape[-2]
        plan = self._plan(h, w, tile_size, context)
        infer = self._inference_fn()
        norm = self.normalization
        n_planes = int(np.prod(lead)) if lead else 1
        flat = a.reshape((n_planes,) + tuple(a.shape[-3:])) if lead else a[None]
        prob = np.empty((n_planes, h, w), np.float32)
        labels = np.empty((n_planes, h, w), np.int32)
        scores = (
            np.empty((n_planes, h, w, self.config.n_outputs), np.float32) if return_scores else None
        )
        tiles_per_plane = len(plan.origins)
        offset = 0
        for i in range(n_planes):
            plane = flat[i]
            lo, hi = percentiles(plane, norm.get("low", 1.0), norm.get("high", 99.8))

            def normalizer(t, lo=lo, hi=hi):
                return normalize(t, lo, hi)

            def plane_progress(done, total, i=i):
                if progress is not None:
                    progress(i * tiles_per_plane + done, n_planes * tiles_per_plane)

            s = predict_probabilities(
                infer, plane, self.config.n_outputs, plan, normalizer, batch_size, plane_progress
            )
            prob[i] = foreground_probability(s)
            lab = instances_from_probabilities(s, threshold=threshold, min_size=min_size)
            labels[i] = np.where(lab > 0, lab + offset, 0)
            offset += int(lab.max(initial=0))
            if scores is not None:
                scores[i] = s
        shape = lead + (h, w)
        return Prediction(
            prob.reshape(shape),
            labels.reshape(shape),
            None if scores is None else scores.reshape(shape + (self.config.n_outputs,)),
        )

    # ------------------------------------------------------------------ saving
    def describe(self) -> dict[str, Any]:
        """The metadata written into the model file."""
        meta = {k: v for k, v in self.metadata.items() if k != "source_path"}
        meta["architecture"] = self.config.to_dict()
        meta["input_channels"] = self.config.input_channels
        meta["package_version"] = _package_version()
        meta["saved"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        meta.setdefault("patch_size", TrainConfig().patch_size)
        return meta

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one ``.keras`` file (atomically)."""
        from .model import build_unet
        from .modelfile import save_keras_with_metadata

        with self._lock:
            # save an uncompiled twin: the file then names no loss or optimizer code
            twin = build_unet(self.config, dtype_policy="float32")
            twin.set_weights(self.keras_model.get_weights())
            return save_keras_with_metadata(twin, path, self.describe())
