"""Write domain-randomised synthetic microscopy images with their instance masks
(:mod:`napari_unet.core.synthetic`, which the scripts and benchmarks import from here).

    python scripts/synthetic_modalities.py --modality he --n 4 --out /tmp/he
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_unet.core.synthetic import (  # noqa: F401 (the scripts' and benchmarks' names)
    BENCHMARK_SEEDS,
    DIAMETERS,
    DTYPES,
    MODALITIES,
    SERIES_KEYS,
    draw_params,
    layout,
    render,
    synth,
    synth_mixture,
    synth_series,
    synth_set,
)


def main() -> None:
    import tifffile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--modality", choices=MODALITIES, default="fluo_nuclei")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (img, mask) in enumerate(synth_set(args.modality, args.n, args.size, args.seed)):
        tifffile.imwrite(args.out / f"{args.modality}_{i:03d}.tif", img)
        tifffile.imwrite(args.out / f"{args.modality}_{i:03d}_mask.tif", mask)


if __name__ == "__main__":
    main()
