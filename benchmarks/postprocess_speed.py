"""Instance post-processing alone, the plain recipe against ours, side by side in one run.

The probability map is the bundled model's (float32) on a mosaic of the sample; both
turn it into instance labels with the same settings, in alternating rounds:

* the plain recipe (``reference_labels`` of ``tests/core/test_instances.py``: SciPy's
  distance transform, skimage ``gaussian``, ``h_maxima`` and ``watershed``, ``np.unique``
  renumbering), what ``_Instances.labels`` computed before;
* ``napari_unet.core.prediction.instances._Instances(prob).labels(params)`` — fresh for each call,
  as ``UNet.predict`` makes it.

It checks that both give the same labels (to the bit, the same ids) and prints the
seconds of each (median of the rounds) for both seed modes.

    python benchmarks/postprocess_speed.py --size 2048 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from common import ROOT, load_sample, markdown_table, mosaic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path[:0] = [str(ROOT / "tests" / "core"), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from test_instances import reference_labels

    from napari_unet.core import UNet
    from napari_unet.core.prediction.instances import PostprocessParams, _Instances

    os.environ["NAPARI_UNET_PRECISION"] = "float32"
    image, _ = load_sample()
    big = mosaic(image, args.size // image.shape[0])
    net = UNet.default()
    prob = net.predict(big, diameter=net.object_diameter, return_scores=True).scores
    settings = {
        "distance (default)": PostprocessParams(),
        "boundary": PostprocessParams(seed_mode="boundary"),
    }
    seconds: dict = {name: {"plain": [], "ours": []} for name in settings}
    for r in range(args.rounds):
        for name, params in settings.items():
            t0 = time.perf_counter()
            plain = reference_labels(prob, params)
            t1 = time.perf_counter()
            ours = _Instances(prob).labels(params)
            t2 = time.perf_counter()
            if not np.array_equal(plain, ours):
                raise SystemExit(f"{name}: the labels differ on {int((plain != ours).sum())} px")
            seconds[name]["plain"].append(t1 - t0)
            seconds[name]["ours"].append(t2 - t1)
            print(
                f"round {r + 1} {name}: plain {t1 - t0:.2f} s, ours {t2 - t1:.2f} s, "
                f"{int(ours.max())} instances, identical",
                flush=True,
            )
    med = {n: {k: float(np.median(v)) for k, v in s.items()} for n, s in seconds.items()}
    print()
    print(
        markdown_table(
            ["seed mode", f"plain recipe s ({args.size}²)", "ours s", "speed-up"],
            [
                [n, f"{m['plain']:.2f}", f"{m['ours']:.2f}", f"{m['plain'] / m['ours']:.1f}×"]
                for n, m in med.items()
            ],
        )
    )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "postprocess_speed.json").write_text(
        json.dumps({"size": args.size, "rounds": seconds, "median": med}, indent=1)
    )


if __name__ == "__main__":
    main()
