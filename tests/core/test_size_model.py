"""The width the encoder reads (``size_model``), where the size estimate uses it, and what a
result says then."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import make_blobs

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig
from napari_unet.core.prediction.object_size import (
    HINT_AGREE,
    HINT_DOUBT,
    HINT_SURER,
    WHOLE,
    clip_scale,
    estimate_scale,
    rescale_image,
)
from napari_unet.core.prediction.predictor import Predictor
from napari_unet.core.prediction.size_model import (
    FEATURE_LEVELS,
    FEATURE_SCALES,
    SizeRegression,
    encoder_features,
    fit_size_regression,
)

TINY = UNetConfig(depth=2, base_filters=4)


def test_the_regression_learns_a_log_linear_width_and_survives_its_file_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * [1, 10, 0.1, 1, 5, 1] + [0, 3, 0, 1, 0, -2]
    w = np.array([0.3, -0.02, 2.0, 0.0, 0.05, 0.1])
    widths = np.exp(2.5 + (x - x.mean(0)) @ w)
    reg = fit_size_regression(x, widths, ridge=1e-6)
    got = np.array([reg.diameter(f) for f in x])
    np.testing.assert_allclose(got, widths, rtol=1e-3)
    back = SizeRegression.from_dict(reg.to_dict())
    assert back is not None
    np.testing.assert_allclose([back.diameter(f) for f in x[:5]], got[:5], rtol=1e-4)
    # features of another length (another architecture) read nothing
    assert reg.diameter(np.zeros(5)) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("weights"),
        lambda d: d.update(levels=["bottleneck"]),
        lambda d: d.update(scales=[0.5, 1.0]),
        lambda d: d.update(std=[0.0] * len(d["std"])),
        lambda d: d.update(mean=[float("nan")] * len(d["mean"])),
        lambda d: d.update(weights=d["weights"][:-1]),
        lambda d: d.update(bias="wide"),
    ],
)
def test_a_damaged_or_foreign_regression_is_not_read(damage):
    reg = fit_size_regression(np.random.default_rng(1).normal(size=(30, 4)), np.arange(1, 31))
    d = reg.to_dict()
    damage(d)
    assert SizeRegression.from_dict(d) is None
    assert SizeRegression.from_dict(None) is None


def test_encoder_features_summarise_each_level_at_each_scale_of_any_image():
    net = UNet.new(TINY, seed=0)
    img, _ = make_blobs(200, 10, seed=3)
    predictor = Predictor(net)
    plane = img[..., None].astype(np.float32)
    f = encoder_features(net, plane, predictor.intensity(plane))
    # the bottleneck (16 channels) and the deepest level of the contracting path (8)
    per_scale = 2 * (4 * 2**2 + 4 * 2**1)
    assert f.shape == (len(FEATURE_SCALES) * per_scale,) and np.isfinite(f).all()
    assert len(FEATURE_LEVELS) == 2
    again = encoder_features(net, plane, predictor.intensity(plane))
    np.testing.assert_array_equal(f, again)
    # a small odd-sized image is mirrored up to what the network takes
    tiny = plane[:37, :23]
    g = encoder_features(net, tiny, predictor.intensity(tiny))
    assert g.shape == f.shape and np.isfinite(g).all()


def _unsure_scorer(mask):
    """Every look sees ``mask``'s objects, with interior probability 0.6 (unsure)."""

    def scores_at(factor, crop):
        r = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
        fg = (r > 0.5).astype(np.float32)
        return np.stack([1 - fg, 0.6 * fg, 0.4 * fg], -1)

    return scores_at


def test_the_encoders_width_sets_the_scale_only_where_no_look_is_sure_and_they_disagree():
    _, mask = make_blobs(256, 12, seed=2, radius=(14, 16))  # ~30 px wide objects
    asked = []

    def hint_of(width):
        def hint():
            asked.append(width)
            return width

        return hint

    alone, _ = estimate_scale(_unsure_scorer(mask), mask.shape, 15.0)
    assert alone == pytest.approx(0.5, rel=0.1)  # the look's: ~30 px objects to 15 px
    # the encoder reads objects 4x wider than the look: it sets the scale, and the size
    # was read from the look of the image (the network is sure of no look)
    found = {}
    factor, d = estimate_scale(
        _unsure_scorer(mask), mask.shape, 15.0, found=found, hint=hint_of(120.0)
    )
    assert asked == [120.0]
    assert factor == pytest.approx(clip_scale(15.0 / 120.0)) and factor < alone / 2
    assert d == pytest.approx(15.0 / factor) and found == {"size": "read"}
    # within HINT_AGREE of the look, and the network no surer at the encoder's scale:
    # the look's scale stands
    hint = hint_of(30.0 * HINT_AGREE / 1.2)
    assert estimate_scale(_unsure_scorer(mask), mask.shape, 15.0, hint=hint)[0] == alone


def _scorer_sure_by_scale(mask, share_at):
    """Every look sees ``mask``'s objects; a share ``share_at(factor)`` of their pixels
    has interior probability 0.95 (sure), the rest 0.7."""

    def scores_at(factor, crop):
        r = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
        fg = (r > 0.5).astype(np.float32)
        sure = (np.arange(fg.size) % 200 < 200 * share_at(factor)).reshape(fg.shape)
        interior = fg * np.where(sure, 0.95, 0.7)
        return np.stack([1 - fg, interior, fg - interior], -1)

    return scores_at


