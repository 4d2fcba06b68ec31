"""Before and after training: the same figures for two networks on the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs, seeded

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig
from napari_unet.core.training.comparison import (
    SAME_WITHIN,
    Scores,
    ValidationSet,
    compare,
    judge,
    score_network,
)

TINY = UNetConfig(depth=2, base_filters=8)


@pytest.mark.learned
def test_training_holds_out_pixels_and_the_trained_model_scores_better_on_them(margin):
    img, mask = make_blobs(128, 14, seed=seeded(7))
    before = UNet.new(TINY, seed=seeded(0))
    after = before.copy()
    result = after.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(
            epochs=10, steps_per_epoch=10, patch_size=64, batch_size=4, val_fraction=0.25,
            seed=seeded(0),
        ),
    )  # fmt: skip
    data = result.held_out
    assert isinstance(data, ValidationSet) and data.held_out
    assert "held out for validation" in data.where()
    # the held-out pixels are a part of the image, at the image's own pixels
    (sel,) = data.selections
    assert sel.shape == mask.shape and 0 < sel.sum() < 0.6 * sel.size
    s_before, s_after = score_network(before, data), score_network(after, data)
    assert s_after.pixels == s_before.pixels == int(sel.sum())
    assert s_after.objects == s_before.objects > 0  # a mask: instance F1 too
    margin("dice gain", s_after.dice - s_before.dice, 0.2, (s_before, s_after))
    margin("f1 gain", s_after.f1 - s_before.f1, 0.2, (s_before, s_after))
    assert compare(s_before, s_after).verdict == "better"
    assert compare(s_after, s_before).worse
    # the same network on the same pixels: the same figures (what "Go back" relies on)
    assert score_network(before, data) == s_before
    # Train's verdict on the run: these scores compared; a new network has no previous
    judged = judge(before, after, data)
    assert (judged.before, judged.after, judged.verdict) == (s_before, s_after, "better")
    assert judge(None, after, data).verdict == "new"


def test_without_held_out_pixels_the_training_annotation_is_scored_and_said_so():
    img, mask = make_blobs(96, 8, seed=3)
    ann = np.zeros(mask.shape, np.uint8)
    ann[:40] = np.where(mask[:40] > 0, 2, 1)  # the top part annotated, 0 elsewhere
    pair = TrainingPair(img[..., None], annotation=ann)
    data = ValidationSet.from_training([pair], None)
    assert not data.held_out and "no part was held out" in data.where()
    assert np.array_equal(data.selections[0], ann > 0)
    # a held-out map at another scale (the model's) is brought to the plane's pixels
    small = np.zeros((48, 48), bool)
    small[:10, :10] = True
    held = ValidationSet.from_training([pair], [small])
    assert held.held_out and held.selections[0].shape == ann.shape
    assert held.selections[0][:20, :20].all() and not held.selections[0][20:].any()
    net = UNet.new(UNetConfig(depth=1, base_filters=4), seed=0)
    s = score_network(net, data)
    assert s.f1 is None and s.objects == 0  # sparse annotation: no instance figure
    assert s.dice is not None and 0.0 <= s.dice <= 1.0 and s.pixels == int((ann > 0).sum())


def test_the_verdict_never_lets_a_drop_pass_and_reads_plainly():
    a = Scores(0.91, None, 1000, 0)
    b = Scores(0.87, None, 1000, 0)
    c = compare(a, b, "on 1,000 pixels")
    assert c.worse and c.summary() == "Before: Dice 0.910 · After: Dice 0.870 — worse"
    assert c.change() == "Dice 0.910 → 0.870"
    assert compare(b, a).verdict == "better"
    assert compare(a, Scores(0.91 + SAME_WITHIN / 2, None, 1000, 0)).verdict == "same"
    assert "about the same" in compare(a, a).summary()
    # a gain in Dice does not outweigh a drop in instance F1
    mixed = compare(Scores(0.80, 0.90, 1000, 20), Scores(0.85, 0.70, 1000, 20))
    assert mixed.worse and "F1 0.700" in mixed.summary()
    assert mixed.change() == "F1 0.900 → 0.700"  # the figure that dropped
    first = compare(None, b)
    assert first.verdict == "new" and not first.worse
    assert first.summary() == "After: Dice 0.870 — no previous model to compare with"
    assert first.change() == "Dice 0.870"


def test_after_a_copied_prediction_the_held_out_corrections_get_a_figure_of_their_own():
    """After "Use prediction as annotation" most labels are the previous model's own
    output (right for it by construction): the painted pixels held out are scored on
    their own too, and with none held out the comparison is refused, not made."""
    img, mask = make_blobs(96, 8, seed=3)
    ann = np.where(mask > 0, 2, 1).astype(np.uint8)
    painted = np.zeros(mask.shape, bool)
    painted[10:20, 10:20] = True  # a correction in the top-left corner
    painted[70:80, 70:80] = True  # and one in the bottom right
    pair = TrainingPair(img[..., None], annotation=ann, painted=painted)
    top = np.zeros(mask.shape, bool)
    top[:48] = True
    data = ValidationSet.from_training([pair], [top])
    assert data.corrections and data.held_out
    assert np.array_equal(data.selections[0], top)  # the whole held-out annotation…
    assert np.array_equal(data.painted[0], painted & top)  # …and the corrections in it
    assert "the 100 pixels you painted there" in data.where()
    # the network is scored on the corrections: the share of them it gets right
    net = UNet.new(UNetConfig(depth=1, base_filters=4), seed=0)
    s = score_network(net, data)
    pred_fg = net.predict(img[..., None], channel_axis=-1).labels > 0
    right = float((pred_fg == (ann >= 2))[painted & top].mean())
    assert s.corrections == pytest.approx(right) and "corrections" in s.figures()
    # an annotation painted from scratch (no painted map): no corrections figure
    plain = ValidationSet.from_training([TrainingPair(img[..., None], annotation=ann)], [top])
    assert not plain.corrections and score_network(net, plain).corrections is None
    # corrections that all went into training: nothing to measure fairly, and why
    bottom = ~top
    bottom[70:80, 70:80] = False
    empty = ValidationSet.from_training([pair], [bottom])
    assert not empty.planes and empty.where() == ""
    assert "none of your corrections was held out" in empty.reason
    after = score_network(net, empty)
    c = compare(Scores(0.9, None, 100, 0), after, empty.reason)
    assert c.verdict == "untested" and not c.worse
    assert c.summary().startswith("No fair comparison with the previous model: none of")
    assert c.change() == "no fair comparison possible"
    # a copy with no correction at all: the same refusal
    nothing = TrainingPair(img[..., None], annotation=ann, painted=np.zeros(mask.shape, bool))
    assert "no correction painted" in ValidationSet.from_training([nothing], None).reason
    # a model that fixed the corrections but broke what was kept is not better
    kept_broken = compare(Scores(0.95, None, 100, 0, 0.0), Scores(0.90, None, 100, 0, 0.8))
    assert kept_broken.worse and kept_broken.change() == "Dice 0.950 → 0.900"
    fixed = compare(Scores(0.95, None, 100, 0, 0.0), Scores(0.95, None, 100, 0, 0.8))
    assert fixed.verdict == "better" and fixed.change() == "corrections 0.000 → 0.800"


def test_the_validation_split_holds_out_some_corrections_and_keeps_most_for_training():
    from napari_unet.core.training.samples import PreparedImage, split_validation
    from napari_unet.core.training.targets import WEIGHT_UNIT

    target = np.zeros((256, 256, 3), np.uint8)
    target[..., 0] = WEIGHT_UNIT  # background everywhere…
    target[::16, ::16, 0] = 0
    target[::16, ::16, 1] = WEIGHT_UNIT  # …and a grid of object pixels
    corrections = np.zeros((256, 256), bool)
    for y, x in ((5, 5), (5, 200), (200, 5), (200, 200), (100, 100), (150, 40)):
        corrections[y : y + 6, x : x + 6] = True  # six corrections in six blocks
    target[corrections] *= 4  # painted: weighted 4×
    prepared = [PreparedImage(np.zeros((256, 256, 1), np.float32), target, "p")]
    for seed in range(5):
        train, val = split_validation(prepared, 0.25, 32, np.random.default_rng(seed))
        held = int((val[0] & corrections).sum())
        assert 0 < held <= corrections.sum() // 2, (seed, held)
        assert int((train[0] & corrections).sum()) == corrections.sum() - held
        share = val[0].sum() / prepared[0].labelled.sum()
        assert 0.1 < share < 0.5, share
    # without painted pixels the split is what it always was (same blocks for a seed)
    plain = [PreparedImage(prepared[0].image, np.minimum(target, WEIGHT_UNIT), "p")]
    a = split_validation(plain, 0.25, 32, np.random.default_rng(1))[1][0]
    b = split_validation(plain, 0.25, 32, np.random.default_rng(1))[1][0]
    assert np.array_equal(a, b) and 0 < a.sum()


class _Fixed:
    """A network that always predicts the same labels: the scoring's arithmetic on a
    segmentation known in advance (the real networks are scored above)."""

    def __init__(self, labels: np.ndarray):
        self.labels = labels

    def predict(self, image, channel_axis=-1):
        from types import SimpleNamespace

        return SimpleNamespace(labels=self.labels)


def _discs(
    n: int, shrink: set[int] = frozenset(), drop: set[int] = frozenset(), extra=False, small=2
):
    """``n`` discs of radius 6 in a row (ids 1…n), with those in ``shrink`` at radius
    ``small``, those in ``drop`` missing, and with ``extra`` a false object between the
    first two."""
    from skimage.draw import disk

    labels = np.zeros((20, 20 * n), np.uint16)
    for i in range(n):
        if i + 1 in drop:
            continue
        labels[disk((10, 20 * i + 10), small if i + 1 in shrink else 6, shape=labels.shape)] = i + 1
    if extra:
        labels[8:12, 19:21] = n + 1
    return labels


def test_each_scored_pixel_counts_for_its_nearest_annotated_object_and_sums_to_the_figures():
    truth = _discs(10)
    pair = TrainingPair(np.zeros((*truth.shape, 1), np.float32), mask=truth)
    data = ValidationSet.from_training([pair], None)
    pred = _discs(10, shrink={3}, drop={5}, extra=True)
    s = score_network(_Fixed(pred), data)
    # one row per true object; every scored pixel is in exactly one of them
    units = np.array(s.units)
    assert units.shape == (10, 8) and s.objects == 10 and s.pixels == truth.size
    t, p = truth > 0, pred > 0
    assert units[:, :3].sum() == (t | p).sum()  # true positives, false ones, missed
    # instance counts: 8 matched, the shrunk and the missing one missed; two false
    # objects: the shrunk one (IoU 0.1) and the one in the gap between the first two
    assert list(units[:, 5]) == [1, 1, 0, 1, 0, 1, 1, 1, 1, 1]
    assert list(units[:, 7]) == [0, 0, 1, 0, 1, 0, 0, 0, 0, 0]
    assert units[:, 6].sum() == 2 and units[:2, 6].sum() == 1 and units[2, 6] == 1
    assert s.f1 == pytest.approx(2 * 8 / (2 * 8 + 2 + 2))
    dice = 2 * (t & p).sum() / (2 * (t & p).sum() + (p & ~t).sum() + (t & ~p).sum())
    assert s.dice == pytest.approx(dice)
    # the shrunk disc's missing ring and the missing disc are their own objects' pixels
    assert units[2, 2] > 0 and units[4, 2] > 0 and units[[0, 1, 3, 5, 6, 7, 8, 9], 2].sum() == 0


def test_a_drop_counts_only_when_clear_across_the_held_out_objects():
    """One object of ten segmented worse moves F1 by 0.1: what one object does, not the
    model (7 of 9 "worse" verdicts of the development runs were such). A model worse on
    every object is worse; with too few objects nothing is clear, and the panel says so."""
    truth = _discs(10)
    pair = TrainingPair(np.zeros((*truth.shape, 1), np.float32), mask=truth)
    data = ValidationSet.from_training([pair], None)
    good = score_network(_Fixed(truth), data)
    one_lost = score_network(_Fixed(_discs(10, drop={4})), data)
    assert one_lost.f1 < good.f1 - 0.05 and one_lost.dice < good.dice - 0.05
    # the raw figures dropped, and handed in whole they would call it worse…
    raw = compare(
        Scores(good.dice, good.f1, good.pixels, 10), Scores(one_lost.dice, one_lost.f1, 0, 10)
    )
    assert raw.worse
    # …but across the ten objects the drop is one object's: no clear difference
    c = compare(good, one_lost, "on the held-out pixels")
    assert c.verdict == "same" and c.units == 10 and not c.worse
    assert c.summary().endswith(
        "— neither clearly better nor worse across the 10 annotated objects"
    )
    assert c.change() == f"Dice {good.dice:.3f} → {one_lost.dice:.3f}"
    # worse on every object: clearly worse; the reverse clearly better
    shrunk = score_network(_Fixed(_discs(10, shrink=set(range(1, 11)))), data)
    assert compare(good, shrunk).worse and compare(shrunk, good).verdict == "better"
    # each object a little too small (still found), then nine exact and one lost: Dice
    # rose clearly, F1 fell, not clearly; a drop keeps it from "better", and it is not
    # clearly worse either
    tight = score_network(_Fixed(_discs(10, shrink=set(range(1, 11)), small=5)), data)
    nine = score_network(_Fixed(_discs(10, drop={10})), data)
    mixed = compare(tight, nine)
    assert tight.f1 == 1.0 and nine.f1 < 1.0 and nine.dice > tight.dice + 0.05, (tight, nine)
    assert mixed.verdict == "same" and "neither clearly better nor worse" in mixed.summary()
    # the same verdict each time (a seeded resampling)
    assert compare(good, one_lost, "on the held-out pixels") == c
    assert compare(good, good).summary().endswith("— about the same")
    # three objects, all worse: too few to tell
    few = ValidationSet.from_training([TrainingPair(pair.image[:, :60], mask=truth[:, :60])])
    small = _discs(3, shrink={1, 2, 3})
    c3 = compare(score_network(_Fixed(truth[:, :60]), few), score_network(_Fixed(small), few))
    assert c3.verdict == "same" and c3.units == 3
    assert "too few annotated objects (3) to tell which is better" in c3.summary()
    # held-out pixels with no object at all: one unit, a false object counted in it
    empty = ValidationSet.from_training([TrainingPair(pair.image, mask=np.zeros_like(truth))])
    clean = score_network(_Fixed(np.zeros_like(truth)), empty)
    speck = score_network(_Fixed(_discs(10, drop=set(range(2, 11)))), empty)
    assert np.array(clean.units).shape == (1, 8) and clean.f1 == 1.0 and clean.objects == 0
    assert speck.units[0][6] == 1 and speck.f1 == 0.0
    assert compare(clean, speck).units == 1  # too few to tell
    # scores of different objects are not compared
    with pytest.raises(ValueError, match="different annotated objects"):
        compare(good, score_network(_Fixed(small), few))


def test_on_a_copied_prediction_the_objects_kept_count_not_their_outlines():
    """The previous model is right to the pixel on its own copy: outlines drawn a pixel
    wider do not make a new model worse there, a lost object does."""
    from skimage.segmentation import expand_labels

    from napari_unet.core import mask_to_annotation

    truth = _discs(10)
    ann = mask_to_annotation(truth)
    painted = np.zeros(truth.shape, bool)
    painted[8:12, 8:12] = True  # a correction inside the first object
    pair = TrainingPair(np.zeros((*truth.shape, 1), np.float32), annotation=ann, painted=painted)
    data = ValidationSet.from_training([pair], None)
    copy = score_network(_Fixed(truth), data)
    assert copy.dice is None and copy.f1 == 1.0 and copy.corrections == 1.0
    assert copy.figures().keys() == {"F1", "corrections"}
    wider = score_network(_Fixed(expand_labels(truth, 1)), data)
    assert wider.f1 == 1.0 and compare(copy, wider).verdict == "same"
    # one object lost of ten: not clearly worse; every other one lost: clearly
    one = score_network(_Fixed(_discs(10, drop={6})), data)
    assert one.f1 < 1.0 and compare(copy, one).verdict == "same"
    half = score_network(_Fixed(_discs(10, drop={2, 4, 6, 8, 10})), data)
    assert compare(copy, half).worse and compare(copy, half).change().startswith("F1 1.000 → ")
