"""Segment on a huge (dask / zarr / multiscale) layer in a real viewer: the block-by-
block path, lazy result layers, Stop, and the working folders they live in."""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import Guard

pytestmark = pytest.mark.gui

PLUGIN = "napari-unet"


@pytest.fixture(scope="module")
def nuclei_net(sample_image, sample_mask):
    """A tiny network trained a few steps on the real sample (non-trivial labels)."""
    from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig

    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0)
    net.train(
        [TrainingPair(sample_image, mask=sample_mask)],
        TrainConfig(epochs=8, steps_per_epoch=10, patch_size=64, batch_size=8, seed=0),
    )
    return net


@pytest.fixture
def lazy_setup(monkeypatch, tmp_path):
    """Small blocks and a low 'large' threshold, so a 1024² image goes block by block;
    working folders under ``tmp_path``."""
    from napari_unet._widgets import _workers

    monkeypatch.setattr("napari_unet.core.memory.LARGE_PIXELS", 500_000)
    monkeypatch.setattr(_workers, "LARGE_BLOCK", 256)
    monkeypatch.setattr("napari_unet.core.prediction.blockwise.PYRAMID_MIN", 128)
    work = tmp_path / "work"
    monkeypatch.setenv("NAPARI_UNET_WORK_DIR", str(work))
    return work


def folders(work):
    return sorted(p for p in work.iterdir()) if work.exists() else []


def test_segment_a_dask_layer_block_by_block(
    make_napari_viewer, qtbot, monkeypatch, tmp_path, lazy_setup, nuclei_net, sample_image
):
    import dask.array as da

    work = lazy_setup
    big = np.tile(sample_image, (2, 2))  # 1024², 4 x 4 blocks of 256
    image = da.from_array(big, chunks=(128, 128))
    viewer = make_napari_viewer()
    viewer.add_image(image, name="big")
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    segment.state.set_model(nuclei_net, "tiny nuclei")
    guard = Guard(monkeypatch, image)

    assert isinstance(segment.job().image, da.Array)  # read as it is on the GUI thread
    worker = segment._on_segment("big")
    assert worker is not None and segment.stop_button.isEnabled()
    seen = []
    worker.yielded.connect(lambda batch: seen.extend(batch))
    qtbot.waitUntil(lambda: not segment.running, timeout=180_000)
    assert not guard.hits
    assert "block by block, 16 blocks" in segment.status.text(), segment.status.text()
    assert not segment.stop_button.isEnabled()
    assert seen and max(s.total for s in seen if hasattr(s, "total")) == 32

    labels, prob = viewer.layers["big labels"], viewer.layers["big probability"]
    # lazy pyramids read from the working folder, never numpy
    assert labels.multiscale and prob.multiscale
    assert all(isinstance(level, da.Array) for level in labels.data)
    assert [tuple(level.shape) for level in labels.data][:2] == [(1024, 1024), (512, 512)]
    (run1,) = folders(work)
    assert labels.metadata["napari_unet_work"] == str(run1)

    # the same labels as the Python API on the same image in memory
    ref = nuclei_net.predict_dask(big, tmp_path / "ref", block_size=256)
    got = np.asarray(labels.data[0])
    assert got.max() > 20
    np.testing.assert_array_equal(got, np.asarray(ref.labels[0]))
    np.testing.assert_allclose(np.asarray(prob.data[0]), np.asarray(ref.probability[0]))

    # again: updated in place under the same names; the first run's files are gone
    segment._on_segment("big")
    qtbot.waitUntil(lambda: not segment.running, timeout=180_000)
    names = [layer.name for layer in viewer.layers]
    assert names.count("big labels") == 1 and names.count("big probability") == 1
    (run2,) = folders(work)
    assert run2 != run1 and not run1.exists()

    # Stop: after the first block; nothing changes, nothing is left behind
    shown = viewer.layers["big labels"].data
    segment._on_segment("big")
    segment._on_stop()
    qtbot.waitUntil(lambda: not segment.running, timeout=180_000)
    assert "stopped" in segment.status.text()
    assert viewer.layers["big labels"].data is shown
    assert folders(work) == [run2]
    assert segment.run_button.isEnabled()

    # removing the result layers removes their working folder
    viewer.layers.remove("big labels")
    assert run2.exists()  # the probability still shows it
    viewer.layers.remove("big probability")
    assert not run2.exists()
    assert not guard.hits


def test_multiscale_layer_uses_full_resolution_and_in_memory_replaces_it(
    make_napari_viewer, qtbot, lazy_setup, nuclei_net, sample_image, tmp_path
):
    """A multiscale (zarr) layer goes block by block from its level 0; a later run on a
    small image of the same name turns the lazy layers back into plain ones."""
    import dask.array as da
    import zarr

    work = lazy_setup
    z = zarr.open_array(
        str(tmp_path / "in.zarr"), mode="w", shape=(512, 512), chunks=(128, 128), dtype="uint8"
    )
    z[:] = sample_image
    pyramid = [da.from_zarr(z), da.from_zarr(z)[::2, ::2]]
    viewer = make_napari_viewer()
    viewer.add_image(pyramid, name="slide", multiscale=True, contrast_limits=(0, 255))
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    segment.state.set_model(nuclei_net, "tiny nuclei")
    segment._on_segment("slide")
    qtbot.waitUntil(lambda: not segment.running, timeout=180_000)
    labels = viewer.layers["slide labels"]
    assert "block by block" in segment.status.text()
    assert isinstance(labels.data[0], da.Array) and labels.data[0].shape == (512, 512)
    (run,) = folders(work)
    labels.contour = 1  # a display choice of the person

    viewer.layers.remove("slide")
    viewer.add_image(sample_image, name="slide")  # in memory, under the threshold
    segment._on_segment("slide")
    qtbot.waitUntil(lambda: not segment.running, timeout=180_000)
    labels = viewer.layers["slide labels"]
    assert isinstance(labels.data, np.ndarray) and not labels.multiscale
    assert labels.contour == 1
    assert [layer.name for layer in viewer.layers].count("slide labels") == 1
    assert not run.exists()


def test_cli_zarr_outputs_open_in_napari(make_napari_viewer, tmp_path, monkeypatch, nuclei_net):
    """One drag and drop: our reader for ``<stem>_labels.zarr`` / ``_probability.zarr``,
    and napari's own reader gives a lazy pyramid too."""
    import dask.array as da
    import tifffile

    from napari_unet import cli

    model = tmp_path / "tiny.keras"
    nuclei_net.save(model)
    from helpers import make_blobs

    img, _ = make_blobs(640, 60, seed=3)
    tifffile.imwrite(tmp_path / "big.tif", img)
    monkeypatch.setattr("napari_unet.core.jobs.file_jobs.LARGE_BLOCK", 256)
    monkeypatch.setattr("napari_unet.core.prediction.blockwise.PYRAMID_MIN", 128)
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "big.tif"), "--model", str(model), "--out", str(out)]
    assert cli.main([*args, "--format", "zarr"]) == 0
    viewer = make_napari_viewer()
    (lab,) = viewer.open(str(out / "big_labels.zarr"), plugin=PLUGIN)
    (prob,) = viewer.open(str(out / "big_probability.zarr"), plugin=PLUGIN)
    assert lab.name == "big labels" and lab.multiscale and isinstance(lab.data[0], da.Array)
    assert prob.name == "big probability" and prob.colormap.name == "magma"
    (plain,) = viewer.open(str(out / "big_labels.zarr"), plugin="napari")
    assert plain.multiscale and isinstance(plain.data[0], da.Array)
