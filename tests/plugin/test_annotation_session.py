"""The annotation session without Qt or a viewer: a prediction copied into an
annotation (replace, fill; in memory and block by block into an on-disk zarr
annotation), what counts as painted afterwards, the undo, and the pixel counts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_unet import _annotation_session as S
from napari_unet.core import mask_to_annotation
from napari_unet.core.training.huge_annotations import create_labels_zarr


def prediction(shape=(96, 128)) -> np.ndarray:
    """Instances: a few rectangles, two of them touching (a line left unannotated)."""
    labels = np.zeros(shape, np.int32)
    labels[10:30, 10:40] = 1
    labels[10:30, 40:60] = 2  # touches 1
    labels[50:80, 70:120] = 3
    labels[60:90, 5:25] = 4
    return labels


def strokes(shape=(96, 128)) -> np.ndarray:
    """What a person painted before copying: background over an object, an object
    where the prediction sees background, and a stroke that agrees with it."""
    a = np.zeros(shape, np.uint8)
    a[15:20, 15:25] = 1  # inside object 1: a correction
    a[40:45, 90:100] = 2  # a missed object
    a[0:3, 0:50] = 1  # background where the prediction says background too
    return a


def test_the_copy_mode_asks_only_when_something_is_painted():
    asked = []

    def ask(answer):
        return lambda: asked.append(answer) or answer

    assert S.copy_mode(False, None, ask("fill")) == "replace" and not asked
    assert S.copy_mode(True, "fill", ask("replace")) == "fill" and not asked
    assert S.copy_mode(True, None, ask("fill")) == "fill" and asked == ["fill"]
    assert S.copy_mode(True, None, ask(None)) is None  # cancelled
    assert S.copy_mode(True, "other", ask("fill")) is None
    with pytest.raises(ValueError, match="replace"):
        S.copy_prediction(prediction(), np.zeros((96, 128), np.uint8), "merge")


def test_replace_copies_the_prediction_and_only_corrections_count_as_painted():
    labels, before = prediction(), strokes()
    expected = mask_to_annotation(labels)
    copy = S.copy_prediction(labels, before, "replace")
    assert copy.mode == "replace" and copy.data.dtype == np.uint8
    np.testing.assert_array_equal(copy.data, expected)
    np.testing.assert_array_equal(copy.reference, expected)
    np.testing.assert_array_equal(before, strokes())  # the annotation handed in is untouched
    assert (copy.data[10:30, 39:41] == 0).any()  # touching instances stay apart

    metadata: dict = {}
    assert S.painted_pixels(metadata, copy.data) is None  # nothing copied: all painted
    session = S.AnnotationSession()
    session.record("cells annotation", metadata, copy)
    assert session.can_undo and metadata[S.COPIED_KEY] is copy.reference
    after = copy.data.copy()
    assert not S.painted_pixels(metadata, after).any()
    after[50:55, 70:75] = 1  # a correction after the copy
    np.testing.assert_array_equal(
        S.painted_pixels(metadata, after), np.pad(np.ones((5, 5), bool), ((50, 41), (70, 53)))
    )
    assert S.painted_pixels(metadata, after[:10]) is None  # another shape: all painted


def test_fill_keeps_the_strokes_and_remembers_the_prediction_not_the_merge():
    labels, before = prediction(), strokes()
    expected = mask_to_annotation(labels)
    copy = S.copy_prediction(labels, before, "fill")
    painted = before > 0
    np.testing.assert_array_equal(copy.data[painted], before[painted])
    np.testing.assert_array_equal(copy.data[~painted], expected[~painted])
    np.testing.assert_array_equal(copy.reference, expected)
    metadata: dict = {}
    S.AnnotationSession().record("a", metadata, copy)
    # the kept strokes count as painted where they differ from the prediction; the one
    # that agrees with it and the filled-in prediction do not
    was_painted = S.painted_pixels(metadata, copy.data)
    np.testing.assert_array_equal(was_painted, painted & (before != expected))
    assert was_painted[15:20, 15:25].all() and was_painted[40:45, 90:100].all()
    assert not was_painted[0:3, 0:50].any()


def test_undo_puts_back_the_annotation_and_what_was_copied_before():
    labels, before = prediction(), strokes()
    session = S.AnnotationSession()
    metadata: dict = {}
    assert not session.can_undo
    first = S.copy_prediction(labels, before, "fill")
    session.record("a", metadata, first)
    corrected = first.data.copy()
    corrected[60:65, 80:90] = 1  # a correction of the first copy
    other = np.roll(labels, 7, axis=1)  # a later prediction
    second = S.copy_prediction(other, corrected, "replace", reference=metadata.get(S.COPIED_KEY))
    session.record("a", metadata, second)
    np.testing.assert_array_equal(metadata[S.COPIED_KEY], mask_to_annotation(other))

    (name, undo), *more = session.take_undo().items()
    assert name == "a" and not more and not session.can_undo
    assert not undo.blockwise(second.data)
    data, reference = undo.put_back(second.data)
    S.remember(metadata, reference)
    np.testing.assert_array_equal(data, corrected)  # one level: before the last copy
    assert metadata[S.COPIED_KEY] is first.reference
    np.testing.assert_array_equal(
        S.painted_pixels(metadata, data),
        S.painted_pixels({S.COPIED_KEY: first.reference}, corrected),
    )
    # undoing the first copy forgets that anything was copied
    data, reference = first.undo.put_back(first.data)
    S.remember(metadata, reference)
    np.testing.assert_array_equal(data, before)
    assert S.COPIED_KEY not in metadata and S.painted_pixels(metadata, data) is None


def test_block_by_block_copy_of_a_lazy_prediction_equals_the_copy_in_memory(monkeypatch):
    import dask.array as da

    monkeypatch.setattr("napari_unet.core.training.huge_annotations.BLOCK", 32)  # several blocks
    labels, before = prediction(), strokes()
    whole = S.copy_prediction(labels, before, "fill")
    target = before.copy()
    lazy = S.copy_prediction(da.from_array(labels, chunks=40), target, "fill", blockwise=True)
    assert lazy.data is target  # written in place
    np.testing.assert_array_equal(target, whole.data)
    np.testing.assert_array_equal(lazy.reference, whole.reference)
    data, reference = lazy.undo.put_back(target)
    np.testing.assert_array_equal(data, before)
    assert reference is None


def test_on_disk_copy_and_undo_of_a_zarr_annotation(tmp_path, monkeypatch):
    import dask.array as da
    import zarr

    monkeypatch.setattr("napari_unet.core.training.huge_annotations.BLOCK", 32)
    shape = (96, 128)
    labels, painted = prediction(shape), strokes(shape)
    expected = mask_to_annotation(labels)
    folder = tmp_path / "work"
    folder.mkdir()
    annotation = create_labels_zarr(folder / "annotation.zarr", shape, chunk=16)
    annotation[:] = painted
    lazy_labels = da.from_array(labels, chunks=48)
    region = (8, 72, 0, 100)  # the part in view
    y0, y1, x0, x1 = region

    copy = S.copy_prediction(
        lazy_labels, annotation, "fill", region=region, folder=folder, blockwise=True
    )
    assert copy.data is annotation and isinstance(copy.reference, zarr.Array)
    for name in (S.BACKUP_FILE, S.REFERENCE_FILE):
        assert (folder / name).is_dir()
    got = np.asarray(annotation[:])
    want = painted.copy()
    box = want[y0:y1, x0:x1]
    want[y0:y1, x0:x1] = np.where(box > 0, box, expected[y0:y1, x0:x1])
    np.testing.assert_array_equal(got, want)
    # the reference: the prediction inside the region, nothing copied outside it
    ref = np.zeros(shape, np.uint8)
    ref[y0:y1, x0:x1] = expected[y0:y1, x0:x1]
    np.testing.assert_array_equal(copy.reference[:], ref)
    metadata: dict = {}
    session = S.AnnotationSession()
    session.record("big annotation", metadata, copy)
    was_painted = S.painted_pixels(metadata, annotation)
    assert isinstance(was_painted, da.Array)  # read region by region
    np.testing.assert_array_equal(was_painted.compute(), got != ref)
    assert was_painted.compute()[0:3, 0:8].all()  # strokes outside the region: painted

    # undo: the strokes as painted, block by block, and nothing copied
    (undo,) = session.take_undo().values()
    assert undo.blockwise(annotation)
    S.remember(metadata, undo.put_back(annotation)[1])
    np.testing.assert_array_equal(annotation[:], painted)
    assert S.COPIED_KEY not in metadata

    copy = S.copy_prediction(
        lazy_labels, annotation, "fill", region=region, folder=folder, blockwise=True
    )
    session.record("big annotation", metadata, copy)
    np.testing.assert_array_equal(annotation[:], got)
    # a second copy over the whole image replaces the reference; undo puts back the
    # annotation and the first reference, block by block, in the same files
    annotation[20:24, 20:24] = 1  # a correction
    corrected = np.asarray(annotation[:])
    second = S.copy_prediction(
        lazy_labels,
        annotation,
        "replace",
        reference=metadata[S.COPIED_KEY],
        folder=folder,
        blockwise=True,
    )
    session.record("big annotation", metadata, second)
    np.testing.assert_array_equal(annotation[:], expected)
    np.testing.assert_array_equal(metadata[S.COPIED_KEY][:], expected)
    (undo,) = session.take_undo().values()
    assert undo.blockwise(annotation)
    data, reference = undo.put_back(annotation)
    S.remember(metadata, reference)
    assert data is annotation
    np.testing.assert_array_equal(annotation[:], corrected)
    np.testing.assert_array_equal(metadata[S.COPIED_KEY][:], ref)
    np.testing.assert_array_equal(
        S.painted_pixels(metadata, annotation).compute(), corrected != ref
    )


def test_an_on_disk_annotation_with_no_working_folder_is_copied_without_undo(tmp_path):
    annotation = create_labels_zarr(tmp_path / "a.zarr", (96, 128), chunk=32)
    copy = S.copy_prediction(prediction(), annotation, "replace", blockwise=True)
    np.testing.assert_array_equal(annotation[:], mask_to_annotation(prediction()))
    assert copy.undo is None and copy.reference is None
    metadata = {S.COPIED_KEY: np.zeros((96, 128), np.uint8)}  # an earlier copy's
    session = S.AnnotationSession()
    session.record("a", metadata, copy)
    assert S.COPIED_KEY not in metadata and not session.can_undo


def test_the_count_table_and_whether_the_images_can_train():
    table = S.count_table({})
    assert table.rows == [] and "Create annotation layer" in table.readiness
    table = S.count_table({"cells": {1: 1200, 2: 0}})
    assert table.readiness == "paint some object (2) pixels before training"
    table = S.count_table({"cells": {2: 30}})
    assert table.readiness == "paint some background (1) pixels before training"
    table = S.count_table({"cells": {1: 1200, 2: 30}, "more": {1: 5, 4: 7}})
    assert table.headers == ["image", "background px", "object px", "class 3 (4) px"]
    assert table.rows == [["cells", "1,200", "30", "0"], ["more", "5", "0", "7"]]
    assert (table.background, table.objects) == (1205, 37)
    assert table.readiness == "2 image(s) ready to train"


def test_the_session_imports_no_gui_and_no_tensorflow():
    code = (
        "import sys, napari_unet._annotation_session, napari_unet._layers\n"
        "print([m for m in ('napari', 'qtpy', 'magicgui', 'tensorflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
