"""The OME-Zarr images napari-unet writes (NGFF 0.4 ``multiscales``, zarr format 2):
empty images with one array per pyramid level whose chunks blocks fill whole
(:func:`create_ome_zarr`), a block written into every level (:func:`write_levels`), and
the levels read back as dask arrays (:func:`pyramid_levels`). zarr and dask are imported
when used.
"""

from __future__ import annotations

import os

import numpy as np

from .outputs import ZARR_MARK

#: Edge of the output zarr chunks (a divisor of the block size).
OUTPUT_CHUNK = 512


def create_ome_zarr(
    path: str | os.PathLike,
    shape: tuple[int, int],
    dtype,
    block: int,
    name: str,
    factors: list[int],
    kind: str,
) -> None:
    """An empty OME-Zarr image (NGFF 0.4 ``multiscales``, zarr format 2) with one
    array per pyramid level, chunks that blocks fill whole."""
    import zarr

    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for k, f in enumerate(factors):
        level = (-(-shape[0] // f), -(-shape[1] // f))
        c = min(OUTPUT_CHUNK, block // f)
        g.create_array(
            str(k),
            shape=level,
            chunks=(c, c),
            dtype=dtype,
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [{"type": "scale", "scale": [float(f), float(f)]}],
            }
        )
    g.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": name,
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": datasets,
            "type": "nearest",
        }
    ]
    if kind == "labels":
        g.attrs["image-label"] = {"version": "0.4"}
    from ... import __version__

    g.attrs[ZARR_MARK] = {"kind": kind, "version": str(__version__)}


def write_levels(path: str, y0: int, x0: int, data: np.ndarray, factors: list[int]) -> None:
    """Write a block (origin ``y0, x0`` at full resolution) into every level."""
    import zarr

    for k, f in enumerate(factors):
        arr = zarr.open_array(f"{path}/{k}", mode="r+")  # fails if the output was removed
        sub = data[::f, ::f].astype(arr.dtype, copy=False)
        arr[y0 // f : y0 // f + sub.shape[0], x0 // f : x0 // f + sub.shape[1]] = sub


def pyramid_levels(path: str | os.PathLike) -> list:
    """The levels of an OME-Zarr image as dask arrays (full resolution first)."""
    import dask.array as da
    import zarr

    g = zarr.open_group(str(path), mode="r")
    datasets = g.attrs["multiscales"][0]["datasets"]
    return [da.from_zarr(g[d["path"]]) for d in datasets]
