"""Adapting to the user's objects: size, shape, the post-processing search, weighted
corrections, and a training loop that answers at once (issue 8)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from helpers import ROOT, make_blobs

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, evaluate
from napari_unet.core.network.model_file import BUNDLED_MODELS
from napari_unet.core.prediction.instances import (
    PostprocessParams,
    annotated_f1,
    annotated_objects,
    instances_from_probabilities,
    search_postprocessing,
)
from napari_unet.core.prediction.object_size import (
    annotated_diameter,
    clip_scale,
    estimate_scale,
    object_diameter,
)
from napari_unet.core.training.targets import WEIGHT_UNIT, mask_targets

sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_rods import synth_rods  # noqa: E402

TINY = UNetConfig(depth=2, base_filters=8)


def ideal_scores(mask: np.ndarray) -> np.ndarray:
    """The probabilities a perfect network would give: background, interior, boundary."""
    from scipy import ndimage as ndi

    t = mask_targets(mask).astype(np.float32)
    return ndi.gaussian_filter(t, (0.7, 0.7, 0))


def touching_rods():
    _, mask = synth_rods(192, seed=3)
    return mask


def test_boundary_seeds_keep_touching_rods_whole_where_distance_seeds_cut_them():
    mask = touching_rods()
    assert mask.max() >= 15
    s = ideal_scores(mask)
    by_boundary = instances_from_probabilities(s, seed_mode="boundary")
    by_distance = instances_from_probabilities(s, seed_mode="distance", split=0.3)
    f1_boundary = evaluate(by_boundary, mask)["f1"]
    f1_distance = evaluate(by_distance, mask)["f1"]
    assert f1_boundary >= 0.9
    assert f1_boundary > f1_distance + 0.1  # round-object seeds cut rods into pieces


def test_round_touching_nuclei_stay_separated_by_both_seed_modes():
    _, mask = make_blobs(160, 30, seed=7, radius=(6, 11))
    s = ideal_scores(mask)
    for mode in ("distance", "boundary"):
        assert evaluate(instances_from_probabilities(s, seed_mode=mode), mask)["f1"] >= 0.9


def test_search_picks_the_setting_that_suits_the_objects_and_keeps_a_good_base():
    rods = touching_rods()
    found = search_postprocessing([ideal_scores(rods)], [rods], ["mask"])
    assert found.params.seed_mode == "boundary"
    assert found.f1 >= 0.9 and found.f1 > found.base_f1
    assert found.n_objects == rods.max()
    # a setting that is already right is kept (ties keep the base)
    again = search_postprocessing([ideal_scores(rods)], [rods], ["mask"], base=found.params)
    assert again.params == found.params


def test_annotated_f1_judges_scribbles_by_their_pixels_only():
    truth = np.zeros((40, 80), np.int32)
    truth[5:35, 5:35] = 1
    truth[5:35, 45:75] = 2
    ann = np.zeros(truth.shape, np.uint8)
    ann[18:22, 10:30] = 2  # one stroke per object
    ann[18:22, 50:70] = 2
    ann[0:2, :] = 1  # a background stroke
    objects, known = annotated_objects(ann, "annotation")
    assert objects.max() == 2 and known.sum() == (ann > 0).sum()
    assert annotated_f1(truth, objects, known) == (2, 2, 2)  # both right
    merged = (truth > 0).astype(np.int32)
    merged[5:35, 35:45] = 1
    assert annotated_f1(merged, objects, known)[0] == 0  # one instance over two strokes
    split = truth.copy()
    split[5:35, 20:35] = 3  # the first object cut in half through its stroke
    assert annotated_f1(split, objects, known)[0] == 1


def test_object_diameter_measures_width_for_discs_and_rods():
    yy, xx = np.mgrid[:200, :200]
    disc = (yy - 100) ** 2 + (xx - 100) ** 2 <= 20**2
    assert object_diameter(disc) == pytest.approx(40, abs=2)
    rod = (abs(yy - 100) <= 4) & (abs(xx - 100) <= 60)
    assert object_diameter(rod) == pytest.approx(9, abs=2)
    assert object_diameter(np.zeros((10, 10), bool)) is None


def test_annotated_diameter_reads_objects_painted_whole_not_strokes():
    from napari_unet.core.training.targets import mask_to_annotation

    mask = touching_rods()  # rods 8 px wide, many touching
    ann = mask_to_annotation(mask)  # copied or corrected: whole objects
    assert annotated_diameter(ann) == pytest.approx(8, abs=2)
    strokes = np.zeros(mask.shape, np.uint8)
    for i in range(1, mask.max() + 1):  # a 2-px stroke through each rod, nothing around
        ys, xs = np.nonzero(mask == i)
        strokes[ys[len(ys) // 2], xs.min() : xs.max()] = 2
    strokes[:3] = 1
    assert annotated_diameter(strokes) is None  # a stroke's width says nothing
    few = np.where(np.isin(mask, [1, 2]), 2, 1).astype(np.uint8)
    assert annotated_diameter(few) is None  # two objects are too few to go by
    assert annotated_diameter(np.stack([ann, strokes])) == pytest.approx(8, abs=2)


def packed_cells(side: int = 240, cell: int = 30) -> np.ndarray:
    """Square cells that tile the whole field, as a membrane stain paints them."""
    yy, xx = np.mgrid[:side, :side]
    return ((yy // cell) * (side // cell) + xx // cell + 1).astype(np.int32)


def test_the_interior_measure_reads_packed_cells_one_by_one():
    """Cells that tile the field merge into one region wide as the image for the
    foreground measure; the interior measure (each cell less its rim, the boundary class,
    then widened by the rim again) reads one cell's width, in a mask and in the
    network's own output, and reads separate objects as the foreground measure does."""
    from napari_unet.core.prediction.object_size import (
        mask_diameter,
        measured_region,
        region_width,
    )

    mask = packed_cells()  # 30 px cells
    assert mask_diameter(mask) > 200
    assert mask_diameter(mask, "interior") == pytest.approx(30, abs=2)
    assert mask_diameter(np.stack([mask, mask]), "interior") == pytest.approx(30, abs=2)
    _, nuclei = make_blobs(192, 8, seed=1, radius=(11, 13))  # apart from each other
    assert mask_diameter(nuclei, "interior") == pytest.approx(mask_diameter(nuclei), abs=1.5)
    scores = ideal_scores(mask)
    assert region_width(measured_region(scores, 0.5, None), None) > 200
    interior = measured_region(scores, 0.5, "interior")
    assert object_diameter(interior) == pytest.approx(28, abs=2)  # inside the rims
    assert region_width(interior, "interior") == pytest.approx(30, abs=2)


