"""The *training-set folder*: images, their annotations and the model, in one folder.

::

    my_set/
      napari-unet-training-set.json   # the index: pairs, layer looks, model file
      images/00_nuclei.tif
      annotations/00_nuclei.tif
      model.keras                     # the current model (optional)

Qt-free and TensorFlow-free (a model in memory is saved through its own ``save``).
Writing is atomic: everything goes into a temporary folder that is renamed into place.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import UserInputError

INDEX_NAME = "napari-unet-training-set.json"
FORMAT = "napari-unet-training-set"
FORMAT_VERSION = 1
MODEL_NAME = "model.keras"

#: Image layer properties kept in the index (plain JSON values only).
IMAGE_KEYS = (
    "rgb",
    "scale",
    "translate",
    "colormap",
    "contrast_limits",
    "gamma",
    "blending",
    "opacity",
    "visible",
)
ANNOTATION_KEYS = ("scale", "translate", "opacity", "visible")


@dataclass
class Entry:
    """One image with its annotation, and how their layers looked."""

    name: str
    image: np.ndarray
    annotation: np.ndarray
    image_props: dict[str, Any] = field(default_factory=dict)
    annotation_props: dict[str, Any] = field(default_factory=dict)


def is_training_set(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a training-set folder (or its index file)."""
    p = Path(path)
    index = p if p.name == INDEX_NAME else p / INDEX_NAME
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a layer property (or ``None`` to skip it)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str):  # colormaps, enums
        return name
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return arr.tolist()


def props_from_meta(meta: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for key in keys:
        if key in meta:
            v = _plain(meta[key])
            if v is not None:
                out[key] = v
    return out


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return s[:60] or "image"


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("napari-unet")
    except Exception:  # noqa: BLE001 - source tree
        return "0+unknown"


def write_training_set(
    path: str | os.PathLike,
    entries: list[Entry],
    model: Any = None,
    model_file: str | os.PathLike | None = None,
    model_name: str = "",
) -> list[str]:
    """Write ``entries`` and the model into the folder ``path``.

    Parameters
    ----------
    entries
        The image/annotation pairs.
    model, model_file
        The model: a :class:`~napari_unet.core.UNet` in memory (saved) or a model file
        (copied); neither: the set has no model.

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    UserInputError
        No pairs, or ``path`` is an existing file or a folder that is not a training set.
    """
    import tifffile

    target = Path(path)
    if not entries:
        raise UserInputError("nothing to save: no image has an annotation layer")
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target} is a file; choose a folder name for the training set")
    if target.is_dir() and any(target.iterdir()) and not is_training_set(target):
        raise UserInputError(
            f"{target} is a folder that is not a napari-unet training set; choose a new name"
        )
    parent = target.parent
    if not parent.is_dir():
        raise UserInputError(f"folder does not exist: {parent}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "annotations").mkdir()
        index: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "package_version": _package_version(),
            "pairs": [],
            "model": None,
        }
        used: set[str] = set()
        for i, e in enumerate(entries):
            stem = f"{i:02d}_{_slug(e.name)}"
            while stem in used:
                stem += "_"
            used.add(stem)
            ann = np.asarray(e.annotation)
            if ann.dtype.kind not in "ui":
                raise UserInputError(f"{e.name}: the annotation must hold integer labels")
            ann = ann.astype(np.uint8 if ann.max(initial=0) < 256 else np.uint16, copy=False)
            tifffile.imwrite(tmp / "images" / f"{stem}.tif", np.asarray(e.image))
            tifffile.imwrite(tmp / "annotations" / f"{stem}.tif", ann)
            index["pairs"].append(
                {
                    "name": e.name,
                    "image": f"images/{stem}.tif",
                    "annotation": f"annotations/{stem}.tif",
                    "image_layer": e.image_props,
                    "annotation_layer": e.annotation_props,
                }
            )
        if model is not None:
            model.save(tmp / MODEL_NAME)
        elif model_file is not None:
            shutil.copyfile(model_file, tmp / MODEL_NAME)
        if model is not None or model_file is not None:
            index["model"] = MODEL_NAME
            index["model_name"] = model_name
        (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2), encoding="utf-8")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            old.rmdir()
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = [str(target / INDEX_NAME)]
    for pair in index["pairs"]:
        written += [str(target / pair["image"]), str(target / pair["annotation"])]
    if index["model"]:
        written.append(str(target / MODEL_NAME))
    return written


@dataclass
class TrainingSet:
    """A training-set folder as read back."""

    folder: Path
    entries: list[Entry]
    model_path: Path | None
    model_name: str = ""


def read_training_set(path: str | os.PathLike) -> TrainingSet:
    """Read a training-set folder (or its index file).

    Raises
    ------
    UserInputError
        Not a training set, a newer format, or a missing/unreadable member file.
    """
    import tifffile

    p = Path(path)
    folder = p.parent if p.name == INDEX_NAME else p
    if not is_training_set(folder):
        raise UserInputError(f"{folder} is not a napari-unet training set")
    index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    if int(index.get("format_version", 0)) > FORMAT_VERSION:
        raise UserInputError(
            f"{folder.name} was written by a newer napari-unet; update napari-unet to open it"
        )
    entries = []
    for pair in index.get("pairs", []):
        try:
            image = tifffile.imread(folder / pair["image"])
            ann = tifffile.imread(folder / pair["annotation"])
        except (OSError, KeyError, ValueError) as e:
            raise UserInputError(f"{folder.name}: cannot read {pair.get('name')!r} ({e})") from None
        entries.append(
            Entry(
                pair["name"],
                image,
                ann,
                dict(pair.get("image_layer") or {}),
                dict(pair.get("annotation_layer") or {}),
            )
        )
    model = index.get("model")
    model_path = folder / model if model and (folder / model).is_file() else None
    return TrainingSet(folder, entries, model_path, index.get("model_name") or "")
