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
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

from . import __version__
from .core.errors import ModelFileError, UserInputError

PROG = "napari-unet"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


# --------------------------------------------------------------------------- output
def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _error(message: str) -> int:
    sys.stdout.flush()
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter filtered out of stderr."""
    from .core._tfload import quiet_import_tensorflow

    quiet_import_tensorflow()


# --------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage block)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        hint = f"see '{self.prog} --help'"
        self.exit(EXIT_USAGE, f"{PROG}: error: {_one_line(message)} ({hint})\n")


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="U-Net segmentation of microscopy images (the napari-unet plugin, headless).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "predict",
        help="segment images with a model",
        description="Segment images. Writes OUT/<name>_labels.tif (instance ids, uint16 or "
        "uint32) and OUT/<name>_probability.tif (float32, 0-1) per image.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="TIFF, PNG or JPEG images")
    p.add_argument(
        "--model", metavar="PATH", help="model file (.keras); default: the bundled nuclei model"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=".",
        help="output folder, created when missing (default: current folder)",
    )
    p.add_argument(
        "--tile-size",
        type=_positive_int,
        metavar="N",
        help="tile edge in pixels for large images (default 1024); lower it to save memory",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="foreground probability threshold (default: the model's own, tuned when it "
        "was trained; 0.5 for the bundled model)",
    )
    p.add_argument(
        "--diameter",
        type=float,
        default=None,
        metavar="PX",
        help="typical object width in pixels; the image is rescaled so its objects match "
        "the model's (default: measured in each image; 0: use the image as it is)",
    )
    p.add_argument(
        "--axes",
        metavar="AXES",
        help="what the image axes are, e.g. YX, YXC, CYX, ZYX, ZCYX, TZYXC (C: channels); "
        "default: decided from the shape (channels last or first, RGB(A) colours, stacks)",
    )
    p.add_argument(
        "--format",
        choices=["tiff", "zarr"],
        default="tiff",
        help="tiff (default): <name>_labels.tif and <name>_probability.tif; zarr: "
        "<name>_labels.zarr and <name>_probability.zarr, OME-Zarr with a pyramid, written "
        "block by block (napari opens them lazily)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="predict on a dask cluster of N worker processes started on this machine",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="predict on an existing dask cluster, e.g. tcp://HOST:8786 (started by "
        "'dask scheduler' and 'dask worker', dask-jobqueue, ...); its workers must see "
        "the images, the model and --out",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files that napari-unet did not write (its own "
        "earlier outputs are always replaced)",
    )
    p.set_defaults(func=cmd_predict)

    # the defaults are core's, read here once (no TensorFlow: plain dataclasses)
    from .core.config import TrainConfig, UNetConfig

    tc, uc = TrainConfig(), UNetConfig()

    def defaulted(parser, flag: str, default: int | float, what: str) -> None:
        """An option whose default (and the help saying it) is core's."""
        kind = type(default)
        metavar = "N" if kind is int else "F"
        parser.add_argument(
            flag, type=kind, default=default, metavar=metavar, help=f"{what} ({default:g})"
        )

    t = sub.add_parser(
        "train",
        help="train or fine-tune a model",
        description="Train a U-Net on images with dense masks (0 = background, one id per "
        "object) or sparse annotations (0 = unlabelled, 1 = background, 2 = object). "
        "Each --image pairs with the --mask/--annotation given in the same order.",
    )
    t.add_argument("--image", action=_Ordered, metavar="IMG", help="training image")
    t.add_argument("--mask", action=_Ordered, metavar="M", help="instance mask of that image")
    t.add_argument(
        "--annotation", action=_Ordered, metavar="A", help="sparse annotation of that image"
    )
    t.add_argument("--out", required=True, metavar="MODEL.keras", help="where to save the model")
    t.add_argument(
        "--init",
        default="default",
        metavar="PATH|default|none",
        help="start from a model file, the bundled model (default) or a new network (none)",
    )
    defaulted(t, "--epochs", tc.epochs, "maximum epochs")
    defaulted(t, "--steps-per-epoch", tc.steps_per_epoch, "batches per epoch")
    t.add_argument(
        "--time-limit", type=float, metavar="SECONDS", help="stop training after this long"
    )
    t.add_argument(
        "--patch-size",
        type=int,
        metavar="N",
        help=f"training patch edge (the --init model's, else {tc.patch_size})",
    )
    defaulted(t, "--batch-size", tc.batch_size, "patches per batch")
    defaulted(
        t, "--val-fraction", tc.val_fraction, "share of labelled pixels held out for validation"
    )
    t.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        metavar="LR",
        help="Adam learning rate (default 3e-4 when fine-tuning, 1e-3 for a new network)",
    )
    t.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help=f"new networks: pooling levels ({uc.depth}, with --init none)",
    )
    t.add_argument(
        "--base-filters",
        type=int,
        metavar="N",
        help=f"new networks: filters of the first level ({uc.base_filters}, with --init none)",
    )
    t.add_argument("--seed", type=int, default=tc.seed, help=f"random seed ({tc.seed})")
    t.add_argument(
        "--overwrite", action="store_true", help="replace the --out model file if it exists"
    )
    t.set_defaults(func=cmd_train, inputs=[])

    e = sub.add_parser(
        "evaluate",
        help="score a label image against ground truth",
        description="Print one JSON object: pixel_dice, pixel_iou, precision, recall, f1 "
        "(instances matched at IoU >= 0.5), mean_ap (IoU 0.5:0.95) and instance counts.",
    )
    e.add_argument("--pred", required=True, metavar="LABELS", help="predicted instance labels")
    e.add_argument("--truth", required=True, metavar="LABELS", help="ground-truth instance labels")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser(
        "export",
        help="write a model as a bioimage.io package",
        description="Write a bioimage.io model package (spec 0.5): the .keras weights, ONNX "
        "and TensorFlow SavedModel weights derived from them, test tensors, a cover and "
        "documentation (ONNX needs: pip install 'napari-unet[bioimageio]').",
    )
    x.add_argument(
        "--model", metavar="PATH", help="model file (.keras); default: the bundled nuclei model"
    )
    x.add_argument("--format", required=True, choices=["bioimageio"], help="package format")
    x.add_argument("--out", required=True, metavar="PACKAGE.zip", help="package to write")
    x.add_argument(
        "--author",
        action="append",
        metavar="NAME",
        help="who trained the model (repeatable; default: your login name, or the "
        "napari-unet developers for the bundled model)",
    )
    x.add_argument("--license", default="CC-BY-4.0", help="SPDX licence id (CC-BY-4.0)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing package")
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
        _predict_each(net, model_path, plans, infos, args, lazy, cluster)
    finally:
        cluster.close()
    return 0


