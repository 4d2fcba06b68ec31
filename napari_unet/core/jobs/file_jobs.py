"""Jobs on files: images segmented into files (the command line's ``predict``), label
files scored (``evaluate``).

:func:`plan_predictions` checks every input and output before a model is loaded or
anything is written (unreadable images, images the model cannot take, two images
writing one file, an output that would replace an input or a file the user made, the
free space); :func:`run_predictions` then segments the images one by one, each in
memory or block by block (the rule of :mod:`napari_unet.core.memory`; a dask graph,
:mod:`napari_unet.core.prediction.blockwise`)
and writes its files, all of them or none.

Nothing here prints: notes go to a ``note`` callback and ``check`` is called between
blocks and before anything is written (a front end raises a pending interrupt there).
Nothing here imports TensorFlow; the network is handed in.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import check_diameter, check_limit, check_threshold, diameter_argument
from ..errors import ConfigError, UserInputError
from ..memory import block_by_block
from ..network.metadata import ModelMetadata

#: Edge of the blocks of the block-by-block path (a multiple of every network's grid).
LARGE_BLOCK = 2048
#: Blocks of a volume segmented block by block: px in y and x, planes in z.
VOLUME_BLOCK = 256
VOLUME_BLOCK_Z = 32
VOLUME_HALO = 32
#: Output formats: ``tiff`` (whole files) and ``zarr`` (OME-Zarr, written block by block).
FORMATS = ("tiff", "zarr")


@dataclass
class ImageJob:
    """One input image and the files its prediction writes."""

    path: Path
    shape: tuple[int, ...]
    layout: object  # ChannelLayout
    outputs: dict[str, Path]  # "labels", "probability"[, "classes"]
    blockwise: bool = False
    #: which axes are Z and T and the z-step (files.image_axes.ImageAxes): a stack
    #: whose axes name Z is segmented as one volume per time point
    image_axes: Any = None
    #: where its suggestions go (``<stem>_suggestions.json``), when asked for and possible
    suggestions: Path | None = None
    #: why it gets none although they were asked for (block by block), in plain words
    no_suggestions: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def volume(self) -> bool:
        """Whether this image is segmented as one volume (per time point): its axes name
        Z (:func:`~napari_unet.core.prediction.stacks.segments_as_volume`)."""
        from ..prediction.stacks import segments_as_volume

        return segments_as_volume(self.image_axes, self.shape)


@dataclass
class PredictionPlan:
    """A checked batch of predictions (:func:`plan_predictions`)."""

    model_path: Path
    metadata: ModelMetadata
    out: Path
    format: str
    axes: str | None
    jobs: list[ImageJob] = field(default_factory=list)
    tile_size: int | None = None
    threshold: float | None = None  # None: the model's own
    diameter: float | None = None  # None: measured in each image; 0: as it is
    z_scale: float | None = None  # None: each file's own z-step (1 when it says none)
    views: str = "yx"  # what the network sees of a volume: its YX planes, or "all" three
    suggest: int | None = None  # write at most this many suggestions per image (None: none)


@dataclass
class ImageResult:
    """What :func:`run_predictions` did with one image."""

    job: ImageJob
    n_objects: int
    seconds: float
    files: list[Path]
    scale: float = 1.0  # the image was rescaled by this before the network saw it
    diameter: float | None = None  # the object width measured or given
    doubt: Any = None  # why the result is likely wrong (prediction.doubt.Doubt), or None
    #: the suggestions written (prediction.suggestions.Suggestion, most doubtful first)
    suggestions: list | None = None
    stained: bool = False  # a stained slide, read as its haematoxylin (core.stains)

    @property
    def blockwise(self) -> bool:
        return self.job.blockwise

    def summary(self) -> str:
        """One line: how many objects, which files, how long (and how)."""
        how = f"{self.seconds:.1f} s"
        if self.job.volume:
            each = "each time point " if "T" in self.job.image_axes.axes else ""
            how += f", {each}as one 3-D volume"
        if self.blockwise:
            how += ", block by block"
        if self.scale != 1.0 and self.diameter:
            from ..prediction.doubt import width_words

            how = f"{width_words(self.diameter, self.doubt)}, rescaled x{self.scale:.2f}; {how}"
        if self.stained:
            how = f"a stained slide, its haematoxylin segmented; {how}"
        written = ", ".join(str(f) for f in self.files)
        return f"{self.job.name}: {self.n_objects} objects -> {written} ({how})"

    def suggestions_line(self) -> str | None:
        """One line: how many suggestions were written where, and the most doubtful one's
        reason (``None`` when none were asked for or possible)."""
        if self.suggestions is None or self.job.suggestions is None:
            return None
        n, path = len(self.suggestions), self.job.suggestions
        if not n:
            return f"{self.job.name}: no suggestions, nothing looks doubtful -> {path}"
        top = self.suggestions[0]
        return (
            f"{self.job.name}: {n} suggestion{'s' if n != 1 else ''} -> {path} "
            f"(most doubtful: {top.reason})"
        )

    def warning(self, where: str = "") -> str | None:
        """One plain line when the result is likely wrong (what to do included, ``where``
        naming how to give a diameter), else ``None``."""
        return None if self.doubt is None else f"{self.job.name}: {self.doubt.say(where)}"


def plan_predictions(
    images: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    model: str | os.PathLike | None = None,
    fmt: str = "tiff",
    axes: str | None = None,
    overwrite: bool = False,
    threshold: float | None = None,
    diameter: float | None = None,
    tile_size: int | None = None,
    distributed: bool = False,
    z_scale: float | None = None,
    views: str = "yx",
    suggest: int | None = None,
) -> PredictionPlan:
    """Check a batch of predictions before any work: ``images`` into the folder ``out``
    (created here when missing) with the model file ``model`` (the default model when
    ``None``), as ``fmt`` files, with these prediction settings (``diameter`` ``None``:
    measured in each image, ``0``: the images as they are); ``distributed``: the work
    goes to a dask cluster (every image then block by block); ``z_scale``: the z-step of
    volumes over their XY pixel size, instead of what their files say
    (:mod:`~napari_unet.core.files.image_axes`, each job's ``image_axes``); ``views``:
    what the network sees of a volume, ``"yx"`` (its planes) or ``"all"`` (also its ZY
    and ZX planes: better on touching objects, about 2-3 times slower); ``suggest``: also
    write ``<stem>_suggestions.json``, the (at most) ``suggest`` places most likely wrong
    (:mod:`~napari_unet.core.prediction.suggestions`), for every image segmented in
    memory (block by block there are none: the job's ``no_suggestions`` says why).

    Raises
    ------
    ConfigError
        A setting out of range (``out``, ``threshold``, ``diameter``, ``views``,
        ``suggest``).
    DefaultModelMissing, ModelFileError
        No model, or not a usable one.
    UserInputError
        An input that cannot be read or taken by the model, outputs that clash, would
        replace an input or (without ``overwrite``) a file napari-unet did not write, or
        a disk too full for them.
    """
    from ..axes import channel_layout
    from ..files.image_axes import check_z_scale, image_axes
    from ..files.images import image_info, image_stem
    from ..files.outputs import (
        check_free_space,
        ensure_output_folder,
        prediction_paths,
        refuse_to_replace,
    )
    from ..prediction.predictor import VOLUME_VIEWS
    from .planning import model_file

    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"must be a folder, got the file {out}")
    check_threshold(threshold)
    check_diameter(diameter, None)
    if tile_size is not None:
        check_limit("tile_size", tile_size)
    if z_scale is not None:
        z_scale = check_z_scale(z_scale)
    if views not in VOLUME_VIEWS:
        raise ConfigError("views", f"must be one of {', '.join(VOLUME_VIEWS)}, got {views!r}")
    if suggest is not None and (
        isinstance(suggest, bool) or not isinstance(suggest, int) or suggest < 1
    ):
        raise ConfigError("suggest", f"must be a whole number of at least 1, got {suggest!r}")

    # every input is read (its header) and every output named before the model
    inputs = [Path(p) for p in images]
    shapes = [image_info(p)[0] for p in inputs]
    ext = ".zarr" if fmt == "zarr" else ".tif"
    taken: dict[Path, Path] = {}
    input_set = {p.resolve() for p in inputs}
    outputs = []
    for path in inputs:
        stem = image_stem(path)
        files = {
            "labels": out / f"{stem}_labels{ext}",
            "probability": out / f"{stem}_probability{ext}",
        }
        for target in files.values():
            key = target.resolve()
            if key in taken:
                raise UserInputError(
                    f"{path.name} and {taken[key].name} would both write {target.name}; "
                    f"rename one or run them separately"
                )
            if key in input_set:
                raise UserInputError(f"output {target} would overwrite an input image")
            taken[key] = path
        outputs.append(files)
    if not overwrite:
        refuse_to_replace([t for files in outputs for t in files.values()])

    # a foreign model file and images it cannot take are refused before TensorFlow
    model_path, meta = model_file(model)
    arch = meta.architecture if isinstance(meta.architecture, dict) else {}
    channels = int(arch.get("input_channels", meta.input_channels or 1) or 1)
    layouts = [
        channel_layout(shape, channels, axes=axes, name=path.name)
        for path, shape in zip(inputs, shapes, strict=True)
    ]
    # a diameter the model cannot be brought to, or wider than an image, is refused
    # here with the valid range (never clamped into a run that finds nothing)
    for path, layout in zip(inputs, layouts, strict=True):
        check_diameter(diameter, meta.typing_width, layout.spatial_shape, name=path.name)
    # a model with several object classes also writes <stem>_classes.tif
    n_classes = int(arch.get("n_object_classes", 1) or 1)
    if n_classes > 1:
        classes = []
        for path, files in zip(inputs, outputs, strict=True):
            target = prediction_paths(out, image_stem(path), n_classes)["classes"]
            if fmt == "zarr":
                target = target.with_suffix(".zarr")
            if target.resolve() in taken or target.resolve() in input_set:
                raise UserInputError(f"{path.name}: {target.name} would overwrite another file")
            taken[target.resolve()] = path
            files["classes"] = target
            classes.append(target)
        if not overwrite:
            refuse_to_replace(classes)

    # zarr outputs are written block by block and a cluster works on blocks; otherwise
    # the size decides (the files are read by us: either way is possible)
    by_blocks = fmt == "zarr" or distributed
    jobs = [
        ImageJob(
            path,
            shape,
            layout,
            files,
            by_blocks or block_by_block(layout.spatial_shape),
            image_axes(path, shape=shape, channel_axis=layout.axis, axes=axes, z_scale=z_scale),
        )
        for path, shape, layout, files in zip(inputs, shapes, layouts, outputs, strict=True)
    ]
    for job in jobs:  # block by block: 2-D images and single volumes (Z×Y×X)
        if job.blockwise and job.layout.stack_shape:
            letters = job.image_axes.axes.replace("C", "")
            if job.volume and letters == "ZYX":
                if views != VOLUME_VIEWS[0]:
                    raise ConfigError(
                        "views",
                        f"{job.name}: a volume block by block is seen in its YX planes only; "
                        "leave --views out, or run without --format zarr/--workers/--scheduler",
                    )
                continue
            how = "--format zarr" if fmt == "zarr" else "--workers/--scheduler"
            raise UserInputError(
                f"{job.name} is a {'×'.join(job.image_axes.axes)} stack, and {how} works "
                f"on 2-D images and single Z×Y×X volumes only (block by block); run it "
                f"without {how} to segment it in memory into TIFF files"
            )
    if suggest is not None:
        _plan_suggestions(jobs, out, fmt, distributed, taken, input_set, overwrite)
    ensure_output_folder(out)
    # labels (up to 4 bytes) and probabilities (4 bytes) per input value: an upper bound
    # (a channel axis is not in the output); block by block, the outputs pass through a
    # compressed scratch copy: twice the room
    per_value = 16 if any(j.blockwise for j in jobs) else 8
    values = sum(math.prod(j.shape) for j in jobs)
    check_free_space(out, per_value * values, "the output of these images")
    return PredictionPlan(
        model_path,
        meta,
        out,
        fmt,
        axes,
        jobs,
        tile_size,
        threshold,
        diameter,
        z_scale,
        views,
        suggest,
    )


def _plan_suggestions(jobs, out: Path, fmt, distributed, taken, input_set, overwrite) -> None:
    """Name each job's ``<stem>_suggestions.json`` (checked as the other outputs are), or
    say why it gets none: block by block, the class probabilities the suggestions are
    read from are never whole."""
    from ..files.images import image_stem
    from ..files.outputs import refuse_to_replace

    targets = []
    for job in jobs:
        if job.blockwise:
            why = (
                "--format zarr"
                if fmt == "zarr"
                else "a dask cluster"
                if distributed
                else "an image too large to segment in memory"
            )
            job.no_suggestions = (
                f"{job.name}: no suggestions: it is segmented block by block ({why}), and "
                "suggestions are made only for an image segmented whole"
            )
            continue
        target = out / f"{image_stem(job.path)}_suggestions.json"
        key = target.resolve()
        if key in taken:
            raise UserInputError(
                f"{job.name} and {taken[key].name} would both write {target.name}; "
                f"rename one or run them separately"
            )
        if key in input_set:
            raise UserInputError(f"output {target} would overwrite an input image")
        taken[key] = job.path
        job.suggestions = target
        targets.append(target)
    if not overwrite:
        refuse_to_replace(targets)


def run_predictions(
    plan: PredictionPlan,
    net,
    *,
    client=None,
    note: Callable[[str], None] | None = None,
    check: Callable[[], None] | None = None,
    stage: Callable[[str, Any], None] | None = None,
) -> Iterator[ImageResult]:
    """Segment the images of ``plan`` with ``net`` (loaded from ``plan.model_path``),
    one after the other, yielding an :class:`ImageResult` once each one's files are
    written.

    ``client`` (a :class:`distributed.Client`) runs the block-wise images on a cluster.
    ``note`` hears what the person should know (NaN pixels, block progress);
    ``stage(name, stage)`` hears each :class:`~napari_unet.core.prediction.tiling.Stage` of an
    image segmented whole as it starts; ``check`` is called between blocks and before
    files are written: what it raises ends the run with nothing half-written.

    Raises
    ------
    UserInputError
        Naming the image, and how many were done before it.
    """
    note = note or (lambda text: None)
    check = check or (lambda: None)
    n = len(plan.jobs)
    for i, job in enumerate(plan.jobs, 1):
        t0 = time.perf_counter()
        try:
            if job.blockwise:
                result = _predict_blockwise(net, plan, job, client, note, check)
            else:
                result = _predict_whole(net, plan, job, note, check, stage)
        except UserInputError as e:
            done = f" ({i - 1} of {n} images done)" if n > 1 else ""
            msg = str(e) if job.name in str(e) else f"{job.name}: {e}"
            raise UserInputError(msg + done) from None
        except MemoryError:
            raise UserInputError(
                f"{job.name}: not enough memory; try a smaller tile size"
            ) from None
        result.seconds = time.perf_counter() - t0
        yield result


def _predict_whole(net, plan: PredictionPlan, job: ImageJob, note, check, stage=None):
    """One image read whole, predicted in memory, its files written together."""
    from ..files.images import read_image
    from ..files.outputs import check_output_folder, write_prediction
    from ..normalize import nonfinite_message, nonfinite_pixels
    from ..prediction.stacks import predict_stack

    image = read_image(job.path)
    bad = nonfinite_pixels(image)
    if bad:
        note(nonfinite_message(job.name, bad))
    # a stack whose axes name Z: one volume per time point, else plane by plane
    pred = predict_stack(
        net,
        image,
        job.image_axes if job.volume else None,
        views=plan.views,
        tile_size=plan.tile_size,
        threshold=plan.threshold,
        axes=job.layout.axes,
        diameter=diameter_argument(plan.diameter),
        stage=None if stage is None else (lambda s: stage(job.name, s)),
        **({"suggest": True} if job.suggestions is not None else {}),
    )
    check()  # nothing written for an interrupted image
    check_output_folder(job.outputs["labels"])
    texts, chosen = [], None
    if job.suggestions is not None:
        from ..prediction.suggestions import json_text, ranked

        chosen = ranked(pred.suggestions or [], plan.suggest)
        texts.append((job.suggestions, json_text(chosen)))
    write_prediction(pred, job.outputs, texts)
    n_objects = int(pred.labels.max(initial=0))  # ids are 1..N
    files = list(job.outputs.values())
    return ImageResult(
        job,
        n_objects,
        0.0,
        files,
        pred.scale,
        pred.diameter,
        pred.doubt,
        suggestions=chosen,
        stained=pred.stained,
    )


def _predict_blockwise(net, plan: PredictionPlan, job: ImageJob, client, note, check):
    """One image as a dask graph (:mod:`napari_unet.core.prediction.blockwise`): OME-Zarr outputs
    written block by block, or TIFFs copied from them; a hidden work folder beside the
    outputs, removed whatever happens."""
    import tempfile

    import numpy as np

    from ..files.images import LazyImage, image_stem
    from ..files.outputs import AtomicWrite, BlockwiseTiffs, class_map_dtype, remove_folder
    from ..prediction.blockwise import predict_to_zarr, zarr_to_tiffs

    labels_path, prob_path = job.outputs["labels"], job.outputs["probability"]
    classes_path = job.outputs.get("classes")
    shape = tuple(int(s) for s in job.layout.spatial_shape)
    options: dict = {"block_size": LARGE_BLOCK}
    if job.volume:  # a Z×Y×X volume: 3-D blocks (prediction/volume_blocks.py)
        from ..prediction.volume_blocks import predict_volume_to_zarr as predict_to_zarr

        options = {"block_size": VOLUME_BLOCK, "block_z": VOLUME_BLOCK_Z, "halo": VOLUME_HALO}
        options["z_scale"] = float(job.image_axes.z_scale)
    stem = image_stem(job.path)
    work = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".napari-unet-work", dir=plan.out))
    steps = {"predict": "predicted", "stitch": "stitched"}

    def progress(kind, done, total):
        check()
        if done in (1, total) or done % max(1, total // 20) == 0:
            note(f"{job.name}: {steps[kind]} block {done}/{total}")

    zarr_format = plan.format == "zarr"
    outputs = None
    try:
        zc = None
        if zarr_format:
            outputs = AtomicWrite(
                *[p for p in (labels_path, prob_path, classes_path) if p], folder=True
            )
            zl, zp = outputs.temps[:2]
            zc = outputs.temps[2] if classes_path else None
        else:
            zl, zp = work / "labels.zarr", work / "probability.zarr"
            zc = work / "classes.zarr" if classes_path else None
        try:
            result = predict_to_zarr(
                net,
                LazyImage(job.path),
                zl,
                zp,
                work,
                client=client,
                model_path=plan.model_path,
                tile_size=plan.tile_size,
                threshold=plan.threshold,
                axes=job.layout.axes,
                diameter=diameter_argument(plan.diameter),
                classes_path=zc,
                pyramid=zarr_format,
                name=stem,
                progress=progress,
                bound_heap=True,  # a process of its own: memory stays at one block's
                **options,
            )
            if not zarr_format:
                items = [
                    (labels_path, shape, np.dtype(np.uint32)),
                    (prob_path, shape, np.dtype(np.float32)),
                ]
                if zc is not None:
                    dtype = class_map_dtype(int(net.config.n_object_classes))
                    items.append((classes_path, shape, dtype))
                outputs = BlockwiseTiffs(items)
                rows = 1 if job.volume else 2048  # a plane of a volume at a time
                zarr_to_tiffs(list(zip((zl, zp, zc), outputs.arrays, strict=False)), rows)
            check()
            outputs.commit()
        except BaseException:
            if outputs is not None:
                outputs.discard()
            raise
    finally:
        remove_folder(work)  # after the chunk writes still in flight (a full disk)
    files = [p for p in (labels_path, prob_path, classes_path) if p is not None]
    return ImageResult(
        job,
        result.n_instances,
        0.0,
        files,
        result.scale,
        result.diameter,
        result.doubt,
        stained=result.stained,
    )


def evaluate_files(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    pred_classes: str | os.PathLike | None = None,
    truth_classes: str | os.PathLike | None = None,
    axes: str | None = None,
) -> dict:
    """Scores (:func:`~napari_unet.core.metrics.evaluate`) of the label image ``pred``
    against ``truth``, per class with both class maps; files of different shapes are
    refused by name.

    A stack is scored along its axes: ``axes`` when given, else what the files say
    (:func:`~napari_unet.core.files.image_axes.image_axes`: the truth's metadata, then
    the prediction's; two files that say different axes are refused), else the shape
    (one stack axis is Z). The result adds ``axes_from``: where the axes came from."""
    from ..files.images import read_labels
    from ..metrics import evaluate

    labels = [read_labels(pred), read_labels(truth)]
    if labels[0].shape != labels[1].shape:
        raise UserInputError(
            f"{Path(pred).name} {labels[0].shape} and {Path(truth).name} {labels[1].shape} "
            "differ in shape; compare label images of the same size"
        )
    maps = [None if c is None else read_labels(c) for c in (pred_classes, truth_classes)]
    for c, m in zip((pred_classes, truth_classes), maps, strict=True):
        if m is not None and m.shape != labels[0].shape:
            raise UserInputError(
                f"{Path(c).name} {m.shape} and {Path(pred).name} {labels[0].shape} "
                "differ in shape; a class map covers its labels pixel for pixel"
            )
    letters, source = label_file_axes(truth, pred, labels[0].shape, axes)
    scores = evaluate(*labels, *maps, axes=letters)
    scores["axes_from"] = source
    return scores


def label_file_axes(
    truth: str | os.PathLike, pred: str | os.PathLike, shape, axes: str | None = None
) -> tuple[str, str]:
    """The axis letters of two label files of ``shape`` and where they came from
    (``"given"``, a file's metadata, ``"the shape"``): see :func:`evaluate_files`."""
    from ..files.image_axes import FROM_PERSON, FROM_SHAPE, image_axes
    from ..metrics import label_axes

    if axes is not None:
        return label_axes(shape, axes), FROM_PERSON
    said = []
    for path in (truth, pred):
        if len(shape) > 2:
            found = image_axes(path, shape=shape, channel_axis=None)
            if found.source != FROM_SHAPE:
                said.append((Path(path).name, found))
    if len(said) == 2 and said[0][1].axes != said[1][1].axes:
        (a, fa), (b, fb) = said
        raise UserInputError(
            f"{a} has axes {fa.axes} ({fa.source}) but {b} has {fb.axes} ({fb.source}); "
            "say which with --axes, e.g. --axes ZYX for a volume or TYX for a time-lapse"
        )
    if said:
        name, found = said[0]
        return label_axes(shape, found.axes), f"{found.source} of {name}"
    return label_axes(shape), FROM_SHAPE
