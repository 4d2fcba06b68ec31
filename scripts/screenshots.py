"""Walk through the napari-unet loop on the sample image and save screenshots.

segment → use the prediction as annotation → paint corrections → train → segment again
→ evaluate, in a real napari window (under Xvfb when there is no display), saving PNGs
to docs/images/ for docs/walkthrough.md.

    python scripts/screenshots.py                 # the bundled nuclei model, if installed
    python scripts/screenshots.py --seconds 90    # training time of the walkthrough
    python scripts/screenshots.py --only suggestion   # just the "what to correct next" shot
    python scripts/screenshots.py --only volume       # just the 3D volume shot (volume3d.png)

The walkthrough's figures are the bundled nuclei model's ("bundled nuclei model" in the
Segment widget; the default there is the generalist). Without it, a stand-in starts the
loop: a small network trained for ``--starter-seconds`` on the ground truth of the
top-left quarter only (the
screenshots then say "current model" where a user would see "bundled nuclei model").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("QT_API", "pyqt5")
SCREEN = "1600x1000x24"


def ensure_display() -> None:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        if os.environ.get("_SCREENSHOTS_UNDER_XVFB"):
            sys.exit("no X display and xvfb-run did not provide one")
        os.environ["_SCREENSHOTS_UNDER_XVFB"] = "1"
        os.execvp(
            "xvfb-run",
            ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, *sys.argv],
        )


def wait(app, until=lambda: True, seconds: float = 0.5, timeout: float = 900) -> None:
    """Run the event loop until ``until()`` holds (at least ``seconds``)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        app.processEvents()
        if time.perf_counter() - t0 >= seconds and until():
            return
        time.sleep(0.01)
    raise TimeoutError("the step did not finish in time")


