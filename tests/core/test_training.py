"""Real TensorFlow training on tiny models: accuracy, stopping, time limits, fine-tuning."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import make_blobs, seeded

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, UserInputError, evaluate
from napari_unet.core.training.samples import PatchSampler, prepare_pairs, split_validation

TINY = UNetConfig(depth=2, base_filters=8)


@pytest.mark.learned
def test_tiny_model_learns_blobs_to_dice_above_090(margin):
    train_img, train_mask = make_blobs(128, 14, seed=seeded(1))
    test_img, test_mask = make_blobs(128, 14, seed=seeded(101))
    net = UNet.new(TINY, seed=seeded(0))
    result = net.train(
        [TrainingPair(train_img, mask=train_mask)],
        TrainConfig(epochs=30, steps_per_epoch=10, patch_size=64, batch_size=8, seed=seeded(0)),
    )
    assert result.stopped_by in ("early_stopping", "epochs")  # no time limit: steps decide
    scores = evaluate(net.predict(test_img).labels, test_mask)
    margin("pixel_dice", scores["pixel_dice"], 0.9, scores)
    margin("f1", scores["f1"], 0.8, scores)


@pytest.mark.learned
def test_scribbles_train_too(margin):
    """A sparse annotation (a few strokes) is enough on easy data; 0 is ignored."""
    img, mask = make_blobs(128, 14, seed=seeded(3))
    ann = np.zeros(mask.shape, np.uint8)
    ids = np.unique(mask)[1:]
    for i in ids[::2]:
        ys, xs = np.nonzero(mask == i)
        ann[ys.min() + 2 : ys.max() - 1, int(xs.mean())] = 2  # a vertical stroke per object
    ann[::9, :] = np.where(mask[::9, :] == 0, 1, ann[::9, :])  # background lines
    assert (ann > 0).mean() < 0.15
    net = UNet.new(TINY, seed=seeded(0))
    net.train(
        [TrainingPair(img, annotation=ann)],
        TrainConfig(epochs=30, steps_per_epoch=10, patch_size=64, batch_size=8, seed=seeded(0)),
    )
    test_img, test_mask = make_blobs(128, 14, seed=seeded(104))
    scores = evaluate(net.predict(test_img).labels, test_mask)
    margin("pixel_dice", scores["pixel_dice"], 0.8, scores)


def test_stop_event_ends_training_within_one_batch_and_keeps_best_weights():
    img, mask = make_blobs(96, 8, seed=5)
    net = UNet.new(TINY)
    stop = threading.Event()
    seen = []

    def progress(p):
        seen.append(p)
        if p.kind == "batch" and p.step == 3:
            stop.set()

    result = net.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(epochs=50, steps_per_epoch=20, patch_size=32, batch_size=2),
        progress=progress,
        stop_event=stop,
    )
    assert result.stopped_by == "stop_event"
    assert result.steps_run == 3  # no batch after the one that saw the event
    # the stop skips the rest of the epoch: no validation, no preview, no epoch record
    assert result.epochs_run == 0 and result.best_epoch is None
    assert [p.kind for p in seen].count("epoch") == 0
    assert seen[-1].kind == "done" and seen[-1].message == "stop_event"
    assert net.predict(img).probability.shape == img.shape  # still predicts


def test_time_limit_and_progress_records():
    img, mask = make_blobs(96, 8, seed=6)
    net = UNet.new(TINY)
    records = []
    result = net.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(epochs=1000, steps_per_epoch=5, patch_size=32, batch_size=2, time_limit=2.0),
        progress=records.append,
    )
    assert result.stopped_by == "time_limit"
    assert result.seconds >= 2.0  # a lower bound only: a busy machine is slower
    kinds = {r.kind for r in records}
    assert {"batch", "epoch", "done"} <= kinds
    epochs = [r for r in records if r.kind == "epoch"]
    assert all(r.val_loss is not None and r.val_dice is not None for r in epochs)
    assert len(result.history["loss"]) == result.epochs_run
    assert net.metadata.training_runs[-1]["stopped_by"] == "time_limit"


def test_fine_tuning_continues_from_existing_weights():
    img, mask = make_blobs(128, 14, seed=7)
    net = UNet.new(TINY)
    cfg = TrainConfig(epochs=3, steps_per_epoch=10, patch_size=64, batch_size=4, seed=1)
    net.train([TrainingPair(img, mask=mask)], cfg)
    first = net.metadata.history["loss"][0]
    net.train([TrainingPair(img, mask=mask)], cfg)
    hist = net.metadata.history["loss"]
    assert len(hist) == 6 and len(net.metadata.training_runs) == 2
    assert hist[3] < first  # the second run starts where the first ended


def test_a_width_typed_for_training_images_is_where_a_width_typed_later_is_brought(tmp_path):
    """Trained on an image whose width was typed (Segment's diameter, ``train
    --diameter``), a model records that width at its own scale (``typed_width``): the
    same width typed on a new image is seen where training saw it, whatever its own
    measure became (packed cells read as one wide region left a typed width 2-3x off or
    refused), and the record survives a save."""
    img, mask = make_blobs(128, 10, seed=5)
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, patch_size=64, batch_size=2, val_fraction=0.0)

    tuned = UNet.default()
    tuned.train([TrainingPair(img, mask=mask, diameter=24)], cfg)
    taught = tuned.metadata.taught_scale
    assert tuned.metadata.typed_width == pytest.approx(24 * taught, abs=0.01)
    tuned.metadata.object_diameter *= 3  # its own measure read merged regions
    assert tuned.predict(img, diameter=24).scale == pytest.approx(taught, abs=1e-3)
    assert tuned.predict(img, diameter=12).scale == pytest.approx(2 * taught, abs=1e-3)
    tuned.save(tmp_path / "tuned.keras")
    assert UNet.load(tmp_path / "tuned.keras").metadata.typed_width == tuned.metadata.typed_width

    # nothing typed: a width typed later goes by the width its masks were taught at
    plain = UNet.default()
    plain.train([TrainingPair(img, mask=mask)], cfg)
    assert plain.metadata.typed_width is None
    plain.metadata.object_diameter = 100.0  # 100/12: more than 4x, refused before
    want = plain.mask_diameter / 12
    assert 1.0 < want < 4.0
    assert plain.predict(img, diameter=12).scale == pytest.approx(want, abs=1e-3)

    new = UNet.new(TINY, seed=0)  # no size of its own: learned as the images are
    new.train([TrainingPair(img, mask=mask, diameter=24)], cfg)
    assert new.metadata.typed_width == 24.0
    assert new.predict(img, diameter=12).scale == pytest.approx(2.0)
    assert UNet.default().metadata.typed_width is None  # nothing typed: as before


def test_preview_is_reported_during_training():
    img, mask = make_blobs(96, 8, seed=8)
    net = UNet.new(TINY)
    previews = []
    net.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(epochs=3, steps_per_epoch=3, patch_size=32, batch_size=2),
        progress=lambda p: previews.append(p.preview) if p.kind == "preview" else None,
        preview_image=img,
        preview_interval=0.0,
    )
    assert previews and previews[0].labels.shape == img.shape


def test_bad_training_input_is_refused_with_plain_messages():
    net = UNet.new(TINY)
    img = np.zeros((64, 64), np.uint16)
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, patch_size=32, batch_size=1)
    with pytest.raises(UserInputError, match="no background"):
        net.train([TrainingPair(img, annotation=np.full((64, 64), 2, np.uint8))], cfg)
    with pytest.raises(UserInputError, match="no object"):
        net.train([TrainingPair(img, annotation=np.ones((64, 64), np.uint8))], cfg)
    with pytest.raises(UserInputError, match="differ"):
        net.train([TrainingPair(img, mask=np.ones((64, 60), np.uint16))], cfg)
    with pytest.raises(UserInputError, match="multiple of 4"):
        net.train(
            [TrainingPair(img, mask=np.ones((64, 64), np.uint16))], TrainConfig(patch_size=30)
        )
    with pytest.raises(UserInputError):
        net.train([], cfg)


def test_patch_sampler_prefers_annotated_pixels_and_keeps_alignment():
    img, mask = make_blobs(256, 20, seed=9)
    ann = np.zeros(mask.shape, np.uint8)
    ann[200:230, 200:230] = np.where(mask[200:230, 200:230] > 0, 2, 1)
    prep = prepare_pairs([TrainingPair(img, annotation=ann)], 1, 1, {"low": 1, "high": 99.8})
    sampler = PatchSampler([prep[0].image], [prep[0].target], 32, annotated_fraction=1.0, seed=0)
    xs, ys = sampler.batch(32)
    labelled = ys.max(-1) > 0
    assert labelled.any(axis=(1, 2)).all()  # every patch sees annotated pixels
    # augmented image and target still agree: objects are brighter than background
    fg = ys[..., 0] == 0
    assert xs[..., 0][labelled & fg].mean() > xs[..., 0][labelled & ~fg].mean() + 0.3


def test_warped_patches_gather_the_target_like_a_copied_window():
    """The sampler reads a warped patch's target straight from the in-memory target
    (mirrored at the borders); a target it cannot index that way (here: a read-only
    memory map stand-in, a non-ndarray) goes through the copied window: same batches."""
    img, mask = make_blobs(96, 10, seed=4)
    prep = prepare_pairs([TrainingPair(img, mask=mask)], 1, 1, {"low": 1, "high": 99.8})

    class Plain:  # array-like, not an ndarray: read through read_region
        def __init__(self, a):
            self.a, self.shape, self.ndim = a, a.shape, a.ndim

        def __getitem__(self, key):
            return self.a[key]

        def max(self, axis=None):
            return self.a.max(axis=axis)

    batches = []
    for target in (prep[0].target, Plain(prep[0].target)):
        # 64-px patches on a 96-px image: the elastic margins cross the borders
        sampler = PatchSampler([prep[0].image], [target], 64, seed=3)
        batches.append([sampler.batch(6) for _ in range(4)])
    for (xa, ya), (xb, yb) in zip(*batches, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_validation_split_holds_out_blocks_without_leaking():
    img, mask = make_blobs(256, 30, seed=10)
    prep = prepare_pairs([TrainingPair(img, mask=mask)], 1, 1, {"low": 1, "high": 99.8})
    rng = np.random.default_rng(0)
    train, val = split_validation(prep, 0.2, 32, rng)
    assert not (train[0] & val[0]).any()
    share = val[0].sum() / (train[0].sum() + val[0].sum())
    assert 0.1 < share < 0.35


def test_seeded_runs_repeat_exactly_without_touching_the_process_random_state():
    img, mask = make_blobs(96, 6, seed=1)
    cfg = TrainConfig(epochs=1, steps_per_epoch=3, patch_size=32, batch_size=2, seed=4)
    tiny = UNetConfig(depth=2, base_filters=4, dropout=0.3)
    np.random.seed(1234)
    state = np.random.get_state()[1].copy()
    runs = []
    for seed in (0, 0, 1):
        net = UNet.new(tiny, seed=seed)
        start = [w.copy() for w in net.keras_model.get_weights()]
        net.train([TrainingPair(img, mask=mask)], cfg)
        runs.append((start, net.keras_model.get_weights()))
    # napari's, the notebook's and other plugins' NumPy generator is left as it was
    assert np.array_equal(np.random.get_state()[1], state)
    (s0, w0), (s1, w1), (s2, _) = runs
    assert all(np.array_equal(a, b) for a, b in zip(s0, s1))  # same seed, same start
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))  # ...and same training
    assert not all(np.array_equal(a, b) for a, b in zip(s0, s2))  # another seed differs


def test_labels_that_call_the_objects_background_are_said_before_they_are_taught():
    """Labels made by a threshold can leave most objects out; fine-tuned on them a model
    learns to find nothing (a cells3d plane: F1 0.90 -> 0.00). The bundled model clearly
    sees the objects there, so the run says so in one plain line, and trains as labelled.
    A full mask, background a person painted over them (a correction) and a new network
    that sees nothing say nothing."""
    img, mask = make_blobs(192, 14, seed=11, radius=(9, 13))
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, patch_size=64, batch_size=2, val_fraction=0.0)
    one = np.where(mask == mask.max(), mask, 0)  # one object labelled of fourteen

    net = UNet.default()
    result = net.train([TrainingPair(img, mask=one, name="thresholded")], cfg)
    assert len(result.warnings) == 1, result.warnings
    line = result.warnings[0]
    assert line.startswith("thresholded: ") and "are labelled background. " in line
    lost, seen = (int(w) for w in line.split(": ")[1].split(" objects")[0].split(" of the "))
    assert 10 <= lost <= seen <= 16, line
    assert net.metadata.training_runs[-1]["steps"] == 1  # trained as labelled

    assert UNet.default().train([TrainingPair(img, mask=mask)], cfg).warnings == []
    ann = np.where(one > 0, 2, 1).astype(np.uint8)
    painted = UNet.default().train([TrainingPair(img, annotation=ann, painted=mask > 0)], cfg)
    assert painted.warnings == []  # the person painted over them: a correction
    assert UNet.new(TINY, seed=0).train([TrainingPair(img, mask=one)], cfg).warnings == []


def test_the_labels_check_and_the_teacher_share_one_look_at_each_plane(monkeypatch):
    """Three planes whose labels each hold one object of many: one line names the first
    and counts the others, and the model looks at each plane once for both the check
    and the pseudo-labels (a Stop before the first step: no look after training)."""
    from napari_unet.core.prediction.predictor import Predictor

    pairs = []
    for seed in (11, 12, 13):
        img, mask = make_blobs(192, 14, seed=seed, radius=(9, 13))
        one = np.where(mask == mask.max(), 2, 1).astype(np.uint8)
        pairs.append(TrainingPair(img, annotation=one, diameter=22, name=f"frame {seed}"))
    looks = []
    scores = Predictor.scores
    monkeypatch.setattr(
        Predictor, "scores", lambda self, *a, **k: looks.append(1) or scores(self, *a, **k)
    )
    stop = threading.Event()
    stop.set()
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, patch_size=64, batch_size=2, val_fraction=0.0)
    assert cfg.pseudo_label_weight > 0  # the teacher looks too
    result = UNet.default().train(pairs, cfg, stop_event=stop)
    assert result.steps_run == 0
    assert len(result.warnings) == 1, result.warnings
    assert result.warnings[0].startswith("frame 11: ")
    assert result.warnings[0].endswith("; the same on 2 more planes"), result.warnings
    assert len(looks) == 3
