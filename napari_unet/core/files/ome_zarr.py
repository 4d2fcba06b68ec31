"""The OME-Zarr images napari-unet writes (NGFF 0.4 ``multiscales``, zarr format 2):
empty 2-D (``y, x``) or 3-D (``z, y, x``: a volume, its pyramid downsampled in y and x
only) images with one array per pyramid level whose chunks blocks fill whole
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
    shape: tuple[int, ...],
    dtype,
    block: int,
    name: str,
    factors: list[int],
    kind: str,
    z_block: int = 1,
    z_scale: float = 1.0,
) -> None:
    """An empty OME-Zarr image (NGFF 0.4 ``multiscales``, zarr format 2) with one
    array per pyramid level, chunks that blocks fill whole. A 3-D ``shape`` is a volume
    ``(Z, Y, X)``: chunks of ``z_block`` planes, every level keeps all planes, and the z
    axis's scale is ``z_scale`` (the z-step over the XY pixel size)."""
    import zarr

    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    volume = len(shape) == 3
    for k, f in enumerate(factors):
        level = (-(-shape[-2] // f), -(-shape[-1] // f))
        c = min(OUTPUT_CHUNK, block // f)
        chunks, scale = (c, c), [float(f), float(f)]
        if volume:
            level, chunks = (int(shape[0]),) + level, (max(1, min(z_block, shape[0])), c, c)
            scale = [float(z_scale)] + scale
        g.create_array(
            str(k),
            shape=level,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [{"type": "scale", "scale": scale}],
            }
        )
    g.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": name,
            "axes": [{"name": a, "type": "space"} for a in ("zyx" if volume else "yx")],
            "datasets": datasets,
            "type": "nearest",
        }
    ]
    if kind == "labels":
        g.attrs["image-label"] = {"version": "0.4"}
    from ... import __version__

    g.attrs[ZARR_MARK] = {"kind": kind, "version": str(__version__)}


def write_levels(
    path: str, y0: int, x0: int, data: np.ndarray, factors: list[int], z0: int | None = None
) -> None:
    """Write a block (origin ``y0, x0`` at full resolution; a volume's block ``(Z, Y, X)``
    also ``z0``) into every level."""
    import zarr

    for k, f in enumerate(factors):
        arr = zarr.open_array(f"{path}/{k}", mode="r+")  # fails if the output was removed
        sub = data[..., ::f, ::f].astype(arr.dtype, copy=False)
        box = (slice(y0 // f, y0 // f + sub.shape[-2]), slice(x0 // f, x0 // f + sub.shape[-1]))
        if z0 is not None:
            box = (slice(z0, z0 + sub.shape[0]),) + box
        arr[box] = sub


def pyramid_levels(path: str | os.PathLike) -> list:
    """The levels of an OME-Zarr image as dask arrays (full resolution first)."""
    import dask.array as da
    import zarr

    g = zarr.open_group(str(path), mode="r")
    datasets = g.attrs["multiscales"][0]["datasets"]
    return [da.from_zarr(g[d["path"]]) for d in datasets]
