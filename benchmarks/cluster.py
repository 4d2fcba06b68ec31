"""Large-image prediction in one process vs on dask.distributed, side by side in one run.

A size² uint16 zarr (the sample image tiled with flips, as in prediction.py) is
segmented by ``napari-unet predict --format zarr`` three ways:

1. one process (no flag: dask's synchronous scheduler in the CLI process);
2. ``--workers 2`` (a LocalCluster of 2 worker processes started by the CLI);
3. ``dask scheduler`` + 2 × ``dask worker --nthreads 1`` started by hand, and
   ``--scheduler ADDRESS``.

Printed: seconds, Mpx/s, the peak resident memory of every process (sampled every
0.2 s over the process tree), the seconds per block of the predict and stitch tasks
(from the timestamps of the progress lines), and whether the three label images are
identical (and ids unique, each one connected piece).

    python benchmarks/cluster.py --size 16384
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, markdown_table
from prediction import tiff_to_zarr, write_big_tiff

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CLI = [sys.executable, "-m", "napari_unet.cli", "predict"]


def _tree_rss(roots: list[int], peaks: dict[int, tuple[str, float]]) -> None:
    import psutil

    for root in roots:
        try:
            procs = [psutil.Process(root)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                rss = p.memory_info().rss / 1e6
                role = _role(p.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if rss > peaks.get(p.pid, ("", 0.0))[1]:
                peaks[p.pid] = (role, rss)


def _role(cmd: list[str]) -> str:
    text = " ".join(cmd)
    if "napari_unet.cli" in text:
        return "CLI"
    if "dask scheduler" in text or "scheduler" in cmd[-3:]:
        return "scheduler"
    if "spawn_main" in text or "forkserver" in text or "multiprocessing" in text:
        return "worker"
    if "dask worker" in text or "worker" in cmd[1:4]:
        return "nanny/worker"
    return Path(cmd[0]).name if cmd else "?"


def run(cmd: list[str], extra_roots=()) -> dict:
    peaks: dict[int, tuple[str, float]] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamps = {"predicted": [], "stitched": []}
    err_lines = []
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    while proc.poll() is None:
        for _ in sel.select(timeout=0.2):
            line = proc.stderr.readline()
            if line:
                err_lines.append(line)
                m = re.search(r"(predicted|stitched) block (\d+)/(\d+)", line)
                if m:
                    stamps[m.group(1)].append((int(m.group(2)), time.perf_counter() - t0))
        _tree_rss([proc.pid, *extra_roots], peaks)
    rest = proc.stderr.read()
    err_lines.append(rest)
    for line in rest.splitlines():
        m = re.search(r"(predicted|stitched) block (\d+)/(\d+)", line)
        if m:
            stamps[m.group(1)].append((int(m.group(2)), time.perf_counter() - t0))
    seconds = time.perf_counter() - t0
    by_role: dict[str, list[float]] = {}
    for role, rss in peaks.values():
        by_role.setdefault(role, []).append(round(rss))
    res = {"rc": proc.returncode, "seconds": round(seconds, 1), "peak_rss_mb": by_role}
    p, s = stamps["predicted"], stamps["stitched"]
    if len(p) > 1 and len(s) > 1:
        res["predict_s_per_block"] = round((p[-1][1] - p[0][1]) / (p[-1][0] - p[0][0]), 2)
        res["stitch_s_per_block"] = round((s[-1][1] - s[0][1]) / max(1, s[-1][0] - s[0][0]), 3)
    if proc.returncode:
        res["stderr"] = "".join(err_lines)[-800:]
    return res


def check_same_and_whole(paths: list[Path], strip: int = 2048) -> dict:
    """Label images identical; ids unique and each one connected piece (strip by strip,
    an object reaching the next strip counted there)."""
    import zarr
    from scipy import ndimage as ndi

    arrays = [zarr.open_array(str(p / "0"), mode="r") for p in paths]
    identical = True
    seen: set[int] = set()
    split = 0
    h = arrays[0].shape[0]
    for y in range(0, h, strip):
        blocks = [np.asarray(a[y : y + strip + 64]) for a in arrays]
        identical &= all(np.array_equal(blocks[0], b) for b in blocks[1:])
        block = blocks[0]
        objs = ndi.find_objects(block)
        for i, sl in enumerate(objs, start=1):
            if sl is None or i in seen:
                continue
            if sl[0].stop >= block.shape[0] and y + strip + 64 < h:
                continue
            seen.add(i)
            split += ndi.label(block[sl] == i)[1] > 1
    return {"identical": bool(identical), "instances": len(seen), "split_ids": int(split)}


def start_cluster(workdir: Path) -> tuple[str, list[subprocess.Popen]]:
    sched_file = workdir / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [
        subprocess.Popen(
            dask
            + ["--scheduler-file", str(sched_file), "--port", "0", "--dashboard-address", ":0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    while not sched_file.exists():
        time.sleep(0.2)
    time.sleep(0.5)
    address = json.loads(sched_file.read_text())["address"]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
    for _ in range(2):
        procs.append(subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return address, procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as d:
        d = Path(d)
        tif, src = d / "big.tif", d / "big.zarr"
        write_big_tiff(tif, args.size)
        tiff_to_zarr(tif, src)
        tif.unlink()
        outs = []
        base = [*CLI, str(src), "--format", "zarr"]
        for name, extra in (("one process", []), ("--workers 2", ["--workers", "2"])):
            out = d / f"out{len(outs)}"
            rows[name] = run(base + ["--out", str(out), *extra])
            print(name, json.dumps(rows[name]), flush=True)
            outs.append(out / "big_labels.zarr")
        address, procs = start_cluster(d)
        try:
            out = d / "out2"
            rows["scheduler + 2 workers by hand"] = run(
                base + ["--out", str(out), "--scheduler", address], [p.pid for p in procs]
            )
            print(json.dumps(rows["scheduler + 2 workers by hand"]), flush=True)
            outs.append(out / "big_labels.zarr")
        finally:
            for p in procs[::-1]:
                p.terminate()
                p.wait(timeout=30)
        check = check_same_and_whole(outs)
    print(json.dumps(check))
    mpx = args.size**2 / 1e6
    print(
        markdown_table(
            [
                "run",
                "seconds",
                "Mpx/s",
                "peak RSS per process (MB)",
                "predict s/block",
                "stitch s/block",
            ],
            [
                [
                    name,
                    r["seconds"],
                    round(mpx / r["seconds"], 2),
                    "; ".join(f"{k} {v}" for k, v in sorted(r["peak_rss_mb"].items())),
                    r.get("predict_s_per_block", "-"),
                    r.get("stitch_s_per_block", "-"),
                ]
                for name, r in rows.items()
            ],
        )
    )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(
        json.dumps({"size": args.size, "runs": rows, "labels": check}, indent=1)
    )


if __name__ == "__main__":
    main()
