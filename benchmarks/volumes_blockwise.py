"""Peak memory of a volume segmented block by block (issue 23) against the same volume in
memory: balls ~21 px wide (the bundled nuclei model's width) in a ``Z × N × N`` volume
in a zarr array, each way run in a process of its own (peak RSS from ``getrusage``).

    python benchmarks/volumes_blockwise.py [--z 48] [--size 512] [--block 128] [--block-z 16]
    python benchmarks/volumes_blockwise.py --z 48 --size 768 --modes blocks   # a larger one
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_volume(path: Path, z: int, size: int, seed: int = 0) -> int:
    import numpy as np
    import zarr
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    arr = zarr.open_array(str(path), mode="w", shape=(z, size, size), chunks=(8, 256, 256),
                          dtype=np.uint16, zarr_format=2)  # fmt: skip
    n = 0
    zz, yy, xx = np.indices((z, 64, 64))
    for y0 in range(0, size, 64):  # one ball per 64 px square, at a random depth
        for x0 in range(0, size, 64):
            cz = rng.integers(8, max(9, z - 8))
            ball = ((zz - cz) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2) <= 100
            img = ndi.gaussian_filter(ball.astype(np.float32), 1.5) * 800 + 100
            img += rng.normal(0, 20, img.shape)
            arr[:, y0 : y0 + 64, x0 : x0 + 64] = img.clip(0, 65535).astype(np.uint16)
            n += 1
    return n


def child(mode: str, path: str, block: int, block_z: int) -> None:
    import numpy as np
    import zarr

    from napari_unet.core import UNet
    from napari_unet.core.prediction.volume_blocks import predict_volume_to_zarr

    net = UNet.bundled("nuclei")
    t0 = time.perf_counter()
    if mode == "memory":
        image = np.asarray(zarr.open_array(path, mode="r"))
        n = int(net.predict(image, axes="ZYX", volume=True, diameter=0).labels.max())
    else:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d) / "work"
            work.mkdir()
            res = predict_volume_to_zarr(
                net, zarr.open_array(path, mode="r"), Path(d) / "l.zarr", Path(d) / "p.zarr",
                work, diameter=0, block_size=block, block_z=block_z, halo=16, bound_heap=True,
            )  # fmt: skip
            n = res.n_instances
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "mode": mode,
                "objects": n,
                "peak_mb": round(peak),
                "s": round(time.perf_counter() - t0, 1),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--z", type=int, default=48)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--block-z", type=int, default=16)
    p.add_argument("--modes", nargs="+", default=["memory", "blocks"], help="memory, blocks")
    p.add_argument("--child", nargs=2)
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.block, a.block_z)
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "volume.zarr"
        n = make_volume(path, a.z, a.size)
        print(
            f"volume {a.z}×{a.size}×{a.size} ({a.z * a.size * a.size / 1e6:.1f} M voxels), {n} balls; blocks {a.block_z}×{a.block}×{a.block}"
        )
        for mode in a.modes:
            args = ["--z", str(a.z), "--size", str(a.size), "--block", str(a.block),
                    "--block-z", str(a.block_z), "--child", mode, str(path)]  # fmt: skip
            out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
            print(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-2000:])


if __name__ == "__main__":
    main()
