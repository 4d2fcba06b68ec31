"""A z-stack as one volume against a pile of planes (issue 23).

On ``../shared/data/cells3d`` (60 × 256 × 256 nuclei, 3-D labels; skipped with a message when
absent): the bundled model segments the stack plane by plane (each plane its own ids, the
old way), as one volume from its YX planes (``views="yx"``) and as one volume from its YX,
ZY and ZX planes (``views="all"``). Prints, for each: 3-D instance F1 and recall (objects
matched at IoU ≥ 0.5 between 3-D objects), ids (and those of at least 1000 voxels: a
nucleus here has about 30 000; the labels miss dim nuclei, so precision is a lower
bound), predicted ids per true nucleus (ids that
overlap it, a neighbour touching its edge included) and pieces per true nucleus (ids with
most of their voxels inside it: over-segmentation alone; 0 for a missed nucleus), the share of each nucleus' voxels in its largest id, the time and its ratio to
plane by plane (measured side by side in this run, the fastest of ``--repeat`` runs).

    python benchmarks/volumes.py [--model PATH|nuclei] [--diameter PX] [--z-scale Z] [--append]
    python benchmarks/volumes.py --correct 3 [--epochs E --steps S] [--only-correct]
    python benchmarks/volumes.py --set cho3d   # CHO frames, 5 planes each, never seen

``--correct N`` then corrects N planes and trains (the human-in-the-loop step of a
volume): the annotation is the true labels of N planes spread through the labelled z
range (``mask_to_annotation`` of each plane), every other plane left unannotated; the
model trains a fixed number of seeded steps on it and the volume is scored in 3-D before
and after, on the planes nobody annotated (the N planes taken out of prediction and
truth alike, objects still matched in 3-D). ``--only-correct`` skips the comparison of
plane by plane and volume.

``--append`` adds the table(s) to ``benchmarks/RESULTS.md`` under "Volumes (issue 23)".
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cells3d"
sys.path.insert(0, str(ROOT))


def load_model(name: str | None):
    from napari_unet.core import UNet
    from napari_unet.core.errors import UserInputError

    if name:
        from napari_unet.core.network.model_file import named_model_path

        return UNet.load(named_model_path(name)), name
    try:
        return UNet.default(), "default"
    except UserInputError:  # the default model's file is not there: the older bundled one
        return UNet.bundled("nuclei"), "nuclei"


def object_figures(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Means over true objects of: the ids that overlap them (a neighbour touching the
    nucleus' edge counts too), its *pieces* (ids with most of their voxels inside it:
    over-segmentation alone) and the share of its voxels in its largest id."""
    ids, pieces, share = [], [], []
    # where each predicted id has most of its voxels: the true object it belongs to
    n = int(pred.max()) + 1
    fg = pred > 0
    pair = pred[fg].astype(np.int64) * (int(truth.max()) + 1) + truth[fg]
    u, c = np.unique(pair, return_counts=True)
    pid, tid = u // (int(truth.max()) + 1), u % (int(truth.max()) + 1)
    home = np.zeros(n, np.int64)
    best = np.zeros(n, np.int64)
    for p_, t_, c_ in zip(pid, tid, c):
        if c_ > best[p_]:
            best[p_], home[p_] = c_, t_
    size = np.bincount(pred.ravel(), minlength=n)
    owned = np.bincount(home[1:][best[1:] * 2 > size[1:]], minlength=int(truth.max()) + 1)
    for t in np.unique(truth[truth > 0]):
        p = pred[truth == t]
        p = p[p > 0]
        pieces.append(int(owned[t]))
        if p.size == 0:
            ids.append(0)
            share.append(0.0)
            continue
        u, c = np.unique(p, return_counts=True)
        ids.append(len(u))
        share.append(c.max() / (truth == t).sum())
    return float(np.mean(ids)), float(np.mean(pieces)), float(np.mean(share))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--diameter", default="auto")
    ap.add_argument("--z-scale", type=float, default=0.29 / 0.26)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the fastest is kept")
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--correct", type=int, default=0, metavar="N", help="planes corrected")
    ap.add_argument("--only-correct", action="store_true")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="steps per epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--set",
        choices=("cells3d", "cho3d"),
        default="cells3d",
        help="cho3d: frames 10-19 of the CHO time-lapse, each a 5-plane volume (never seen "
        "by any bundled model; z scale 4.95 unless given)",
    )
    args = ap.parse_args(argv)
    import tifffile

    if args.set == "cho3d":
        folder = ROOT.parent / "shared" / "data" / "cho3d"
        if not (folder / "cho_img.tif").exists():
            print(f"skipped: {folder} is absent (the CHO time-lapse)")
            return 0
        image = tifffile.imread(folder / "cho_img.tif")[10:20]
        truth = tifffile.imread(folder / "cho_labels.tif")[10:20].astype(np.int32)
        if "--z-scale" not in (argv if argv is not None else sys.argv[1:]):
            args.z_scale = 1.0 / 0.202  # Fluo-N3DH-CHO: 0.202 µm pixels, 1 µm steps
        args.correct, args.only_correct = 0, False
    else:
        if not (DATA / "nuclei.tif").exists():
            print(f"skipped: {DATA} is absent (the cells3d nuclei volume)")
            return 0
        image = tifffile.imread(DATA / "nuclei.tif")
        truth = tifffile.imread(DATA / "nuclei_labels.tif").astype(np.int32)
    net, model = load_model(args.model)
    diameter = args.diameter if args.diameter == "auto" else float(args.diameter)
    print(f"model: {model} ({describe_model(model)})", flush=True)
    middle = image[tuple(n // 2 for n in image.shape[:-2])]
    net.predict(middle, diameter=diameter)  # warm up (tracing) outside the timings
    command = "python benchmarks/volumes.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    if not args.only_correct:
        compare(net, model, image, truth, diameter, args, command)
    if args.correct:
        correct_and_train(net, model, image, truth, diameter, args, command)
    return 0


def describe_model(model: str) -> str:
    if model == "default":
        return "UNet.default(): napari_unet/models/generalist.keras"
    if model == "nuclei":
        return "UNet.bundled('nuclei'): the generalist model file is not in this checkout"
    return "given with --model"


def append(text: str) -> None:
    """``text`` at the end of the "Volumes (issue 23)" section of RESULTS.md."""
    results = ROOT / "benchmarks" / "RESULTS.md"
    heading = "## Volumes (issue 23)"
    body = results.read_text()
    if heading not in body:
        body += f"\n{heading}\n"
    start = body.index(heading) + len(heading)
    end = body.find("\n## ", start)
    end = len(body) if end < 0 else end
    results.write_text(body[:end].rstrip("\n") + "\n" + text + body[end:])


def compare(net, model, image, truth, diameter, args, command) -> None:
    from napari_unet.core.metrics import evaluate

    runs = [
        ("plane by plane", {}),
        ("volume, YX views", {"volume": True, "z_scale": args.z_scale, "views": "yx"}),
        ("volume, YX+ZY+ZX views", {"volume": True, "z_scale": args.z_scale, "views": "all"}),
    ]
    rows, base = [], None
    axes = "TZYX" if image.ndim == 4 else "ZYX"
    for name, kw in runs:
        seconds = np.inf
        for _ in range(max(1, args.repeat)):  # the fastest run: the machine may be busy
            t0 = time.perf_counter()
            pred = net.predict(image, diameter=diameter, axes=axes, **kw)
            seconds = min(seconds, time.perf_counter() - t0)
        base = base or seconds
        frames = list(zip(pred.labels, truth)) if image.ndim == 4 else [(pred.labels, truth)]
        per = [evaluate(p, t) for p, t in frames]
        figs = np.mean([object_figures(p, t) for p, t in frames], axis=0)
        big = sum(int((np.bincount(p.ravel())[1:] >= 1000).sum()) for p, _ in frames)
        rows.append(
            (
                name,
                float(np.mean([r["f1"] for r in per])),
                float(np.mean([r["recall"] for r in per])),
                float(np.mean([r["precision"] for r in per])),
                sum(int(len(np.unique(p)) - 1) for p, _ in frames),
                big,
                *figs,
                seconds,
                seconds / base,
            )
        )
        print(f"{name}: done in {seconds:.1f} s (scale {pred.scale:.2f})", flush=True)
    head = (
        "| run | 3-D F1 | recall | precision | ids | ids ≥ 1000 voxels | ids per true nucleus "
        "| pieces per true nucleus | largest id's share | time (s) | × planes |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [head] + [
        f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]} | {r[5]} | {r[6]:.2f} "
        f"| {r[7]:.2f} | {r[8]:.2f} | {r[9]:.1f} | {r[10]:.2f} |"
        for r in rows
    ]
    table = "\n".join(lines)
    print(table)
    data = (
        f"cho3d frames 10–19, each a {image.shape[1]}-plane volume of {image.shape[2]} × "
        f"{image.shape[3]}, figures averaged over the frames, ids summed"
        if image.ndim == 4
        else "cells3d nuclei 60 × 256 × 256, 20 labelled nuclei"
    )
    if args.append:
        append(
            f"\n`{command}` ({datetime.date.today()}, model "
            f"`{model}`, diameter {args.diameter}, z scale {args.z_scale:.3f}; {data}; labels "
            f"not human ground truth)\n\n{table}\n"
        )


