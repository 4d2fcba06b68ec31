"""One :class:`Normalizer`: the model's percentiles, taken on the same pixels whichever
path reads an image (training or prediction, in memory or block by block)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs

from napari_unet.core.normalize import (
    DEFAULT_NORMALIZATION,
    Normalizer,
    normalize,
    normalize_image,
    percentiles,
)


@pytest.fixture(scope="module")
def tiny_net():
    from napari_unet.core import UNet, UNetConfig

    net = UNet.new(UNetConfig(depth=1, base_filters=2), seed=0)
    net.metadata.normalization = {"method": "percentile", "low": 3.0, "high": 97.0}
    return net


def test_the_normalizer_of_a_model_record():
    assert Normalizer.of(None) == Normalizer(1.0, 99.8) == Normalizer.of(DEFAULT_NORMALIZATION)
    assert Normalizer.of({"low": 2}) == Normalizer(2.0, 99.8)
    img = np.random.default_rng(0).gamma(2.0, 100.0, (64, 80, 2)).astype(np.float32)
    lo, hi = Normalizer(2.0, 98.0).intensity(img)
    flat = img.reshape(-1, 2)
    np.testing.assert_allclose(lo, np.percentile(flat, 2.0, axis=0), rtol=1e-6)
    np.testing.assert_allclose(hi, np.percentile(flat, 98.0, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(Normalizer()(img), normalize_image(img))
    np.testing.assert_array_equal(Normalizer()(img), normalize(img, *percentiles(img)))
    # a huge image: every ``step``-th pixel along y and x, no more than 4M of them
    assert Normalizer.step(2000, 2000) == 1 and Normalizer.step(2100, 2100) == 2
    big = np.zeros((2100, 2100, 1), np.uint16)
    big[::2, ::2] = 7  # the pixels sampled
    lo, hi = Normalizer().intensity(big)
    assert lo[0] == hi[0] == 7


def test_training_and_prediction_normalise_an_image_in_memory_alike(tiny_net):
    from napari_unet.core import TrainingPair
    from napari_unet.core.training.samples import prepare_pairs

    img, mask = make_blobs(96, 8, seed=1)
    (prepared,) = prepare_pairs(
        [TrainingPair(img, mask=mask)], 1, 1, tiny_net.metadata.normalization
    )
    predictor = tiny_net.predictor()
    x = img[..., None]
    seen = predictor.normalizer.apply(x, predictor.intensity(x))
    np.testing.assert_array_equal(prepared.image, seen)
    # the model's own percentiles, not the defaults
    assert not np.array_equal(seen, normalize_image(x))


def test_a_huge_image_is_normalised_block_by_block_as_in_memory(tiny_net, tmp_path, monkeypatch):
    """Block-wise prediction of a dask image takes the percentiles on the very pixels
    the in-memory prediction and training of the same image take them on (a regular
    subsample once it has over 4M pixels), and its object-size look uses them too."""
    import dask.array as da

    from napari_unet.core import TrainingPair
    from napari_unet.core.prediction import blockwise
    from napari_unet.core.training.samples import prepare_pairs

    rng = np.random.default_rng(2)
    image = rng.gamma(1.5, 300.0, (2100, 2060)).astype(np.uint16)  # 4.3M pixels: step 2
    image[::2, ::2] //= 3  # the sampled pixels darker than the rest
    seen = {}

    class Stop(Exception):
        pass

    def stop(predictor, x, sample, step, client, intensity=None, found=None):
        seen.update(step=step, intensity=intensity)
        raise Stop

    monkeypatch.setattr(blockwise, "measure_scale", stop)
    with pytest.raises(Stop):
        blockwise.predict_to_zarr(
            tiny_net,
            da.from_array(image, chunks=512),
            tmp_path / "labels.zarr",
            tmp_path / "probability.zarr",
            tmp_path,
        )
    assert seen["step"] == 2
    x = image[..., None]
    lo, hi = tiny_net.predictor().intensity(x)
    np.testing.assert_array_equal(seen["intensity"][0], lo)
    np.testing.assert_array_equal(seen["intensity"][1], hi)
    # and training on it (in memory, labels everywhere) normalises it with these
    mask = (image > np.median(image)).astype(np.uint8)
    (prepared,) = prepare_pairs(
        [TrainingPair(image, mask=mask)], 1, 1, tiny_net.metadata.normalization
    )
    np.testing.assert_array_equal(prepared.image, normalize(x, lo, hi))


def test_the_regions_of_a_huge_annotation_share_the_normalizer_of_their_pixels(tiny_net):
    import dask.array as da

    from napari_unet.core import TrainingPair
    from napari_unet.core.training.samples import prepare_pairs

    img, mask = make_blobs(400, 30, seed=3)
    ann = np.zeros(img.shape, np.uint8)
    boxes = [(20, 80, 30, 100), (250, 330, 200, 290)]
    for y0, y1, x0, x1 in boxes:
        ann[y0:y1, x0:x1] = np.where(mask[y0:y1, x0:x1] > 0, 2, 1)
    pair = TrainingPair(da.from_array(img, chunks=100), annotation=da.from_array(ann, 100))
    norm = tiny_net.metadata.normalization
    prepared = prepare_pairs([pair], 1, 1, norm)
    assert len(prepared) == 2
    pixels = np.concatenate([img[y0:y1, x0:x1].ravel() for y0, y1, x0, x1 in boxes])
    lo, hi = Normalizer.of(norm).of_sample(pixels[:, None])
    for p, (y0, y1, x0, x1) in zip(prepared, boxes):
        np.testing.assert_array_equal(p.image, normalize(img[y0:y1, x0:x1, None], lo, hi))
