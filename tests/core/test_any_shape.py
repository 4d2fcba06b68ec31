"""Instances of any shape (issue 22): long rods, bent rods and branched cells stay one
object each, touching ones stay apart.

The network learns ``[background, object, boundary]``; the line where two objects touch
is boundary, so what is object minus boundary is one piece per object whatever its
shape, and the ``"boundary"`` seeds grow those pieces back over the foreground.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import ROOT, seeded
from scipy import ndimage as ndi

from napari_unet.core import evaluate
from napari_unet.core.prediction.instances import (
    SPECK_SHARE,
    PostprocessParams,
    _fill_holes,
    absorb_specks,
    instances_from_probabilities,
    join_unsupported,
    search_postprocessing,
)
from napari_unet.core.training.targets import instance_boundaries, mask_targets

sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_rods import synth_rods  # noqa: E402

BOUNDARY = PostprocessParams(seed_mode="boundary")
WIDTH = 8.0


# ---------------------------------------------------------------------- shapes
def _grid(shape=(96, 160)):
    return np.mgrid[: shape[0], : shape[1]].astype(np.float32)


def capsule(cy, cx, length, angle=0.0, width=WIDTH, shape=(96, 160)) -> np.ndarray:
    """A rod with round caps: the points within ``width / 2`` of a segment."""
    yy, xx = _grid(shape)
    dy, dx = np.sin(angle), np.cos(angle)
    t = np.clip((yy - cy) * dy + (xx - cx) * dx, -length / 2, length / 2)
    return (yy - cy - t * dy) ** 2 + (xx - cx - t * dx) ** 2 <= (width / 2) ** 2


def banana(shape=(96, 160)) -> np.ndarray:
    """A rod bent along a half circle: the points within ``WIDTH / 2`` of an arc, with
    round ends; its ends are closer to each other than to its middle."""
    yy, xx = _grid(shape)
    cy, cx, r = 70.0, 80.0, 45.0
    ring = np.abs(np.hypot(yy - cy, xx - cx) - r) <= WIDTH / 2
    arc = ring & (yy <= cy)
    for ex in (cx - r, cx + r):
        arc |= np.hypot(yy - cy, xx - ex) <= WIDTH / 2
    return arc


def branched(shape=(96, 160), seed=0) -> np.ndarray:
    """An irregular, elongated cell with two side branches of unequal width and a
    wobbly outline (a hypha, a neurite-like cell)."""
    rng = np.random.default_rng(seed)
    cell = capsule(50, 80, 110, 0.1, 10, shape)
    cell |= capsule(30, 60, 40, -1.1, 7, shape)
    cell |= capsule(68, 105, 36, 1.0, 9, shape)
    wobble = ndi.gaussian_filter(rng.normal(size=shape), 3.0)
    outline = ndi.gaussian_filter(cell.astype(np.float32), 1.5) + 2.0 * wobble
    return ndi.binary_fill_holes(outline > 0.5) & ndi.binary_dilation(cell, iterations=3)


def labelled(*masks) -> np.ndarray:
    """An instance mask: each mask one id, the earlier ones keeping shared pixels."""
    out = np.zeros(masks[0].shape, np.uint16)
    for i, m in enumerate(masks, 1):
        out[m & (out == 0)] = i
    return out


def side_by_side() -> np.ndarray:
    """Two long rods lying against each other along their whole length."""
    return labelled(capsule(44, 80, 100), capsule(44 + WIDTH, 80, 100))


def end_to_end() -> np.ndarray:
    """Two rods in one line, tip against tip across their whole width: a dividing
    bacterium, the same outline as one long rod (only the contact line parts them)."""
    rod = capsule(48, 80, 110)
    left = rod & (_grid()[1] < 80)
    return labelled(left, rod & ~left)


def ideal_probabilities(mask: np.ndarray, seed: int = 0, noise: float = 0.08) -> np.ndarray:
    """``[background, object, boundary]`` probabilities a good network gives for
    ``mask``: object inside, boundary on the instances' boundaries (the contact lines
    included), background elsewhere, blurred and noisy so the maps are not exact."""
    rng = np.random.default_rng(seed)
    bnd = instance_boundaries(mask).astype(np.float32)
    obj = ((mask > 0) & (bnd == 0)).astype(np.float32)
    bg = (mask == 0).astype(np.float32)
    prob = np.stack([ndi.gaussian_filter(c, 0.8) for c in (bg, obj, bnd)], -1)
    prob = np.clip(prob + rng.normal(0, noise, prob.shape), 0, None) + 1e-3
    return (prob / prob.sum(-1, keepdims=True)).astype(np.float32)


def objects_over(labels: np.ndarray, truth: np.ndarray, i: int) -> list[int]:
    """The predicted ids that cover more than a tenth of true object ``i``."""
    ids, counts = np.unique(labels[truth == i], return_counts=True)
    return [int(k) for k, c in zip(ids, counts) if k and c > 0.1 * (truth == i).sum()]


# ---------------------------------------------------------------------- 1. representation
def test_the_contact_line_of_touching_rods_is_boundary_so_their_interiors_are_apart():
    for mask in (side_by_side(), end_to_end()):
        t = mask_targets(mask)
        assert t.shape == mask.shape + (3,) and (t.sum(-1) == 1).all()  # one class a pixel
        background, interior, boundary = (t[..., k] > 0 for k in range(3))
        assert np.array_equal(background, mask == 0)
        # where the two ids meet, both sides are boundary
        p = np.pad(mask, 1)
        contact = np.zeros(mask.shape, bool)
        for nb in (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
            contact |= (mask > 0) & (nb > 0) & (nb != mask)
        assert contact.sum() >= 8 and boundary[contact].all()
        # the object class alone is one piece per rod, each inside its own rod
        pieces, n = ndi.label(interior)
        assert n == 2
        for k in (1, 2):
            assert len(np.unique(mask[pieces == k])) == 1
        # and the two rods together are one foreground blob: only the boundary parts them
        assert ndi.label(mask > 0)[1] == 1


def test_long_bent_and_branched_cells_have_one_interior_each():
    for mask in (labelled(capsule(48, 80, 130)), labelled(banana()), labelled(branched())):
        assert ndi.label(mask_targets(mask)[..., 1])[1] == 1


# ---------------------------------------------------------------------- 2. post-processing
@pytest.mark.parametrize(
    "name, make",
    [
        ("long straight rod", lambda: labelled(capsule(48, 80, 140))),
        ("diagonal rod", lambda: labelled(capsule(48, 80, 100, 0.5))),
        ("banana", lambda: labelled(banana())),
        ("branched cell", lambda: labelled(branched())),
        ("two rods side by side", side_by_side),
        ("two rods end to end", end_to_end),
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_boundary_seeds_keep_each_shape_whole_and_touching_ones_apart(name, make, seed):
    truth = make()
    labels = instances_from_probabilities(ideal_probabilities(truth, seed), **BOUNDARY.to_dict())
    n_true = int(truth.max())
    assert int(labels.max()) == n_true, (name, int(labels.max()))
    for i in range(1, n_true + 1):
        assert len(objects_over(labels, truth, i)) == 1, (name, i)
    assert evaluate(labels, truth)["f1"] == 1.0, name


def disc(cy, cx, r, shape=(96, 160)) -> np.ndarray:
    yy, xx = _grid(shape)
    return np.hypot(yy - cy, xx - cx) <= r


def textured_nucleus(prob: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``prob`` with dark spots across object 1's middle (nucleoli, speckles): the network
    still calls them object but is unsure there, so the core has holes in a line."""
    out = prob.copy()
    (ys, xs) = np.nonzero(truth == 1)
    cy, cx = ys.mean(), xs.mean()
    for dy in range(-21, 22, 6):
        spot = disc(cy + dy, cx, 2.2, truth.shape)
        out[spot] = (0.05, 0.5, 0.45)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_a_textured_nucleus_is_not_cut_at_its_dark_spots(seed):
    """Holes in an object's core lie inside one object: they do not make it two. Next to
    it, two round nuclei touching through a neck are still parted."""
    truth = labelled(disc(48, 50, 28), disc(48, 111, 15), disc(48, 139, 15))
    prob = textured_nucleus(ideal_probabilities(truth, seed), truth)
    labels = instances_from_probabilities(prob, **PostprocessParams().to_dict())
    for i in (1, 2, 3):
        assert len(objects_over(labels, truth, i)) == 1, i
    assert evaluate(labels, truth)["f1"] == 1.0