def test_a_model_that_measures_interiors_sizes_packed_cells_by_one_cell():
    """Training, calibration and the size estimate all read a model's width measure:
    packed cells are brought to the scale where one cell is the model's size."""
    from napari_unet.core.prediction.object_size import resize_to, scaled_shape
    from napari_unet.core.training.calibration import calibrate_diameter
    from napari_unet.core.training.run import to_model_scale
    from napari_unet.core.training.samples import planes_of

    mask = packed_cells(256, 32)  # 32 px cells
    img = (mask % 2 + 1).astype(np.float32)

    def scores_at(factor, crop):
        m = mask[crop]
        return ideal_scores(resize_to(m, scaled_shape(m.shape, factor), labels=True))

    found = {}
    factor, d = estimate_scale(scores_at, mask.shape, 16.0, found=found, measure="interior")
    assert factor == pytest.approx(0.5, rel=0.2) and found == {"size": "measured"}
    assert d == pytest.approx(32, rel=0.2)
    factor, _ = estimate_scale(scores_at, mask.shape, 16.0)  # the field as one object
    assert factor < 0.3

    net = UNet.new(TINY, seed=0)
    net.metadata.width_measure = "interior"
    net.metadata.object_diameter = 16.0
    planes = planes_of([TrainingPair(img, mask=mask)], 1)
    factors = []
    scaled, diameters = to_model_scale(net, planes, TrainConfig(), factors)
    assert diameters == [pytest.approx(32, abs=2)] and factors == [pytest.approx(0.5, rel=0.1)]
    assert scaled[0].image.shape[0] == pytest.approx(128, abs=4)
    net.metadata.object_diameter = None
    calibrate_diameter(net, [ideal_scores(mask)], planes, [32.0])
    assert net.object_diameter == pytest.approx(32, abs=3)


def strokes_in(mask: np.ndarray, ids) -> np.ndarray:
    """Scribbles: a short stroke across the middle of each object in ``ids``, and
    background painted along a stretch of the image's top row (no object whole)."""
    ann = np.zeros(mask.shape, np.uint8)
    for i in ids:
        ys, xs = np.nonzero(mask == i)
        y, x = int(ys.mean()), int(xs.mean())
        ann[y - 1 : y + 1, x - 6 : x + 6] = 2
    ann[0, :40] = 1
    return ann


