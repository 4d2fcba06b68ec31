"""Everything napari-unet writes, and the rules outputs follow (Qt-free, TensorFlow-free).

- :class:`AtomicWrite`, the one "temporary file beside the target, then rename" that
  every output uses (TIFF outputs, model files, training-set folders, bioimage.io
  packages), and on it :func:`write_tiffs_atomic`, :func:`write_prediction` and
  :class:`BlockwiseTiffs` (large outputs through
  :class:`~napari_unet.core.files.images.RowMappedArray`);
- the output rules: a free-space check before work starts (:func:`check_free_space`),
  the TIFF ``Software`` tag that marks what this tool wrote (:func:`refuse_to_replace`
  keeps everything else), plain words for the operating system's errors
  (:func:`os_error_message`).

Reading is in :mod:`~napari_unet.core.files.images`.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from .images import ZARR_SUFFIXES, RowMappedArray


def labels_dtype(labels: np.ndarray) -> np.dtype:
    """``uint16`` when the ids fit, else ``uint32``."""
    top = int(np.max(labels, initial=0))
    if top <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if top <= np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    raise UserInputError(f"too many labels to store ({top})")


def os_error_message(e: OSError) -> str:
    """What an operating-system error means for the person, in one line, with what to
    do (permissions, a full or read-only disk)."""
    import re

    where = f": {e.filename}" if getattr(e, "filename", None) else ""
    if e.errno is None and re.search(r"requested and \d+ written", str(e)):
        return "no space left on device; free some disk space or write elsewhere"
    hint = {
        errno.EACCES: "; check the permissions or choose another folder",
        errno.EPERM: "; check the permissions or choose another folder",
        errno.ENOSPC: "; free some disk space or write elsewhere",
        errno.EROFS: "; choose a writable folder",
        errno.EDQUOT: "; free some disk space or write elsewhere",
        errno.ENOTDIR: "; choose a folder",
        errno.ENOENT: "; choose a folder that exists",
    }.get(e.errno, "")
    return f"{e.strerror or e}{where}{hint}"


def check_output_folder(path: str | os.PathLike) -> Path:
    """Refuse an output file whose folder does not exist (or is not a folder)."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.exists():
        raise UserInputError(f"output folder does not exist: {folder}; create it first")
    if not folder.is_dir():
        raise UserInputError(f"{folder} is not a folder")
    if p.is_dir():
        raise UserInputError(f"{p} is a folder; give a file name")
    return p