def test_only_holes_inside_the_foreground_are_filled():
    """A core's hole is filled when the network calls it object (a dark spot of a
    nucleus), not when it is background (the lumen a ring of cells encloses: filled, it
    would make the ring one seed), nor when it reaches the image's side."""
    ring = disc(48, 80, 30) & ~disc(48, 80, 14)
    lumen = disc(48, 80, 14)
    filled = _fill_holes(ring, ring | lumen)
    assert np.array_equal(filled, ring | lumen)
    assert np.array_equal(_fill_holes(ring, ring), ring)
    part = ring | lumen
    part[48:52, 80:] = False  # the lumen opens to the side
    core = part & ~lumen
    assert np.array_equal(_fill_holes(core, part), core)


def crowded_rods(seed: int):
    """A crowded field of rods touching end to end and side by side, and its mask."""
    _, mask = synth_rods(192, seed=seed, contact=0.5)
    return mask


@pytest.mark.parametrize("seed", range(3))
def test_a_crowded_field_of_touching_rods_is_segmented_rod_by_rod(seed):
    truth = crowded_rods(seed)
    # crowded indeed: most rods touch another one
    touching = np.unique(truth[instance_boundaries(truth) & ~ndi.binary_dilation(truth == 0)])
    assert int(truth.max()) >= 25 and len(touching) > 0.5 * int(truth.max())
    labels = instances_from_probabilities(ideal_probabilities(truth, seed), **BOUNDARY.to_dict())
    scores = evaluate(labels, truth)
    assert scores["f1"] >= 0.9, scores


