"""Annotate and train in 3D (issue 23): a volume trains from its annotated YX planes
(any number, planes left unannotated are not taught), from ZY and ZX planes where a
block of planes is annotated, and a 3-D prediction copied as an annotation leaves the
surfaces where two instances touch in 3D unannotated."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ball_volume, balls, seeded

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, UserInputError
from napari_unet.core.normalize import DEFAULT_NORMALIZATION
from napari_unet.core.training.samples import SIDE_VIEW_PLANES, planes_of, resample_z
from napari_unet.core.training.targets import mask_to_annotation

TINY = UNetConfig(depth=2, base_filters=8)


# ---------------------------------------------------------------------- copy in 3D
def test_stacked_instances_leave_their_3d_contact_surface_unannotated():
    mask = np.zeros((6, 10, 10), np.int32)
    mask[:3, 2:8, 2:8] = 1
    mask[3:, 2:8, 2:8] = 2  # lies on object 1: they touch across z only
    per_plane = mask_to_annotation(mask)
    assert (per_plane[2:4, 3:7, 3:7] == 2).all()  # no plane sees the contact
    ann = mask_to_annotation(mask, axes="ZYX")
    assert (ann[2:4, 2:8, 2:8] == 0).all()  # the surface on both sides, unannotated
    assert (ann[1, 3:7, 3:7] == 2).all() and (ann[4, 3:7, 3:7] == 2).all()
    assert (ann[mask == 0] == 1).all()
    # frames of a time-lapse of volumes are apart: no contact across T
    frames = np.stack([mask, mask[::-1] % 3])
    tz = mask_to_annotation(frames, axes="TZYX")
    assert (tz[0] == ann).all()
    assert (tz[1] == mask_to_annotation(frames[1], axes="ZYX")).all()
    # T alone: plane by plane, as before
    assert (mask_to_annotation(mask, axes="TYX") == per_plane).all()
    with pytest.raises(UserInputError, match="axes"):
        mask_to_annotation(mask, axes="ZY")


def test_touching_balls_get_their_3d_surface_unannotated():
    truth = balls((16, 32, 48), [(8, 16, 14), (8, 16, 30)], [(9, 9, 9), (10, 10, 10)])
    ann = mask_to_annotation(truth, axes="ZYX")
    a, b = truth == 1, truth == 2
    # every voxel of 1 with a 6-neighbour in 2 is unannotated, in every direction
    contact = a & (np.roll(b, 1, 0) | np.roll(b, -1, 0) | np.roll(b, 1, 2) | np.roll(b, -1, 2))
    assert contact.sum() > 20
    assert (ann[contact] == 0).all()
    assert ((ann == 2) == ((truth > 0) & (ann != 0))).all()


# ---------------------------------------------------------------------- planes of a volume
def test_one_annotated_plane_of_sixty_trains_as_that_plane_only():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (60, 32, 32)).astype(np.float32)
    image[:30] += 1000  # a bright half: the volume's scaling, not the plane's own
    ann = np.zeros(image.shape, np.uint8)
    ann[41, 4:12, 4:12] = 2
    ann[41, 20:28, 20:28] = 1
    planes = planes_of(
        [TrainingPair(image, annotation=ann, z_scale=3.0)], 1, normalization=DEFAULT_NORMALIZATION
    )
    assert len(planes) == 1  # unannotated planes are not taught as background
    assert (planes[0].annotation == ann[41]).all()
    low, high = planes[0].intensity
    assert high[0] > 500  # the whole volume's percentiles
    # a stack with no z-step (frames, unrelated planes) keeps each plane's own scaling
    alone = planes_of([TrainingPair(image, annotation=ann)], 1, DEFAULT_NORMALIZATION)
    assert len(alone) == 1 and alone[0].intensity is None


def test_a_dense_annotated_block_also_gives_side_views_at_the_z_step():
    image, truth = ball_volume(seeded(0))
    ann = np.zeros(truth.shape, np.uint8)
    for z in range(2, 2 + SIDE_VIEW_PLANES + 3):  # 8 planes in a row: a dense block
        ann[z] = mask_to_annotation(truth[z])
    ann[11] = mask_to_annotation(truth[11])  # and one more apart
    planes = planes_of([TrainingPair(image, annotation=ann, z_scale=2.0)], 1)
    yx = [p for p in planes if "ZY" not in p.name and "ZX" not in p.name]
    side = [p for p in planes if "ZY" in p.name or "ZX" in p.name]
    assert len(yx) == 9
    assert {p.annotation.shape for p in side} == {(16, 64)}  # 8 planes × 2
    assert 2 <= sum("ZY" in p.name for p in side) <= 12
    assert all(p.annotation.any() for p in side)
    # a side view is the block's labels, plane z repeated z_scale times
    p = next(p for p in side if "ZY" in p.name)
    x = int(p.name.split("ZY ")[1].split(",")[0])
    assert (p.annotation == resample_z(ann[2:10, :, x], 2.0, labels=True)).all()
    # a few planes spread through z: planes only
    sparse = ann.copy()
    sparse[3:9] = 0
    planes = planes_of([TrainingPair(image, annotation=sparse, z_scale=2.0)], 1)
    assert len(planes) == 3 and not any("ZY" in p.name for p in planes)


def test_a_side_view_teaches_a_contact_across_z_as_the_masks_side_view_does():
    """Two objects lying on each other touch across z; copied in 3D, the contact is two
    unannotated planes. Stretched by the z-step as they are, those planes widen into a
    gap no thin line is, and the contact went untaught; now the side view keeps it two
    pixels wide and teaches, pixel for pixel, what the mask's side view teaches."""
    from napari_unet.core.prediction.instances import touching_lines
    from napari_unet.core.training.targets import annotation_targets, mask_targets

    mask = np.zeros((10, 24, 24), np.int32)
    mask[1:5, 4:20, 4:20] = 1
    mask[5:9, 4:20, 4:20] = 2  # on object 1: they touch across z only
    ann = mask_to_annotation(mask, axes="ZYX")
    image = np.random.default_rng(0).normal(100, 10, mask.shape).astype(np.float32)
    planes = planes_of([TrainingPair(image, annotation=ann, z_scale=3.0)], 1)
    side = next(p for p in planes if p.name.startswith("image[ZY 12,"))
    assert side.annotation.shape == (30, 24)
    lines = touching_lines(side.annotation)
    assert (lines[:, 4:20].sum(axis=0) == 2).all()  # a line two pixels thick, all across
    masks_view = mask_targets(resample_z(mask, 3.0, labels=True)[:, :, 12])
    np.testing.assert_array_equal(annotation_targets(side.annotation), masks_view)


