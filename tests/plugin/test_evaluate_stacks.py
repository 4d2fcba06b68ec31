"""The Evaluate widget on a 3D pair of Labels layers: a volume, its objects matched in
3D, unless the layers' or their image's axis labels say the first axis is time. A real
viewer under pytest-qt."""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import dock

pytestmark = pytest.mark.gui


def cut_cube() -> tuple[np.ndarray, np.ndarray]:
    """Two touching cubes through 8 planes, and a prediction that cuts the first into
    two ids between planes 4 and 5 (every plane alone perfect)."""
    truth = np.zeros((8, 40, 40), np.uint16)
    truth[:, 5:20, 5:20] = 1
    truth[:, 5:20, 20:35] = 2
    pred = truth.copy()
    pred[5:][truth[5:] == 1] = 7
    return pred, truth


def scored(qtbot, evaluate, pred: str, truth: str) -> dict:
    evaluate.scores = None
    evaluate._on_evaluate(pred, truth)
    qtbot.waitUntil(lambda: evaluate.scores is not None and not evaluate._busy, timeout=30_000)
    return evaluate.scores


def test_a_3d_labels_pair_is_scored_as_a_volume_unless_labelled_time(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    pred, truth = cut_cube()
    viewer.add_labels(truth, name="cells ground truth")
    viewer.add_labels(pred, name="cells labels")
    evaluate = dock(viewer, "Evaluate")
    scores = scored(qtbot, evaluate, "cells labels", "cells ground truth")
    assert scores["matching"] == "3d"
    assert (scores["n_true"], scores["n_pred"], scores["tp"]) == (2, 3, 2)
    assert evaluate.values["f1"].text() == "0.800"
    text = evaluate.counts.text()
    assert text.startswith("scored as a 3D volume (Z×Y×X"), text
    assert "2 true objects, 3 predicted" in text and "axes from the shape" in text

    # the image the prediction came from says its first axis is time: frame by frame
    viewer.add_image(np.zeros(truth.shape, np.float32), name="cells", axis_labels=("t", "y", "x"))
    scores = scored(qtbot, evaluate, "cells labels", "cells ground truth")
    assert scores["matching"] == "2d per frame" and scores["f1"] == 1.0
    assert (scores["n_true"], scores["frames"]) == (16, 8)
    text = evaluate.counts.text()
    assert text.startswith("scored frame by frame (T=8"), text
    assert "the layers' axis labels" in text

    # a z label on the pair itself, without the image: a volume again
    viewer.layers.remove("cells")
    viewer.layers["cells ground truth"].axis_labels = ("z", "y", "x")
    assert scored(qtbot, evaluate, "cells labels", "cells ground truth")["matching"] == "3d"
