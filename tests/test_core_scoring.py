"""Before and after training: the same figures for two networks on the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_blobs, seeded

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig
from napari_unet.core.scoring import (
    SAME_WITHIN,
    Scores,
    ValidationSet,
    compare,
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