def test_the_strokes_spacing_bounds_how_wide_scribbled_objects_can_be():
    from napari_unet.core.prediction.object_size import (
        MIN_STROKES,
        STROKE_SPACING,
        stroke_floor,
        stroke_spacing,
    )

    mask = packed_cells(256, 32)  # 8 × 8 cells, 32 px
    every = strokes_in(mask, range(1, 65))
    assert stroke_spacing(every) == pytest.approx(32, abs=1)
    assert stroke_floor(every, 16.0) == pytest.approx(STROKE_SPACING * 16 / 32, rel=0.05)
    # strokes in every other cell of every other row: further apart, a looser bound
    some = strokes_in(mask, [i for i in range(1, 65) if (i - 1) % 2 == 0 and (i - 1) // 8 % 2 == 0])
    assert stroke_spacing(some) == pytest.approx(64, abs=1)
    few = strokes_in(mask, range(1, MIN_STROKES))
    assert stroke_spacing(few) is None and stroke_floor(few, 16.0) is None
    assert stroke_spacing(np.zeros((64, 64), np.uint8)) is None
    assert stroke_spacing(np.stack([every, few, some])) == pytest.approx(48, abs=1)


def test_scribbles_are_learned_no_smaller_than_their_strokes_spacing_allows(monkeypatch):
    """A network that reads a packed field as one huge object would shrink the
    scribbled image until its cells vanish; the strokes, one per cell, say the cells are
    no wider than about their spacing, and the image is brought no lower than that."""
    from napari_unet.core.prediction.object_size import STROKE_SPACING
    from napari_unet.core.prediction.predictor import Predictor
    from napari_unet.core.training.run import to_model_scale
    from napari_unet.core.training.samples import planes_of

    mask = packed_cells(256, 32)
    img = (mask % 2 + 1).astype(np.float32)
    ann = strokes_in(mask, range(1, 65))
    net = UNet.new(TINY, seed=0)
    net.metadata.object_diameter = 16.0
    floor = STROKE_SPACING * 16 / 32
    planes = planes_of([TrainingPair(img, annotation=ann)], 1)
    for estimate, expected in ((0.15, floor), (0.3, floor), (1.5, 1.5)):
        monkeypatch.setattr(Predictor, "estimate_scale", lambda *a, e=estimate, **k: (e, 16 / e))
        factors = []
        scaled, diameters = to_model_scale(net, planes, TrainConfig(), factors)
        assert diameters == [None]  # no object painted whole: no width measured
        assert factors == [pytest.approx(expected, rel=0.05)]
        assert scaled[0].image.shape[0] == pytest.approx(256 * expected, abs=2)
    # too few strokes to say anything: the estimate stands
    monkeypatch.setattr(Predictor, "estimate_scale", lambda *a, **k: (0.15, 100.0))
    few = planes_of([TrainingPair(img, annotation=strokes_in(mask, range(1, 5)))], 1)
    factors = []
    to_model_scale(net, few, TrainConfig(), factors)
    assert factors == [pytest.approx(0.15)]


def test_training_on_a_few_painted_rods_brings_them_to_the_model_width():
    from scipy import ndimage as ndi

    from napari_unet.core.training.calibration import calibrate_diameter
    from napari_unet.core.training.run import to_model_scale
    from napari_unet.core.training.samples import planes_of

    mask = touching_rods()
    img = (mask > 0).astype(np.float32)
    ann = np.zeros(mask.shape, np.uint8)
    for i in range(1, 6):  # five rods corrected, each with a background ring
        grown = ndi.binary_dilation(mask == i, iterations=2) & (mask == 0)
        ann[grown] = 1
        ann[mask == i] = 2
    net = UNet.new(TINY, seed=0)
    net.metadata.object_diameter = 16.0
    planes = planes_of([TrainingPair(img, annotation=ann)], 1)
    factors = []
    scaled, diameters = to_model_scale(net, planes, TrainConfig(), factors)
    assert diameters[0] == pytest.approx(8, abs=2)
    assert factors == [pytest.approx(2, rel=0.3)]  # kept as the model's taught_scale
    assert scaled[0].image.shape[0] == pytest.approx(2 * img.shape[0], rel=0.3)
    # after training, the width is measured on what the network calls the painted
    # objects, not on specks it scatters over the unpainted rest of the image
    painted = scaled[0]
    a = np.asarray(painted.annotation)
    fg = a >= 2
    specks = np.zeros(fg.shape, bool)
    specks[4::9, 4::9] = True
    specks = ndi.binary_dilation(specks, iterations=2) & (a == 0)
    p_fg = (fg | specks).astype(np.float32)
    assert object_diameter(p_fg > 0) < 8  # the whole plane would say "5 px"
    scores = np.stack([1 - p_fg, p_fg, 0 * p_fg], -1)
    calibrate_diameter(net, [scores], [painted], [8.0])
    assert net.object_diameter == pytest.approx(16, rel=0.3)


def test_estimate_scale_converges_to_the_model_scale():
    from napari_unet.core.prediction.object_size import rescale_image

    _, mask = make_blobs(256, 12, seed=2, radius=(14, 16))  # ~30 px wide objects

    def scores_at(factor, crop):
        m = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
        fg = (m > 0.5).astype(np.float32)
        return np.stack([1 - fg, fg, 0 * fg], -1)

    factor, diameter = estimate_scale(scores_at, mask.shape, model_diameter=15.0)
    assert diameter == pytest.approx(30, rel=0.2)
    assert factor == pytest.approx(0.5, rel=0.2)
    assert clip_scale(1.05) == 1.0 and clip_scale(100) == 4.0


def test_estimate_scale_sees_through_blobs_of_small_crowded_objects():
    """A network that cannot resolve objects under 6 px merges a crowd of them into blobs
    of its own size at every coarse scale (as the generalist does with small nuclei):
    such a look is not confirmed by the next finer one (its width in the image halves),
    so the estimate goes on to the scale where the objects themselves are seen."""
    from scipy import ndimage as ndi

    from napari_unet.core.prediction.object_size import rescale_image

    model_d = 24.0
    _, mask = make_blobs(384, 400, seed=3, radius=(4.5, 5.5))  # ~10 px wide, crowded
    assert object_diameter(mask > 0) < 13

    def scores_at(factor, crop):
        m = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0] > 0.5
        if 10 * factor < 6:  # unresolved: blobs of the model's own size where objects are
            grid = np.zeros(m.shape, bool)
            grid[:: int(model_d * 1.5), :: int(model_d * 1.5)] = True
            m = ndi.binary_dilation(grid, iterations=int(model_d / 2)) & ndi.binary_dilation(
                m, iterations=int(model_d)
            )
        fg = m.astype(np.float32)
        return np.stack([1 - fg, fg, 0 * fg], -1)

    found = {}
    factor, diameter = estimate_scale(scores_at, mask.shape, model_d, found=found)
    assert diameter == pytest.approx(10, rel=0.25)
    assert factor == pytest.approx(2.4, rel=0.25)
    assert found == {"size": "measured"}


def test_estimate_scale_does_not_trust_blobs_the_network_is_unsure_of():
    """A field of small objects (bright rods) seen at coarse scales merges into blobs of
    the model's size whose width in the image stays the same from one coarse look to
    the next, so they confirm each other; but the network is unsure of them. A sure look
    at the objects themselves wins; blobs it is sure of still win (large objects, which
    finer looks would cut into pieces)."""
    from scipy import ndimage as ndi

    from napari_unet.core.prediction.object_size import rescale_image

    model_d = 24.0
    _, mask = make_blobs(384, 400, seed=3, radius=(4.5, 5.5))  # ~10 px wide, crowded
    centres = np.ones(mask.shape, bool)  # blobs 48 px wide in the image, at every coarse look
    centres[24::64, 24::64] = False
    field = ndi.distance_transform_edt(centres) < 24

    def scorer(blob_interior):
        def scores_at(factor, crop):
            coarse = factor <= 0.5
            src = field if coarse else mask > 0
            m = rescale_image(src[crop].astype(np.float32)[..., None], factor)[..., 0] > 0.5
            inside = m * (blob_interior if coarse else 0.98)
            return np.stack([1.0 - m, inside, m - inside], -1).astype(np.float32)

        return scores_at

    found = {}
    factor, diameter = estimate_scale(scorer(0.6), mask.shape, model_d, found=found)
    assert diameter == pytest.approx(10, rel=0.25)
    assert factor == pytest.approx(2.4, rel=0.25)
    assert found == {"size": "measured"}
    factor, diameter = estimate_scale(scorer(0.98), mask.shape, model_d)
    assert diameter == pytest.approx(48, rel=0.2) and factor == pytest.approx(0.5, rel=0.2)


def test_a_finer_look_that_sees_pieces_of_the_models_size_gives_way_to_the_coarser_one():
    """Large nuclei (46 px) before a model of 31 px: no two looks agree on their width
    in the image, since the finest look cuts them into pieces of the model's own size
    (their width at the model's scale stays the same while it halves in the image); the
    coarser look that is sure of them wins. Small objects merged into blobs at a coarse
    look keep the finest look: there the objects are smaller than the model's size."""
    from napari_unet.core.prediction.object_size import choose_look

    model_d = 31.0
    pieces = [(0.25, 88.0), (0.5, 57.4), (1.0, 43.2), (2.0, 22.9)]  # a development image's
    assert choose_look(pieces, model_d, [False, True, True, True]) == (1.0, 43.2)
    # the coarser look unsure of its objects: the finest stays
    assert choose_look(pieces, model_d, [False, True, False, True]) == (2.0, 22.9)
    blobs = [(0.5, 60.0), (1.0, 22.0), (2.0, 12.0)]  # crowded 12 px objects
    assert choose_look(blobs, model_d, [True, True, True]) == (2.0, 12.0)


def test_a_shrunk_image_is_seen_at_its_masks_width_where_the_network_is_as_sure():
    """Nuclei 60 px wide before a model that reads 31 px and whose masks measured 25:
    shrunk to the width it reads (about 0.5), and further, to its masks' width (0.8 of
    that), where the network is at least as sure of the objects there (large textured
    nuclei, cut less); where it is less sure (thin outlines fading), the scale stays. A
    model whose masks measure what it reads (or that does not record them) is unchanged."""
    from napari_unet.core.prediction.object_size import WHOLE, rescale_image

    model_d, mask_d = 31.0, 24.8
    _, mask = make_blobs(512, 30, seed=4, radius=(28, 32))
    seen = []

    def scorer(sure_below: float):
        def scores_at(factor, crop):
            seen.append((factor, crop == WHOLE))
            m = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
            m = (m > 0.5).astype(np.float32)
            # the whole image seen below 0.45: as sure as at its width, or less sure
            sure = 0.98 if not (crop == WHOLE and factor < 0.45) else sure_below
            return np.stack([1 - m, m * sure, m * (1 - sure)], -1).astype(np.float32)

        return scores_at

    factor, diameter = estimate_scale(scorer(0.98), mask.shape, model_d, mask_diameter=mask_d)
    shrunk = factor / (mask_d / model_d)
    assert 0.42 < shrunk < 0.6 and factor == pytest.approx(shrunk * mask_d / model_d)
    assert diameter == pytest.approx(60, rel=0.15)  # the width measured stays the objects'
    assert (factor, True) in seen  # decided on the whole image at both scales
    less, _ = estimate_scale(scorer(0.7), mask.shape, model_d, mask_diameter=mask_d)
    assert less == pytest.approx(shrunk)
    assert estimate_scale(scorer(0.98), mask.shape, model_d)[0] == pytest.approx(shrunk)
    same = estimate_scale(scorer(0.98), mask.shape, model_d, mask_diameter=model_d)[0]
    assert same == pytest.approx(shrunk)


def test_an_enlarged_image_is_not_seen_again_for_a_small_correction():
    """The whole image seen at the chosen scale (the prediction's own pass) may call for a
    slightly different scale: a shrunk image (cheap passes) takes a 5% correction, and is
    seen again; an enlarged one (each pass costs the square of the scale) keeps its scale
    unless more than 10% off."""
    from napari_unet.core.prediction.object_size import WHOLE

    def discs(shape, d):  # discs d px wide, 2d apart
        yy, xx = np.mgrid[: shape[0], : shape[1]] % int(2 * d + 2)
        fg = np.hypot(yy - d, xx - d) < d / 2
        return np.stack([1.0 - fg, fg, 0 * fg], -1).astype(np.float32)

    def scores_at_width(width):
        def scores_at(factor, crop):
            h, w = (1024, 1024) if crop == WHOLE else (256, 256)
            wider = 1.05 if crop == WHOLE else 1.0  # the whole image reads objects 5% wider
            return discs((int(h * factor), int(w * factor)), width * factor * wider)

        return scores_at

    enlarged, _ = estimate_scale(scores_at_width(8.0), (1024, 1024), 24.0)
    shrunk, _ = estimate_scale(scores_at_width(80.0), (1024, 1024), 24.0)
    assert enlarged == pytest.approx(3.0, rel=0.02)  # kept: the pass made is the prediction
    assert shrunk == pytest.approx(0.3 / 1.05, rel=0.02)  # corrected: seen once more


def test_a_fine_tuned_model_looks_at_the_scale_it_was_taught_first():
    """After training on the user's images, new images of the same experiment are seen
    at the scale the training used: one look settles the estimate when the objects are
    near the model's size there, else (another zoom) the usual looks decide."""
    from napari_unet.core.prediction.object_size import rescale_image

    _, mask = make_blobs(256, 12, seed=2, radius=(14, 16))  # ~30 px wide objects
    looks = []

    def scores_at(factor, crop, mask=mask):
        looks.append(factor)
        m = rescale_image((mask[crop] > 0).astype(np.float32)[..., None], factor)[..., 0]
        fg = (m > 0.5).astype(np.float32)
        return np.stack([1 - fg, fg, 0 * fg], -1)

    found = {}
    factor, diameter = estimate_scale(scores_at, mask.shape, 20.0, prior=0.66, found=found)
    assert factor == pytest.approx(0.66, rel=0.1) and found == {"size": "measured"}
    assert looks == [0.66]
    looks.clear()
    # objects a little wide at the taught scale (a crowded field, a dim plane): the
    # scale of the user's experiment is kept as it is
    factor, _ = estimate_scale(scores_at, mask.shape, 20.0, prior=0.9, found=found)
    assert factor == 0.9 and looks == [0.9] and found == {"size": "measured"}
    looks.clear()
    factor, _ = estimate_scale(scores_at, mask.shape, 20.0, prior=2.0)  # another zoom
    assert factor == pytest.approx(0.66, rel=0.2) and len(looks) > 1
    looks.clear()
    # one large cell per image, taught at a coarse scale where the image is less than two
    # of the model's widths across: the taught scale still settles it (the walk's looks
    # need room for two, and would see the cell's texture at a finer scale instead)
    yy, xx = np.mgrid[:256, :256]
    cell = np.hypot(yy - 128, xx - 128) < 70  # 140 px wide
    factor, _ = estimate_scale(
        lambda f, crop: scores_at(f, crop, cell), cell.shape, 42.0, prior=0.3, found=found
    )
    assert factor == 0.3 and looks == [0.3] and found == {"size": "measured"}
    # a fine-tuned model that reads packed cells as one wide region (its own width 300 px
    # at its scale, measured on the whole plane it learned from): the centre crop of a
    # look at ×2 (256 px) cannot hold that, so the whole image is seen there, the pass
    # the prediction reuses; before, no look fitted and no size was found
    from napari_unet.core.prediction.object_size import WHOLE

    crops = []
    wide = np.hypot(yy - 128, xx - 128) < 75  # 150 px, 300 at ×2
    factor, _ = estimate_scale(
        lambda f, crop: crops.append(crop) or scores_at(f, crop, wide),
        wide.shape,
        300.0,
        prior=2.0,
        found=found,
    )
    assert factor == 2.0 and crops == [WHOLE] and found == {"size": "measured"}
    # training records the scale it brought the user's images to
    img, m = make_blobs(128, 10, seed=4, radius=(9, 11))  # ~20 px wide
    net = UNet.new(TINY, seed=0)
    net.metadata.object_diameter = 10.0
    net.train([TrainingPair(img, mask=m)], TrainConfig(epochs=1, steps_per_epoch=2, patch_size=64))
    assert net.metadata.taught_scale == pytest.approx(0.5, rel=0.2)
    # and the width its masks had there, which the next training brings masks to
    assert net.metadata.mask_diameter == pytest.approx(10, rel=0.05)
    # a Stop after some steps keeps the scale too: the weights learned the objects there
    stopped = UNet.new(TINY, seed=0)
    stopped.metadata.object_diameter = 10.0
    stop = threading.Event()
    result = stopped.train(
        [TrainingPair(img, mask=m)],
        TrainConfig(epochs=2, steps_per_epoch=4, patch_size=64),
        stop_event=stop,
        progress=lambda p: stop.set() if p.kind == "batch" else None,
    )
    assert result.stopped_by == "stop_event" and 0 < result.steps_run < 8
    assert stopped.metadata.taught_scale == net.metadata.taught_scale


def test_a_mask_is_brought_to_the_models_mask_width_and_a_given_diameter_to_its_own(tmp_path):
    """A network measures its regions a little wider than their masks (the generalist
    1.26×): a width measured on a mask is brought to the model's ``mask_diameter``, a
    diameter the user gives as prediction takes it (``given_scale``: one that shrinks the
    image 2× or more to the ``mask_diameter``, one that enlarges it to the
    ``object_diameter``), and a model that records no mask width uses its
    ``object_diameter`` for both."""
    from napari_unet.core.prediction.object_size import mask_diameter
    from napari_unet.core.training.calibration import calibrate_diameter
    from napari_unet.core.training.run import to_model_scale
    from napari_unet.core.training.samples import planes_of

    img, mask = make_blobs(192, 10, seed=3, radius=(15, 17))
    d = mask_diameter(mask)
    assert d == pytest.approx(32, abs=3)
    net = UNet.new(TINY, seed=0)
    net.metadata.object_diameter = 20.0

    def factor_of(pair):
        factors = []
        to_model_scale(net, planes_of([pair], 1), TrainConfig(), factors)
        return factors[0]

    assert net.mask_diameter == 20.0  # none recorded: the network's own width
    assert factor_of(TrainingPair(img, mask=mask)) == pytest.approx(20 / d, rel=0.01)
    net.metadata.mask_diameter = 16.0
    assert net.mask_diameter == 16.0
    assert factor_of(TrainingPair(img, mask=mask)) == pytest.approx(16 / d, rel=0.01)
    assert factor_of(TrainingPair(img, mask=mask, diameter=40.0)) == pytest.approx(0.4)
    assert factor_of(TrainingPair(img, mask=mask, diameter=8.0)) == pytest.approx(2.5)
    # calibration keeps both widths, and a file keeps them
    planes = planes_of([TrainingPair(img, mask=mask)], 1)
    calibrate_diameter(net, [ideal_scores(mask)], planes, [d], [16.2])
    assert net.object_diameter == pytest.approx(d, abs=3)
    assert net.metadata.mask_diameter == 16.2
    net.save(tmp_path / "m.keras")
    assert UNet.load(tmp_path / "m.keras").mask_diameter == 16.2
    net.metadata.mask_diameter = None
    calibrate_diameter(net, [ideal_scores(mask)], planes, [d])  # no mask width: kept
    assert net.metadata.mask_diameter is None and net.mask_diameter == net.object_diameter


def test_default_model_measures_zoomed_nuclei_and_segments_them_at_its_scale(sample_image):
    from skimage.transform import rescale

    net = UNet.bundled("nuclei")
    assert net.object_diameter and 15 < net.object_diameter < 30
    crop = sample_image[:256, :256].astype(np.float32)
    one = net.predict(crop)
    two = net.predict(rescale(crop, 2.0, order=1, preserve_range=True))
    assert one.scale == 1.0  # the sample is at the model's scale
    assert two.scale == pytest.approx(0.5, rel=0.25)
    assert two.diameter == pytest.approx(2 * one.diameter, rel=0.25)
    assert two.labels.shape == (512, 512)
    # about the same nuclei found at both zooms
    n1, n2 = one.labels.max(), two.labels.max()
    assert abs(int(n1) - int(n2)) <= max(3, 0.15 * n1)
    fixed = net.predict(crop, diameter=net.object_diameter / 2)  # "objects are half as wide"
    assert fixed.scale == pytest.approx(2.0)


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_a_bundled_model_measures_each_image_rather_than_assuming_a_scale(name):
    # a taught scale is a fine-tuned model's users' zoom, looked at first; a bundled
    # model learned many sizes and must measure every image it is shown
    net = UNet.bundled(name)
    assert net.metadata.taught_scale is None
    assert net.object_diameter and net.object_diameter > 10
    if name == "generalist":  # its masks' width, which fine-tuning brings masks to
        assert 0.7 * net.object_diameter < net.metadata.mask_diameter < net.object_diameter
    # the generalist reads a stained slide as its haematoxylin; the old nuclei model as it
    # learned colours, their mean
    assert net.metadata.reads_stains == (name == "generalist")


def two_overlapping_discs(size=128, radii=(20, 17), apart=30, seen=True) -> np.ndarray:
    """Probabilities ``[bg, object, boundary]`` of one blob shaped as two discs whose
    centres are ``apart`` px apart: a neck the distance transform dips at (discs of two
    sizes: two equal peaks would both be maxima at any depth). ``seen``: the network
    hesitates across the neck (a band of boundary probability 0.25 there, the object
    still confident enough to be one core), as it does where two objects touch."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    blob = ((yy - c) ** 2 + (xx - c + apart / 2) ** 2 < radii[0] ** 2) | (
        (yy - c) ** 2 + (xx - c - apart / 2) ** 2 < radii[1] ** 2
    )
    prob = np.where(blob[..., None], [0.02, 0.95, 0.03], [0.98, 0.01, 0.01])
    if seen:  # the chord where the two circles meet is at x = c + 1.85
        band = blob & (np.abs(xx - (c + 2)) <= 5)
        prob[band] = [0.03, 0.72, 0.25]
    return prob.astype(np.float32)


def test_a_bundled_model_splits_readily_only_where_the_image_was_enlarged():
    from napari_unet.core.prediction.instances import (
        SPECK_SHARE,
        SPLIT_ENLARGED,
        SPLIT_ENLARGED_TO,
        split_at,
    )

    assert split_at(0.8, 1.0) == split_at(0.8, 0.25) == 0.8  # objects seen at their size
    assert split_at(0.8, SPLIT_ENLARGED) == split_at(0.8, 5.0) == SPLIT_ENLARGED_TO
    assert SPLIT_ENLARGED_TO < split_at(0.8, 2.0) < 0.8
    assert split_at(0.2, 4.0) == 0.2  # a model that splits more already keeps its own
    prob = two_overlapping_discs()
    net = UNet.new(TINY, seed=0)  # settings of a model that learned many sizes
    net.metadata.postprocessing = {**PostprocessParams().to_dict(), "split": 0.8}
    assert net.metadata.taught_scale is None
    predictor = net.predictor()
    # a neck in an image seen at its own size (a large textured object): one object
    assert predictor.instances(prob, factor=1.0).max() == 1
    # the same neck where the image was enlarged 3x (small objects touching): two
    assert predictor.instances(prob, factor=3.0).max() == 2
    # ... and the cuts split 0.8 would not make are kept only where the network sees
    # them (instances.join_unsupported; a neck this deep is kept either way)
    assert predictor.params_at(3.0).join_split == 0.8
    assert predictor.params_at(1.0).min_share == predictor.params_at(3.0).min_share > 0
    assert predictor.instances(two_overlapping_discs(seen=False), factor=3.0).max() == 2
    # a fine-tuned model keeps the split searched at its user's scale
    net.metadata.taught_scale = 3.0
    assert net.predictor().instances(prob, factor=3.0).max() == 1
    assert net.predictor().params_at(3.0).join_split is None
    assert net.predictor().params_at(3.0).min_share == SPECK_SHARE  # specks: any model
    net.metadata.postprocessing = {**net.metadata.postprocessing, "min_share": 0.0}
    assert net.predictor().params_at(3.0).min_share == 0.0  # unless its settings say
    # and a volume keeps the model's own split
    assert predictor.instances(np.stack([prob] * 3), factor=3.0).max() == 1


def test_weighted_targets_painted_pixels_count_more_and_pseudo_labels_fill_gaps():
    from napari_unet.core.training.samples import weighted_target
    from napari_unet.core.training.targets import annotation_targets

    ann = np.zeros((20, 20), np.uint8)
    ann[:, :10] = 1
    ann[5:15, 12:18] = 2
    painted = np.zeros(ann.shape, bool)
    painted[:, :3] = True
    pseudo = np.zeros((20, 20, 3), np.float32)
    pseudo[..., 0] = 0.95
    pseudo[..., 1] = 0.05
    t = weighted_target(annotation_targets(ann), painted, 4.0, pseudo, 0.25)
    top = t.max(-1)
    assert (top[:, 3:10] == WEIGHT_UNIT).all()  # annotated
    assert (top[:, :3] == 4 * WEIGHT_UNIT).all()  # painted by a person
    gaps = ann == 0
    assert (top[gaps] == 1).all() and (t[gaps][:, 0] == 1).all()  # confident teacher, low weight


def test_sampler_gives_a_few_objects_in_a_large_frame_their_share():
    from napari_unet.core.training.samples import PatchSampler

    mask = np.zeros((512, 512), np.uint16)
    mask[100:110, 100:110] = 1
    mask[400:410, 300:310] = 2
    img = (mask > 0).astype(np.float32)[..., None]
    target = mask_targets(mask) * np.uint8(WEIGHT_UNIT)
    sampler = PatchSampler([img], [target], 32, annotated_fraction=1.0, augment=False, seed=0)
    hits = sum(sampler.sample()[1][..., 0].min() == 0 for _ in range(100))
    assert hits >= 35  # about half the patches hold an object (uniform: ~1 %)


def test_fine_tuning_from_scribbles_keeps_the_last_weights_and_tunes_postprocessing():
    img, mask = make_blobs(128, 12, seed=11)
    net = UNet.new(TINY, seed=0)
    net.train(
        [TrainingPair(img, mask=mask)], TrainConfig(epochs=2, steps_per_epoch=5, patch_size=64)
    )
    assert net.object_diameter is not None  # a new model learns its scale from the masks
    assert net.metadata.postprocessing is not None
    ann = np.zeros(mask.shape, np.uint8)
    ann[mask == 3] = 2
    ann[:4] = 1
    result = net.train(
        [TrainingPair(img, annotation=ann)],
        TrainConfig(epochs=2, steps_per_epoch=5, patch_size=64),
    )
    assert result.monitor == "last" and result.best_epoch is None  # scribbles: no ranking
    run = net.metadata.training_runs[-1]
    assert run["learning_rate"] == pytest.approx(3e-4)  # gentler for fine-tuning
    PostprocessParams.from_dict(net.metadata.postprocessing)  # stays valid


def test_a_repeated_run_on_a_copy_reuses_the_compiled_step_and_stop_returns_at_once():
    from napari_unet.core.training import loop as training

    img, mask = make_blobs(96, 8, seed=5)
    base = UNet.new(TINY, seed=0)
    cfg = TrainConfig(epochs=3, steps_per_epoch=4, patch_size=32, batch_size=2)
    base.copy().train([TrainingPair(img, mask=mask)], cfg)
    trainers = [
        t
        for t in training._TRAINERS.values()
        if t.model.count_params() == base.keras_model.count_params()
    ]
    assert trainers
    traced = trainers[0].step.experimental_get_tracing_count()
    stop = threading.Event()
    kinds = []

    def progress(p):
        kinds.append(p.kind)
        if p.kind == "batch" and p.step == 2:
            stop.set()

    result = base.copy().train(
        [TrainingPair(img, mask=mask)], cfg, progress=progress, stop_event=stop
    )
    assert trainers[0].step.experimental_get_tracing_count() == traced  # no retracing
    assert result.steps_run == 2 and "epoch" not in kinds and "preview" not in kinds
    # a stop before the first batch trains nothing
    stop2 = threading.Event()
    stop2.set()
    before = [w.copy() for w in base.keras_model.get_weights()]
    assert base.train([TrainingPair(img, mask=mask)], cfg, stop_event=stop2).steps_run == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, base.keras_model.get_weights()))


def test_prediction_is_traced_once_for_any_size_and_stays_fresh_after_training():
    img, mask = make_blobs(96, 6, seed=5)
    net = UNet.new(TINY, seed=0)
    before = net.predict(img, diameter=0).probability
    infer = net.inference_function()
    for shape in ((64, 80), (40, 40), (96, 96)):  # other tile sizes, other batch sizes
        net.predict(img[: shape[0], : shape[1]], diameter=0)
    assert net._traced.experimental_get_tracing_count() == 1
    net.train(
        [TrainingPair(img, mask=mask)], TrainConfig(epochs=1, steps_per_epoch=3, patch_size=32)
    )
    assert net.inference_function() is infer  # no new trace after training...
    after = net.predict(img, diameter=0).probability
    assert np.abs(after - before).max() > 1e-3  # ...and it answers with the new weights
    assert net._traced.experimental_get_tracing_count() == 1


def test_the_size_estimate_costs_a_small_share_of_the_prediction(sample_image):
    """Issue 20: the automatic size looks at small coarse views and the prediction
    reuses the whole pass at the chosen scale, so on the sample (512², at the model's
    scale) the network evaluates for the estimate at most 60 % as many pixels as the
    image has (its looks went on until one sees objects within 15 % of the model's
    size, which the generalist needs: issue 22); with the size given it evaluates none.
    The prediction itself sees the image and a thin mirrored border (16 px per side:
    1.13× the image's pixels, where the 64 px context mirrored around it made 1.56×)."""
    net = UNet.bundled("nuclei")
    img = sample_image.astype(np.float32)
    auto = net.predict(img)
    est, pred = auto.network_pixels["size estimate"], auto.network_pixels["prediction"]
    assert auto.scale == 1.0
    assert 0 < est <= 0.6 * img.size, auto.network_pixels
    assert img.size < pred <= 1.15 * img.size, auto.network_pixels
    given = net.predict(img, diameter=net.object_diameter)
    assert given.network_pixels == {"size estimate": 0, "prediction": pred}
    np.testing.assert_array_equal(given.labels, auto.labels)


@pytest.mark.parametrize("zoom", [0.5, 2.0, 3.0])
def test_the_quick_estimate_still_picks_the_scale_of_zoomed_nuclei(sample_image, zoom):
    from skimage.transform import rescale

    net = UNet.bundled("nuclei")
    crop = sample_image[128:384, 128:384].astype(np.float32)
    p = net.predict(rescale(crop, zoom, order=1, anti_aliasing=zoom < 1, preserve_range=True))
    assert p.scale == pytest.approx(1 / zoom, rel=0.15)
    # the estimate costs its small looks and at most one whole pass at a scale it refined
    from napari_unet.core.prediction.object_size import LOOK_CROP, PROBE_SCALES

    looks = len(PROBE_SCALES) * LOOK_CROP**2
    assert p.network_pixels["size estimate"] <= looks + 1.5 * p.network_pixels["prediction"]


def test_prediction_reports_its_stages_in_order(sample_image):
    from napari_unet.core.prediction.tiling import Stage

    net = UNet.bundled("nuclei")
    stages, tiles = [], []
    crop = sample_image[:192, :192].astype(np.float32)
    net.predict(
        np.stack([crop, crop[::-1]]), stage=stages.append, progress=lambda *a: tiles.append(a)
    )
    one = [Stage.ESTIMATE, Stage.PREDICT, Stage.POSTPROCESS]
    assert stages == one + one  # two planes, each measured
    assert tiles[-1][0] == tiles[-1][1] and tiles[-1][1] > 0
    stages.clear()
    net.predict(crop, diameter=None, stage=stages.append)
    assert stages == [Stage.PREDICT, Stage.POSTPROCESS]  # nothing to measure
