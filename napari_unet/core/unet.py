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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import (  # noqa: F401 - the tile defaults are re-exported
    DEFAULT_CONTEXT,
    DEFAULT_TILE_SIZE,
    MAX_OBJECT_CLASSES,
    PREVIEW_INTERVAL,
    TrainConfig,
    UNetConfig,
    class_names,
)
from .errors import ModelFileError, UserInputError
from .modelfile import DEFAULT_MODEL_PATH, default_model_path  # noqa: F401 - re-exported
from .normalize import DEFAULT_NORMALIZATION, normalize, percentile_range, percentiles
from .predict import Stage


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
    scale
        Factor the image was resized by before the network saw it (median over planes).
    diameter
        Object width (px, in the image) that set the scale, measured or given; ``None``
        when the image was used as it is.
    classes
        For a model with several object classes: the class map, ``uint8`` of the
        labels' shape, 0 on background and the class (1..n) of each instance on its
        pixels (one class per instance). ``None`` for a one-class model.
    instance_classes
        For a model with several object classes: the class of every instance, indexed
        by its id (``instance_classes[0]`` is 0). ``None`` for a one-class model.
    class_names
        Names of the object classes (class *k* is ``class_names[k - 1]``).
    network_pixels
        Pixels the network evaluated, over all planes: ``"size estimate"`` (the looks
        that measured the object size) and ``"prediction"`` (the passes kept).
    """

    probability: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    scale: float = 1.0
    diameter: float | None = None
    classes: np.ndarray | None = None
    instance_classes: np.ndarray | None = None
    class_names: list[str] | None = None
    network_pixels: dict[str, int] | None = None

    @property
    def n_object_classes(self) -> int:
        """Object classes of the model that made this prediction."""
        return len(self.class_names) if self.class_names else 1


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
        self.metadata.setdefault("classes", config.class_names)
        self._infer = None
        self._traced = None  # the tf.function behind _infer
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ creation
    @classmethod
    def new(cls, config: UNetConfig | None = None, seed: int | None = 0) -> UNet:
        """A freshly initialised network."""
        from ._tfload import import_tensorflow

        import_tensorflow()
        from .model import build_unet, initialise_weights

        config = config or UNetConfig()
        model = build_unet(config, fused=True)
        if seed is not None:
            initialise_weights(model, seed)
        return cls(model, config)

    @classmethod
    def load(cls, path: str | os.PathLike) -> UNet:
        """Load a napari-unet model file, refusing foreign or code-carrying files.

        Raises
        ------
        ModelFileError
            With a message that says what is wrong with the file.
        """
        from .model import build_unet
        from .modelfile import read_metadata, read_weights

        meta = read_metadata(path)
        try:
            config = UNetConfig.from_dict(meta["architecture"])
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
        meta["source_path"] = str(Path(path).resolve())
        return cls(model, config, meta)

    @classmethod
    def default(cls) -> UNet:
        """The bundled pretrained nuclei model."""
        from .modelfile import default_model_missing

        path = default_model_path()
        if not path.exists():
            raise default_model_missing()
        return cls.load(path)

    def copy(self) -> UNet:
        """An independent copy (same weights, own metadata)."""
        import copy

        from .model import build_unet

        model = build_unet(self.config, fused=True)
        model.set_weights(self.keras_model.get_weights())
        return UNet(model, self.config, copy.deepcopy(self.metadata))

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
        from .model import build_unet, initialise_weights

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
            self._infer = self._traced = None
        names = self.metadata.get("classes")
        if isinstance(names, list) and names == class_names(old):
            self.metadata["classes"] = class_names(n)
        elif isinstance(names, list) and len(names) == old + 2:
            # names a person gave: keep them, name the new classes
            self.metadata["classes"] = (
                names[:-1] + [f"object class {k}" for k in range(old + 1, n + 1)] + names[-1:]
            )
        else:
            self.metadata["classes"] = class_names(n)

    def portable_model(self):
        """This network's weights in plain Keras layers computing in float32: what model
        files and exports hold, independent of the machine (:attr:`keras_model` is the
        network that computes: fused batch normalisation, the machine's precision)."""
        from .model import build_unet

        with self._lock:
            twin = build_unet(self.config, dtype_policy="float32")
            twin.set_weights(self.keras_model.get_weights())
        return twin

    # ------------------------------------------------------------------ properties
    @property
    def normalization(self) -> dict[str, Any]:
        return self.metadata["normalization"]

    @property
    def n_object_classes(self) -> int:
        return self.config.n_object_classes

    @property
    def object_class_names(self) -> list[str]:
        """Names of the object classes (class *k* is item *k* − 1)."""
        names = self.metadata.get("classes")
        n = self.config.n_object_classes
        if isinstance(names, list) and len(names) == n + 2:
            return [str(c) for c in names[1:-1]]
        return class_names(n)[1:-1]

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
        preview_interval: float = PREVIEW_INTERVAL,
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
        from .data import planes_of, prepare_pairs, sampling_margin
        from .targets import annotation_object_classes, check_classes_painted
        from .training import fit

        cfg = config or TrainConfig()
        if self.config.padding != "same":
            raise UserInputError("training is implemented for 'same' padding networks")
        if cfg.patch_size % self.config.size_multiple:
            raise UserInputError(
                f"patch size {cfg.patch_size} must be a multiple of {self.config.size_multiple} "
                f"for a depth-{self.config.depth} network"
            )
        pretrained = self.pretrained
        # pairs of chunked (dask, zarr) arrays: the regions around their labels
        planes = planes_of(
            list(pairs),
            self.input_channels,
            margin=sampling_margin(cfg.patch_size),
            normalization=dict(self.normalization),
        )
        # annotation labels 3, 4, … are further object classes: a network with fewer
        # gets an output per class (a trained one keeps what it knows, see widen)
        needed, where = 1, ""
        for p in planes:
            if p.kind == "annotation" and annotation_object_classes(p.annotation) > needed:
                needed, where = annotation_object_classes(p.annotation), p.name
        if needed > MAX_OBJECT_CLASSES:
            raise UserInputError(
                f"{where}: the annotation uses label {needed + 1}, but annotations hold "
                f"0 (not annotated), 1 (background) and 2..{MAX_OBJECT_CLASSES + 1} (object "
                "classes); a mask with one id per object is given as a mask, not an annotation"
            )
        # a stray label (7 among 1–3) or a mask given as an annotation: refused plainly
        check_classes_painted(
            [(p.name, p.annotation) for p in planes if p.kind == "annotation"],
            self.config.n_object_classes,
        )
        originals = list(planes)  # at their own pixels: the before/after figures
        planes, diameters = self._to_model_scale(planes, cfg)
        if pretrained and cfg.pseudo_label_weight > 0:
            planes = [
                replace(p, pseudo=self._teacher(p)) if p.kind == "annotation" else p for p in planes
            ]
        widened_from = None
        if needed > self.config.n_object_classes:
            # after the teacher: its pseudo-labels say object, not which class
            widened_from = self.config.n_object_classes
            self.widen(needed, seed=cfg.seed)
        prepared = prepare_pairs(
            planes,
            self.input_channels,
            self.config.n_object_classes,
            dict(self.normalization),
            painted_weight=cfg.painted_weight,
            pseudo_weight=cfg.pseudo_label_weight if pretrained else 0.0,
            split=False,
        )
        for p in planes:
            p.pseudo = None  # free the teacher's maps
        lr = cfg.first_learning_rate(pretrained)
        preview = None
        if preview_image is not None:

            def preview():
                return self.predict(preview_image)

        with self._lock:
            # the inference function reads the weights as they are when it runs, so a
            # trace made before (the first Segment, a preview) serves after training too
            result = fit(
                self.keras_model,
                prepared,
                cfg,
                progress=progress,
                stop_event=stop_event,
                preview=preview,
                preview_interval=preview_interval,
                learning_rate=lr,
                config=self.config,
            )
        from .scoring import ValidationSet

        result.held_out = ValidationSet.from_training(originals, result.validation)
        search = None
        if result.steps_run and result.stopped_by != "stop_event":  # Stop answers at once
            # the trained network's view of its training planes, computed once
            after = [self._plane_scores(p.image, 1.0, intensity=p.intensity)[0] for p in planes]
            if cfg.tune_postprocessing:
                search = self._tune_postprocessing(planes, after)
            self._calibrate_diameter(after, planes, [d for d in diameters if d])
        hist = self.metadata["history"]
        for key, values in result.history.items():
            hist.setdefault(key, []).extend(values)
        self.metadata["patch_size"] = cfg.patch_size
        self.metadata["training_runs"].append(
            {
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": cfg.to_dict(),
                "learning_rate": lr,
                "data": result.data,
                "epochs": result.epochs_run,
                "steps": result.steps_run,
                "seconds": round(result.seconds, 2),
                "stopped_by": result.stopped_by,
                "best_epoch": result.best_epoch,
                "monitor": result.monitor,
                "best_monitor": result.best_monitor,
                "postprocessing_search": search,
                "object_classes": self.config.n_object_classes,
                **({"widened_from": widened_from} if widened_from else {}),
            }
        )
        return result

    def _teacher(self, plane) -> np.ndarray | None:
        """This model's probabilities for a plane, as pseudo-labels for its unannotated
        pixels — only where it already agrees with the person on the painted pixels
        (balanced accuracy ≥ 0.8): a model that cannot see these objects at all would
        otherwise teach "background" everywhere against the corrections."""
        scores, _ = self._plane_scores(plane.image, 1.0, intensity=plane.intensity)
        ann = np.asarray(plane.annotation)
        fg_pred = scores[..., 0] < 0.5
        hits = []
        for sel, want in ((ann == 1, False), (ann >= 2, True)):
            if sel.any():
                hits.append(float((fg_pred[sel] == want).mean()))
        return scores if hits and min(hits) >= 0.8 else None

    @property
    def pretrained(self) -> bool:
        """True when the network has learned something (trained here or loaded)."""
        return bool(self.metadata.get("training_runs") or self.metadata.get("source_path"))

    def _to_model_scale(self, planes: list, cfg: TrainConfig) -> tuple[list, list]:
        """Planes resized so their objects match :attr:`object_diameter`, and the
        object widths measured in each (``None`` where unknown)."""
        from .size import (
            annotated_diameter,
            clip_scale,
            mask_diameter,
            rescale_image,
            resize_annotation,
            resize_to,
            scaled_shape,
        )

        model_d = self.object_diameter
        out, diameters = [], []
        for p in planes:
            d = p.diameter
            if d is None:
                d = mask_diameter(p.mask) if p.kind == "mask" else annotated_diameter(p.annotation)
            factor = 1.0
            if model_d and cfg.rescale:
                if d is None and p.kind == "annotation":
                    factor, _ = self._estimate_scale(
                        self._scorer(p.image, intensity=p.intensity),
                        p.image.shape,
                        self.postprocessing.threshold,
                    )
                elif d:
                    factor = clip_scale(model_d / d)
            diameters.append(d)
            if factor != 1.0:
                shape = scaled_shape(p.image.shape, factor)
                if p.kind == "mask":
                    labels = resize_to(np.asarray(p.labels), shape, labels=True)
                else:
                    labels = resize_annotation(p.labels, shape)
                painted = (
                    None
                    if p.painted is None
                    else resize_annotation(np.asarray(p.painted, np.uint8), shape) > 0
                )
                p = replace(
                    p,
                    image=rescale_image(p.image, factor),
                    painted=painted,
                    diameter=None,
                    **{p.kind: labels},
                )
            out.append(p)
        return out, diameters

    def _calibrate_diameter(
        self, scores: list[np.ndarray], planes: list, known: list[float]
    ) -> None:
        """Record the object width this network measures on its own training planes.

        Prediction brings an image to the scale where the network *measures* objects of
        :attr:`object_diameter`, so that width must be in the network's own measure: a
        network that draws objects a little thin measures them thin on new images too.
        The training planes are at the model's scale (or, for a new network, at the
        scale it learned), so what it measures there is the width to aim for. Without a
        measurement, a new network falls back on the widths of its masks.

        On an annotation only the predicted regions that hold annotated object pixels
        are measured: after a few corrections the network may still scatter small
        false detections over the unpainted rest of the image, which say nothing about
        the width of the objects it was taught.
        """
        from scipy import ndimage as ndi

        from .size import object_diameter

        th = self.postprocessing.threshold
        seen = []
        for s, p in zip(scores, planes):
            fg = s[..., 0] < 1 - th
            if p.kind == "annotation":
                regions, _ = ndi.label(fg)
                taught = np.unique(regions[(np.asarray(p.annotation) >= 2) & fg])
                fg = np.isin(regions, taught[taught > 0])
            d = object_diameter(fg)
            if d:
                seen.append(d)
        if seen:
            self.metadata["object_diameter"] = round(float(np.median(seen)), 2)
        elif known and not self.object_diameter:
            self.metadata["object_diameter"] = round(float(np.median(known)), 2)

    def _tune_postprocessing(self, planes: list, scores: list[np.ndarray]) -> dict | None:
        """Choose and keep the post-processing that suits the training annotation."""
        from .postprocess import search_postprocessing

        found = search_postprocessing(
            scores,
            [np.asarray(p.labels) for p in planes],
            [p.kind for p in planes],
            self.postprocessing,
        )
        if found.n_objects < 3:
            return None  # too few objects to judge by
        self.metadata["postprocessing"] = found.params.to_dict()
        return found.to_dict()

    # ------------------------------------------------------------------ prediction
    def _plane_scores(
        self,
        plane,
        factor: float,
        tile_size=None,
        context=None,
        report=None,
        intensity=None,
        quick: bool = False,
    ):
        """Class probabilities of one channels-last plane resized by ``factor``
        (normalised by ``intensity``, ``(low, high)``, when given; else by its own
        percentiles), and the number of pixels the network evaluated for them."""
        from .predict import predict_probabilities
        from .size import rescale_image

        if intensity is not None:
            lo, hi = intensity
        else:
            lo, hi = percentiles(plane, *percentile_range(self.normalization))
        region = rescale_image(plane, factor, quick)
        plan = self._plan(region.shape[0], region.shape[1], tile_size, context)
        scores = predict_probabilities(
            self.inference_function(),
            region,
            self.config.n_outputs,
            plan,
            lambda t: normalize(t, lo, hi),
            2,
            report,
        )
        return scores, len(plan.origins) * plan.in_y * plan.in_x

    def _scorer(self, plane, tile_size=None, context=None, intensity=None, report=None, stage=None):
        """``scores(factor, crop=None)`` for one plane: class probabilities of the plane
        (or a crop of it; ``None`` or :data:`~napari_unet.core.size.WHOLE`: all of it)
        resized by ``factor``.

        A crop is a look of the size estimate: seen alone, without context (its borders
        barely move a median object width), normalised as the whole plane is. The
        whole plane is seen as the prediction sees it (tiles with context, tile
        progress to ``report``, the stage to ``stage``), and its last pass is kept, so
        the prediction at the scale an estimate chose reuses it. ``scores.pixels``
        counts the pixels the network evaluated: ``"size estimate"`` and
        ``"prediction"`` (the kept pass; a whole pass that was not kept counts as
        estimate)."""
        from .size import WHOLE

        last: dict = {}
        pixels = {"size estimate": 0, "prediction": 0}
        if intensity is None:  # the plane's own, once for every look and pass
            intensity = percentiles(plane, *percentile_range(self.normalization))

        def scores(factor, crop=None):
            if crop is not None and crop != WHOLE:
                region = plane[crop]
                s, n = self._plane_scores(region, factor, tile_size, 0, None, intensity, True)
                pixels["size estimate"] += n
                return s
            if last.get("factor") == factor:
                return last["scores"]
            if stage is not None:
                stage(Stage.PREDICT)
            s, n = self._plane_scores(plane, factor, tile_size, context, report, intensity)
            # a pass replaced by another one served the estimate only
            pixels["size estimate"] += pixels["prediction"]
            pixels["prediction"] = n
            last.update(factor=factor, scores=s)
            return s

        scores.pixels = pixels
        return scores

    def _estimate_scale(self, scores, shape, threshold: float) -> tuple[float, float | None]:
        """Scale factor and measured object width (see
        :func:`~napari_unet.core.size.estimate_scale`)."""
        from .size import estimate_scale

        return estimate_scale(scores, shape[:2], self.object_diameter, threshold)

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

                from .hardware import inference_jit

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

    def _as_planes(self, image, channel_axis=None, rgb=None, axes=None):
        """Reshape to ``(planes, Y, X, C)``; returns the planes and the leading shape.

        Where the channels are is decided by :func:`~napari_unet.core.axes.channel_layout`.
        """
        from .axes import channel_layout

        layout = channel_layout(
            np.shape(image), self.input_channels, rgb=rgb, axes=axes, channel_axis=channel_axis
        )
        a = layout.channels_last(image)
        if min(layout.spatial_shape[-2:]) < 2:
            raise UserInputError(f"image {tuple(np.shape(image))} is too small to segment")
        return a, layout.stack_shape

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
    ) -> Prediction:
        """Segment a 2D image, a 2D multichannel image or a stack (plane by plane).

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
        progress
            Called as ``progress(done, total)`` in tiles over all planes.
        stage
            Called with a :class:`~napari_unet.core.predict.Stage` as each stage of a
            plane starts: estimating the object size (only when measured), predicting
            (then ``progress`` counts its tiles), post-processing.
        """
        from .postprocess import (
            _Instances,
            foreground_probability,
            instance_classes,
            relabel_and_filter,
        )
        from .size import resize_to

        if image is None:
            raise UserInputError("no image given")
        params = self.postprocessing
        if threshold is not None:
            if not 0.0 < float(threshold) < 1.0:
                raise UserInputError(f"threshold must be between 0 and 1, got {threshold}")
            params = replace(params, threshold=float(threshold))
        if min_size is not None:
            params = replace(params, min_size=int(min_size))
        a, lead = self._as_planes(image, channel_axis, rgb, axes)
        h, w = a.shape[-3], a.shape[-2]
        fixed_scale = self._fixed_scale(diameter, (h, w))
        plan = self._plan(h, w, tile_size, context)
        n_out = self.config.n_outputs
        n_planes = int(np.prod(lead)) if lead else 1
        flat = a.reshape((n_planes,) + tuple(a.shape[-3:])) if lead else a[None]
        prob = np.empty((n_planes, h, w), np.float32)
        labels = np.empty((n_planes, h, w), np.int32)
        scores = np.empty((n_planes, h, w, n_out), np.float32) if return_scores else None
        n_classes = self.config.n_object_classes
        classes = np.empty((n_planes, h, w), np.uint8) if n_classes > 1 else None
        votes = [np.zeros(1, np.uint8)]  # the class of every instance, id 0 first
        tiles_per_plane = len(plan.origins)
        factors, diameters = [], []
        pixels = {"size estimate": 0, "prediction": 0}
        offset = 0
        for i in range(n_planes):
            plane = flat[i]

            def plane_progress(done, total, i=i):
                if progress is not None:
                    frac = done / max(total, 1)
                    progress(
                        i * tiles_per_plane + round(frac * tiles_per_plane),
                        n_planes * tiles_per_plane,
                    )

            scores_at = self._scorer(plane, tile_size, context, None, plane_progress, stage)
            if fixed_scale is None:
                if stage is not None:
                    stage(Stage.ESTIMATE)
                factor, measured = self._estimate_scale(scores_at, (h, w), params.threshold)
            else:
                factor, measured = fixed_scale, None
            factors.append(factor)
            if measured is not None:
                diameters.append(measured)
            s = scores_at(factor)
            for k, n in scores_at.pixels.items():
                pixels[k] += n
            if stage is not None:
                stage(Stage.POSTPROCESS)
            instances = _Instances(s)
            lab = instances.labels(params)
            if factor != 1.0:
                s = resize_to(s, (h, w))
                lab = relabel_and_filter(resize_to(lab, (h, w), labels=True))
                prob[i] = foreground_probability(s)
            else:
                prob[i] = instances.fg_prob
            labels[i] = np.where(lab > 0, lab + offset, 0) if offset else lab
            if classes is not None:
                vote = instance_classes(s, lab)
                classes[i] = vote[lab]
                votes.append(vote[1:])
            offset += int(lab.max(initial=0))
            if scores is not None:
                scores[i] = s
            if progress is not None:
                progress((i + 1) * tiles_per_plane, n_planes * tiles_per_plane)
        shape = lead + (h, w)
        if fixed_scale is not None and fixed_scale != 1.0 and diameter not in (None, 0):
            diameters = [float(diameter)]
        return Prediction(
            prob.reshape(shape),
            labels.reshape(shape),
            None if scores is None else scores.reshape(shape + (n_out,)),
            scale=float(np.median(factors)),
            diameter=float(np.median(diameters)) if diameters else None,
            classes=None if classes is None else classes.reshape(shape),
            instance_classes=None if classes is None else np.concatenate(votes),
            class_names=self.object_class_names if classes is not None else None,
            network_pixels=pixels,
        )

    def predict_dask(self, image, out=None, client=None, **kwargs):
        """Segment a 2D image of any size block by block as a dask graph, in this
        process or on a :class:`distributed.Client`'s cluster; returns a
        :class:`~napari_unet.core.large.LazyPrediction` (OME-Zarr pyramids in ``out``,
        as dask arrays). See :func:`napari_unet.core.large.predict_dask`."""
        from .large import predict_dask

        return predict_dask(self, image, out, client, **kwargs)

    def _fixed_scale(self, diameter, shape: tuple[int, ...] | None = None) -> float | None:
        """The scale factor a ``diameter`` argument fixes, or ``None`` to estimate it;
        a diameter this model cannot be brought to (or wider than an image of ``shape``)
        is refused with the valid range (:func:`~.config.check_diameter`)."""
        model_d = self.object_diameter
        if diameter is None or (isinstance(diameter, (int, float)) and diameter == 0):
            return 1.0
        if isinstance(diameter, str):
            if diameter != "auto":
                raise UserInputError(f"diameter must be a number or 'auto', got {diameter!r}")
            return None if model_d else 1.0
        d = float(diameter)
        if not np.isfinite(d) or d < 0:
            raise UserInputError(f"diameter must be a positive number of pixels, got {diameter}")
        if not model_d:
            raise UserInputError(
                "this model does not record the object size it was trained at, so it cannot "
                "rescale to a diameter; leave the diameter empty (or 0)"
            )
        from .config import check_diameter
        from .size import clip_scale

        check_diameter(d, model_d, shape)
        return clip_scale(model_d / d)

    @property
    def object_diameter(self) -> float | None:
        """Typical object width (px) in the data the model was trained at, if known."""
        d = self.metadata.get("object_diameter")
        try:
            d = float(d) if d is not None else None
        except (TypeError, ValueError):
            return None
        return d if d and np.isfinite(d) and d > 0 else None

    @property
    def postprocessing(self):
        """The :class:`~napari_unet.core.postprocess.PostprocessParams` of this model
        (tuned on its training annotation after each run; defaults otherwise)."""
        from .postprocess import PostprocessParams

        try:
            return PostprocessParams.from_dict(self.metadata.get("postprocessing"))
        except (TypeError, ValueError, UserInputError):
            return PostprocessParams()

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
        from .modelfile import save_keras_with_metadata

        with self._lock:
            # an uncompiled float32 twin: the file names no loss or optimizer code and
            # loads into any Keras
            return save_keras_with_metadata(self.portable_model(), path, self.describe())