def ensure_output_folder(path: str | os.PathLike) -> Path:
    """The output folder ``path``, created (with its parents) when missing."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserInputError(f"the output folder {p} is a file; give a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(
            f"cannot create the output folder {p} ({e.strerror}); choose another folder"
        ) from None
    check_writable(p)
    return p


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse a folder this process cannot create files in (checked by trying)."""
    folder = Path(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".napari-unet-write-test.", dir=folder)
    except OSError as e:
        raise UserInputError(
            f"cannot write into {folder} ({e.strerror}); choose a folder you can write to"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def check_free_space(folder: str | os.PathLike, nbytes: int, what: str = "the output") -> None:
    """Refuse to start work whose output cannot fit on the disk of ``folder``."""
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    need = int(nbytes * 1.02) + (1 << 20)
    if free < need:
        raise UserInputError(
            f"not enough disk space in {folder}: {what} needs about {need / 1e6:,.0f} MB, "
            f"{free / 1e6:,.0f} MB are free; free some space or write elsewhere"
        )


#: The TIFF ``Software`` tag of files this tool writes: such outputs may be replaced by
#: a later run; any other existing file is replaced only when the person asks.
SOFTWARE_TAG = "napari-unet"


def written_by_us(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` is a TIFF this tool wrote (its Software tag)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            software = tif.pages[0].software or ""
    except Exception:  # noqa: BLE001 - not a TIFF, unreadable: not ours
        return False
    return software.startswith(SOFTWARE_TAG)


#: The attribute that marks an OME-Zarr image this tool wrote (the zarr twin of the TIFF
#: Software tag).
ZARR_MARK = SOFTWARE_TAG


def zarr_written_by_us(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an OME-Zarr folder napari-unet wrote."""
    import json

    p = Path(path)
    for meta in (p / ".zattrs", p / "zarr.json"):
        try:
            attrs = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        attrs = attrs.get("attributes", attrs) if meta.name == "zarr.json" else attrs
        if isinstance(attrs, dict) and isinstance(attrs.get(ZARR_MARK), dict):
            return True
    return False


#: The fields of every entry of a suggestions file (``<stem>_suggestions.json``).
SUGGESTION_FIELDS = frozenset({"bbox", "score", "reason", "label"})


def suggestions_written_by_us(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a suggestions file as napari-unet writes them: a JSON list of
    ``{"bbox", "score", "reason", "label"}`` entries and nothing else (JSON has no tag)."""
    import json

    try:
        if Path(path).stat().st_size > 64 * 2**20:
            return False
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(entries, list) and all(
        isinstance(e, dict) and set(e) == SUGGESTION_FIELDS for e in entries
    )


def is_our_output(path: str | os.PathLike) -> bool:
    """An existing output this tool wrote: a TIFF with its tag, an OME-Zarr with its mark,
    a suggestions file of its form."""
    p = Path(path)
    if p.is_symlink():
        return False
    if p.is_dir():
        return p.suffix.lower() in ZARR_SUFFIXES and zarr_written_by_us(p)
    if p.suffix.lower() == ".json":
        return p.is_file() and suggestions_written_by_us(p)
    return p.is_file() and written_by_us(p)


def refuse_to_replace(paths: Sequence[str | os.PathLike], flag: str = "--overwrite") -> None:
    """Refuse outputs that exist and were not written by this tool."""
    for path in paths:
        p = Path(path)
        if os.path.lexists(p) and not is_our_output(p):
            raise UserInputError(
                f"{p} already exists and was not written by napari-unet; choose another "
                f"output folder, move the file, or add {flag} to replace it"
            )


class AtomicWrite:
    """Files (or one folder) written under hidden temporary names beside their targets,
    renamed into place together: an interrupted or failed write leaves nothing behind.

    Use it as a context manager: the body writes the temporary paths it is given; a
    normal exit renames every temporary onto its target, in the order given (so the
    last target is the one to appear last), and an exception removes them all::

        with AtomicWrite(labels_path, probability_path) as (labels_tmp, probability_tmp):
            tifffile.imwrite(labels_tmp, labels)
            ...

    Or call :meth:`commit` / :meth:`discard` when the writing outlives one block.

    A temporary keeps its target's extension (``.x.keras.1a2b.part.keras``: writers that
    go by the extension accept it) and gets the permissions a plain ``open(path, "w")``
    (or ``mkdir``) would give (``mkstemp`` makes owner-only files; outputs are shared).
    An :class:`OSError` about a temporary is raised naming its target (or, when the
    temporary cannot be created, the target's folder), never the hidden file.
    """

    def __init__(self, *targets: str | os.PathLike, folder: bool = False) -> None:
        self.targets = [Path(t) for t in targets]
        self.temps: list[Path] = []
        try:
            for target in self.targets:
                self.temps.append(_temporary_beside(target, folder))
        except BaseException as e:
            self._fail(e)
            raise

    def __enter__(self) -> list[Path]:
        return list(self.temps)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self._fail(exc)
        return False

    def commit(self) -> list[Path]:
        """Rename every temporary onto its target; returns the targets."""
        try:
            for target, tmp in zip(self.targets, self.temps, strict=True):
                _replace(tmp, target)
        except BaseException as e:
            self._fail(e)
            raise
        self.temps = []
        return self.targets

    def _fail(self, e: BaseException) -> None:
        """Remove the temporaries after ``e``; an OSError about one of them is raised
        again naming its target."""
        named = self._named(e) if isinstance(e, OSError) else e
        self.discard()
        if named is not e:
            raise named from None

    def discard(self) -> None:
        """Remove the temporaries that are still there (a temporary folder once no
        chunk write into it is in flight, see :func:`remove_folder`)."""
        for tmp in self.temps:
            if tmp.is_dir() and not tmp.is_symlink():
                remove_folder(tmp)
            elif os.path.lexists(tmp):
                tmp.unlink()
        self.temps = []

    def _named(self, e: OSError) -> OSError:
        """``e`` naming the target instead of a hidden temporary (or no file at all)."""
        if e.errno is None:
            return e
        where = None
        name = str(e.filename) if e.filename is not None else None
        for target, tmp in zip(self.targets, self.temps, strict=False):
            if name is not None and (name == str(tmp) or name.startswith(f"{tmp}{os.sep}")):
                where = target
        if where is None and name is None and len(self.targets) == 1:
            where = self.targets[0]
        if where is None and len(self.temps) < len(self.targets):  # creating a temporary
            where = self.targets[len(self.temps)].parent
        if where is None:
            return e
        return OSError(e.errno, e.strerror, str(where))


def settle_zarr_writes(timeout: float = 120.0) -> None:
    """Wait until no zarr chunk write of this process is in flight.

    zarr writes the chunks of one assignment concurrently on its own I/O thread, and
    when one fails (a full disk) the error reaches the caller while the others go on:
    writes still queued then recreate the folders a clean-up has just removed (once the
    removal has freed the disk, they succeed). So a clean-up first lets them end.
    Nothing to wait for when zarr was never used here.
    """
    import asyncio
    import sys

    sync = sys.modules.get("zarr.core.sync")
    loop = getattr(sync, "loop", [None])[0] if sync is not None else None
    if loop is None or not loop.is_running():
        return
    try:
        if asyncio.get_running_loop() is loop:  # on zarr's own thread: cannot wait here
            return
    except RuntimeError:
        pass

    async def drain() -> None:
        me = asyncio.current_task()
        while True:
            pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    try:
        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout)
    except Exception:  # noqa: BLE001 - a loop shutting down: nothing more will be written
        pass


def remove_folder(path: str | os.PathLike) -> None:
    """Remove a folder of ours (a work folder, a temporary output) and everything in
    it, once no zarr write into it is in flight (:func:`settle_zarr_writes`): nothing
    of ours stays behind after an error."""
    import shutil

    settle_zarr_writes()
    shutil.rmtree(path, ignore_errors=True)


def _replace(tmp: Path, target: Path) -> None:
    """``os.replace``, also over an existing folder (an earlier OME-Zarr output): the old
    folder is moved aside first and removed once the new one is in place."""
    import shutil

    if tmp.is_dir() and target.is_dir() and not target.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, aside / "old")
        os.replace(tmp, target)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_beside(path: Path, folder: bool) -> Path:
    """A hidden temporary file (or folder) next to ``path`` with ordinary permissions."""
    where = path.parent if str(path.parent) else Path(".")
    prefix, suffix = f".{path.name}.", ".part" + path.suffix
    if folder:
        tmp = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=where)
        mode, fd = 0o777, None
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=where)
        mode = 0o666
    try:
        os.chmod(tmp, mode & ~_umask())
    except (AttributeError, OSError):  # a file system without modes
        pass
    finally:
        if fd is not None:
            os.close(fd)
    return Path(tmp)


def write_tiffs_atomic(
    items: Sequence[tuple[str | os.PathLike, np.ndarray]],
    texts: Sequence[tuple[str | os.PathLike, str]] = (),
) -> list[Path]:
    """Write several TIFFs (with this tool's Software tag), and the text files
    ``texts`` after them, so that either all of them appear or none does."""
    import tifffile

    targets = [check_output_folder(p) for p, _ in [*items, *texts]]
    with AtomicWrite(*targets) as temps:
        for tmp, (_, array) in zip(temps, items, strict=False):
            tifffile.imwrite(tmp, np.asarray(array), software=SOFTWARE_TAG)
        for tmp, (_, text) in zip(temps[len(items) :], texts, strict=True):
            Path(tmp).write_text(text, encoding="utf-8")
    return targets


def write_tiff_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as a TIFF at ``path`` atomically (temporary file, then rename)."""
    return write_tiffs_atomic([(path, array)])[0]


# --------------------------------------------------------------------------- predictions
#: What a prediction of ``<stem>`` writes, in this order (``classes`` only for a model
#: with several object classes).
PREDICTION_SUFFIXES = {
    "labels": "_labels.tif",
    "probability": "_probability.tif",
    "classes": "_classes.tif",
}


def prediction_paths(
    out: str | os.PathLike, stem: str, n_object_classes: int = 1
) -> dict[str, Path]:
    """The files a prediction of the image ``stem`` writes into the folder ``out``:
    ``labels`` (instance ids), ``probability`` (total object probability) and, for a
    model with more than one object class, ``classes`` (class id per pixel)."""
    kinds = ["labels", "probability"] + (["classes"] if int(n_object_classes) > 1 else [])
    return {k: Path(out) / f"{stem}{PREDICTION_SUFFIXES[k]}" for k in kinds}


def class_map_dtype(n_object_classes: int) -> np.dtype:
    """``uint8`` for up to 255 classes, else ``uint16``."""
    return np.dtype(np.uint8 if int(n_object_classes) <= np.iinfo(np.uint8).max else np.uint16)


def prediction_arrays(prediction, paths: dict[str, Path]) -> list[tuple[Path, np.ndarray]]:
    """``(path, array)`` for each file of :func:`prediction_paths`, in the dtypes the
    files take: instance ids ``uint16``/``uint32``, probability ``float32``, classes
    ``uint8``/``uint16``.

    Raises
    ------
    UserInputError
        When ``paths`` asks for a class map that the prediction does not have.
    """
    arrays = {
        "labels": np.asarray(prediction.labels).astype(labels_dtype(prediction.labels)),
        "probability": np.asarray(prediction.probability, np.float32),
    }
    if "classes" in paths:
        if prediction.classes is None:
            raise UserInputError("this prediction has no class map (a one-class model)")
        n = max(1, prediction.n_object_classes)
        arrays["classes"] = np.asarray(prediction.classes).astype(class_map_dtype(n))
    return [(paths[k], arrays[k]) for k in paths]


def write_prediction(
    prediction, paths: dict[str, Path], texts: Sequence[tuple[str | os.PathLike, str]] = ()
) -> list[Path]:
    """Write a :class:`~napari_unet.core.network.unet.Prediction` to the files of
    :func:`prediction_paths` (and the text files ``texts``: its suggestions),
    atomically: all of them appear or none does."""
    return write_tiffs_atomic(prediction_arrays(prediction, paths), texts)


def _reserve(path: str, nbytes: int) -> None:
    """Allocate the disk blocks of a memory-mapped output now: on a full disk this
    fails here, with "no space left on device", instead of killing the process with
    SIGBUS when a mapped page is first written."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return  # the file system cannot reserve: write as before
        raise OSError(e.errno, e.strerror, path) from None
    finally:
        os.close(fd)


class BlockwiseTiffs:
    """Output TIFFs written block by block into temporary files, renamed into place
    together by :meth:`commit` (or removed by :meth:`discard`); as a context manager,
    committed when the block ends normally.

    ``arrays`` are :class:`RowMappedArray` objects that map only the rows being
    written, so memory stays bounded whatever the image size. The disk blocks are
    reserved up front: a full disk fails here, not with SIGBUS halfway through.
    """

    def __init__(self, items: Sequence[tuple[str | os.PathLike, tuple[int, int], np.dtype]]):
        import tifffile

        self.targets = [check_output_folder(p) for p, _, _ in items]
        self._files = AtomicWrite(*self.targets)
        self.arrays = []
        try:
            for tmp, (_, shape, dtype) in zip(self._files.temps, items, strict=True):
                mm = tifffile.memmap(
                    tmp, shape=tuple(shape), dtype=dtype, bigtiff=True, software=SOFTWARE_TAG
                )
                offset = mm.offset
                del mm
                _reserve(str(tmp), offset + int(np.prod(shape)) * np.dtype(dtype).itemsize)
                self.arrays.append(RowMappedArray(tmp, offset, shape, dtype))
        except BaseException as e:
            self._files._fail(e)
            raise

    def __enter__(self) -> BlockwiseTiffs:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return self._files.__exit__(exc_type, exc, tb)

    def commit(self) -> list[Path]:
        return self._files.commit()

    def discard(self) -> None:
        self._files.discard()
