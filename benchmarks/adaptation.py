"""Does the model adapt to what a user brings? Every figure on data the default model
never saw (issue 8).

1. Object size: zero-shot instance F1 on real CHO nuclei (../shared/data/cho3d, ~70 px
   wide, 3× the default's training nuclei), planes z0–z2 of all frames, at the image's own
   scale and with the automatic size; the sample image zoomed 0.5×, 2×, 3× against 1×.
2. Human in the loop on unseen data: CHO (train on frame 0, test on frames 10–19) and
   synthetic rods (scripts/synthetic_rods.py): a simulated person copies the prediction
   into an annotation and corrects the k worst objects (k = 5, 10, 20), then the default
   model is fine-tuned for a fixed number of steps.
3. Touching rods after fine-tuning on one densely annotated image.
4. Scribbles vs dense labels of the same CHO frame (fine-tuning the default model).
5. The loop's latencies: stop → return, first batch of a first and of a repeated run,
   the CLI's exit after its last epoch.
6. float32 vs mixed bfloat16 training on this CPU: steps/s and F1 side by side.

    python benchmarks/adaptation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import ROOT, correction, markdown_table, scribbles

sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_rods import synth_rods  # noqa: E402

from napari_unet.core import TrainConfig, TrainingPair, UNet, evaluate, mask_to_annotation  # noqa: E402

CHO = ROOT.parent / "shared" / "data" / "cho3d"
#: fine-tuning budget in steps (fixed, so runs are comparable); about 20–40 s here
FT = {"epochs": 3, "steps_per_epoch": 40, "patch_size": 128, "batch_size": 8}


def load_cho():
    import tifffile

    if not (CHO / "cho_img.tif").exists():
        return None
    return tifffile.imread(CHO / "cho_img.tif"), tifffile.imread(CHO / "cho_labels.tif")


def unlabelled_border_objects(pred, truth):
    """Predicted instances that touch the image border and match no true object: the
    CHO silver labels leave out most nuclei cut by the border (37 of 585 true objects
    in z0–z2 touch it, against 3–4 predicted per plane)."""
    from napari_unet.core.metrics import iou_matrix

    iou, _, p_ids = iou_matrix(pred, truth)
    best = iou.max(axis=0) if iou.size else np.zeros(len(p_ids))
    edge = np.unique(np.concatenate([pred[0], pred[-1], pred[:, 0], pred[:, -1]]))
    return [int(p) for p, b in zip(p_ids, best) if b < 0.5 and p in edge]


def mean_scores(net, images, truths, **kw):
    rows = []
    for im, gt in zip(images, truths):
        pred = net.predict(im, **kw).labels
        r = evaluate(pred, gt)
        inner = np.where(np.isin(pred, unlabelled_border_objects(pred, gt)), 0, pred)
        r["f1_inner"] = evaluate(inner, gt)["f1"]
        rows.append(r)
    keys = ("f1", "f1_inner", "pixel_dice", "precision", "recall")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def otsu_f1(images, truths):
    from common import otsu_watershed

    return float(
        np.mean([evaluate(otsu_watershed(im), gt)["f1"] for im, gt in zip(images, truths)])
    )


# ----------------------------------------------------------------------- 1. size
def object_size(cho, quick):
    from skimage.transform import rescale

    out = {}
    if cho is not None:
        img, lab = cho
        frames = range(0, 20, 4 if quick else 1)
        ims = [img[t, z] for t in frames for z in (0, 1, 2)]
        gts = [lab[t, z] for t in frames for z in (0, 1, 2)]
        net = UNet.default()
        t0 = time.perf_counter()
        auto = mean_scores(net, ims, gts)
        sec = (time.perf_counter() - t0) / len(ims)
        d = net.predict(ims[0]).diameter
        native = mean_scores(net, ims, gts, diameter=None)
        out["cho"] = {
            "planes": len(ims),
            "native": native,
            "auto": auto,
            "measured_diameter": d,
            "otsu_f1": otsu_f1(ims, gts),
            "seconds_per_plane_auto": sec,
        }
        print(
            f"CHO zero-shot ({len(ims)} planes): own scale F1 {native['f1']:.3f}, automatic size "
            f"F1 {auto['f1']:.3f} (P {auto['precision']:.3f} R {auto['recall']:.3f}, measured "
            f"{d:.0f} px), Otsu {out['cho']['otsu_f1']:.3f}",
            flush=True,
        )
    import tifffile

    si = tifffile.imread(ROOT / "sample_data/img2d.tif").astype(np.float32)
    sm = tifffile.imread(ROOT / "sample_data/mask2d.tif")
    net = UNet.default()
    zooms = {}
    for z in (1.0, 0.5, 2.0, 3.0):
        im = si if z == 1 else rescale(si, z, order=1, anti_aliasing=z < 1, preserve_range=True)
        gt = sm if z == 1 else rescale(sm, z, order=0, anti_aliasing=False, preserve_range=True)
        p = net.predict(im)
        fixed = net.predict(im, diameter=None)
        zooms[z] = {
            "auto": evaluate(p.labels, gt.astype(np.int32))["f1"],
            "native": evaluate(fixed.labels, gt.astype(np.int32))["f1"],
            "diameter": p.diameter,
        }
        print(
            f"sample ×{z}: automatic size F1 {zooms[z]['auto']:.3f} (measured "
            f"{p.diameter:.0f} px), own scale {zooms[z]['native']:.3f}",
            flush=True,
        )
    out["sample_zoom"] = zooms
    return out


# ----------------------------------------------------------------------- 2. HITL
#: a detection this many times brighter than the background is a nucleus to any eye
VISIBLE = 3.0


def plane_errors(pred, truth, image):
    """What a person would fix in one plane, worst first.

    True objects, those the prediction missed, cut or merged first (a spare predicted
    piece inside counts as a cut), then the rest by how badly it outlines them (lowest
    IoU first); and false
    detections (mostly outside every true object), largest first — but only those that
    do not plainly show a nucleus. The CHO silver labels leave out real nuclei (a dim
    one in frame 0, those cut by the image border); a biologist would not erase them.
    """
    from napari_unet.core.metrics import iou_matrix

    iou, t_ids, p_ids = iou_matrix(pred, truth)
    best_t = iou.max(axis=1) if iou.size else np.zeros(len(t_ids))
    best_p = iou.max(axis=0) if iou.size else np.zeros(len(p_ids))
    fix = {int(t): float(b) for t, b in zip(t_ids, best_t)}
    background = max(float(np.median(image[(pred == 0) & (truth == 0)])), 1e-6)
    false = []
    for p, b in zip(p_ids, best_p):
        if b >= 0.5:
            continue
        under = truth[pred == p]
        if (under > 0).mean() >= 0.5:  # a piece of a true object: that object is wrong
            host = int(np.bincount(under[under > 0]).argmax())
            fix[host] = min(fix[host], 0.0)  # cut in pieces: as bad as a miss
        elif np.median(image[pred == p]) < VISIBLE * background:
            false.append((int(under.size), int(p)))
    objects = sorted(fix, key=lambda t: (fix[t], -int((truth == t).sum())))
    return objects, [p for _, p in sorted(false, reverse=True)]


def solid_object(truth, i):
    """A true object as a person paints it: solid (holes filled) and with a smooth
    outline (closed by a disk a tenth of its width), never over another object. The CHO silver
    labels follow the bright texture of dim nuclei, with holes and bites that a
    biologist would not draw."""
    from scipy import ndimage as ndi
    from skimage.morphology import disk

    obj = truth == i
    radius = max(2, round(0.1 * np.sqrt(4 * obj.sum() / np.pi)))  # a tenth of its width
    solid = ndi.binary_fill_holes(ndi.binary_closing(obj, disk(radius), border_value=0))
    return (solid & ((truth == 0) | obj)) | obj


def corrected_annotation(pred, truth, image, k, seed=0):
    """The annotation a person makes from a prediction, plane by plane, with the k worst
    errors corrected; and the pixels they painted.

    The prediction is copied into the annotation (as the Annotate widget does) where it
    finds at least half of the objects; a plane where it is mostly wrong is started from
    an empty annotation with a few background strokes. A wrong object is painted whole as the true object
    (``solid_object``) with a thin background ring (``correction``), and background where the predicted
    pieces spill outside it; a false detection is painted background. Corrections
    alternate between objects and false detections, worst first, round-robin over the
    planes.
    """
    planes = pred.ndim == 3
    pred3, truth3, image3 = (
        (pred, truth, image) if planes else (pred[None], truth[None], image[None])
    )
    ann = np.zeros(pred3.shape, np.uint8)
    for z in range(len(pred3)):
        if evaluate(pred3[z], truth3[z])["recall"] >= 0.5:
            ann[z] = mask_to_annotation(pred3[z])
        else:
            ann[z] = np.where(scribbles(truth3[z], object_fraction=0, seed=seed + z) == 1, 1, 0)
    before = ann.copy()
    objs, falses = [], []
    for z in range(len(pred3)):
        o, f = plane_errors(pred3[z], truth3[z], image3[z])
        # (rank in its plane, plane): worst first in every plane, round-robin over planes
        objs += [(r, z, "truth", t) for r, t in enumerate(o)]
        falses += [(r, z, "pred", p) for r, p in enumerate(f)]
    objs = [e[1:] for e in sorted(objs)]
    falses = [e[1:] for e in sorted(falses)]
    todo = [e for pair in zip(objs, falses) for e in pair]
    n = min(len(objs), len(falses))
    todo += objs[n:] + falses[n:]
    todo = todo[:k]
    for z, kind, i in todo:
        a, p, t = ann[z], pred3[z], truth3[z]
        if kind == "truth":
            solid = solid_object(t, i)
            ids, inside = np.unique(p[solid & (p > 0)], return_counts=True)
            area = np.bincount(p.ravel())[ids] if len(ids) else ids
            # the predicted pieces of this object (not a neighbour it grazes)
            pieces = np.isin(p, ids[inside >= 0.25 * area])
            a[pieces & (t == 0) & ~solid] = 1  # what the prediction spilled outside it
            c = correction(np.where(solid, i, t), i)
            a[c > 0] = c[c > 0]
        else:
            a[(p == i) & (t == 0)] = 1
    if not planes:
        ann, before = ann[0], before[0]
    return ann, ann != before, len(todo)


def hitl(train_img, train_gt, test_imgs, test_gts, ks, label):
    base = UNet.default()
    zero = mean_scores(base, test_imgs, test_gts)
    pred = base.predict(train_img).labels
    log = [{"corrected": 0, **zero, "dice": zero["pixel_dice"], "seconds": 0.0, "cpu_s": 0.0}]
    print(
        f"{label}: zero-shot F1 {zero['f1']:.3f} (border-tolerant {zero['f1_inner']:.3f}) "
        f"Dice {zero['pixel_dice']:.3f}",
        flush=True,
    )
    cores = os.cpu_count() or 1
    for k in ks:
        ann, painted, n = corrected_annotation(pred, train_gt, train_img, k)
        net = UNet.default()
        t0, c0 = time.perf_counter(), time.process_time()
        net.train([TrainingPair(train_img, annotation=ann, painted=painted)], TrainConfig(**FT))
        sec, cpu = time.perf_counter() - t0, (time.process_time() - c0) / cores
        s = mean_scores(net, test_imgs, test_gts)
        log.append(
            {
                "corrected": n,
                **s,
                "dice": s["pixel_dice"],
                "seconds": sec,
                "cpu_s": cpu,
                "postprocessing": net.metadata.postprocessing,
            }
        )
        print(
            f"{label}: {n} corrected, {sec:.0f} s ({cpu:.0f} CPU s per core) → F1 {s['f1']:.3f} "
            f"(border-tolerant {s['f1_inner']:.3f}) P {s['precision']:.3f} R {s['recall']:.3f} "
            f"Dice {s['pixel_dice']:.3f}",
            flush=True,
        )
    return log


#: Two looks of the synthetic rods: touching cells drawn as one dark region (only their
#: shape tells them apart), and with the faint light line phase contrast shows where two
#: cells touch (scripts/synthetic_rods.py, ``contact``).
RODS = {"rods": 0.0, "rods with contact lines": 1.0}


def rods_data(n_test=3, contact=0.0):
    train = synth_rods(256, seed=100, contact=contact)
    tests = [synth_rods(256, seed=200 + i, contact=contact) for i in range(n_test)]
    return train, [t[0] for t in tests], [t[1] for t in tests]


# ----------------------------------------------------------------------- 3/4
def dense_finetune(pairs, test_imgs, test_gts):
    net = UNet.default()
    t0 = time.perf_counter()
    net.train(pairs, TrainConfig(**FT))
    s = mean_scores(net, test_imgs, test_gts)
    s["seconds"] = time.perf_counter() - t0
    s["postprocessing"] = net.metadata.postprocessing
    return s


# ----------------------------------------------------------------------- 5
def latencies():
    import tifffile
    from skimage.transform import rescale  # noqa: F401 - warm the import like a session

    si = tifffile.imread(ROOT / "sample_data/img2d.tif")
    sm = tifffile.imread(ROOT / "sample_data/mask2d.tif")
    pair = [TrainingPair(si[:256, :256], mask=sm[:256, :256])]
    cfg = TrainConfig(epochs=50, steps_per_epoch=20, tune_postprocessing=False)
    out = {}
    current = UNet.default()
    for run in ("first", "repeated"):
        net = current.copy()  # as the Train widget does
        first = {}
        stop = threading.Event()
        t_click = time.perf_counter()

        def progress(p, first=first, stop=stop):
            if p.kind == "batch" and "t" not in first:
                first["t"] = time.perf_counter()
            if p.kind == "batch" and p.step == 30:
                first["stop"] = time.perf_counter()
                stop.set()

        net.train(pair, cfg, progress=progress, stop_event=stop)
        t_end = time.perf_counter()
        out[f"first_batch_{run}_s"] = first["t"] - t_click
        out[f"stop_to_return_{run}_s"] = t_end - first["stop"]
        print(
            f"{run} run: first batch after {out[f'first_batch_{run}_s']:.2f} s, stop → return "
            f"{out[f'stop_to_return_{run}_s']:.2f} s",
            flush=True,
        )
    # stop pressed before the first batch
    stop = threading.Event()
    stop.set()
    t0 = time.perf_counter()
    current.copy().train(pair, cfg, stop_event=stop)
    out["stop_before_first_batch_s"] = time.perf_counter() - t0
    print(f"stop before the first batch → return {out['stop_before_first_batch_s']:.2f} s")
    # the CLI: exit after the last epoch
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        tifffile.imwrite(d / "im.tif", si[:256, :256])
        tifffile.imwrite(d / "m.tif", sm[:256, :256])
        cmd = [
            sys.executable,
            "-m",
            "napari_unet.cli",
            "train",
            "--image",
            str(d / "im.tif"),
            "--mask",
            str(d / "m.tif"),
            "--out",
            str(d / "m.keras"),
            "--epochs",
            "2",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t_last = None
        for line in proc.stdout:
            if "epoch 2/" in line:
                t_last = time.perf_counter()
        proc.wait()
        t_exit = time.perf_counter()
        out["cli_exit_after_last_epoch_s"] = None if t_last is None else t_exit - t_last
        print(
            f"CLI: exit {out['cli_exit_after_last_epoch_s']} s after its last epoch line "
            f"(includes the post-processing search and saving), rc {proc.returncode}"
        )
    return out


# ----------------------------------------------------------------------- 6
def precision(train_img, train_gt, test_imgs, test_gts):
    import tensorflow as tf

    out = {}
    x = tf.random.normal((8, 128, 128, 16))
    k = tf.random.normal((3, 3, 16, 16))
    for name in ("float32", "bfloat16"):
        os.environ["NAPARI_UNET_PRECISION"] = name
        dt = tf.float32 if name == "float32" else tf.bfloat16
        xx, kk = tf.cast(x, dt), tf.cast(k, dt)
        tf.nn.conv2d(xx, kk, 1, "SAME")
        t0 = time.perf_counter()
        for _ in range(20):
            tf.nn.conv2d(xx, kk, 1, "SAME").numpy()
        conv = 20 * 2 * 8 * 128 * 128 * 9 * 16 * 16 / (time.perf_counter() - t0) / 1e9
        net = UNet.default()
        net2 = UNet.new(net.config)  # built under this policy
        net2.keras_model.set_weights(net.keras_model.get_weights())
        net2.metadata = net.metadata.copy()
        steps = []

        def progress(p, steps=steps):
            if p.kind == "batch":
                steps.append(time.perf_counter())

        net2.train([TrainingPair(train_img, mask=train_gt)], TrainConfig(**FT), progress=progress)
        rate = (len(steps) - 11) / (steps[-1] - steps[10])
        s = mean_scores(net2, test_imgs, test_gts)
        t0 = time.perf_counter()
        net2.predict(test_imgs[0], diameter=None)
        pred_s = time.perf_counter() - t0
        out[name] = {
            "steps_per_s": rate,
            "f1": s["f1"],
            "dice": s["pixel_dice"],
            "conv_gflops": conv,
            "predict_s": pred_s,
        }
        print(
            f"{name}: {rate:.2f} steps/s, F1 {s['f1']:.3f}, conv2d 3×3 {conv:.0f} GFLOP/s, "
            f"predict {pred_s:.2f} s",
            flush=True,
        )
    os.environ.pop("NAPARI_UNET_PRECISION", None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer CHO planes")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    results = {}
    cho = load_cho()
    if cho is None:
        print(f"CHO data not found at {CHO}: its figures are skipped", flush=True)
    want = set(args.only or ["size", "hitl", "rods", "scribbles", "latency", "precision"])
    if cho is not None:
        img, lab = cho
        # the frame a person corrects or labels: planes z0–z3 of frame 0 (z4 holds only
        # speckles); the HITL frame keeps z0–z2, the planes tested (z3's silver labels
        # mark only crescents of the dim nuclei tops: repainting them as the truth
        # teaches the network to carve nuclei)
        train_img, train_gt = img[0, :4], lab[0, :4]
        test_frames = range(10, 20, 2 if args.quick else 1)
        test_imgs = [img[t, z] for t in test_frames for z in (0, 1, 2)]
        test_gts = [lab[t, z] for t in test_frames for z in (0, 1, 2)]
    rods = {name: rods_data(contact=c) for name, c in RODS.items()}
    if "size" in want:
        results["size"] = object_size(cho, args.quick)
    if "hitl" in want:
        if cho is not None:
            results["hitl_cho"] = hitl(
                train_img[:3], train_gt[:3], test_imgs, test_gts, (5, 10, 20), "CHO"
            )
        for name, (train, imgs, gts) in rods.items():
            results[f"hitl_{name}"] = hitl(*train, imgs, gts, (5, 10, 20), name)
    if "rods" in want:
        for name, ((rod_img, rod_mask), imgs, gts) in rods.items():
            s = dense_finetune([TrainingPair(rod_img, mask=rod_mask)], imgs, gts)
            results[f"{name} dense"] = s
            print(
                f"touching {name}, fine-tuned on one annotated image: F1 {s['f1']:.3f} "
                f"Dice {s['pixel_dice']:.3f} ({s['seconds']:.0f} s) {s['postprocessing']}",
                flush=True,
            )
    if "scribbles" in want and cho is not None:
        dense = dense_finetune([TrainingPair(train_img, mask=train_gt)], test_imgs, test_gts)
        ann = np.stack([scribbles(g, seed=z) for z, g in enumerate(train_gt)])
        sparse = dense_finetune(
            [TrainingPair(train_img, annotation=ann, painted=ann > 0)], test_imgs, test_gts
        )
        results["scribbles_vs_dense"] = {
            "dense": dense,
            "scribbles": sparse,
            "scribble_fraction": float((ann > 0).mean()),
        }
        print(
            f"CHO dense: F1 {dense['f1']:.3f} Dice {dense['pixel_dice']:.3f}; scribbles "
            f"({100 * (ann > 0).mean():.1f} % of pixels): F1 {sparse['f1']:.3f} Dice "
            f"{sparse['pixel_dice']:.3f}",
            flush=True,
        )
    if "latency" in want:
        results["latency"] = latencies()
    if "precision" in want and cho is not None:
        results["precision"] = precision(train_img, train_gt, test_imgs, test_gts)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "adaptation.json").write_text(json.dumps(results, indent=1, default=str))
    hitl_keys = [k for k in results if k.startswith("hitl_")]
    if hitl_keys:
        rows = []
        for key in hitl_keys:
            for e in results.get(key, []):
                rows.append(
                    [
                        key[5:],
                        e["corrected"],
                        f"{e['f1']:.3f}",
                        f"{e['f1_inner']:.3f}",
                        f"{e['precision']:.3f}",
                        f"{e['recall']:.3f}",
                        f"{e['dice']:.3f}",
                        f"{e['seconds']:.0f}",
                        f"{e['cpu_s']:.0f}",
                    ]
                )
        header = ["data", "corrected", "F1", "F1 border-tolerant", "P", "R", "Dice"]
        print(markdown_table(header + ["train s", "CPU s/core"], rows))


if __name__ == "__main__":
    main()