def nuclei_volume() -> tuple[np.ndarray, float, str]:
    """A small z-stack of nuclei: (Z×Y×X image, z-step over the pixel size, source).

    scikit-image's ``cells3d`` nuclei (BSD-3, Allen Institute for Cell Science) when a copy is
    at hand offline (its cache, or ../shared/data/cells3d/nuclei.tif next to the repository),
    cropped to 60×128×128; else a synthetic stack of blurred ellipsoids. Only its picture is
    committed, never the data.
    """
    import skimage

    cache = Path(skimage.data.data_dir) / "cells3d.tif"
    shared = ROOT.parent / "shared" / "data" / "cells3d" / "nuclei.tif"
    if cache.exists() or shared.exists():
        import tifffile

        data = tifffile.imread(cache if cache.exists() else shared)
        if data.ndim == 4:  # skimage's cells3d: Z×C×Y×X, nuclei are channel 1
            data = data[:, 1]
        return data[:60, 64:192, 64:192], 0.29 / 0.26, "cells3d nuclei, 60×128×128 crop"
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:40, :128, :128].astype(np.float32)
    vol = np.zeros(z.shape, np.float32)
    for _ in range(10):
        cz, cy, cx = rng.uniform((12, 18, 18), (28, 110, 110))
        rz, ry, rx = rng.uniform((6, 12, 12), (9, 18, 18))
        vol[((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1] = 1
    from scipy import ndimage as ndi

    vol = ndi.gaussian_filter(vol, 1.5) * 1000 + rng.normal(100, 20, vol.shape)
    return vol.clip(0, None).astype(np.uint16), 1.0, "synthetic ellipsoids, 40×128×128"


def volume_shot(viewer, app, out: Path, ui=None) -> None:
    """A z-stack segmented as one volume with the Segment widget, shown in 3D."""
    from qtpy.QtWidgets import QApplication

    from napari_unet.core.network.model_file import bundled_model_path

    image, z_step, source = nuclei_volume()
    layer = viewer.add_image(image, name="nuclei 3D", scale=(z_step, 1.0, 1.0))
    layer.axis_labels = ("z", "y", "x")  # as a file whose axes say ZYX would open
    if ui is None:
        _, ui = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net")
    seg = ui.segment
    ui.tabs.setCurrentWidget(seg)
    wait(app, seconds=1.0)
    seg._model.value = "nuclei" if bundled_model_path("nuclei").exists() else "default"
    seg._on_segment("nuclei 3D")
    wait(app, lambda: not seg.running, 1.0)
    labels = viewer.layers["nuclei 3D labels"]
    ids = np.unique(labels.data)
    ids = ids[ids > 0]
    spans = [np.ptp(np.nonzero((labels.data == i).any(axis=(1, 2)))[0]) + 1 for i in ids]
    if "nuclei 3D probability" in viewer.layers:
        viewer.layers["nuclei 3D probability"].visible = False
    for name in ("nuclei 3D doubt",):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    labels.visible = True
    labels.opacity = 0.8
    labels.blending = "translucent_no_depth"
    layer.rendering = "mip"
    viewer.layers.selection.active = labels
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.angles = (-25.0, 45.0, 135.0)  # tilted: the z extent of each object shows
    camera.zoom *= 0.8
    wait(app, seconds=1.5)
    for w in QApplication.allWidgets():  # notification toasts would cover the canvas
        if type(w).__name__ == "NapariQtNotification" and w.isVisible():
            w.close()
    wait(app, seconds=0.5)
    path = out / "volume3d.png"
    shot = viewer.screenshot(canvas_only=False, flash=False)
    from PIL import Image  # 256 colours: under 400 kB for the README

    Image.fromarray(shot[..., :3]).quantize(256).save(path, optimize=True)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(
        f"{shown} ({path.stat().st_size // 1000} kB): {source} segmented as a volume ({len(ids)} objects, each through "
        f"{int(np.median(spans)) if spans else 0} planes (median)), shown in 3D; "
        f"status: {seg.status.text()!r}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--seconds", type=int, default=90, help="training time in the walkthrough")
    ap.add_argument("--starter-seconds", type=int, default=120)
    ap.add_argument(
        "--only",
        choices=["suggestion", "volume"],
        help="take only this shot: suggestion.png (Annotate's Next, after one Segment) or "
        "volume3d.png (a z-stack segmented as a volume, shown in 3D)",
    )
    args = ap.parse_args()
    ensure_display()

    import warnings

    warnings.filterwarnings("ignore", message="napari support for the PyQt5 backend")
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet.core import evaluate
    from napari_unet.core.network.model_file import bundled_model_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-unet")
    app = QApplication.instance()
    viewer.window.resize(1560, 940)
    if args.only == "volume":
        volume_shot(viewer, app, out)
        viewer.close()
        return
    viewer.open_sample("napari-unet", "nuclei")  # selects the image, not the hidden truth
    _, ui = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net")  # then fits the view
    truth = viewer.layers["nuclei ground truth"].data
    wait(app, seconds=1.0)

    def shot(name: str, note: str) -> None:
        wait(app, seconds=0.6)
        for w in QApplication.allWidgets():  # notification toasts would cover the canvas
            if type(w).__name__ == "NapariQtNotification" and w.isVisible():
                w.close()
        wait(app, seconds=0.4)
        path = out / f"{name}.png"
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{shown}: {note}", flush=True)

    # 1. the sample, the dock
    ui.tabs.setCurrentWidget(ui.segment)
    if args.only is None:
        shot("01_open", "the sample image and the U-Net dock (Plugins ▸ napari-unet ▸ U-Net)")

    # 2. one click: segment
    seg, train = ui.segment, ui.train
    if bundled_model_path("nuclei").exists():
        seg._model.value = "nuclei"
        starter = "bundled nuclei model"
    else:
        print("no bundled model: training a stand-in on the top-left quarter", flush=True)
        quarter = np.zeros(truth.shape, bool)
        quarter[:256, :256] = True
        from napari_unet.core import mask_to_annotation

        ui.annotate._image.value = "nuclei"
        ann = ui.annotate._on_create()
        ann.data = np.where(quarter, mask_to_annotation(truth), 0).astype(np.uint8)
        train._init.value = "new"
        train._time.value = args.starter_seconds
        train._preview.value = None
        train._on_train()
        wait(app, lambda: not train.running, 2.0)
        ann.data = np.zeros_like(ann.data)
        train.plot.clear()
        train.status.setText("")
        seg._model.value = "current"
        starter = "stand-in starter model"
    viewer.layers.selection.active = viewer.layers["nuclei"]
    seg._on_segment("nuclei")
    wait(app, lambda: not seg.running, 1.0)
    first = viewer.layers["nuclei labels"].data.copy()
    before = evaluate(first, truth)
    if args.only is None:
        shot("02_segment", f"one click on Segment ({starter}): probability and labels layers")

    # what to correct next: the doubt layer shown, Next on the most doubtful object
    ui.tabs.setCurrentWidget(ui.annotate)
    ui.annotate._image.value = "nuclei"
    doubt = viewer.layers["nuclei doubt"]
    doubt.visible = True
    viewer.layers["nuclei probability"].visible = False
    entry = ui.annotate._on_next()
    h, w = truth.shape
    for _ in range(20):  # an object away from the image's edges shows its neighbours
        if entry is None:
            break
        y0, x0, y1, x1 = entry.bbox
        if min(y0, x0, h - y1, w - x1) >= 12:
            break
        entry = ui.annotate._on_next()
    if entry is not None:
        shot(
            "suggestion",
            f"Annotate ▸ Next: {ui.annotate.suggestion_label.text()} (the doubt layer shown)",
        )
    if args.only == "suggestion":
        viewer.close()
        return
    # the walkthrough goes on as before: no annotation yet, the doubt layer hidden
    if "nuclei annotation" in viewer.layers:
        viewer.layers.remove(viewer.layers["nuclei annotation"])
    doubt.visible = False
    viewer.layers["nuclei probability"].visible = True
    viewer.layers.selection.active = viewer.layers["nuclei"]
    viewer.reset_view()

    # 3. the prediction becomes the annotation
    ui.tabs.setCurrentWidget(ui.annotate)
    ui.annotate._image.value = "nuclei"
    ann = ui.annotate._on_use_prediction("replace")
    viewer.layers["nuclei labels"].visible = False
    viewer.layers["nuclei probability"].visible = False
    shot(
        "03_annotation",
        "Use prediction as annotation: background 1 (faint blue), object 2 (magenta)",
    )

    # 4. paint corrections where the prediction is wrong, with napari's brush API:
    #    background strokes between nuclei it merged, object strokes on nuclei it
    #    missed, background over false detections
    from scipy import ndimage as ndi

    from napari_unet.core.training.targets import instance_boundaries

    ann.brush_size = 3
    strokes = []  # (label, pixels) of each correction
    # where two true nuclei touch (their boundary away from the background)
    touching = instance_boundaries(truth) & ~ndi.binary_dilation(truth == 0)
    for j, sl in enumerate(ndi.find_objects(first), start=1):
        if sl is None:
            continue
        inside = truth[sl][first[sl] == j]
        ids, counts = np.unique(inside[inside > 0], return_counts=True)
        if len(ids[counts > 20]) >= 2:  # one detection over two nuclei: split it
            cut = (first == j) & (touching | (truth == 0))
            strokes.append((1, np.argwhere(cut)))
        elif (inside > 0).mean() < 0.5:  # a detection where there is no nucleus
            strokes.append((1, np.argwhere(first == j)[::4]))
    for i, sl in enumerate(ndi.find_objects(truth), start=1):
        if sl is not None and (first[sl][truth[sl] == i] > 0).mean() < 0.5:  # missed
            strokes.append((2, np.argwhere(ndi.binary_erosion(truth == i, iterations=2))[::4]))
    for label, pixels in strokes:
        for y, x in pixels:
            ann.paint((int(y), int(x)), label, refresh=False)
    ann.refresh()
    ui.annotate.refresh()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    if strokes:
        y, x = np.median(strokes[0][1], axis=0)
        h, w = truth.shape
        camera.center = (float(np.clip(y, 90, h - 90)), float(np.clip(x, 140, w - 140)))
        camera.zoom = 4.0
    viewer.layers["nuclei"].visible = True
    ann.mode = "paint"
    ann.selected_label = 1
    n_bg = sum(1 for lab, _ in strokes if lab == 1)
    shot(
        "04_correction",
        f"painted corrections: {n_bg} background strokes (merges, false detections), "
        f"{len(strokes) - n_bg} missed nuclei painted as object",
    )
    viewer.reset_view()

    # 5. train in the background: loss curve, live preview, Stop
    ui.tabs.setCurrentWidget(train)
    train._init.value = "current"  # what Segment just used: the bundled nuclei model
    train._time.value = args.seconds
    train._preview.value = "nuclei"
    train._interval.value = 5
    viewer.layers["nuclei labels"].visible = True
    viewer.layers["nuclei probability"].visible = True
    # the annotation stays visible: the live preview's outlines are drawn over it
    train._on_train()
    wait(app, lambda: not train.running or len(train.plot.series["loss"]) >= 2, 2.0)
    if not train.running and train.outcome is None:
        sys.exit(f"training failed: {train.status.text()}")
    wait(app, seconds=min(20.0, args.seconds / 3))
    shot("05_training", "training in the background: progress, loss curve, live preview, Stop")
    wait(app, lambda: not train.running, 1.0)
    shot("06_trained", "training done: the best weights are the current model")

    # 6. segment again, evaluate
    ui.tabs.setCurrentWidget(seg)
    seg._model.value = "current"
    seg._on_segment("nuclei")
    wait(app, lambda: not seg.running, 1.0)
    after = evaluate(viewer.layers["nuclei labels"].data, truth)
    shot("07_segment_again", "Segment again with the fine-tuned model")
    ui.tabs.setCurrentWidget(ui.evaluate)
    ui.evaluate._on_evaluate("nuclei labels", "nuclei ground truth")
    wait(app, lambda: ui.evaluate.scores is not None, 0.5)
    # the prediction's outlines over the filled ground truth
    viewer.layers["nuclei ground truth"].visible = True
    viewer.layers["nuclei probability"].visible = False
    ann.visible = False
    shot("08_evaluate", "Evaluate against the ground truth")
    print(
        "before:",
        {k: round(before[k], 3) for k in ("pixel_dice", "f1", "mean_ap")},
        "after:",
        {k: round(after[k], 3) for k in ("pixel_dice", "f1", "mean_ap")},
        flush=True,
    )
    viewer.layers.clear()
    volume_shot(viewer, app, out, ui)
    viewer.close()


if __name__ == "__main__":
    main()