def test_a_sure_look_gives_way_to_the_encoders_scale_only_where_the_network_is_surer_there():
    _, mask = make_blobs(256, 12, seed=2, radius=(14, 16))  # ~30 px wide objects
    hinted = clip_scale(15.0 / 60.0)  # the encoder reads 60 px: 2x the look's width
    assert abs(np.log(hinted / 0.5)) > np.log(HINT_DOUBT)
    passes = []

    def run(share_at, width=60.0):
        scorer = _scorer_sure_by_scale(mask, share_at)

        def counted(factor, crop):
            passes.append((factor, crop == WHOLE))
            return scorer(factor, crop)

        found = {}
        factor, _ = estimate_scale(counted, mask.shape, 15.0, found=found, hint=lambda: width)
        return factor, found

    # the network as sure at both scales: the look's scale stands, after a look at the
    # centre crop at the encoder's scale, with no whole pass there
    factor, found = run(lambda f: 0.7)
    assert factor == pytest.approx(0.5, rel=0.1) and found == {"size": "measured"}
    assert passes[-1] == (hinted, False) and (hinted, True) not in passes
    # surer at the encoder's scale, by less than HINT_SURER: the look's scale stands
    assert run(lambda f: 0.7 + 0.5 * HINT_SURER * (f < 0.4))[0] == pytest.approx(0.5, rel=0.1)
    # surer there by more, but not sure of its objects there (SURE): the look's scale
    # stands (smooth noise is not brought to a scale where it reads as many objects)
    assert run(lambda f: 0.585 if f < 0.4 else 0.51)[0] == pytest.approx(0.5, rel=0.1)
    # by more, and sure there, on the crop and on the whole image: the encoder's scale,
    # measured (its whole pass stays for the prediction)
    passes.clear()
    factor, found = run(lambda f: 0.9 if f < 0.4 else 0.7)
    assert factor == pytest.approx(hinted) and found == {"size": "measured"}
    assert passes[-1] == (hinted, True)
    # surer at the encoder's scale on the crop only, not on the whole image: the look's
    # scale stands
    crop_only = _scorer_sure_by_scale(mask, lambda f: 0.9 if f < 0.4 else 0.7)
    plain = _scorer_sure_by_scale(mask, lambda f: 0.7)

    def mixed(factor, crop):
        return (plain if crop == WHOLE else crop_only)(factor, crop)

    mixed_factor = estimate_scale(mixed, mask.shape, 15.0, hint=lambda: 60.0)[0]
    assert mixed_factor == pytest.approx(0.5, rel=0.1)
    # where the regression agrees with the look within HINT_DOUBT, the look's scale
    # stands and the image is not seen at the regression's
    passes.clear()
    width = 30.0 * HINT_DOUBT / 1.1
    factor, found = run(lambda f: 0.9 if f < 0.4 else 0.7, width)
    assert factor == pytest.approx(0.5, rel=0.1) and found == {"size": "measured"}
    assert not [f for f, whole in passes if whole and f < 0.4]


def test_a_size_read_from_the_image_is_stated_as_a_caveat_with_what_to_do():
    from napari_unet.core.prediction.doubt import Signs, judge, size_found, width_words

    signs = Signs(
        uncertain=0.1,
        confidence=0.95,
        objects=12,
        coverage=0.3,
        crowding=0.4,
        diameter=52.0,
        size="read",
        background=0.05,
        contrast=0.3,
        median=0.1,
    )
    doubt = judge(signs)
    assert doubt.reason == "read" and "check" in doubt.headline
    line = doubt.say(" (--diameter PX)")
    assert "about 52 px" in line and "look of the whole image" in line
    assert "(--diameter PX)" in line and "Train" in line
    assert width_words(52.0, doubt) == "size read from the image, objects ~52 px"
    # a plane measured beats one read; one read beats one unclear
    assert size_found(["read", "measured"], False, False) == "measured"
    assert size_found(["unclear", "read"], False, False) == "read"


def test_a_predictor_reads_the_regression_of_its_model_and_training_drops_it():
    img, mask = make_blobs(128, 14, seed=7)
    net = UNet.new(TINY, seed=0)
    predictor = Predictor(net)
    plane = img[..., None].astype(np.float32)
    scorer = predictor.scorer(plane)
    assert predictor.size_hint(scorer) is None  # no regression: no hint
    n = encoder_features(net, plane, predictor.intensity(plane)).size
    reg = SizeRegression(np.zeros(n), np.ones(n), np.zeros(n), float(np.log(42.0)))
    net.metadata.size_regression = reg.to_dict()
    hint = Predictor(net).size_hint(scorer)
    assert hint is not None and hint() == pytest.approx(42.0)
    net.metadata.taught_scale = 0.5  # a fine-tuned model keeps to its user's scale
    assert Predictor(net).size_hint(scorer) is None
    net.metadata.taught_scale = None
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, patch_size=64, batch_size=2, seed=1)
    stopped = threading.Event()
    stopped.set()  # Stop pressed before the first step: nothing moved, nothing dropped
    result = net.train([TrainingPair(img, mask=mask)], cfg, stop_event=stopped)
    assert result.steps_run == 0 and net.metadata.size_regression == reg.to_dict()
    seen = []  # the previews during training predict without it
    net.train(
        [TrainingPair(img, mask=mask)],
        cfg,
        preview_image=img,
        preview_interval=0.0,
        progress=lambda r: seen.append(net.metadata.size_regression),
    )
    assert seen and all(s is None for s in seen)
    assert net.metadata.size_regression is None  # the features it read have moved


def test_the_bundled_generalist_carries_a_regression_that_fits_its_encoder():
    net = UNet.bundled("generalist")
    reg = SizeRegression.from_dict(net.metadata.size_regression)
    assert reg is not None
    img, _ = make_blobs(256, 20, seed=5, radius=(9, 11))
    plane = img[..., None].astype(np.float32)
    p = Predictor(net)
    width = reg.diameter(encoder_features(net, plane, p.intensity(plane)))
    assert width is not None and 2.0 < width < 400.0  # a width, not a failure
