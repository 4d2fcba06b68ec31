"""Start-up cost: importing napari_unet and opening the plugin's widgets, in fresh
processes, side by side with napari's own start-up; and proof that none of it imports
TensorFlow.

    xvfb-run -a python benchmarks/startup.py        # needs a display (Xvfb on a server)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from common import ROOT

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


def run(code: str) -> dict:
    env = dict(os.environ, QT_API="pyqt5", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    runs = [run(IMPORT) for _ in range(3)]
    imp = min(r["import_s"] for r in runs)
    w = [run(WIDGETS) for _ in range(2)]
    best = min(w, key=lambda r: sum(r["widgets_s"].values()))
    total_widgets = sum(best["widgets_s"].values())
    res = {
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
