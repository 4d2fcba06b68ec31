"""One prediction, whatever the image's size: the :class:`Predictor`.

A predictor holds a network and everything one prediction needs, each decided here
and nowhere else:

- **normalisation**: :meth:`Predictor.intensity`, the model's percentiles of an image
  (one function, so both paths and training's views agree);
- **object scale**: fixed by a diameter (:meth:`Predictor.fixed_scale`) or measured
  (:meth:`Predictor.estimate_scale`, :func:`~napari_unet.core.prediction.object_size.estimate_scale`);
- **tiling**: :meth:`Predictor.plan` (overlap tiles on the network's grid);
- **post-processing**: :meth:`Predictor.instances` (the model's settings, or those given).

:meth:`Predictor.predict` segments an image in memory; :meth:`Predictor.predict_volume`
a z-stack as one volume (one id per object through z; the 2-D network on YX planes, and
on ZY and ZX planes too when asked); the dask graph of images too
large for memory (:mod:`~napari_unet.core.prediction.blockwise`) calls :meth:`Predictor.predict_region`
on each block with the same steps. :meth:`UNet.predict
<napari_unet.core.network.unet.UNet.predict>` and :meth:`UNet.predict_dask
<napari_unet.core.network.unet.UNet.predict_dask>` build one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import DEFAULT_BORDER, DEFAULT_CONTEXT, DEFAULT_TILE_SIZE
from ..errors import UserInputError
from ..normalize import Normalizer, normalize
from .tiling import Stage

if TYPE_CHECKING:
    from ..arrays import Window
    from .doubt import Doubt, Signs
    from .instances import PostprocessParams
    from .tiling import TilePlan


#: What the network sees of a volume: its YX planes only, or its ZY and ZX planes too.
VOLUME_VIEWS = ("yx", "all")


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
    doubt
        Why the result is likely wrong and what to do (one plain line,
        :class:`~napari_unet.core.prediction.doubt.Doubt`), or ``None`` when the model
        looks sure of it.
    signs
        The figures it was judged by (:class:`~napari_unet.core.prediction.doubt.Signs`).
    suggestions
        When asked for (``suggest=True``): what to correct next, most doubtful first
        (:class:`~napari_unet.core.prediction.suggestions.Suggestion`, boxes over the
        labels' axes, ids of :attr:`labels`), else ``None``.
    doubt_map
        When asked for: ``float32`` of the labels' shape, 0–1, high where the result is
        likely wrong (:func:`~napari_unet.core.prediction.suggestions.suggestions_of`).
    stained
        The image was a stained slide, read as its haematoxylin (:mod:`~napari_unet.core.stains`).
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
    doubt: Doubt | None = None
    signs: Signs | None = None
    suggestions: list | None = None
    doubt_map: np.ndarray | None = None
    stained: bool = False

    @property
    def n_object_classes(self) -> int:
        """Object classes of the model that made this prediction."""
        return len(self.class_names) if self.class_names else 1


class Predictor:
    """A network with the settings of one prediction.

    Parameters
    ----------
    net
        A :class:`~napari_unet.core.network.unet.UNet`.
    tile_size
        Edge of the tiles the network sees (context included).
    context
        Pixels of context per tile side (rounded up to the network's size multiple).
    threshold, min_size
        Override the model's post-processing settings (:attr:`UNet.postprocessing
        <napari_unet.core.network.unet.UNet.postprocessing>`); ``postprocessing`` replaces them
        all (a dict of :class:`~napari_unet.core.prediction.instances.PostprocessParams`).
    diameter
        Typical object width in the image (px): ``"auto"`` measures it, a number says
        it, ``None`` or 0 takes the image as it is.
    batch_size
        Tiles the network sees at once.
    border
        Mirrored pixels a tile reads beyond the image's borders
        (:data:`~napari_unet.core.config.DEFAULT_BORDER`; a network without padding reads
        its whole context there).
    """

    def __init__(
        self,
        net,
        tile_size: int | None = None,
        context: int | None = None,
        threshold: float | None = None,
        min_size: int | None = None,
        diameter: float | str | None = "auto",
        batch_size: int = 2,
        postprocessing: dict | None = None,
        border: int | None = None,
    ) -> None:
        from .instances import PostprocessParams

        self.net = net
        self.tile_size = int(tile_size or DEFAULT_TILE_SIZE)
        self.context = DEFAULT_CONTEXT if context is None else int(context)
        params = (
            net.postprocessing
            if postprocessing is None
            else PostprocessParams.from_dict(postprocessing)
        )
        if threshold is not None:
            if not 0.0 < float(threshold) < 1.0:
                raise UserInputError(f"threshold must be between 0 and 1, got {threshold}")
            params = replace(params, threshold=float(threshold))
        if min_size is not None:
            params = replace(params, min_size=int(min_size))
        self.params: PostprocessParams = params
        self.diameter = diameter
        self.batch_size = max(1, int(batch_size))
        self.border = DEFAULT_BORDER if border is None else max(0, int(border))

    def options(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this predictor around a copy of its network
        (what a block task carries to a worker: numbers and strings only)."""
        return {
            "tile_size": self.tile_size,
            "context": self.context,
            "diameter": self.diameter,
            "batch_size": self.batch_size,
            "postprocessing": self.params.to_dict(),
            "border": self.border,
        }

    # ------------------------------------------------------------ normalisation
    @property
    def normalizer(self) -> Normalizer:
        """The model's :class:`~napari_unet.core.normalize.Normalizer` (its metadata's
        percentiles), the one training used."""
        return Normalizer.of(self.net.normalization)

    def intensity(self, image) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` per channel that map a channels-last image to the network's
        0–1 range: the percentiles the model's metadata names (on a regular subsample
        of a very large image). Every view of an image is normalised by these."""
        return self.normalizer.intensity(image)

    # ------------------------------------------------------------ tiling
    def plan(
        self,
        height: int,
        width: int,
        context: int | None = None,
        origin=(0, 0),
        whole_mirror: bool = False,
    ) -> TilePlan:
        """The tiles of a ``height`` × ``width`` image (or of a region of it starting at
        ``origin``, tiles on the image's grid); beyond the image they read
        :attr:`border` px of mirror, or their whole context with ``whole_mirror``."""
        from ..network.architecture import output_size, valid_input_sizes
        from .tiling import TilePlan, plan_tiles

        cfg = self.net.config
        if cfg.padding == "valid":
            sizes = valid_input_sizes(cfg, 1, max(self.tile_size, 64))
            if not sizes:
                raise UserInputError(f"no valid tile size up to {self.tile_size}")
            inp = sizes[-1]
            out = output_size(cfg, inp)
            return TilePlan(height, width, out, out, 0, (inp - out) // 2, *origin)
        ctx = self.context if context is None else int(context)
        border = None if whole_mirror else self.border
        return plan_tiles(
            height, width, self.tile_size, ctx, cfg.size_multiple, origin=origin, border=border
        )

    # ------------------------------------------------------------ object scale
    def fixed_scale(
        self, shape: tuple[int, ...] | None = None
    ) -> tuple[float, float | None] | None:
        """The scale factor the ``diameter`` fixes and the width it says (``None`` when
        the image is taken as it is), or ``None`` when the size is to be measured. A
        diameter this model cannot be brought to (or wider than an image of ``shape``)
        is refused with the valid range (:func:`~napari_unet.core.config.check_diameter`)."""
        diameter = self.diameter
        model_d = self.net.object_diameter
        if diameter is None or (isinstance(diameter, (int, float)) and diameter == 0):
            return 1.0, None
        if isinstance(diameter, str):
            if diameter != "auto":
                raise UserInputError(f"diameter must be a number or 'auto', got {diameter!r}")
            return None if model_d else (1.0, None)
        d = float(diameter)
        if not np.isfinite(d) or d < 0:
            raise UserInputError(f"diameter must be a positive number of pixels, got {diameter}")
        if not model_d:
            raise UserInputError(
                "this model does not record the object size it was trained at, so it cannot "
                "rescale to a diameter; leave the diameter empty (or 0)"
            )
        from ..config import check_diameter
        from .object_size import clip_scale, typed_scale

        check_diameter(d, self.net.metadata.typing_width, shape)
        factor = clip_scale(typed_scale(d, self.net.metadata))
        return factor, (d if factor != 1.0 else None)

    def estimate_scale(
        self, scores_at, shape, found: dict | None = None
    ) -> tuple[float, float | None]:
        """Scale factor and measured object width, from ``scores_at`` (a
        :meth:`scorer`) of an image of ``shape`` (see
        :func:`~napari_unet.core.prediction.object_size.estimate_scale`, which tells
        ``found`` how sure it is)."""
        from .object_size import estimate_scale

        return estimate_scale(
            scores_at,
            shape[:2],
            self.net.object_diameter,
            self.params.threshold,
            found,
            prior=self.net.metadata.taught_scale,
            measure=self.net.metadata.width_measure,
            mask_diameter=self.net.mask_diameter,
            hint=self.size_hint(scores_at),
        )

    def size_hint(self, scores_at):
        """``hint() -> width``: the objects' width the model's size regression reads
        from the plane ``scores_at`` (a :meth:`scorer`) looks at, or ``None`` where the
        model has none (:mod:`~napari_unet.core.prediction.size_model`)."""
        from .size_model import SizeRegression, encoder_features

        reg = self.net.metadata.size_regression
        plane = getattr(scores_at, "plane", None)
        if not reg or plane is None or self.net.metadata.taught_scale:
            return None
        regression = SizeRegression.from_dict(reg)
        if regression is None:
            return None
        return lambda: regression.diameter(encoder_features(self.net, *plane))

    # ------------------------------------------------------------ the network
    def scores(
        self,
        plane,
        factor: float = 1.0,
        intensity=None,
        context: int | None = None,
        report: Callable | None = None,
        quick: bool = False,
        region: tuple[int, int, int, int] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Class probabilities of one channels-last plane resized by ``factor``
        (normalised by ``intensity``, ``(low, high)``, when given; else by its own
        :meth:`intensity`), and the number of pixels the network evaluated for them.
        ``region`` ``(y0, y1, x0, x1)``: only that part of the plane (at factor 1),
        its tiles reading their context around it."""
        from .object_size import rescale_image
        from .tiling import predict_probabilities

        lo, hi = self.intensity(plane) if intensity is None else intensity
        image = rescale_image(plane, factor, quick)
        if region is None:
            plan = self.plan(image.shape[0], image.shape[1], context)
        else:
            y0, y1, x0, x1 = region
            plan = self.plan(y1 - y0, x1 - x0, context, origin=(y0, x0))
        scores = predict_probabilities(
            self.net.inference_function(),
            image,
            self.net.config.n_outputs,
            plan,
            lambda t: normalize(t, lo, hi),
            self.batch_size,
            report,
        )
        return scores, plan.pixels(np.shape(image))

    def scorer(self, plane, intensity=None, report=None, stage=None):
        """``scores(factor, crop=None)`` for one plane: class probabilities of the plane
        (or a crop of it; ``None`` or :data:`~napari_unet.core.prediction.object_size.WHOLE`: all of it)
        resized by ``factor``.

        A crop is a look of the size estimate: seen alone, without context (its borders
        barely move a median object width), normalised as the whole plane is. The
        whole plane is seen as the prediction sees it (tiles with context, tile
        progress to ``report``, the stage to ``stage``), and its last two passes are
        kept, so the prediction at the scale an estimate chose reuses it (the estimate
        may compare two scales, :func:`~napari_unet.core.prediction.object_size.estimate_scale`).
        ``scores.pixels`` counts the pixels the network evaluated: ``"size estimate"``
        and ``"prediction"`` (the pass last asked for; every other whole pass counts as
        estimate)."""
        from .object_size import WHOLE

        kept: dict = {}  # factor -> (scores, pixels): the last two whole passes
        spent = {"looks": 0, "passes": 0}
        pixels = {"size estimate": 0, "prediction": 0}
        if intensity is None:  # the plane's own, once for every look and pass
            intensity = self.intensity(plane)

        def scores(factor, crop=None):
            if crop is not None and crop != WHOLE:
                s, n = self.scores(plane[crop], factor, intensity, context=0, quick=True)
                spent["looks"] += n
                pixels["size estimate"] += n
                return s
            if factor not in kept:
                if stage is not None and not kept:  # a refined pass is still "predicting"
                    stage(Stage.PREDICT)
                kept[factor] = self.scores(plane, factor, intensity, report=report)
                spent["passes"] += kept[factor][1]
                while len(kept) > 2:
                    kept.pop(next(iter(kept)))
            s, n = kept[factor]
            # a pass the prediction does not use served the estimate only
            pixels["prediction"] = n
            pixels["size estimate"] = spent["looks"] + spent["passes"] - n
            return s

        scores.pixels = pixels
        scores.plane = (plane, intensity)  # what the size regression reads
        return scores

    # ------------------------------------------------------------ post-processing
    def params_at(self, factor: float = 1.0) -> PostprocessParams:
        """This predictor's post-processing settings for an image seen at ``factor``. A
        model fine-tuned on a user's images had its settings searched at their scale
        (its ``taught_scale``) and keeps them; one that learned many sizes (a bundled
        model) splits touching objects in a plane by the scale
        (:func:`~napari_unet.core.prediction.instances.split_at`), keeping the cuts its own
        split would not make only where the network sees them (``join_split``,
        :func:`~napari_unet.core.prediction.instances.join_unsupported`). Every model takes
        a plane's specks for pieces or debris
        (:func:`~napari_unet.core.prediction.instances.with_specks`: ``min_share``
        :data:`~napari_unet.core.prediction.instances.SPECK_SHARE` unless its settings hold
        one, 0 for none). A volume's 3-D seeds keep the model's own settings (those for
        objects seen at their size)."""
        from .instances import split_at, with_specks

        p = with_specks(self.params)
        if self.net.metadata.taught_scale is not None or p.seed_mode != "distance":
            return p
        split = split_at(p.split, factor)
        if split == p.split:
            return p
        # the cuts the model's own split would not make stay only where the network
        # sees them (a rod enlarged is not cut into pieces; instances.join_unsupported)
        return replace(p, split=split, join_split=p.split)

    def instances(
        self, scores: np.ndarray, z_scale: float = 1.0, factor: float = 1.0
    ) -> np.ndarray:
        """Instance labels (``int32``, ids 1..N) of class probabilities (a plane's
        ``(Y, X, C)`` or a volume's ``(Z, Y, X, C)``, z steps of ``z_scale`` pixels) of an
        image seen at ``factor``, with this predictor's post-processing settings
        (:meth:`params_at` for a plane; a volume keeps the model's own, and its smallest
        instance is the ball as wide as a plane's ``min_size`` disc at ``factor``:
        :func:`~napari_unet.core.prediction.instances.volume_min_size`; its specks are
        taken by volume as a plane's by area)."""
        from .instances import instances_from_probabilities, volume_min_size, with_specks

        if scores.ndim == 3:
            params = self.params_at(factor)
        else:
            min_size = volume_min_size(self.params.min_size, factor, z_scale)
            params = replace(with_specks(self.params), min_size=min_size)
        return instances_from_probabilities(scores, **params.to_dict(), z_scale=z_scale)

    # ------------------------------------------------------------ in memory
    def layout(self, image, channel_axis=None, rgb=None, axes=None):
        """Where ``image`` keeps its channels and how its colours are read, for this
        model (:func:`~napari_unet.core.axes.channel_layout`; a stained slide is read as
        its haematoxylin where the model learned so)."""
        from ..axes import channel_layout

        return channel_layout(
            np.shape(image),
            self.net.input_channels,
            rgb=rgb,
            axes=axes,
            channel_axis=channel_axis,
            image=image if self.net.metadata.reads_stains else None,
        )

    def planes(self, image, channel_axis=None, rgb=None, axes=None, layout=None):
        """Reshape to ``(planes, Y, X, C)``; returns the planes and the leading shape.

        Where the channels are is decided by :meth:`layout` (or given as ``layout``).
        """
        if layout is None:
            layout = self.layout(image, channel_axis, rgb, axes)
        a = layout.channels_last(image)
        if min(layout.spatial_shape[-2:]) < 2:
            raise UserInputError(f"image {tuple(np.shape(image))} is too small to segment")
        return a, layout.stack_shape

    def predict(
        self,
        image,
        channel_axis: int | None = None,
        rgb: bool | None = None,
        axes: str | None = None,
        return_scores: bool = False,
        progress: Callable[[int, int], None] | None = None,
        stage: Callable | None = None,
        suggest: bool = False,
    ) -> Prediction:
        """Segment an image in memory, plane by plane (see :meth:`UNet.predict
        <napari_unet.core.network.unet.UNet.predict>` for the arguments)."""
        from .doubt import Tally
        from .instances import foreground_probability, instance_classes, relabel_and_filter
        from .object_size import resize_to

        if image is None:
            raise UserInputError("no image given")
        layout = self.layout(image, channel_axis, rgb, axes)
        a, lead = self.planes(image, layout=layout)
        h, w = a.shape[-3], a.shape[-2]
        fixed = self.fixed_scale((h, w))
        tiles_per_plane = len(self.plan(h, w).origins)
        n_out = self.net.config.n_outputs
        n_planes = int(np.prod(lead)) if lead else 1
        flat = a.reshape((n_planes,) + tuple(a.shape[-3:])) if lead else a[None]
        prob = np.empty((n_planes, h, w), np.float32)
        labels = np.empty((n_planes, h, w), np.int32)
        scores = np.empty((n_planes, h, w, n_out), np.float32) if return_scores else None
        n_classes = self.net.config.n_object_classes
        classes = np.empty((n_planes, h, w), np.uint8) if n_classes > 1 else None
        votes = [np.zeros(1, np.uint8)]  # the class of every instance, id 0 first
        factors, diameters = [], []
        pixels = {"size estimate": 0, "prediction": 0}
        tally, sizes = Tally.empty(), []
        suggested = [] if suggest else None
        dmap = np.empty((n_planes, h, w), np.float32) if suggest else None
        offset = 0
        total = n_planes * tiles_per_plane
        for i in range(n_planes):

            def plane_progress(done, n, i=i):
                if progress is not None:
                    frac = done / max(n, 1)
                    progress(i * tiles_per_plane + round(frac * tiles_per_plane), total)

            intensity = self.intensity(flat[i])
            scores_at = self.scorer(flat[i], intensity, report=plane_progress, stage=stage)
            if fixed is None:
                if stage is not None:
                    stage(Stage.ESTIMATE)
                found: dict = {}
                factor, measured = self.estimate_scale(scores_at, (h, w), found)
                sizes.append(found.get("size", "none"))
            else:
                factor, measured = fixed
            factors.append(factor)
            if measured is not None:
                diameters.append(measured)
            s = scores_at(factor)
            for k, n in scores_at.pixels.items():
                pixels[k] += n
            if stage is not None:
                stage(Stage.POSTPROCESS)
            lab = self.instances(s, factor=factor)
            if factor != 1.0:  # back to the image's pixels
                s = resize_to(s, (h, w))
                lab = relabel_and_filter(resize_to(lab, (h, w), labels=True))
            prob[i] = foreground_probability(s)
            tally += Tally.of(prob[i], lab, flat[i], intensity)
            labels[i] = np.where(lab > 0, lab + offset, 0) if offset else lab
            if classes is not None:
                vote = instance_classes(s, lab)
                classes[i] = vote[lab]
                votes.append(vote[1:])
            if suggested is not None:
                where = tuple(int(j) for j in np.unravel_index(i, lead)) if lead else ()
                dmap[i] = self._suggest(s, lab, where, offset, suggested)
            offset += int(lab.max(initial=0))
            if scores is not None:
                scores[i] = s
            if progress is not None:
                progress((i + 1) * tiles_per_plane, total)
        return self._assemble(
            lead + (h, w),
            prob,
            labels,
            scores,
            classes,
            votes,
            n_out,
            fixed,
            factors,
            diameters,
            tally,
            sizes,
            pixels,
            suggested,
            dmap,
            stained=layout.stained,
        )

    def _suggest(self, s, lab, where, offset, found, min_size=None, z_scale=1.0):
        """Add one plane's (or volume's) suggestions to ``found``, in the stack's frame
        (``where``: its index; ids after ``offset``); returns its doubt map."""
        from .suggestions import shift, suggestions_of

        p = self.params
        entries, dmap = suggestions_of(
            s,
            lab,
            threshold=p.threshold,
            core_threshold=p.core_threshold,
            min_size=p.min_size if min_size is None else min_size,
            z_scale=z_scale,
        )
        found.extend(shift(entries, where, offset))
        return dmap

    def _assemble(
        self,
        shape,
        prob,
        labels,
        scores,
        classes,
        votes,
        n_out,
        fixed,
        factors,
        diameters,
        tally,
        sizes,
        pixels,
        found=None,
        dmap=None,
        stained: bool = False,
    ) -> Prediction:
        """The :class:`Prediction` of planes or volumes segmented one by one: their
        arrays brought to ``shape``, one scale and diameter for all, and the doubt."""
        from .suggestions import ranked

        if fixed is not None:
            diameters = [] if fixed[1] is None else [fixed[1]]
        scale = float(np.median(factors))
        diameter = float(np.median(diameters)) if diameters else None
        diameter = self.shown_width(fixed, scale, diameter)
        signs, doubt = self.judge(tally, sizes, fixed, scale, diameter)
        return Prediction(
            prob.reshape(shape),
            labels.reshape(shape),
            None if scores is None else scores.reshape(shape + (n_out,)),
            scale=scale,
            diameter=diameter,
            classes=None if classes is None else classes.reshape(shape),
            instance_classes=None if classes is None else np.concatenate(votes),
            class_names=self.net.object_class_names if classes is not None else None,
            network_pixels=pixels,
            doubt=doubt,
            signs=signs,
            suggestions=None if found is None else ranked(found),
            doubt_map=None if dmap is None else dmap.reshape(shape),
            stained=stained,
        )

    # ------------------------------------------------------------ volumes
    def predict_volume(
        self,
        image,
        z_scale: float = 1.0,
        views: str = VOLUME_VIEWS[0],
        channel_axis: int | None = None,
        rgb: bool | None = None,
        axes: str | None = None,
        return_scores: bool = False,
        progress: Callable[[int, int], None] | None = None,
        stage: Callable | None = None,
        suggest: bool = False,
    ) -> Prediction:
        """Segment a z-stack as one volume: one id per object through z.

        The 2-D network sees the YX planes (``views="yx"``), or also the ZY and ZX
        planes (``views="all"``: each resampled in z by ``z_scale`` and to the model's
        object scale, so it looks like the images the network learned from); the views'
        class probabilities are averaged on the image's grid and turned into 3-D
        instances (:func:`~napari_unet.core.prediction.instances.instances_from_probabilities`
        with ``z_scale``). The image's axes end in ``Z, Y, X`` (channels anywhere
        :func:`~napari_unet.core.axes.channel_layout` finds them); axes before Z are
        frames, each segmented as a volume of its own, ids unique over all of them.

        The object scale (a ``diameter`` or ``"auto"``) is decided once per volume, on its
        brightest plane; the whole volume is normalised by its own percentiles. The
        smallest instance kept is the ball as wide as the plane's ``min_size`` disc
        (:func:`~napari_unet.core.prediction.instances.volume_min_size`).
        """
        from .doubt import Tally
        from .instances import (
            foreground_probability,
            instance_classes,
            volume_min_size,
        )

        if image is None:
            raise UserInputError("no image given")
        min_size = self.params.min_size
        if views not in VOLUME_VIEWS:
            raise UserInputError(f"views must be one of {VOLUME_VIEWS}, got {views!r}")
        z_scale = float(z_scale)
        if not (np.isfinite(z_scale) and z_scale > 0):
            raise UserInputError(
                f"z scale (z step / pixel size) must be a positive number, got {z_scale}"
            )
        layout = self.layout(image, channel_axis, rgb, axes)
        a, lead = self.planes(image, layout=layout)
        if not lead:
            raise UserInputError(
                f"image {tuple(np.shape(image))} is a single plane, not a volume: it needs a z axis"
            )
        n_z, h, w = lead[-1], a.shape[-3], a.shape[-2]
        n_frames = int(np.prod(lead[:-1])) if len(lead) > 1 else 1
        frames = a.reshape((n_frames, n_z) + tuple(a.shape[-3:]))
        fixed = self.fixed_scale((h, w))
        n_out = self.net.config.n_outputs
        prob = np.empty((n_frames, n_z, h, w), np.float32)
        labels = np.empty((n_frames, n_z, h, w), np.int32)
        scores = np.empty((n_frames, n_z, h, w, n_out), np.float32) if return_scores else None
        n_classes = self.net.config.n_object_classes
        classes = np.empty((n_frames, n_z, h, w), np.uint8) if n_classes > 1 else None
        votes = [np.zeros(1, np.uint8)]
        factors, diameters, sizes = [], [], []
        pixels = {"size estimate": 0, "prediction": 0}
        tally = Tally.empty()
        suggested = [] if suggest else None
        dmap = np.empty((n_frames, n_z, h, w), np.float32) if suggest else None
        per_frame = n_z + (h + w if views == "all" else 0)  # network passes of a frame
        total, offset = n_frames * per_frame, 0
        for f in range(n_frames):
            vol = frames[f]
            intensity = self.intensity(vol)
            done = f * per_frame

            def tick(k, done=done):
                if progress is not None:
                    progress(done + k, total)

            brightest = int(np.argmax(vol.reshape(n_z, -1).mean(axis=1)))
            scores_at = self.scorer(vol[brightest], intensity, stage=stage)
            if fixed is None:
                if stage is not None:
                    stage(Stage.ESTIMATE)
                found: dict = {}
                factor, measured = self.estimate_scale(scores_at, (h, w), found)
                sizes.append(found.get("size", "none"))
            else:
                factor, measured = fixed
            factors.append(factor)
            if measured is not None:
                diameters.append(measured)
            if stage is not None:
                stage(Stage.PREDICT)
            s, n = self._view_scores(vol, factor, intensity, z_scale, views, scores_at, tick)
            pixels["prediction"] += n
            pixels["size estimate"] += scores_at.pixels["size estimate"]
            if stage is not None:
                stage(Stage.POSTPROCESS)
            vol_min = volume_min_size(min_size, factor, z_scale)
            lab = self.instances(s, z_scale, factor)
            prob[f] = foreground_probability(s)
            for z in range(n_z):  # the doubt's figures are a plane's: summed over planes
                tally += Tally.of(prob[f, z], lab[z], vol[z], intensity)
            labels[f] = np.where(lab > 0, lab + offset, 0) if offset else lab
            if classes is not None:
                vote = instance_classes(s, lab)
                classes[f] = vote[lab]
                votes.append(vote[1:])
            if suggested is not None:
                where = tuple(int(j) for j in np.unravel_index(f, lead[:-1])) if lead[:-1] else ()
                dmap[f] = self._suggest(s, lab, where, offset, suggested, vol_min, z_scale)
            offset += int(lab.max(initial=0))
            if scores is not None:
                scores[f] = s
            tick(per_frame)
        return self._assemble(
            lead + (h, w),
            prob,
            labels,
            scores,
            classes,
            votes,
            n_out,
            fixed,
            factors,
            diameters,
            tally,
            sizes,
            pixels,
            suggested,
            dmap,
            stained=layout.stained,
        )

    def _view_scores(self, vol, factor, intensity, z_scale, views, scores_at, tick):
        """A volume's ``(Z, Y, X, C)`` class probabilities on its own grid, averaged over
        the views the network sees, and the pixels it evaluated. ``scores_at`` is the
        :meth:`scorer` of the plane the scale was measured on (its pass is reused)."""
        from .object_size import resize_to

        n_z, h, w = vol.shape[:3]
        out = np.empty((n_z, h, w, self.net.config.n_outputs), np.float32)
        brightest = int(np.argmax(vol.reshape(n_z, -1).mean(axis=1)))
        evaluated = 0
        for z in range(n_z):
            if z == brightest:
                s = scores_at(factor)
                evaluated += scores_at.pixels["prediction"]
            else:
                s, n = self.scores(vol[z], factor, intensity)
                evaluated += n
            out[z] = resize_to(s, (h, w))
            tick(z + 1)
        if views == "yx":
            return out, evaluated
        # ZY and ZX planes of the volume resampled to the model's scale in all three axes
        # (z by ``z_scale`` too): the looks the network learned from, one batch of slices
        from skimage.transform import resize

        grid = tuple(
            max(2, round(n * k)) for n, k in zip((n_z, h, w), (z_scale * factor, factor, factor))
        )
        a = np.asarray(vol, np.float32)
        if grid != (n_z, h, w):
            a = resize(
                a, grid + a.shape[3:], order=1, preserve_range=True, anti_aliasing=factor < 1
            ).astype(np.float32)
        for axis in (2, 1):  # ZY planes (one per x), then ZX planes (one per y)
            slices = np.moveaxis(a, axis, 0)  # (n, Z', other, C)
            s, n = self._slice_scores(slices, intensity)
            evaluated += n
            s = np.moveaxis(s, 0, axis)
            out += resize(s, (n_z, h, w, s.shape[-1]), order=1, preserve_range=True)
            tick(n_z + (w if axis == 2 else w + h))
        out /= 3.0
        return out, evaluated

    def _slice_scores(self, slices: np.ndarray, intensity) -> tuple[np.ndarray, int]:
        """Class probabilities ``(N, H, W, K)`` of ``N`` channels-last planes of one
        size (already at the model's scale), several planes to a network batch, and the
        pixels evaluated."""
        from ..arrays import read_region

        n, height, width = slices.shape[:3]
        # a ZY or ZX plane of a few z planes (13 px of CHO's 5 at the model's scale) reads
        # its whole context mirrored: with a thin border its 3-D F1 fell from 0.816 to
        # 0.763 (benchmarks/RESULTS.md, "A thin mirrored border")
        plan = self.plan(height, width, whole_mirror=True)
        lo, hi = intensity
        infer = self.net.inference_function()
        out = np.empty((n, height, width, self.net.config.n_outputs), np.float32)
        per_batch = max(self.batch_size, (256 * 256) // max(plan.in_y * plan.in_x, 1))
        for y, x in plan.origins:
            th, tw = min(plan.out_y, height - y), min(plan.out_x, width - x)
            y0, y1, x0, x1 = plan.window(y, x, (height, width))
            for start in range(0, n, per_batch):
                tiles = np.stack(
                    [
                        normalize(read_region(plane, y0, y1, x0, x1), lo, hi)
                        for plane in slices[start : start + per_batch]
                    ]
                ).astype(np.float32, copy=False)
                scores = np.asarray(infer(tiles))
                out[start : start + per_batch, y : y + th, x : x + tw] = scores[
                    :, y - y0 : y - y0 + th, x - x0 : x - x0 + tw
                ]
        return out, n * plan.pixels((height, width))

    def objects_width(self) -> float | None:
        """The width of the model's objects at its own scale, as the doubt and the
        status line speak of them. A fine-tuned model's (one with a ``taught_scale``) is
        the width its user's masks had there (its
        :attr:`~napari_unet.core.network.unet.UNet.mask_diameter`): its own measure, which
        the looks use to find the scale, can read packed cells it separates well as one
        wide region (a membrane stain: 68 px where the masks say 25), and the doubt
        would then call a good result "far more objects than fit". Any other model's is
        its :attr:`~napari_unet.core.network.unet.UNet.object_diameter`."""
        if self.net.metadata.taught_scale is not None:
            return self.net.mask_diameter
        return self.net.object_diameter

    def shown_width(self, fixed, scale: float, measured: float | None) -> float | None:
        """The object width (image pixels) a prediction reports: the one given, the
        one measured, or a fine-tuned model's :meth:`objects_width` at ``scale``."""
        if fixed is None and self.net.metadata.taught_scale is not None:
            width = self.objects_width()
            return width / scale if width else measured
        return measured

    def judge(self, tally, sizes: list[str], fixed, scale: float, diameter: float | None):
        """The :class:`~napari_unet.core.prediction.doubt.Signs` of a prediction's
        ``tally`` and its :class:`~napari_unet.core.prediction.doubt.Doubt` (or ``None``):
        ``sizes`` says how each plane's object size was found (empty when ``fixed``, the
        :meth:`fixed_scale`), ``scale`` and ``diameter`` are the prediction's."""
        from .doubt import Signs, judge, size_found

        size = size_found(sizes, fixed is not None, fixed is not None and fixed[1] is not None)
        model_d = self.objects_width()
        expected = model_d / scale if model_d else diameter
        signs = Signs.of(tally, size, expected)
        return signs, judge(signs)

    # ------------------------------------------------------------ block by block
    def predict_region(
        self, window: Window, region: tuple[int, int, int, int], intensity, factor: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and instances of ``region`` ``(y0, y1, x0, x1)`` of a
        large image seen at ``factor``, with the image's ``intensity``: the same steps
        as :meth:`predict`, for one block (plus its halo) of the dask graph.

        ``window`` holds the region and the neighbours its tiles read. At factor 1 the
        tiles lie on the image's grid, so the probabilities equal a whole-image pass;
        otherwise the whole window is resized, predicted and labelled at the model's
        scale, and both come back to the image's pixels (ids may then have gaps where
        an object fell outside the region)."""
        from .object_size import resize_to

        y0, y1, x0, x1 = region
        if factor == 1.0:
            scores, _ = self.scores(window, 1.0, intensity, region=region)
            return scores, self.instances(scores)
        local = window.local
        scores, _ = self.scores(np.asarray(local, np.float32), factor, intensity)
        labels = self.instances(scores, factor=factor)
        h, w = local.shape[:2]
        a, b, c, d = y0 - window.y0, y1 - window.y0, x0 - window.x0, x1 - window.x0
        return resize_to(scores, (h, w))[a:b, c:d], resize_to(labels, (h, w), labels=True)[a:b, c:d]

    def predict_volume_region(
        self,
        local: np.ndarray,
        origin: tuple[int, int, int],
        shape: tuple[int, ...],
        region: tuple[int, int, int, int, int, int],
        intensity,
        factor: float,
        z_scale: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities ``(Z, Y, X, C)`` and 3-D instances of ``region`` ``(z0, z1,
        y0, y1, x0, x1)`` of a volume too large for memory, seen at ``factor`` with the
        volume's ``intensity``: the steps of :meth:`predict_volume` (YX views) for one
        block (plus its halo) of the dask graph.

        ``local`` ``(Z, Y, X, C)`` holds the region and the neighbours its tiles read,
        starting at ``origin`` in a volume of ``shape`` ``(Z, Y, X, C)``. Each plane is
        predicted as :meth:`predict_region` predicts a block of a large plane (at factor
        1 on the volume's tile grid, so the probabilities equal a whole-volume pass);
        the instances come from the region's probabilities in 3-D, with ``z_scale``."""
        from ..arrays import Window
        from .object_size import resize_to

        wz, wy, wx = origin
        z0, z1, y0, y1, x0, x1 = region
        out = []
        for z in range(z0 - wz, z1 - wz):
            if factor == 1.0:
                window = Window(local[z], wy, wx, tuple(shape[1:]))
                s, _ = self.scores(window, 1.0, intensity, region=(y0, y1, x0, x1))
            else:
                plane = np.asarray(local[z], np.float32)
                s, _ = self.scores(plane, factor, intensity)
                s = resize_to(s, plane.shape[:2])[y0 - wy : y1 - wy, x0 - wx : x1 - wx]
            out.append(s)
        scores = np.stack(out)
        del out
        return scores, self.instances(scores, z_scale, factor)
