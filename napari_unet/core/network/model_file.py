"""One shareable ``.keras`` file per model, its metadata inside.

Saving writes the Keras archive to a temporary file beside the target, adds
``napari_unet.json`` (architecture, channels, classes, normalisation, patch size,
training history and data, package version) and renames it into place
(:class:`~napari_unet.core.files.outputs.AtomicWrite`), so a crash never leaves a half-written model.

Loading never deserialises anything executable: the file's own ``config.json`` is only
*inspected* (a layer outside the U-Net's vocabulary, a ``Lambda`` above all, makes the
file refused), the network is rebuilt from our metadata and only the weight arrays are
read from the archive.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from ..config import COLOUR_READINGS, MAX_SCALE, MIN_SCALE, WIDTH_MEASURES
from ..errors import DefaultModelMissing, ModelFileError, UserInputError
from .metadata import ModelMetadata

METADATA_NAME = "napari_unet.json"
FORMAT = "napari-unet-model"
#: The shape of the metadata JSON (:class:`ModelMetadata`'s fields, flat). Files of this
#: version and older are read; bump it only when the JSON written changes shape (and
#: migrate the older shapes in :meth:`ModelMetadata.from_dict`).
FORMAT_VERSION = 1
#: Metadata and Keras config larger than this are refused unread (a compressed "JSON
#: bomb" would otherwise inflate to gigabytes in memory).
MAX_JSON_BYTES = 16_000_000


#: Where the models that come with napari-unet are.
BUNDLED_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
#: The models that come with napari-unet, by the name a person gives them
#: (``--model nuclei``): the generalist (the default) and the older nuclei model.
BUNDLED_MODELS: dict[str, Path] = {
    "generalist": BUNDLED_MODELS_DIR / "generalist.keras",
    "nuclei": BUNDLED_MODELS_DIR / "default_nuclei.keras",
}
#: The bundled model used when none is named.
DEFAULT_MODEL_NAME = "generalist"
#: The bundled default model's file.
DEFAULT_MODEL_PATH = BUNDLED_MODELS[DEFAULT_MODEL_NAME]


def bundled_model_path(name: str) -> Path:
    """The file of the bundled model called ``name`` (``"generalist"``, ``"nuclei"``);
    it may be missing (see :func:`bundled_model_missing`).

    Raises
    ------
    UserInputError
        ``name`` is not a bundled model's name (the message lists them).
    """
    if name not in BUNDLED_MODELS:
        raise UserInputError(
            f"{name!r} is neither a model file nor a bundled model; the bundled models are "
            f"{_bundled_names()}"
        )
    return BUNDLED_MODELS[name]


def _bundled_names() -> str:
    names = [f"{n} (the default)" if n == DEFAULT_MODEL_NAME else n for n in BUNDLED_MODELS]
    return ", ".join(names)


def bundled_model_name(path: str | os.PathLike) -> str | None:
    """The name of the bundled model whose file ``path`` is, else ``None``."""
    for name, bundled in BUNDLED_MODELS.items():
        try:
            if os.path.samefile(path, bundled):
                return name
        except OSError:  # either is missing
            continue
    return None


def named_model_path(text: str | os.PathLike) -> Path:
    """The model file a person named: a file that exists (whatever it is called), else
    the bundled model of that name (``"default"``: :func:`default_model_path`).

    A word that is neither (no folder, no suffix) is refused with the bundled models'
    names; anything that looks like a path is returned as it is, for
    :func:`read_metadata` to say that it is missing.

    Raises
    ------
    UserInputError
        An unknown name.
    ModelFileError
        A bundled model that is not installed (:class:`DefaultModelMissing` for the
        default).
    """
    path, word = Path(text), str(text)
    named = word in BUNDLED_MODELS or word == "default"
    if path.exists() or (not named and _looks_like_a_path(word)):
        return path
    if word == "default":
        path = default_model_path()
        if not path.exists():
            raise default_model_missing()
        return path
    path = bundled_model_path(word)
    if not path.exists():
        raise bundled_model_missing(word)
    return path


def _looks_like_a_path(text: str) -> bool:
    """A folder or a suffix in it: meant as a file, not as a bundled model's name."""
    return Path(text).suffix != "" or os.sep in text or "/" in text or text in ("", ".", "..")


