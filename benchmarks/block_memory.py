"""Resident memory of the block-wise prediction, block by block, in one process.

The 16384² run takes long; the peak comes from one block's work on top of what the
process already holds. This script builds the same kind of image as ``prediction.py``
(the sample tiled with flips, uint16, in memory), prepares the run as
``core.prediction.blockwise.predict_to_zarr`` does (percentiles, object size, block grid)
and then runs the predict task of the blocks asked for, one after the other, reporting for each the
resident memory before it and its peak (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs``: Linux only), and the peak of each step inside it
(network, post-processing, probability write, kept instances).

    python benchmarks/block_memory.py                          # 6144², blocks in raster order
    python benchmarks/block_memory.py --size 6144 --blocks 1,1 1,1 --bound-heap
    NAPARI_UNET_PRECISION=float32 python benchmarks/block_memory.py --save /tmp/kept

``--bound-heap`` runs as the command line does (``predict_to_zarr(bound_heap=True)``);
``--save DIR`` writes each block's kept instances (``kept-I-J.npy``) to compare codes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from common import load_sample, mosaic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


class Phases:
    """Peak RSS of successive phases (each ``mark`` closes one and resets the peak)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self.start = _status()["VmRSS"]

    def mark(self, name: str) -> None:
        self.rows.append((name, self.start, _status()["VmHWM"]))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak starts again from the present RSS
        self.start = _status()["VmRSS"]

    def wrap(self, module, name: str) -> None:
        inner = getattr(module, name)

        def measured(*args, **kwargs):
            self.mark("(between)")
            out = inner(*args, **kwargs)
            self.mark(name)
            return out

        setattr(module, name, measured)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=6144)
    ap.add_argument("--blocks", nargs="*", default=None, help="I,J (default: all)")
    ap.add_argument("--bound-heap", action="store_true")
    ap.add_argument("--save", type=Path, default=None)
    args = ap.parse_args()

    import zarr

    from napari_unet.core import UNet
    from napari_unet.core.axes import channel_layout
    from napari_unet.core.prediction import blockwise as large
    from napari_unet.core.prediction import instances as postprocess
    from napari_unet.core.prediction import tiling as predict

    ph = Phases()
    net = UNet.default()
    ph.mark("load TensorFlow and the model")
    size = args.size
    strip = mosaic(load_sample()[0], 4, seed=1)  # 2048², as prediction.py's image
    image = np.empty((size, size), np.uint16)
    for y in range(0, size, strip.shape[0]):
        h = min(strip.shape[0], size - y)
        reps = -(-size // strip.shape[1])
        row = np.concatenate(
            [strip[:h] if (i + y // 2048) % 2 else strip[:h, ::-1] for i in range(reps)], 1
        )
        image[y : y + h] = (row[:, :size].astype(np.uint32) * 200).clip(0, 65535)
    ph.mark("make the image")

    predictor = net.predictor(batch_size=1)  # predict_to_zarr's defaults
    tile, ctx = predictor.tile_size, predictor.context
    layout = channel_layout(image.shape, net.config.input_channels)
    grid = large.plan_blocks(size, size, 2048, 64, tile, ctx, net.config.size_multiple)
    x = large.as_channels_last(image, layout, grid.chunks)
    step = predictor.normalizer.step(size, size)
    sample = large._compute(x[::step, ::step], None)
    lo, hi = predictor.normalizer.of_sample(sample)
    scale, _ = large.measure_scale(predictor, x, sample, step, None, (lo, hi))
    if scale != 1.0:
        probe = predictor.plan(2048, 2048)
        grid = large.plan_scaled_blocks(size, size, 2048, 64, probe.context + probe.shrink, scale)
        x = x.rechunk(grid.chunks + ((x.shape[-1],),))
    ph.mark("percentiles and object size")
    print(f"{size}², scale {scale:.3f}, {grid.shape[0]} x {grid.shape[1]} blocks of {grid.block}")

    work = Path(tempfile.mkdtemp(prefix="block-memory-"))
    ny, nx = grid.shape
    large.create_ome_zarr(work / "l.zarr", (size, size), np.uint32, grid.block, "l", [1], "labels")
    large.create_ome_zarr(work / "p.zarr", (size, size), np.float32, grid.block, "p", [1], "image")
    zarr.open_array(
        str(work / "kept.zarr"),
        mode="w",
        shape=(ny, nx, *grid.slot),
        chunks=(1, 1, *grid.slot),
        dtype=np.uint32,
        fill_value=0,
        zarr_format=2,
    )
    spec = large._Spec(
        model=large.model_ref(net, None, work, save=False),
        grid=grid,
        height=size,
        width=size,
        channels=1,
        lo=tuple(float(v) for v in lo),
        hi=tuple(float(v) for v in hi),
        options=predictor.options(),
        labels_path=str(work / "l.zarr"),
        probability_path=str(work / "p.zarr"),
        scratch_path=str(work / "kept.zarr"),
        factors=(1,),
        scale=float(scale),
        # older code (to compare) has no heap bound
        **({"bound_heap": True} if args.bound_heap else {}),
    )
    depth = {0: grid.depth_y if ny > 1 else 0, 1: grid.depth_x if nx > 1 else 0, 2: 0}
    import dask.array as da

    pieces = da.overlap.overlap(x, depth=depth, boundary="none").to_delayed()
    for module, name in (
        (predict, "predict_probabilities"),
        (postprocess, "instances_from_probabilities"),
        (large, "write_levels"),
        (large, "_owned"),
    ):
        ph.wrap(module, name)
    blocks = (
        [tuple(int(v) for v in b.split(",")) for b in args.blocks]
        if args.blocks
        else [(i, j) for i in range(ny) for j in range(nx)]
    )
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    for i, j in blocks:
        local = pieces[i, j, 0].compute(scheduler="sync")
        ph.mark(f"read block {i},{j}")
        first, before = len(ph.rows), ph.start
        kept = large._predict_block(local, i, j, spec)
        ph.mark("(end)")
        del local
        steps = ph.rows[first:]
        peak = max(p for _, _, p in steps)
        detail = ", ".join(f"{n} +{p - s:.0f}" for n, s, p in steps if not n.startswith("("))
        print(
            f"block {i},{j}: {kept} instances kept; RSS before {before:.0f} MB, "
            f"peak {peak:.0f} MB (+{peak - before:.0f}); {detail}",
            flush=True,
        )
        if args.save:
            np.save(args.save / f"kept-{i}-{j}.npy", zarr.open_array(str(work / "kept.zarr"))[i, j])
    print(f"peak RSS over the run: {max(p for _, _, p in ph.rows):.0f} MB")


if __name__ == "__main__":
    main()
