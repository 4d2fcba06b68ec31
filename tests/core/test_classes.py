"""Several object classes (annotation labels 2, 3, …): targets, loss, training that
infers or widens the classes, per-instance class maps, per-class evaluation, files."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs, make_two_classes, seeded, with_metadata

from napari_unet.core import (
    ModelFileError,
    TrainConfig,
    TrainingPair,
    UNet,
    UNetConfig,
    UserInputError,
    evaluate,
    mask_to_annotation,
)
from napari_unet.core.training.samples import weighted_target
from napari_unet.core.training.targets import WEIGHT_UNIT, annotation_targets, mask_targets

TINY = UNetConfig(depth=2, base_filters=8)
FAST = TrainConfig(epochs=1, steps_per_epoch=2, patch_size=32, batch_size=2, seed=0)


def objects_told_apart(pred_classes: np.ndarray, truth: np.ndarray, truth_classes, k: int):
    """Share of the true objects of class ``k`` whose pixels the prediction gives class
    ``k`` more often than any other class (a missed object counts as wrong)."""
    ids = np.unique(truth[truth_classes == k])
    right = 0
    for i in ids:
        votes = np.bincount(pred_classes[truth == i], minlength=3)
        right += int(votes[k] > 0 and votes[k] == votes.max())
    return right / len(ids)


@pytest.mark.learned
def test_two_classes_are_learned_from_labels_1_2_3_and_told_apart_on_new_images(tmp_path, margin):
    img, mask, classes = make_two_classes(160, 20, seed=seeded(1))
    ann = mask_to_annotation(mask, classes)  # 1 background, 2 blobs, 3 rods
    assert set(np.unique(ann)) == {1, 2, 3}
    net = UNet.new(TINY, seed=seeded(0))  # one object class, as built
    result = net.train(
        [TrainingPair(img, annotation=ann)],
        TrainConfig(epochs=25, steps_per_epoch=10, patch_size=64, batch_size=8, seed=seeded(0)),
    )
    assert net.config.n_object_classes == 2  # inferred: highest label 3 − 1
    assert net.metadata.classes == ["background", "object class 1", "object class 2",
                                       "boundary"]  # fmt: skip
    assert net.metadata.training_runs[-1]["object_classes"] == 2
    assert result.steps_run > 0
    for seed in (102, 104):  # images it never trained on
        test_img, test_mask, test_classes = make_two_classes(160, 20, seed=seeded(seed))
        pred = net.predict(test_img, diameter=None)
        assert pred.classes is not None and pred.classes.dtype == np.uint8
        assert pred.class_names == ["object class 1", "object class 2"]
        # one class per instance, the class map is 0 exactly off the instances
        assert np.array_equal(pred.classes, pred.instance_classes[pred.labels])
        assert np.array_equal(pred.classes > 0, pred.labels > 0)
        # an all-class-1 (or random) map tells at most half the objects of one class apart
        for k in (1, 2):
            told = objects_told_apart(pred.classes, test_mask, test_classes, k)
            margin(f"class {k} objects told apart", told, 0.7, seed)
        scores = evaluate(pred.labels, test_mask, pred.classes, test_classes)
        margin("f1", scores["f1"], 0.75, scores)
        for k in ("1", "2"):
            margin(f"class {k} f1", scores["per_class"][k]["f1"], 0.6, scores["per_class"])
    # the classes travel with the model file
    net.save(tmp_path / "two.keras")
    again = UNet.load(tmp_path / "two.keras")
    assert again.config.n_object_classes == 2
    assert again.object_class_names == ["object class 1", "object class 2"]
    same = again.predict(test_img, diameter=None)
    assert np.array_equal(same.classes, pred.classes)


def test_widening_a_trained_network_keeps_its_predictions(sample_image):
    net = UNet.default()
    crop = sample_image[:128, :128]
    before = net.predict(crop, diameter=None, return_scores=True)
    assert before.classes is None and before.instance_classes is None
    net.widen(3)
    assert net.config.n_object_classes == 3
    assert net.metadata.classes == class_names_3()
    after = net.predict(crop, diameter=None, return_scores=True)
    np.testing.assert_allclose(after.probability, before.probability, atol=1e-5)
    assert np.array_equal(after.labels, before.labels)
    # the old object class is shared evenly by the copies until training says otherwise
    np.testing.assert_allclose(after.scores[..., 1:4].sum(-1), before.scores[..., 1], atol=1e-5)
    np.testing.assert_allclose(after.scores[..., 1], after.scores[..., 2], atol=1e-5)
    assert after.classes.shape == crop.shape and set(np.unique(after.classes)) <= {0, 1, 2, 3}


def class_names_3() -> list[str]:
    return ["background", "object class 1", "object class 2", "object class 3", "boundary"]


def test_fine_tuning_on_a_new_class_widens_the_model_and_records_it():
    img, mask, classes = make_two_classes(64, 6, seed=3)
    net = UNet.new(TINY)
    net.train([TrainingPair(img, mask=mask)], FAST)  # now a trained one-class model
    assert net.pretrained and net.config.n_object_classes == 1
    net.train([TrainingPair(img, annotation=mask_to_annotation(mask, classes))], FAST)
    assert net.config.n_object_classes == 2
    assert net.metadata.training_runs[-1]["widened_from"] == 1
    assert net.predict(img, diameter=None).classes is not None
    # a dense mask next to a three-label annotation: the mask teaches objects, any class
    net2 = UNet.new(TINY)
    net2.train(
        [
            TrainingPair(img, mask=mask),
            TrainingPair(img, annotation=mask_to_annotation(mask, classes)),
        ],
        FAST,
    )
    assert net2.config.n_object_classes == 2


def test_an_instance_mask_given_as_annotation_is_refused_plainly():
    img, mask = make_blobs(64, 40, seed=0, radius=(2, 4))
    assert mask.max() > 34
    with pytest.raises(UserInputError, match="given as a mask"):
        UNet.new(TINY).train([TrainingPair(img, annotation=mask)], FAST)


def test_targets_for_several_classes():
    ann = np.array(
        [
            [1, 1, 1, 1, 1, 1, 1],
            [1, 2, 2, 2, 1, 3, 1],
            [1, 2, 2, 2, 1, 3, 1],
            [1, 2, 2, 2, 1, 3, 1],
            [1, 1, 1, 1, 1, 1, 1],
        ],
        np.uint8,
    )
    t = annotation_targets(ann, n_object_classes=2)
    assert t.shape == (5, 7, 4)
    assert t[2, 2].tolist() == [0, 1, 0, 0]  # interior of class 1
    assert t[1, 1].tolist() == [0, 0, 0, 1]  # its edge: boundary
    assert t[2, 5].tolist() == [0, 0, 0, 1]  # a one-pixel-wide rod of class 2: all edge
    ann[1:4, 4:7] = 3
    t = annotation_targets(ann, n_object_classes=2)
    assert t[2, 5].tolist() == [0, 0, 1, 0]  # interior of class 2
    with pytest.raises(UserInputError, match="label 3"):
        annotation_targets(ann, n_object_classes=1)
    # a mask says where objects are, not their class: any object class is allowed
    m = mask_targets((ann >= 2).astype(np.uint16), n_object_classes=2)
    assert m[2, 2].tolist() == [0, 1, 1, 0]
    assert mask_targets((ann >= 2).astype(np.uint16))[2, 2].tolist() == [0, 1, 0]


def test_pseudo_labels_of_a_one_class_teacher_allow_every_new_class():
    target = np.zeros((1, 3, 4), np.uint8)  # nobody annotated these pixels
    teacher = np.array([[[0.95, 0.03, 0.02], [0.02, 0.96, 0.02], [0.4, 0.3, 0.3]]], np.float32)
    out = weighted_target(target, None, 1.0, teacher, 0.25)
    value = max(1, round(WEIGHT_UNIT * 0.25))
    assert out[0, 0].tolist() == [value, 0, 0, 0]
    assert out[0, 1].tolist() == [0, value, value, 0]  # object, class unknown
    assert out[0, 2].tolist() == [0, 0, 0, 0]  # unsure: nothing


def test_copying_a_prediction_with_classes_writes_each_class_label():
    mask = np.zeros((6, 8), np.uint16)
    mask[1:4, 1:3] = 1
    mask[1:4, 3:5] = 2  # touches instance 1
    mask[1:3, 6:8] = 3
    classes = np.where(mask == 2, 2, np.where(mask > 0, 1, 0)).astype(np.uint8)
    ann = mask_to_annotation(mask, classes)
    assert ann[2, 1] == 2 and ann[2, 4] == 3 and ann[1, 7] == 2 and ann[5, 0] == 1
    assert ann[2, 2] == 0 and ann[2, 3] == 0  # the touching line stays unannotated
    assert np.array_equal(mask_to_annotation(mask) > 0, ann > 0)
    with pytest.raises(UserInputError, match="shape"):
        mask_to_annotation(mask, classes[:5])


def test_per_class_scores_on_a_hand_made_case():
    truth = np.zeros((10, 30), np.uint16)
    truth[1:5, 1:5] = 1  # class 1
    truth[1:5, 7:11] = 2  # class 1
    truth[1:5, 13:17] = 3  # class 2
    truth[6:9, 20:28] = 4  # class 2
    truth_classes = np.where(np.isin(truth, [1, 2]), 1, np.where(truth > 0, 2, 0))
    pred = truth.copy()
    pred_classes = truth_classes.copy()
    pred_classes[truth == 2] = 2  # found, but called class 2: a class-2 false positive
    pred[truth == 4] = 0  # missed
    scores = evaluate(pred, truth, pred_classes, truth_classes.astype(np.uint8))
    assert scores["tp"] == 3 and scores["n_true"] == 4  # the old keys, as before
    c1, c2 = scores["per_class"]["1"], scores["per_class"]["2"]
    assert (c1["tp"], c1["n_pred"], c1["n_true"]) == (1, 1, 2)
    assert (c1["precision"], c1["recall"]) == (1.0, 0.5)
    assert c1["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert (c2["tp"], c2["n_pred"], c2["n_true"]) == (1, 2, 2)
    assert (c2["precision"], c2["recall"], c2["f1"]) == (0.5, 0.5, 0.5)
    # an instance takes the class most of its pixels carry
    noisy = pred_classes.copy()
    noisy[1, 1] = 2
    assert evaluate(pred, truth, noisy, truth_classes)["per_class"] == scores["per_class"]
    assert "per_class" not in evaluate(pred, truth)
    with pytest.raises(UserInputError, match="both|two class maps"):
        evaluate(pred, truth, pred_classes, None)


def test_model_files_check_their_class_names(tmp_path):

    net = UNet.new(UNetConfig(depth=1, base_filters=2, n_object_classes=2))
    path = net.save(tmp_path / "m.keras")
    assert UNet.load(path).metadata.classes[1:3] == ["object class 1", "object class 2"]
    three_names = ["background", "object", "boundary"]  # 3 names for 4 outputs
    bad = with_metadata(path, tmp_path / "bad.keras", lambda m: m.update(classes=three_names))
    with pytest.raises(ModelFileError, match="classes"):
        UNet.load(bad)


def test_writing_a_prediction_adds_the_class_map_only_for_several_classes(tmp_path):
    import tifffile

    from napari_unet.core.files.outputs import prediction_paths, write_prediction

    img, mask, classes = make_two_classes(64, 6, seed=5)
    one = UNet.new(UNetConfig(depth=1, base_filters=2)).predict(img, diameter=None)
    paths = prediction_paths(tmp_path, "one", one.n_object_classes)
    assert list(paths) == ["labels", "probability"]
    write_prediction(one, paths)
    two_net = UNet.new(UNetConfig(depth=1, base_filters=2, n_object_classes=2))
    two = two_net.predict(img, diameter=None)
    paths2 = prediction_paths(tmp_path, "two", two.n_object_classes)
    write_prediction(two, paths2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one_labels.tif", "one_probability.tif",
        "two_classes.tif", "two_labels.tif", "two_probability.tif",
    ]  # fmt: skip
    written = tifffile.imread(paths2["classes"])
    assert written.dtype == np.uint8 and np.array_equal(written, two.classes)
    with pytest.raises(UserInputError, match="class map"):
        write_prediction(one, prediction_paths(tmp_path, "x", 2))
