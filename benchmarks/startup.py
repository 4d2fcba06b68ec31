"""Start-up cost: importing napari_unet and opening the plugin's widgets, in fresh
processes, side by side with napari's own start-up; and proof that none of it imports
TensorFlow on the GUI thread (the Segment widget's preload is held while they open).

Then the first segmentation (issue 20), as ratios against the prediction alone (the
sample, 512², its object size given, best of 3 in a warm process): importing
TensorFlow, loading the bundled model, the first ``predict`` with the size measured
(tracing included) and the size estimate's share of a warm one; and in the viewer the
first Segment click → result, clicked a few seconds after the widget opened (as a
person looks at the image first). ``--before PATH`` runs the same in fresh processes
on another checkout (e.g. the main branch), interleaved with this one.

    xvfb-run -a python benchmarks/startup.py [--before /path/to/main] [--delay 8]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from common import ROOT

FIRST = r"""
import sys, time, json
import numpy as np, tifffile
t0 = time.perf_counter()
from napari_unet.core._tfload import quiet_import_tensorflow
quiet_import_tensorflow(); import keras
t_tf = time.perf_counter() - t0
from napari_unet.core import UNet
t0 = time.perf_counter(); net = UNet.default(); t_load = time.perf_counter() - t0
img = tifffile.imread(sys.argv[1])
t0 = time.perf_counter(); first = net.predict(img); t_first = time.perf_counter() - t0
def best(**kw):
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); p = net.predict(img, **kw)
        times.append(time.perf_counter() - t0)
    return min(times), sum(p.network_pixels.values()), p
t_auto, px_auto, p = best()
t_fixed, px_fixed, _ = best(diameter=net.object_diameter)
print(json.dumps({"import_tf_s": t_tf, "load_s": t_load, "first_predict_s": t_first,
    "predict_auto_s": t_auto, "predict_alone_s": t_fixed, "pixels_auto": px_auto,
    "pixels_alone": px_fixed, "scale": p.scale, "objects": int(p.labels.max())}))
"""

SEGMENT = r"""
import sys, time, json
t_open = time.perf_counter()
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=False)
viewer.open_sample("napari-unet", "nuclei")
_, seg = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
QApplication.processEvents()
end = time.perf_counter() + float(sys.argv[1])  # the person looks at the image
while time.perf_counter() < end:
    QApplication.processEvents()
    time.sleep(0.05)
t0 = time.perf_counter()
seg._on_segment("nuclei")
while seg.running:
    QApplication.processEvents()
    time.sleep(0.01)
t1 = time.perf_counter()
print(json.dumps({"click_to_result_s": t1 - t0, "open_to_result_s": t1 - t_open,
    "status": seg.status.text(), "stages": getattr(seg, "stages", None)}))
viewer.close()
"""

IMPORT = r"""
import sys, time, json
t0 = time.perf_counter()
import napari_unet, napari_unet.core
dt = time.perf_counter() - t0
print(json.dumps({"import_s": dt, "tensorflow": "tensorflow" in sys.modules}))
"""

WIDGETS = r"""
import sys, time, json
t0 = time.perf_counter()
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=False)
QApplication.processEvents()
t_viewer = time.perf_counter() - t0
names = [c.display_name for c in __import__("npe2").PluginManager.instance().get_manifest("napari-unet").contributions.widgets]
times = {}
for name in names:
    t1 = time.perf_counter()
    viewer.window.add_plugin_dock_widget("napari-unet", name)
    QApplication.processEvents()
    times[name] = time.perf_counter() - t1
print(json.dumps({"viewer_s": t_viewer, "widgets_s": times, "tensorflow": "tensorflow" in sys.modules}))
viewer.close()
"""


def run(code: str, *args: str, root=None, **extra_env: str) -> dict:
    env = dict(os.environ, QT_API="pyqt5", TF_CPP_MIN_LOG_LEVEL="2", **extra_env)
    if root is not None:  # another checkout's napari_unet wins over the installed one
        env["PYTHONPATH"] = str(root)
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root or ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def first_segment(roots: dict, delay: float, reps: int = 2) -> dict:
    """The first-segmentation figures of each checkout, runs interleaved, best of ``reps``."""
    sample = str(ROOT / "sample_data" / "img2d.tif")
    runs = {k: [] for k in roots}
    gui = {k: [] for k in roots}
    for _ in range(reps):
        for key, root in roots.items():
            runs[key].append(run(FIRST, sample, root=root))
    for key, root in roots.items():
        gui[key].append(run(SEGMENT, str(delay), root=root))
    out = {}
    for key in roots:
        r = {f: min(x[f] for x in runs[key]) for f in runs[key][0] if f.endswith("_s")}
        last = runs[key][-1]
        alone = r["predict_alone_s"]
        g = min(gui[key], key=lambda x: x["click_to_result_s"])
        out[key] = {
            **{k: round(v, 3) for k, v in r.items()},
            "scale": last["scale"],
            "objects": last["objects"],
            "estimate_share_of_predict_time": round(1 - alone / r["predict_auto_s"], 3),
            "estimate_share_of_network_pixels": round(
                1 - last["pixels_alone"] / last["pixels_auto"], 3
            ),
            "ratios_to_predict_alone": {
                "import_tensorflow": round(r["import_tf_s"] / alone, 1),
                "load_model": round(r["load_s"] / alone, 1),
                "first_predict": round(r["first_predict_s"] / alone, 1),
                "warm_predict_with_estimate": round(r["predict_auto_s"] / alone, 2),
                "first_segment_click_to_result": round(g["click_to_result_s"] / alone, 1),
            },
            "first_segment_click_to_result_s": round(g["click_to_result_s"], 2),
            "first_segment_open_to_result_s": round(g["open_to_result_s"], 2),
            "first_segment_stages": g["stages"],
        }
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another checkout to compare with (e.g. main)")
    parser.add_argument("--delay", type=float, default=8.0, help="seconds before the click")
    parser.add_argument("--first-only", action="store_true", help="only the first Segment")
    args = parser.parse_args()
    roots = {"after": ROOT}
    if args.before:
        roots = {"before": args.before, "after": ROOT}
    first = first_segment(roots, args.delay)
    print(json.dumps(first, indent=1), flush=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "first_segment.json").write_text(json.dumps(first, indent=1))
    if args.first_only:
        return
    # the widgets' own cost: the Segment widget's preload (measured above) is off here
    runs = [run(IMPORT, NAPARI_UNET_PRELOAD="0") for _ in range(3)]
    imp = min(r["import_s"] for r in runs)
    w = [run(WIDGETS, NAPARI_UNET_PRELOAD="0") for _ in range(2)]
    best = min(w, key=lambda r: sum(r["widgets_s"].values()))
    total_widgets = sum(best["widgets_s"].values())
    res = {
        "first_segment": first,
        "import_napari_unet_s": round(imp, 3),
        "napari_viewer_s": round(min(r["viewer_s"] for r in w), 2),
        "open_all_widgets_s": round(total_widgets, 3),
        "per_widget_s": {k: round(v, 3) for k, v in best["widgets_s"].items()},
        "widgets_vs_viewer_start": round(total_widgets / min(r["viewer_s"] for r in w), 3),
        "tensorflow_imported": any(r["tensorflow"] for r in runs + w),
    }
    print(json.dumps(res, indent=1))
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps(res, indent=1))
    if res["tensorflow_imported"]:
        raise SystemExit("TensorFlow was imported at start-up")


if __name__ == "__main__":
    main()
