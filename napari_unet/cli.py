"""The ``napari-unet`` command line: predict, train and evaluate without a GUI.

::

    napari-unet predict IMAGE... [--model PATH] [--out DIR] [--tile-size N]
    napari-unet train --image IMG (--mask M | --annotation A) [...] --out MODEL.keras
    napari-unet evaluate --pred LABELS --truth LABELS
    napari-unet export [--model PATH] --format bioimageio --out PACKAGE.zip

Bad input ends the program with exit code 2 and one line on stderr
(``napari-unet: error: ...``); nothing half-written is left behind. TensorFlow is
imported only by the commands that run a network, so ``--help`` and ``evaluate`` are
fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
import warnings
from pathlib import Path

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
from .core.errors import ModelFileError, UserInputError

# the names the predict command uses
_note, _raise_lost_interrupt, _import_tensorflow = note, raise_lost_interrupt, import_tensorflow


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
    from .core.config import DEFAULT_TILE_SIZE, TrainConfig, UNetConfig

    tc, uc = TrainConfig(), UNetConfig()
    bundled = "model file (.keras); default: the bundled nuclei model"
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
        ("--model", dict(metavar="PATH", help=bundled)),
        ("--out", dict(metavar="DIR", default=".",
                       help="output folder, created when missing (default: current folder)")),
        ("--tile-size", dict(type=_positive_int, metavar="N",
                             help=f"tile edge in pixels for large images (default "
                             f"{DEFAULT_TILE_SIZE}); lower it to save memory")),
        ("--threshold", dict(type=float, metavar="P",
                             help="foreground probability threshold (default: the model's "
                             "own, tuned when it was trained; 0.5 for the bundled model)")),
        ("--diameter", dict(type=float, metavar="PX",
                            help="typical object width in pixels; the image is rescaled so "
                            "its objects match the model's (default: measured in each image; "
                            "0: use the image as it is)")),
        ("--axes", dict(metavar="AXES",
                        help="what the image axes are, e.g. YX, YXC, CYX, ZYX, ZCYX, TZYXC "
                        "(C: channels); default: decided from the shape (channels last or "
                        "first, RGB(A) colours, stacks)")),
        ("--overwrite", dict(action="store_true",
                             help="replace existing output files that napari-unet did not "
                             "write (its own earlier outputs are always replaced)")),
    ])  # fmt: skip
    p.add_argument("--format", choices=["tiff", "zarr"], default="tiff",
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

    def core(default, what: str) -> dict:
        """An option whose default (and the help saying it) is core's."""
        kind = type(default)
        return dict(type=kind, default=default, metavar="N" if kind is int else "F",
                    help=f"{what} ({default:g})")  # fmt: skip

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
        ("--init", dict(default="default", metavar="PATH|default|none",
                        help="start from a model file, the bundled model (default) or a "
                        "new network (none)")),
        ("--epochs", core(tc.epochs, "maximum epochs")),
        ("--steps-per-epoch", core(tc.steps_per_epoch, "batches per epoch")),
        ("--time-limit", dict(type=float, metavar="SECONDS", help="stop after this long")),
        ("--patch-size", dict(type=int, metavar="N", help=f"training patch edge (the "
                              f"--init model's, else {tc.patch_size})")),
        ("--batch-size", core(tc.batch_size, "patches per batch")),
        ("--val-fraction", core(tc.val_fraction, "share of labelled pixels held out for "
                                "validation")),
        ("--learning-rate", dict(type=float, metavar="LR", help="Adam learning rate "
                                 "(default 3e-4 when fine-tuning, 1e-3 for a new network)")),
        ("--depth", dict(type=int, metavar="N", help=f"new networks: pooling levels "
                         f"({uc.depth}, with --init none)")),
        ("--base-filters", dict(type=int, metavar="N", help=f"new networks: filters of the "
                                f"first level ({uc.base_filters}, with --init none)")),
        ("--seed", dict(type=int, default=tc.seed, help=f"random seed ({tc.seed})")),
        ("--overwrite", dict(action="store_true", help="replace the --out model file")),
    ])  # fmt: skip
    t.set_defaults(func=cmd_train, inputs=[])

    e = sub.add_parser(
        "evaluate",
        help="score a label image against ground truth",
        description="Print one JSON object: pixel_dice, pixel_iou, precision, recall, f1 "
        "(instances matched at IoU >= 0.5), mean_ap (IoU 0.5:0.95) and instance counts.",
    )
    e.add_argument("--pred", required=True, metavar="LABELS", help="predicted instance labels")
    e.add_argument("--truth", required=True, metavar="LABELS", help="ground-truth instance labels")
    e.add_argument(
        "--pred-classes",
        metavar="C",
        help="class map of the prediction (<stem>_classes.tif); with --truth-classes adds "
        "per-class precision, recall and F1 under 'per_class'",
    )
    e.add_argument(
        "--truth-classes", metavar="C", help="class map of the ground truth (0 = background)"
    )
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser(
        "export",
        help="write a model as a bioimage.io package",
        description="Write a bioimage.io model package (spec 0.5): the .keras weights, ONNX "
        "and TensorFlow SavedModel weights derived from them, test tensors, a cover and "
        "documentation (ONNX needs: pip install 'napari-unet[bioimageio]').",
    )
    _options_of(x, [
        ("--model", dict(metavar="PATH", help=bundled)),
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
def _layout(shape: tuple[int, ...], channels: int, name: str, axes: str | None = None):
    """Where the channels are in an image of ``shape`` for a ``channels``-input model:
    the one rule of :func:`napari_unet.core.axes.channel_layout`."""
    from .core.axes import channel_layout

    return channel_layout(shape, channels, axes=axes, name=name)


def cmd_predict(args) -> int:
    from .core import default_model_path
    from .core.io import (
        check_free_space,
        ensure_output_folder,
        image_info,
        image_stem,
        prediction_paths,
        refuse_to_replace,
    )

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out must be a folder, got the file {out}")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise UserInputError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.diameter is not None and not (args.diameter >= 0 and math.isfinite(args.diameter)):
        raise UserInputError(
            f"--diameter must be a number of pixels (0 to use the image as it is), got {args.diameter}"
        )

    # check every input before loading a model or writing anything
    inputs = [Path(p) for p in args.images]
    infos = [image_info(p) for p in inputs]
    plans = []
    seen: dict[Path, Path] = {}
    input_set = {p.resolve() for p in inputs}
    ext = ".zarr" if args.format == "zarr" else ".tif"
    for path in inputs:
        stem = image_stem(path)
        labels_path = out / f"{stem}_labels{ext}"
        prob_path = out / f"{stem}_probability{ext}"
        for target in (labels_path, prob_path):
            key = target.resolve()
            if key in seen:
                raise UserInputError(
                    f"{path.name} and {seen[key].name} would both write {target.name}; "
                    f"rename one or run them separately"
                )
            if key in input_set:
                raise UserInputError(f"output {target} would overwrite an input image")
            seen[key] = path
        plans.append((path, labels_path, prob_path))
    if not args.overwrite:
        refuse_to_replace([t for _, lab, prob in plans for t in (lab, prob)])

    # refuse a foreign model file and images it cannot take before importing TensorFlow
    from .core.modelfile import read_metadata

    if args.model:
        meta = read_metadata(args.model)
    else:
        DEFAULT_MODEL_PATH = default_model_path()

        if not DEFAULT_MODEL_PATH.exists():
            raise ModelFileError(
                "the bundled default nuclei model is not installed; name a model file with "
                "--model MODEL.keras (train one with 'napari-unet train')"
            )
        meta = read_metadata(DEFAULT_MODEL_PATH)
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else {}
    channels = int(arch.get("input_channels", meta.get("input_channels", 1)) or 1)
    for path, (shape, _) in zip(inputs, infos, strict=True):
        _layout(shape, channels, path.name, args.axes)
    # a model with several object classes also writes <stem>_classes.tif
    n_classes = int(arch.get("n_object_classes", 1) or 1)
    class_paths = {}
    if n_classes > 1:
        for path in inputs:
            target = prediction_paths(out, image_stem(path), n_classes)["classes"]
            if target.resolve() in seen or target.resolve() in input_set:
                raise UserInputError(f"{path.name}: {target.name} would overwrite another file")
            seen[target.resolve()] = path
            class_paths[path] = target
        if not args.overwrite:
            refuse_to_replace(list(class_paths.values()))
    ensure_output_folder(out)
    # labels (up to 4 bytes) and probabilities (4 bytes) per input value: an upper bound
    # (a channel axis is not in the output)
    values = sum(math.prod(shape) for shape, _ in infos)
    # block by block, the outputs pass through a compressed scratch copy: twice the room
    lazy = args.format == "zarr" or args.workers or args.scheduler
    per_value = 16 if lazy or any(_is_large(_layout(s, channels, "")) for s, _ in infos) else 8
    check_free_space(out, per_value * values, "the output of these images")

    cluster = _Cluster(args)
    try:
        if lazy:
            cluster.start()  # an unreachable scheduler is said before any work
        _import_tensorflow()
        from .core import UNet

        net = UNet.load(args.model) if args.model else UNet.default()
        model_path = Path(args.model) if args.model else default_model_path()
        _predict_each(net, model_path, plans, infos, args, lazy, cluster, class_paths)
    finally:
        cluster.close()
    return 0


def _predict_each(net, model_path, plans, infos, args, lazy, cluster, class_paths) -> None:
    from .core.io import check_output_folder, labels_dtype, read_image, write_prediction
    from .core.normalize import nonfinite_pixels

    channels = net.input_channels
    n = len(plans)
    for i, ((path, labels_path, prob_path), (shape, _)) in enumerate(zip(plans, infos), 1):
        t0 = time.perf_counter()
        try:
            layout = _layout(shape, channels, path.name, args.axes)
            if lazy or _is_large(layout):
                if args.diameter:
                    _note(
                        f"{path.name}: large images are segmented block by block at their own "
                        "scale; --diameter is not applied to them yet"
                    )
                if path in class_paths:
                    _note(f"{path.name}: no class map for an image segmented block by block yet")
                n_obj = _predict_large(
                    net, model_path, path, labels_path, prob_path, args, layout, cluster.start()
                )
                print(
                    f"{path.name}: {n_obj} objects -> {labels_path}, {prob_path} "
                    f"({time.perf_counter() - t0:.1f} s, block by block)",
                    flush=True,
                )
                continue
            image = read_image(path)
            axes = _layout(image.shape, channels, path.name, args.axes).axes
            bad = nonfinite_pixels(image)
            if bad:
                _note(
                    f"{path.name}: {bad} pixel{'s are' if bad > 1 else ' is'} NaN or infinite; "
                    "read as background"
                )
            pred = net.predict(
                image,
                tile_size=args.tile_size,
                threshold=args.threshold,
                axes=axes,
                diameter="auto" if args.diameter is None else args.diameter,
            )
            labels = pred.labels.astype(labels_dtype(pred.labels))
            _raise_lost_interrupt()  # nothing written for an interrupted image
            check_output_folder(labels_path)
            files = {"labels": labels_path, "probability": prob_path}
            if path in class_paths:
                files["classes"] = class_paths[path]
            write_prediction(pred, files)
        except UserInputError as e:
            done = f" ({i - 1} of {n} images done)" if n > 1 else ""
            msg = str(e)
            if path.name not in msg:
                msg = f"{path.name}: {msg}"
            raise UserInputError(msg + done) from None
        except MemoryError:
            raise UserInputError(
                f"{path.name}: not enough memory; try a smaller --tile-size"
            ) from None
        n_obj = int(labels.max(initial=0))  # ids are 1..N
        size = ""
        if pred.scale != 1.0 and pred.diameter:
            size = f"objects ~{pred.diameter:.0f} px wide, rescaled x{pred.scale:.2f}; "
        written = ", ".join(str(f) for f in files.values())
        print(
            f"{path.name}: {n_obj} objects -> {written} ({size}{time.perf_counter() - t0:.1f} s)",
            flush=True,
        )


#: Above this many pixels a single 2D image is predicted block by block from a lazily
#: read input straight into the output files, in bounded memory.
LARGE_PIXELS = 16_000_000
#: Edge of the blocks of the block-by-block path (a multiple of every network's grid).
LARGE_BLOCK = 2048
#: Seconds to wait for a --scheduler to answer (connecting, then its first worker).
SCHEDULER_TIMEOUT = 10


def _is_large(layout) -> bool:
    spatial = layout.spatial_shape
    return len(spatial) == 2 and spatial[0] * spatial[1] > LARGE_PIXELS


def _predict_large(
    net, model_path: Path, path: Path, labels_path: Path, prob_path: Path, args, layout, client
) -> int:
    """One image as a dask graph (:mod:`napari_unet.core.large`): OME-Zarr outputs
    written block by block, or TIFFs copied from them; a hidden work folder beside the
    outputs, removed whatever happens."""
    import shutil
    import tempfile

    import numpy as np

    from .core.io import AtomicWrite, BlockwiseTiffs, LazyImage, image_stem
    from .core.large import predict_to_zarr, zarr_to_tiffs

    image = LazyImage(path)
    h, w = layout.spatial_shape
    out = labels_path.parent
    work = Path(
        tempfile.mkdtemp(prefix=f".{image_stem(path)}.", suffix=".napari-unet-work", dir=out)
    )
    steps = {"predict": "predicted", "stitch": "stitched"}

    def progress(kind, done, n):
        _raise_lost_interrupt()
        if done in (1, n) or done % max(1, n // 20) == 0:
            _note(f"{path.name}: {steps[kind]} block {done}/{n}")

    zarr_format = args.format == "zarr"
    outputs = None
    try:
        if zarr_format:
            outputs = AtomicWrite(labels_path, prob_path, folder=True)
            zl, zp = outputs.temps
        else:
            zl, zp = work / "labels.zarr", work / "probability.zarr"
        try:
            result = predict_to_zarr(
                net,
                image,
                zl,
                zp,
                work,
                client=client,
                model_path=model_path,
                block_size=LARGE_BLOCK,
                tile_size=args.tile_size,
                threshold=args.threshold,
                axes=layout.axes,
                pyramid=zarr_format,
                name=image_stem(path),
                progress=progress,
            )
            if not zarr_format:
                tiffs = BlockwiseTiffs(
                    [
                        (labels_path, (h, w), np.dtype(np.uint32)),
                        (prob_path, (h, w), np.dtype(np.float32)),
                    ]
                )
                outputs = tiffs._files
                zarr_to_tiffs([(zl, tiffs.arrays[0]), (zp, tiffs.arrays[1])])
            _raise_lost_interrupt()
            outputs.commit()
        except BaseException:
            if outputs is not None:
                outputs.discard()
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result.n_instances


class _Cluster:
    """The dask cluster of ``--workers N`` (started here, closed at the end) or
    ``--scheduler ADDRESS`` (connected to); none without either flag."""

    def __init__(self, args) -> None:
        self.workers, self.address = args.workers, args.scheduler
        self.client = self.cluster = None

    def start(self):
        """The :class:`distributed.Client`, started on first use (``None``: this process)."""
        if self.client is not None or not (self.workers or self.address):
            return self.client
        import logging

        from distributed import Client, LocalCluster

        if self.workers:
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
            where = f"{self.workers} worker process{'es' if self.workers > 1 else ''} here"
        else:
            try:
                self.client = Client(self.address, timeout=f"{SCHEDULER_TIMEOUT}s")
            except (OSError, TimeoutError, ValueError) as e:
                raise UserInputError(
                    f"cannot reach the dask scheduler at {self.address} ({_first_line(e)}); "
                    "check the address, or start one with 'dask scheduler' and 'dask worker'"
                ) from None
            try:
                self.client.wait_for_workers(1, timeout=3 * SCHEDULER_TIMEOUT)
            except TimeoutError:
                raise UserInputError(
                    f"the dask scheduler at {self.address} has no workers; start some with "
                    f"'dask worker {self.address}'"
                ) from None
            n = len(self.client.scheduler_info().get("workers", {}))
            where = f"{n} worker{'s' if n != 1 else ''} of {self.address}"
        _note(f"predicting on dask: {where}")
        import importlib.util

        services = self.client.scheduler_info().get("services", {})
        # the dashboard needs bokeh where the scheduler runs (here, for --workers)
        if "dashboard" in services and (self.address or importlib.util.find_spec("bokeh")):
            _note(f"dask dashboard: {self.client.dashboard_link}")
        elif "dashboard" in services:
            _note("dask dashboard: pip install bokeh to see the cluster at work in a browser")
        return self.client

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a cluster that already failed
                    pass
        self.client = self.cluster = None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


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
    from .core import plan

    out = plan.check_model_target(args.out, args.overwrite)
    files = _pair_inputs(args.inputs)
    with _options():
        spec = plan.ModelSpec.parse(args.init, args.depth, args.base_filters, args.seed)
        network = plan.plan_network(spec)
        cfg = network.train_config(
            patch_size=args.patch_size,
            **{k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "batch_size", "seed")},
            **{k: getattr(args, k) for k in ("time_limit", "val_fraction", "learning_rate")},
        )
    pairs = plan.load_training_pairs(files, network.config.input_channels, warn=note)
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

    from .core.training import ProgressKind

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
    return 0


# --------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    import json

    from .core.io import read_labels
    from .core.metrics import evaluate

    pred = read_labels(args.pred)
    truth = read_labels(args.truth)
    if pred.shape != truth.shape:
        raise UserInputError(
            f"{Path(args.pred).name} {pred.shape} and {Path(args.truth).name} {truth.shape} "
            f"differ in shape; compare label images of the same size"
        )
    classes = [args.pred_classes, args.truth_classes]
    if (classes[0] is None) != (classes[1] is None):
        raise UserInputError(
            "per-class scores need both --pred-classes and --truth-classes (or neither)"
        )
    maps = [None, None]
    if classes[0] is not None:
        maps = [read_labels(c) for c in classes]
        for c, m in zip(classes, maps):
            if m.shape != pred.shape:
                raise UserInputError(
                    f"{Path(c).name} {m.shape} and {Path(args.pred).name} {pred.shape} "
                    "differ in shape; a class map covers its labels pixel for pixel"
                )
    print(json.dumps(evaluate(pred, truth, *maps)), flush=True)
    return 0


# --------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from .core.plan import model_file

    model, _ = model_file(args.model)  # a clear message before TensorFlow starts
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise UserInputError(f"--out must name a .zip file: {out.name}")
    if out.exists() and not args.overwrite:
        raise UserInputError(f"{out} exists; choose another name or pass --overwrite")
    import_tensorflow()
    from .core.bioimageio import export_bioimageio

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
    return run_command(build_parser().parse_args(argv))


def run() -> None:
    """The ``napari-unet`` console script: :func:`main`, then exit at once."""
    exit_now(main())


if __name__ == "__main__":  # pragma: no cover
    run()
