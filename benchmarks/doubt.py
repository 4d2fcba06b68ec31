"""When does the model say it does not know? The figures of :mod:`napari_unet.core.prediction.doubt`
on images it handles and on images it cannot.

Prints one row per image: the figures a prediction is judged by (uncertain share, mean
object confidence, objects, crowding, how the size was found, background brightness
and object contrast), the reason of its doubt (``-`` when none) and, where the image has
labels, the instance F1 at IoU 0.5. The thresholds in ``doubt.py`` are set so that every
"normal" row says ``-`` with room to spare, and the rows below it say why.

Normal: the sample, the sample rescaled (objects 5–64 px), cells3d planes, cho3d and
huh7 planes (``../shared/data``, skipped when absent), synthetic fluorescence nuclei and
bright rods. Other kinds: the sample and a cells3d plane inverted, phase-contrast-like rods
and cells, H&E-like RGB, brightfield-like (inverted synthetic nuclei): the generalist
segments them and should not doubt them; a model that learned bright objects only should
(``inverted``). Doubtful: noise (white, and smooth at two grain sizes), a flat image, the
sample shrunk until its nuclei are 3 px.

    python benchmarks/doubt.py [--model PATH] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "scripts"))


# --------------------------------------------------------------------------- images
def phase_cells(size: int = 256, seed: int = 0):
    """Phase-contrast-like cells: dark irregular cells with bright halos on a grey,
    textured, unevenly lit background."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(1, 18):
        cy, cx = rng.uniform(10, size - 10, 2)
        r = rng.uniform(10, 20)
        t = np.arctan2(yy - cy, xx - cx)
        wob = 1 + 0.2 * np.cos(2 * t + rng.uniform(0, 6)) + 0.1 * np.cos(3 * t + rng.uniform(0, 6))
        cell = np.hypot(yy - cy, xx - cx) < r * wob
        mask[cell & (mask == 0)] = k
    cells = ndi.gaussian_filter((mask > 0).astype(np.float32), 1.5)
    halo = np.clip(ndi.gaussian_filter((mask > 0).astype(np.float32), 4) - cells, 0, None)
    texture = ndi.gaussian_filter(rng.normal(size=(size, size)), 2) * 0.6
    light = 0.5 + 0.1 * (xx / size) + texture * 0.1
    img = light - 0.3 * cells + 0.5 * halo + rng.normal(0, 0.03, (size, size))
    return (np.clip(img, 0, 1) * 65535).astype(np.uint16), mask


