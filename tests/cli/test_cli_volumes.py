"""``predict`` on a z-stack (issue 23): a file whose axes say Z is segmented as one volume,
one id per object through z; a time-lapse stays frame by frame; Z anywhere in front of
the plane (``ZTYX``) comes back in the file's own order; ``--views all`` is taken; block
by block (``--format zarr``) takes a Z×Y×X volume in 3-D blocks and refuses other
stacks in one line before any work.

The bundled nuclei model on blurred balls about its object width (``--diameter 0``)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from cli_helpers import assert_user_error, cli
from helpers import assert_one_id_each, nuclei_volume


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    d = tmp_path_factory.mktemp("volumes")
    image, truth = nuclei_volume()
    image = image.astype(np.uint16)
    tifffile.imwrite(d / "vol.tif", image, imagej=True, metadata={"axes": "ZYX", "spacing": 1.0})
    tifffile.imwrite(d / "movie.tif", image, imagej=True, metadata={"axes": "TYX"})
    return d, image, truth


def test_a_volume_is_one_id_per_ball_through_z_a_time_lapse_is_per_frame(stacks, tmp_path):
    d, _, truth = stacks
    out = tmp_path / "out"
    proc = cli(
        "predict", d / "vol.tif", d / "movie.tif", "--model", "nuclei", "--diameter", "0",
        "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout.splitlines()
    assert any(ln.startswith("vol.tif: 3 objects") and "as one 3-D volume" in ln for ln in said)
    assert not any("3-D volume" in ln for ln in said if ln.startswith("movie.tif"))
    vol = tifffile.imread(out / "vol_labels.tif")
    assert vol.shape == truth.shape
    assert tifffile.imread(out / "vol_probability.tif").shape == truth.shape
    assert_one_id_each(vol, truth, share=0.7)  # each ball one id across its planes
    movie = tifffile.imread(out / "movie_labels.tif")
    assert movie.shape == truth.shape
    # frames on their own: a ball seen in 19 frames gets an id in each of them
    for t in (1, 2, 3):
        frames = np.unique(np.nonzero(truth == t)[0])
        ids = set(np.unique(movie[truth == t])) - {0}
        assert len(ids) >= len(frames) // 2, (t, len(ids), len(frames))
    assert int(movie.max()) > 5 * int(vol.max())


def test_z_in_front_of_time_all_views_and_the_z_scale(stacks, tmp_path):
    """A ZTYX file (tifffile's axes), each time point a volume with z steps of 2 px seen
    also from the side; results in the file's order, ids unique over time points."""
    d, image, truth = stacks
    thin, thin_truth = image[::2], truth[::2]
    path = d / "zt.tif"
    tifffile.imwrite(path, np.stack([thin, thin[:, ::-1]], axis=1), metadata={"axes": "ZTYX"})
    out = tmp_path / "out"
    proc = cli(
        "predict", path, "--model", "nuclei", "--diameter", "0", "--views", "all",
        "--z-scale", "2", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Z×T×Y×X time-lapse of volumes" in proc.stderr
    assert "each time point as one 3-D volume" in proc.stdout
    labels = tifffile.imread(out / "zt_labels.tif")
    assert labels.shape == (thin.shape[0], 2) + thin.shape[1:]
    assert tifffile.imread(out / "zt_probability.tif").shape == labels.shape
    assert_one_id_each(labels[:, 0], thin_truth, share=0.6)
    assert_one_id_each(labels[:, 1], thin_truth[:, ::-1], share=0.6)
    first, second = (set(np.unique(labels[:, t])) - {0} for t in (0, 1))
    assert first and second and not first & second


def test_a_time_lapse_block_by_block_is_refused_in_one_line(stacks, tmp_path):
    d, _, _ = stacks
    out = tmp_path / "out"
    line = assert_user_error(
        cli("predict", d / "movie.tif", "--model", "nuclei", "--format", "zarr", "--out", out),
        "movie.tif", "T×Y×X", "Z×Y×X volumes", "without --format zarr",
    )  # fmt: skip
    assert "Traceback" not in line
    assert not out.exists() or not list(out.iterdir())
    assert_user_error(
        cli("predict", d / "vol.tif", "--model", "nuclei", "--views", "xz", "--out", out),
        "--views",
    )


def test_an_ome_zarr_volume_block_by_block(stacks, tmp_path, monkeypatch):
    """``--format zarr`` on an OME-Zarr volume: 3-D blocks (here 2 × 1 × 1 of 16 planes),
    3-D OME-Zarr labels with one id per ball through z (those across the z border at
    plane 17 included)."""
    import zarr

    from napari_unet import cli as cli_module
    from napari_unet.core.files.ome_zarr import create_ome_zarr, write_levels
    from napari_unet.core.files.outputs import ZARR_MARK
    from napari_unet.core.jobs import file_jobs

    _, one, one_truth = stacks
    image = np.concatenate([one, one])  # 48 planes, six balls
    truth = np.concatenate([one_truth, np.where(one_truth > 0, one_truth + 3, 0)])
    src = tmp_path / "big_volume.zarr"
    create_ome_zarr(src, image.shape, np.uint16, 64, "volume", [1], "image", 8, 1.0)
    write_levels(str(src), 0, 0, image, [1], z0=0)
    zarr.open_group(str(src), mode="r+").attrs.pop(ZARR_MARK, None)  # not one of ours
    monkeypatch.setattr(file_jobs, "VOLUME_BLOCK_Z", 12)
    monkeypatch.setattr(file_jobs, "VOLUME_HALO", 16)  # 16 planes: blocks of 17 and 31
    out = tmp_path / "out"
    argv = ["predict", str(src), "--model", "nuclei", "--diameter", "0", "--format", "zarr"]
    assert cli_module.main(argv + ["--out", str(out)]) == 0
    labels = zarr.open_group(str(out / "big_volume_labels.zarr"), mode="r")
    assert [a["name"] for a in labels.attrs["multiscales"][0]["axes"]] == ["z", "y", "x"]
    vol = np.asarray(labels["0"])
    assert vol.shape == truth.shape
    assert_one_id_each(vol, truth, share=0.7)
    assert int(vol.max()) == 6
