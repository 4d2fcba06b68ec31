"""`napari-unet predict` on images above the block-wise threshold: lazy TIFF and zarr
inputs, outputs written block by block, same result as the in-memory path."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import make_blobs

from napari_unet import cli
from napari_unet.core import memory
from napari_unet.core.jobs import file_jobs as batch


@pytest.fixture(scope="module")
def blob_model(tmp_path_factory):
    from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig

    img, mask = make_blobs(128, 14, seed=21)
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0)
    net.train(
        [TrainingPair(img, mask=mask)],
        TrainConfig(epochs=20, steps_per_epoch=10, patch_size=64, batch_size=8, seed=0),
    )
    path = tmp_path_factory.mktemp("m") / "blobs.keras"
    net.save(path)
    return path


@pytest.fixture(scope="module")
def big_image():
    rows = [
        np.concatenate([make_blobs(160, 18, seed=30 + 4 * i + j)[0] for j in range(4)], 1)
        for i in range(4)
    ]
    return np.concatenate(rows, 0)  # 640 × 640


def test_large_tiff_and_zarr_match_the_in_memory_path(blob_model, big_image, tmp_path, monkeypatch):
    import zarr

    from napari_unet.core import evaluate

    src = tmp_path / "big.tif"
    tifffile.imwrite(src, big_image)
    zsrc = tmp_path / "bigz.zarr"
    z = zarr.open(
        str(zsrc), mode="w", shape=big_image.shape, chunks=(128, 128), dtype=big_image.dtype
    )
    z[:] = big_image
    small_out = tmp_path / "in_memory"
    small_out.mkdir()
    assert (
        cli.main(
            [
                "predict",
                str(src),
                "--model",
                str(blob_model),
                "--out",
                str(small_out),
                "--diameter",
                "0",
            ]
        )
        == 0
    )
    ref_labels = tifffile.imread(small_out / "big_labels.tif")
    ref_prob = tifffile.imread(small_out / "big_probability.tif")

    monkeypatch.setattr(memory, "LARGE_PIXELS", 100_000)
    big_out = tmp_path / "blockwise"
    big_out.mkdir()
    args = ["predict", str(src), str(zsrc), "--model", str(blob_model), "--out", str(big_out)]
    assert cli.main(args) == 0
    assert sorted(p.name for p in big_out.iterdir()) == [
        "big_labels.tif",
        "big_probability.tif",
        "bigz_labels.tif",
        "bigz_probability.tif",
    ]
    for stem in ("big", "bigz"):
        labels = tifffile.imread(big_out / f"{stem}_labels.tif")
        prob = tifffile.imread(big_out / f"{stem}_probability.tif")
        assert labels.dtype == np.uint32 and prob.dtype == np.float32
        np.testing.assert_allclose(prob, ref_prob, atol=1e-5)
        assert evaluate(labels, ref_labels)["f1"] > 0.97
        ids = np.unique(labels)[1:]
        assert len(ids) == ids.max()  # ids 1..N, none reused


def test_large_prediction_leaves_nothing_behind_on_error(
    blob_model, big_image, tmp_path, monkeypatch
):
    import napari_unet.core.prediction.instances as postprocess
    from napari_unet.core import UserInputError

    src = tmp_path / "big.tif"
    tifffile.imwrite(src, big_image)
    real = postprocess.instances_from_probabilities
    calls = []

    def fail_on_second_block(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise UserInputError("simulated failure in the middle of the image")
        return real(*a, **k)

    monkeypatch.setattr(postprocess, "instances_from_probabilities", fail_on_second_block)
    monkeypatch.setattr(memory, "LARGE_PIXELS", 100_000)
    monkeypatch.setattr(batch, "LARGE_BLOCK", 256)
    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("tiff", "zarr"):
        calls.clear()
        args = ["predict", str(src), "--model", str(blob_model), "--out", str(out)]
        assert cli.main(args + ["--tile-size", "256", "--format", fmt]) == 2
        assert len(calls) == 2  # it failed after a block was already written
        assert list(out.iterdir()) == []  # and the half-written outputs are gone


def test_zarr_output_is_ome_zarr_napari_opens_lazily(blob_model, big_image, tmp_path, monkeypatch):
    import dask.array as da
    import zarr
    from napari_builtins.io import napari_get_reader

    from napari_unet.core import evaluate

    src = tmp_path / "big.tif"
    tifffile.imwrite(src, big_image)
    out = tmp_path / "out"
    monkeypatch.setattr(batch, "LARGE_BLOCK", 256)
    monkeypatch.setattr("napari_unet.core.prediction.blockwise.PYRAMID_MIN", 128)
    args = ["predict", str(src), "--model", str(blob_model), "--out", str(out), "--format", "zarr"]
    assert cli.main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["big_labels.zarr", "big_probability.zarr"]
    group = zarr.open_group(str(out / "big_labels.zarr"), mode="r")
    ms = group.attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    # napari's own reader: one drag and drop gives a lazy multiscale layer
    layers = napari_get_reader(str(out / "big_labels.zarr"))(str(out / "big_labels.zarr"))
    data = layers[0][0]
    assert isinstance(data, list) and all(isinstance(d, da.Array) for d in data)
    assert [d.shape for d in data] == [(640, 640), (320, 320), (160, 160)]
    labels = np.asarray(data[0])
    np.testing.assert_array_equal(np.asarray(data[1]), labels[::2, ::2])
    assert labels.dtype == np.uint32 and len(np.unique(labels)[1:]) == labels.max()
    # our reader (drag and drop): a Labels layer and the probability's look, lazily
    from napari_unet._reader import get_zarr_reader

    ((data, meta, kind),) = get_zarr_reader(str(out / "big_labels.zarr"))(
        str(out / "big_labels.zarr")
    )
    assert kind == "labels" and meta["multiscale"] and meta["name"] == "big labels"
    assert isinstance(data[0], da.Array)
    ((_, meta, kind),) = get_zarr_reader(str(out / "big_probability.zarr"))(
        str(out / "big_probability.zarr")
    )
    assert kind == "image" and meta["colormap"] == "magma"
    # the same objects as a TIFF run; a second run replaces its own outputs
    tif_out = tmp_path / "tif"
    assert cli.main(args[:-4] + ["--out", str(tif_out), "--diameter", "0"]) == 0
    assert evaluate(labels, tifffile.imread(tif_out / "big_labels.tif"))["f1"] > 0.97
    assert cli.main(args) == 0
    # an existing folder it did not write is never replaced unasked
    (out / "big_labels.zarr").rename(tmp_path / "mine.zarr")
    (tmp_path / "mine.zarr" / ".zattrs").write_text("{}")
    (tmp_path / "mine.zarr").rename(out / "big_labels.zarr")
    assert cli.main(args) == 2
    assert (out / "big_labels.zarr" / ".zattrs").read_text() == "{}"
    assert get_zarr_reader(str(out / "big_labels.zarr")) is None  # left to napari
