"""Stained slides read as their haematoxylin (core.stains): which colour pictures, the
same reading for every path, and only for models that learned it."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from napari_unet.core import UserInputError
from napari_unet.core.axes import channel_layout
from napari_unet.core.config import UNetConfig
from napari_unet.core.errors import ModelFileError
from napari_unet.core.network.metadata import ModelMetadata
from napari_unet.core.stains import haematoxylin, read_stains, sample_colours, stain_white

# Ruifrok and Johnston's stain directions (optical density per R, G, B, unit length)
HAEMATOXYLIN = np.array([0.65, 0.70, 0.29])
EOSIN = np.array([0.07, 0.99, 0.11])
DAB = np.array([0.27, 0.57, 0.78])


def nuclei_mask(shape=(128, 160), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for _ in range(12):
        mask[disk(tuple(rng.uniform(10, np.subtract(shape, 10))), 7, shape=shape)] = True
    return mask


def slide(mask: np.ndarray, second=EOSIN, density=1.0, seed=0, dtype=np.uint8) -> np.ndarray:
    """A brightfield slide by Beer–Lambert: haematoxylin nuclei on tissue of the
    ``second`` stain, which is ``density`` times as dense as the nuclei' own (DAB
    darker than the nuclei: ``density`` > 1)."""
    rng = np.random.default_rng(seed)
    h = mask * 0.9 + rng.uniform(0, 0.05, mask.shape)
    tissue = density * (0.5 + 0.2 * rng.random(mask.shape)) * ~mask
    od = h[..., None] * HAEMATOXYLIN + tissue[..., None] * second
    light = np.exp(-od)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    return (light * 0.97 * top).astype(dtype)


def smear(shape=(128, 160), seed=0) -> np.ndarray:
    """A blood smear's look: pink (eosin-like) cells on glass, one white cell's nucleus."""
    rng = np.random.default_rng(seed)
    od = np.zeros(shape + (3,))
    for _ in range(30):
        cell = disk(tuple(rng.uniform(0, shape)), rng.uniform(8, 12), shape=shape)
        od[cell] = rng.uniform(0.3, 0.6) * EOSIN
    od[disk((64, 80), 9, shape=shape)] = 1.2 * HAEMATOXYLIN
    return (np.exp(-od) * 240 + rng.normal(0, 2, od.shape)).clip(0, 255).astype(np.uint8)


def test_a_stained_slide_is_read_as_its_haematoxylin_and_other_colours_as_their_mean():
    mask = nuclei_mask()
    for second, density, dtype in ((EOSIN, 1.0, np.uint8), (DAB, 2.0, np.uint16)):
        he = slide(mask, second, density, dtype=dtype)
        reading = read_stains(sample_colours(he, 2))
        assert reading is not None and reading.estimated, (second, dtype)
        h = haematoxylin(he, reading)[..., 0]
        # the nuclei stand out; the other stain, however dark, does not
        assert h[mask].min() > np.percentile(h[~mask], 99)
        grey = he.astype(np.float32).mean(-1)
        if density > 1:  # where the mean would take the brown tissue for the objects
            assert grey[~mask].mean() < grey[mask].mean()

    rng = np.random.default_rng(1)
    plane = (nuclei_mask() * 0.6 + 0.2 + 0.05 * rng.random(mask.shape)).astype(np.float32)
    dark_ground = np.stack([np.zeros_like(plane), plane, 0.5 * plane], -1)  # a composite
    brightfield = 1.0 - 0.7 * plane
    for name, img in (
        ("fluorescence composite", dark_ground),
        ("green fluorescence", np.stack([0 * plane, plane, 0 * plane], -1)),
        ("grey stored as RGB", np.stack([brightfield] * 3, -1)),
        ("grey tinted by the lamp", np.stack([brightfield] * 3, -1) * [1.0, 0.93, 0.75]),
        ("flat", np.ones((64, 64, 3))),
        ("a blood smear: its objects hold no haematoxylin", smear()),
        ("too few pixels", slide(mask)[:3, :3]),
    ):
        assert stain_white(sample_colours(img, 2)) is None, name


def test_each_slide_is_read_along_its_own_stain_colours():
    # another lab's stains: a redder-absorbing haematoxylin and a purpler eosin (18° and
    # 24° from Ruifrok and Johnston's), the eosin dense and uneven
    from napari_unet.core.stains import STAIN_SEPARATION, StainReading, haematoxylin_row

    unit = lambda v: np.asarray(v) / np.linalg.norm(v)  # noqa: E731
    h_own, e_own = unit([0.85, 0.50, 0.15]), unit([0.45, 0.85, 0.25])
    mask = nuclei_mask()
    rng = np.random.default_rng(0)
    h = mask * 0.9 + rng.uniform(0, 0.05, mask.shape)
    eosin = (0.3 + 1.7 * rng.random(mask.shape)) * ~mask + 0.3 * mask
    od = h[..., None] * h_own + eosin[..., None] * e_own
    img = (np.exp(-od) * 0.97 * 255).astype(np.uint8)
    reading = read_stains(sample_colours(img, 2))
    assert reading is not None and reading.estimated
    # the row unmixes the slide's own stains: eosin adds little haematoxylin (the patch
    # has no bare glass, so its white is a little dark), and the nuclei stand out
    from skimage.color import hed_from_rgb

    ruifrok = hed_from_rgb[:, 0]
    leak = lambda row: abs(np.dot(row, e_own)) / np.dot(row, h_own)  # noqa: E731
    assert leak(reading.row) < 0.2 and leak(reading.row) < leak(ruifrok) / 2
    own = haematoxylin(img, reading)[..., 0]
    assert own[mask].min() > 3 * np.percentile(own[~mask], 99)
    # read along Ruifrok and Johnston's haematoxylin, the dense eosin nearly reaches the
    # nuclei
    fixed = haematoxylin(img, StainReading(reading.white, tuple(ruifrok)))[..., 0]
    assert fixed[mask].min() < 1.5 * np.percentile(fixed[~mask], 99)

    # one stain alone shows no two apart: the slide is read along theirs
    grey_od = rng.uniform(0.1, 2.0, (4000, 1)) * h_own
    colours = np.exp(-grey_od) * 250
    assert haematoxylin_row(colours, (250.0,) * 3) is None
    assert STAIN_SEPARATION > 0


def test_a_real_slide_from_another_lab_is_seen_as_one():
    # scikit-image's IHC slide (haematoxylin nuclei, DAB-stained glands darker than them)
    from skimage import data

    ihc = data.immunohistochemistry()
    white = stain_white(sample_colours(ihc, 2))
    assert white is not None and min(white) > 200


def test_a_slide_is_read_alike_whole_block_by_block_plane_by_plane_and_for_training():
    import dask.array as da

    from napari_unet.core.prediction.blockwise import as_channels_last
    from napari_unet.core.training.samples import TrainingPair, pair_layout, planes_of

    mask = nuclei_mask((96, 128))
    he = slide(mask)
    layout = channel_layout(he.shape, 1, image=he)
    assert layout.stained and layout.to_grey
    whole = layout.channels_last(he)
    assert whole.shape == (96, 128, 1) and whole.dtype == np.float32
    np.testing.assert_allclose(whole, haematoxylin(he, layout.stains))
    # a window reads as the whole image's reading there (one white for the image)
    window = layout.read(he, (), slice(40, 70), slice(10, 90))
    np.testing.assert_array_equal(window, whole[40:70, 10:90])
    lazy = as_channels_last(da.from_array(he, chunks=(32, 48, 3)), layout, ((48, 48), (64, 64)))
    np.testing.assert_allclose(lazy.compute(), whole, rtol=1e-6)
    # RGBA: the alpha is dropped first
    rgba = np.concatenate([he, np.full(he.shape[:2] + (1,), 255, np.uint8)], -1)
    np.testing.assert_allclose(channel_layout(rgba.shape, 1, image=rgba).channels_last(rgba), whole)
    # a stack of slides: one reading for all its planes, as they sample together
    stack = np.stack([he, slide(nuclei_mask((96, 128), seed=2), seed=2)])
    stacked = channel_layout(stack.shape, 1, image=stack)
    assert stacked.stained
    assert stacked.channels_last(stack).shape == (2, 96, 128, 1)
    # training reads the pair as prediction reads the image, for a model that reads stains
    pair = TrainingPair(he, mask=mask.astype(np.uint8), name="slide")
    assert pair_layout(pair, 1, stains=True).stains == layout.stains
    (plane,) = planes_of([pair], 1, stains=True)
    np.testing.assert_array_equal(plane.image, whole)
    (mean,) = planes_of([pair], 1)
    np.testing.assert_allclose(mean.image[..., 0], he.astype(np.float32).mean(-1))
    # the colour reading only concerns colours brought to one channel, not four
    # fluorescence channels averaged (said by the axes) nor a three-channel model's input
    assert not channel_layout(he.shape, 3, image=he).stained
    four = np.concatenate([he, he[..., :1]], -1).transpose(2, 0, 1)
    assert not channel_layout(four.shape, 1, axes="CYX", image=four).stained
    with pytest.raises(UserInputError):
        channel_layout((2, 96, 128), 3, image=np.zeros((2, 96, 128)))


def test_only_a_model_that_learned_stains_reads_them(tmp_path):
    from napari_unet.core.network.model_file import read_metadata
    from napari_unet.core.network.unet import UNet

    mask = nuclei_mask((64, 64))
    he = slide(mask, DAB, 2.0)
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0)
    assert net.metadata.reads_stains  # a new network learns slides as haematoxylin
    assert ModelMetadata.from_dict({}).colour_reading is None  # a model saved before
    assert not ModelMetadata().reads_stains
    stains = haematoxylin(he, read_stains(sample_colours(he, 2)))
    planes, _ = net.predictor().planes(he)  # the image as the network takes it
    np.testing.assert_allclose(planes, stains)
    net.save(tmp_path / "m.keras")
    assert read_metadata(tmp_path / "m.keras").colour_reading == "stains"
    old = UNet.load(tmp_path / "m.keras")
    old.metadata.colour_reading = None  # as a model learned before the reading was recorded
    planes, _ = old.predictor().planes(he)
    np.testing.assert_allclose(planes[..., 0], he.astype(np.float32).mean(-1))
    old.metadata.colour_reading = "haematoxylin please"
    old.save(tmp_path / "bad.keras")
    with pytest.raises(ModelFileError, match="colour_reading"):
        read_metadata(tmp_path / "bad.keras")


def test_the_generalist_finds_the_nuclei_of_a_real_ihc_slide_not_its_stained_glands():
    # scikit-image's IHC slide, from no data this project trains on: nuclei (~10 x 20 px)
    # in stroma and in glands whose DAB stain is darker than them. Read as the mean of
    # the colours, the generalist took 6 glands for the objects (scale 0.19); read as
    # haematoxylin, about 500 nuclei (benchmarks/RESULTS.md, "Stained slides read as
    # haematoxylin"). A learned result: the bounds leave wide margins on every CPU.
    from skimage import data

    from napari_unet.core.network.unet import UNet

    net = UNet.bundled("generalist")
    assert net.metadata.reads_stains
    labels = net.predict(data.immunohistochemistry()).labels
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    assert len(areas) > 200
    assert 40 < np.median(areas) < 600
