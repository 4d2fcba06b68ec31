"""The ``napari-unet`` command line: predict, train, evaluate and export without a GUI.

Each command is parse → call core → print: the decisions are core's (:mod:`.core.plan`,
:mod:`.core.batch`, :mod:`.core.cluster`), the process (one-line errors, exit codes,
signals) is :mod:`._console`'s. Bad input ends the program with exit code 2 and one
line on stderr; nothing half-written is left behind. TensorFlow is imported only by the
commands that run a network, so ``--help`` and ``evaluate`` are fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings

from . import __version__
from ._console import (  # the process: messages, signals, exit codes
    EXIT_USAGE,
    PROG,
    Terminated,  # noqa: F401 - part of the command line's interface
    exit_now,
    import_tensorflow,
    note,
    one_line,
    raise_lost_interrupt,
    run_command,
    train_until_interrupted,
)
from .core.errors import UserInputError


# --------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage block)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        hint = f"see '{self.prog} --help'"
        self.exit(EXIT_USAGE, f"{PROG}: error: {one_line(message)} ({hint})\n")


class _Ordered(argparse.Action):
    """Collect --image/--mask/--annotation into one list, in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, "inputs", None) or [])
        items.append((self.dest, values))
        namespace.inputs = items


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _options_of(parser, options) -> None:
    """Add ``(flags, keywords)`` pairs to ``parser``."""
    for flags, kw in options:
        parser.add_argument(*flags.split(), **kw)


