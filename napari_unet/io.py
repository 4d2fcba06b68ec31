"""Reading and writing images and label images (Qt-free, TensorFlow-free).

TIFF goes through tifffile, PNG/JPEG through imageio. Every problem a user can cause
(missing file, unsupported format, a file that is not an image, float labels) raises
:class:`~napari_unet.core.errors.UserInputError` with a message that says what to do.
Writing is atomic: a temporary file in the target folder is renamed into place, so an
interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .core.errors import UserInputError

TIFF_SUFFIXES = (".tif", ".tiff")
OTHER_SUFFIXES = (".png", ".jpg", ".jpeg")
ZARR_SUFFIXES = (".zarr",)
IMAGE_SUFFIXES = TIFF_SUFFIXES + OTHER_SUFFIXES + ZARR_SUFFIXES


def image_stem(path: str | os.PathLike) -> str:
    """File name without its image extension (``a.ome.tif`` → ``a``)."""
    name = Path(path).name
    low = name.lower()
    for suffix in (".ome.tiff", ".ome.tif") + IMAGE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"file not found: {p}")
    if p.is_dir() and p.suffix.lower() not in ZARR_SUFFIXES:
        raise UserInputError(f"{p} is a folder, not an image file")
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserInputError(
            f"{p.name}: unsupported file type {p.suffix or '(no extension)'!r}; "
            f"use TIFF (.tif, .tiff), PNG, JPEG or zarr (.zarr)"
        )
    if not os.access(p, os.R_OK):
        raise UserInputError(f"{p}: permission denied (cannot read the file)")
    return p


def _not_an_image(p: Path, err: Exception) -> UserInputError:
    kind = "TIFF" if p.suffix.lower() in TIFF_SUFFIXES else p.suffix.lstrip(".").upper()
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserInputError(f"{p.name} could not be read as a {kind} image ({reason})")


def image_info(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an image file without reading its pixels.

    The shape is the one :func:`read_image` returns (singleton axes squeezed).
    """
    p = _check_path(path)
    try:
        if p.suffix.lower() in ZARR_SUFFIXES:
            z = _open_zarr(p)
            shape, dtype = tuple(int(s) for s in z.shape), np.dtype(z.dtype)
        elif p.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                if not tif.series:
                    raise ValueError("no image data in the file")
                series = tif.series[0]
                shape, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
        else:
            import imageio.v3 as iio

            props = iio.improps(p)
            shape, dtype = tuple(int(s) for s in props.shape), np.dtype(props.dtype)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - readers raise many kinds for bad files
        raise _not_an_image(p, e) from None
    _check_array(p, shape, dtype)
    return shape, dtype


