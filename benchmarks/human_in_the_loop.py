"""Human-in-the-loop and sparse-annotation benchmarks on the held-out sample quadrant.

1. Human in the loop: start from the bundled default model (its zero-shot figures first),
   copy its prediction into an annotation (as the Annotate widget does), then each round
   a simulated person corrects k nuclei where prediction and ground truth disagree (paints
   the nucleus, a thin background ring, a background line where it touches another) and
   erases false detections; the model is fine-tuned for a fixed CPU budget. F1 and Dice
   against corrected objects and training seconds; a plot in benchmarks/out/hitl.png.
2. Sparse annotation pays: from scratch on the other three quadrants, scribbles covering
   ≤ 5 % of the pixels against the dense ground truth, same budget, tested on the held-out
   quadrant.

    python benchmarks/human_in_the_loop.py --rounds 4 --per-round 5 --seconds 15
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from accuracy import CORES, train_ours
from common import HELD_OUT, QUADRANTS, ROOT, correction, load_sample, markdown_table, scribbles

from napari_unet.core import (
    TrainingPair,
    UNet,
    UNetConfig,
    evaluate,
    mask_to_annotation,
)
from napari_unet.core.metrics import iou_matrix


def disagreements(pred, truth):
    """Ground-truth ids not matched at IoU ≥ 0.5 (misses, merges, splits) and
    predicted ids matched to nothing (false detections), worst first."""
    iou, t_ids, p_ids = iou_matrix(pred, truth)
    best_t = iou.max(axis=1) if iou.size else np.zeros(len(t_ids))
    best_p = iou.max(axis=0) if iou.size else np.zeros(len(p_ids))
    missed = [int(t) for t, b in sorted(zip(t_ids, best_t), key=lambda x: x[1]) if b < 0.5]
    false = [int(p) for p, b in zip(p_ids, best_p) if b < 0.5]
    return missed, false


def correct(ann, pred, truth, todo) -> None:
    """Paint into ``ann`` what a person paints for each ``(kind, id)`` of ``todo``
    (from :func:`disagreements`): a missed, merged or split true object (``"truth"``)
    with its background ring (``common.correction``); a false detection (``"pred"``)
    erased, background painted where there is no object."""
    for kind, i in todo:
        if kind == "truth":
            c = correction(truth, i)
            ann[c > 0] = c[c > 0]
        else:
            ann[(pred == i) & (truth == 0)] = 1


def fine_tune(net, image, ann, seconds, seed):
    """Fine-tune on the annotation for a CPU budget; returns the CPU seconds per core used."""
    t0 = time.process_time()
    train_ours(
        net,
        [TrainingPair(image, annotation=ann)],
        seconds,
        seed=seed,
        steps_per_epoch=10,
        val_fraction=0.0,
        learning_rate=3e-4,
        reduce_lr_patience=1000,
    )
    return (time.process_time() - t0) / CORES


def human_in_the_loop(image, truth, rounds, per_round, seconds):
    net = UNet.default()
    pred = net.predict(image).labels
    s = evaluate(pred, truth)
    log = [{"round": 0, "corrected": 0, "train_seconds": 0.0, **s}]
    print(
        f"zero-shot: f1 {s['f1']:.3f} dice {s['pixel_dice']:.3f} mAP {s['mean_ap']:.3f}", flush=True
    )
    ann = mask_to_annotation(pred)
    corrected, spent = 0, 0.0
    done_ids: set[int] = set()
    for r in range(1, rounds + 1):
        missed, false = disagreements(pred, truth)
        todo = [("truth", t) for t in missed if t not in done_ids] + [("pred", p) for p in false]
        correct(ann, pred, truth, todo[:per_round])
        done_ids.update(i for kind, i in todo[:per_round] if kind == "truth")
        corrected += len(todo[:per_round])
        spent += fine_tune(net, image, ann, seconds, seed=r)
        pred = net.predict(image).labels
        s = evaluate(pred, truth)
        log.append({"round": r, "corrected": corrected, "train_seconds": round(spent, 1), **s})
        print(
            f"round {r}: {corrected} objects corrected, {spent:.0f} s training: "
            f"f1 {s['f1']:.3f} dice {s['pixel_dice']:.3f} mAP {s['mean_ap']:.3f}",
            flush=True,
        )
    return log


def sparse_vs_dense(image, mask, seconds):
    train = [(image[q], mask[q], n) for n, q in QUADRANTS.items() if n != HELD_OUT]
    test_img, test_mask = image[QUADRANTS[HELD_OUT]], mask[QUADRANTS[HELD_OUT]]
    out = {}
    for kind in ("dense", "scribbles"):
        pairs = []
        covered = []
        for i, (im, m, n) in enumerate(train):
            if kind == "dense":
                pairs.append(TrainingPair(im, mask=m, name=n))
                covered.append(1.0)
            else:
                a = scribbles(m, seed=i)
                pairs.append(TrainingPair(im, annotation=a, name=n))
                covered.append(float((a > 0).mean()))
        net = train_ours(UNet.new(UNetConfig(), seed=0), pairs, seconds)
        s = evaluate(net.predict(test_img).labels, test_mask)
        s["annotated_fraction"] = round(float(np.mean(covered)), 4)
        out[kind] = s
        print(
            f"{kind:9s}: {100 * s['annotated_fraction']:.1f} % of pixels labelled → "
            f"f1 {s['f1']:.3f} dice {s['pixel_dice']:.3f}",
            flush=True,
        )
    return out


def plot(log, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    x = [e["corrected"] for e in log]
    ax.plot(x, [e["f1"] for e in log], "o-", label="F1 @ IoU 0.5")
    ax.plot(x, [e["pixel_dice"] for e in log], "s--", label="pixel Dice")
    for e in log[1:]:
        ax.annotate(
            f"{e['train_seconds']:.0f} s",
            (e["corrected"], e["f1"]),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=7,
        )
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("corrected objects")
    ax.set_ylabel("score on held-out quadrant")
    ax.set_title("napari-unet: human in the loop (default model)", fontsize=9)
    ax.set_ylim(min(0.5, min(e["f1"] for e in log) - 0.05), 1.0)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=15, help="CPU budget per round (per core)")
    ap.add_argument("--sparse-seconds", type=float, default=120)
    ap.add_argument("--skip-sparse", action="store_true")
    ap.add_argument("--only-sparse", action="store_true")
    args = ap.parse_args()
    image, mask = load_sample()
    q = QUADRANTS[HELD_OUT]
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    if args.only_sparse:
        previous = out / "hitl.json"
        log = json.loads(previous.read_text())["hitl"] if previous.exists() else []
    else:
        log = human_in_the_loop(image[q], mask[q], args.rounds, args.per_round, args.seconds)
        plot(log, out / "hitl.png")
    rows = [
        [
            e["round"],
            e["corrected"],
            e["train_seconds"],
            f"{e['f1']:.3f}",
            f"{e['pixel_dice']:.3f}",
            f"{e['mean_ap']:.3f}",
        ]
        for e in log
    ]
    print()
    print(
        markdown_table(
            ["round", "corrected objects", "training s", "F1@0.5", "pixel Dice", "mAP"], rows
        )
    )
    result = {"hitl": log}
    if not args.skip_sparse:
        sp = sparse_vs_dense(image, mask, args.sparse_seconds)
        result["sparse_vs_dense"] = sp
        print()
        print(
            markdown_table(
                ["labels", "labelled pixels", "F1@0.5", "pixel Dice", "mAP"],
                [
                    [
                        k,
                        f"{100 * v['annotated_fraction']:.1f} %",
                        f"{v['f1']:.3f}",
                        f"{v['pixel_dice']:.3f}",
                        f"{v['mean_ap']:.3f}",
                    ]
                    for k, v in sp.items()
                ],
            )
        )
        print(f"F1 gap dense − scribbles: {sp['dense']['f1'] - sp['scribbles']['f1']:+.3f}")
    (out / "hitl.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
