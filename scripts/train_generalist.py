"""Train the bundled generalist model, reproducibly (issue 22).

Data whose licence lets us ship the weights, and nothing else:

* domain-randomised synthetic images of every kind users bring
  (``scripts/synthetic_modalities.py``: fluorescent nuclei, cytoplasm and membranes,
  brightfield, phase contrast, H&E-like RGB, touching rods), drawn from seeds below
  ``BENCHMARK_SEEDS`` (the benchmarks' images are never drawn here); a share of the
  fluorescent ones is inverted (dark objects on a light background), so that polarity
  is learned rather than set;
* three quadrants of the CC0 sample image (the bottom-right one is held out);
* the top halves (rows < 128) of planes of ``../shared/data/cells3d`` (BSD-3; read from
  there, never committed). The benchmarks score its bottom halves. Its labels miss dim
  nuclei, so it weighs less than the rest.

The Cell Tracking Challenge sets (cho3d, huh7) are never read here.

Every image is resized so that its objects' width (twice the largest inscribed radius
of each object's interior, less its one-pixel rim: a rod's thickness, a round cell's
diameter, one cell of a tiled field) is drawn log-uniformly in ``--width``: the
network learns one band of sizes, and prediction brings any image to it (the model's
``object_diameter``). The network predicts background, object and a boundary class;
instances come from cores grown over the boundary (any shape), and the post-processing
search after training keeps whichever seed mode suits the mixture best.

    python scripts/train_generalist.py --time-limit 3600 --out napari_unet/models/generalist.keras

Then ``scripts/fit_size_regression.py`` fits, on the trained network's own features, the
regression that reads the objects' width from the look of an image (weights unchanged;
benchmarks/RESULTS.md, "The width the encoder reads").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_modalities import BENCHMARK_SEEDS, MODALITIES, synth  # noqa: E402
from train_default_model import HELD_OUT, QUADRANTS, print_epoch  # noqa: E402

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, evaluate  # noqa: E402
from napari_unet.core.prediction.object_size import (  # noqa: E402
    mask_diameter,
    rescale_image,
    resize_to,
    scaled_shape,
)

CELLS3D = ROOT.parent / "shared" / "data" / "cells3d"
FLUORESCENT = ("fluo_nuclei", "fluo_cytoplasm", "fluo_membrane")


#: How the generalist measures object width (``config.WIDTH_MEASURES``): each cell's
#: interior, so that packed cells and membranes are sized by one cell's width, not by
#: the width of the field they tile.
WIDTH_MEASURE = "interior"
#: The split the generalist keeps for objects seen at their size (large textured nuclei
#: stay whole; see instances.split_at, and benchmarks/RESULTS.md, "Widths per cell").
GENERALIST_SPLIT = 0.8


def to_width(image: np.ndarray, mask: np.ndarray, width: float):
    """``image`` and ``mask`` resized so the objects' typical width (as the generalist
    measures it, :data:`WIDTH_MEASURE`) is ``width`` px."""
    d = mask_diameter(mask, WIDTH_MEASURE)
    if not d:
        return image, mask
    factor = width / d
    if abs(factor - 1.0) < 0.05:
        return image, mask
    shape = scaled_shape(mask.shape, factor)
    return rescale_image(image, factor), resize_to(mask, shape, labels=True)


def invert(image: np.ndarray) -> np.ndarray:
    """Dark objects on a light background, in the image's own type and range."""
    if image.dtype.kind in "ui":
        lo, hi = int(image.min()), int(image.max())
        return (hi + lo - image.astype(np.int64)).astype(image.dtype)
    return (image.max() + image.min() - image).astype(image.dtype)


