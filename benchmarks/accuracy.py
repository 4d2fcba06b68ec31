"""Accuracy on real ground truth, side by side with the baselines users would pick.

Four folds on the CC0 sample image: train on three quadrants, test on the fourth. Every
trainable method gets the same labels (the dense ground truth of the three quadrants)
and the same CPU budget. Prints a markdown table and writes benchmarks/out/accuracy.json.

    python benchmarks/accuracy.py --seconds 120            # all four folds
    python benchmarks/accuracy.py --folds bottom-right     # the fold the default never saw

Training budgets are CPU seconds divided by the cores (so a run that shares the machine
with other work still gets the same amount of computation).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import numpy as np
from common import (
    HELD_OUT,
    ROOT,
    folds,
    load_sample,
    markdown_table,
    otsu_watershed,
    random_forest,
    tutorial_unet,
)

from napari_unet.core import (
    TrainConfig,
    TrainingPair,
    UNet,
    UNetConfig,
    evaluate,
    mask_to_annotation,
)

KEYS = ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "mean_ap")
CORES = os.cpu_count() or 1


class CpuBudget:
    """A stop event that fires after ``seconds`` × cores of process CPU time."""

    def __init__(self, seconds: float) -> None:
        self.event = threading.Event()
        self.limit = seconds * CORES
        self.t0 = time.process_time()

    def __call__(self, progress) -> None:
        if time.process_time() - self.t0 >= self.limit:
            self.event.set()


def train_ours(net: UNet, pairs, seconds: float, seed: int = 0, **settings) -> UNet:
    """Train ``net`` on TrainingPairs for a CPU budget (``settings`` override TrainConfig)."""
    budget = CpuBudget(seconds)
    cfg = TrainConfig(
        **{
            "epochs": 10_000,
            "steps_per_epoch": 25,
            "patch_size": 128,
            "batch_size": 8,
            "val_fraction": 0.1,
            "early_stopping_patience": 1000,
            "seed": seed,
            **settings,
        }
    )
    net.train(pairs, cfg, progress=budget, stop_event=budget.event)
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--seconds", type=float, default=120, help="training budget per method and fold"
    )
    ap.add_argument("--folds", default="all", help="'all' or a comma-separated list of quadrants")
    ap.add_argument("--methods", default="all")
    args = ap.parse_args()
    image, mask = load_sample()
    have_default = True
    try:
        UNet.default()
    except Exception:  # noqa: BLE001
        have_default = False
    wanted = None if args.folds == "all" else set(args.folds.split(","))
    methods = [
        "unet_scratch",
        "unet_finetuned",
        "default_zero_shot",
        "otsu_watershed",
        "random_forest",
        "tutorial_unet",
    ]
    if args.methods != "all":
        methods = [m for m in methods if m in args.methods.split(",")]
    results: dict[str, dict[str, dict]] = {m: {} for m in methods}
    for test_name, train, (test_img, test_mask) in folds(image, mask):
        if wanted and test_name not in wanted:
            continue
        print(f"== fold: test on {test_name}", flush=True)
        for method in methods:
            t0 = time.perf_counter()
            pairs = [TrainingPair(im, mask=m, name=name) for im, m, name in train]
            if method == "unet_scratch":
                net = train_ours(UNet.new(UNetConfig(), seed=0), pairs, args.seconds)
                labels = net.predict(test_img).labels
            elif method == "unet_finetuned":
                if not have_default:
                    continue
                net = train_ours(UNet.default(), pairs, args.seconds)
                labels = net.predict(test_img).labels
            elif method == "default_zero_shot":
                if not have_default:
                    continue
                labels = UNet.default().predict(test_img).labels
            elif method == "otsu_watershed":
                labels = otsu_watershed(test_img)
            elif method == "random_forest":
                labels = random_forest(
                    [im for im, _, _ in train],
                    [mask_to_annotation(m) for _, m, _ in train],
                    test_img,
                )
            elif method == "tutorial_unet":
                labels = tutorial_unet(
                    [im for im, _, _ in train],
                    [m for _, m, _ in train],
                    test_img,
                    seconds=args.seconds,
                )
            scores = evaluate(labels, test_mask)
            scores["seconds"] = round(time.perf_counter() - t0, 1)
            results[method][test_name] = scores
            print(
                f"   {method:18s} f1 {scores['f1']:.3f}  dice {scores['pixel_dice']:.3f}  "
                f"mAP {scores['mean_ap']:.3f}  ({scores['seconds']} s)",
                flush=True,
            )

    rows = []
    for method, per_fold in results.items():
        if not per_fold:
            continue
        mean = {k: np.mean([s[k] for s in per_fold.values()]) for k in KEYS}
        note = ""
        if method in ("unet_finetuned", "default_zero_shot"):
            seen = [f for f in per_fold if f != HELD_OUT]
            note = f"default saw {', '.join(seen)}" if seen else "clean (held out)"
        rows.append([method, len(per_fold)] + [f"{mean[k]:.3f}" for k in KEYS] + [note])
    header = ["method", "folds", *KEYS, "note"]
    table = markdown_table(header, rows)
    print()
    print(table)
    if HELD_OUT in next(iter(results.values()), {}):
        held_rows = [
            [m, *[f"{r[HELD_OUT][k]:.3f}" for k in KEYS]]
            for m, r in results.items()
            if HELD_OUT in r
        ]
        print(f"\nheld-out fold ({HELD_OUT}) only:\n")
        print(markdown_table(["method", *KEYS], held_rows))
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(
        json.dumps({"seconds": args.seconds, "cores": CORES, "results": results}, indent=1)
    )
    (out / "accuracy.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
