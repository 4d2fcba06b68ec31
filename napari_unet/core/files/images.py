"""Reading the images a person points at (Qt-free, TensorFlow-free).

:func:`read_image`, :func:`read_labels`, :func:`image_info`: TIFF through tifffile (any
compression imagecodecs reads: LZW, zstd, JPEG, …), PNG/JPEG through imageio, zarr and
OME-Zarr lazily (:func:`open_lazy`, :class:`LazyImage`: an image file that reads only what
is sliced and pickles as its path, for dask workers). An uncompressed TIFF too big for
memory is mapped row by row (:class:`RowMappedArray`).

Every problem a user can cause (missing file, unsupported format, a file that is not an
image, a damaged file, float labels) raises
:class:`~napari_unet.core.errors.UserInputError` with a message that says what to do.
Writing is in :mod:`~napari_unet.core.files.outputs`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserInputError

#: Slide scanners' TIFF variants (Aperio SVS, Hamamatsu NDPI, Leica SCN, Ventana BIF):
#: read through tifffile like any TIFF, at full resolution (level 0 of their pyramid;
#: :func:`slide_levels` gives every level, for napari).
SLIDE_SUFFIXES = (".svs", ".ndpi", ".scn", ".bif")
TIFF_SUFFIXES = (".tif", ".tiff") + SLIDE_SUFFIXES
OTHER_SUFFIXES = (".png", ".jpg", ".jpeg")
ZARR_SUFFIXES = (".zarr",)
IMAGE_SUFFIXES = TIFF_SUFFIXES + OTHER_SUFFIXES + ZARR_SUFFIXES


def sample_dir() -> Path:
    """The folder holding the sample nuclei image ``img2d.tif`` and its ground truth
    ``mask2d.tif`` (installed with the package, or beside it in a source tree)."""
    package = Path(__file__).resolve().parents[2]  # napari_unet/
    for folder in (package / "sample_data", package.parent / "sample_data"):
        if (folder / "img2d.tif").is_file():
            return folder
    raise FileNotFoundError(
        "the napari-unet sample images (sample_data/img2d.tif) are not installed"
    )


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
            f"use TIFF (.tif, .tiff; a slide scanner's .svs, .ndpi, .scn, .bif), PNG, JPEG "
            f"or zarr (.zarr)"
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
                damage = _tiff_damage(tif, series)
            if damage:
                raise UserInputError(f"{p.name} is damaged: {damage}")
        else:
            import imageio.v3 as iio

            props = iio.improps(p)
            shape, dtype = tuple(int(s) for s in props.shape), np.dtype(props.dtype)
            from ..axes import grey_alpha

            if grey_alpha(shape):
                shape = shape[:-1]
    except (MemoryError, UserInputError):
        raise
    except Exception as e:  # noqa: BLE001 - readers raise many kinds for bad files
        raise _not_an_image(p, e) from None
    _check_array(p, shape, dtype)
    return shape, dtype


def _tiff_damage(tif, series) -> str | None:
    """What is wrong when a TIFF's header promises more pixel data than the file holds
    (a file cut short: an interrupted copy or download), else ``None``. Said before
    anything is planned from the header's shape (a 150-byte file claiming 200000² px
    would otherwise be "too large for the disk").

    Uncompressed pixels need their full size in the file; compressed ones (LZW, zstd,
    JPEG, …) may be far smaller than the pixels, but the strips or tiles the header
    lists must still lie inside the file.
    """
    size = int(tif.filehandle.size)
    page = series.keyframe if getattr(series, "keyframe", None) is not None else series.pages[0]
    offsets = [int(o) for o in (getattr(page, "dataoffsets", None) or ())]
    counts = [int(c) for c in (getattr(page, "databytecounts", None) or ())]
    hint = "copy or export it again (an interrupted copy or download leaves such a file)"
    shape = "×".join(str(int(s)) for s in series.shape)
    ends = [o + c for o, c in zip(offsets, counts, strict=False) if c > 0]
    if ends and max(ends) > size:
        return (
            f"its header places pixel data up to byte {max(ends):,} of a file of "
            f"{size:,} bytes (a {shape} image promised, far more than the file holds); {hint}"
        )
    uncompressed = int(getattr(page, "compression", 1)) == 1
    # pixels stored in fewer bits than their type holds (a 1-bit mask, 12-bit packed)
    # take that share of their decoded size on disk
    bits = int(getattr(page, "bitspersample", 0) or 0)
    stored = int(series.nbytes)
    width = 8 * np.dtype(series.dtype).itemsize
    if 0 < bits < width:
        stored = stored * bits // width
    if uncompressed and counts and all(counts) and stored > size:
        return (
            f"its header promises a {shape} image ({stored:,} bytes of pixels) "
            f"but the file holds only {size:,} bytes; {hint}"
        )
    return None


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

            with tifffile.TiffFile(p) as tif:
                if tif.series:  # a damaged file is said before its pixels are read
                    damage = _tiff_damage(tif, tif.series[0])
                    if damage:
                        raise UserInputError(f"{p.name} is damaged: {damage}")
                data = tif.asarray()
        else:
            import imageio.v3 as iio

            from ..axes import grey_alpha

            data = iio.imread(p)
            if grey_alpha(data.shape):  # grey + alpha: the alpha is no image data
                data = data[..., 0]
    except (MemoryError, UserInputError):
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


# --------------------------------------------------------------------------- large images
def slide_levels(path: str | os.PathLike) -> list:
    """The resolution levels of a TIFF's first image (a slide scanner's pyramid), as lazy
    dask arrays, full resolution first; one level for a TIFF without a pyramid. Pixels
    are read only where napari or a block looks."""
    import dask.array as da
    import tifffile
    import zarr

    p = _check_path(path)
    if p.suffix.lower() not in TIFF_SUFFIXES:
        raise UserInputError(f"{p.name} is no TIFF or slide file")
    image_info(p)  # a damaged or unreadable file is said here, in one line
    try:
        z = zarr.open(tifffile.imread(p, aszarr=True), mode="r")
        arrays = [z] if hasattr(z, "shape") else [a for _, a in z.arrays()]
    except (MemoryError, UserInputError):
        raise
    except Exception as e:  # noqa: BLE001 - readers raise many kinds for bad files
        raise _not_an_image(p, e) from None
    arrays.sort(key=lambda a: -int(np.prod(a.shape)))
    return [da.from_zarr(a) for a in arrays]


def _open_zarr(p: Path):
    import zarr

    z = zarr.open(str(p), mode="r")
    if not hasattr(z, "shape"):  # a group: its full resolution (e.g. OME-Zarr level 0)
        z = _full_resolution(z)
    return z


def _full_resolution(group):
    """The largest array of a zarr group (a pyramid's level 0; the group lists its
    arrays in no set order)."""
    arrays = [a for _, a in group.arrays()] if hasattr(group, "arrays") else []
    if not arrays:
        raise ValueError("the zarr folder holds no array")
    return max(arrays, key=lambda a: int(np.prod(a.shape)))


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
            except ValueError:  # compressed or tiled: read through zarr
                import zarr

                store = tifffile.imread(p, aszarr=True)
                z = zarr.open(store, mode="r")
                z = z if hasattr(z, "shape") else _full_resolution(z)
                return _DamageChecked(z, p.name)
            offset, shape, dtype = mm.offset, mm.shape, mm.dtype
            del mm
            if offset + int(np.prod(shape)) * dtype.itemsize > p.stat().st_size:
                raise UserInputError(
                    f"{p.name} is truncated or damaged: it claims {' x '.join(map(str, shape))} "
                    f"pixels but the file is only {p.stat().st_size:,} bytes"
                )
            # map rows only while they are read, so pages do not pile up in memory
            return RowMappedArray(p, offset, shape, dtype, mode="r")
    except (MemoryError, UserInputError):
        raise
    except Exception as e:  # noqa: BLE001
        raise _not_an_image(p, e) from None
    return read_image(p)


class LazyImage:
    """An image file as an array-like that reads only what is sliced, and pickles as
    its path: dask workers (other processes, other machines) open it themselves."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(Path(path).resolve())
        shape, dtype = image_info(self.path)
        self.shape, self.dtype, self.ndim = shape, dtype, len(shape)
        self._array = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_array"}

    def __setstate__(self, state) -> None:
        self.__dict__.update(state, _array=None)

    def __getitem__(self, key):
        if self._array is None:
            self._array = open_lazy(self.path)
        return np.asarray(self._array[key])


