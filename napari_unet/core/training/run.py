"""One training run of a :class:`~napari_unet.core.network.unet.UNet` (what :meth:`UNet.train
<napari_unet.core.network.unet.UNet.train>` does): its planes prepared (split into 2D
channels-last planes, labels checked, brought to the model's object scale, pseudo-labels
from the model itself where it already agrees with the person), the loop
(:func:`~napari_unet.core.training.loop.fit`), then what the model learns about itself
(:mod:`~napari_unet.core.training.calibration`) and the run's record in its metadata.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..config import MAX_OBJECT_CLASSES, PREVIEW_INTERVAL, TrainConfig
from ..errors import UserInputError
from ..prediction.predictor import Predictor

if TYPE_CHECKING:
    from .loop import TrainResult


def train(
    net,
    pairs: Sequence,
    config: TrainConfig | None = None,
    progress: Callable | None = None,
    stop_event: threading.Event | None = None,
    preview_image: np.ndarray | None = None,
    preview_interval: float = PREVIEW_INTERVAL,
) -> TrainResult:
    """Fine-tune ``net`` in place on image/label pairs (see :meth:`UNet.train
    <napari_unet.core.network.unet.UNet.train>`)."""
    from .calibration import calibrate_diameter, tune_postprocessing
    from .comparison import ValidationSet
    from .huge_annotations import is_lazy
    from .loop import fit
    from .samples import planes_of, prepare_pairs, sampling_margin
    from .targets import annotation_object_classes, check_annotation, check_classes_painted

    cfg = config or TrainConfig()
    if net.config.padding != "same":
        raise UserInputError("training is implemented for 'same' padding networks")
    if cfg.patch_size % net.config.size_multiple:
        raise UserInputError(
            f"patch size {cfg.patch_size} must be a multiple of {net.config.size_multiple} "
            f"for a depth-{net.config.depth} network"
        )
    pretrained = net.pretrained
    # pairs of chunked (dask, zarr) arrays: the regions around their labels
    planes = planes_of(
        list(pairs),
        net.input_channels,
        margin=sampling_margin(cfg.patch_size),
        normalization=dict(net.normalization),
        stains=net.metadata.reads_stains,
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
        net.config.n_object_classes,
    )
    # nothing painted, or one class alone (only object or only background strokes),
    # cannot say where objects end: refused before the model looks at any image
    annotations = [p.annotation for p in planes if p.kind == "annotation"]
    if len(annotations) == len(planes) and not any(map(is_lazy, annotations)):
        check_annotation(annotations)
    originals = list(planes)  # at their own pixels: the before/after figures
    factors: list[float] = []
    planes, diameters = to_model_scale(net, planes, cfg, factors)
    # labels that call background what the model clearly sees as objects teach it to
    # ignore them: said (once), and trained as labelled
    warnings = []
    views: dict[int, np.ndarray] = {}  # the model's scores of a plane, computed once

    def view(i: int) -> Callable[[], np.ndarray]:
        def scores() -> np.ndarray:
            if i not in views:
                p = planes[i]
                views[i] = Predictor(net).scores(p.image, 1.0, p.intensity)[0]
            return views[i]

        return scores

    if pretrained:
        looked = range(0, len(planes), max(1, -(-len(planes) // CHECKED_PLANES)))  # of a volume
        said = [w for i in looked if (w := objects_labelled_background(net, planes[i], view(i)))]
        more = f"; the same on {len(said) - 1} more planes" if len(said) > 1 else ""
        warnings = [said[0] + more] if said else []
    if pretrained and cfg.pseudo_label_weight > 0:
        planes = [
            replace(p, pseudo=teacher(net, p, view(i))) if p.kind == "annotation" else p
            for i, p in enumerate(planes)
        ]
    views.clear()
    widened_from = None
    if needed > net.config.n_object_classes:
        # after the teacher: its pseudo-labels say object, not which class
        widened_from = net.config.n_object_classes
        net.widen(needed, seed=cfg.seed)
    prepared = prepare_pairs(
        planes,
        net.input_channels,
        net.config.n_object_classes,
        dict(net.normalization),
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
            return net.predict(preview_image)

    # the encoder's features move from the first step on (previews included): its size
    # regression no longer reads them, and is kept only where no step was taken
    regression, net.metadata.size_regression = net.metadata.size_regression, None
    try:
        with net.lock:
            # the inference function reads the weights as they are when it runs, so a
            # trace made before (the first Segment, a preview) serves after training too
            result = fit(
                net.keras_model,
                prepared,
                cfg,
                progress=progress,
                stop_event=stop_event,
                preview=preview,
                preview_interval=preview_interval,
                learning_rate=lr,
                config=net.config,
            )
    except BaseException:
        net.metadata.size_regression = regression
        raise
    if not result.steps_run:
        net.metadata.size_regression = regression
    result.held_out = ValidationSet.from_training(originals, result.validation)
    result.warnings = warnings
    search = None
    if result.steps_run and result.stopped_by != "stop_event":  # Stop answers at once
        # the trained network's view of its training planes, computed once
        predictor = Predictor(net)
        after = [predictor.scores(p.image, 1.0, p.intensity)[0] for p in planes]
        if cfg.tune_postprocessing:
            search = tune_postprocessing(net, planes, after)
        measured = [  # the masks' widths at the model's scale (none given by the user)
            d * f for p, d, f in zip(originals, diameters, factors) if d and p.diameter is None
        ]
        calibrate_diameter(net, after, planes, [d for d in diameters if d], measured)
    if result.steps_run and factors:
        # the weights learned the user's objects at this scale, Stopped or not: their
        # next images are seen there too (and the size regression no longer reads them)
        net.metadata.taught_scale = round(float(np.median(factors)), 4)
        # and a width typed for them is where a width typed later is brought to
        typed = [p.diameter * f for p, f in zip(originals, factors) if p.diameter]
        if typed:
            net.metadata.typed_width = round(float(np.median(typed)), 2)
    hist = net.metadata.history
    for key, values in result.history.items():
        hist.setdefault(key, []).extend(values)
    net.metadata.patch_size = cfg.patch_size
    net.metadata.training_runs.append(
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
            "object_classes": net.config.n_object_classes,
            **({"widened_from": widened_from} if widened_from else {}),
        }
    )
    return result


#: a region the model is this sure is object (background probability below 1 − this) is
#: an object it clearly sees
SURE_OBJECT = 0.9
#: :func:`objects_labelled_background` speaks when at least this many of those objects,
#: and at least half of them, lie on labelled background
LABELLED_AWAY = 3
#: at most this many planes of a training set are looked at (evenly spread)
CHECKED_PLANES = 8


def objects_labelled_background(
    net, plane, scores: Callable[[], np.ndarray] | None = None
) -> str | None:
    """Two plain sentences when ``plane``'s labels (at the model's scale) call background most
    of the objects ``net`` clearly sees there (at least :data:`LABELLED_AWAY`, 80 % of
    each on background nobody painted by hand), else ``None``. ``scores`` gives ``net``'s
    class scores of the plane when asked (shared with :func:`teacher`); by default they
    are predicted here.

    Labels made by a threshold miss dim objects, and fine-tuned on such labels a model
    learns to find nothing: on a cells3d plane whose labels hold one nucleus of twelve
    the model found, F1 fell from 0.90 to 0.000 (benchmarks/RESULTS.md, "After one image,
    three images each"). Background a person painted is a correction and never counts;
    huge or chunked planes are not looked at."""
    from scipy import ndimage as ndi

    from .huge_annotations import is_lazy

    labels = plane.labels
    if is_lazy(labels) or np.size(labels) > 2048 * 2048:
        return None
    labels = np.asarray(labels)
    background = labels == 0 if plane.kind == "mask" else labels == 1
    if plane.painted is not None:
        background &= ~np.asarray(plane.painted, bool)
    if not background.any():
        return None
    seen_scores = (
        scores() if scores else Predictor(net).scores(plane.image, 1.0, plane.intensity)[0]
    )
    regions, n = ndi.label(seen_scores[..., 0] < 1.0 - SURE_OBJECT)
    if not n:
        return None
    ids = np.arange(1, n + 1)
    # objects, not specks: at least a quarter of the area of the model's objects
    d = net.mask_diameter or net.object_diameter or 8.0
    big = np.asarray(ndi.sum(np.ones(regions.shape), regions, ids)) >= 0.2 * d * d
    away = big & (np.asarray(ndi.mean(background, regions, ids)) >= 0.8)
    seen, lost = int(big.sum()), int(away.sum())
    if lost < LABELLED_AWAY or 2 * lost < seen:
        return None
    return (
        f"{plane.name}: {lost} of the {seen} objects the model clearly sees are labelled "
        "background. Trained on such labels it learns to ignore them: if they are objects, "
        "label them as objects, or leave them unlabelled (0)"
    )


def teacher(net, plane, scores: Callable[[], np.ndarray] | None = None) -> np.ndarray | None:
    """``net``'s probabilities for a plane, as pseudo-labels for its unannotated
    pixels — only where it already agrees with the person on the painted pixels
    (balanced accuracy ≥ 0.8): a model that cannot see these objects at all would
    otherwise teach "background" everywhere against the corrections. ``scores`` as for
    :func:`objects_labelled_background`."""
    scores = scores() if scores else Predictor(net).scores(plane.image, 1.0, plane.intensity)[0]
    ann = np.asarray(plane.annotation)
    fg_pred = scores[..., 0] < 0.5
    hits = []
    for sel, want in ((ann == 1, False), (ann >= 2, True)):
        if sel.any():
            hits.append(float((fg_pred[sel] == want).mean()))
    return scores if hits and min(hits) >= 0.8 else None


def to_model_scale(
    net, planes: list, cfg: TrainConfig, factors: list | None = None
) -> tuple[list, list]:
    """Planes resized so their objects match ``net``'s size, and the object widths of
    each (``None`` where unknown); ``factors``, when given, receives the factor of each
    plane.

    A width measured on a plane's mask or annotation is brought to the model's
    :attr:`~napari_unet.core.network.unet.UNet.mask_diameter` (the same objects' width
    as masks measure it); a width the plane was given (``diameter``) to its
    :attr:`~napari_unet.core.network.unet.UNet.object_diameter`, as prediction takes a
    diameter given; a plane with neither is measured by the network's own size
    estimate, enlarged where its objects would be wider than the spacing of the
    annotation's object strokes allows (:func:`~napari_unet.core.prediction.object_size.stroke_floor`)."""
    from ..prediction.object_size import (
        annotated_diameter,
        clip_scale,
        mask_diameter,
        rescale_image,
        resize_annotation,
        resize_to,
        scaled_shape,
        stroke_floor,
        typed_scale,
    )
    from .targets import resize_annotation_keeping_contacts

    model_d, mask_d = net.object_diameter, net.mask_diameter
    predictor = Predictor(net)
    out, diameters = [], []
    for p in planes:
        d, given = p.diameter, p.diameter is not None
        if d is None:
            if p.kind == "mask":
                d = mask_diameter(p.mask, net.metadata.width_measure)
            else:
                d = annotated_diameter(p.annotation, net.metadata.width_measure)
        factor = 1.0
        if model_d and cfg.rescale:
            if d is None and p.kind == "annotation":
                scores_at = predictor.scorer(p.image, intensity=p.intensity)
                factor, _ = predictor.estimate_scale(scores_at, p.image.shape)
                # scribbles: objects are no wider than the strokes' spacing allows,
                # where the network that cannot see them yet reads them far wider
                floor = stroke_floor(p.annotation, mask_d or model_d)
                if floor and floor > factor:
                    factor = clip_scale(floor)
            elif d:
                # a diameter given is read as a prediction reads it; a width measured on
                # the masks is brought to the masks' width at the model's scale
                factor = clip_scale(typed_scale(d, net.metadata) if given else mask_d / d)
        diameters.append(d)
        if factors is not None:
            factors.append(float(factor))
        if factor != 1.0:
            shape = scaled_shape(p.image.shape, factor)
            if p.kind == "mask":
                labels = resize_to(np.asarray(p.labels), shape, labels=True)
            else:
                labels = resize_annotation_keeping_contacts(p.labels, shape)
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