def build_parser() -> argparse.ArgumentParser:
    # the defaults are core's, read here once (no TensorFlow: plain dataclasses)
    from .core.config import (
        DEFAULT_TILE_SIZE,
        FINE_TUNE_LEARNING_RATE,
        LIMITS,
        NEW_NETWORK_LEARNING_RATE,
        TrainConfig,
        UNetConfig,
    )
    from .core.jobs.file_jobs import FORMATS
    from .core.network.model_file import BUNDLED_MODELS, DEFAULT_MODEL_NAME
    from .core.prediction.predictor import VOLUME_VIEWS

    tc, uc = TrainConfig(), UNetConfig()
    others = " or ".join(n for n in BUNDLED_MODELS if n != DEFAULT_MODEL_NAME)
    bundled = (
        f"model file (.keras, or a bioimage.io package .zip napari-unet exported) or a "
        f"bundled model by name; default: the bundled "
        f"{DEFAULT_MODEL_NAME} model ({others}: the bundled {others} model)"
    )
    names = "|".join(BUNDLED_MODELS)
    parser = _Parser(
        prog=PROG,
        description="U-Net segmentation of microscopy images (the napari-unet plugin, headless).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "predict",
        help="segment images with a model",
        description="Segment images. Writes OUT/<name>_labels.tif (instance ids, uint16 or "
        "uint32) and OUT/<name>_probability.tif (float32, 0-1) per image, and "
        "OUT/<name>_classes.tif (class id per pixel) for a model with several object classes.",
    )
    _options_of(p, [
        ("images", dict(nargs="+", metavar="IMAGE", help="TIFF, PNG or JPEG images")),
        ("--model", dict(metavar=f"PATH|{names}", help=bundled)),
        ("--out", dict(metavar="DIR", default=".",
                       help="output folder, created when missing (default: current folder)")),
        ("--tile-size", dict(type=_positive_int, metavar="N",
                             help=f"tile edge in pixels for large images (default "
                             f"{DEFAULT_TILE_SIZE}, {LIMITS['tile_size'].text()}); lower it to "
                             "save memory")),
        ("--threshold", dict(type=float, metavar="P",
                             help="foreground probability threshold (default or 0: the "
                             "model's own, tuned when it was trained; 0.5 for a model "
                             "without one)")),
        ("--diameter", dict(type=float, metavar="PX",
                            help="typical object width in pixels; the image is rescaled so "
                            "its objects match the model's, from a quarter to 8x the model's "
                            "own object width and less than the image (default: measured in "
                            "each image; 0: use the image as it is)")),
        ("--axes", dict(metavar="AXES",
                        help="what the image axes are, e.g. YX, YXC, CYX, ZYX, ZCYX, TZYXC "
                        "(C: channels; Z: a volume; T: time points); default: the file's "
                        "metadata (ImageJ, OME), else decided from the shape (channels last "
                        "or first, RGB(A) colours; one stack axis is Z, two are T and Z)")),
        ("--z-scale", dict(type=float, metavar="F",
                           help="a volume's z-step over its XY pixel size, e.g. 5 for "
                           "1 um slices of 0.2 um pixels (default: from the file's "
                           f"metadata, else 1; {LIMITS['z_scale'].text()})")),
        ("--views", dict(choices=VOLUME_VIEWS, default=VOLUME_VIEWS[0],
                         help="what the network looks at in a volume (a stack whose axes "
                         "say Z, segmented in 3-D with one id per object through z): yx "
                         "(default), its planes one by one; all: also its ZY and ZX "
                         "planes, better at telling touching nuclei apart, about 2-3x "
                         "slower")),
        ("--overwrite", dict(action="store_true",
                             help="replace existing output files that napari-unet did not "
                             "write (its own earlier outputs are always replaced)")),
        ("--suggest", dict(type=_positive_int, metavar="K",
                           help="also write OUT/<name>_suggestions.json: the K places most "
                           "likely wrong, most doubtful first, each with its box, score, "
                           "reason and label id (images segmented whole only, not block by "
                           "block)")),
    ])  # fmt: skip
    p.add_argument("--format", choices=FORMATS, default=FORMATS[0],
                   help="tiff (default): <name>_labels.tif and <name>_probability.tif; zarr: "
                   "<name>_labels.zarr and <name>_probability.zarr, OME-Zarr with a pyramid, "
                   "written block by block (napari opens them lazily)")  # fmt: skip
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, metavar="N",
                       help="predict on a dask cluster of N worker processes started on this "
                       "machine")  # fmt: skip
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="predict on an existing dask cluster, e.g. tcp://HOST:8786 (started "
                       "by 'dask scheduler' and 'dask worker', dask-jobqueue, ...); its workers "
                       "must see the images, the model and --out")  # fmt: skip
    p.set_defaults(func=cmd_predict)

    def core(default, what: str, name: str | None = None) -> dict:
        """An option whose default and valid range (and the help saying them) are core's."""
        kind = type(default)
        span = f", {LIMITS[name].text()}" if name else ""
        return dict(type=kind, default=default, metavar="N" if kind is int else "F",
                    help=f"{what} ({default:g}{span})")  # fmt: skip

    t = sub.add_parser(
        "train",
        help="train or fine-tune a model",
        description="Train a U-Net on images with dense masks (0 = background, one id per "
        "object) or sparse annotations (0 = unlabelled, 1 = background, 2 = object; 3, 4, "
        "... = further object classes, one network output each). "
        "Each --image pairs with the --mask/--annotation given in the same order.",
    )
    _options_of(t, [
        ("--image", dict(action=_Ordered, metavar="IMG", help="training image")),
        ("--mask", dict(action=_Ordered, metavar="M", help="instance mask of that image")),
        ("--annotation", dict(action=_Ordered, metavar="A", help="sparse annotation of it")),
        ("--out", dict(required=True, metavar="MODEL.keras", help="where to save the model")),
        ("--init", dict(default="default", metavar=f"PATH|default|{names}|none",
                        help=f"start from a model file, the bundled {DEFAULT_MODEL_NAME} "
                        f"model (default), a bundled model by name ({others}) or a new "
                        "network (none)")),
        ("--epochs", core(tc.epochs, "maximum epochs", "epochs")),
        ("--steps-per-epoch", core(tc.steps_per_epoch, "batches per epoch", "steps_per_epoch")),
        ("--time-limit", dict(type=float, metavar="SECONDS", help="stop after this long ("
                              f"{LIMITS['time_limit'].text()})")),
        ("--patch-size", dict(type=int, metavar="N", help=f"training patch edge (the "
                              f"--init model's, else {tc.patch_size}; "
                              f"{LIMITS['patch_size'].text()})")),
        ("--batch-size", core(tc.batch_size, "patches per batch", "batch_size")),
        ("--val-fraction", core(tc.val_fraction, "share of labelled pixels held out for "
                                "validation", "val_fraction")),
        ("--learning-rate", dict(type=float, metavar="LR", help="Adam learning rate, up to "
                                 f"{LIMITS['learning_rate'].hi:g} (default or 0: "
                                 f"{FINE_TUNE_LEARNING_RATE:g} when fine-tuning, "
                                 f"{NEW_NETWORK_LEARNING_RATE:g} for a new network)")),
        ("--depth", dict(type=int, metavar="N", help=f"new networks: pooling levels "
                         f"({uc.depth}, {LIMITS['depth'].text()}, with --init none)")),
        ("--base-filters", dict(type=int, metavar="N", help=f"new networks: filters of the "
                                f"first level ({uc.base_filters}, with --init none)")),
        ("--z-scale", dict(type=float, metavar="F",
                           help="a volume's z-step over its XY pixel size (default: from "
                           "the file's metadata, else 1); a volume trains from its annotated "
                           "planes, and from side views where 5 or more planes in a row are "
                           f"annotated ({LIMITS['z_scale'].text()})")),
        ("--diameter", dict(type=float, metavar="PX",
                            help="typical object width in pixels in the training images, "
                            "as predict --diameter takes it: each image is brought to the "
                            "model's scale from it (default: measured on the masks or "
                            "annotations; 0: use the images as they are)")),
        ("--seed", dict(type=int, default=tc.seed, help=f"random seed ({tc.seed})")),
        ("--overwrite", dict(action="store_true", help="replace the --out model file")),
    ])  # fmt: skip
    t.set_defaults(func=cmd_train, inputs=[])

    e = sub.add_parser(
        "evaluate",
        help="score a label image against ground truth",
        description="Print one JSON object: pixel_dice, pixel_iou, precision, recall, f1 "
        "(instances matched at IoU >= 0.5), mean_ap (IoU 0.5:0.95), instance counts and "
        "'matching': how a stack was scored ('3d': a volume, objects matched in 3D; '2d per "
        "frame': a time-lapse, each frame on its own, counts summed; '3d per frame'; '2d'). "
        "A stack also gets one line on stderr saying so.",
    )
    _options_of(e, [
        ("--pred", dict(required=True, metavar="LABELS", help="predicted instance labels")),
        ("--truth", dict(required=True, metavar="LABELS", help="ground-truth instance labels")),
        ("--pred-classes", dict(metavar="C", help="class map of the prediction "
                                "(<stem>_classes.tif); with --truth-classes adds per-class "
                                "precision, recall and F1 under 'per_class'")),
        ("--truth-classes", dict(metavar="C", help="class map of the ground truth "
                                 "(0 = background)")),
        ("--axes", dict(metavar="AXES", help="axes of the label stacks when their files do "
                        "not say them: ZYX (a volume: objects matched in 3D), TYX (a "
                        "time-lapse: frame by frame), TZYX; default: the files' metadata, "
                        "else one stack axis is Z")),
    ])  # fmt: skip
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser(
        "export",
        help="write a model as a bioimage.io package",
        description="Write a bioimage.io model package (spec 0.5): the .keras weights, ONNX "
        "and TensorFlow SavedModel weights derived from them, test tensors, a cover and "
        "documentation (ONNX needs: pip install 'napari-unet[bioimageio]').",
    )
    _options_of(x, [
        ("--model", dict(metavar=f"PATH|{names}", help=bundled)),
        ("--format", dict(required=True, choices=["bioimageio"], help="package format")),
        ("--out", dict(required=True, metavar="PACKAGE.zip", help="package to write")),
        ("--author", dict(action="append", metavar="NAME", help="who trained the model "
                          "(repeatable; default: your login name, or the napari-unet "
                          "developers for the bundled model)")),
        ("--license", dict(default="CC-BY-4.0", help="SPDX licence id (CC-BY-4.0)")),
        ("--overwrite", dict(action="store_true", help="replace an existing package")),
    ])  # fmt: skip
    x.set_defaults(func=cmd_export)
    return parser


