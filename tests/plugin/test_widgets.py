"""The napari plugin with a real viewer (Xvfb), real TensorFlow and real files.

Every widget is added through the manifest, the sample comes through
``viewer.open_sample``; training runs for real in the worker on a tiny network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from widget_helpers import (
    PLUGIN,
    WAIT_TRAIN_MS,
    WIDGETS,
    annotate_from_truth,
    dock,
    layer_names,
    saved,
    set_tiny_training,
    toast_is_cut_off,
    wait_idle,
)

from napari_unet import _layers as L
from napari_unet.core import mask_to_annotation

pytestmark = pytest.mark.gui


# ---------------------------------------------------------------------- no TF on import
def test_opening_widgets_does_not_import_tensorflow():
    """A fresh interpreter: import the plugin, open every widget and the sample. Nothing
    imports TensorFlow on the GUI thread: the Segment widget's preload does, in its own
    thread, and the widgets open without waiting for it (held here until they are open)."""
    code = textwrap.dedent(
        f"""
        import sys, threading
        import napari_unet
        assert "tensorflow" not in sys.modules, "import napari_unet imported TensorFlow"
        import napari
        from napari_unet._widgets import _workers
        gate = threading.Event()
        _workers.PRELOAD = _workers.Preload(gate=gate)
        v = napari.Viewer(show=False)
        v.open_sample("napari-unet", "nuclei")
        for name in {WIDGETS!r}:
            v.window.add_plugin_dock_widget("napari-unet", name)
        w = v.window.add_plugin_dock_widget("napari-unet", "Annotate")[1]
        w._on_create()
        heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
        print("HEAVY", heavy, "STARTED", _workers.PRELOAD.started, _workers.PRELOAD.done)
        gate.set()  # now the preload imports TensorFlow and loads the model, off this thread
        _workers.PRELOAD.join()
        print("PRELOADED", _workers.PRELOAD.imported_here, "tensorflow" in sys.modules,
              _workers.PRELOAD.error)
        v.close()
        assert not heavy, heavy
        """
    )
    env = dict(os.environ)
    env.setdefault("QT_API", "pyqt5")  # CI runs this file once more with QT_API=pyqt6
    env.pop("NAPARI_UNET_PRELOAD", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HEAVY [] STARTED True False" in out.stdout
    assert "PRELOADED True True None" in out.stdout


def test_the_suite_runs_under_the_binding_asked_for(viewer):
    import qtpy

    assert qtpy.API_NAME.lower() == os.environ.get("QT_API", "pyqt5").lower()


# ---------------------------------------------------------------------- manifest
def test_manifest_widgets_and_sample(viewer):
    assert layer_names(viewer) == ["nuclei", "nuclei ground truth"]
    assert viewer.layers["nuclei"].data.shape == (512, 512)
    assert len(np.unique(viewer.layers["nuclei ground truth"].data)) - 1 == 125
    widgets = {name: dock(viewer, name) for name in WIDGETS}
    assert type(widgets["U-Net"]).__name__ == "UNetWidget"
    assert widgets["U-Net"].tabs.count() == 4
    # the layer choices follow the viewer
    assert widgets["Segment"]._image.value == "nuclei"
    viewer.add_image(np.zeros((32, 32)), name="other")
    assert "other" in widgets["Segment"]._image.choices


# ---------------------------------------------------------------------- annotate
def test_annotate_layer_brush_counts_and_prediction_copy(viewer, qtbot, notes):
    annotate = dock(viewer, "Annotate")
    annotate._image.value = "nuclei"
    layer = annotate._on_create()
    assert layer.name == "nuclei annotation"
    assert layer.data.dtype == np.uint8 and layer.data.shape == (512, 512)
    assert viewer.layers.selection.active is not None
    assert viewer.layers.selection.active.name == "nuclei annotation"
    assert layer.mode == "paint" and layer.selected_label == 2 and layer.brush_size >= 5
    assert list(layer.features["meaning"][:3]) == [
        "not annotated (ignored)",
        "background",
        "object",
    ]
    assert not np.allclose(layer.colormap.map(1), layer.colormap.map(2))
    # creating again selects the same layer: no duplicate
    assert annotate._on_create() is not None
    assert layer_names(viewer).count("nuclei annotation") == 1

    # paint with napari's own brush API; the list refreshes (throttled)
    layer.paint((100, 100), 2, refresh=True)
    layer.selected_label = 1
    layer.paint((300, 300), 1, refresh=True)
    qtbot.waitUntil(lambda: set(annotate.last_counts.get("nuclei", {})) == {1, 2}, timeout=3000)
    counts = annotate.last_counts["nuclei"]
    assert counts[1] == int((layer.data == 1).sum()) > 0
    assert counts[2] == int((layer.data == 2).sum()) > 0
    assert annotate.table.rowCount() == 1

    # no prediction yet: a warning, nothing changes
    painted = layer.data.copy()
    assert annotate._on_use_prediction("replace") is None
    assert "Segment" in notes()[-1]
    # a prediction layer (here: the ground truth standing in for it)
    viewer.add_labels(viewer.layers["nuclei ground truth"].data.copy(), name="nuclei labels")
    annotate._image.value = "nuclei"
    # painted work is kept by "fill", replaced by "replace", and "undo" restores it
    annotate._on_use_prediction("fill")
    filled = layer.data
    assert np.array_equal(filled[painted > 0], painted[painted > 0])
    assert (filled == 1).sum() > 1000 and (filled == 2).sum() > 1000
    # what Train counts as painted: the kept strokes where they differ from the
    # prediction, never the filled-in prediction itself
    predicted = mask_to_annotation(viewer.layers["nuclei labels"].data)
    was_painted = L.painted_pixels(layer, layer.data)
    assert np.array_equal(was_painted, (painted > 0) & (painted != predicted))
    annotate._on_use_prediction("replace")
    expected = mask_to_annotation(viewer.layers["nuclei labels"].data)
    assert np.array_equal(layer.data, expected)
    assert annotate.undo_button.isEnabled()
    annotate._on_undo()
    assert np.array_equal(layer.data, filled)
    # and what was copied before: the same pixels count as painted as after "fill"
    assert np.array_equal(L.painted_pixels(layer, layer.data), was_painted)
    assert layer_names(viewer).count("nuclei annotation") == 1


# ---------------------------------------------------------------------- the loop
def test_train_segment_evaluate_loop(viewer, qtbot, tmp_path, notes):
    """Train a tiny network in the worker, segment with it (twice), evaluate, save."""
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train", "Segment", "Evaluate")}
    train, segment = widgets["Train"], widgets["Segment"]
    annotate_from_truth(viewer, widgets["Annotate"])
    set_tiny_training(train, epochs=2, steps=3)
    assert train._preview.value == "nuclei"

    assert not train.progress.isTextVisible()  # no "0%" before anything ran
    worker = train._on_train()
    assert worker is not None
    assert not train.train_button.isEnabled() and train.stop_button.isEnabled()
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()
    result = train.outcome.result
    assert result.steps_run == 6 and result.epochs_run == 2
    assert train.train_button.isEnabled() and not train.stop_button.isEnabled()
    assert train.plot.series["batch loss"] and train.plot.series["loss"]
    assert train.progress.value() == train.progress.maximum()
    # the live preview (and the final one) went into the prediction layers, drawn as
    # outlines over the annotation so that each new prediction shows
    assert "nuclei probability" in viewer.layers and "nuclei labels" in viewer.layers
    names = layer_names(viewer)
    assert names.index("nuclei labels") > names.index("nuclei annotation")
    assert names.index("nuclei annotation") > names.index("nuclei probability")
    assert viewer.layers["nuclei labels"].contour > 0
    assert viewer.layers.selection.active.name == "nuclei annotation"  # painting goes on
    prob = viewer.layers["nuclei probability"].data
    assert prob.shape == (512, 512) and 0.0 <= prob.min() and prob.max() <= 1.0
    assert train.state.model is not None
    assert "trained here, not saved yet" in train.model_label.text()

    # segment with the model just trained, twice: the layers are updated in place
    assert segment._model.value == "current"
    segment._tile.value = 256  # tiled prediction
    labels_layer = viewer.layers["nuclei labels"]
    n_layers = len(viewer.layers)
    for threshold in (0.5, 0.3):
        segment._threshold.value = threshold
        assert segment._on_segment("nuclei") is not None
        assert not segment.run_button.isEnabled()
        wait_idle(qtbot, segment, 60_000)
        assert segment.run_button.isEnabled()
    assert len(viewer.layers) == n_layers
    assert viewer.layers["nuclei labels"] is labels_layer
    for name in ("nuclei probability", "nuclei labels"):
        assert layer_names(viewer).count(name) == 1
    assert viewer.layers["nuclei labels"].data.dtype == np.int32
    assert "objects (was " in segment.status.text()  # what segmenting again changed
    assert layer_names(viewer)[-1] == "nuclei labels"

    # evaluate the prediction against the ground truth
    evaluate = widgets["Evaluate"]
    assert evaluate._pred.value == "nuclei labels"
    assert evaluate._truth.value == "nuclei ground truth"
    evaluate._on_evaluate()
    qtbot.waitUntil(lambda: evaluate.scores is not None, timeout=30_000)
    for key in ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "mean_ap"):
        assert 0.0 <= evaluate.scores[key] <= 1.0
        assert evaluate.values[key].text() != "–"

    # save the model, load it back as the current model, segment from the file
    path = saved(qtbot, train, train._on_save(str(tmp_path / "tiny")))
    assert path == tmp_path / "tiny.keras" and path.is_file()
    assert train._on_load(str(path)) == str(path)
    assert train.state.model is None and train.state.path == str(path)
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 60_000)
    assert train.state.model is not None  # loaded lazily by the worker, then kept
    # or straight from a file chosen in the Segment widget
    segment._model.value = "file"
    segment._file.value = str(path)
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 60_000)
    assert "objects" in segment.status.text()
    assert layer_names(viewer).count("nuclei labels") == 1
    # a file that is not a model: a notification, nothing changes
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    assert train._on_load(str(bad)) is None
    assert "not a napari-unet model" in notes()[-1]
    assert train.state.path == str(path)
    # napari's toasts show one line: ours fit in it (the error above may run longer)
    for message in notes()[:-1]:
        assert not toast_is_cut_off(qtbot, message), message


def test_stop_in_the_middle_restores_ui_and_keeps_a_working_model(viewer, qtbot):
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train")}
    train = widgets["Train"]
    annotate_from_truth(viewer, widgets["Annotate"], crop=np.s_[:256, :256])
    set_tiny_training(train, epochs=1000, steps=4)
    train._preview.value = None
    train._on_train()
    qtbot.waitUntil(lambda: len(train.plot.series["batch loss"]) >= 3, timeout=WAIT_TRAIN_MS)
    assert train.running
    train._on_stop()
    assert not train.stop_button.isEnabled()
    wait_idle(qtbot, train, 60_000)
    r = train.outcome.result
    assert r.stopped_by == "stop_event"
    assert r.steps_run < 1000 * 4
    assert train.train_button.isEnabled() and not train.stop_button.isEnabled()
    assert train.load_button.isEnabled()
    assert "stopped by you" in train.status.text()
    # the curve's step axis ends where the run stopped, not at the 4000 steps planned
    assert train.plot.x_max() == r.steps_run
    assert sys.getswitchinterval() == pytest.approx(0.005)  # restored after the job
    # the stopped model still predicts
    image = viewer.layers["nuclei"].data[:128, :128]
    pred = train.state.model.predict(image)
    assert pred.probability.shape == (128, 128) and np.isfinite(pred.probability).all()


def test_worker_error_becomes_a_notification_and_the_widget_stays_usable(viewer, qtbot, notes):
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train")}
    train = widgets["Train"]
    annotate = widgets["Annotate"]
    annotate._image.value = "nuclei"
    layer = annotate._on_create()
    data = np.zeros((512, 512), np.uint8)
    data[100:140, 100:140] = 2  # objects only: no background
    layer.data = data
    set_tiny_training(train)
    train._on_train()
    wait_idle(qtbot, train, 60_000)
    assert train.outcome is None
    assert any("no background" in m for m in notes()), notes()
    assert train.train_button.isEnabled() and not train.stop_button.isEnabled()
    assert "failed" in train.status.text()
    # fix the annotation: the same widget trains
    data[300:340, 300:340] = 1
    layer.data = data
    train._on_train()
    wait_idle(qtbot, train)
    assert train.outcome is not None


def test_train_without_annotation_warns(viewer, notes):
    train = dock(viewer, "Train")
    assert train._on_train() is None
    assert "nothing painted yet" in notes()[-1]
    assert train.train_button.isEnabled()


def test_segment_without_model_explains(viewer, qtbot, notes):
    """No current model and (maybe) no bundled default: a clear notification."""
    from napari_unet.core import DEFAULT_MODEL_PATH

    segment = dock(viewer, "Segment")
    segment._model.value = "current"
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 60_000)
    assert "no current model" in notes()[-1]
    assert segment.run_button.isEnabled()
    if not DEFAULT_MODEL_PATH.exists():
        segment._model.value = "default"
        segment._on_segment("nuclei")
        wait_idle(qtbot, segment, 60_000)
        assert "bundled generalist model (the default) is not installed" in notes()[-1]


# ---------------------------------------------------------------------- training set
def test_training_set_folder_round_trip(make_napari_viewer, qtbot, tmp_path):
    from napari_unet._layers import DIAMETER_KEY
    from napari_unet.core import UNet, UNetConfig

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei")
    annotate = dock(viewer, "Annotate")
    ann = annotate_from_truth(viewer, annotate, crop=np.s_[:200, :300]).data.copy()
    rgb = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    viewer.add_image(rgb, name="colour", rgb=True, scale=(2.0, 2.0))
    rgb_ann = np.zeros((48, 64), np.uint8)
    rgb_ann[:10] = 1
    rgb_ann[20:30, 20:30] = 2
    viewer.add_labels(rgb_ann, name="colour annotation")
    viewer.layers["nuclei"].contrast_limits = (10, 200)
    viewer.layers["nuclei"].metadata[DIAMETER_KEY] = 30.0  # typed in Segment
    net = UNet.new(UNetConfig(depth=2, base_filters=4))
    annotate.state.set_model(net, "tiny")
    probe = viewer.layers["nuclei"].data[:64, :64]
    expected = net.predict(probe).probability

    # through the napari writer (File ▸ Save Layers… picks it for "*.unet")
    folder = tmp_path / "work.unet"
    written = viewer.layers.save(str(folder), plugin=PLUGIN)
    assert (folder / "napari-unet-training-set.json").is_file()
    assert (folder / "model.keras").is_file() and len(written) == 6
    # File ▸ Save All Layers… to "*.unet" finds the writer by its extension
    assert viewer.layers.save(str(tmp_path / "plain.unet"))
    assert (tmp_path / "plain.unet" / "napari-unet-training-set.json").is_file()
    # and through the widget button, to any folder name
    other = tmp_path / "again"
    assert saved(qtbot, annotate, annotate._on_save_training_set(str(other)))
    # the reader claims training sets only
    from napari_unet._reader import get_reader

    assert get_reader(str(folder)) is not None
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(folder / "images" / os.listdir(folder / "images")[0])) is None

    viewer2 = make_napari_viewer()
    segment2 = dock(viewer2, "Segment")
    assert not segment2.state.available
    viewer2.open(str(folder), plugin=PLUGIN)
    assert sorted(layer_names(viewer2)) == sorted(
        ["nuclei", "nuclei annotation", "colour", "colour annotation"]
    )
    assert np.array_equal(viewer2.layers["nuclei"].data, viewer.layers["nuclei"].data)
    assert np.array_equal(viewer2.layers["nuclei annotation"].data, ann)
    assert np.array_equal(viewer2.layers["colour annotation"].data, rgb_ann)
    assert viewer2.layers["colour"].rgb and tuple(viewer2.layers["colour"].scale) == (2.0, 2.0)
    assert tuple(viewer2.layers["nuclei"].contrast_limits) == (10, 200)
    assert viewer2.layers["nuclei"].metadata[DIAMETER_KEY] == 30.0  # Train learns it there
    assert DIAMETER_KEY not in viewer2.layers["colour"].metadata
    assert viewer2.layers["nuclei annotation"].features["meaning"][1] == "background"
    # the model came back as the current model (loaded lazily) and predicts the same
    state = segment2.state
    assert state.path == str((folder / "model.keras").resolve()) and state.model is None
    assert "tiny" in segment2.model_label.text()
    again = UNet.load(state.path).predict(probe).probability
    np.testing.assert_allclose(again, expected, atol=1e-5)
    # saving over a folder that is not a training set is refused
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("x")
    refused = annotate._on_save_training_set(str(tmp_path / "precious"))
    assert saved(qtbot, annotate, refused) is None
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "x"


# ---------------------------------------------------------------------- stacks and RGB
def test_segment_stack_and_rgb_in_place(make_napari_viewer, qtbot):
    from napari_unet.core import UNet, UNetConfig

    viewer = make_napari_viewer()
    segment = dock(viewer, "Segment")
    segment.state.set_model(UNet.new(UNetConfig(depth=2, base_filters=4)), "tiny")
    rng = np.random.default_rng(1)
    viewer.add_image(rng.random((3, 40, 48)).astype(np.float32), name="stack", scale=(5, 1, 1))
    viewer.add_image((rng.random((40, 48, 3)) * 255).astype(np.uint8), name="photo", rgb=True)
    for name, shape in (("stack", (3, 40, 48)), ("photo", (40, 48))):
        for _ in range(2):
            segment._on_segment(name)
            wait_idle(qtbot, segment, 60_000)
        assert viewer.layers[f"{name} labels"].data.shape == shape
        assert viewer.layers[f"{name} probability"].data.shape == shape
        assert layer_names(viewer).count(f"{name} labels") == 1
    assert tuple(viewer.layers["stack labels"].scale) == (5, 1, 1)


def test_the_model_used_becomes_current_but_never_replaces_unsaved_work(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_unet._widgets._workers import ModelSpec, SegmentResult
    from napari_unet.core import UNet, UNetConfig

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    segment = dock(viewer, "Segment")
    state = segment.state
    trained = UNet.new(UNetConfig(depth=1, base_filters=2))
    other = UNet.new(UNetConfig(depth=1, base_filters=2))
    path = str(tmp_path / "other.keras")
    other.save(path)
    pred = other.predict(np.zeros((32, 32), np.float32))

    def returned_from_file():
        spec = ModelSpec("file", path=path)
        segment._on_returned(SegmentResult("img", pred, other, spec, None, 0.1))

    state.set_model(trained, "mine")  # trained here, not saved
    returned_from_file()
    assert state.model is trained and state.unsaved
    state.path = str(tmp_path / "mine.keras")  # now saved
    returned_from_file()
    assert state.model is other and state.path == path
    assert segment._model.value == "current"


def test_live_preview_of_a_stack_fills_the_plane_shown(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    from helpers import make_blobs

    planes = [make_blobs(64, n=5, seed=s) for s in range(3)]
    stack = np.stack([p[0] for p in planes])
    viewer.add_image(stack, name="stack")
    ann = np.zeros(stack.shape, np.uint8)
    ann[1] = mask_to_annotation(planes[1][1])
    viewer.add_labels(ann, name="stack annotation")
    viewer.dims.set_point(0, 1)
    train = dock(viewer, "Train")
    set_tiny_training(train, epochs=1, steps=2)
    train._preview.value = "stack"
    train._on_train()
    wait_idle(qtbot, train)
    assert train.outcome is not None
    # people's words in the status line: "1 epoch", no Keras key such as val_loss
    status = train.status.text()
    assert "1 epoch," in status and "1 epochs" not in status, status
    assert "_" not in status, status
    prob = viewer.layers["stack probability"].data
    assert prob.shape == (3, 64, 64)
    assert prob[1].max() > 0 and prob[0].max() == 0 and prob[2].max() == 0
    assert viewer.layers["stack labels"].data.shape == (3, 64, 64)


# ---------------------------------------------------------------------- calm start
def test_open_sample_then_dock_fits_the_image_and_selects_it(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    viewer.open_sample(PLUGIN, "nuclei")
    # napari selects the last layer added (the hidden ground truth): the image is chosen
    qtbot.waitUntil(lambda: viewer.layers.selection.active.name == "nuclei", timeout=5000)
    widget = dock(viewer, "U-Net")
    qtbot.waitUntil(widget.isVisible, timeout=5000)

    def fits() -> bool:
        height, width = viewer.canvas.size  # the canvas in screen pixels
        return viewer.camera.zoom * 512 <= min(height, width) + 1

    qtbot.waitUntil(fits, timeout=5000)
    assert not widget.train.progress.isTextVisible()
    assert not widget.segment.progress.isTextVisible()


# ---------------------------------------------------------------------- screenshot
def test_screenshot_with_widgets_docked_is_not_blank(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "nuclei")
    dock(viewer, "U-Net")
    viewer.layers["nuclei ground truth"].visible = True
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[0] > 300 and shot.shape[1] > 500
    rgb = shot[..., :3].reshape(-1, 3)
    assert rgb.std() > 20
    colours = np.unique(rgb[:: max(1, len(rgb) // 20000)], axis=0)
    assert len(colours) > 50
    # the dock is in the picture: its right part is not the canvas' black
    right = shot[:, -shot.shape[1] // 5 :, :3]
    assert right.mean() > 20


def test_widget_defaults_come_from_core(make_napari_viewer, qtbot):
    """Train and Segment start from core's presets and dataclasses, not their own numbers."""
    from napari_unet.core import TrainConfig, UNetConfig
    from napari_unet.core.prediction.instances import PostprocessParams

    viewer = make_napari_viewer()
    train = dock(viewer, "Train")
    assert train.train_config() == TrainConfig.interactive()
    arch = UNetConfig.interactive()
    assert (train._depth.value, train._filters.value) == (arch.depth, arch.base_filters)
    segment = dock(viewer, "Segment")
    # threshold and min size: the model's own (as on the command line) unless set
    assert segment._min_size.value == 0
    assert str(PostprocessParams().min_size) in segment._min_size.tooltip
    viewer.add_image(np.zeros((32, 32), np.float32), name="blank")
    segment.reset_choices()
    segment._image.value = "blank"
    job = segment.job()
    assert job.min_size is None and job.threshold is None