def test_the_search_keeps_rods_whole_without_anyone_choosing():
    """After training, the search picks the post-processing from the annotation; on rods
    it finds settings that keep them whole, and they hold on rods it never saw. (The
    default distance seeds score about 0.8 here: they cut long rods.)"""
    masks = [crowded_rods(10), crowded_rods(11)]
    probs = [ideal_probabilities(m, s) for s, m in enumerate(masks)]
    found = search_postprocessing(probs, masks, ["mask", "mask"], PostprocessParams())
    assert found.n_objects == sum(int(m.max()) for m in masks)
    assert found.f1 >= 0.9, found
    unseen = crowded_rods(12)
    labels = instances_from_probabilities(ideal_probabilities(unseen, 7), **found.params.to_dict())
    assert evaluate(labels, unseen)["f1"] >= 0.9
    for i in range(1, int(unseen.max()) + 1):
        assert len(objects_over(labels, unseen, i)) <= 1  # no rod cut in two


def wobbly_rod(seed: int, shape=(96, 200)) -> np.ndarray:
    """A rod 18 px wide with an uneven outline: a bacterium of 6 px enlarged 3x."""
    rng = np.random.default_rng(seed)
    rod = capsule(48, 100, 130, 0.1, 18, shape).astype(np.float32)
    rod = ndi.gaussian_filter(rod, 2) + 1.0 * ndi.gaussian_filter(rng.normal(size=shape), 2)
    pieces, _ = ndi.label(ndi.binary_fill_holes(rod > 0.5))
    return pieces == np.bincount(pieces.ravel())[1:].argmax() + 1


@pytest.mark.parametrize("seed", [1, 5])
def test_an_enlarged_rod_is_not_cut_where_the_network_sees_one_object(seed):
    prob = ideal_probabilities(wobbly_rod(seed).astype(np.uint16), seed)
    # the split a bundled model uses on an image enlarged 3x cuts the flat ridge
    assert instances_from_probabilities(prob, split=0.3).max() >= 4
    # the cuts its own split (0.8) would not make, with no boundary seen along them, go
    assert instances_from_probabilities(prob, split=0.3, join_split=0.8).max() == 1


def test_a_cut_is_undone_only_if_shallow_unseen_and_the_pieces_make_a_convex_whole():
    shape = (60, 120)
    rod = capsule(30, 60, 80, 0.0, 16, shape)
    halves = labelled(rod & (_grid(shape)[1] < 60), rod & (_grid(shape)[1] >= 60))
    flat = np.where(rod, 8.0, 0.0)  # the distance ridge of a rod: no saddle at all
    inside, none = np.where(rod, 0.95, 0.0), np.zeros(shape)
    assert join_unsupported(halves, flat, inside, none, depth=2.0).max() == 1
    # the network saw a boundary across the rod (a dividing bacterium): two
    seen = np.where(np.abs(_grid(shape)[1] - 59.5) < 2, 0.5, 0.0)
    assert join_unsupported(halves, flat, inside - seen, seen, depth=2.0).max() == 2
    # a saddle deeper than the depth the model's own split needs: two
    dip = flat - np.where(np.abs(_grid(shape)[1] - 59.5) < 4, 3.0, 0.0)
    assert join_unsupported(halves, dip, inside, none, depth=2.0).max() == 2
    # two rods meeting at a right angle, nothing seen between them: an L is no rod
    arm = capsule(30, 40, 40, 0.0, 12, shape) & (_grid(shape)[1] <= 60)
    leg = capsule(30, 60, 40, np.pi / 2, 12, shape) & ~arm
    ell = labelled(arm, leg)
    ell_flat = np.where(ell > 0, 6.0, 0.0)
    assert join_unsupported(ell, ell_flat, np.where(ell > 0, 0.95, 0.0), none, 2.0).max() == 2


