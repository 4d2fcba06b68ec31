"""Prediction seconds per megapixel of two models on the images of ``generalist.py``,
timed alone (no training in between), the models alternating round by round (issue 22's
≤ 1.5× goal).

``generalist.py`` times each prediction once, between fine-tuning runs: on a shared
machine its s/MP columns move with the load. Here each model predicts the same first
``--images`` scored images of every set, after a warm-up, for ``--rounds`` rounds in
alternating order; the figure per set is the median round. The object size is measured
as in ``predict``, so a model that sees the objects at a larger scale pays for it.

    python benchmarks/generalist_speed.py    # ~1 min on 2 cores
    git worktree add /tmp/before COMMIT
    python benchmarks/generalist_speed.py --old-code /tmp/before   # old model, old code

``--old-code DIR`` times the old model with the ``napari_unet`` of another checkout (say,
before a change of the size estimate), in a child process per round (loaded and warmed
up outside the timing), the rounds still alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import generalist as g
import numpy as np

from napari_unet.core import UNet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--old", type=Path, default=g.ROOT / "napari_unet/models/default_nuclei.keras")
    ap.add_argument("--new", type=Path, default=g.ROOT / "napari_unet/models/generalist.keras")
    ap.add_argument("--images", type=int, default=3, help="scored images timed per set")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--old-code", type=Path, default=None, help="checkout for the old model")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import napari_unet

        print(f"napari_unet from {napari_unet.__file__}", file=sys.stderr)
        net, sets = UNet.load(args.child), load_sets(args.images)
        print(json.dumps(time_sets(net, sets, args.images, warm=True)))
        return

    sets = load_sets(args.images)
    models = {"new": UNet.load(args.new)}
    if args.old_code is None:
        models["old"] = UNet.load(args.old)
    for s in sets:  # warm-up: each shape traced once, outside the timing
        for net in models.values():
            net.predict(s.images[0])
    secs: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for rnd in range(args.rounds):
        order = ["old", "new"] if rnd % 2 == 0 else ["new", "old"]
        for k in order:
            if k == "old" and args.old_code is not None:
                got = old_code_times(args.old_code, args.old, args.images)
            else:
                got = time_sets(models[k], sets, args.images)
            for name, v in got.items():
                secs[k].setdefault(name, []).append(v)
    rows, ratios = [], []
    for s in sets:
        old, new = (float(np.median(secs[k][s.name])) for k in ("old", "new"))
        ratios.append(new / old)
        rows.append([s.name, f"{old:.2f}", f"{new:.2f}", f"{new / old:.2f}"])
    old_mean = np.mean([np.median(v) for v in secs["old"].values()])
    new_mean = np.mean([np.median(v) for v in secs["new"].values()])
    rows.append(
        ["mean over sets", f"{old_mean:.2f}", f"{new_mean:.2f}", f"{new_mean / old_mean:.2f}"]
    )
    header = ["images", f"{args.old.name} s/MP", f"{args.new.name} s/MP", "new/old"]
    print(g.markdown_table(header, rows))
    print(f"median of the per-set ratios: {np.median(ratios):.2f} (goal ≤ 1.5)")


def load_sets(n_images: int):
    sets = [s for s in (g.load_cells3d(False), g.load_cho(False), g.load_huh7(False)) if s]
    return sets + [g.synthetic_set(m, n_images, 256) for m in g.SYNTHETIC]


def time_sets(net, sets, n_images: int, warm: bool = False) -> dict[str, float]:
    """Seconds per megapixel of ``net.predict`` on the first images of every set."""
    out = {}
    for s in sets:
        images = s.images[:n_images]
        if warm:
            net.predict(images[0])
        mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
        t0 = time.perf_counter()
        for im in images:
            net.predict(im)
        out[s.name] = (time.perf_counter() - t0) / mp
    return out


def old_code_times(code: Path, model: Path, n_images: int) -> dict[str, float]:
    """:func:`time_sets` of ``model`` in a child process importing ``code``'s napari_unet."""
    env = {**os.environ, "PYTHONPATH": str(code.resolve())}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(model), "--images", str(n_images)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
