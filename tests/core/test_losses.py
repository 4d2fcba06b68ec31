"""Masked losses and metrics; numpy evaluation metrics; training targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core import UserInputError, evaluate, mask_to_annotation
from napari_unet.core.prediction.instances import touching_lines
from napari_unet.core.training.targets import (
    annotation_targets,
    check_annotation,
    instance_boundaries,
    mask_targets,
    resize_annotation_keeping_contacts,
)


def _random_case(seed=0, shape=(2, 16, 16), n=3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (n,))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cls = rng.integers(n, size=shape)
    onehot = np.eye(n)[cls]
    labelled = rng.random(shape) < 0.4
    masked = onehot * labelled[..., None]
    return probs.astype("float32"), onehot.astype("float32"), masked.astype("float32"), labelled


@pytest.mark.parametrize(
    "name", ["masked_crossentropy", "soft_dice_loss", "dice_crossentropy_loss", "dice_coefficient"]
)
def test_masked_loss_equals_plain_loss_on_labelled_subset(name):
    from napari_unet.core.training import losses

    fn = getattr(losses, name)
    probs, onehot, masked, labelled = _random_case()
    full_masked = float(fn(masked, probs))
    # the labelled pixels alone, as a flat "image" with nothing masked
    sub_true = onehot[labelled][None, None]
    sub_pred = probs[labelled][None, None]
    plain = float(fn(sub_true, sub_pred))
    assert full_masked == pytest.approx(plain, rel=1e-5, abs=1e-6)
    # and the unlabelled pixels really do not matter
    probs2 = probs.copy()
    probs2[~labelled] = np.roll(probs2[~labelled], 1, axis=-1)
    assert float(fn(masked, probs2)) == pytest.approx(full_masked, rel=1e-5, abs=1e-6)


def test_crossentropy_matches_the_textbook_formula():
    from napari_unet.core.training.losses import masked_crossentropy
    from napari_unet.core.training.targets import WEIGHT_UNIT

    probs, onehot, _, _ = _random_case(1)
    expected = -np.mean(np.log((onehot * probs).sum(-1)))
    got = float(masked_crossentropy(onehot * WEIGHT_UNIT, probs))
    assert got == pytest.approx(expected, rel=1e-5)


def test_target_values_weight_pixels_painted_more_pseudo_labels_less():
    from napari_unet.core.training.losses import masked_crossentropy
    from napari_unet.core.training.targets import WEIGHT_UNIT

    probs, onehot, _, _ = _random_case(2)
    ce = -np.log((onehot * probs).sum(-1))  # per pixel
    weights = np.ones(ce.shape, np.float32)
    weights[:, :4] = 4.0  # painted
    weights[:, -4:] = 0.25  # pseudo-labels
    target = onehot * (weights * WEIGHT_UNIT)[..., None]
    expected = (weights * ce).sum() / ce.size
    assert float(masked_crossentropy(target, probs)) == pytest.approx(expected, rel=1e-5)


def test_dice_is_one_for_a_perfect_prediction_and_low_for_the_inverse():
    from napari_unet.core.training.losses import dice_coefficient, soft_dice_loss

    t = np.zeros((1, 8, 8, 3), "float32")
    t[..., 0] = 1
    t[0, 2:6, 2:6] = [0, 1, 0]
    assert float(dice_coefficient(t, t)) == pytest.approx(1.0)
    assert float(soft_dice_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    inverse = t[..., ::-1] * 0 + np.stack([1 - t[..., 0], t[..., 0], 0 * t[..., 0]], -1)
    assert float(dice_coefficient(t, inverse)) < 0.1


def test_partial_labels_accept_any_allowed_class():
    from napari_unet.core.training.losses import masked_crossentropy

    t = np.zeros((1, 1, 2, 3), "float32")
    t[0, 0, :, 1:] = 1  # interior or boundary both allowed
    p = np.array([[[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]], "float32")
    assert float(masked_crossentropy(t, p)) == pytest.approx(0.0, abs=1e-5)


def test_evaluate_perfect_and_empty():
    truth = np.zeros((32, 32), np.uint16)
    truth[2:10, 2:10] = 1
    truth[15:25, 15:25] = 2
    r = evaluate(truth, truth)
    for key in ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "mean_ap"):
        assert r[key] == pytest.approx(1.0)
    r = evaluate(np.zeros_like(truth), truth)
    assert r["recall"] == 0 and r["f1"] == 0 and r["pixel_dice"] == 0


def test_evaluate_counts_splits_merges_and_iou_thresholds():
    truth = np.zeros((40, 40), np.int32)
    truth[0:10, 0:10] = 1
    truth[0:10, 20:30] = 2
    truth[20:30, 0:10] = 3
    pred = np.zeros_like(truth)
    pred[0:10, 0:10] = 7  # perfect
    pred[0:10, 20:25] = 8  # half of object 2: IoU 0.5 → matched at 0.5 only
    pred[0:10, 25:30] = 9  # the other half: a false positive
    pred[35:40, 35:40] = 5  # spurious
    r = evaluate(pred, truth)
    assert r["tp"] == 2
    assert r["precision"] == pytest.approx(2 / 4)
    assert r["recall"] == pytest.approx(2 / 3)
    # at IoU ≥ 0.55 only the perfect match survives
    expected_ap = (2 / (2 + 2 + 1) + 9 * (1 / (1 + 3 + 2))) / 10
    assert r["mean_ap"] == pytest.approx(expected_ap, abs=1e-6)


def test_evaluate_refuses_shape_mismatch():
    with pytest.raises(UserInputError, match="differ in shape"):
        evaluate(np.zeros((4, 4), int), np.zeros((4, 5), int))


def test_mask_targets_mark_boundaries_between_touching_instances():
    m = np.zeros((10, 10), np.uint16)
    m[2:8, 1:5] = 1
    m[2:8, 5:9] = 2  # touches instance 1
    t = mask_targets(m)
    assert t.sum(-1).max() == 1 and t.sum(-1).min() == 1  # one-hot everywhere
    b = instance_boundaries(m)
    assert b[4, 4] and b[4, 5]  # the shared edge is boundary on both sides
    assert not b[4, 2] and t[4, 2, 1] == 1  # interior
    assert t[0, 0, 0] == 1  # background


def test_annotation_targets_partial_labels_and_ignore():
    a = np.zeros((9, 9), np.uint8)
    a[0:2, :] = 1  # background stroke
    a[2:7, 2:7] = 2  # object, touching background on the top only
    t = annotation_targets(a)
    assert (t[7:, :] == 0).all()  # unannotated → ignored
    assert tuple(t[2, 4]) == (0, 0, 1)  # object next to background → boundary
    assert tuple(t[4, 4]) == (0, 1, 0)  # deep inside → interior
    assert tuple(t[6, 4]) == (0, 1, 1)  # next to unannotated → interior or boundary
    assert tuple(t[0, 0]) == (1, 0, 0)


def test_mask_to_annotation_keeps_touching_instances_apart():
    m = np.zeros((6, 6), np.uint16)
    m[1:5, 0:3] = 1
    m[1:5, 3:6] = 2
    a = mask_to_annotation(m)
    assert a[0, 0] == 1 and a[2, 1] == 2
    assert a[2, 2] == 0 and a[2, 3] == 0  # the shared edge is left for the user


def test_annotation_of_touching_instances_teaches_the_boundary_a_mask_teaches():
    m = np.zeros((10, 12), np.uint16)
    m[2:8, 1:6] = 1
    m[2:8, 6:11] = 2  # touches instance 1 along a vertical line
    a = mask_to_annotation(m)
    assert (a[2:8, 5:7] == 0).all()  # the contact is left unannotated ...
    t, mt = annotation_targets(a), mask_targets(m)
    assert tuple(t[4, 5]) == tuple(t[4, 6]) == (0, 0, 1)  # ... and taught as boundary
    assert tuple(t[4, 4]) == (0, 1, 0)  # beside the line: interior, not "either"
    np.testing.assert_array_equal(t, mt)  # the copy teaches exactly what the mask does
    assert touching_lines(a).sum() == 12


def test_touching_lines_are_thin_gaps_between_two_objects_only():
    a = np.ones((12, 14), np.uint8)
    a[2:9, 1:6] = 2
    a[2:9, 7:12] = 2
    a[2:9, 6] = 0  # a person left a one-pixel gap between the two objects
    a[4, 2:5] = 0  # an unpainted stroke inside one object parts nothing
    a[10:, :] = 0  # an unpainted band below both objects, a pixel away from them
    lines = touching_lines(a)
    assert lines[2:9, 6].all()
    assert not lines[4, 2:5].any() and not lines[10:, :].any()
    a[2:9, 7:9] = 0  # a gap three pixels wide is not a contact line
    assert not touching_lines(a)[2:9, 6:9].any()
    a[2:9, 6:9] = 2  # one object: nothing to part
    assert not touching_lines(a).any()


@pytest.mark.parametrize("factor", [0.4, 0.5, 2.0, 2.5])
def test_a_resized_annotation_keeps_its_touching_lines_two_pixels_wide(factor):
    from napari_unet.core.prediction.object_size import resize_to, scaled_shape

    m = np.zeros((40, 48), np.uint16)
    m[8:32, 4:24] = 1
    m[8:32, 24:44] = 2  # touches instance 1 along a vertical line
    m[12:20, 14:24] = 0
    m[12:20, 14:30] = 2  # ... and across a step
    shape = scaled_shape(m.shape, factor)
    a = resize_annotation_keeping_contacts(mask_to_annotation(m), shape)
    assert a.shape == shape
    regions, n = ndi.label(a >= 2)
    assert n == 2  # shrunk, the line did not close; enlarged, it did not widen ...
    lines = touching_lines(a)
    assert lines.any() and (a[lines] == 0).all()
    # ... so it teaches the boundary a mask of that size does
    mt = mask_targets(resize_to(m, shape, labels=True))
    t = annotation_targets(a)
    assert (t == mt).all(-1)[lines].mean() > 0.9
    assert (t == mt).all(-1).mean() > 0.97


def test_the_post_processing_search_reads_an_annotations_objects_as_their_mask():
    from napari_unet.core.prediction.instances import annotated_objects

    m = np.zeros((10, 12), np.uint16)
    m[2:8, 1:6] = 1
    m[2:8, 6:11] = 2
    objects, known = annotated_objects(mask_to_annotation(m), "annotation")
    np.testing.assert_array_equal(objects, m)  # the contact line given back to each
    assert known.all()
    strokes = np.zeros((10, 12), np.uint8)
    strokes[4, 2:5] = 2
    strokes[0, :] = 1
    objects, known = annotated_objects(strokes, "annotation")
    assert objects.max() == 1 and known.sum() == 15  # painted pixels only


def test_annotation_checks_have_plain_messages():
    with pytest.raises(UserInputError, match="no background"):
        check_annotation(np.full((4, 4), 2, np.uint8))
    with pytest.raises(UserInputError, match="no object"):
        check_annotation(np.ones((4, 4), np.uint8))
    with pytest.raises(UserInputError, match="label 3"):
        annotation_targets(np.array([[1, 3]], np.uint8), n_object_classes=1)