def _predict_each(net, model_path, plans, infos, args, lazy, cluster) -> None:
    from .core.io import check_output_folder, labels_dtype, read_image, write_tiffs_atomic
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
            write_tiffs_atomic([(labels_path, labels), (prob_path, pred.probability)])
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
        print(
            f"{path.name}: {n_obj} objects -> {labels_path}, {prob_path} "
            f"({size}{time.perf_counter() - t0:.1f} s)",
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


def _check_train_args(args) -> None:
    if not args.out.endswith(".keras"):
        raise UserInputError(f"--out must be a model file ending in .keras, got {args.out}")
    from .core.io import check_output_folder, check_writable

    out = check_output_folder(args.out)
    if os.path.lexists(out) and not args.overwrite:
        raise UserInputError(
            f"{out} already exists; choose another --out name, or add --overwrite to replace it"
        )
    check_writable(out.parent)
    for flag, value in (
        ("--epochs", args.epochs),
        ("--steps-per-epoch", args.steps_per_epoch),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise UserInputError(f"{flag} must be at least 1, got {value}")
    from .core.config import MAX_PATCH_SIZE

    if args.patch_size is not None and not 16 <= args.patch_size <= MAX_PATCH_SIZE:
        raise UserInputError(
            f"--patch-size must be from 16 to {MAX_PATCH_SIZE} pixels, got {args.patch_size}"
        )
    if args.time_limit is not None and not 0 < args.time_limit < math.inf:
        raise UserInputError(
            f"--time-limit must be a positive number of seconds, got {args.time_limit}"
        )
    if not 0.0 <= args.val_fraction < 1.0:
        raise UserInputError(
            f"--val-fraction must be at least 0 and below 1, got {args.val_fraction}"
        )
    if args.learning_rate is not None and not 0 < args.learning_rate < 10:
        raise UserInputError(
            f"--learning-rate must be a small positive number, got {args.learning_rate}"
        )
    if args.init not in ("default", "none"):
        if not Path(args.init).exists():
            raise UserInputError(
                f"--init model file not found: {args.init} (use a .keras file, 'default' or 'none')"
            )


def _read_pairs(triples, channels: int):
    import numpy as np

    from .core import TrainingPair
    from .core.io import read_image, read_labels
    from .core.normalize import nonfinite_pixels

    pairs = []
    n_bg = n_fg = 0
    n_annotations = 0
    for img_path, kind, lab_path in triples:
        image = read_image(img_path)
        labels = read_labels(lab_path)
        iname, lname = Path(img_path).name, Path(lab_path).name
        bad = nonfinite_pixels(image)
        if bad:
            _note(f"{iname}: {bad} NaN or infinite pixels; read as background")
        if labels.ndim not in (2, 3):
            raise UserInputError(
                f"{lname}: {labels.ndim}D labels of shape {labels.shape} are not supported; "
                f"give a 2D (Y, X) label image or a (Z, Y, X) stack"
            )
        if image.ndim > labels.ndim + 1:
            raise UserInputError(
                f"{iname}: a {image.ndim}D image of shape {image.shape} is not supported with "
                f"{labels.ndim}D labels"
            )
        layout = _layout(image.shape, channels, iname)
        if layout.spatial_shape != labels.shape:
            seen = "" if layout.axis is None else f" (read as {layout.axes})"
            raise UserInputError(
                f"{iname} {image.shape}{seen} and its {kind} {lname} {labels.shape} differ in "
                f"shape; the {kind} must cover the image pixel for pixel"
            )
        if kind == "mask":
            if not (labels > 0).any():
                raise UserInputError(
                    f"mask {lname} has no object (every pixel is 0); give a mask with objects"
                )
            if (labels > 0).all():
                raise UserInputError(
                    f"mask {lname} has no background pixel (no 0 anywhere); masks use 0 "
                    f"for background"
                )
        else:
            n_annotations += 1
            if not labels.any():
                raise UserInputError(
                    f"annotation {lname} is empty (every pixel is 0, not annotated); paint "
                    f"1 = background and 2 = object"
                )
            n_bg += int((labels == 1).sum())
            n_fg += int((labels >= 2).sum())
        name = Path(img_path).name
        if kind == "mask":
            pairs.append(TrainingPair(image, mask=labels, name=name))
        else:
            pairs.append(TrainingPair(image, annotation=np.asarray(labels), name=name))
    if n_annotations == len(pairs):
        if n_fg == 0:
            raise UserInputError(
                "the annotation has no object pixel (label 2): paint some objects before training"
            )
        if n_bg == 0:
            raise UserInputError(
                "the annotation has no background pixel (label 1): paint some background "
                "before training"
            )
    return pairs


def _plan_network(args):
    """Decide where training starts, checking everything without TensorFlow.

    Returns ``(source, config, metadata, notice)``: ``source`` is ``"new"``, ``"default"``
    or a model path; ``config`` the network's :class:`UNetConfig`.
    """
    from .core import UNetConfig, default_model_path

    DEFAULT_MODEL_PATH = default_model_path()
    from .core.modelfile import read_metadata

    shape_args = {}
    if args.depth is not None:
        shape_args["depth"] = args.depth
    if args.base_filters is not None:
        shape_args["base_filters"] = args.base_filters
    if args.init == "none":
        return "new", UNetConfig(**shape_args), {}, None
    if args.init == "default":
        if not DEFAULT_MODEL_PATH.exists():
            notice = "no bundled default model; training from scratch"
            return "new", UNetConfig(**shape_args), {}, notice
        source, path = "default", DEFAULT_MODEL_PATH
    else:
        source, path = args.init, Path(args.init)
    if shape_args:
        raise UserInputError(
            "--depth and --base-filters only apply to a new network, not when fine-tuning "
            f"{'the bundled model' if source == 'default' else path.name}; add --init none"
        )
    meta = read_metadata(path)  # a foreign file is refused here
    try:
        config = UNetConfig.from_dict(meta["architecture"])
    except (TypeError, AttributeError, UserInputError) as e:
        raise ModelFileError(f"{path.name}: bad architecture in metadata ({e})") from None
    return source, config, meta, None


def _save_or_rescue(net, out: Path) -> Path:
    """Save the trained model to ``out``; when that fails (disk full, folder gone or
    read-only), save it in the temporary folder instead so minutes of training are not
    lost, and say where."""
    import tempfile

    try:
        return net.save(out)
    except OSError as e:
        rescue = Path(tempfile.gettempdir()) / f"napari-unet-rescued-{int(time.time())}.keras"
        try:
            net.save(rescue)
        except OSError:
            raise e from None
        raise UserInputError(
            f"could not save the model to {out} ({_os_error_message(e)}); it was saved to "
            f"{rescue} instead: move it where you want it"
        ) from None


def _fmt(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def cmd_train(args) -> int:
    _check_train_args(args)
    triples = _pair_inputs(args.inputs)
    source, config, meta, notice = _plan_network(args)
    from .core import TrainConfig

    patch = args.patch_size or int(meta.get("patch_size") or TrainConfig().patch_size)
    if patch % config.size_multiple:
        m = config.size_multiple
        raise UserInputError(
            f"--patch-size {patch} must be a multiple of {m} for a depth-{config.depth} "
            f"network (try {max(1, round(patch / m)) * m})"
        )
    cfg = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        time_limit=args.time_limit,
        patch_size=patch,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    pairs = _read_pairs(triples, config.input_channels)

    _import_tensorflow()
    from .core import UNet

    if source == "new":
        net, origin = UNet.new(config, seed=args.seed), "a new network"
    elif source == "default":
        net, origin = UNet.default(), "the bundled default model"
    else:
        net, origin = UNet.load(source), Path(source).name
    n = len(pairs)
    # printed once training really starts, so that bad input still gets one line only
    start_lines = [notice] if notice else []
    start_lines.append(
        f"training from {origin} (depth {net.config.depth}, {net.config.base_filters} filters) "
        f"on {n} image{'s' if n != 1 else ''}: up to {cfg.epochs} epochs of "
        f"{cfg.steps_per_epoch} batches of {cfg.batch_size} x {patch}px patches"
        + (f", time limit {cfg.time_limit:g} s" if cfg.time_limit else "")
    )

    def progress(p) -> None:
        _raise_lost_interrupt()
        while start_lines:
            _note(start_lines.pop(0))
        if p.kind == "epoch":
            _note(
                f"epoch {p.epoch}/{cfg.epochs}  loss {_fmt(p.loss)}  val_loss {_fmt(p.val_loss)}"
                f"  val_dice {_fmt(p.val_dice, '.3f')}  {p.elapsed:.1f} s"
            )

    stop = threading.Event()
    interrupted = {"n": 0}

    def on_sigint(signum, frame):
        interrupted["n"] += 1
        if interrupted["n"] > 1:
            raise KeyboardInterrupt
        stop.set()
        _note("interrupted: stopping after this batch (Ctrl-C again to quit at once)")

    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = net.train(pairs, cfg, progress=progress, stop_event=stop)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    if stop.is_set():
        raise KeyboardInterrupt

    path = _save_or_rescue(net, Path(args.out))
    if result.stopped_by == "non_finite":
        _note(
            f"the loss became NaN after epoch {result.epochs_run}; the weights of the last "
            "good epoch were saved (a lower --learning-rate may train further)"
        )
    best = (
        f"best {result.monitor} {_fmt(result.best_monitor)} at epoch {result.best_epoch}"
        if result.best_epoch
        else "no finite loss recorded"
    )
    val_dice = net.metadata["history"].get("val_dice_coefficient")
    dice = ""
    if val_dice and result.best_epoch and result.monitor == "val_loss":
        start = len(val_dice) - result.epochs_run
        dice = f", val_dice {val_dice[start + result.best_epoch - 1]:.3f}"
    print(f"saved model to {path}")
    print(
        f"trained {result.epochs_run} epochs ({result.steps_run} steps) in "
        f"{result.seconds:.1f} s, stopped by {result.stopped_by.replace('_', ' ')}; {best}{dice}",
        flush=True,
    )
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
    print(json.dumps(evaluate(pred, truth)), flush=True)
    return 0


# --------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from .core import default_model_path
    from .core.modelfile import read_metadata

    model = Path(args.model) if args.model else default_model_path()
    read_metadata(model)  # a clear message before TensorFlow starts
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise UserInputError(f"--out must name a .zip file: {out.name}")
    if out.exists() and not args.overwrite:
        raise UserInputError(f"{out} exists; choose another name or pass --overwrite")
    _import_tensorflow()
    from .core.bioimageio import export_bioimageio

    # SIGTERM ends the export like Ctrl+C: the half-written package is removed
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = export_bioimageio(
            model, out, authors=args.author, license=args.license, overwrite=args.overwrite
        )
    finally:
        signal.signal(signal.SIGTERM, old)
    _note(f"wrote {out} (weights: {', '.join(result.weight_formats)})")
    for fmt, why in result.skipped.items():
        _note(f"no {fmt} weights: {why}")
    return 0


# --------------------------------------------------------------------------- main
def _os_error_message(e: OSError) -> str:
    import errno

    where = f": {e.filename}" if getattr(e, "filename", None) else ""
    if e.errno is None and re.search(r"requested and \d+ written", str(e)):
        return "no space left on device; free some disk space or write elsewhere"
    hint = {
        errno.EACCES: "; check the permissions or choose another folder",
        errno.EPERM: "; check the permissions or choose another folder",
        errno.ENOSPC: "; free some disk space or write elsewhere",
        errno.EROFS: "; choose a writable folder",
    }.get(e.errno, "")
    return f"{e.strerror or e}{where}{hint}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster job's time limit, ``kill``): unwind like Ctrl+C, so every
    temporary file is removed on the way out."""


def _on_sigterm(signum, frame):
    raise Terminated


#: Ctrl+C or SIGTERM that landed in a finaliser, where Python can only report it.
_lost_interrupts: list[KeyboardInterrupt] = []


def _quiet_unraisable(unraisable) -> None:
    """Ctrl+C landing in a finaliser (TensorFlow tracing, a closing file, a released
    memory map) is not worth a traceback, but must not be lost either: it is kept and
    raised again at the next check (:func:`_raise_lost_interrupt`). Anything else is
    reported as Python would."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _lost_interrupts.append(unraisable.exc_value)
        return
    sys.__unraisablehook__(unraisable)


def _raise_lost_interrupt() -> None:
    """Raise a Ctrl+C or SIGTERM that a finaliser swallowed, if there was one."""
    if _lost_interrupts:
        e = _lost_interrupts[0]
        _lost_interrupts.clear()
        raise e


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-unet`` console script; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keras warns that fit's default shuffle=True is ignored for a tf.data stream
    warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
    args = build_parser().parse_args(argv)
    old_term = old_int = old_hook = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        # Python leaves Ctrl+C ignored when it started ignored (a job started in the
        # background by a non-interactive shell, some CI runners); `train` always took
        # it over to stop after the batch, and every command now answers it alike
        old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        old_hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable
    try:
        return _run(args)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
            sys.unraisablehook = old_hook


def _run(args) -> int:
    _lost_interrupts.clear()
    try:
        code = int(args.func(args) or 0)
        _raise_lost_interrupt()
        return code
    except UserInputError as e:
        return _error(str(e))
    except KeyboardInterrupt as e:
        sys.stdout.flush()
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        _note(f"{what}; nothing was saved" if args.command == "train" else what)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except MemoryError:
        return _error("not enough memory; use smaller images, --tile-size or --batch-size")
    except OSError as e:
        return _error(_os_error_message(e))
    except Exception as e:  # noqa: BLE001
        # numpy/tifffile report a short write on a full disk as "N requested and M written"
        if re.search(r"requested and \d+ written", str(e)):
            return _error("no space left on device; free some disk space or write elsewhere")
        # anything else is a bug: show the traceback, then one line
        traceback.print_exc()
        _error(
            f"unexpected {type(e).__name__}: {e} (this is a bug in napari-unet; please "
            f"report it with the traceback above)"
        )
        return 1


def run() -> None:
    """The ``napari-unet`` console script: :func:`main`, then exit.

    Once TensorFlow is loaded, Python's own shutdown spends 1–2 s taking its thread
    pools and kernels apart after the work is done (measured: 1.7 s after a training
    run on 2 cores). By the time :func:`main` returns every output file is written
    and closed, so the exit handlers run (logging, temporary files) and the process
    leaves at once.
    """
    code = main()
    if "tensorflow" in sys.modules:
        import atexit

        run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
        if run_exit_handlers is not None:
            run_exit_handlers()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
