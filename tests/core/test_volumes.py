"""Volumes as volumes (issue 23): a z-stack segmented as one volume gets one id per object
through z, and objects touching in 3-D stay apart.

Post-processing alone works on class probabilities made from a known 3-D mask, as the 2-D
network would predict them plane by plane (:func:`plane_targets`: the boundary is each
plane's own); the whole path runs the bundled nuclei network on a small synthetic volume.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_one_id_each, balls, nuclei_volume
from scipy import ndimage as ndi

from napari_unet.core.errors import UserInputError
from napari_unet.core.prediction.instances import (
    instances_from_probabilities,
    volume_min_size,
)
from napari_unet.core.training.targets import mask_targets

MODES = ("distance", "boundary")


# ---------------------------------------------------------------------- volumes
def plane_targets(mask: np.ndarray, axis: int = 0) -> np.ndarray:
    """``[background, object, boundary]`` probabilities of each plane across ``axis``,
    as the 2-D network sees the planes (boundaries within a plane only), a little
    blurred as a network's are."""
    planes = np.moveaxis(mask, axis, 0)
    t = np.stack([mask_targets(p) for p in planes]).astype(np.float32)
    t = np.moveaxis(t, 0, axis)
    t = ndi.gaussian_filter(t, (0.5, 0.5, 0.5, 0))
    return t / t.sum(-1, keepdims=True)


def all_views(mask: np.ndarray) -> np.ndarray:
    """The three views' probabilities averaged (what ``views="all"`` computes)."""
    return sum(plane_targets(mask, a) for a in range(3)) / 3.0


# ---------------------------------------------------------------------- post-processing
@pytest.mark.parametrize("mode", MODES)
def test_touching_balls_are_two_ids_each_one_through_its_planes(mode):
    truth = balls((32, 48, 64), [(16, 24, 21), (16, 24, 42)], [(11, 11, 11)] * 2)
    assert ndi.label(truth > 0)[1] == 1  # they touch
    pred = instances_from_probabilities(plane_targets(truth), seed_mode=mode)
    assert pred.shape == truth.shape
    assert int(pred.max()) == 2
    assert_one_id_each(pred, truth)


def test_balls_stacked_in_z_are_split_by_their_3d_shape():
    """A contact plane across z is no boundary in any YX plane: the distance seeds still
    find two objects (two maxima of the 3-D distance); the boundary seeds need the ZY and
    ZX views, whose planes show it."""
    truth = balls((44, 32, 32), [(11, 16, 16), (32, 16, 16)], [(11, 11, 11)] * 2)
    assert ndi.label(truth > 0)[1] == 1
    yx = plane_targets(truth)
    pred = instances_from_probabilities(yx, seed_mode="distance")
    assert int(pred.max()) == 2
    assert_one_id_each(pred, truth)
    merged = instances_from_probabilities(yx, seed_mode="boundary")
    assert int(merged.max()) == 1  # what YX planes alone cannot tell
    pred = instances_from_probabilities(all_views(truth), seed_mode="boundary")
    assert int(pred.max()) == 2
    assert_one_id_each(pred, truth)


@pytest.mark.parametrize("mode", MODES)
def test_an_elongated_object_through_many_planes_stays_one(mode):
    """A long thin ellipsoid along z, tilted so it crosses 40 planes and moves 20 px,
    beside a ball touching it."""
    shape = (48, 48, 64)
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    cy = 16 + (zz - 24) * 0.5  # the axis drifts in y through z
    rod = ((zz - 24) / 20) ** 2 + ((yy - cy) / 6) ** 2 + ((xx - 20) / 6) ** 2 <= 1
    truth = balls(shape, [(24, 20, 32)], [(9, 9, 9)])
    truth[rod & (truth == 0)] = 2
    assert ndi.label(truth > 0)[1] == 1
    assert np.unique(np.nonzero(truth == 2)[0]).size >= 39
    pred = instances_from_probabilities(plane_targets(truth), seed_mode=mode)
    assert int(pred.max()) == 2
    assert_one_id_each(pred, truth)