def test_the_live_preview_reads_channels_first_images(make_napari_viewer):
    """A (C, Y, X) image is one plane for a C-channel model, not C planes of one channel."""
    from napari_unet._widgets.train import preview_plane

    viewer = make_napari_viewer()
    cyx = viewer.add_image(np.random.default_rng(0).random((2, 48, 64), np.float32), name="cyx")
    source, index, axis = preview_plane(viewer, cyx, 2)
    plane = source.read()
    assert plane.shape == (48, 64, 2) and index is None and axis == 0
    np.testing.assert_array_equal(plane[..., 1], cyx.data[1])
    # the same image for a one-channel model is a stack: the plane shown now
    viewer.dims.set_point(0, 1)
    source, index, axis = preview_plane(viewer, cyx, 1)
    plane = source.read()
    assert plane.shape == (48, 64, 1) and index == (1,) and axis is None
    assert preview_plane(viewer, cyx, 3) is None  # does not fit: no preview


# ---------------------------------------------------------------------- first Segment
FIRST_STAGES = ["estimating the object size", "predicting", "post-processing"]


def _held_preload(monkeypatch):
    """A fresh preload for this test (the process's own may be spent), held at its
    start until the test lets it go."""
    import threading

    from napari_unet._widgets import _workers

    gate = threading.Event()
    preload = _workers.Preload(gate=gate)
    monkeypatch.setattr(_workers, "PRELOAD", preload)
    monkeypatch.delenv("NAPARI_UNET_PRELOAD", raising=False)
    return preload, gate


