"""Training from huge (chunked) images: only the annotated regions are read."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_blobs

SIZE, CHUNK = 3000, 250
#: two small annotated regions (y0, y1, x0, x1), far apart
REGIONS = [(520, 600, 510, 590), (2210, 2290, 1805, 1885)]


def huge_pair():
    """A 3000² uint16 image of blobs and its annotation (1 background, 2 object) in
    ``REGIONS`` only."""
    tile, mask = make_blobs(500, 60, seed=4)
    image = np.tile(tile, (SIZE // 500, SIZE // 500))
    truth = np.tile(mask, (SIZE // 500, SIZE // 500))
    ann = np.zeros((SIZE, SIZE), np.uint8)
    for y0, y1, x0, x1 in REGIONS:
        ann[y0:y1, x0:x1] = np.where(truth[y0:y1, x0:x1] > 0, 2, 1)
    return image, ann


def chunks_touching(boxes, chunk=CHUNK):
    return {
        (i, j)
        for y0, y1, x0, x1 in boxes
        for i in range(y0 // chunk, (y1 - 1) // chunk + 1)
        for j in range(x0 // chunk, (x1 - 1) // chunk + 1)
    }


class Recorder:
    """An in-memory array that records every window read from it."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
        self.reads: list[tuple] = []

    def __getitem__(self, key):
        out = self.a[key]
        if out.size:  # dask reads an empty window for its meta
            self.reads.append(key)
        return out