def synthetic_pairs(n_per: int, size: int, widths: tuple[float, float], seed: int, rng):
    """``n_per`` images of each modality at object widths drawn in ``widths``."""
    pairs, lo, hi = [], *np.log(widths)
    for k, modality in enumerate(MODALITIES):
        for i in range(n_per):
            s = seed + k * 100_000 + i
            assert s < BENCHMARK_SEEDS
            image, mask = synth(modality, size, seed=s)
            inverted = modality in FLUORESCENT and rng.random() < 0.25
            if inverted:
                image = invert(image)
            image, mask = to_width(image, mask, float(np.exp(rng.uniform(lo, hi))))
            name = f"synthetic {modality} {s}" + (" inverted" if inverted else "")
            pairs.append(TrainingPair(image, mask=mask, name=name))
    return pairs


def real_pairs(widths, rng, weight_sample: float, weight_cells3d: float):
    image = tifffile.imread(ROOT / "sample_data/img2d.tif")
    mask = tifffile.imread(ROOT / "sample_data/mask2d.tif")
    pairs, lo, hi = [], *np.log(widths)
    for name, q in QUADRANTS.items():
        if name == HELD_OUT:
            continue
        for j in range(2):  # each quadrant at two sizes
            im, m = to_width(image[q], mask[q], float(np.exp(rng.uniform(lo, hi))))
            pairs.append(
                TrainingPair(im, mask=m, name=f"img2d.tif {name} #{j}", weight=weight_sample)
            )
    used = []
    if (CELLS3D / "nuclei.tif").exists():
        vol = tifffile.imread(CELLS3D / "nuclei.tif")
        lab = tifffile.imread(CELLS3D / "nuclei_labels.tif")
        for z in range(20, 56, 3):
            im, m = vol[z, :128], lab[z, :128]
            if m.max() == 0:
                continue
            im, m = to_width(im, m, float(np.exp(rng.uniform(lo, hi))))
            pairs.append(TrainingPair(im, mask=m, name=f"cells3d z{z} top", weight=weight_cells3d))
            used.append(z)
    else:
        print(f"cells3d: no data at {CELLS3D}; trained without it", flush=True)
    return pairs, used


def record_mask_width(path: Path, pairs: list) -> None:
    """Record in the model at ``path`` the median width of its training masks
    (``mask_diameter``), as a training run on ``pairs`` records it: a model trained
    before that field existed gets it without training again."""
    widths = [d for d in (mask_diameter(p.mask, WIDTH_MEASURE) for p in pairs) if d]
    net = UNet.load(path)
    net.metadata.mask_diameter = round(float(np.median(widths)), 2)
    net.save(path)
    print(
        f"{path}: mask_diameter {net.metadata.mask_diameter} (median of {len(widths)} masks), "
        f"object_diameter {net.object_diameter}",
        flush=True,
    )