def default_model_path() -> Path:
    """The default model: the bundled generalist, or the file ``NAPARI_UNET_DEFAULT_MODEL``
    names (a facility can point every user at a shared, fine-tuned model)."""
    return Path(os.environ.get("NAPARI_UNET_DEFAULT_MODEL") or DEFAULT_MODEL_PATH)


def default_model_installed() -> bool:
    """Whether the default model file is there."""
    return default_model_path().exists()


def default_model_missing() -> DefaultModelMissing:
    """The one message for a default model that is not there (front ends add how to
    name another model)."""
    return bundled_model_missing(DEFAULT_MODEL_NAME, default_model_path())


def bundled_model_missing(name: str, path: str | os.PathLike | None = None) -> ModelFileError:
    """The message for a bundled model whose file is not there (a
    :class:`DefaultModelMissing` for the default)."""
    path = path or BUNDLED_MODELS[name]
    default = name == DEFAULT_MODEL_NAME
    kind = DefaultModelMissing if default else ModelFileError
    return kind(
        f"the bundled {name} model{' (the default)' if default else ''} is not installed "
        f"({path} is missing)"
    )


def save_keras_with_metadata(keras_model, path: str | os.PathLike, metadata: ModelMetadata) -> Path:
    """Atomically write ``keras_model`` and ``metadata`` to ``path`` (``.keras``)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"model files end in .keras: {path.name}")
    if not path.parent.exists():
        raise ModelFileError(f"folder does not exist: {path.parent}")
    import numpy as np

    if not all(np.isfinite(w).all() for w in keras_model.get_weights()):
        raise ModelFileError(
            f"not saving {path.name}: the model's weights are not finite numbers (training "
            "diverged); train again with a lower learning rate"
        )
    meta = metadata.to_dict()
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    from ..files.outputs import AtomicWrite

    with AtomicWrite(path) as (tmp,):
        keras_model.save(str(tmp))
        with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(METADATA_NAME, json.dumps(meta, indent=1, default=_json_default))
    return path


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _foreign_parts(config) -> list[str]:
    """Names of everything in a Keras config outside the U-Net's vocabulary."""
    from .architecture import ALLOWED_LAYER_CLASSES

    bad: set[str] = set()

    def walk(obj, is_layer: bool) -> None:
        if isinstance(obj, dict):
            module = obj.get("module")
            if isinstance(module, str) and not module.startswith("keras"):
                bad.add(f"{obj.get('class_name', '?')} from {module}")
            name = obj.get("class_name")
            if is_layer and isinstance(name, str) and name not in ALLOWED_LAYER_CLASSES:
                bad.add(name)
            if name in ("Lambda", "TFOpLambda", "SlicingOpLambda") or "function" in obj:
                bad.add(str(name))
            for key, v in obj.items():
                if key != "compile_config":  # never deserialised by napari-unet
                    walk(v, key == "layers")
        elif isinstance(obj, list):
            for v in obj:
                if is_layer:
                    walk(v, True)
                    continue
                walk(v, False)

    if not isinstance(config, dict):
        return ["(unreadable config)"]
    walk(config, True)
    return sorted(bad)


#: The member of a bioimage.io package that napari-unet exported which is the model file
#: itself (:mod:`~napari_unet.core.files.bioimageio`).
PACKAGE_MODEL = "weights.keras"
#: The package descriptions bioimage.io packages hold, one of them at the top.
PACKAGE_DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")
#: A model inside a package larger than this is refused unread (a U-Net file is a few
#: to a few hundred megabytes).
MAX_PACKAGED_MODEL_BYTES = 2_000_000_000


#: The model files taken out of packages in this process, by the package's path, size
#: and modification time: a package is read once however often it is loaded or checked.
_taken: dict[tuple[str, int, int], Path] = {}


def package_cache() -> Path:
    """Where models taken out of bioimage.io packages are kept: the user's cache folder
    (``~/.cache/napari-unet/packages`` on Linux)."""
    from platformdirs import user_cache_path

    return user_cache_path("napari-unet") / "packages"


