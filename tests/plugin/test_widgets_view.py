"""What the user sees is what is true (issue 20, section 3), in a real viewer: image
dropdowns follow the layer selection, the annotation look lets the image through, a
layer closed during a run leaves nothing orphaned, panels keep the last message, plain
reader refusals, file dialogs that start at home, and no PyQt5 notice at start."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
from widget_helpers import dock, wait_idle

pytestmark = pytest.mark.gui


def pick(combo, name):
    """Choose ``name`` in a magicgui ComboBox the way a click does (Qt's ``activated``)."""
    native = combo.native
    index = native.findText(name)
    assert index >= 0, (name, combo.choices)
    native.setCurrentIndex(index)
    native.activated.emit(index)


def images(viewer, *names):
    for k, name in enumerate(names):
        viewer.add_image(np.full((32, 32), k + 1, np.float32), name=name)


# ---------------------------------------------------------------------- 1. dropdowns
@pytest.mark.parametrize("widget", ["Segment", "Annotate"])
def test_image_dropdown_follows_selection_and_keeps_a_deliberate_choice(make_napari_viewer, widget):
    v = make_napari_viewer()
    images(v, "a", "b")
    w = dock(v, widget)
    assert w._image.value == "b"  # the layer selected when the dock opened
    # a newly opened image is followed
    images(v, "c")
    assert w._image.value == "c"
    # selecting an image layer moves the dropdown
    v.layers.selection.active = v.layers["a"]
    assert w._image.value == "a"
    # selecting a layer derived from an image moves it to that image
    v.add_labels(np.zeros((32, 32), np.uint8), name="b annotation")
    assert w._image.value == "b"
    # a choice made by hand is kept when a non-image layer is selected …
    pick(w._image, "c")
    assert w._image.value == "c" and w._follower.deliberate
    v.layers.selection.active = v.layers["b annotation"]
    v.add_labels(np.zeros((32, 32), np.uint8), name="a labels")
    assert w._image.value == "c"
    # … and selecting another image layer still moves it
    v.layers.selection.active = v.layers["a"]
    assert w._image.value == "a" and not w._follower.deliberate


# ---------------------------------------------------------------------- 2. the look
def test_the_annotation_layer_lets_the_image_through_in_distinct_colours(make_napari_viewer):
    from napari_unet import _layers as L

    v = make_napari_viewer()
    images(v, "cells")
    annotate = dock(v, "Annotate")
    layer = annotate._on_create()
    assert layer.name == "cells annotation"
    rgba = np.asarray(layer.colormap.map(np.arange(10)))  # as napari draws each label
    shown = rgba[:, 3] * layer.opacity  # how much of the image each label covers
    assert shown[0] == 0
    assert shown[1] <= 0.25  # background, painted over large areas: faint
    assert (0.4 <= shown[2:]).all() and (shown[2:] <= 0.6).all()  # objects: strong, see-through
    rgb = rgba[1:, :3]
    for i, j in combinations(range(len(rgb)), 2):
        assert np.linalg.norm(rgb[i] - rgb[j]) > 0.3, (i + 1, j + 1)
    # object colours are saturated (not grey/white like fluorescence) and not yellow
    assert (rgb[1:].max(axis=1) - rgb[1:].min(axis=1) >= 0.4).all()
    assert not (rgb[1, 0] > 0.8 and rgb[1, 1] > 0.6 and rgb[1, 2] < 0.3)
    # the same look for a reopened or restyled layer
    other = v.add_labels(np.zeros((32, 32), np.uint8), name="x")
    L.style_annotation_layer(other)
    assert other.opacity == layer.opacity


# ---------------------------------------------------------------------- 3. closed mid-run
def test_closing_the_image_while_it_is_segmented_discards_the_result(
    make_napari_viewer, qtbot, notes
):
    from napari_unet.core import UNet, UNetConfig

    v = make_napari_viewer()
    images(v, "keep", "gone")
    segment = dock(v, "Segment")
    segment.state.set_model(UNet.new(UNetConfig(depth=1, base_filters=2), seed=0), "tiny")
    segment._model.value = "current"
    worker = segment._on_segment("gone")
    assert worker is not None and segment.running
    v.layers.remove("gone")  # before the worker's result reaches the GUI thread
    wait_idle(qtbot, segment, 120_000)
    assert [layer.name for layer in v.layers] == ["keep"]  # nothing orphaned
    assert "closed" in segment.status.text() and "discarded" in segment.status.text()
    assert any("'gone' was closed" in n for n in notes()), notes()
    assert segment.run_button.isEnabled()
    # the widget goes on working
    segment._on_segment("keep")
    wait_idle(qtbot, segment, 120_000)
    assert "keep labels" in v.layers and "objects" in segment.status.text()


# ---------------------------------------------------------------------- 4. messages
def test_the_panel_keeps_the_last_error_until_the_next_action(make_napari_viewer, qtbot):
    from napari_unet._widgets._ui import plain_error

    v = make_napari_viewer()
    images(v, "cells")
    segment = dock(v, "Segment")
    segment.state.set_model(None, "")  # no current model
    segment._model.value = "current"
    segment._on_segment("cells")
    wait_idle(qtbot, segment, 60_000)
    text = segment.status.text()
    assert "no current model" in text and "Error" not in text
    qtbot.wait(50)
    assert segment.status.text() == text  # still there after the notification
    # an unexpected fault reads without the exception's class name
    plain = plain_error(KeyError("weights"), "Segment")
    assert "KeyError" not in plain and "weights" in plain

    annotate = dock(v, "Annotate")
    annotate._image.value = "cells"
    annotate._on_use_prediction()
    assert "click Segment first" in annotate.message.text()
    annotate._on_create()  # the next action: the message is over
    assert annotate.message.text() == ""

    evaluate = dock(v, "Evaluate")
    evaluate._on_evaluate("cells annotation", "cells annotation")
    assert "same layer" in evaluate.counts.text()


def test_a_folder_that_is_no_training_set_is_refused_in_plain_words(make_napari_viewer, tmp_path):
    v = make_napari_viewer()
    annotate = dock(v, "Annotate")
    plain = tmp_path / "my images"
    plain.mkdir()
    assert annotate._on_open_training_set(str(plain)) is None
    text = annotate.message.text()
    assert "'my images' is not a napari-unet training set" in text
    assert "Save training set" in text and "Reader" not in text and "Error" not in text

    broken = tmp_path / "broken.unet"
    broken.mkdir()
    (broken / "napari-unet-training-set.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(Exception) as caught:
        v.open(str(broken), plugin="napari-unet")
    original = str(getattr(caught.value, "original_error", caught.value))
    assert "not a napari-unet training-set index" in original, original
    assert "refused" not in original
    (broken / "napari-unet-training-set.json").write_text("{not json")
    with pytest.raises(Exception) as caught:
        v.open(str(broken), plugin="napari-unet")
    assert "damaged" in str(getattr(caught.value, "original_error", caught.value))
    assert len(v.layers) == 0


# ---------------------------------------------------------------------- 5. dialogs
def answer_file_dialog(seen, choose=None):
    """When the next file dialog shows: note the folder it opened in, then choose
    ``choose`` (or cancel)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QDialogButtonBox, QFileDialog

    def poll():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(50, poll)
            return
        seen.append(dialog.directory().absolutePath())
        if choose is None:
            dialog.reject()
        else:
            dialog.selectFile(str(choose))
            box = dialog.findChild(QDialogButtonBox)
            ok = [b for b in box.buttons() if box.buttonRole(b) == QDialogButtonBox.AcceptRole]
            ok[0].click()

    QTimer.singleShot(50, poll)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder of the test's own (the real one is never touched) and a fresh
    session memory of the last folder."""
    from napari_unet import _state

    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setattr(_state, "_home", lambda: folder)
    monkeypatch.setattr(_state, "_dialog", {})
    return folder


def test_file_dialogs_start_at_home_then_in_the_last_folder(make_napari_viewer, home, tmp_path):
    from napari_unet._widgets._ui import open_path, save_path

    v = make_napari_viewer()
    segment = dock(v, "Segment")
    seen: list[str] = []
    answer_file_dialog(seen)
    segment._file._on_choose_clicked()  # the model file's "Select file"
    assert seen == [str(home)]
    assert str(segment._file.value) in ("", ".")  # cancelled: still empty

    work = tmp_path / "project"
    work.mkdir()
    answer_file_dialog(seen, work / "model.keras")
    assert save_path(segment, None, "Save model", "model.keras", "*.keras") == str(
        work / "model.keras"
    )
    assert seen[-1] == str(home)
    answer_file_dialog(seen)
    assert open_path(segment, "Load model", "*.keras") is None
    assert seen[-1] == str(work)  # where the last file went


# ---------------------------------------------------------------------- 6. quiet start
def test_no_pyqt5_notice_at_start(qtbot, notes, monkeypatch):
    napari_qt = pytest.importorskip("napari._qt.qt_main_window")
    from qtpy import QT5

    if not QT5:
        pytest.skip("napari shows the notice only under Qt5")
    from napari_unet import launch

    monkeypatch.setattr(napari_qt, "SHOW_QT_WARNING", True)  # as at a fresh start
    viewer = launch.make_viewer(sample=False)
    try:
        viewer.window._qt_window.show()
        qtbot.wait(50)
        assert not napari_qt.SHOW_QT_WARNING
        assert not [n for n in notes() if "PyQt5" in n], notes()
    finally:
        viewer.close()
