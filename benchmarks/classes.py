"""Several object classes: per-class F1 on images the model never trained on.

Synthetic two-class images (``scripts/synthetic_classes.py``): bright round blobs (class
1) and dim rods (class 2), or rods as bright as the blobs (shape alone tells them apart).
Each model trains for a fixed number of steps on two images annotated with labels 1
(background), 2 (blobs) and 3 (rods) and is scored on six other images, per class
(instances matched at IoU ≥ 0.5 within their class: an object given the wrong class is a
false positive of that class and a false negative of its own).

    python benchmarks/classes.py [--epochs 40] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from common import markdown_table
from synthetic_classes import two_class_image

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, evaluate
from napari_unet.core.training.targets import mask_to_annotation

TRAIN_SEEDS = (100, 101)
TEST_SEEDS = tuple(range(200, 206))
SIZE, N = 192, 24


def scenario(name: str, net: UNet, rods, cfg: TrainConfig) -> dict:
    pairs = []
    for s in TRAIN_SEEDS:
        img, mask, classes = two_class_image(SIZE, N, s, rod_brightness=rods)
        pairs.append(TrainingPair(img, annotation=mask_to_annotation(mask, classes)))
    t0 = time.perf_counter()
    result = net.train(pairs, cfg)
    seconds = time.perf_counter() - t0
    preds, truths = [], []
    for s in TEST_SEEDS:
        img, mask, classes = two_class_image(SIZE, N, s, rod_brightness=rods)
        p = net.predict(img, diameter=None)
        preds.append((p.labels, p.classes))
        truths.append((mask, classes))
    # pool the six images side by side: one score per class over all their objects
    pl = np.concatenate([_offset(p[0], preds[:i]) for i, p in enumerate(preds)], axis=1)
    pc = np.concatenate([p[1] for p in preds], axis=1)
    tl = np.concatenate([_offset(t[0], truths[:i]) for i, t in enumerate(truths)], axis=1)
    tc = np.concatenate([t[1] for t in truths], axis=1)
    scores = evaluate(pl, tl, pc, tc)
    acc = {k: float((pc[tc == k] == k).mean()) for k in (1, 2)}
    return {
        "scenario": name,
        "steps": result.steps_run,
        "seconds": round(seconds, 1),
        "f1": scores["f1"],
        "f1_class1": scores["per_class"]["1"]["f1"],
        "f1_class2": scores["per_class"]["2"]["f1"],
        "pixel_class_accuracy_1": round(acc[1], 4),
        "pixel_class_accuracy_2": round(acc[2], 4),
        "objects": scores["n_true"],
    }


def _offset(labels, before):
    """Instance ids made unique across the pooled images."""
    top = sum(int(b[0].max()) for b in before)
    return np.where(labels > 0, labels.astype(np.int64) + top, 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument(
        "--skip-default", action="store_true", help="skip fine-tuning the bundled model"
    )
    args = ap.parse_args()
    cfg = TrainConfig(
        epochs=args.epochs, steps_per_epoch=args.steps, patch_size=64, batch_size=8, seed=0,
        early_stopping_patience=10_000,
    )  # fmt: skip
    rows = []
    small = UNetConfig(depth=2, base_filters=16)
    rows.append(scenario("new network, dim rods", UNet.new(small), (0.4, 0.55), cfg))
    rows.append(scenario("new network, rods as bright (shape only)", UNet.new(small),
                         (0.7, 1.0), cfg))  # fmt: skip
    if not args.skip_default:
        rows.append(scenario("bundled nuclei model widened, shape only", UNet.default(),
                             (0.7, 1.0), cfg))  # fmt: skip
    for r in rows:
        print(json.dumps(r), flush=True)
    header = ["scenario", "steps", "s", "F1", "F1 class 1", "F1 class 2", "px class acc 1/2"]
    table = [
        [r["scenario"], r["steps"], r["seconds"], f"{r['f1']:.3f}", f"{r['f1_class1']:.3f}",
         f"{r['f1_class2']:.3f}",
         f"{r['pixel_class_accuracy_1']:.3f} / {r['pixel_class_accuracy_2']:.3f}"]
        for r in rows
    ]  # fmt: skip
    print(markdown_table(header, table))


if __name__ == "__main__":
    main()