def keras_file(path: str | os.PathLike) -> Path:
    """The napari-unet model file ``path`` names: ``path`` itself, or, for a bioimage.io
    package napari-unet exported (a ``.zip`` with ``rdf.yaml`` and ``weights.keras``),
    the model file inside it, taken out once into :func:`package_cache` (a folder per
    content, so a colleague's package and the next version of it never mix) and named
    after the package. The package itself is only read.

    Raises
    ------
    ModelFileError
        A bioimage.io package without a napari-unet model in it (another tool's model:
        napari-unet runs only its own), or a damaged one.
    """
    import hashlib
    import threading

    path = Path(path)
    if path.suffix.lower() != ".zip" or not path.is_file():
        return path
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _taken and _taken[key].is_file():
        return _taken[key]
    if not zipfile.is_zipfile(path):
        return path
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not names & set(PACKAGE_DESCRIPTIONS):
                return path  # not a package: read_metadata says what it is
            if PACKAGE_MODEL not in names:
                raise ModelFileError(
                    f"{path.name} is a bioimage.io package without a napari-unet model in it "
                    f"(no {PACKAGE_MODEL}); napari-unet runs the models it trained or exported"
                )
            info = z.getinfo(PACKAGE_MODEL)
            if info.file_size > MAX_PACKAGED_MODEL_BYTES:
                raise ModelFileError(
                    f"{path.name}: its {PACKAGE_MODEL} is implausibly large "
                    f"({info.file_size / 1e9:.1f} GB); refusing to read it"
                )
            data = z.read(PACKAGE_MODEL)
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path.name} is damaged: {e}") from None
    folder = package_cache() / hashlib.sha256(data).hexdigest()[:16]
    target = folder / f"{path.stem}.keras"
    if target.is_file() and target.stat().st_size == len(data):
        _taken[key] = target
        return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{target.name}.{os.getpid()}.{threading.get_ident()}.part"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)  # whole or not at all, whoever takes it out at once
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(
            f"could not take the model out of {path.name} into {folder}: {e.strerror or e}"
        ) from None
    _taken[key] = target
    return target


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Check that ``path`` is a napari-unet model and return its metadata (files of
    every format version up to :data:`FORMAT_VERSION`, migrated). A bioimage.io package
    napari-unet exported is read as the model file inside it (:func:`keras_file`).

    Raises
    ------
    ModelFileError
        Missing file, not a Keras archive, not a napari-unet model, or a model that
        carries code (a ``Lambda`` or any layer outside the U-Net vocabulary).
    """
    path = Path(path)
    inner = keras_file(path)
    if inner != path:
        try:
            return read_metadata(inner)
        except ModelFileError as e:
            raise ModelFileError(f"{path.name} (its {PACKAGE_MODEL}): {e}") from None
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file (.keras)")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path.name} is not a napari-unet model (not a .keras archive)")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if METADATA_NAME not in names:
                raise ModelFileError(
                    f"{path.name} is a Keras file but not a napari-unet model "
                    f"(no {METADATA_NAME} inside); train or export it with napari-unet"
                )
            for member in (METADATA_NAME, "config.json"):
                if member in names and z.getinfo(member).file_size > MAX_JSON_BYTES:
                    raise ModelFileError(
                        f"{path.name}: {member} is implausibly large "
                        f"({z.getinfo(member).file_size / 1e6:.0f} MB); refusing to read it"
                    )
            meta = json.loads(z.read(METADATA_NAME))
            config = json.loads(z.read("config.json")) if "config.json" in names else None
            if "model.weights.h5" not in names:
                raise ModelFileError(f"{path.name} holds no weights (model.weights.h5 missing)")
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path.name} is damaged: {e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(f"{path.name} has unreadable metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path.name} is not a napari-unet model (unknown format)")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(
            f"{path.name}: damaged metadata (format_version {version!r} is not a whole number)"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name} was written by a newer napari-unet (format "
            f"{meta.get('format_version')}); update napari-unet to load it"
        )
    if config is not None:
        bad = _foreign_parts(config)
        if bad:
            raise ModelFileError(
                f"{path.name} contains parts that could run code ({', '.join(bad)}); "
                f"refusing to load it"
            )
    for key in ("architecture", "normalization"):
        if key not in meta:
            raise ModelFileError(f"{path.name}: metadata lacks '{key}'")
    _check_metadata(meta, path.name)
    return ModelMetadata.from_dict({**meta, "format_version": version})


def _check_metadata(meta: dict[str, Any], name: str) -> None:
    """Refuse metadata that was edited into something the loader cannot use."""
    from ..config import UNetConfig
    from ..errors import UserInputError

    try:
        config = UNetConfig.from_dict(meta["architecture"])
    except (TypeError, UserInputError) as e:
        raise ModelFileError(f"{name}: damaged metadata, bad architecture ({e})") from None
    classes = meta.get("classes")
    if classes is not None and not (
        isinstance(classes, list)
        and len(classes) == config.n_outputs
        and all(isinstance(c, str) and 0 < len(c) <= 200 for c in classes)
    ):
        raise ModelFileError(
            f"{name}: damaged metadata, 'classes' must name the {config.n_outputs} outputs "
            f"(background, {config.n_object_classes} object class(es), boundary), got "
            f"{str(classes)[:60]!r}"
        )
    norm = meta["normalization"]
    ok = isinstance(norm, dict) and all(
        isinstance(norm.get(k, 0.0), int | float)
        and not isinstance(norm.get(k, 0.0), bool)
        and 0.0 <= float(norm.get(k, 0.0)) <= 100.0
        for k in ("low", "high")
    )
    if not ok:
        raise ModelFileError(
            f"{name}: damaged metadata, normalization must be an object with "
            f"percentiles 'low' and 'high' from 0 to 100, got {str(norm)[:60]!r}"
        )
    for key in ("object_diameter", "mask_diameter", "patch_size", "taught_scale", "typed_width"):
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise ModelFileError(f"{name}: damaged metadata, bad {key} {str(v)[:40]!r}")
    scale = meta.get("taught_scale")
    if scale is not None and not MIN_SCALE <= scale <= MAX_SCALE:
        raise ModelFileError(
            f"{name}: damaged metadata, taught_scale {scale!r} is outside the scales a model "
            f"can be used at ({MIN_SCALE}–{MAX_SCALE})"
        )
    measure = meta.get("width_measure")
    if measure is not None and measure not in WIDTH_MEASURES:
        raise ModelFileError(
            f"{name}: damaged metadata, width_measure {str(measure)[:40]!r} is not one of "
            f"{', '.join(WIDTH_MEASURES)}"
        )
    reading = meta.get("colour_reading")
    if reading is not None and reading not in COLOUR_READINGS:
        raise ModelFileError(
            f"{name}: damaged metadata, colour_reading {str(reading)[:40]!r} is not one of "
            f"{', '.join(COLOUR_READINGS)}"
        )
    pp = meta.get("postprocessing")
    if pp is not None and not isinstance(pp, dict):
        raise ModelFileError(f"{name}: damaged metadata, bad postprocessing {str(pp)[:40]!r}")


def _keras_class(layer) -> type:
    """The Keras class a layer is saved as: our fused layers subclass the plain ones
    and hold the same variables."""
    for cls in type(layer).__mro__:
        if cls.__module__.startswith("keras."):
            return cls
    return type(layer)


def read_weights(path: str | os.PathLike, model) -> list | None:
    """The weights of the model file ``path`` in the order of ``model.get_weights()``,
    read straight from its ``model.weights.h5`` (no Keras twin to build and fill), or
    ``None`` when the file is not laid out as ``model`` expects (then Keras reads it).

    Keras names each layer's group after its class (``conv2d``, ``conv2d_1``, … in the
    order of ``model.layers``) and numbers its variables in the layer's own order.
    """
    import io as _io
    import re

    import h5py
    import numpy as np

    def snake(name: str) -> str:
        name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
        return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()

    try:
        with zipfile.ZipFile(path) as z:
            data = z.read("model.weights.h5")
        out, used = [], {}
        with h5py.File(_io.BytesIO(data), "r") as f:
            groups = f["layers"]
            if len(groups) != len(model.layers):
                return None
            for layer in model.layers:
                base = snake(_keras_class(layer).__name__)
                name = base if base not in used else f"{base}_{used[base] + 1}"
                used[base] = used.get(base, -1) + 1
                stored = groups[name]["vars"] if name in groups else None
                wanted = layer.weights
                if stored is None or len(stored) != len(wanted):
                    return None
                for i, var in enumerate(wanted):
                    value = np.asarray(stored[str(i)])
                    if value.shape != tuple(var.shape):
                        return None
                    out.append(value)
        return out
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None