# --------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    from .core.config import typed_setting
    from .core.jobs.file_jobs import plan_predictions, run_predictions
    from .core.prediction.cluster import DaskCluster

    with _options():  # every input and output checked before a model is loaded
        plan = plan_predictions(
            args.images, args.out, args.model, args.format, args.axes, args.overwrite,
            typed_setting("threshold", args.threshold), args.diameter, args.tile_size,
            bool(args.workers or args.scheduler), args.z_scale, args.views, args.suggest,
        )  # fmt: skip
    for job in plan.jobs:  # what the stack axes are, and from where, in one line each
        if job.image_axes is not None and job.image_axes.stack_axes:
            note(job.image_axes.describe(job.name))
        if job.no_suggestions:  # --suggest on an image segmented block by block
            note(job.no_suggestions)
    # a person watching the terminal sees each stage start; logs of scripts stay quiet
    watched = sys.stderr.isatty()

    def stage(name: str, what) -> None:
        note(f"{name}: {what.value}…")

    # an unreachable scheduler is said before TensorFlow starts
    with DaskCluster(args.workers, args.scheduler, note=note) as client:
        if watched:
            note("importing TensorFlow…")
        import_tensorflow()
        from .core import UNet

        if watched:
            note("loading the model…")
        net = UNet.load(plan.model_path)
        for result in run_predictions(
            plan,
            net,
            client=client,
            note=note,
            check=raise_lost_interrupt,
            stage=stage if watched else None,
        ):
            print(result.summary(), flush=True)
            if (line := result.suggestions_line()) is not None:
                print(line, flush=True)
            doubt = result.warning(" (--diameter PX)")
            if doubt:  # a warning: the files are written, the exit code stays 0
                note(f"warning: {doubt}")
    return 0


