"""The Predictor: one object with everything a prediction needs, the same steps for an
image in memory and for the blocks of the dask graph."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs, seeded

from napari_unet.core import UNet, UNetConfig, UserInputError, evaluate
from napari_unet.core.prediction.predictor import Prediction, Predictor

TINY = UNetConfig(depth=1, base_filters=4)


def test_a_predictor_holds_the_settings_of_one_prediction():
    net = UNet.new(TINY, seed=seeded(0))
    p = net.predictor(threshold=0.3, min_size=4, tile_size=128, context=8, batch_size=3)
    assert isinstance(p, Predictor) and p.net is net
    assert (p.params.threshold, p.params.min_size) == (0.3, 4)
    assert p.params.seed_mode == net.postprocessing.seed_mode  # the rest: the model's own
    # what a block task carries rebuilds the same predictor (numbers and strings only)
    again = Predictor(net, **p.options())
    assert again.options() == p.options()
    assert again.plan(300, 200) == p.plan(300, 200) != Predictor(net).plan(300, 200)
    with pytest.raises(UserInputError, match="threshold must be between 0 and 1"):
        Predictor(net, threshold=1.5)
    # the object scale: the image as it is, measured, or fixed by a diameter
    assert Predictor(net, diameter=None).fixed_scale() == (1.0, None)
    assert Predictor(net, diameter=0).fixed_scale() == (1.0, None)
    assert Predictor(net).fixed_scale() == (1.0, None)  # no size recorded: nothing to measure
    with pytest.raises(UserInputError, match="does not record the object size"):
        Predictor(net, diameter=12).fixed_scale()
    net.metadata.object_diameter = 16.0
    assert Predictor(net).fixed_scale() is None  # "auto": to be measured
    assert Predictor(net, diameter=8).fixed_scale((256, 256)) == (2.0, 8.0)
    assert Predictor(net, diameter=16.5).fixed_scale() == (1.0, None)  # close enough: as it is
    # a diameter given is a mask's width: an enlarged image is brought to the width the
    # network reads (16 px), one shrunk 2x or more to its masks' width (12.8 px), and one
    # shrunk less to a width between the two
    net.metadata.mask_diameter = 12.8
    assert Predictor(net, diameter=8).fixed_scale((256, 256)) == (2.0, 8.0)
    assert Predictor(net, diameter=64).fixed_scale((256, 256)) == (pytest.approx(0.2), 64.0)
    between = Predictor(net, diameter=24).fixed_scale((256, 256))[0] * 24
    assert 12.8 < between < 16 and between == pytest.approx(16 * (2 / 3) ** np.log2(1.25))
    net.metadata.mask_diameter = None
    # one normalisation: the model's percentiles, per channel
    img = np.linspace(0, 1000, 64 * 64, dtype=np.float32).reshape(64, 64, 1)
    lo, hi = p.intensity(img)
    assert lo[0] == pytest.approx(10, abs=1) and hi[0] == pytest.approx(998, abs=1)


def test_the_in_memory_method_is_what_unet_predict_returns():
    img, _ = make_blobs(96, 6, seed=seeded(3))
    net = UNet.new(TINY, seed=seeded(0))
    direct = Predictor(net, diameter=None, threshold=0.4).predict(img, return_scores=True)
    via_net = net.predict(img, diameter=None, threshold=0.4, return_scores=True)
    assert isinstance(direct, Prediction)
    np.testing.assert_array_equal(direct.scores, via_net.scores)
    np.testing.assert_array_equal(direct.labels, via_net.labels)
    # post-processing is the predictor's one step
    np.testing.assert_array_equal(
        direct.labels, Predictor(net, diameter=None, threshold=0.4).instances(direct.scores)
    )


def test_in_memory_and_block_wise_prediction_take_the_same_steps(sample_image, tmp_path):
    """The bundled model on the sample enlarged 2×: both paths measure the same object
    size, see the image at the same scale (its nuclei brought to the model's size) and
    find the same nuclei, though the blocks are rescaled one by one."""
    import dask.array as da
    from skimage.transform import resize

    net = UNet.default()
    img = resize(sample_image, (1024, 1024), order=1, preserve_range=True).astype(np.float32)
    whole = net.predict(img)
    # blocks of 256 px at the model's scale: 2 × 2 blocks of 512 px in the image
    lazy = net.predict_dask(da.from_array(img, chunks=256), out=tmp_path, block_size=256)
    assert 0.3 < whole.scale < 0.8  # the nuclei are seen smaller: the scale is not 1
    assert lazy.scale == pytest.approx(whole.scale, rel=0.02)
    assert lazy.diameter == pytest.approx(whole.diameter, rel=0.02)
    labels = np.asarray(lazy.labels[0])
    prob = np.asarray(lazy.probability[0])
    assert (labels.shape, prob.shape) == (img.shape, img.shape)
    assert len(np.unique(labels)) > 3  # several blocks, each with nuclei
    n_whole = int(whole.labels.max())
    assert n_whole > 50
    assert abs(lazy.n_instances - n_whole) <= 0.05 * n_whole
    agree = evaluate(labels, whole.labels)
    assert agree["f1"] > 0.95 and agree["pixel_dice"] > 0.97, agree
    assert float(np.abs(prob - whole.probability).mean()) < 0.01