def test_segment_widget_preloads_the_model_and_the_first_click_takes_it(viewer, qtbot, monkeypatch):
    preload, gate = _held_preload(monkeypatch)
    segment = dock(viewer, "Segment")
    # the widget is open and usable while the preload has not even begun
    assert preload.started and not preload.done
    assert segment.run_button.isEnabled() and segment._model.value == "default"
    gate.set()
    qtbot.waitUntil(lambda: preload.done, timeout=120_000)
    assert preload.error is None
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 60_000)
    # nothing left to import or load: the stages of the prediction only, in order
    assert segment.stages == FIRST_STAGES
    assert preload.handed is not None
    assert segment._cache["default"][1] is preload.handed is segment.state.model
    assert "objects" in segment.status.text()


def test_both_bundled_models_are_offered_and_the_nuclei_one_loads_once(viewer, qtbot):
    """Segment and Train offer the bundled generalist model (the default) and the older
    nuclei model; the nuclei model is its file, named so, and is loaded once."""
    from napari_unet.core.jobs.planning import ModelSpec, bundled_model_path

    segment, train = dock(viewer, "Segment"), dock(viewer, "Train")
    for combo in (segment._model, train._init):
        assert combo.get_choice("bundled generalist model") == "default"
        assert combo.get_choice("bundled nuclei model") == "nuclei"
    assert segment._model.value == "default"  # the generalist, when nothing is current
    nuclei = str(bundled_model_path("nuclei"))
    segment._model.value = "nuclei"
    assert segment.model_spec() == ModelSpec("file", path=nuclei, name="bundled nuclei model")
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 120_000)
    net = segment.state.model
    assert net is not None and segment.state.name == "bundled nuclei model"
    assert segment.state.path == nuclei and segment._cache["nuclei"][1] is net
    assert "default" not in segment._cache and "file" not in segment._cache
    assert viewer.layers["nuclei labels"].data.max() > 50
    # chosen again, or its file chosen by hand: the network already loaded travels along
    segment._model.value = "nuclei"
    assert segment.model_spec().model is net
    segment._model.value = "file"
    segment._file.value = nuclei
    assert segment.model_spec() == ModelSpec("file", path=nuclei, model=net)
    train._init.value = "nuclei"
    spec = train.init_spec([])
    assert (spec.kind, spec.path, spec.describe()) == ("file", nuclei, "bundled nuclei model")


def test_a_click_during_the_preload_waits_for_it_and_shows_each_stage(viewer, qtbot, monkeypatch):
    preload, gate = _held_preload(monkeypatch)
    segment = dock(viewer, "Segment")
    worker = segment._on_segment("nuclei")
    assert worker is not None and segment.running
    gate.set()
    wait_idle(qtbot, segment, 120_000)
    shown = segment.stages
    # the preload's stages first (importing only when this process had not yet)
    assert shown[-3:] == FIRST_STAGES
    assert "loading the model" in shown[:-3]
    assert shown.index("loading the model") < shown.index("estimating the object size")
    assert segment._cache["default"][1] is preload.handed
    assert viewer.layers["nuclei labels"].data.max() > 50