def test_touching_rods_enlarged_stay_apart_where_the_network_sees_their_contact():
    for make in (side_by_side, end_to_end):
        truth = make()
        big = np.kron(truth, np.ones((2, 2), truth.dtype))  # the rods enlarged 2x
        prob = ideal_probabilities(big)
        cut = instances_from_probabilities(prob, split=0.3)
        labels = instances_from_probabilities(prob, split=0.3, join_split=0.8)
        assert labels.max() < cut.max(), make.__name__  # cuts along the rods were undone
        for i in range(1, int(labels.max()) + 1):  # never across the contact line
            rods, counts = np.unique(big[labels == i], return_counts=True)
            assert counts[rods > 0].max() >= 0.95 * (labels == i).sum(), make.__name__


def test_a_speck_goes_back_to_the_object_it_touches_most_or_away():
    shape = (96, 160)
    nuclei = [disc(30, 30, 14), disc(30, 80, 14), disc(70, 30, 14), disc(70, 80, 14)]
    # a sliver cut off nucleus 2's right side, also touching nucleus 5 at one corner
    sliver = disc(30, 80, 17) & ~disc(30, 80, 14) & (_grid(shape)[1] > 93)
    truth = labelled(*nuclei, disc(30, 111, 14), sliver, disc(75, 140, 2), disc(75, 115, 7))
    area = np.bincount(truth.ravel())
    median = np.median(area[1:])
    assert area[6] < SPECK_SHARE * median and area[7] < SPECK_SHARE * median  # specks
    assert area[8] > SPECK_SHARE * median  # a small object, a quarter of the others' width
    out = absorb_specks(truth, SPECK_SHARE)
    assert (out[truth == 6] == 2).all()  # the sliver goes back to the nucleus it shares most with
    assert (out[truth == 7] == 0).all()  # a speck touching nothing is dropped
    for i in (1, 2, 3, 4, 5, 8):
        assert (out[truth == i] == i).all()
    # without a share, or with fewer than two objects to take a median of, nothing moves
    assert absorb_specks(truth, 0.0) is truth
    assert (absorb_specks(labelled(disc(30, 30, 14), disc(75, 140, 2)), 0.5) > 0).sum() > 0


def test_a_volume_takes_its_specks_by_volume():
    zz, yy, xx = np.mgrid[:24, :48, :80].astype(np.float32)
    ball = lambda z, y, x, r: (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r  # noqa: E731
    cap = ball(12, 24, 20, 12) & ~ball(12, 24, 20, 10) & (xx > 29)  # a cap cut off a nucleus
    nuclei = [ball(12, 24, 20, 10), ball(12, 24, 56, 10), ball(12, 38, 40, 10)]
    truth = labelled(*nuclei, ball(12, 10, 40, 6), cap)
    vol = np.bincount(truth.ravel())
    assert vol[5] < SPECK_SHARE * np.median(vol[1:]) < vol[4]
    out = absorb_specks(truth, SPECK_SHARE)
    assert (out[truth == 5] == 1).all()  # the cap goes back to its nucleus, through z too
    for i in (1, 2, 3, 4):
        assert (out[truth == i] == i).all()


def test_the_post_processing_takes_its_specks_only_when_asked():
    truth = labelled(disc(30, 30, 14), disc(30, 80, 14), disc(70, 30, 14), disc(75, 120, 3))
    prob = ideal_probabilities(truth, 0)
    assert instances_from_probabilities(prob).max() == 4  # the speck is an object
    assert instances_from_probabilities(prob, min_share=SPECK_SHARE).max() == 3
    with pytest.raises(Exception, match="min share"):
        PostprocessParams(min_share=1.5)


# ---------------------------------------------------------------------- 3. real learning
@pytest.mark.learned
def test_a_tiny_unet_trained_on_touching_rods_predicts_whole_rods(margin):
    """A tiny network trained 400 steps on one image of crowded, touching rods segments
    another one rod by rod, with the post-processing its training chose by itself.

    Measured (scripts/learned_margins.py, seed offsets 0–5 with oneDNN, 0–1 without):
    F1 0.974–1.0, at most 1 rod of 40 cut in two."""
    from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig

    img, mask = synth_rods(192, seed=seeded(20), contact=0.5)
    test_img, truth = synth_rods(192, seed=seeded(120), contact=0.5)
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=seeded(0))
    cfg = TrainConfig(epochs=25, steps_per_epoch=16, patch_size=64, batch_size=4, seed=seeded(0))
    net.train([TrainingPair(img, mask=mask)], cfg)
    labels = net.predict(test_img, diameter=0).labels  # the rods at the trained scale
    scores = evaluate(labels, truth)
    margin("f1", scores["f1"], 0.85, scores)
    n = int(truth.max())
    cut = sum(len(objects_over(labels, truth, i)) >= 2 for i in range(1, n + 1))
    margin("share of rods not cut in two", 1 - cut / n, 0.9, (cut, n))
