"""``predict`` says which axes of each stack are Z or T and the z-step, in one line per
file; ``--z-scale`` overrides the file's, bad values are refused with one line."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from cli_helpers import assert_user_error, cli

from napari_unet.core import UNet, UNetConfig
from napari_unet.core.config import LIMITS


@pytest.fixture(scope="module")
def stacks(tmp_path_factory, sample_image):
    d = tmp_path_factory.mktemp("stacks")
    planes = np.stack([sample_image[:64, :64], sample_image[64:128, :64]])
    z, t = d / "vol.tif", d / "movie.tif"
    tifffile.imwrite(
        z, planes, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "spacing": 1.0}
    )
    tifffile.imwrite(t, planes, imagej=True, metadata={"axes": "TYX"})
    model = d / "tiny.keras"
    UNet.new(UNetConfig(depth=2, base_filters=4)).save(model)
    return z, t, model


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e9", "abc"])
def test_a_bad_z_scale_is_one_line_and_exit_2(stacks, tmp_path, value):
    z, _, model = stacks
    line = assert_user_error(
        cli("predict", z, "--model", model, "--out", tmp_path / "o", "--z-scale", value),
        "--z-scale",
    )
    if value != "abc":
        assert LIMITS["z_scale"].text() in line
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_predict_says_the_axes_of_each_stack_and_z_scale_overrides(stacks, tmp_path):
    z, t, model = stacks
    proc = cli("predict", z, t, "--model", model, "--out", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    said = [ln for ln in proc.stderr.splitlines() if "×Y×X" in ln]
    assert said == [
        "napari-unet: vol.tif: Z×Y×X volume (axes from ImageJ metadata), z-step 4× the pixel size",
        "napari-unet: movie.tif: T×Y×X time-lapse (axes from ImageJ metadata)",
    ], proc.stderr
    # plane by plane as before: one label image per input, same shape
    assert tifffile.imread(tmp_path / "a" / "vol_labels.tif").shape == (2, 64, 64)
    proc = cli("predict", z, "--model", model, "--out", tmp_path / "b", "--z-scale", "1.5")
    assert proc.returncode == 0, proc.stderr
    assert (
        "vol.tif: Z×Y×X volume (axes from ImageJ metadata), z-step 1.5× the pixel size "
        "(as given)" in proc.stderr
    )
    proc = cli("predict", z, "--model", model, "--out", tmp_path / "c", "--axes", "TYX")
    assert proc.returncode == 0, proc.stderr
    assert "vol.tif: T×Y×X time-lapse (axes as given)" in proc.stderr
