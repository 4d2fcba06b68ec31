"""A volume opens with its z-step as the layer's ``scale`` and its axes as napari's
axis labels (``_reader.read_image_layers``; OME-Zarr volumes through the plugin's zarr
reader), so it looks right in 3D; a time-lapse keeps unit steps."""

from __future__ import annotations

import numpy as np
import tifffile
from napari.layers import Layer

from napari_unet._reader import get_zarr_reader, read_image_layers

PLUGIN = "napari-unet"


def _ome_zarr_volume(path, scale):
    import zarr

    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    g.create_array("0", shape=(4, 24, 32), chunks=(4, 24, 32), dtype="uint16")
    g["0"][...] = np.arange(4 * 24 * 32, dtype=np.uint16).reshape(4, 24, 32)
    g.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": n, "type": "space"} for n in "zyx"],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
            ],
        }
    ]
    return path


def test_imagej_volume_and_time_lapse_layers(make_napari_viewer, tmp_path):
    stack = np.zeros((3, 24, 32), np.uint16)
    z, t = tmp_path / "z.tif", tmp_path / "t.tif"
    tifffile.imwrite(
        z, stack, imagej=True, resolution=(5.0, 5.0), metadata={"axes": "ZYX", "spacing": 0.6}
    )
    tifffile.imwrite(t, stack, imagej=True, metadata={"axes": "TYX"})
    ((zdata, zmeta, kind),) = read_image_layers(str(z))
    assert kind == "image" and zdata.shape == (3, 24, 32)
    assert np.allclose(zmeta["scale"], (3.0, 1.0, 1.0))
    assert tuple(zmeta["axis_labels"]) == ("z", "y", "x")
    ((tdata, tmeta, _),) = read_image_layers(str(t))
    assert np.allclose(tmeta["scale"], (1.0, 1.0, 1.0)) and tmeta["axis_labels"][0] == "t"
    viewer = make_napari_viewer()
    layer = viewer.add_layer(Layer.create(zdata, zmeta, kind))
    assert np.allclose(layer.scale, (3.0, 1.0, 1.0))
    assert tuple(viewer.dims.axis_labels) == ("z", "y", "x")
    viewer.dims.ndisplay = 3  # plane centres 3 pixels apart: 0 to 6 through z
    assert np.allclose(layer.extent.world[1] - layer.extent.world[0], (6.0, 23.0, 31.0))


def test_an_ome_zarr_volume_opens_with_its_z_step(make_napari_viewer, tmp_path):
    path = _ome_zarr_volume(tmp_path / "vol.zarr", [2.0, 0.5, 0.5])
    assert get_zarr_reader(str(path)) is read_image_layers
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert np.allclose(layer.scale, (4.0, 1.0, 1.0))
    assert tuple(viewer.dims.axis_labels) == ("z", "y", "x")
    assert int(np.asarray(layer.data[1, 0, 0])) == 24 * 32
    # a zarr folder that names no stack axes is left to napari
    import zarr

    zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=(8, 8), dtype="uint8")
    assert get_zarr_reader(str(tmp_path / "plain.zarr")) is None


def test_prediction_layers_follow_the_volumes_scale_and_labels(make_napari_viewer, tmp_path):
    from napari_unet._layers import geometry_of, put_layer

    path = _ome_zarr_volume(tmp_path / "vol.zarr", [3.0, 1.0, 1.0])
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(path), plugin=PLUGIN)
    labels = np.zeros((4, 24, 32), np.uint16)
    layer = put_layer(viewer, "vol labels", labels, "labels", **geometry_of(image))
    assert np.allclose(layer.scale, (3.0, 1.0, 1.0))
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    image.axis_labels = ("t", "y", "x")  # said again: the re-run follows
    image.scale = (1.0, 1.0, 1.0)
    again = put_layer(viewer, "vol labels", labels, "labels", **geometry_of(image))
    assert again is layer and tuple(layer.axis_labels) == ("t", "y", "x")
    assert np.allclose(layer.scale, (1.0, 1.0, 1.0))
    # a plain image has napari's default labels: none are passed on
    plain = viewer.add_image(np.zeros((24, 32)))
    assert "axis_labels" not in geometry_of(plain)
