"""Zero-shot F1 of the bundled model on the development images: the images settings of
the prediction path are chosen on, kept apart from those the benchmarks report.

- synthetic: ``--images`` images per modality of ``scripts/synthetic_modalities.py``, each
  the second image of a series drawn from ``--seed`` + 1000·k (k = 0, 1, …; 850 000+ by
  default, where nothing else draws: ``train_generalist.py`` stays below 700 000 and the
  benchmarks start at ``BENCHMARK_SEEDS``, 1 000 000); rods in the phase look, as the
  benchmark's;
- CHO planes t1–t9, z1 and z2 (``generalist.py`` scores other frames);
- cells3d whole planes z26–z47, every third (the generalist learned their top halves);
- ``crowded`` (only when asked for by ``--sets``): 12 fields of 384² px of crowded
  fluorescent nuclei 18 px wide, uneven in brightness, seeds 880 000 + 1000·k (the kind
  of image the issue's first row describes; :func:`crowded_nuclei`).

The real sets are read from ``../shared/data`` and skipped, with a line, when absent.
Prints, per set, the mean F1 (IoU ≥ 0.5), then each image's F1 and the scale it was seen
at; then the mean over the sets and the seconds. The sections of benchmarks/RESULTS.md
that say "development images" used these (``--images 8``).

    python benchmarks/development.py [--sets he rods cho crowded …] [--images 8] [--seed 850000]
        [--model PATH] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "scripts"))

#: Where the development seeds start (between the training seeds and the benchmarks').
DEVELOPMENT_SEEDS = 850_000


def synthetic(modality: str, n: int, seed: int) -> list:
    from synthetic_modalities import synth_series

    pinned = {"look": "phase"} if modality == "rods" else {}
    return [synth_series(modality, 2, 256, seed + 1000 * k, **pinned)[1] for k in range(n)]


def crowded_nuclei(n: int = 12) -> list:
    """Crowded fluorescent nuclei 18 px wide (touching clusters, coverage 0.35–0.57),
    ``n`` fields of 384² px, seeds 880 000 + 1000·k."""
    from synthetic_modalities import synth

    return [
        synth(
            "fluo_nuclei",
            384,
            880_000 + 1000 * k,
            diameter=18.0,
            coverage=0.35 + 0.02 * k,
            cluster=0.85,
        )  # fmt: skip
        for k in range(n)
    ]


def real_sets() -> dict[str, list]:
    import tifffile

    sets = {}
    cho = DATA / "cho3d"
    if (cho / "cho_img.tif").exists():
        img, lab = tifffile.imread(cho / "cho_img.tif"), tifffile.imread(cho / "cho_labels.tif")
        sets["cho"] = [(img[t, z], lab[t, z]) for t in range(1, 10) for z in (1, 2)]
    else:
        print(f"cho: {cho} not found, skipped", flush=True)
    cells = DATA / "cells3d"
    if (cells / "nuclei.tif").exists():
        img = tifffile.imread(cells / "nuclei.tif")
        lab = tifffile.imread(cells / "nuclei_labels.tif")
        sets["cells3d"] = [(img[z], lab[z]) for z in range(26, 48, 3)]
    else:
        print(f"cells3d: {cells} not found, skipped", flush=True)
    return sets


def main() -> None:
    from synthetic_modalities import MODALITIES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sets", nargs="*", default=None, help=f"{' '.join(MODALITIES)} cho cells3d crowded"
    )
    ap.add_argument("--images", type=int, default=8, help="synthetic images per modality")
    ap.add_argument("--seed", type=int, default=DEVELOPMENT_SEEDS, help="first series' seed")
    ap.add_argument("--model", default=None, help="a model file (default: the bundled one)")
    ap.add_argument("--json", default=None, help="write the per-image figures here")
    args = ap.parse_args()

    from napari_unet.core import UNet
    from napari_unet.core.metrics import evaluate

    wanted = set(args.sets) if args.sets else None
    sets = {
        m: synthetic(m, args.images, args.seed) for m in MODALITIES if not wanted or m in wanted
    }
    if not wanted or wanted & {"cho", "cells3d"}:
        sets.update({k: v for k, v in real_sets().items() if not wanted or k in wanted})
    if wanted and "crowded" in wanted:
        sets["crowded"] = crowded_nuclei()
    net = UNet.default() if args.model is None else UNet.load(args.model)
    first = next(iter(sets.values()))
    net.predict(first[0][0])  # traced once, outside the timing
    out: dict = {}
    t_all = time.perf_counter()
    for name, pairs in sets.items():
        f1, scales = [], []
        for image, truth in pairs:
            p = net.predict(image)
            f1.append(float(evaluate(p.labels, truth)["f1"]))
            scales.append(float(p.scale))
        out[name] = {"f1": f1, "scale": scales}
        print(
            f"{name:15s} {np.mean(f1):.3f}  F1 "
            + " ".join(f"{x:.2f}" for x in f1)
            + "  | scale "
            + " ".join(f"{x:.2f}" for x in scales),
            flush=True,
        )
    mean = float(np.mean([np.mean(v["f1"]) for v in out.values()]))
    print(f"mean of {len(out)} sets: {mean:.3f} ({time.perf_counter() - t_all:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"mean": mean, "sets": out}, indent=1))


if __name__ == "__main__":
    main()
