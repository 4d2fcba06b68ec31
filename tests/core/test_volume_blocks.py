"""Volumes too large for memory (issue 23): 3-D blocks with a halo in z, y and x, the
volume path on each, ids stitched across block faces in all three directions, 3-D
OME-Zarr out; in this process and on a real dask ``LocalCluster``.

The bundled nuclei model on blurred balls about its object width (``diameter=0``)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_one_id_each, balls

from napari_unet.core import UNet
from napari_unet.core.prediction.volume_blocks import predict_volume_to_zarr


@pytest.fixture(scope="module")
def net():
    return UNet.bundled("nuclei")


def ball_volume(seed: int = 0):
    """Seven balls ~21 px wide in a 40 × 128 × 128 volume with z steps of 2 px; with
    blocks of 16 planes and 64 px (3 × 2 × 2 blocks), three cross a z border (z = 16 or
    32), others a y or x border (64) or several."""
    from scipy import ndimage as ndi

    centres = [(16, 20, 20), (32, 100, 30), (15, 64, 64), (24, 64, 100), (8, 100, 64),
               (33, 20, 70), (26, 100, 100)]  # fmt: skip
    truth = balls((40, 128, 128), centres, [(10, 10, 10)] * len(centres), z_scale=2.0)
    rng = np.random.default_rng(seed)
    image = ndi.gaussian_filter((truth > 0).astype(np.float32), 1.5) * 800 + 100
    image += rng.normal(0, 20, truth.shape)
    return image.astype(np.float32), truth


def run(net, image, tmp_path, client=None, **kw):
    import zarr

    scratch = tmp_path / "work"
    scratch.mkdir()
    res = predict_volume_to_zarr(
        net, image, tmp_path / "labels.zarr", tmp_path / "prob.zarr", scratch,
        client=client, diameter=0, block_size=64, block_z=16, halo=16, z_scale=2.0, **kw,
    )  # fmt: skip
    labels = np.asarray(zarr.open_group(str(tmp_path / "labels.zarr"), mode="r")["0"])
    prob = np.asarray(zarr.open_group(str(tmp_path / "prob.zarr"), mode="r")["0"])
    return res, labels, prob


def matched_iou(a: np.ndarray, b: np.ndarray) -> list[float]:
    """For each object of ``a``, its best IoU with an object of ``b``."""
    out = []
    for i in np.unique(a)[1:]:
        m = a == i
        ids, counts = np.unique(b[m], return_counts=True)
        counts, ids = counts[ids > 0], ids[ids > 0]
        if not ids.size:
            out.append(0.0)
            continue
        j = ids[np.argmax(counts)]
        inter = counts.max()
        out.append(float(inter / (m.sum() + (b == j).sum() - inter)))
    return out


def test_blocks_match_the_whole_volume_and_keep_one_id_across_z_borders(net, tmp_path):
    image, truth = ball_volume()
    res, labels, prob = run(net, image, tmp_path)
    assert res.blocks == 3 * 2 * 2  # blocks in z, y, x
    assert labels.shape == prob.shape == truth.shape
    # each ball one id, those crossing a z border (ids 1, 2, 3) included
    assert_one_id_each(labels, truth, share=0.8)
    for t in (1, 2, 3):
        zs = np.unique(np.nonzero(labels == np.bincount(labels[truth == t]).argmax())[0])
        assert zs.min() < 16 <= zs.max() or zs.min() < 32 <= zs.max(), (t, zs.min(), zs.max())
    assert res.n_instances == len(np.unique(labels)) - 1  # ids 1..N, none lost
    # the in-memory volume path: same probabilities (the tiles lie on the volume's grid),
    # same objects up to stitching
    whole = net.predict(image, axes="ZYX", volume=True, z_scale=2.0, diameter=0)
    # tiles of another shape at the block edges: float differences only
    np.testing.assert_allclose(prob, whole.probability, atol=0.02)
    assert int(whole.labels.max()) == res.n_instances
    assert min(matched_iou(whole.labels, labels)) > 0.9


def test_a_lazy_volume_on_a_local_cluster(net, tmp_path):
    import dask.array as da
    from distributed import Client, LocalCluster

    image, truth = ball_volume(seed=1)
    lazy = da.from_array(image, chunks=(5, 48, 48))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as lc, Client(lc) as c:
        res, labels, _ = run(net, lazy, tmp_path, client=c)
    assert labels.shape == image.shape
    assert_one_id_each(labels, truth, share=0.8)
    whole = net.predict(image, axes="ZYX", volume=True, z_scale=2.0, diameter=0)
    assert int(whole.labels.max()) == res.n_instances
    assert min(matched_iou(whole.labels, labels)) > 0.85
    import zarr

    meta = zarr.open_group(str(tmp_path / "labels.zarr"), mode="r").attrs["multiscales"][0]
    assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"]
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 1.0, 1.0]
