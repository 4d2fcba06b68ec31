"""What to correct next, in a real viewer (issue 24, item 2): Segment makes a hidden
doubt layer and keeps its suggestions with the labels; Annotate's Next / Previous centre
the view on an entry, select it and say why; what the person corrects leaves the list;
no suggestions are said in plain words."""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import dock, wait_idle

from napari_unet import _layers as L
from napari_unet._widgets.annotate import NEXT_KEY, PREVIOUS_KEY
from napari_unet.core.prediction.suggestions import REASONS, Suggestion

pytestmark = pytest.mark.gui


def _camera(viewer):
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def test_segment_makes_a_hidden_doubt_layer_and_next_goes_to_the_first_entry(
    make_napari_viewer, qtbot, sample_image
):
    viewer = make_napari_viewer()
    # a part of the sample where the model doubts 2-4 objects, with or without 2 % noise or
    # a slight blur (a margin for other CPUs), shown at 2 µm per pixel: the doubt layer and
    # the camera follow the image's scale
    viewer.add_image(sample_image[64:224, :160], name="crop", scale=(2.0, 2.0))
    segment = dock(viewer, "Segment")
    annotate = dock(viewer, "Annotate")
    segment._on_segment("crop")
    wait_idle(qtbot, segment, 180_000)
    doubt = viewer.layers["crop doubt"]
    assert not doubt.visible and doubt.blending == "additive"
    assert tuple(doubt.contrast_limits) == (0.0, 1.0)
    assert doubt.data.shape == (160, 160) and doubt.data.dtype == np.float32
    assert 0.0 <= doubt.data.min() and doubt.data.max() <= 1.0
    assert np.allclose(doubt.scale, (2.0, 2.0))
    assert "crop doubt" not in annotate._image.choices  # an output, not an image
    labels = viewer.layers["crop labels"]
    entries = L.stored_suggestions(labels)
    assert entries, "this part of the sample has objects the model doubts"
    assert [s.score for s in entries] == sorted((s.score for s in entries), reverse=True)

    annotate._image.value = "crop"
    first = annotate._on_next()
    assert first == entries[0]
    centre = np.asarray(first.center) * 2.0  # in the world: the layer's scale
    assert np.allclose(_camera(viewer).center[-2:], centre)
    text = annotate.suggestion_label.text()
    assert text.startswith(f"1 of {len(entries)}: {first.reason} (score ")
    if first.label:
        assert labels.selected_label == first.label
    ann = viewer.layers["crop annotation"]  # made, the brush ready on an object
    assert viewer.layers.selection.active is ann
    assert ann.mode == "paint" and ann.selected_label == 2

    # a second Segment replaces the layer in place, hidden as the person left it
    doubt.visible = True
    segment._on_segment("crop")
    wait_idle(qtbot, segment, 180_000)
    assert [x.name for x in viewer.layers].count("crop doubt") == 1
    assert viewer.layers["crop doubt"].visible


def _pair(viewer, annotate, entries, shape=(64, 64), scale=None):
    """An image, its labels layer holding ``entries`` as Segment keeps them, and its
    annotation, chosen in Annotate."""
    kw = {} if scale is None else {"scale": scale}
    viewer.add_image(np.zeros(shape, np.float32), name="img", **kw)
    labels = np.zeros(shape, np.int32)
    for s in entries:
        if s.label:
            labels[s.slices] = s.label
    layer = viewer.add_labels(labels, name="img labels", **kw)
    layer.metadata[L.SUGGESTIONS_KEY] = [s.to_dict() for s in entries]
    annotate._image.value = "img"
    annotate._on_create()
    return layer


def _entry(bbox, score, cue, label):
    return Suggestion(tuple(bbox), score, REASONS[cue], label, cue)


def test_next_skips_what_was_corrected_and_previous_goes_back(make_napari_viewer):
    viewer = make_napari_viewer()
    annotate = dock(viewer, "Annotate")
    a = _entry((4, 4, 14, 14), 0.9, "large", 1)
    b = _entry((30, 30, 40, 40), 0.7, "merge", 2)
    c = _entry((50, 4, 60, 14), 0.5, "missed", 0)
    labels = _pair(viewer, annotate, [c, a, b])
    assert annotate._on_next() == a
    assert annotate.suggestion_label.text() == f"1 of 3: {a.reason} (score 0.90)"
    assert labels.selected_label == 1

    # the person paints inside b's box: b is corrected and drops out
    ann = viewer.layers["img annotation"]
    data = np.array(ann.data)
    data[33:36, 33:36] = 1
    ann.data = data
    annotate.refresh()
    assert annotate.suggestion_label.text() == f"1 of 2: {a.reason} (score 0.90)"
    assert annotate._on_next() == c  # b skipped
    assert annotate.suggestion_label.text() == f"2 of 2: {c.reason} (score 0.50)"
    assert labels.selected_label == 3  # a missed object: a free new id
    assert annotate._on_previous() == a
    assert annotate._on_previous() == c  # wraps around

    # a new Segment (or the preview after Train) stores a new list: rebuilt, b is back
    labels.metadata[L.SUGGESTIONS_KEY] = [s.to_dict() for s in (a, b)]
    annotate.refresh()
    assert (
        annotate.suggestion_label.text()
        == f"2 of 2 left to check: Next ({NEXT_KEY}) goes to the next"
    )
    # the shortcuts are the viewer's
    from napari.utils.key_bindings import coerce_keybinding

    viewer.keymap[coerce_keybinding(NEXT_KEY)](viewer)
    assert annotate.suggestion_label.text().startswith("1 of 2: ")
    viewer.keymap[coerce_keybinding(PREVIOUS_KEY)](viewer)
    assert annotate.suggestion_label.text().startswith("2 of 2: " + b.reason)


def test_a_volume_entry_sets_the_plane_and_no_suggestions_are_said(make_napari_viewer, notes):
    viewer = make_napari_viewer()
    annotate = dock(viewer, "Annotate")
    viewer.add_image(np.zeros((8, 8), np.float32), name="plain")
    annotate._image.value = "plain"
    assert annotate._on_next() is None
    assert notes()[-1] == "no suggestions for 'plain' yet: click Segment first"

    # a volume with a 3 px z-step: the box's middle plane, in the world's z
    deep = _entry((4, 10, 20, 7, 20, 30), 0.8, "small", 1)
    _pair(viewer, annotate, [deep], shape=(10, 40, 40), scale=(3.0, 1.0, 1.0))
    assert annotate._on_next() == deep
    assert viewer.dims.point[0] == pytest.approx(5 * 3.0)
    assert np.allclose(_camera(viewer).center[-2:], (14.5, 24.5))

    # corrected: nothing left, said in plain words
    ann = viewer.layers["img annotation"]
    data = np.array(ann.data)
    data[5, 12, 22] = 2
    ann.data = data
    assert annotate._on_next() is None
    assert "every suggestion on 'img' was corrected" in notes()[-1]
    # an image the model is sure of
    viewer.layers["img labels"].metadata[L.SUGGESTIONS_KEY] = []
    assert annotate._on_previous() is None
    assert notes()[-1] == "nothing to suggest on 'img': the model is sure of every object"
