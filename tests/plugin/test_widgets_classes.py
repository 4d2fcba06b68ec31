"""The widgets with a model of two object classes: Segment adds ``<image> classes``,
the copy to the annotation keeps each object's class, Evaluate scores per class."""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import dock, wait_idle

pytestmark = pytest.mark.gui


def two_class_model(favour: int = 2):
    """The bundled nuclei model with a second object class, tilted so that every
    object is class ``favour`` (the widened model itself cannot tell them apart)."""
    from napari_unet.core import UNet

    net = UNet.bundled("nuclei")
    net.widen(2)
    scores = net.keras_model.get_layer("scores")
    kernel, bias = scores.get_weights()
    bias[favour] += 0.5
    bias[3 - favour] -= 0.5
    scores.set_weights([kernel, bias])
    return net


def test_segment_with_two_classes_adds_a_class_layer_copy_and_evaluate_use_it(viewer, qtbot, notes):
    from napari.layers import Labels

    segment = dock(viewer, "Segment")
    annotate = dock(viewer, "Annotate")
    evaluate = dock(viewer, "Evaluate")
    segment.state.set_model(two_class_model(favour=2), "two classes")
    segment._model.value = "current"
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment)
    assert "nuclei classes" in viewer.layers, notes()
    classes = viewer.layers["nuclei classes"]
    labels = viewer.layers["nuclei labels"].data
    assert isinstance(classes, Labels) and classes.data.shape == labels.shape
    assert labels.max() > 20  # the nuclei are found as before
    assert np.array_equal(classes.data > 0, labels > 0)
    assert set(np.unique(classes.data)) == {0, 2}
    assert "object class 2" in classes.features["class"].tolist()
    assert "object class 2" in segment.status.text()

    # the copy writes each object as its class's label: class 2 -> 3
    annotate._image.value = "nuclei"
    ann = annotate._on_use_prediction()
    assert set(np.unique(ann.data)) <= {0, 1, 3} and (ann.data == 3).sum() > 500
    annotate._object_class.value = 2
    assert annotate.object_label == 3 and "class 2" in annotate.object_button.text()

    truth = viewer.layers["nuclei ground truth"].data
    viewer.add_labels(
        np.where(truth > 0, 2, 0).astype(np.uint8), name="nuclei ground truth classes"
    )
    evaluate.reset_choices()
    assert evaluate._pred_classes.value == "nuclei classes"
    assert evaluate._truth_classes.value == "nuclei ground truth classes"
    evaluate._on_evaluate("nuclei labels", "nuclei ground truth")
    qtbot.waitUntil(lambda: evaluate.scores is not None, timeout=60_000)
    per_class = evaluate.scores["per_class"]
    assert set(per_class) == {"2"} and per_class["2"]["f1"] == evaluate.scores["f1"] > 0.8
    assert "class 2" in evaluate.per_class.text()

    # a one-class model again: its prediction has no classes, the stale map goes
    segment._model.value = "default"
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment)
    assert "nuclei classes" not in viewer.layers
    assert "nuclei labels" in viewer.layers


def test_a_huge_layer_segmented_block_by_block_gets_a_lazy_class_map(
    viewer, qtbot, notes, monkeypatch, tmp_path
):
    import dask.array as da

    from napari_unet._widgets import _workers

    monkeypatch.setattr("napari_unet.core.memory.LARGE_PIXELS", 100_000)
    monkeypatch.setattr(_workers, "LARGE_BLOCK", 256)
    monkeypatch.setenv("NAPARI_UNET_WORK_DIR", str(tmp_path / "work"))
    image = viewer.layers["nuclei"].data
    viewer.add_image(da.from_array(image, chunks=128), name="slide")
    segment = dock(viewer, "Segment")
    segment.state.set_model(two_class_model(favour=2), "two classes")
    segment._model.value = "current"
    segment._on_segment("slide")
    wait_idle(qtbot, segment)
    assert "block by block" in segment.status.text(), notes()
    classes = viewer.layers["slide classes"]
    data = classes.data[0] if classes.multiscale else classes.data
    assert isinstance(data, da.Array)  # read from the OME-Zarr, not held in memory
    labels = viewer.layers["slide labels"]
    lab = np.asarray(labels.data[0] if labels.multiscale else labels.data)
    cls = np.asarray(data)
    assert lab.max() > 20 and np.array_equal(cls > 0, lab > 0)
    assert set(np.unique(cls)) == {0, 2}
    assert "object class 2" in classes.features["class"].tolist()