# ---------------------------------------------------------------------- training
@pytest.mark.learned
def test_two_annotated_planes_of_twelve_teach_the_rest_of_the_volume(margin):
    """Two planes' true labels in a 12-plane volume: losses stay finite, and the
    trained network's 3-D prediction finds the balls on the ten planes nobody
    annotated (an untrained network does not)."""
    image, truth = ball_volume(seeded(0))
    ann = np.zeros(truth.shape, np.uint8)
    for z in (3, 8):
        ann[z] = mask_to_annotation(truth[z])
    rest = [z for z in range(12) if z not in (3, 8)]
    net = UNet.new(TINY, seed=seeded(0))

    def dice_on_rest() -> float:
        pred = net.predict(image, diameter=0, axes="ZYX", volume=True, z_scale=2.0)
        assert pred.labels.shape == truth.shape
        fg, t = pred.labels[rest] > 0, truth[rest] > 0
        return 2 * float((fg & t).sum()) / max(1, int(fg.sum() + t.sum()))

    before = dice_on_rest()
    result = net.train(
        [TrainingPair(image, annotation=ann, z_scale=2.0)],
        TrainConfig(epochs=6, steps_per_epoch=10, patch_size=48, batch_size=8, seed=seeded(0)),
    )
    assert result.steps_run == 60
    assert np.isfinite(result.history["loss"]).all()
    after = dice_on_rest()
    margin("dice on the unannotated planes", after, 0.5, before)
    margin("gain over the untrained network", after - before, 0.2)
