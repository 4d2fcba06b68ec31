"""Train the bundled default nuclei model, reproducibly.

Data we may redistribute only: synthetic nuclei images (scripts/synthetic_nuclei.py) and
three quadrants of the CC0 sample image (top-left, top-right, bottom-left). The
bottom-right quadrant is held out so that zero-shot and human-in-the-loop figures
measured on it mean something.

    python scripts/train_default_model.py --time-limit 1500 \
        --out napari_unet/models/default_nuclei.keras
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

from synthetic_nuclei import synth_set  # noqa: E402

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, evaluate  # noqa: E402

QUADRANTS = {
    "top-left": (slice(0, 256), slice(0, 256)),
    "top-right": (slice(0, 256), slice(256, 512)),
    "bottom-left": (slice(256, 512), slice(0, 256)),
    "bottom-right": (slice(256, 512), slice(256, 512)),
}
HELD_OUT = "bottom-right"


def print_epoch(p) -> None:
    """A training run's progress, one line per epoch (the bundled models' scripts)."""
    if p.kind == "epoch":
        print(
            f"epoch {p.epoch:3d}  loss {p.loss:.4f}  val_loss {p.val_loss or float('nan'):.4f}  "
            f"val_dice {p.val_dice or float('nan'):.3f}  lr {p.learning_rate:.2e}  "
            f"{p.elapsed:.0f} s",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "napari_unet/models/default_nuclei.keras")
    ap.add_argument("--n-synthetic", type=int, default=240)
    ap.add_argument(
        "--real-share", type=float, default=0.25, help="share of patches from the sample"
    )
    ap.add_argument("--time-limit", type=float, default=1500)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--patch-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--metadata-only",
        action="store_true",
        help="record the object size of the training data in an existing model file "
        "(training records it by itself) and save it again; no training",
    )
    args = ap.parse_args()

    image = tifffile.imread(ROOT / "sample_data/img2d.tif")
    mask = tifffile.imread(ROOT / "sample_data/mask2d.tif")
    t0 = time.time()
    synth = synth_set(args.n_synthetic, 256, seed=args.seed)
    print(f"generated {len(synth)} synthetic images in {time.time() - t0:.0f} s", flush=True)
    real = [(name, q) for name, q in QUADRANTS.items() if name != HELD_OUT]
    # weights so that about real_share of the patches come from the real quadrants
    w_real = args.real_share / (1 - args.real_share) * len(synth) / len(real)
    pairs = [TrainingPair(im, mask=m, name=f"synthetic_{i:03d}") for i, (im, m) in enumerate(synth)]
    pairs += [
        TrainingPair(image[q], mask=mask[q], name=f"img2d.tif {name}", weight=w_real)
        for name, q in real
    ]

    if args.metadata_only:
        from napari_unet.core.prediction.object_size import mask_diameter

        net = UNet.load(args.out)
        widths = [mask_diameter(p.mask) for p in pairs]
        net.metadata.object_diameter = round(float(np.median([w for w in widths if w])), 2)
        net.save(args.out)
        print(f"object_diameter {net.metadata.object_diameter} px recorded in {args.out}")
        return

    net = UNet.new(UNetConfig(depth=4, base_filters=16), seed=args.seed)
    cfg = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        time_limit=args.time_limit,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        val_fraction=0.05,
        learning_rate=1e-3,
        early_stopping_patience=30,
        reduce_lr_patience=8,
        seed=args.seed,
    )
    held = QUADRANTS[HELD_OUT]

    result = net.train(pairs, cfg, progress=print_epoch)
    scores = evaluate(net.predict(image[held]).labels, mask[held])
    print(f"held-out {HELD_OUT} quadrant:", scores, flush=True)
    # the metadata says how this model was made; the per-image list of the training run
    # would be 243 entries, so it is summarised
    run = net.metadata.training_runs[-1]
    run["data"] = [
        {
            "name": "synthetic nuclei (scripts/synthetic_nuclei.py)",
            "images": len(synth),
            "shape": [256, 256],
            "seed": args.seed,
        },
        *[
            {
                "name": f"sample_data/img2d.tif {name} quadrant",
                "shape": [256, 256],
                "instances": int(len(np.unique(mask[q])) - 1),
            }
            for name, q in real
        ],
    ]
    net.metadata.description = (
        "napari-unet default nuclei model: U-Net depth 4, 16 base filters, trained by "
        "scripts/train_default_model.py on synthetic fluorescence nuclei and three quadrants "
        f"of the CC0 BBBC038 sample image ({HELD_OUT} held out)."
    )
    net.metadata.held_out_scores = {HELD_OUT: scores}
    net.metadata.trained_by = "scripts/train_default_model.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    net.save(args.out)
    size = args.out.stat().st_size / 1e6
    print(
        f"saved {args.out} ({size:.1f} MB) after {result.epochs_run} epochs, "
        f"{result.seconds:.0f} s, stopped by {result.stopped_by}",
        flush=True,
    )


if __name__ == "__main__":
    main()
