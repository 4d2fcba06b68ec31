"""The Segment panel says when the model does not know (issue 22, item 5), in a real
viewer with the bundled model: a short warning, and the line that says what to do kept
in the panel under the count."""

from __future__ import annotations

import pytest
from widget_helpers import dock, toast_is_cut_off, wait_idle

from napari_unet.core.prediction.doubt import HEADLINES

pytestmark = pytest.mark.gui


def test_segment_panel_says_when_the_model_does_not_know(viewer, qtbot, notes):
    segment = dock(viewer, "Segment")
    # the rules of doubt were set for the fluorescence nuclei model: the generalist
    # reads dark objects on light as it reads bright ones
    segment._model.value = "nuclei"
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 120_000)
    assert "objects" in segment.status.text() and "⚠" not in segment.status.text()
    assert not [n for n in notes() if "likely" in n]

    data = viewer.layers["nuclei"].data
    viewer.add_image(data.max() - data, name="inverted")
    segment._on_segment("inverted")
    wait_idle(qtbot, segment, 120_000)
    count, line = segment.status.text().split("\n")
    assert count.startswith("inverted: ") and "objects" in count
    assert line.startswith("⚠ ") and "likely wrong" in line and "Train" in line, line
    assert "inverted labels" in viewer.layers  # the result is shown all the same
    toasts = [n for n in notes() if "likely" in n]
    assert toasts == ["inverted: dark objects on light, likely wrong"]
    assert not toast_is_cut_off(qtbot, toasts[0])
    # every headline fits a toast's line, with a short image name
    for headline in HEADLINES.values():
        assert not toast_is_cut_off(qtbot, f"nuclei: {headline}"), headline
    # the next run starts afresh
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 120_000)
    assert "⚠" not in segment.status.text()