def spread_planes(truth: np.ndarray, n: int) -> list[int]:
    """``n`` planes spread evenly through the z range that holds labels."""
    zs = np.flatnonzero(truth.reshape(truth.shape[0], -1).any(axis=1))
    return sorted({int(zs[round(q)]) for q in np.linspace(0, len(zs) - 1, n + 2)[1:-1]})


def correct_and_train(net, model, image, truth, diameter, args, command) -> None:
    """Correct ``args.correct`` planes (their true labels), train fixed seeded steps,
    score the rest of the volume in 3-D before and after."""
    from napari_unet.core import TrainConfig, TrainingPair
    from napari_unet.core.metrics import evaluate
    from napari_unet.core.training.targets import mask_to_annotation

    planes = spread_planes(truth, args.correct)
    annotation = np.zeros(truth.shape, np.uint8)
    for z in planes:
        annotation[z] = mask_to_annotation(truth[z])
    rest_truth = np.delete(truth, planes, axis=0)
    kw = {"volume": True, "z_scale": args.z_scale, "views": "yx"}

    def score(stage: str) -> tuple:
        t0 = time.perf_counter()
        pred = net.predict(image, diameter=diameter, axes="ZYX", **kw)
        rest = np.delete(pred.labels, planes, axis=0)
        s = evaluate(rest, rest_truth)
        ids, pieces, share = object_figures(rest, rest_truth)
        print(f"{stage}: scored in {time.perf_counter() - t0:.1f} s", flush=True)
        return stage, s["f1"], s["recall"], s["precision"], ids, pieces, share

    rows = [score("before (as bundled)")]
    cfg = TrainConfig(
        epochs=args.epochs, steps_per_epoch=args.steps, seed=args.seed, time_limit=None
    )
    t0 = time.perf_counter()
    result = net.train([TrainingPair(image, annotation=annotation, z_scale=args.z_scale)], cfg)
    seconds = time.perf_counter() - t0
    print(f"trained {result.steps_run} steps in {seconds:.0f} s", flush=True)
    rows.append(score(f"after {result.steps_run} steps"))
    head = (
        "| run | 3-D F1 | recall | precision | ids per true nucleus | pieces per true nucleus "
        "| largest id's share |\n"
        "| --- | --- | --- | --- | --- | --- | --- |"
    )
    table = "\n".join(
        [head]
        + [
            f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} | {r[5]:.2f} "
            f"| {r[6]:.2f} |"
            for r in rows
        ]
    )
    print(table)
    if args.append:
        append(
            f"\n`{command}` ({datetime.date.today()}, model `{model}` = "
            f"{describe_model(model)}; corrected planes {planes} (their true labels, every "
            f"other plane unannotated), {result.steps_run} seeded steps (seed {args.seed}, "
            f"patch {cfg.patch_size}, batch {cfg.batch_size}, {seconds:.0f} s on this CPU), "
            f"views yx, z scale {args.z_scale:.3f}, diameter {args.diameter}; scored in 3-D "
            f"on the {truth.shape[0] - len(planes)} planes not corrected)\n\n{table}\n"
        )


if __name__ == "__main__":
    raise SystemExit(main())