class _DamageChecked:
    """An array-like whose reads turn a damaged file's errors into a plain message."""

    def __init__(self, array, name: str) -> None:
        self._array, self._name = array, name
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, len(array.shape)

    def __getitem__(self, key):
        try:
            return self._array[key]
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - codecs and stores raise many kinds
            raise UserInputError(
                f"{self._name} is damaged or truncated: part of it cannot be read "
                f"({type(e).__name__})"
            ) from None


class RowMappedArray:
    """An array stored contiguously (C order) in a file at ``offset``, mapped
    rows-at-a-time.

    Slicing ``a[y0:y1, ...]`` maps rows ``y0..y1`` only for the duration of the access,
    so pages read or written do not accumulate in the process's resident memory. The
    first axis may be sliced with a step (every step-th row is touched).
    """

    def __init__(self, path, offset: int, shape: tuple[int, ...], dtype, mode: str = "r+") -> None:
        self.path = str(path)
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.mode = mode

    def _rows(self, y0: int, y1: int, mode: str) -> np.memmap:
        row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        return np.memmap(
            self.path,
            dtype=self.dtype,
            mode=mode,
            offset=self.offset + y0 * row_bytes,
            shape=(max(0, y1 - y0),) + self.shape[1:],
        )

    def _split(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        ys = key[0]
        if not isinstance(ys, slice):
            raise IndexError("RowMappedArray is indexed with slices")
        start, stop, step = ys.indices(self.shape[0])
        if step < 1:
            raise IndexError("RowMappedArray supports increasing row slices only")
        stop = max(start, stop)
        return start, stop, step, key[1:]

    def __getitem__(self, key) -> np.ndarray:
        y0, y1, step, rest = self._split(key)
        if y1 <= y0:
            return np.zeros((0,) + self.shape[1:], self.dtype)[(slice(None), *rest)]
        m = self._rows(y0, y1, "r")
        out = np.array(m[(slice(None, None, step), *rest)])
        del m
        return out

    def __setitem__(self, key, value) -> None:
        y0, y1, step, rest = self._split(key)
        if self.mode == "r":
            raise ValueError("read-only")
        m = self._rows(y0, y1, "r+")
        m[(slice(None, None, step), *rest)] = value
        m.flush()
        del m