def test_dask_pair_is_read_only_around_its_annotation():
    import dask.array as da

    from napari_unet.core import TrainingPair
    from napari_unet.core.training.huge_annotations import annotated_boxes
    from napari_unet.core.training.samples import planes_of

    image, ann = huge_pair()
    rec_image, rec_ann = Recorder(image), Recorder(ann)
    lazy_image = da.from_array(rec_image, chunks=CHUNK, asarray=True)
    lazy_ann = da.from_array(rec_ann, chunks=CHUNK, asarray=True)
    margin = 40
    boxes = annotated_boxes(lazy_ann, margin)
    assert boxes == [
        (y0 - margin, y1 + margin, x0 - margin, x1 + margin) for y0, y1, x0, x1 in REGIONS
    ]
    assert not rec_image.reads  # finding the regions reads labels only

    planes = planes_of([TrainingPair(lazy_image, annotation=lazy_ann, name="huge")], 1, margin)
    assert [p.name for p in planes] == [f"huge[{a}:{b}, {c}:{d}]" for a, b, c, d in boxes]
    for p, (y0, y1, x0, x1) in zip(planes, boxes):
        assert isinstance(p.image, np.ndarray) and p.image.shape == (y1 - y0, x1 - x0, 1)
        np.testing.assert_array_equal(p.image[..., 0], image[y0:y1, x0:x1])
        np.testing.assert_array_equal(p.annotation, ann[y0:y1, x0:x1])
        assert p.intensity is not None  # one normalisation shared by the regions
        assert p.intensity is planes[0].intensity
    # the image was read only in the chunks under the regions
    read = set()
    for ys, xs in rec_image.reads:
        read |= chunks_touching([(ys.start, ys.stop, xs.start, xs.stop)])
    assert read <= chunks_touching(boxes)
    assert len(read) <= 8 < (SIZE // CHUNK) ** 2


@pytest.fixture
def counting_store():
    from zarr.storage import LocalStore

    class CountingStore(LocalStore):
        """A folder store that records the keys read."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.keys: list[str] = []

        async def get(self, key, prototype=None, byte_range=None):
            self.keys.append(key)
            return await super().get(key, prototype, byte_range)

    return CountingStore


def chunk_reads(keys):
    """Grid positions of the chunk keys read (``c/i/j``), metadata left out."""
    return {tuple(int(v) for v in k.split("/")[1:]) for k in keys if k.startswith("c/")}


def test_tiny_model_trains_from_a_zarr_image_reading_only_the_annotated_regions(
    tmp_path, counting_store
):
    import zarr

    from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig
    from napari_unet.core.training.huge_annotations import annotated_boxes
    from napari_unet.core.training.samples import sampling_margin

    image, ann = huge_pair()
    zi = zarr.create_array(
        str(tmp_path / "image.zarr"), shape=image.shape, chunks=(CHUNK, CHUNK), dtype="uint16"
    )
    zi[:] = image
    za = zarr.create_array(
        str(tmp_path / "annotation.zarr"),
        shape=ann.shape,
        chunks=(CHUNK, CHUNK),
        dtype="uint8",
        fill_value=0,
        config={"write_empty_chunks": False},
    )
    za[:] = ann
    stored = chunks_touching(REGIONS)
    assert len(stored) < 8  # only the annotated chunks were written

    image_store = counting_store(str(tmp_path / "image.zarr"), read_only=True)
    ann_store = counting_store(str(tmp_path / "annotation.zarr"), read_only=True)
    lazy_image = zarr.open_array(image_store, mode="r")
    lazy_ann = zarr.open_array(ann_store, mode="r")
    # the regions are found from the stored chunks of the annotation alone
    assert annotated_boxes(lazy_ann) == REGIONS
    assert chunk_reads(ann_store.keys) == stored

    cfg = TrainConfig(
        epochs=2, steps_per_epoch=4, patch_size=64, batch_size=4, seed=0, val_fraction=0.0
    )
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0)
    result = net.train([TrainingPair(lazy_image, annotation=lazy_ann, name="huge")], cfg)
    assert result.steps_run == 8
    assert all(np.isfinite(v) for v in result.history["loss"])
    names = [d["name"] for d in result.data]
    assert len(names) == 2 and all(n.startswith("huge[") for n in names)

    # image and annotation: only the chunks under the regions and their margins (the
    # regions were found from the annotation's stored chunks alone)
    margin = sampling_margin(cfg.patch_size)
    grown = chunks_touching(
        [(y0 - margin, y1 + margin, x0 - margin, x1 + margin) for y0, y1, x0, x1 in REGIONS]
    )
    assert stored <= chunk_reads(ann_store.keys) <= grown
    read = chunk_reads(image_store.keys)
    assert read and read <= grown
    assert len(grown) <= 18 < (SIZE // CHUNK) ** 2 // 4


def test_blockwise_evaluation_and_prediction_copy_equal_the_whole_image_ones(sample_mask):
    """Overlaps summed over blocks give exactly the whole-image scores; a prediction
    copied into an annotation block by block is the whole-image copy."""
    import dask.array as da
    import zarr

    from napari_unet.core import evaluate, mask_to_annotation
    from napari_unet.core.metrics import evaluate_blockwise
    from napari_unet.core.training.huge_annotations import prediction_to_annotation

    truth = sample_mask
    pred = np.roll(truth, 3, axis=1)  # shifted: some objects match, some do not
    pred[pred % 7 == 0] = 0  # some objects missed
    pred[100:140, 100:140] = 999  # a false one across others
    lazy_pred = da.from_array(pred, chunks=128)
    lazy_truth = da.from_array(truth, chunks=96)
    whole = evaluate(pred, truth)
    assert 0 < whole["tp"] < whole["n_true"]
    assert evaluate_blockwise(lazy_pred, lazy_truth, block=100) == whole
    assert evaluate_blockwise(truth, truth, block=64)["f1"] == 1.0

    store = zarr.storage.MemoryStore()
    ann = zarr.create_array(store, shape=truth.shape, chunks=(64, 64), dtype="uint8", fill_value=0)
    prediction_to_annotation(lazy_pred, ann, "replace", block=128)
    np.testing.assert_array_equal(ann[:], mask_to_annotation(pred))
    # fill: what was painted stays
    painted = np.zeros(truth.shape, np.uint8)
    painted[:50, :50] = 1
    ann[:] = painted
    prediction_to_annotation(lazy_pred, ann, "fill", block=128)
    np.testing.assert_array_equal(ann[:], np.where(painted > 0, painted, mask_to_annotation(pred)))
