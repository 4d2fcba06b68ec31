"""The fast instance post-processing gives the same labels, to the bit and with the same
ids, as the straightforward scikit-image/SciPy recipe it replaces."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.prediction.instances import (
    PostprocessParams,
    _distance_transform,
    _h_maxima,
    _Instances,
    _maximum_3x3,
    instances_from_probabilities,
    relabel_and_filter,
)

SETTINGS = [
    PostprocessParams(),
    PostprocessParams(seed_mode="boundary"),
    PostprocessParams(threshold=0.3, core_threshold=0.5, split=0.8, min_size=0),
    PostprocessParams(threshold=0.7, core_threshold=0.9, seed_mode="boundary", min_size=30),
    PostprocessParams(threshold=0.4, core_threshold=0.0, split=3.0, min_size=25),
]


def reference_labels(prob: np.ndarray, p: PostprocessParams) -> np.ndarray:
    """Instance labels the plain way: skimage h_maxima, gaussian and watershed, SciPy's
    distance transform and labels, np.unique renumbering."""
    from skimage.filters import gaussian
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    fg = (1.0 - prob[..., 0]).astype(np.float32) > p.threshold
    interior = prob[..., 1:-1].sum(-1)
    boundary = prob[..., -1]
    core = fg & (interior > p.core_threshold) & (interior > boundary)
    # holes: 8-connected non-core pieces off the image's sides with no background pixel
    pieces, n = ndi.label(~core, structure=np.ones((3, 3)))
    sides = set(np.unique(np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]])))
    for i in range(1, n + 1):
        piece = pieces == i
        if i not in sides and fg[piece].all():
            core |= piece
    edt = ndi.distance_transform_edt(core)
    dist = gaussian(edt, 1.0)
    if not core.any():
        seeds = np.zeros(fg.shape, np.int32)
    elif p.seed_mode == "boundary":
        seeds, _ = ndi.label(core)
    else:
        lab, n = ndi.label(core)
        radius = float(np.median(ndi.maximum(edt, lab, np.arange(1, n + 1))))
        h = max(0.5, p.split * radius - 2.0)
        seeds, _ = ndi.label(h_maxima(dist, h) & core)
    blobs, nb = ndi.label(fg)
    if nb:
        seeded = np.zeros(nb + 1, bool)
        seeded[np.unique(blobs[seeds > 0])] = True
        seeded[0] = True
        orphan = ~seeded[blobs]
        if orphan.any():
            seeds = seeds.astype(np.int64)
            seeds[orphan] = blobs[orphan] + seeds.max()
    landscape = boundary - interior if p.seed_mode == "boundary" else -(dist + interior)
    labels = watershed(landscape, markers=seeds, mask=fg)
    ids, inverse, counts = np.unique(labels.ravel(), return_inverse=True, return_counts=True)
    keep = (ids != 0) & (counts >= max(p.min_size, 1))
    new_ids = np.zeros(len(ids), np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[inverse].reshape(labels.shape)


def synthetic_probabilities(seed: int, size: int = 160, quantize: bool = False) -> np.ndarray:
    """``[background, object, boundary]`` probabilities of touching discs and rods, with
    noise; ``quantize`` rounds them to eighths (many equal values: plateaus and ties)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    inside = np.zeros((size, size), np.float32)
    edge = np.zeros((size, size), np.float32)
    for _ in range(25):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(3, 14, 2)
        d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        inside = np.maximum(inside, (d < 0.85).astype(np.float32))
        edge = np.maximum(edge, ((d >= 0.85) & (d < 1.1)).astype(np.float32))
    obj = ndi.gaussian_filter(np.clip(inside - 0.6 * edge, 0, 1), 1.0)
    obj = np.clip(obj + rng.normal(0, 0.08, obj.shape), 0, 1)
    bnd = np.clip(ndi.gaussian_filter(edge, 1.0) + rng.normal(0, 0.05, obj.shape), 0, 1)
    bg = np.clip(1.0 - obj - bnd, 0, 1)
    prob = np.stack([bg, obj, bnd], -1) + 1e-3
    prob /= prob.sum(-1, keepdims=True)
    if quantize:
        prob = np.round(prob * 8) / 8
    return prob.astype(np.float32)


def check_same(prob: np.ndarray) -> None:
    inst = _Instances(prob)  # caches shared between settings, as the search uses it
    for p in SETTINGS:
        ours = inst.labels(p)
        ref = reference_labels(prob, p)
        assert ours.dtype == ref.dtype == np.int32
        assert np.array_equal(ours, ref), (p, int((ours != ref).sum()))
        # one setting, each map let go once used (what a block of a large image runs)
        once = instances_from_probabilities(prob, **p.to_dict())
        assert once.dtype == np.int32 and np.array_equal(once, ref), p


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_maps_give_the_reference_labels(seed):
    prob = synthetic_probabilities(seed, quantize=seed % 2 == 1)
    assert int(reference_labels(prob, SETTINGS[0]).max()) >= 10
    check_same(prob)


