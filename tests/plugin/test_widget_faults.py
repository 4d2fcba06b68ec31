"""Bad input and faults in a real napari viewer (issue 9): a plain message, a usable
widget, nothing the person made lost; a closed dock lets go of the viewer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from widget_helpers import annotate_from_truth, dock, saved, set_tiny_training, wait_idle

pytestmark = pytest.mark.gui


def test_a_mis_sized_annotation_layer_is_explained_and_replaced(viewer, qtbot, notes):
    annotate, train = dock(viewer, "Annotate"), dock(viewer, "Train")
    odd = np.zeros((256, 256), np.uint8)
    odd[:10] = 1
    viewer.add_labels(odd, name="nuclei annotation")
    annotate.refresh()
    assert "256 × 256" in annotate.summary.text() and "512 × 512" in annotate.summary.text()
    with pytest.raises(Exception, match="256 × 256"):
        train.make_job()

    annotate._image.value = "nuclei"
    layer = annotate._on_create()
    assert layer.data.shape == (512, 512) and layer.name == "nuclei annotation"
    kept = viewer.layers["nuclei annotation (old, 256 × 256)"]
    assert np.array_equal(kept.data, odd)  # nothing the person painted is lost
    assert any("kept (renamed)" in n for n in notes())


def test_closing_the_train_dock_stops_its_run_and_lets_go(viewer, qtbot):
    annotate = dock(viewer, "Annotate")
    train = dock(viewer, "Train")
    annotate_from_truth(viewer, annotate)
    set_tiny_training(train, epochs=50, steps=20)
    train._on_train()
    qtbot.waitUntil(lambda: bool(train.plot.series.get("batch loss")), timeout=120_000)
    listeners = len(train.state.listeners)
    viewer.window.remove_dock_widget(train)
    assert train.disposed and train.job.stop_event.is_set()
    qtbot.waitUntil(lambda: not train.running, timeout=60_000)
    assert train.outcome is None or train.outcome.result.stopped_by == "stop_event"
    assert len(train.state.listeners) == listeners - 1

    # the Annotate dock stops following the layers once closed
    n_watched = len(annotate._watched)
    assert n_watched > 0
    viewer.window.remove_dock_widget(annotate)
    assert annotate.disposed and annotate._watched == []
    viewer.add_image(np.zeros((8, 8)), name="later")
    assert annotate._watched == []


def test_the_combined_dock_disposes_every_tab(make_napari_viewer):
    v = make_napari_viewer()
    w = dock(v, "U-Net")
    v.window.remove_dock_widget(w)
    assert all(t.disposed for t in (w.segment, w.annotate, w.train))


def test_saving_a_training_set_into_its_folder_keeps_other_files(viewer, tmp_path, qtbot):
    annotate = dock(viewer, "Annotate")
    annotate_from_truth(viewer, annotate)
    folder = tmp_path / "my_set"
    assert saved(qtbot, annotate, annotate._on_save_training_set(str(folder)))
    (folder / "notes.txt").write_text("my notes")
    assert saved(qtbot, annotate, annotate._on_save_training_set(str(folder)))
    assert (folder / "notes.txt").read_text() == "my notes"
    index = json.loads((folder / "napari-unet-training-set.json").read_text())
    assert len(index["pairs"]) == 1


def test_a_training_set_pointing_outside_is_refused_with_a_message(
    make_napari_viewer, tmp_path, notes
):
    import tifffile

    from napari_unet.core.files.training_sets import Entry, write_training_set

    secret = tmp_path / "secret.tif"
    tifffile.imwrite(secret, np.full((16, 16), 9, np.uint8))
    folder = tmp_path / "set"
    ann = np.ones((16, 16), np.uint8)
    write_training_set(folder, [Entry("a", np.zeros((16, 16), np.float32), ann)])
    index_path = folder / "napari-unet-training-set.json"
    index = json.loads(index_path.read_text())
    index["pairs"][0]["image"] = "../secret.tif"
    index_path.write_text(json.dumps(index))
    v = make_napari_viewer()
    with pytest.raises(Exception, match="outside"):
        v.open(str(folder), plugin="napari-unet")
    assert len(v.layers) == 0


def test_segment_says_when_pixels_are_not_finite(make_napari_viewer, qtbot, notes, sample_image):
    v = make_napari_viewer()
    img = sample_image[:128, :128].astype(np.float32)
    img[20] = np.nan
    v.add_image(img, name="holey")
    segment = dock(v, "Segment")
    segment._on_segment("holey")
    wait_idle(qtbot, segment, 120_000)
    assert np.isfinite(v.layers["holey probability"].data).all()
    assert any("NaN or infinite" in n for n in notes()), notes()


def test_napari_quits_cleanly_after_segment_failed_on_garbage_weights(tmp_path):
    """Once segfaulted at exit (HDF5 clean-up after interpreter shutdown, with the
    collector frozen): a real viewer, a failed Segment, then quit with exit code 0."""
    import zipfile

    from napari_unet.core import UNet, UNetConfig

    good = tmp_path / "good.keras"
    UNet.new(UNetConfig(depth=2, base_filters=4)).save(good)
    bad = tmp_path / "garbage.keras"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "model.weights.h5":
                data = b"\x89HDF\r\n\x1a\n" + os.urandom(len(data) - 8)
            zout.writestr(item.filename, data)
    code = textwrap.dedent(
        f"""
        import numpy as np, napari
        from qtpy.QtWidgets import QApplication
        v = napari.Viewer(show=False)
        v.add_image(np.random.default_rng(0).random((64, 64)), name="img")
        _, seg = v.window.add_plugin_dock_widget("napari-unet", "Segment")
        seg._model.value = "file"
        seg._file.value = {str(bad)!r}
        seg._on_segment("img")
        app = QApplication.instance()
        import time
        t0 = time.time()
        while seg.running and time.time() - t0 < 120:
            app.processEvents(); time.sleep(0.02)
        print("STATUS", seg.status.text())
        v.close()
        """
    )
    env = dict(os.environ, QT_API="pyqt5", PYTEST_QT_API="pyqt5", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "STATUS failed" in out.stdout, out.stdout


def _canvas_then_tensorflow(env_extra: dict) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import numpy as np, napari
        v = napari.Viewer(show=True)
        v.add_image(np.random.default_rng(0).random((64, 64)))
        v.screenshot(canvas_only=True)  # the OpenGL driver (and its LLVM) is loaded now
        from napari_unet.core import UNet, UNetConfig, import_tensorflow
        tf = import_tensorflow()
        net = UNet.new(UNetConfig(depth=2, base_filters=4))
        print("OBJECTS", net.predict(np.zeros((32, 32), np.float32)).labels.max())
        v.screenshot(canvas_only=True)
        v.close()
        """
    )
    env = dict(os.environ, QT_API="pyqt5", TF_CPP_MIN_LOG_LEVEL="2", **env_extra)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240
    )


def test_tensorflow_after_a_canvas_exists_does_not_crash():
    """The Mesa/LLVM clash: an explicit import_tensorflow() after napari drew, exit 0."""
    out = _canvas_then_tensorflow({})
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "OBJECTS" in out.stdout  # it ran a network after napari drew


def test_importing_the_core_installs_no_import_hook():
    code = (
        "import sys; before = list(sys.meta_path); flags = sys.getdlopenflags();"
        "import napari_unet.core;"
        "print(sys.meta_path == before and sys.getdlopenflags() == flags,"
        " 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stdout + out.stderr