def _check_array(p: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise UserInputError(f"{p.name}: unsupported pixel type {dtype}")
    if len(shape) < 2 or min(shape) == 0:
        raise UserInputError(
            f"{p.name}: shape {shape} is not an image; give at least a 2D (Y, X) image"
        )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image (TIFF, PNG or JPEG) into a numpy array.

    Raises
    ------
    UserInputError
        The file is missing, of an unsupported type, not an image, or not at least 2D.
    """
    p = _check_path(path)
    try:
        if p.suffix.lower() in ZARR_SUFFIXES:
            data = _open_zarr(p)[...]
        elif p.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            data = tifffile.imread(p)
        else:
            import imageio.v3 as iio

            data = iio.imread(p)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - readers raise many kinds for bad files
        raise _not_an_image(p, e) from None
    data = np.asarray(data)
    _check_array(p, data.shape, data.dtype)
    return data


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label image (mask or annotation): non-negative integers.

    Boolean images become 0/1; float images are accepted only when every value is a
    whole number.
    """
    p = Path(path)
    data = read_image(p)
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind == "f":
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise UserInputError(
                f"{p.name} is not a label image (it holds fractional values, {data.dtype}); "
                f"give integer labels, e.g. a uint16 TIFF"
            )
        top = float(data.max(initial=0))
        data = data.astype(np.uint32 if top <= np.iinfo(np.uint32).max else np.int64)
    if data.dtype.kind == "i" and data.min(initial=0) < 0:
        raise UserInputError(f"{p.name} has negative labels; labels must be 0, 1, 2, …")
    return data


def labels_dtype(labels: np.ndarray) -> np.dtype:
    """``uint16`` when the ids fit, else ``uint32``."""
    top = int(np.max(labels, initial=0))
    if top <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if top <= np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    raise UserInputError(f"too many labels to store ({top})")


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_beside(path: Path) -> str:
    """A hidden temporary file next to ``path`` with ordinary permissions.

    ``mkstemp`` creates files readable by their owner only; the final file should get
    the permissions a plain ``open(path, "w")`` would give it.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    except (AttributeError, OSError):  # Windows, or a file system without modes
        pass
    finally:
        os.close(fd)
    return tmp


def write_tiffs_atomic(items: Sequence[tuple[str | os.PathLike, np.ndarray]]) -> list[Path]:
    """Write several TIFFs so that either all of them appear or none does.

    Each array is written to a temporary file beside its target; only when all are
    complete are they renamed into place.
    """
    import tifffile

    targets = [check_output_folder(p) for p, _ in items]
    temps: list[str] = []
    try:
        for target, (_, array) in zip(targets, items, strict=True):
            tmp = _tmp_beside(target)
            temps.append(tmp)
            tifffile.imwrite(tmp, np.asarray(array))
        for target, tmp in zip(targets, temps, strict=False):
            os.replace(tmp, target)
    except BaseException:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return targets


def write_tiff_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as a TIFF at ``path`` atomically (temporary file, then rename)."""
    return write_tiffs_atomic([(path, array)])[0]


# --------------------------------------------------------------------------- large images
def _open_zarr(p: Path):
    import zarr

    z = zarr.open(str(p), mode="r")
    if not hasattr(z, "shape"):  # a group: take its first array (e.g. OME-Zarr level 0)
        arrays = list(z.arrays()) if hasattr(z, "arrays") else []
        if not arrays:
            raise ValueError("the zarr folder holds no array")
        z = arrays[0][1]
    return z


def open_lazy(path: str | os.PathLike):
    """An array-like view of an image that reads pixels only when sliced.

    Uncompressed TIFFs are memory-mapped, other TIFFs go through tifffile's zarr store,
    zarr folders are opened directly; PNG/JPEG are small and read whole.
    """
    p = _check_path(path)
    try:
        if p.suffix.lower() in ZARR_SUFFIXES:
            return _open_zarr(p)
        if p.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            try:
                mm = tifffile.memmap(p, mode="r")
                from .core.large import RowMappedArray

                # map rows only while they are read, so pages do not pile up in memory
                lazy = RowMappedArray(p, mm.offset, mm.shape, mm.dtype, mode="r")
                del mm
                return lazy
            except ValueError:  # compressed or tiled: read through zarr
                import zarr

                store = tifffile.imread(p, aszarr=True)
                z = zarr.open(store, mode="r")
                return z if hasattr(z, "shape") else list(z.arrays())[0][1]
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _not_an_image(p, e) from None
    return read_image(p)


class BlockwiseTiffs:
    """Output TIFFs written block by block into temporary files, renamed into place
    together by :meth:`commit` (or removed by :meth:`discard`).

    ``arrays`` are :class:`~napari_unet.core.large.RowMappedArray` objects that map only
    the rows being written, so memory stays bounded whatever the image size.
    """

    def __init__(self, items: Sequence[tuple[str | os.PathLike, tuple[int, int], np.dtype]]):
        import tifffile

        from .core.large import RowMappedArray

        self.targets = [check_output_folder(p) for p, _, _ in items]
        self.temps: list[str] = []
        self.arrays = []
        try:
            for target, (_, shape, dtype) in zip(self.targets, items, strict=True):
                tmp = _tmp_beside(target)
                self.temps.append(tmp)
                mm = tifffile.memmap(tmp, shape=tuple(shape), dtype=dtype, bigtiff=True)
                offset = mm.offset
                del mm
                self.arrays.append(RowMappedArray(tmp, offset, shape, dtype))
        except BaseException:
            self.discard()
            raise

    def commit(self) -> list[Path]:
        for target, tmp in zip(self.targets, self.temps, strict=True):
            os.replace(tmp, target)
        self.temps = []
        return self.targets

    def discard(self) -> None:
        for tmp in self.temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.temps = []