def test_network_maps_give_the_reference_labels(sample_image):
    from napari_unet.core import UNet

    net = UNet.default()
    prob = net.predict(sample_image[:256, :384], return_scores=True).scores
    assert int(reference_labels(prob, SETTINGS[0]).max()) > 10  # a real map, with objects
    check_same(prob)
    # a map with nothing in it and one that is all object
    check_same(np.tile(np.float32([1, 0, 0]), (40, 50, 1)))
    check_same(np.tile(np.float32([0, 1, 0]), (40, 50, 1)))


def test_h_maxima_is_skimages():
    from skimage.morphology import h_maxima

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:90, :120]
    images = [
        ndi.gaussian_filter(rng.random((90, 120)) * 10, 2.0),  # many shallow maxima
        np.round(ndi.gaussian_filter(rng.random((90, 120)) * 40, 3.0)),  # plateaus, ties
        np.maximum(0, 12 - np.hypot(yy - 45, xx - 60)),  # one cone, zero floor
        np.maximum(0, 12 - np.hypot(yy, xx - 60)),  # a maximum on the border
        np.full((20, 30), 3.0),  # flat
        np.pad(np.ones((5, 5)), 40) * 2.0 + np.pad(np.ones((3, 3)), 41) * 1.5,  # nested
    ]
    for image in images:
        for h in (0.5, 1.0, 2.5, 7.0, float(np.ptp(image)) or 1.0):
            expected = h_maxima(image, h) > 0
            assert np.array_equal(_h_maxima(image, h), expected), h


def test_maximum_3x3_is_scipys():
    rng = np.random.default_rng(3)
    for shape in ((1, 1), (1, 6), (2, 2), (3, 3), (5, 2), (40, 57)):
        a = rng.random(shape).astype(np.float32)
        assert np.array_equal(_maximum_3x3(a), ndi.maximum_filter(a, size=3, mode="nearest"))


@pytest.mark.parametrize("with_edt", [True, False])
def test_distance_transform_is_scipys(with_edt, monkeypatch):
    if not with_edt:
        monkeypatch.setitem(sys.modules, "edt", None)  # import edt fails: SciPy's way
    rng = np.random.default_rng(1)
    for mask in (
        ndi.binary_opening(rng.random((70, 90)) > 0.3),
        np.pad(np.ones((30, 40), bool), ((0, 3), (5, 0))),  # touching two borders
        np.ones((12, 17), bool),
        np.zeros((12, 17), bool),
    ):
        assert np.array_equal(_distance_transform(mask), ndi.distance_transform_edt(mask))


def test_relabel_and_filter_renumbers_in_id_order():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 30, (40, 50)) * 7
    for dtype in (np.int32, np.int64, np.uint16, np.uint64):
        a = labels.astype(dtype)
        ids, inverse, counts = np.unique(a.ravel(), return_inverse=True, return_counts=True)
        keep = (ids != 0) & (counts >= 60)
        expected = (np.cumsum(keep) * keep)[inverse].reshape(a.shape)
        out = relabel_and_filter(a, 60)
        assert out.dtype == np.int32
        assert np.array_equal(out, expected)
    sparse = np.zeros((5, 5), np.int64)
    sparse[0, 0], sparse[4, 4] = 3, 10**12  # ids far beyond the pixel count
    assert relabel_and_filter(sparse).tolist()[0][0] == 1
    assert relabel_and_filter(sparse)[4, 4] == 2


@pytest.mark.parametrize("seed_mode", ["distance", "boundary"])
def test_one_block_post_processing_holds_a_few_maps_at_a_time(seed_mode):
    """The memory bound of a large image's blocks, without timing: the bytes NumPy
    allocates at most while one map is post-processed (tracemalloc; the same on every
    run), as a multiple of the float32 probabilities. With every map kept until the end
    it was 5.7 (distance seeds) and 3.7-4.1 (boundary seeds); now ~2.9 and ~2.5."""
    import tracemalloc

    prob = synthetic_probabilities(0, size=512)
    params = PostprocessParams(seed_mode=seed_mode).to_dict()
    expected = instances_from_probabilities(prob, **params)  # imports, first-call caches
    assert int(expected.max()) >= 10
    tracemalloc.start()
    try:
        labels = instances_from_probabilities(prob, **params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(labels, expected)
    assert peak <= 3.3 * prob.nbytes, peak / prob.nbytes
