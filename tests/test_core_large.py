"""Block-wise prediction of large images: consistent instances, lazy in and out."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_blobs

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, evaluate
from napari_unet.core.io import RowMappedArray
from napari_unet.core.large import predict_large


@pytest.fixture(scope="module")
def blob_net():
    img, mask = make_blobs(128, 14, seed=11)
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0)
    net.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(epochs=20, steps_per_epoch=10, patch_size=64, batch_size=8, seed=0),
    )
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


def test_blockwise_labels_match_a_whole_image_pass(blob_net):
    img, truth = _mosaic()
    whole = blob_net.predict(img, context=32, diameter=None)  # block-wise: own scale
    labels = np.zeros(img.shape, np.uint32)
    prob = np.zeros(img.shape, np.float32)
    res = predict_large(blob_net, img, labels, prob, block_size=96, halo=32, context=32)
    assert res.blocks == 16
    # probabilities are those of a single pass
    np.testing.assert_allclose(prob, whole.probability, atol=1e-5)
    # the same nuclei come out, none cut at block borders (block edges every 96 px)
    agree = evaluate(labels, whole.labels)
    assert agree["f1"] > 0.98 and agree["pixel_dice"] > 0.99, agree
    assert evaluate(labels, truth)["f1"] >= evaluate(whole.labels, truth)["f1"] - 0.02
    # no id reused: every id is one connected region
    from scipy import ndimage as ndi

    ids = np.unique(labels)[1:]
    assert len(ids) == res.n_instances == ids.max()
    for i in ids:
        _, n = ndi.label(labels == i)
        assert n == 1


def test_row_mapped_files_as_input_and_output(blob_net, tmp_path):
    import tifffile

    img, _ = _mosaic(seed=50, tiles=2)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, img)
    lazy = tifffile.memmap(src, mode="r")
    lab_path, prob_path = tmp_path / "labels.tif", tmp_path / "prob.tif"
    lab_mm = tifffile.memmap(lab_path, shape=img.shape, dtype=np.uint32)
    prob_mm = tifffile.memmap(prob_path, shape=img.shape, dtype=np.float32)
    lab_off, prob_off = lab_mm.offset, prob_mm.offset
    del lab_mm, prob_mm
    labels = RowMappedArray(lab_path, lab_off, img.shape, np.uint32)
    prob = RowMappedArray(prob_path, prob_off, img.shape, np.float32)
    predict_large(blob_net, lazy, labels, prob, block_size=64, halo=32, context=32)
    on_disk = tifffile.imread(lab_path)
    whole = blob_net.predict(img, context=32, diameter=None)  # block-wise: own scale
    assert evaluate(on_disk, whole.labels)["f1"] > 0.98
    np.testing.assert_allclose(tifffile.imread(prob_path), whole.probability, atol=1e-5)