def record_stains(path: Path) -> None:
    """Mark the model at ``path`` as reading stained slides (H&E, IHC) as their
    haematoxylin, as every network this script trains now does (``colour_reading``,
    :mod:`napari_unet.core.stains`): a model trained before that reading existed gets it
    without training again. Its weights are not touched."""
    net = UNet.load(path)
    net.metadata.colour_reading = "stains"
    net.save(path)
    print(f"{path}: colour_reading {net.metadata.colour_reading}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "napari_unet/models/generalist.keras")
    ap.add_argument("--n-per-modality", type=int, default=60)
    ap.add_argument("--size", type=int, default=256, help="synthetic images' side before resizing")
    ap.add_argument("--width", type=float, nargs=2, default=(16.0, 40.0))
    ap.add_argument("--time-limit", type=float, default=3600)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--patch-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--base-filters", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--patience",
        type=int,
        default=40,
        help="epochs without a better validation loss before training stops",
    )
    ap.add_argument(
        "--lr-patience",
        type=int,
        default=10,
        help="epochs without a better validation loss before the learning rate halves",
    )
    ap.add_argument(
        "--record-mask-width",
        type=Path,
        metavar="MODEL",
        help="train nothing: build the training images of these settings and record their "
        "masks' median width in MODEL's metadata (mask_diameter; a training run records it "
        "itself)",
    )
    ap.add_argument(
        "--read-stains",
        type=Path,
        metavar="MODEL",
        help="train nothing: mark MODEL as reading stained slides as their haematoxylin "
        "(colour_reading; a network this script trains reads them so)",
    )
    args = ap.parse_args()
    if args.read_stains:
        record_stains(args.read_stains)
        return

    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    synth_pairs = synthetic_pairs(args.n_per_modality, args.size, args.width, args.seed, rng)
    n_real_share = len(synth_pairs) / 3 / 6  # the sample about 1/9 of the patches
    real, cells3d_planes = real_pairs(args.width, rng, n_real_share / 2, n_real_share / 4)
    pairs = synth_pairs + real
    print(
        f"{len(synth_pairs)} synthetic and {len(real)} real training images ready in "
        f"{time.time() - t0:.0f} s",
        flush=True,
    )
    if args.record_mask_width:
        record_mask_width(args.record_mask_width, pairs)
        return

    net = UNet.new(UNetConfig(depth=args.depth, base_filters=args.base_filters), seed=args.seed)
    net.metadata.width_measure = WIDTH_MEASURE  # kept by every model fine-tuned from it
    cfg = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        time_limit=args.time_limit,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        val_fraction=0.05,
        learning_rate=1e-3,
        early_stopping_patience=args.patience,
        reduce_lr_patience=args.lr_patience,
        seed=args.seed,
    )

    result = net.train(pairs, cfg, progress=print_epoch)
    # training records the median scale its images were brought to as the scale the
    # model was "taught" (a fine-tuned model's users' scale, tried first on their next
    # image); the generalist learned every size, so it has none: each image is measured
    net.metadata.taught_scale = None
    # the search above ran on images of every size at their own scale; the bundled model
    # splits by the scale it sees an image at instead (instances.split_at): readily where
    # it enlarged small objects, and as this says where it sees objects at their size
    net.metadata.postprocessing = {**net.metadata.postprocessing, "split": GENERALIST_SPLIT}
    image = tifffile.imread(ROOT / "sample_data/img2d.tif")
    mask = tifffile.imread(ROOT / "sample_data/mask2d.tif")
    held = QUADRANTS[HELD_OUT]
    scores = evaluate(net.predict(image[held]).labels, mask[held])
    print(f"held-out {HELD_OUT} quadrant of the sample:", scores, flush=True)
    run = net.metadata.training_runs[-1]
    run["data"] = [
        {
            "name": f"synthetic {m} (scripts/synthetic_modalities.py)",
            "images": args.n_per_modality,
            "seeds": [args.seed + k * 100_000, args.seed + k * 100_000 + args.n_per_modality],
            "object_width_px": list(args.width),
        }
        for k, m in enumerate(MODALITIES)
    ] + [
        {"name": f"sample_data/img2d.tif, 3 quadrants ({HELD_OUT} held out)", "images": 6},
        {"name": "cells3d nuclei.tif, rows < 128", "planes": cells3d_planes},
    ]
    net.metadata.description = (
        f"napari-unet generalist model: U-Net depth {args.depth}, {args.base_filters} base "
        "filters, background/object/boundary, trained by scripts/train_generalist.py on "
        "domain-randomised synthetic images of seven modalities (fluorescent nuclei, "
        "cytoplasm and membranes, brightfield, phase contrast, H&E-like RGB, rods), three "
        "quadrants of the CC0 sample image and the top halves of cells3d planes (BSD-3)."
    )
    net.metadata.held_out_scores = {HELD_OUT: scores}
    net.metadata.trained_by = "scripts/train_generalist.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    net.save(args.out)
    print(
        f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) after {result.epochs_run} "
        f"epochs, {result.seconds:.0f} s, stopped by {result.stopped_by}; object diameter "
        f"{net.object_diameter}, post-processing {net.metadata.postprocessing}",
        flush=True,
    )


if __name__ == "__main__":
    main()
