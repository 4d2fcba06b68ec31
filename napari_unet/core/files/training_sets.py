"""The *training-set folder*: images, their annotations and the model, in one folder.

::

    my_set/
      napari-unet-training-set.json   # the index: pairs, layer looks, model file
      images/00_nuclei.tif
      annotations/00_nuclei.tif
      model.keras                     # the current model (optional)

Qt-free and TensorFlow-free (a model in memory is saved through its own ``save``).
Writing is atomic (:class:`~napari_unet.core.files.outputs.AtomicWrite`): a new set is built in a
temporary folder renamed into place; saving into an existing set writes each file of the
set beside its target and renames them all at the end, the index last. The layer looks
(``image_layer``, ``annotation_layer``) are plain JSON objects here; what they hold is
napari's business (:mod:`napari_unet._layers`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .outputs import AtomicWrite, check_free_space, os_error_message

INDEX_NAME = "napari-unet-training-set.json"
FORMAT = "napari-unet-training-set"
FORMAT_VERSION = 1
MODEL_NAME = "model.keras"
#: An index larger than this is refused unread.
MAX_INDEX_BYTES = 16_000_000


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

    Saving into an existing training set replaces only what this tool wrote there;
    other files in the folder are kept.

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
        No pairs, ``path`` is an existing file or a folder that is not a training set,
        not enough free space, or the disk refused the files (said in plain words;
        nothing is left half-written).
    """
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
    existing = target.is_dir()
    if existing:
        for sub in ("images", "annotations"):
            member = target / sub
            if member.is_symlink() or (member.exists() and not member.is_dir()):
                raise UserInputError(
                    f"{member} is not a plain folder inside the training set; "
                    "choose a new name for the training set"
                )
    index = _plan(entries, model is not None or model_file is not None, model_name)
    members = _members(index)
    # refuse before writing a byte (a set is written beside the old one, then renamed)
    check_free_space(
        target if existing else parent,
        _bytes_needed(entries, model, model_file),
        f"the training set {target.name}",
    )
    try:
        _write_set(target, existing, index, members, entries, model, model_file)
    except OSError as e:
        raise UserInputError(
            f"could not save the training set to {target} ({os_error_message(e)}); nothing "
            "was changed there and your layers are untouched: save it somewhere else"
        ) from None
    return [str(target / rel) for rel in [INDEX_NAME, *members]]


def _bytes_needed(entries: list[Entry], model: Any, model_file: Any) -> int:
    """About how many bytes a set of ``entries`` and its model takes on disk."""
    total = 0
    for e in entries:
        ann = np.asarray(e.annotation)
        # annotations are stored as 8 or 16 bits (counted without reading them)
        total += int(np.asarray(e.image).nbytes) + int(ann.size) * min(ann.dtype.itemsize, 2)
        total += 64 * 1024  # TIFF headers, the index
    if model_file is not None:
        try:
            total += os.path.getsize(model_file)
        except OSError:
            pass
    elif model is not None:
        try:  # float32 weights in a zip
            total += 4 * int(model.keras_model.count_params()) + 256 * 1024
        except Exception:  # noqa: BLE001 - a model of another kind: its size is unknown
            pass
    return total


def _write_set(target, existing, index, members, entries, model, model_file) -> None:
    """Write the planned set into ``target`` (see :func:`write_training_set`)."""
    if existing:
        old = _listed_files(target)
        for sub in ("images", "annotations"):
            (target / sub).mkdir(exist_ok=True)
        # the index last: a set is replaced only once all its files are in place
        with AtomicWrite(*(target / rel for rel in members), target / INDEX_NAME) as temps:
            paths = dict(zip(members, temps[:-1], strict=True))
            _write(paths, temps[-1], index, entries, model, model_file)
        for rel in sorted(old - set(members)):
            stale = target / rel
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
    else:
        with AtomicWrite(target, folder=True) as (tmp,):
            (tmp / "images").mkdir()
            (tmp / "annotations").mkdir()
            paths = {rel: tmp / rel for rel in members}
            _write(paths, tmp / INDEX_NAME, index, entries, model, model_file)


def _plan(entries: list[Entry], with_model: bool, model_name: str) -> dict[str, Any]:
    """The index of a set holding ``entries``: its file names and the layer looks."""
    index: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": _package_version(),
        "pairs": [],
        "model": MODEL_NAME if with_model else None,
    }
    if with_model:
        index["model_name"] = model_name
    used: set[str] = set()
    for i, e in enumerate(entries):
        if np.asarray(e.annotation).dtype.kind not in "ui":
            raise UserInputError(f"{e.name}: the annotation must hold integer labels")
        stem = f"{i:02d}_{_slug(e.name)}"
        while stem in used:
            stem += "_"
        used.add(stem)
        index["pairs"].append(
            {
                "name": e.name,
                "image": f"images/{stem}.tif",
                "annotation": f"annotations/{stem}.tif",
                "image_layer": e.image_props,
                "annotation_layer": e.annotation_props,
            }
        )
    return index


def _members(index: dict[str, Any]) -> list[str]:
    """The files of a set besides its index, relative to its folder."""
    rels = [pair[k] for pair in index["pairs"] for k in ("image", "annotation")]
    return rels + ([MODEL_NAME] if index["model"] else [])


