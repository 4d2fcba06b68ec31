"""Prediction seconds per megapixel of two models on the images of ``generalist.py``,
timed alone (no training in between), the models alternating round by round (issue 22's
≤ 1.5× goal).

``generalist.py`` times each prediction once, between fine-tuning runs: on a shared
machine its s/MP columns move with the load. Here each model predicts the same first
``--images`` scored images of every set, after a warm-up, for ``--rounds`` rounds in
alternating order; the figure per set is the median round. The object size is measured
as in ``predict``, so a model that sees the objects at a larger scale pays for it.

    python benchmarks/generalist_speed.py    # ~1 min on 2 cores
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()

    sets = [s for s in (g.load_cells3d(False), g.load_cho(False), g.load_huh7(False)) if s]
    sets += [g.synthetic_set(m, args.images, 256) for m in g.SYNTHETIC]
    models = {"old": UNet.load(args.old), "new": UNet.load(args.new)}
    for s in sets:  # warm-up: each shape traced once, outside the timing
        for net in models.values():
            net.predict(s.images[0])
    secs: dict[str, dict[str, list[float]]] = {k: {} for k in models}
    for rnd in range(args.rounds):
        order = list(models) if rnd % 2 == 0 else list(models)[::-1]
        for s in sets:
            images = s.images[: args.images]
            mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
            for k in order:
                t0 = time.perf_counter()
                for im in images:
                    models[k].predict(im)
                secs[k].setdefault(s.name, []).append((time.perf_counter() - t0) / mp)
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


if __name__ == "__main__":
    main()