def he_like(size: int = 256, seed: int = 0):
    """H&E-like RGB: dark purple-blue nuclei crowded on pink, textured tissue with
    white gaps."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(1, 70):
        cy, cx = rng.uniform(0, size, 2)
        a, b = rng.uniform(5, 9), rng.uniform(4, 7)
        t = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t)
        v = -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
        nucleus = (u / a) ** 2 + (v / b) ** 2 < 1
        mask[nucleus & (mask == 0)] = k
    tissue = ndi.gaussian_filter(rng.normal(size=(size, size)), 6) > -0.3
    fibre = ndi.gaussian_filter(rng.normal(size=(size, size)), 1.5)
    pink = np.array([0.93, 0.6, 0.75]) - 0.1 * fibre[..., None]
    white = np.array([0.96, 0.94, 0.96])
    purple = np.array([0.35, 0.2, 0.55])
    img = np.where(tissue[..., None], pink, white)
    nuc = ndi.gaussian_filter((mask > 0).astype(np.float32), 1.0)[..., None]
    img = img * (1 - nuc) + purple * nuc + rng.normal(0, 0.03, img.shape)
    mask[~tissue] = 0
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), mask


def rescaled(image, mask, factor):
    from skimage.transform import rescale

    img = rescale(image.astype(np.float32), factor, order=1, preserve_range=True)
    lab = rescale(mask, factor, order=0, preserve_range=True, anti_aliasing=False)
    return img.astype(np.float32), lab.astype(np.uint16)


def inverted(image):
    a = np.asarray(image, np.float32)
    return a.max() - a


def images():
    """``(group, name, image, truth or None)``: normal images first, then doubtful ones."""
    import tifffile
    from synthetic_nuclei import synth_image
    from synthetic_rods import synth_rods

    img = tifffile.imread(ROOT / "sample_data/img2d.tif")
    mask = tifffile.imread(ROOT / "sample_data/mask2d.tif")
    yield "normal", "sample", img, mask
    for f in (0.25, 0.5, 2.0, 3.0):
        yield "normal", f"sample x{f:g}", *rescaled(img, mask, f)
    cells3d = DATA / "cells3d"
    if cells3d.is_dir():
        vol = tifffile.imread(cells3d / "nuclei.tif")
        lab = tifffile.imread(cells3d / "nuclei_labels.tif")
        for z in range(5, 60, 10):
            yield "normal", f"cells3d z{z}", vol[z], lab[z]
    else:
        print(f"(skipped cells3d: {cells3d} not found)")
    cho = DATA / "cho3d"
    if cho.is_dir():
        vol = tifffile.imread(cho / "cho_img.tif")
        lab = tifffile.imread(cho / "cho_labels.tif")
        for t in (0, 10):
            yield "normal", f"cho3d t{t} z2", vol[t, 2], lab[t, 2]
    huh = DATA / "huh7"
    if huh.is_dir():
        frames = tifffile.imread(huh / "huh7_img.tif")
        yield "normal", "huh7 t20", frames[20], None
        yield "normal", "huh7 t0", frames[0], None
    for seed in range(6):
        yield "normal", f"synthetic nuclei {seed}", *synth_image(256, 7_000 + seed)
    for seed in range(2):
        rods, rmask = synth_rods(256, 7_100 + seed)
        yield "normal", f"bright rods {seed}", 1.0 - rods, rmask

    rng = np.random.default_rng(0)
    yield "other kinds", "sample inverted", inverted(img), mask
    if cells3d.is_dir():
        vol = tifffile.imread(cells3d / "nuclei.tif")
        yield "other kinds", "cells3d z30 inverted", inverted(vol[30]), None
    for seed in range(2):
        yield "other kinds", f"phase-like rods {seed}", *synth_rods(256, 7_200 + seed)
        yield "other kinds", f"phase-like cells {seed}", *phase_cells(256, 7_300 + seed)
        yield "other kinds", f"H&E-like {seed}", *he_like(256, 7_400 + seed)
        nuc, nmask = synth_image(256, 7_500 + seed)
        yield "other kinds", f"brightfield-like nuclei {seed}", inverted(nuc), nmask

    yield "doubt", "noise (gaussian)", rng.normal(100, 20, (512, 512)).astype(np.float32), None
    yield "doubt", "noise (smooth)", ndi.gaussian_filter(rng.normal(size=(512, 512)), 3), None
    yield (
        "doubt",
        "noise (smooth, coarse)",
        ndi.gaussian_filter(rng.normal(size=(512, 512)), 6),
        None,
    )
    yield "doubt", "flat + faint noise", 100 + rng.normal(0, 0.5, (256, 256)), None
    yield "doubt", "sample x0.15 (3 px nuclei)", *rescaled(img, mask, 0.15)


# --------------------------------------------------------------------------- run
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model file (default: the bundled model)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    from napari_unet.core import UNet
    from napari_unet.core.metrics import evaluate

    net = UNet.load(args.model) if args.model else UNet.default()
    head = (
        f"{'image':30s} {'unsure':>6s} {'conf':>5s} {'objs':>5s} {'crowd':>6s} "
        f"{'cover':>5s} {'size':>8s} {'bg':>5s} {'contr':>6s} {'med':>5s} {'F1':>5s}  doubt"
    )
    print(head)
    rows, group = [], None
    for kind, name, image, truth in images():
        if kind != group:
            print(f"--- {kind}")
            group = kind
        t0 = time.perf_counter()
        pred = net.predict(image, rgb=image.ndim == 3 and image.shape[-1] == 3)
        s = pred.signs
        f1 = evaluate(pred.labels, truth)["f1"] if truth is not None else None

        def fmt(v, spec):
            return "-" if v is None else format(v, spec)

        reason = pred.doubt.reason if pred.doubt else "-"
        print(
            f"{name:30s} {s.uncertain:6.3f} {s.confidence:5.3f} {s.objects:5d} "
            f"{s.crowding:6.2f} {s.coverage:5.2f} {s.size:>8s} {fmt(s.background, '5.2f')} "
            f"{fmt(s.contrast, '6.3f')} {fmt(s.median, '5.2f')} {fmt(f1, '5.2f')}  {reason}",
            flush=True,
        )
        rows.append(
            {
                "group": kind,
                "image": name,
                **s.as_dict(),
                "f1": f1,
                "doubt": reason,
                "seconds": time.perf_counter() - t0,
            }
        )
    wrong = [r["image"] for r in rows if r["group"] == "normal" and r["doubt"] != "-"]
    other = [r for r in rows if r["group"] == "other kinds"]
    print(f"normal images doubted: {wrong or 'none'}")
    if other:
        scored = [r["f1"] for r in other if r["f1"] is not None]
        doubted = [f"{r['image']} ({r['doubt']})" for r in other if r["doubt"] != "-"]
        print(
            f"other kinds: mean F1 {np.mean(scored):.2f} over {len(scored)} labelled; "
            f"doubted: {doubted or 'none'}"
        )
    # an image with no object at all says so itself (no doubt needed)
    missed = [r["image"] for r in rows if r["group"] == "doubt" and r["doubt"] == "-"]
    empty = [r["image"] for r in rows if r["group"] == "doubt" and r["objects"] == 0]
    print(f"doubtful images with no object found: {empty or 'none'}")
    print(
        f"doubtful images with objects, not doubted: {[m for m in missed if m not in empty] or 'none'}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
