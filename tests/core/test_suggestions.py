"""core/prediction/suggestions.py (issue 24): each cue fires on a probability map built
for it, the list is ranked and cut, boxes cover every axis, the JSON file's form, and the
Worklist drops what the user corrected. Probabilities are built by hand (no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_unet.core.prediction.suggestions import (
    REASONS,
    Suggestion,
    Worklist,
    ranked,
    read_json,
    suggestions_of,
    write_json,
)

#: an object's sure pixels: [background, interior, boundary]
SURE = (0.02, 0.95, 0.03)
EMPTY = (0.98, 0.01, 0.01)


def scene(shape=(96, 96)):
    """Empty probabilities and labels of ``shape``."""
    prob = np.empty((*shape, 3), np.float32)
    prob[:] = EMPTY
    return prob, np.zeros(shape, np.int32)


def put(prob, labels, where, label, p=SURE):
    prob[where] = p
    labels[where] = label


def square(y, x, side=10):
    return np.s_[y : y + side, x : x + side]


def row_of_objects(prob, labels, n=6, side=10, first=1):
    """``n`` sure, separate squares along the top rows."""
    for i in range(n):
        put(prob, labels, square(4, 4 + 15 * i, side), first + i)


def by_label(found):
    return {s.label: s for s in found if s.label}


def test_a_faint_object_is_suggested_as_maybe_background():
    prob, labels = scene()
    row_of_objects(prob, labels)
    put(prob, labels, square(40, 40), 7, (0.45, 0.5, 0.05))  # foreground barely 0.55
    found, dmap = suggestions_of(prob, labels)
    assert found and found[0].label == 7 and found[0].cue == "background"
    assert found[0].reason == REASONS["background"] and found[0].bbox == (40, 40, 50, 50)
    assert 7 not in [s.label for s in found[1:]]
    assert all(i not in by_label(found) for i in range(1, 7))  # the sure ones: no doubt
    assert dmap.shape == labels.shape and dmap.dtype == np.float32
    assert dmap[45, 45] >= found[0].score - 1e-6 and dmap[8, 8] < 0.2


def test_two_objects_meeting_without_a_boundary_are_a_guessed_split():
    prob, labels = scene()
    put(prob, labels, np.s_[30:50, 20:40], 1)
    put(prob, labels, np.s_[30:50, 40:60], 2)  # touching along 20 px, no boundary seen
    found, _ = suggestions_of(prob, labels)
    got = by_label(found)
    assert set(got) == {1, 2} and {s.cue for s in found} == {"split"}
    assert got[1].score > 0.8 and got[1].reason == REASONS["split"]
    # the same contact where the network saw a boundary: no doubt
    prob[30:50, 39:41] = (0.02, 0.1, 0.88)
    assert suggestions_of(prob, labels)[0] == []


def test_one_object_with_two_separate_cores_is_a_guessed_merge():
    prob, labels = scene()
    put(prob, labels, np.s_[30:42, 20:60], 1)
    prob[30:42, 38:42] = (0.02, 0.75, 0.23)  # the cores part at a stricter threshold
    found, _ = suggestions_of(prob, labels)
    assert [(s.label, s.cue) for s in found] == [(1, "merge")]
    assert found[0].reason == REASONS["merge"] and found[0].score >= 0.5
    prob[30:42, 38:42] = SURE  # one core: nothing to say
    assert suggestions_of(prob, labels)[0] == []


def test_an_object_eight_times_the_typical_size_is_large():
    prob, labels = scene((120, 120))
    row_of_objects(prob, labels)  # six of 10x10
    put(prob, labels, np.s_[40:80, 40:60], 7)  # 8x their area
    found, _ = suggestions_of(prob, labels)
    assert [(s.label, s.cue) for s in found] == [(7, "large")]
    assert found[0].reason == REASONS["large"] and found[0].bbox == (40, 40, 80, 60)


def test_a_tiny_object_among_typical_ones_is_small():
    prob, labels = scene()
    row_of_objects(prob, labels)
    put(prob, labels, square(50, 50, side=2), 7)  # 1/25 of their area
    found, _ = suggestions_of(prob, labels)
    assert [(s.label, s.cue) for s in found] == [(7, "small")]


def test_a_faint_thick_unlabelled_blob_is_a_likely_miss():
    prob, labels = scene()
    row_of_objects(prob, labels)
    yy, xx = np.mgrid[:96, :96]
    blob = (yy - 60) ** 2 + (xx - 50) ** 2 < 7**2
    prob[blob] = (0.62, 0.33, 0.05)  # object-like, below the threshold, no label
    found, dmap = suggestions_of(prob, labels)
    assert [(s.label, s.cue) for s in found] == [(0, "missed")]
    y0, x0, y1, x1 = found[0].bbox
    assert (y0, x0, y1, x1) == (54, 44, 67, 57)
    assert dmap[60, 50] >= found[0].score - 1e-6
    # a thin faint line is not an object left out
    prob[blob] = EMPTY
    prob[60, 20:80] = (0.62, 0.33, 0.05)
    assert suggestions_of(prob, labels)[0] == []


def test_the_list_is_ranked_and_cut_and_a_good_image_gets_none():
    prob, labels = scene((120, 120))
    row_of_objects(prob, labels)
    put(prob, labels, square(40, 10), 7, (0.45, 0.5, 0.05))  # background
    put(prob, labels, np.s_[40:60, 40:50], 8)
    put(prob, labels, np.s_[40:60, 50:60], 9)  # a split
    put(prob, labels, np.s_[80:110, 10:40], 10)  # large
    put(prob, labels, square(90, 90, side=14), 11, (0.3, 0.62, 0.08))  # a little faint
    found, _ = suggestions_of(prob, labels)
    assert len(found) >= 5 and len({s.cue for s in found}) >= 3
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True) and found == ranked(found)
    assert ranked(found, 2) == found[:2] and len(ranked(found, 100)) == len(found)
    assert ranked(found, 0) == []
    clean, _ = scene((120, 120))
    row_of_objects(clean, labels := np.zeros((120, 120), np.int32))
    assert suggestions_of(clean, labels)[0] == []


def test_a_volume_gets_boxes_over_z_y_and_x():
    prob = np.empty((12, 64, 64, 3), np.float32)
    prob[:] = EMPTY
    labels = np.zeros((12, 64, 64), np.int32)
    labels[2:10, 20:36, 10:26], labels[2:10, 20:36, 26:42] = 1, 2  # touching, no boundary
    prob[labels > 0] = SURE
    found, dmap = suggestions_of(prob, labels, z_scale=2.0)
    assert dmap.shape == labels.shape
    assert {s.label for s in found} == {1, 2} and {s.cue for s in found} == {"split"}
    assert by_label(found)[1].bbox == (2, 20, 10, 10, 36, 26)
    assert all(len(s.bbox) == 6 and len(s.slices) == 3 for s in found)


def test_the_json_file_round_trips_and_is_never_overwritten(tmp_path):
    entries = [
        Suggestion((1, 2, 30, 40), 0.5, REASONS["split"], 3, "split"),
        Suggestion((5, 6, 7, 8, 9, 10), 0.9375, REASONS["missed"], 0, "missed"),
        Suggestion((0, 0, 4, 4), 0.25, REASONS["small"], 9, "small"),
    ]
    path = write_json(tmp_path / "x_suggestions.json", entries, k=2)
    raw = json.loads(path.read_text())
    assert raw == [
        {"bbox": [5, 6, 7, 8, 9, 10], "score": 0.9375, "reason": REASONS["missed"], "label": 0},
        {"bbox": [1, 2, 30, 40], "score": 0.5, "reason": REASONS["split"], "label": 3},
    ]
    assert read_json(path) == ranked(entries, 2)
    with pytest.raises(FileExistsError):
        write_json(path, entries[2:])
    assert json.loads(path.read_text()) == raw


def test_the_worklist_drops_corrected_entries_and_wraps_around():
    entries = [
        Suggestion((0, 0, 4, 4), 0.9, REASONS["split"], 1, "split"),
        Suggestion((10, 10, 14, 14), 0.8, REASONS["merge"], 2, "merge"),
        Suggestion((20, 20, 24, 24), 0.7, REASONS["missed"], 0, "missed"),
    ]
    annotation = np.zeros((32, 32), np.uint8)
    work = Worklist(list(reversed(entries)))  # ranked on the way in
    assert work.suggestions == entries and len(work) == 3
    work.track(annotation)
    assert work.open(annotation) == [0, 1, 2]
    annotation[1, 1] = 2  # the person paints in the first box
    assert work.open(annotation) == [1, 2]
    assert work.next(annotation) is entries[1]
    assert work.next(annotation) is entries[2]
    assert work.next(annotation) is entries[1]  # wraps around, skipping the corrected one
    assert work.previous(annotation) is entries[2]
    annotation[22, 22] = 1
    annotation[12, 12] = 1
    assert work.open(annotation) == [] and work.next(annotation) is None


def test_the_plan_names_the_suggestions_file_or_says_why_there_is_none(tmp_path):
    from napari_unet.core.errors import ConfigError
    from napari_unet.core.jobs.file_jobs import plan_predictions

    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, np.zeros((64, 48), np.uint8))
    out = tmp_path / "out"
    assert plan_predictions([image], out).jobs[0].suggestions is None
    (job,) = plan_predictions([image], out, suggest=5).jobs
    assert job.suggestions == out / "cells_suggestions.json" and job.no_suggestions is None
    (zjob,) = plan_predictions([image], out, fmt="zarr", suggest=5).jobs
    assert zjob.suggestions is None and "block by block" in zjob.no_suggestions
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="suggest"):
            plan_predictions([image], out, suggest=bad)


def test_a_suggestions_file_of_ours_may_be_replaced_another_json_not(tmp_path):
    from napari_unet.core.files.outputs import is_our_output

    ours = write_json(tmp_path / "a_suggestions.json", [Suggestion((0, 0, 2, 2), 0.5, "x", 1)])
    empty = write_json(tmp_path / "b_suggestions.json", [])
    assert is_our_output(ours) and is_our_output(empty)
    for i, text in enumerate(('{"mine": true}', '[{"bbox": [0, 0, 1, 1]}]', "not json")):
        other = tmp_path / f"c{i}_suggestions.json"
        other.write_text(text)
        assert not is_our_output(other)
