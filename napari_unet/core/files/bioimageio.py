"""Export a napari-unet model as a bioimage.io model package (spec 0.5).

The package is a zip that deepImageJ, ilastik, QuPath, the BioImage Model Zoo and
``bioimageio.core`` can run without napari-unet:

* ``weights.keras``: the model file itself (``keras_v3``; it stays a napari-unet model,
  its metadata inside), and weights derived from it: an ONNX graph (``weights.onnx``,
  through tf2onnx, which the ``bioimageio`` extra installs) and a TensorFlow SavedModel
  (``tf_saved_model.zip``);
* the input described as the network takes it (batch, y, x, channel; sizes a multiple of
  the pooling grid) with ``scale_range`` preprocessing on the percentiles napari-unet
  normalises with (per image and channel, not clipped), and a halo: the context
  napari-unet's own tiling keeps around each tile;
* the output: softmax probabilities of background, each object class and the object
  boundary; the instance post-processing (a seeded watershed) has no bioimage.io
  operator and is documented in the package's README with the model's own settings;
* test input and output tensors (a crop of the sample nuclei image and the Keras
  model's answer), a cover image, authors, licence and the U-Net citation.

Nothing here imports bioimage.io libraries except :func:`validate_package` and
:func:`run_bioimageio_test`, which need the ``bioimageio`` extra.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import COLOUR_READINGS, WIDTH_MEASURES
from ..errors import UserInputError
from ..network.metadata import ModelMetadata
from ..normalize import Normalizer

FORMAT_VERSION = "0.5.4"
UNET_CITATION = {
    "text": "Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for "
    "Biomedical Image Segmentation. MICCAI 2015.",
    "doi": "10.1007/978-3-319-24574-4_28",
}
BBBC038_CITATION = {
    "text": "Caicedo, J.C. et al. Nucleus segmentation across imaging experiments: the "
    "2018 Data Science Bowl. Nature Methods 16, 1247-1253 (2019).",
    "doi": "10.1038/s41592-019-0612-7",
}
#: Edge of the square test tensor (rounded up to a size the network accepts).
TEST_SIZE = 256
BUNDLED_AUTHORS = ["napari-unet developers"]


@dataclass
class ExportResult:
    """What :func:`export_bioimageio` wrote."""

    path: Path
    weight_formats: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # format -> why not
    onnx_max_abs_diff: float | None = None  # ONNX vs Keras on the test tensor


# ---------------------------------------------------------------------- export
def check_package_target(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse a package name before any work: not ``.zip``, its folder missing, or an
    existing file without ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UserInputError(f"a bioimage.io package is a .zip file: {out.name}")
    if not out.parent.is_dir():
        raise UserInputError(f"folder does not exist: {out.parent}")
    if out.exists() and not overwrite:
        raise UserInputError(f"{out} exists; choose another name or pass --overwrite")
    return out


def export_bioimageio(
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    authors: list[str] | None = None,
    license: str = "CC-BY-4.0",  # noqa: A002 - the field's name in the spec
    name: str | None = None,
    test_image: np.ndarray | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write the napari-unet model at ``model_path`` as a bioimage.io package ``out``.

    Parameters
    ----------
    model_path
        A napari-unet ``.keras`` file (checked as :meth:`UNet.load` checks it).
    out
        The package to write (``.zip``); written atomically. An existing file is
        replaced only with ``overwrite``.
    authors
        Who trained the model (default: the napari-unet developers for the bundled
        model, else the current user's login name).
    license
        SPDX identifier of the model's licence.
    name
        Model name (default from the file name).
    test_image
        A 2D (or 2D + channels) image for the test tensors; default: the sample nuclei
        image shipped with napari-unet.
    overwrite
        Replace an existing ``out``.
    """
    from ..network.model_file import bundled_model_name, read_metadata
    from ..network.unet import UNet

    model_path = Path(model_path)
    out = check_package_target(out, overwrite)
    meta = read_metadata(model_path)
    net = UNet.load(model_path)
    cfg = net.config
    bundled = bundled_model_name(model_path)  # "generalist", "nuclei" or None
    if authors is None:
        authors = BUNDLED_AUTHORS if bundled else [_login_name()]
    if not authors or not all(a.strip() for a in authors):
        raise UserInputError("every author needs a name")
    classes = list(meta.classes or _class_names(cfg.n_object_classes))

    sizes = _input_sizes(cfg)
    side = _round_to_size(max(TEST_SIZE, sizes["min"]), sizes["min"], sizes["step"])
    raw = _test_input(test_image, cfg.input_channels, side)  # (1, Y, X, C) float32
    normalizer = Normalizer.of(net.normalization)
    low, high = normalizer.low, normalizer.high
    model = net.portable_model()  # float32, plain Keras layers: what a consumer runs
    normalized = _scale_range(raw, low, high)
    expected = np.asarray(model(normalized, training=False), np.float32)

    with tempfile.TemporaryDirectory(prefix="napari-unet-bioimageio-") as tmp:
        tmp = Path(tmp)
        shutil.copyfile(model_path, tmp / "weights.keras")
        np.save(tmp / "test_input.npy", raw)
        np.save(tmp / "test_output.npy", expected)
        _write_cover(tmp / "cover.png", raw, expected, low, high)
        weights: dict[str, Any] = {
            "keras_v3": {
                "source": "weights.keras",
                "keras_version": _version("keras"),
                "backend": ["tensorflow", _version("tensorflow")],
                "authors": [{"name": a} for a in authors],
            }
        }
        result = ExportResult(out, ["keras_v3"])
        try:
            _write_saved_model(model, tmp / "tf_saved_model.zip")
            weights["tensorflow_saved_model_bundle"] = {
                "source": "tf_saved_model.zip",
                "tensorflow_version": _version("tensorflow"),
                "parent": "keras_v3",
                "comment": "Keras 3 model.export(format='tf_saved_model'); endpoint 'serve'",
            }
            result.weight_formats.append("tensorflow_saved_model_bundle")
        except Exception as e:  # noqa: BLE001 - reported, the package stays usable
            result.skipped["tensorflow_saved_model_bundle"] = f"{type(e).__name__}: {e}"
        try:
            opset, diff = _write_onnx(model, tmp / "weights.onnx", normalized, expected)
            weights["onnx"] = {
                "source": "weights.onnx",
                "opset_version": opset,
                "parent": "keras_v3",
                "comment": "Keras 3 model.export(format='onnx') through tf2onnx",
            }
            result.weight_formats.append("onnx")
            result.onnx_max_abs_diff = diff
        except ImportError as e:
            result.skipped["onnx"] = (
                f"{e.name or 'tf2onnx'} is not installed (pip install 'napari-unet[bioimageio]')"
            )
        except Exception as e:  # noqa: BLE001 - reported, the package stays usable
            result.skipped["onnx"] = f"{type(e).__name__}: {e}"

        about = _About(
            name or _title(model_path, bundled),
            meta,
            net,
            classes,
            sizes,
            low,
            high,
            authors,
            license,
            bundled,
        )
        (tmp / "README.md").write_text(_documentation(about, result), encoding="utf-8")
        rdf = _rdf(about, weights)
        import yaml

        (tmp / "rdf.yaml").write_text(
            yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        _zip_atomically(tmp, out)
    return result


def _login_name() -> str:
    try:
        return getpass.getuser() or "napari-unet user"
    except Exception:  # noqa: BLE001 - no login name (containers)
        return "napari-unet user"


def _class_names(n_object_classes: int) -> list[str]:
    from ..config import class_names

    return class_names(n_object_classes)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _title(model_path: Path, bundled: str | None) -> str:
    if bundled:
        return f"napari-unet {bundled} U-Net"
    return f"napari-unet U-Net {model_path.stem}"


def _input_sizes(cfg) -> dict[str, int]:
    """Sizes the network accepts (``min + n * step``), the output's offset and the halo."""
    from ..network.architecture import output_size, valid_input_sizes
    from ..network.unet import DEFAULT_CONTEXT

    step = int(cfg.size_multiple)
    if cfg.padding == "same":
        halo = -(-DEFAULT_CONTEXT // step) * step  # napari-unet's own tile context
        return {"min": 2 * halo + step, "step": step, "offset": 0, "halo": halo}
    sizes = valid_input_sizes(cfg, 1, 4096)
    if len(sizes) < 2 or len({b - a for a, b in zip(sizes, sizes[1:])}) != 1:
        raise UserInputError("this unpadded network's valid input sizes are not evenly spaced")
    offset = {output_size(cfg, s) - s for s in sizes}
    if len(offset) != 1:
        raise UserInputError("this unpadded network's output is not a fixed crop of its input")
    return {"min": sizes[0], "step": sizes[1] - sizes[0], "offset": offset.pop(), "halo": 0}


def _round_to_size(n: int, minimum: int, step: int) -> int:
    return minimum + max(0, -(-(n - minimum) // step)) * step


def _test_input(image: np.ndarray | None, channels: int, side: int) -> np.ndarray:
    """A ``(1, side, side, channels)`` float32 crop (mirrored when the image is small)."""
    if image is None:
        import tifffile

        from .images import sample_dir

        image = tifffile.imread(sample_dir() / "img2d.tif")
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise UserInputError(f"the test image must be 2D (+ channels), got shape {a.shape}")
    if a.shape[-1] != channels:
        if a.shape[-1] == 1:
            a = np.repeat(a, channels, axis=-1)
        else:
            raise UserInputError(
                f"the test image has {a.shape[-1]} channels, the model takes {channels}"
            )
    pad = [(0, max(0, side - a.shape[0])), (0, max(0, side - a.shape[1])), (0, 0)]
    if any(p[1] for p in pad[:2]):
        a = np.pad(a, pad, mode="reflect")
    y0 = (a.shape[0] - side) // 2
    x0 = (a.shape[1] - side) // 2
    return np.ascontiguousarray(a[None, y0 : y0 + side, x0 : x0 + side])


def _scale_range(raw: np.ndarray, low: float, high: float, eps: float = 1e-6) -> np.ndarray:
    """bioimage.io's ``scale_range`` over y and x, per sample and channel (not clipped).

    The same mapping as napari-unet's percentile normalisation (``core.normalize``),
    with the spec's ``eps`` in the denominator.
    """
    lo = np.percentile(raw, low, axis=(1, 2), keepdims=True)
    hi = np.percentile(raw, high, axis=(1, 2), keepdims=True)
    return ((raw - lo) / (hi - lo + eps)).astype(np.float32)


def _write_saved_model(model, target: Path, output_id: str = "probabilities") -> None:
    """A TensorFlow SavedModel whose ``serve`` endpoint returns ``{output_id: probs}``
    (bioimage.io runners read the outputs of a SavedModel by name, from a dict)."""
    import keras
    import tensorflow as tf

    channels = int(model.input_shape[-1])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda x: {output_id: model(x, training=False)},
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="raw")],
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "saved_model"
        archive.write_out(str(folder), verbose=False)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(folder).as_posix())


def _write_onnx(model, target: Path, x: np.ndarray, expected: np.ndarray) -> tuple[int, float]:
    """ONNX through tf2onnx; returns the opset and the largest deviation from Keras."""
    import tf2onnx  # noqa: F401 - Keras' ONNX export needs it: fail early and clearly

    model.export(str(target), format="onnx", verbose=False)
    import onnx

    graph = onnx.load(str(target), load_external_data=False)
    opset = max(int(o.version) for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    diff = float("nan")
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        diff = float(np.max(np.abs(np.asarray(got) - expected)))
    except ImportError:
        pass
    return opset, diff


def _write_cover(path: Path, raw: np.ndarray, probs: np.ndarray, low: float, high: float) -> None:
    """Input (grey, shown as the model normalises it) beside the object probability
    (magenta on the input): 2:1, PNG."""
    import imageio.v3 as iio

    image = raw[0].mean(axis=-1)
    lo, hi = np.percentile(image, (low, high))
    grey = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    obj = np.clip(1.0 - probs[0, ..., 0] - probs[0, ..., -1], 0, 1)  # objects, no boundary
    left = np.stack([grey] * 3, axis=-1)
    right = np.stack([np.maximum(grey * 0.6, obj), grey * 0.6, np.maximum(grey * 0.6, obj)], -1)
    cover = np.concatenate([left, right], axis=1)
    iio.imwrite(path, (cover * 255).round().astype(np.uint8))


def _zip_atomically(folder: Path, out: Path) -> None:
    from .outputs import AtomicWrite

    with AtomicWrite(out) as (tmp,), zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.iterdir()):
            z.write(p, p.name)


# ---------------------------------------------------------------------- description
@dataclass
class _About:
    """What a package says about its model: the rdf and its README both tell it."""

    title: str
    meta: ModelMetadata
    net: Any
    classes: list[str]
    sizes: dict[str, int]  # see _input_sizes
    low: float  # normalisation percentiles
    high: float
    authors: list[str]
    license: str
    bundled: str | None  # the bundled model's name


def _rdf(about: _About, weights: dict[str, Any]) -> dict[str, Any]:
    from napari_unet import __version__

    title, meta, net, classes = about.title, about.meta, about.net, about.classes
    sizes, low, high, bundled = about.sizes, about.low, about.high, about.bundled
    cfg = net.config
    channel_names = [f"channel{i}" for i in range(cfg.input_channels)]
    space_in = {"min": sizes["min"], "step": sizes["step"]}
    out_axis = {
        "type": "space",
        "size": {"tensor_id": "raw", "axis_id": None, "offset": sizes["offset"]},
    }
    out_axes = []
    for axis in ("y", "x"):
        a = dict(out_axis, id=axis, size=dict(out_axis["size"], axis_id=axis))
        if sizes["halo"]:
            a["halo"] = sizes["halo"]
        out_axes.append(a)
    cite = [UNET_CITATION]
    if bundled:
        cite.append(BBBC038_CITATION)
    diameter = meta.object_diameter
    description = (
        f"2D U-Net (depth {cfg.depth}, {cfg.base_filters} base filters) that predicts "
        f"{', '.join(classes)} probabilities for instance segmentation; trained with "
        f"napari-unet {meta.package_version or __version__}."
    )
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": title,
        "description": description[:1024],
        "authors": [{"name": a} for a in about.authors],
        "cite": cite,
        "license": about.license,
        "documentation": "README.md",
        "covers": ["cover.png"],
        "tags": [
            "unet",
            "segmentation",
            "instance-segmentation",
            "2d",
            "fluorescence-light-microscopy",
            "keras",
            "tensorflow",
            "napari-unet",
        ]
        + (["nuclei"] if bundled == "nuclei" else []),
        "version": "1.0",
        "inputs": [
            {
                "id": "raw",
                "description": "image, channels last; any size min + n * step",
                "axes": [
                    {"type": "batch"},
                    {"type": "space", "id": "y", "size": space_in},
                    {"type": "space", "id": "x", "size": space_in},
                    {"type": "channel", "channel_names": channel_names},
                ],
                "test_tensor": {"source": "test_input.npy"},
                "data": {"type": "float32"},
                "preprocessing": [
                    {
                        "id": "scale_range",
                        "kwargs": {
                            "axes": ["y", "x"],
                            "min_percentile": low,
                            "max_percentile": high,
                        },
                    }
                ],
            }
        ],
        "outputs": [
            {
                "id": "probabilities",
                "description": "softmax probabilities: " + ", ".join(classes),
                "axes": [
                    {"type": "batch"},
                    *out_axes,
                    {"type": "channel", "channel_names": [_channel_id(c) for c in classes]},
                ],
                "test_tensor": {"source": "test_output.npy"},
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": weights,
        "config": {
            "napari_unet": {
                "version": __version__,
                "architecture": cfg.to_dict(),
                "normalization": net.normalization,
                "classes": classes,
                "postprocessing": _postprocessing(net),
                "object_diameter": diameter,
                "mask_diameter": meta.mask_diameter,
                "width_measure": meta.width_measure or WIDTH_MEASURES[0],
                "colour_reading": meta.colour_reading or COLOUR_READINGS[0],
                "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
        },
    }


def _channel_id(name: str) -> str:
    return name.replace(" ", "_")


def _postprocessing(net) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(net.postprocessing)


def _documentation(about: _About, result: ExportResult) -> str:
    title, meta, net, classes = about.title, about.meta, about.net, about.classes
    sizes, low, high, halo = about.sizes, about.low, about.high, about.sizes["halo"]
    pp = _postprocessing(net)
    diameter = meta.object_diameter
    runs = meta.training_runs or []
    data_lines = []
    for run in runs:
        for d in run.get("data", []):
            data_lines.append(f"- {d.get('name', 'image')}")
    weights = ", ".join(result.weight_formats)
    skipped = "".join(f"\n- {fmt}: not included ({why})" for fmt, why in result.skipped.items())
    n_classes = net.config.n_object_classes
    class_note = (
        f"\nThe network tells {n_classes} object classes apart ({', '.join(classes[1:-1])}): "
        "an object pixel is one whose total object probability (the sum over the object "
        "classes) passes the threshold, and each instance takes the object class whose "
        "probability, summed over its pixels, is largest.\n"
        if n_classes > 1
        else ""
    )
    size_note = (
        f"The network was trained on objects about {diameter:.0f} px wide; napari-unet "
        f"rescales each image so that its objects have that size before predicting. Other "
        f"tools run the network at the image's own scale: rescale images whose objects "
        f"are much larger or smaller first."
        if diameter
        else ""
    )
    colour_note = (
        "\nGiven a stained brightfield slide in colour (H&E, IHC), napari-unet feeds the "
        "network its haematoxylin density: the optical density `-log(I / white)` of each "
        "channel, the white being the brightest channel's 99.8th percentile, unmixed into "
        "the slide's own two stains (Macenko et al. 2009, 1st and 99th percentile angles), "
        "or where they do not show apart projected on Ruifrok and Johnston's haematoxylin "
        "vector (`skimage.color.rgb2hed`'s first channel). Other tools should give it that "
        "channel (or `rgb2hed`'s) rather than the colours' mean.\n"
        if meta.reads_stains and net.config.input_channels == 1
        else ""
    )
    return f"""# {title}

A 2D U-Net (Ronneberger et al. 2015) trained with
napari-unet {meta.package_version or ""}, an interactive U-Net plugin for
napari. {meta.description or ""}

## Input

`raw`: a 2D image with {net.config.input_channels} channel(s), axes batch, y, x, channel.
Height and width must be {sizes["min"]} + n × {sizes["step"]} pixels. Preprocessing is
`scale_range`: per image and channel, the {low} and {high} percentiles are mapped to 0
and 1 (values outside are kept, not clipped) — exactly napari-unet's own normalisation.
Large images are predicted in tiles; the output halo of {halo} px per side is the context
napari-unet itself keeps around each tile, so tiled and whole-image predictions agree.
{colour_note}
## Output

`probabilities`: softmax probabilities over {len(classes)} channels — {", ".join(classes)} —
same size as the input. The *boundary* class marks the thin line between touching
objects.

## Post-processing to instances (not part of the bioimage.io graph)

napari-unet turns the probabilities into labelled instances with a seeded watershed
(scikit-image), using this model's settings:

- foreground = `1 - P(background) > {pp.get("threshold")}`;
- confident cores = `P(object) > {pp.get("core_threshold")}` and `P(object) > P(boundary)`;
- seeds ({pp.get("seed_mode")} mode): {"the maxima of the smoothed distance transform of the cores, which must stand h = max(0.5, " + str(pp.get("split")) + " · r − 2) px above their surroundings (r: typical core radius)" if pp.get("seed_mode") == "distance" else "the connected cores themselves"};
- the seeds grow by a watershed over the foreground{" (over the boundary probability)" if pp.get("seed_mode") == "boundary" else " (over the negative distance transform)"};
- instances smaller than {pp.get("min_size")} px are dropped.
{class_note}
{size_note}

## Weights

{weights}.{skipped}
`weights.keras` is the napari-unet model file itself: `napari-unet predict --model
weights.keras` and napari-unet's *Load model…* use it as is, with its metadata.

## Training data

{chr(10).join(data_lines) or "- (not recorded)"}

## Citation

Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for Biomedical
Image Segmentation. MICCAI 2015. doi:10.1007/978-3-319-24574-4_28
"""


# ---------------------------------------------------------------------- checks
def validate_package(path: str | os.PathLike) -> str:
    """Check ``path`` against the bioimage.io spec (no inference); returns the format
    version, raises :class:`UserInputError` with the first errors."""
    from bioimageio.spec import InvalidDescr, load_description

    descr = load_description(str(path), perform_io_checks=True)
    if isinstance(descr, InvalidDescr):
        raise UserInputError(f"not a valid bioimage.io package: {_first_errors(descr)}")
    return str(descr.format_version)


def run_bioimageio_test(
    path: str | os.PathLike, weight_format: str | None = None
) -> dict[str, Any]:
    """Run ``bioimageio.core``'s own ``test_model`` on the package (offline).

    Returns ``{"status": "passed"|"failed", "details": [...]}`` with one entry per
    sub-test (name, status, errors).
    """
    path = Path(path).resolve()
    cwd = os.getcwd()
    # bioimageio.core reads KERAS_BACKEND when first imported (default "torch")
    # and then writes it into os.environ, where every later subprocess (a
    # ``napari-unet`` run, a dask worker) would inherit it and fail to import
    # Keras without torch. Our Keras runs on TensorFlow: say so while it runs,
    # and leave the environment as it was found.
    before = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    # bioimageio.core unpacks SavedModel weights into the working directory
    try:
        from bioimageio.core import test_model

        with tempfile.TemporaryDirectory(prefix="napari-unet-bioimageio-test-") as tmp:
            os.chdir(tmp)
            try:
                summary = test_model(str(path), weight_format=weight_format)
            finally:
                os.chdir(cwd)
    finally:
        if before is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = before
    details = []
    for d in summary.details:
        details.append(
            {
                "name": d.name,
                "status": d.status,
                "errors": [str(e.msg) for e in d.errors],
            }
        )
    return {"status": summary.status, "details": details}


def _first_errors(descr) -> str:
    try:
        errors = [
            f"{'.'.join(map(str, e.loc))}: {e.msg}"
            for d in descr.validation_summary.details
            for e in d.errors
        ]
        return "; ".join(errors[:3]) or "invalid"
    except Exception:  # noqa: BLE001 - summary layout differs between versions
        return "invalid"


def read_package_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``rdf.yaml`` of a package as a dict (no bioimage.io libraries needed)."""
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(io.TextIOWrapper(z.open("rdf.yaml"), encoding="utf-8"))


__all__ = [
    "ExportResult",
    "export_bioimageio",
    "read_package_metadata",
    "run_bioimageio_test",
    "validate_package",
]