def _write(
    paths: dict[str, Path],
    index_path: Path,
    index: dict[str, Any],
    entries: list[Entry],
    model: Any,
    model_file: Any,
) -> None:
    """Write the files of the set planned in ``index``, each to ``paths[its name]``."""
    import tifffile

    for e, pair in zip(entries, index["pairs"], strict=True):
        ann = np.asarray(e.annotation)
        ann = ann.astype(np.uint8 if ann.max(initial=0) < 256 else np.uint16, copy=False)
        tifffile.imwrite(paths[pair["image"]], np.asarray(e.image))
        tifffile.imwrite(paths[pair["annotation"]], ann)
    if model is not None:
        model.save(paths[MODEL_NAME])
    elif model_file is not None:
        shutil.copyfile(model_file, paths[MODEL_NAME])
    index_path.write_text(json.dumps(index, indent=2), encoding="utf-8")


def _listed_files(folder: Path) -> set[str]:
    """Relative paths of the files an existing set's index names (ours to replace)."""
    try:
        index = _read_index(folder)
    except UserInputError:
        return set()
    names = set()
    for pair in index.get("pairs") or []:
        if isinstance(pair, dict):
            names.update(v for k, v in pair.items() if k in ("image", "annotation"))
    if index.get("model") == MODEL_NAME:
        names.add(MODEL_NAME)
    return {n for n in names if isinstance(n, str) and _is_plain_relative(n)}


@dataclass
class TrainingSet:
    """A training-set folder as read back."""

    folder: Path
    entries: list[Entry]
    model_path: Path | None
    model_name: str = ""


def _is_plain_relative(rel: str) -> bool:
    """A relative path that stays where it is (no ``..``, no drive, no root)."""
    from pathlib import PurePosixPath, PureWindowsPath

    if not rel or "\\" in rel or "\x00" in rel:
        return False
    pp = PurePosixPath(rel)
    return not pp.is_absolute() and not PureWindowsPath(rel).drive and ".." not in pp.parts


def _member(folder: Path, rel: Any, what: str) -> Path:
    """The file ``rel`` names inside ``folder``, refusing anything that leads outside."""
    if not isinstance(rel, str) or not _is_plain_relative(rel):
        raise UserInputError(
            f"{folder.name}: the index names {what} {str(rel)[:80]!r} outside the training "
            "set; a training set may only use files inside its own folder"
        )
    path = folder / rel
    try:
        inside = path.resolve(strict=True).is_relative_to(folder.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, or a symbolic-link loop
        raise UserInputError(f"{folder.name}: {what} {rel} is missing") from None
    if not inside:
        raise UserInputError(
            f"{folder.name}: {what} {rel} is a link that leads outside the training set; "
            "a training set may only use files inside its own folder"
        )
    if not path.is_file():
        raise UserInputError(f"{folder.name}: {what} {rel} is not a file")
    return path


def _read_index(folder: Path) -> dict[str, Any]:
    index_path = folder / INDEX_NAME
    try:
        if index_path.stat().st_size > MAX_INDEX_BYTES:
            raise UserInputError(f"{folder.name}: the training-set index is implausibly large")
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        if isinstance(e, UserInputError):
            raise
        raise UserInputError(
            f"{folder.name}: the training-set index {INDEX_NAME} cannot be read ({type(e).__name__})"
        ) from None
    if not isinstance(index, dict):
        raise UserInputError(f"{folder.name}: the training-set index is damaged (not an object)")
    return index


def _damaged(folder: Path, what: str) -> UserInputError:
    return UserInputError(
        f"{folder.name}: the training-set index {INDEX_NAME} is damaged ({what}); save the "
        "training set again from napari, or fix the file"
    )


def read_training_set(path: str | os.PathLike) -> TrainingSet:
    """Read a training-set folder (or its index file), only ever inside the folder.

    Raises
    ------
    UserInputError
        Not a training set, a newer format, a damaged index, a path that leads outside
        the folder, or a missing/unreadable member file.
    """
    import tifffile

    p = Path(path)
    folder = p.parent if p.name == INDEX_NAME else p
    if not is_training_set(folder):
        raise UserInputError(f"{folder} is not a napari-unet training set")
    index = _read_index(folder)
    version = index.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _damaged(folder, f"format_version {str(version)[:20]!r}")
    if version > FORMAT_VERSION:
        raise UserInputError(
            f"{folder.name} was written by a newer napari-unet; update napari-unet to open it"
        )
    pairs = index.get("pairs", [])
    if not isinstance(pairs, list):
        raise _damaged(folder, "'pairs' is not a list")
    entries = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict) or not all(k in pair for k in ("image", "annotation")):
            raise _damaged(folder, f"pair {i + 1} lacks its image or annotation")
        name = pair.get("name")
        name = name if isinstance(name, str) and name else f"image {i + 1}"
        files = [_member(folder, pair[k], k) for k in ("image", "annotation")]
        arrays = []
        for f in files:
            try:
                arrays.append(tifffile.imread(f))
            except MemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - never echo the file's bytes
                raise UserInputError(
                    f"{folder.name}: cannot read {f.relative_to(folder)} of {name!r} as a "
                    f"TIFF image ({type(e).__name__})"
                ) from None
        props = [pair.get(k) for k in ("image_layer", "annotation_layer")]
        entries.append(
            Entry(
                name, arrays[0], arrays[1], *[dict(v) if isinstance(v, dict) else {} for v in props]
            )
        )
    model = index.get("model")
    model_path = None
    missing = isinstance(model, str) and _is_plain_relative(model)
    missing = missing and not os.path.lexists(folder / model)
    if model and not missing:  # a model file deleted by hand: the set opens without it
        model_path = _member(folder, model, "model")
    model_name = index.get("model_name")
    return TrainingSet(
        folder, entries, model_path, model_name if isinstance(model_name, str) else ""
    )
