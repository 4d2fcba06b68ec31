"""Fit a model's size regression (``core/prediction/size_model.py``) and write it into
the model file, weights unchanged.

The regression reads the objects' width from the encoder's features. It is fitted on
synthetic images of every modality (``scripts/synthetic_modalities.py``) drawn from
seeds ``--seed`` + 1000·k + modality (200 000 – 319 006 by default: below
``BENCHMARK_SEEDS`` and the development seeds, among those the generalist trains on), a
quarter of the fluorescent ones inverted as ``train_generalist.py`` does; the target is
each mask's width as the model measures masks
(:func:`~napari_unet.core.prediction.object_size.mask_diameter`), in the image's own
pixels. No real image is read.

    python scripts/fit_size_regression.py --model napari_unet/models/generalist.keras \\
        --out /tmp/generalist.keras            # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_modalities import BENCHMARK_SEEDS, MODALITIES, synth  # noqa: E402
from train_generalist import FLUORESCENT, invert  # noqa: E402

from napari_unet.core import UNet  # noqa: E402
from napari_unet.core.prediction.object_size import mask_diameter  # noqa: E402
from napari_unet.core.prediction.predictor import Predictor  # noqa: E402
from napari_unet.core.prediction.size_model import (  # noqa: E402
    encoder_features,
    fit_size_regression,
)

#: Where the fit's images are drawn (training seeds; development draws from 850 000).
SEED = 200_000


def features_and_widths(net: UNet, n_per: int, seed: int, size: int = 256):
    """Encoder features and mask widths of ``n_per`` synthetic images per modality."""
    predictor = Predictor(net)
    rng = np.random.default_rng(seed)
    x, y = [], []
    for k in range(n_per):
        for i, modality in enumerate(MODALITIES):
            s = seed + 1000 * k + i
            assert s < BENCHMARK_SEEDS
            image, mask = synth(modality, size, s)
            if modality in FLUORESCENT and rng.random() < 0.25:
                image = invert(image)
            width = mask_diameter(mask, net.metadata.width_measure)
            if not width:
                continue
            planes, _ = predictor.planes(image)
            x.append(encoder_features(net, planes, predictor.intensity(planes)))
            y.append(width)
    return np.array(x), np.array(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the model file to fit it for")
    ap.add_argument("--out", required=True, help="where to write the model with it")
    ap.add_argument("--n-per-modality", type=int, default=120)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--ridge", type=float, default=100.0)
    args = ap.parse_args()
    if Path(args.out).exists():
        sys.exit(f"{args.out} exists; name a new file")
    t0 = time.perf_counter()
    net = UNet.load(args.model)
    x, y = features_and_widths(net, args.n_per_modality, args.seed)
    reg = fit_size_regression(x, y, args.ridge)
    err = np.abs(np.log([reg.diameter(f) for f in x]) - np.log(y))
    print(
        f"{len(y)} images, {x.shape[1]} features; on them: median error "
        f"{np.exp(np.median(err)):.2f}x, within 2x {np.mean(err < np.log(2)):.0%} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    net.metadata.size_regression = {
        **reg.to_dict(),
        "fitted_by": (
            f"scripts/fit_size_regression.py --n-per-modality {args.n_per_modality} "
            f"--seed {args.seed} --ridge {args.ridge:g}"
        ),
        "images": len(y),
    }
    net.save(args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
