"""Prediction speed and memory, measured side by side in one run.

1. Tiled vs whole: on a 2048² image that fits in memory, the default overlap-tiling
   against one whole-image pass (same padding): throughput ratio and how identical the
   outputs are (max probability difference, share of identical labels).
2. Scale: ``napari-unet predict`` in a subprocess on generated uint16 images of 1k², 4k²
   and 16k² (TIFF; the largest also as zarr): seconds, Mpx/s and peak resident memory of
   the process; for the block-wise path, checks that instance ids are unique and each id
   is one connected nucleus.

    python benchmarks/prediction.py                       # everything (16k² takes minutes)
    python benchmarks/prediction.py --sizes 1024,4096     # skip the huge one
    python benchmarks/prediction.py --sizes 6144 --skip-tiled-vs-whole   # 9 blocks: memory

The last line of the output is the peak resident memory of each ``napari-unet predict``
process (the goal: at most 2000 MB for 16384², whatever the number of blocks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, load_sample, markdown_table, mosaic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Issue 20: peak resident memory of one ``predict`` process on a 16384² image.
GOAL_RSS_MB = 2000


def get_net():
    from napari_unet.core import UNet, UNetConfig

    try:
        return UNet.default(), "bundled default"
    except Exception:  # noqa: BLE001
        return UNet.new(UNetConfig(), seed=0), "untrained default architecture"


def tiled_vs_whole(net, size: int = 2048, rounds: int = 3) -> dict:
    from napari_unet.core.network.unet import DEFAULT_CONTEXT

    image, _ = load_sample()
    img = mosaic(image, size // image.shape[0])
    whole_tile = size + 2 * DEFAULT_CONTEXT
    net.predict(img[:256, :256])  # trace once
    t_whole, t_tiled = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        whole = net.predict(img, tile_size=whole_tile, return_scores=True)
        t_whole.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tiled = net.predict(img, return_scores=True)
        t_tiled.append(time.perf_counter() - t0)
    tw, tt = float(np.median(t_whole)), float(np.median(t_tiled))
    res = {
        "size": size,
        "whole_s": round(tw, 2),
        "tiled_s": round(tt, 2),
        "throughput_ratio_tiled_vs_whole": round(tw / tt, 3),
        "max_abs_prob_diff": float(np.abs(whole.scores - tiled.scores).max()),
        "identical_label_fraction": float((whole.labels == tiled.labels).mean()),
    }
    print(json.dumps(res, indent=1), flush=True)
    return res


def write_big_tiff(path: Path, size: int) -> None:
    """A size² uint16 TIFF written strip by strip (never whole in memory)."""
    import tifffile

    image, _ = load_sample()
    strip = mosaic(image, 4, seed=1)  # 2048 × 2048
    reps = max(1, size // strip.shape[1])
    out = tifffile.memmap(path, shape=(size, size), dtype=np.uint16)
    for y in range(0, size, strip.shape[0]):
        h = min(strip.shape[0], size - y)
        row = np.concatenate(
            [strip[:h, :] if (i + y // 2048) % 2 else strip[:h, ::-1] for i in range(reps)], 1
        )
        out[y : y + h] = (row[:, :size].astype(np.uint32) * 200).clip(0, 65535).astype(np.uint16)
        out.flush()
    del out


def tiff_to_zarr(tif: Path, zpath: Path) -> None:
    import tifffile
    import zarr

    src = tifffile.memmap(tif, mode="r")
    z = zarr.open(str(zpath), mode="w", shape=src.shape, chunks=(1024, 1024), dtype=src.dtype)
    for y in range(0, src.shape[0], 1024):
        z[y : y + 1024] = src[y : y + 1024]


def run_cli_measured(path: Path, out: Path) -> dict:
    """Run the CLI and read the peak RSS of that one process (wait4's rusage)."""
    cmd = [sys.executable, "-m", "napari_unet.cli", "predict", str(path), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    dt = time.perf_counter() - t0
    return {
        "rc": proc.returncode,
        "seconds": round(dt, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stderr": err.strip()[-400:],
    }


def check_labels(path: Path) -> dict:
    """Unique ids, each one connected region (read in strips)."""
    import tifffile
    from scipy import ndimage as ndi

    lab = tifffile.memmap(path, mode="r")
    n_ids = 0
    max_id = 0
    split = 0
    seen: set[int] = set()
    step = 2048
    # connected components per strip with one strip of overlap are enough for nuclei
    for y in range(0, lab.shape[0], step):
        block = np.asarray(lab[y : y + step + 64])
        ids = np.unique(block)
        ids = ids[ids > 0]
        max_id = max(max_id, int(ids.max(initial=0)))
        objs = ndi.find_objects(block)
        for i in ids:
            sl = objs[i - 1]
            if sl is None or i in seen:
                continue
            if sl[0].stop >= block.shape[0] and y + step + 64 < lab.shape[0]:
                continue  # reaches into the next strip: counted there
            seen.add(int(i))
            _, n = ndi.label(block[sl] == i)
            split += n > 1
    n_ids = len(seen)
    return {"instances": n_ids, "max_id": max_id, "ids_in_more_than_one_piece": int(split)}


def scale_table(sizes, workdir: Path, zarr_too: bool) -> list[dict]:
    rows = []
    for size in sizes:
        tif = workdir / f"big_{size}.tif"
        write_big_tiff(tif, size)
        inputs = [tif]
        if zarr_too and size == max(sizes):
            z = workdir / f"big_{size}.zarr"
            tiff_to_zarr(tif, z)
            inputs.append(z)
        for path in inputs:
            out = workdir / f"out_{path.suffix[1:]}_{size}"
            out.mkdir(exist_ok=True)
            r = run_cli_measured(path, out)
            row = {"size": size, "input": path.suffix[1:], **r}
            if r["rc"] == 0:
                row["mpx_per_s"] = round(size * size / 1e6 / r["seconds"], 2)
                labels = out / f"{path.stem}_labels.tif"
                row.update(check_labels(labels))
            print(json.dumps(row), flush=True)
            rows.append(row)
            for f in out.iterdir():
                f.unlink()
        tif.unlink()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1024,4096,16384")
    ap.add_argument("--skip-tiled-vs-whole", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    result = {}
    if not args.skip_tiled_vs_whole:
        net, which = get_net()
        print(f"model: {which}")
        result["tiled_vs_whole"] = tiled_vs_whole(net)
        del net
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        with tempfile.TemporaryDirectory(dir=args.workdir) as d:
            rows = scale_table(sizes, Path(d), zarr_too=True)
        result["scale"] = rows
        print()
        print(
            markdown_table(
                ["image", "input", "seconds", "Mpx/s", "peak RSS (MB)", "instances", "split ids"],
                [
                    [
                        f"{r['size']}²",
                        r["input"],
                        r["seconds"],
                        r.get("mpx_per_s", "-"),
                        r["peak_rss_mb"],
                        r.get("instances", "-"),
                        r.get("ids_in_more_than_one_piece", "-"),
                    ]
                    for r in rows
                ],
            )
        )
        print(
            "peak RSS per process: "
            + ", ".join(f"{r['size']}² {r['input']} {r['peak_rss_mb']:.0f} MB" for r in rows)
            + f" (goal ≤ {GOAL_RSS_MB} MB at 16384²)"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prediction.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