@pytest.mark.parametrize("mode", MODES)
def test_anisotropic_volume_with_its_z_scale(mode):
    """z steps 3 px long: round objects are flat in voxels (4 planes for 11 px radius);
    with ``z_scale=3`` the distances are the objects' own and the three touching balls
    (one beside, one above) are three ids, each one through its planes."""
    z_scale = 3.0
    shape = (20, 48, 64)
    truth = balls(shape, [(6, 24, 21), (6, 24, 42), (13.4, 24, 21)], [(11, 11, 11)] * 3, z_scale)
    assert ndi.label(truth > 0)[1] == 1
    probs = all_views(truth) if mode == "boundary" else plane_targets(truth)
    pred = instances_from_probabilities(probs, seed_mode=mode, z_scale=z_scale)
    assert int(pred.max()) == 3
    assert_one_id_each(pred, truth, share=0.85)


def test_a_crowd_of_touching_balls_is_one_id_per_ball():
    rng = np.random.default_rng(3)
    centres, shape = [], (40, 96, 96)
    while len(centres) < 14:
        c = rng.uniform((8, 10, 10), (32, 86, 86))
        if all(np.linalg.norm(c - d) > 17 for d in centres):
            centres.append(c)
    truth = balls(shape, centres, [(10, 10, 10)] * len(centres))
    for mode in MODES:
        pred = instances_from_probabilities(plane_targets(truth), seed_mode=mode)
        assert_one_id_each(pred, truth, share=0.8)
        # the pile of planes this replaces: every plane its own ids
        piled = sum(ndi.label(p > 0)[1] for p in pred)
        assert int(pred.max()) < piled / 5


def test_volume_min_size_and_bad_z_scale():
    assert volume_min_size(0) == 0
    assert volume_min_size(10, 1.0, 1.0) == round(4 / 3 * np.pi * (10 / np.pi) ** 1.5)
    assert volume_min_size(10, 0.5, 2.0) == round(
        4 / 3 * np.pi * (2 * np.sqrt(10 / np.pi)) ** 3 / 2
    )
    probs = plane_targets(balls((8, 16, 16), [(4, 8, 8)], [(4, 4, 4)]))
    with pytest.raises(UserInputError, match="z scale"):
        instances_from_probabilities(probs, z_scale=0)


# ---------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def nuclei_net():
    from napari_unet.core import UNet

    return UNet.bundled("nuclei")


def test_bundled_network_segments_a_volume_one_id_per_ball(nuclei_net):
    image, truth = nuclei_volume()
    piled = nuclei_net.predict(image, diameter=0, axes="ZYX")
    pred = nuclei_net.predict(image, diameter=0, axes="ZYX", volume=True)
    assert pred.labels.shape == truth.shape
    assert pred.probability.shape == truth.shape
    assert_one_id_each(pred.labels, truth, share=0.7)
    assert int(pred.labels.max()) <= 5
    assert int(piled.labels.max()) > 3 * int(pred.labels.max())  # the old pile of planes


def test_bundled_network_all_views_and_frames(nuclei_net):
    """``views="all"`` also sees the ZY and ZX planes (the stack here 4 px per z step:
    resampled in z); a TZYX stack is one volume per frame, ids unique over frames."""
    image, truth = nuclei_volume()
    thin, thin_truth = image[::4], truth[::4]  # z steps of 4 px
    pred = nuclei_net.predict(
        np.stack([thin, thin[:, ::-1]]),
        diameter=0,
        volume=True,
        z_scale=4.0,
        views="all",
        axes="TZYX",
        return_scores=True,
    )
    assert pred.labels.shape == (2,) + thin_truth.shape
    assert pred.scores.shape == (2,) + thin_truth.shape + (3,)
    for f, t in ((0, thin_truth), (1, thin_truth[:, ::-1])):
        assert_one_id_each(pred.labels[f], t, share=0.6)
    first = set(np.unique(pred.labels[0])) - {0}
    second = set(np.unique(pred.labels[1])) - {0}
    assert first and second and not first & second


def test_a_single_plane_is_not_a_volume(nuclei_net):
    image, _ = nuclei_volume()
    with pytest.raises(UserInputError, match="not a volume"):
        nuclei_net.predict(image[12], diameter=0, volume=True)
    with pytest.raises(UserInputError, match="views"):
        nuclei_net.predict(image, diameter=0, volume=True, views="xz")
