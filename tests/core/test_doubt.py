"""The model says when it does not know (issue 22, item 5): the figures of a prediction
(:mod:`napari_unet.core.prediction.doubt`), their judgement, and the bundled model on
its own sample against images it cannot handle, in memory and block by block."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs

from napari_unet.core import UNet
from napari_unet.core.prediction.doubt import Signs, Tally, judge, size_found, width_words
from napari_unet.core.prediction.object_size import estimate_scale, rescale_image


# ---------------------------------------------------------------------- figures
def _figures(p_object=0.95, n=12, size=128, seed=0):
    """A probability map that says blobs with ``p_object``, their labels and an image
    of bright blobs on a dark background (0–1)."""
    image, mask = make_blobs(size, n, seed=seed)
    prob = np.where(mask > 0, p_object, 0.02).astype(np.float32)
    return prob, mask, (mask > 0).astype(np.float32)[..., None] * 0.8 + 0.1


def test_tallies_add_up_over_planes_and_blocks_and_travel_as_arrays():
    prob, mask, image = _figures()
    whole = Tally.of(prob, mask, image)
    top = Tally.of(prob[:64], mask[:64], image[:64])
    bottom = Tally.of(prob[64:], mask[64:], image[64:])
    both = top + bottom
    np.testing.assert_array_equal(both.probability, whole.probability)
    np.testing.assert_array_equal(both.background, whole.background)
    assert both.pixels == whole.pixels == 128 * 128
    assert both.object_pixels == whole.object_pixels == int((mask > 0).sum())
    again = Tally.from_array(whole.to_array())
    assert again.objects == whole.objects == len(np.unique(mask)) - 1
    assert again.confidence == pytest.approx(whole.confidence)
    np.testing.assert_array_equal(again.background, whole.background)
    # the image normalised by (low, high) as the network sees it
    raw = Tally.of(prob, mask, image * 1000 + 50, (np.array([50.0]), np.array([1050.0])))
    np.testing.assert_array_equal(raw.background, whole.background)


def test_a_sure_result_is_not_doubted_and_each_weakness_says_why():
    prob, mask, image = _figures()
    d = 16.0  # make_blobs' radii are 5-10 px
    sure = Signs.of(Tally.of(prob, mask, image), "measured", d)
    assert sure.uncertain < 0.1 and sure.confidence > 0.9 and sure.contrast > 0.5
    assert judge(sure) is None
    # probabilities in the uncertain band
    unsure = judge(Signs.of(Tally.of(np.where(mask > 0, 0.55, 0.1), mask, image), "measured", d))
    assert unsure.reason == "unsure" and "Train" in unsure.message
    # the size estimate found nothing it could trust: give the diameter
    for how, width in (("unclear", d), ("none", d), ("edge", None)):
        size = judge(Signs.of(Tally.of(prob, mask, image), how, width))
        assert size.reason == "size" and "diameter" in size.say(" (--diameter PX)")
        assert "(--diameter PX)" in size.say(" (--diameter PX)")
        assert "{where}" not in str(size)
        # the width the result states is not given as found
        assert width_words(15.4, size) == "size unclear, objects read as ~15 px"
    assert width_words(15.4, None) == width_words(15.4, unsure) == "objects ~15 px wide"
    # found, but beyond the scales the model can be brought to (a diameter would be
    # refused): say the width, and Train
    edge = judge(Signs.of(Tally.of(prob, mask, image), "edge", 3.0))
    assert edge.reason == "edge" and "about 3 px wide" in edge.message and "Train" in edge.message
    # dark objects on a light background: a model of bright objects takes the light
    # background for objects; one that learned dark objects finds them, undoubted
    light = 1.0 - image
    background = (mask == 0).astype(np.int32)
    took = Tally.of(np.where(mask == 0, 0.95, 0.02), background, light)
    dark = judge(Signs.of(took, "measured", d))
    assert dark.reason == "inverted" and "Train" in dark.message
    assert judge(Signs.of(Tally.of(prob, mask, light), "measured", d)) is None
    # hundreds of specks where a few objects would fit
    rng = np.random.default_rng(0)
    specks = (rng.random((128, 128)) < 0.3).astype(np.int32)
    from scipy import ndimage as ndi

    specks = ndi.label(specks)[0]
    crowded = judge(Signs.of(Tally.of(np.where(specks > 0, 0.9, 0.05), specks, image), "given", d))
    assert crowded.reason == "crowded" and f"{specks.max()} objects" in crowded.message
    # no object at all: the count says it, nothing to doubt
    nothing = Signs.of(Tally.of(np.zeros((64, 64)), np.zeros((64, 64), int)), "none", d)
    assert judge(nothing) is None
    for doubt in (unsure, size, dark, crowded):
        assert "\n" not in doubt.message and len(doubt.headline) < 40


def test_large_cells_cut_by_the_border_take_only_their_part_of_the_image():
    """An image 256 px wide holding parts of five cells ~166 px wide (one or two whole
    cells' room) is not crowded: a cell cut by the image's border takes the room of its
    pixels inside. The same five found inside the image (a block's sides are not the
    image's border) would be too many."""
    labels = np.tile(np.repeat(np.arange(1, 6), 52)[:256], (256, 1)).astype(np.int32)
    labels[:, ::52] = 0  # a background line between the cells
    prob = np.where(labels > 0, 0.95, 0.02).astype(np.float32)
    disc = np.pi / 4 * 166.0**2
    cut = Tally.of(prob, labels)
    assert cut.edge_objects == 5 and cut.edge_pixels == int((labels > 0).sum())
    signs = Signs.of(Tally.from_array(cut.to_array()), "measured", 166.0)
    assert signs.crowding == pytest.approx((labels > 0).mean())
    assert judge(signs) is None
    inside = Signs.of(Tally.of(prob, labels, edges=(False,) * 4), "measured", 166.0)
    assert inside.crowding == pytest.approx(5 * disc / 256**2)
    assert judge(inside).reason == "crowded"
    # blocks add up: the top block's lower side is not the image's border
    top = Tally.of(prob[:128], labels[:128], edges=(True, False, True, True))
    bottom = Tally.of(prob[128:], labels[128:], edges=(False, True, True, True))
    both = top + bottom
    assert both.edge_pixels == cut.edge_pixels


def test_the_size_estimate_says_how_sure_it_is():
    _, mask = make_blobs(256, 12, seed=2, radius=(14, 16))  # ~30 px wide objects

    def scores_of(m):
        def scores_at(factor, crop):
            r = rescale_image((m[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
            fg = (r > 0.5).astype(np.float32)
            return np.stack([1 - fg, fg, 0 * fg], -1)

        return scores_at

    found = {}
    estimate_scale(scores_of(mask), mask.shape, 15.0, found=found)
    assert found == {"size": "measured"}
    estimate_scale(scores_of(np.zeros_like(mask)), mask.shape, 15.0, found=found)
    assert found == {"size": "none"}
    # objects 100x wider than the model's: beyond the scales it can be brought to
    estimate_scale(scores_of(mask), mask.shape, 0.3, found=found)
    assert found["size"] in ("edge", "unclear")
    # a little beyond (scale 4.5 called for, 4 the largest): seen a little small, which a
    # model still segments; 2x beyond is the edge
    _, small = make_blobs(256, 60, seed=2, radius=(3.5, 4.5))  # ~8 px wide objects
    factor, _ = estimate_scale(scores_of(small), small.shape, 4.5 * 8, found=found)
    assert factor == 4.0 and found == {"size": "measured"}
    estimate_scale(scores_of(small), small.shape, 8 * 8, found=found)
    assert found["size"] in ("edge", "unclear")
    assert size_found(["none", "measured", "none"], False, False) == "measured"
    assert size_found([], True, True) == "given"


def test_a_size_read_from_a_look_the_network_is_unsure_of_is_unclear():
    """Issue 22 item 5: the network's share of sure interior in the look the estimate
    trusts below ``UNSURE_LOOK`` (0.5) makes the size unclear, whatever width it reads,
    and the result says so ("size": give the diameter, or correct and Train)."""
    from napari_unet.core.prediction.object_size import SURE_PROBABILITY, UNSURE_LOOK

    _, mask = make_blobs(256, 12, seed=2, radius=(14, 16))  # ~30 px wide objects

    def scores_of(p):  # every object pixel of every look has interior probability p
        def scores_at(factor, crop):
            r = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
            fg = (r > 0.5).astype(np.float32)
            return np.stack([1 - fg, p * fg, (1 - p) * fg], -1)

        return scores_at

    assert UNSURE_LOOK == 0.5
    sure, unsure = {}, {}
    f_sure, d_sure = estimate_scale(scores_of(0.95), mask.shape, 15.0, found=sure)
    f_unsure, d_unsure = estimate_scale(scores_of(0.85), mask.shape, 15.0, found=unsure)
    assert 0.85 < SURE_PROBABILITY < 0.95
    assert sure == {"size": "measured"} and unsure == {"size": "unclear"}
    assert (f_sure, d_sure) == (f_unsure, d_unsure)  # the same scale: only the verdict moves
    prob, labels, image = _figures()  # a result the network is sure of...
    size = size_found([unsure["size"]], False, False)
    doubt = judge(Signs.of(Tally.of(prob, labels, image), size, d_unsure))
    assert doubt.reason == "size" and "diameter" in str(doubt)  # ...its size is not


# ---------------------------------------------------------------------- the bundled model
@pytest.fixture(scope="module")
def bundled():
    return UNet.bundled("nuclei")


@pytest.fixture(scope="module")
def crop(sample_image):
    return sample_image[:256, :256].astype(np.float32)


def test_the_bundled_model_is_sure_of_its_sample_and_doubts_inverted_and_noise(bundled, crop):
    sure = bundled.predict(crop)
    assert sure.doubt is None, sure.signs
    assert sure.signs.objects > 20 and sure.signs.size == "measured"
    inverted = bundled.predict(crop.max() - crop)
    assert inverted.doubt is not None, inverted.signs
    assert inverted.doubt.reason == "inverted"
    noise = np.random.default_rng(0).normal(100, 20, crop.shape).astype(np.float32)
    doubtful = bundled.predict(noise)  # thousands of specks, no size the model knows
    assert doubtful.doubt is not None and doubtful.doubt.reason == "size", doubtful.signs
    assert "diameter" in doubtful.doubt.say() and "Train" in doubtful.doubt.say()


def test_block_by_block_judges_the_image_as_in_memory(bundled, crop, tmp_path):
    from napari_unet.core.prediction.blockwise import predict_dask

    inverted = crop.max() - crop
    lazy = predict_dask(bundled, inverted, tmp_path / "inv", block_size=128, halo=32)
    assert lazy.doubt is not None and lazy.doubt.reason == "inverted", lazy.signs
    sure = predict_dask(bundled, crop, tmp_path / "sure", block_size=128, halo=32)
    assert sure.doubt is None, sure.signs
    memory = bundled.predict(crop).signs
    assert sure.signs.size == memory.size
    assert sure.signs.confidence == pytest.approx(memory.confidence, abs=0.05)
    assert sure.signs.objects == pytest.approx(memory.objects, rel=0.2)


def test_a_network_that_learned_nothing_is_unsure(crop):
    from napari_unet.core import UNetConfig

    net = UNet.new(UNetConfig(depth=2, base_filters=4), seed=0)  # never trained
    pred = net.predict(crop[:128, :128])
    assert pred.signs.size == "as is"  # no object size recorded: nothing to measure
    assert pred.doubt is not None and pred.doubt.reason == "unsure", pred.signs
    assert pred.signs.uncertain > 0.5


def test_a_fine_tuned_model_judges_and_reports_its_users_objects_at_their_width():
    """A model fine-tuned on a packed field (membrane-stained cells ~13 px at its user's
    scale ×1.94) measures its own output as wide merged regions (object_diameter 68 where
    its masks said 25): 250 well separated cells must not read as "far more objects than
    fit", and the width it reports is the cells' own, not 35 px."""
    from napari_unet.core import UNetConfig
    from napari_unet.core.prediction.predictor import Predictor

    yy, xx = np.mgrid[:256, :256]
    labels = ((yy // 16) * 16 + xx // 16 + 1).astype(np.int32)  # 256 cells, 16 px
    labels[(yy % 16 == 0) | (xx % 16 == 0)] = 0  # one-pixel membranes between them
    prob = np.where(labels > 0, 0.95, 0.02).astype(np.float32)
    tally = Tally.of(prob, labels, edges=(False,) * 4)
    net = UNet.new(UNetConfig(depth=2, base_filters=4), seed=0)
    net.metadata.object_diameter, net.metadata.mask_diameter = 68.0, 25.0
    bundled_like = Predictor(net)  # no taught scale: its own measure, as before
    signs, doubt = bundled_like.judge(tally, ["measured"], None, 1.94, 35.0)
    assert doubt is not None and doubt.reason == "crowded"
    assert bundled_like.shown_width(None, 1.94, 35.0) == 35.0
    net.metadata.taught_scale = 1.94
    taught = Predictor(net)
    signs, doubt = taught.judge(tally, ["measured"], None, 1.94, 35.0)
    assert doubt is None, signs
    assert signs.diameter == pytest.approx(25 / 1.94)
    assert taught.shown_width(None, 1.94, 35.0) == pytest.approx(25 / 1.94)
    assert taught.shown_width((2.0, 14.0), 2.0, 14.0) == 14.0  # a diameter given stands