# --------------------------------------------------------------------------- train
def _pair_inputs(items: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(image, kind, labels) triples: the k-th --image with the k-th --mask/--annotation."""
    images = [v for k, v in items if k == "image"]
    labels = [(k, v) for k, v in items if k != "image"]
    if not images:
        raise UserInputError("no training data: give --image IMG with --mask M or --annotation A")
    if len(images) != len(labels):
        raise UserInputError(
            f"{len(images)} --image but {len(labels)} --mask/--annotation: give every "
            f"--image exactly one --mask or --annotation, in the same order"
        )
    return [(img, kind, lab) for img, (kind, lab) in zip(images, labels, strict=True)]


@contextlib.contextmanager
def _options():
    """Core's settings errors told in the command line's words (``--batch-size``)."""
    from .core.errors import ConfigError

    try:
        yield
    except ConfigError as e:
        raise UserInputError(f"--{e.field.replace('_', '-')} {e.problem}") from None


def _fmt(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def cmd_train(args) -> int:
    from .core.config import typed_setting
    from .core.jobs import planning as plan

    out = plan.check_model_target(args.out, args.overwrite)
    files = _pair_inputs(args.inputs)
    with _options():
        spec = plan.ModelSpec.parse(args.init, args.depth, args.base_filters, args.seed)
        network = plan.plan_network(spec)
        plan.check_training_space(out.parent, network.config)  # free space, as predict
        cfg = network.train_config(
            patch_size=args.patch_size,
            **{k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "batch_size", "seed")},
            **{k: getattr(args, k) for k in ("time_limit", "val_fraction")},
            learning_rate=typed_setting("learning_rate", args.learning_rate),
        )
    with _options():  # a --diameter wider than an image or out of the model's reach
        pairs = plan.load_training_pairs(
            files, network.config.input_channels, warn=note,
            n_object_classes=network.config.n_object_classes, z_scale=args.z_scale,
            diameter=args.diameter, model_diameter=network.metadata.typing_width,
        )  # fmt: skip
    import_tensorflow()
    net = plan.resolve_model(network.spec)
    # printed once training really starts, so that bad input still gets one line only
    start_lines = [network.notice] if network.notice else []
    start_lines.append(network.summary(cfg, len(pairs)))

    def progress(p) -> None:
        raise_lost_interrupt()
        while start_lines:
            note(start_lines.pop(0))
        if p.kind is ProgressKind.EPOCH:
            note(
                f"epoch {p.epoch}/{cfg.epochs}  loss {_fmt(p.loss)}  val_loss {_fmt(p.val_loss)}"
                f"  val_dice {_fmt(p.val_dice, '.3f')}  {p.elapsed:.1f} s"
            )

    from .core.training.loop import ProgressKind

    result = train_until_interrupted(net, pairs, cfg, progress)
    path = plan.save_model_safely(net, out)
    if result.stopped_by == "non_finite":
        note(
            f"the loss became NaN after epoch {result.epochs_run}; the weights of the last "
            "good epoch were saved (a lower --learning-rate may train further)"
        )
    n_classes = net.config.n_object_classes
    print(f"saved model to {path}" + (f" ({n_classes} object classes)" if n_classes > 1 else ""))
    print(f"{result.summary()}", flush=True)
    for warning in result.warnings:
        note(f"warning: {warning}")
    return 0


# --------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    import json

    from .core.jobs.file_jobs import evaluate_files

    if (args.pred_classes is None) != (args.truth_classes is None):
        raise UserInputError(
            "per-class scores need both --pred-classes and --truth-classes (or neither)"
        )
    scores = evaluate_files(
        args.pred, args.truth, args.pred_classes, args.truth_classes, axes=args.axes
    )
    print(json.dumps(scores), flush=True)
    if scores["matching"] != "2d":  # a stack: say how it was scored
        from .core.files.image_axes import FROM_PERSON, FROM_SHAPE
        from .core.metrics import describe_scores

        where = scores["axes_from"]
        where = "axes as given with --axes" if where == FROM_PERSON else f"axes from {where}"
        if scores["axes_from"] == FROM_SHAPE:
            example = "TYX for a time-lapse" if len(scores["axes"]) == 3 else "ZTYX"
            where += f"; if this is wrong, say it with --axes, e.g. {example}"
        note(f"{describe_scores(scores)} ({where})")
    return 0


# --------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from .core.files.bioimageio import check_package_target, export_bioimageio
    from .core.jobs.planning import model_file

    model, _ = model_file(args.model)  # clear messages before TensorFlow starts
    out = check_package_target(args.out, args.overwrite)
    import_tensorflow()

    # SIGTERM unwinds like Ctrl+C (run_command): the half-written package is removed
    result = export_bioimageio(
        model, out, authors=args.author, license=args.license, overwrite=args.overwrite
    )
    note(f"wrote {out} (weights: {', '.join(result.weight_formats)})")
    for fmt, why in result.skipped.items():
        note(f"no {fmt} weights: {why}")
    return 0


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-unet`` console script; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keras warns that fit's default shuffle=True is ignored for a tf.data stream
    warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
    # tifffile logs each tag of a damaged file it cannot read ("<TiffTag.fromfile>
    # raised ..."); the one line of the error says what is wrong with the file and
    # what to do, and a file that reads despite a bad tag needs no words
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    return run_command(build_parser().parse_args(argv))


def run() -> None:
    """The ``napari-unet`` console script: :func:`main`, then exit at once."""
    exit_now(main())


if __name__ == "__main__":  # pragma: no cover
    run()
