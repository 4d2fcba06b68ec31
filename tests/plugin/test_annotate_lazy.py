"""Annotating and training on a huge (dask / zarr) image in a real viewer: the
annotation lives on disk and is painted in place; Train reads only its painted regions."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import make_blobs
from widget_helpers import Guard

pytestmark = pytest.mark.gui

PLUGIN = "napari-unet"
SIZE, CHUNK = 2000, 250
#: two small regions (y0, y1, x0, x1) annotated from the ground truth
REGIONS = [(300, 380, 310, 390), (1500, 1580, 1210, 1290)]


class Recorder:
    """An in-memory array that records the windows read from it, with the thread."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
        self.reads: list[tuple[str, tuple]] = []

    def __getitem__(self, key):
        out = self.a[key]
        if out.size:
            self.reads.append((threading.current_thread().name, key))
        return out


def test_annotate_and_train_on_a_huge_dask_image(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    import dask
    import dask.array as da
    import zarr

    from napari_unet import _layers as L
    from napari_unet._workfolders import WORK_KEY, release_unused
    from napari_unet.core.training.samples import sampling_margin

    work = tmp_path / "work"
    monkeypatch.setenv("NAPARI_UNET_WORK_DIR", str(work))
    # reads happen in the thread that asks for them, so the worker's can be told apart
    monkeypatch.setitem(dask.config.config, "scheduler", "synchronous")
    tile, truth_tile = make_blobs(500, 60, seed=4)
    reps = (SIZE // 500, SIZE // 500)
    image, truth = np.tile(tile, reps), np.tile(truth_tile, reps)
    recorder = Recorder(image)
    lazy = da.from_array(recorder, chunks=CHUNK, asarray=True)

    viewer = make_napari_viewer()
    viewer.add_image(lazy, name="big", contrast_limits=(0, 1400))
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    annotate._image.value = "big"
    layer = annotate._on_create()
    # an on-disk zarr annotation in a working folder, nothing stored yet
    assert isinstance(layer.data, zarr.Array) and layer.data.shape == (SIZE, SIZE)
    folder = layer.metadata[WORK_KEY]
    assert folder.startswith(str(work)) and layer.data.nchunks_initialized == 0

    # paint: a region copied from the ground truth through the layer's edit API, and
    # brush strokes of background and object (napari writes them into the zarr array)
    for k, (y0, y1, x0, x1) in enumerate(REGIONS):
        ys, xs = np.mgrid[y0:y1, x0:x1]
        values = np.where(truth[y0:y1, x0:x1] > 0, 2, 1).astype(np.uint8)
        if k == 0:
            layer.data_setitem((ys.ravel(), xs.ravel()), values.ravel())
        else:
            layer.brush_size = 5
            for y, x in zip(*np.nonzero(values[::4, ::4] > 0)):
                layer.paint((y0 + 4 * y, x0 + 4 * x), 2)
            layer.paint((y0 + 2, x0 + 2), 1)
    assert 1 <= layer.data.nchunks_initialized <= 4
    painted = np.asarray(layer.data[REGIONS[0][0] : REGIONS[0][1], REGIONS[0][2] : REGIONS[0][3]])
    assert (painted == np.where(truth[300:380, 310:390] > 0, 2, 1)).all()
    annotate.refresh()
    counts = annotate.last_counts["big"]
    assert set(counts) == {1, 2} and counts[2] > 500

    # train: a tiny network, a fixed number of steps; no whole conversion in the worker
    guard = Guard(monkeypatch, lazy)
    train._init.value = "new"
    train._depth.value, train._filters.value = 2, 8
    train._epochs.value, train._steps.value, train._time.value = 1, 3, 0
    train._patch.value, train._batch.value = 64, 2
    recorder.reads.clear()
    worker = train._on_train()
    assert worker is not None
    qtbot.waitUntil(lambda: not train.running, timeout=180_000)
    assert train.outcome is not None, train.status.text()
    result = train.outcome.result
    assert result.steps_run == 3 and np.isfinite(result.history["loss"]).all()
    assert len(result.data) == 2 and all(d["name"].startswith("big[") for d in result.data)
    assert not guard.hits
    # the worker read the image only around the painted regions (plus the margin)
    margin = sampling_margin(64) + 5
    mine = [key for thread, key in recorder.reads if thread == "napari-unet-train"]
    assert mine
    for ys, xs in mine:
        assert any(
            y0 - margin <= ys.start
            and ys.stop <= y1 + margin
            and x0 - margin <= xs.start
            and xs.stop <= x1 + margin
            for y0, y1, x0, x1 in REGIONS
        ), (ys, xs)

    # the annotation is the person's work: kept while its layer exists, and saved
    # (painted chunks only) to a folder that opens as the annotation again
    release_unused(viewer)
    assert Path(folder).exists()
    target = tmp_path / "mine.zarr"
    assert annotate._on_save_annotation(str(target)) is not None
    qtbot.waitUntil(lambda: not annotate.saving, timeout=60_000)
    assert annotate.saved == [str(target)]
    chunks = [f for f in (target / "0").rglob("*") if f.is_file() and f.name[0] != "."]
    assert 1 <= len(chunks) <= 4  # the painted chunks only
    viewer.layers.remove(layer)
    assert not Path(folder).exists()
    (again,) = viewer.open(str(target), plugin=PLUGIN)
    assert again.name == "big annotation" and isinstance(again.data, zarr.Array)
    assert L.annotated_counts(again.data) == counts
    assert again.metadata[WORK_KEY] != folder and Path(again.metadata[WORK_KEY]).exists()
    again.paint((10, 10), 1)  # painting the copy leaves the saved folder as it was
    assert L.annotated_counts(zarr.open_array(str(target / "0"))) == counts


def test_lazy_prediction_becomes_an_on_disk_annotation_and_is_evaluated_block_by_block(
    make_napari_viewer, qtbot, monkeypatch, tmp_path, sample_mask
):
    """'Use prediction as annotation' from a lazy (multiscale) prediction writes block
    by block into the on-disk annotation; Undo restores it; Evaluate on lazy layers
    gives the whole-image figures."""
    import dask.array as da
    import zarr

    from napari_unet import _layers as L
    from napari_unet.core import evaluate, mask_to_annotation

    monkeypatch.setenv("NAPARI_UNET_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setattr("napari_unet.core.training.huge_annotations.BLOCK", 200)  # several blocks
    truth = np.tile(sample_mask, (2, 2)).astype(np.uint32)
    truth[512:] += np.where(truth[512:] > 0, 1000, 0).astype(np.uint32)
    pred = np.roll(truth, 2, axis=0)
    lazy_pred = da.from_array(pred, chunks=256)
    image = da.from_array(np.where(truth > 0, 900, 100).astype(np.uint16), chunks=256)

    viewer = make_napari_viewer()
    viewer.add_image(image, name="big")
    viewer.add_labels([lazy_pred, lazy_pred[::2, ::2]], name="big labels", multiscale=True)
    viewer.add_labels(da.from_array(truth, chunks=300), name="big truth")
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    _, evaluate_widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Evaluate")
    guards = [Guard(monkeypatch, lazy_pred)]

    annotate._image.value = "big"
    layer = annotate._on_create()
    layer.paint((5, 5), 1)  # something painted first: 'fill' keeps it
    before = np.asarray(layer.data[:])
    worker = annotate._on_use_prediction("fill")
    assert worker is not None
    qtbot.waitUntil(lambda: not annotate.copying, timeout=60_000)
    assert isinstance(layer.data, zarr.Array)
    expected = mask_to_annotation(pred)
    got = np.asarray(layer.data[:])
    np.testing.assert_array_equal(got[20:], expected[20:])
    assert got[5, 5] == 1
    assert annotate.undo_button.isEnabled() and "napari_unet_copied" in layer.metadata
    assert annotate._on_undo() is not None  # block by block, in the background
    qtbot.waitUntil(lambda: not annotate.copying, timeout=60_000)
    np.testing.assert_array_equal(layer.data[:], before)
    assert "napari_unet_copied" not in layer.metadata  # nothing had been copied before

    # by default only the part of a huge image in view is copied (here: set by hand as
    # napari sets it when it draws a zoomed-in view)
    viewer.layers["big"].corner_pixels = np.array([[100, 300], [349, 699]])
    assert L.region_in_view(viewer.layers["big"]) == (100, 350, 300, 700)
    annotate._on_use_prediction("replace")
    qtbot.waitUntil(lambda: not annotate.copying, timeout=60_000)
    got = np.asarray(layer.data[:])
    np.testing.assert_array_equal(got[100:350, 300:700], expected[100:350, 300:700])
    got[100:350, 300:700] = 0
    np.testing.assert_array_equal(got, np.where(before > 0, before, 0))

    evaluate_widget._on_evaluate("big labels", "big truth")
    qtbot.waitUntil(lambda: evaluate_widget.scores is not None, timeout=60_000)
    assert evaluate_widget.scores == evaluate(pred, truth)
    assert not any(g.hits for g in guards)
