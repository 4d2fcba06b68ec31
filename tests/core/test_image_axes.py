"""Which axes of an image file are Z and which T, and the z-step: read from real
ImageJ TIFF, OME-TIFF, tifffile and OME-Zarr files (core/files/image_axes.py), handed to
the prediction plan (core/jobs/file_jobs.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_unet.core import UNet, UNetConfig
from napari_unet.core.errors import ConfigError, UserInputError
from napari_unet.core.files.image_axes import (
    FROM_PERSON,
    FROM_SHAPE,
    decide_axes,
    image_axes,
    read_file_axes,
    volume_axes,
)
from napari_unet.core.jobs.file_jobs import plan_predictions

STACK = np.arange(5 * 24 * 32, dtype=np.uint16).reshape(5, 24, 32)


def imagej(path, data, axes, **meta):
    pixel = meta.pop("pixel", None)
    res = None if pixel is None else (1 / pixel, 1 / pixel)
    tifffile.imwrite(path, data, imagej=True, resolution=res, metadata={"axes": axes, **meta})
    return path


def test_imagej_slices_are_z_with_their_spacing_and_frames_are_t(tmp_path):
    z = image_axes(imagej(tmp_path / "z.tif", STACK, "ZYX", spacing=1.0, unit="um", pixel=0.25))
    assert (z.axes, z.is_volume, z.z_axis, z.t_axis) == ("ZYX", True, 0, None)
    assert z.z_scale == pytest.approx(4.0) and z.source == z.z_source == "ImageJ metadata"
    assert z.scale() == (4.0, 1.0, 1.0) and z.axis_labels() == ("z", "y", "x")
    line = z.describe("z.tif")
    assert line == "z.tif: Z×Y×X volume (axes from ImageJ metadata), z-step 4× the pixel size"

    t = image_axes(imagej(tmp_path / "t.tif", STACK, "TYX"))
    assert (t.axes, t.is_volume, t.t_axis, t.source) == ("TYX", False, 0, "ImageJ metadata")
    assert t.scale() == (1.0, 1.0, 1.0) and "time-lapse" in t.describe("t.tif")
    assert "z-step" not in t.describe("t.tif")


def test_imagej_hyperstacks_name_every_axis(tmp_path):
    data = np.zeros((3, 4, 2, 24, 32), np.uint8)
    a = image_axes(imagej(tmp_path / "h.tif", data, "TZCYX", spacing=0.5, pixel=0.5))
    assert a.axes == "TZCYX" and a.stack_axes == "TZ" and a.channel_axis == 2
    assert a.z_scale == pytest.approx(1.0)
    assert a.scale() == (1.0, 1.0, 1.0, 1.0) and a.axis_labels() == ("t", "z", "y", "x")
    # a one-channel model does not read the ImageJ channels as channels: planes (Z)
    grey = image_axes(imagej(tmp_path / "c.tif", STACK, "CYX"), channel_axis=None)
    assert grey.axes == "ZYX" and grey.source == FROM_SHAPE


def test_ome_tiff_physical_sizes_give_the_z_step_in_any_unit(tmp_path):
    path = tmp_path / "v.ome.tif"
    meta = {
        "axes": "TZYX",
        "PhysicalSizeX": 200.0,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 200.0,
        "PhysicalSizeYUnit": "nm",
        "PhysicalSizeZ": 0.5,
    }  # Z in µm (OME's default unit)
    tifffile.imwrite(path, np.zeros((2, 5, 24, 32), np.uint8), metadata=meta)
    a = image_axes(path)
    assert a.axes == "TZYX" and a.source == "OME metadata"
    assert a.z_scale == pytest.approx(2.5) and a.scale() == (1.0, 2.5, 1.0, 1.0)


def test_tifffile_axes_metadata_and_the_shape_rule(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", STACK, metadata={"axes": "TYX"})
    assert image_axes(tmp_path / "t.tif").axes == "TYX"
    tifffile.imwrite(tmp_path / "plain.tif", STACK, metadata=None)
    a = image_axes(tmp_path / "plain.tif")
    assert (a.axes, a.source, a.z_scale, a.z_source) == ("ZYX", FROM_SHAPE, 1.0, FROM_SHAPE)
    assert a.describe("plain.tif") == (
        "plain.tif: Z×Y×X volume (axes from the shape; if this is wrong, say it with --axes, "
        "e.g. TYX for a time-lapse), z-step not in the file: taken as 1× the pixel size "
        "(give --z-scale)"
    )
    four = np.zeros((2, 3, 24, 32), np.uint8)
    tifffile.imwrite(tmp_path / "four.tif", four, metadata=None)
    assert image_axes(tmp_path / "four.tif").axes == "TZYX"
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((24, 32, 3), np.uint8), photometric="rgb")
    rgb = image_axes(tmp_path / "rgb.tif")
    assert rgb.axes == "YXC" and not rgb.stack_axes and rgb.scale() == (1.0, 1.0)


def test_what_a_person_says_wins_and_bad_values_are_refused(tmp_path):
    path = imagej(tmp_path / "z.tif", STACK, "ZYX", spacing=2.0, pixel=1.0)
    a = image_axes(path, z_scale=3.5)
    assert (a.axes, a.z_scale, a.z_source, a.source) == ("ZYX", 3.5, FROM_PERSON, "ImageJ metadata")
    assert "(as given)" in a.describe("z.tif")
    t = image_axes(path, axes="tyx")
    assert (t.axes, t.source, t.is_volume) == ("TYX", FROM_PERSON, False)
    for bad in (0, -1, float("nan"), float("inf"), 1000):
        with pytest.raises(ConfigError) as err:
            image_axes(path, z_scale=bad)
        assert err.value.field == "z_scale"
    with pytest.raises(UserInputError, match="name 4 axes"):
        image_axes(path, axes="TZYX")
    assert decide_axes((5, 24, 32), axes="ZYX", z_scale=2).scale() == (2.0, 1.0, 1.0)


def test_ome_zarr_axes_and_scale(tmp_path):
    import zarr

    path = tmp_path / "vol.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    g.create_array("0", shape=(2, 5, 24, 32), chunks=(1, 5, 24, 32), dtype="uint8")
    g.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "t", "type": "time"},
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.5, 0.3, 0.3]}],
                }
            ],
        }
    ]
    a = volume_axes(path)
    assert a.axes == "TZYX" and a.source == "OME-Zarr metadata"
    assert a.z_scale == pytest.approx(5.0)
    # the project's own OME-Zarr outputs (2D, y and x) say no stack axes
    from napari_unet.core.files.ome_zarr import create_ome_zarr

    create_ome_zarr(tmp_path / "out.zarr", (64, 64), "uint16", 64, "out", [1], "labels")
    assert read_file_axes(tmp_path / "out.zarr").axes == "YX"
    assert json.loads((tmp_path / "out.zarr" / ".zattrs").read_text())["multiscales"]


def test_the_prediction_plan_carries_each_files_axes(tmp_path):
    model = tmp_path / "tiny.keras"
    UNet.new(UNetConfig(depth=2, base_filters=4)).save(model)
    z = imagej(tmp_path / "z.tif", STACK, "ZYX", spacing=3.0, pixel=1.0)
    t = imagej(tmp_path / "t.tif", STACK, "TYX")
    plan = plan_predictions([z, t], tmp_path / "out", model)
    by_name = {j.name: j.image_axes for j in plan.jobs}
    assert by_name["z.tif"].axes == "ZYX" and by_name["z.tif"].z_scale == pytest.approx(3.0)
    assert by_name["t.tif"].axes == "TYX" and not by_name["t.tif"].is_volume
    plan = plan_predictions([z], tmp_path / "out2", model, z_scale=1.5)
    assert plan.z_scale == 1.5 and plan.jobs[0].image_axes.z_scale == 1.5
    with pytest.raises(ConfigError):
        plan_predictions([z], tmp_path / "out3", model, z_scale=-2)
